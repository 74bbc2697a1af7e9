//! Carrying out a routed request: the answers, and the start of a stream or long poll
//! (its symbols resolved, subscribed, sent what is due at once).

use std::rc::Rc;
use std::time::Instant;

use super::Server;
use crate::conn::Kind;
use crate::feed;
use crate::metrics::{self, FeedGauges};
use crate::publish::{self, PublishError};
use crate::response::{self, Protocol};
use crate::route::{Action, Choice};
use crate::sse;
use crate::universe::{Format, SymbolId, DEFAULT_SYMBOL};

/// The page, embedded in the binary.
pub const PAGE: &str = include_str!("../page.html");
/// The page's client logic, also served on its own for other pages to embed.
pub const SCRIPT: &str = include_str!("../tickerd.js");

/// Bytes made once per protocol and shared by every connection that writes them.
pub(super) struct PerProtocol([Rc<[u8]>; 2]);

impl PerProtocol {
    fn new(make: impl Fn(Protocol) -> Vec<u8>) -> PerProtocol {
        PerProtocol([make(Protocol::Http).into(), make(Protocol::Scgi).into()])
    }

    pub(super) fn get(&self, p: Protocol) -> Rc<[u8]> {
        self.0[p as usize].clone()
    }
}

pub(super) struct Shared {
    pub(super) stream_start: PerProtocol,
    page: PerProtocol,
    script: PerProtocol,
    pub(super) heartbeat: Rc<[u8]>,
}

impl Shared {
    pub(super) fn new(retry_ms: u64) -> Shared {
        let file = |content_type: &'static str, body: &'static str| {
            PerProtocol::new(move |p| {
                let extra = [("Cache-Control", "no-cache")];
                response::full(p, 200, content_type, &extra, body.as_bytes())
            })
        };
        Shared {
            stream_start: PerProtocol::new(|p| response::stream_start(p, retry_ms)),
            page: file("text/html; charset=utf-8", PAGE),
            script: file("text/javascript; charset=utf-8", SCRIPT),
            heartbeat: Rc::from(sse::HEARTBEAT),
        }
    }
}

impl Server {
    /// Carries out a routed request on connection `key`.
    pub(super) fn carry_out(&mut self, key: usize, action: Action) {
        let Some(conn) = self.clients.get(key) else {
            return;
        };
        let p = conn.protocol;
        let text = |status, extra: &[(&str, &str)], body: &str| -> Rc<[u8]> {
            response::text(p, status, extra, body).into()
        };
        let answer = match action {
            Action::Stream { last_id, symbols } => {
                return self.start_stream(key, Kind::Stream, last_id, symbols)
            }
            Action::LongPoll { last_id, symbols } => {
                return self.start_stream(key, Kind::LongPoll, last_id, symbols)
            }
            Action::Page => self.shared.page.get(p),
            Action::Script => self.shared.script.get(p),
            Action::Symbols { prefix, limit } => {
                let body = self.feed.universe.listing_json(&prefix, limit);
                let extra = [("Cache-Control", "no-cache")];
                response::full(p, 200, "application/json", &extra, body.as_bytes()).into()
            }
            Action::Metrics => {
                let counts = self.clients.counts(Some(key));
                let u = &self.feed.universe;
                let gauges = FeedGauges {
                    symbols: u.len(),
                    subscriptions: self.feed.subscriptions(),
                    updates: self.feed.updates,
                    last_id: u.last_id(),
                    default_cents: u.cents(DEFAULT_SYMBOL),
                };
                let redis = self.redis.as_ref().map(|r| r.gauges());
                let body = metrics::render(
                    &self.counters,
                    &counts,
                    self.max_clients,
                    &gauges,
                    redis.as_ref(),
                );
                response::full(p, 200, "text/plain; version=0.0.4", &[], body.as_bytes()).into()
            }
            Action::Publish(body) => {
                let universe = &self.feed.universe;
                match publish::parse_batch(&body, DEFAULT_SYMBOL, |s| universe.find(s)) {
                    Ok(batch) if self.redis.is_some() => {
                        // Through Redis: answered when Redis has given the ids.
                        let serial = conn.serial;
                        if self.redis_publish(key, serial, &batch) {
                            if let Some(conn) = self.clients.get_mut(key) {
                                conn.await_answer();
                            }
                            return;
                        }
                        self.counters.publish_refused += 1;
                        let retry = [("Retry-After", "2")];
                        text(503, &retry, "Redis is unavailable: try again\n")
                    }
                    Ok(batch) => {
                        // Applied now; the fan-out follows once the loop has handled every
                        // ready event, so publishes that arrive together fold into one.
                        let id = self.feed.apply(&batch);
                        self.counters.published += 1;
                        self.counters.ticks += 1;
                        text(200, &[], &format!("{id}\n"))
                    }
                    Err(why) => {
                        self.counters.publish_refused += 1;
                        self.log_refusal(key, 400, &format!("publish refused: {why}"));
                        text(400, &[], &format!("{why}\n"))
                    }
                }
            }
            Action::PublishRefused(why) => match why {
                PublishError::Disabled => text(404, &[], "publishing is disabled\n"),
                PublishError::Unauthorized => {
                    self.counters.publish_refused += 1;
                    self.log_refusal(key, 401, "publish refused: missing or wrong token");
                    text(
                        401,
                        &[("WWW-Authenticate", "Bearer")],
                        "missing or wrong token\n",
                    )
                }
            },
            Action::Refuse(status, why) => {
                self.log_refusal(key, status, &why);
                text(status, &[], &format!("{why}\n"))
            }
            Action::NotFound => text(404, &[], "not found\n"),
            Action::MethodNotAllowed { allow } => {
                text(405, &[("Allow", allow)], "method not allowed\n")
            }
        };
        if let Some(conn) = self.clients.get_mut(key) {
            conn.start_response(answer);
        }
    }

    fn log_refusal(&self, key: usize, status: u16, why: &str) {
        if let Some(conn) = self.clients.get(key) {
            log::warn!("{}: refused ({status}): {why}", conn.describe());
        }
    }

    /// A stream or long poll of `symbols`, resuming after `last_id`: subscribed, then sent
    /// what is due at once (a stream's head with it). Unknown symbols: 404, nothing started.
    fn start_stream(&mut self, key: usize, kind: Kind, last_id: Option<u64>, symbols: Choice) {
        let (ids, format) = match self.resolve(&symbols) {
            Ok(chosen) => chosen,
            Err(why) => {
                self.log_refusal(key, 404, &why);
                if let Some(conn) = self.clients.get_mut(key) {
                    let answer = response::text(conn.protocol, 404, &[], &format!("{why}\n"));
                    conn.start_response(answer.into());
                }
                return;
            }
        };
        let Some(conn) = self.clients.get_mut(key) else {
            return;
        };
        match kind {
            Kind::Stream => self.counters.streams_started += 1,
            Kind::LongPoll => self.counters.long_polls_started += 1,
        }
        if last_id.is_some() {
            self.counters.requests_with_last_event_id += 1;
        }
        log::debug!(
            "{} [{} symbols]: {kind:?}, Last-Event-ID {last_id:?}",
            conn.describe(),
            ids.len()
        );
        let newest = self.feed.universe.last_id();
        let after = match last_id {
            // With Redis, an id this instance has not reached is another instance's: the
            // stream waits (a second at most) for this one to catch up, then resumes exactly.
            Some(g) if g > newest && self.redis.is_some() => {
                self.timers.ahead.start(Instant::now(), key, conn.serial);
                g
            }
            _ => feed::resume_point(last_id, newest),
        };
        conn.start_stream(kind, after);
        let head = (kind == Kind::Stream).then(|| self.shared.stream_start.get(conn.protocol));
        if kind == Kind::LongPoll {
            let serial = conn.serial;
            self.timers.long_polls.start(Instant::now(), key, serial);
        }
        self.feed.subscribe(key, &ids, format);
        self.send_due(key, head);
    }

    /// The universe's ids of a stream's symbols, and the format its events take; the
    /// 404 reason when some are unknown.
    fn resolve(&self, symbols: &Choice) -> Result<(Vec<SymbolId>, Format), String> {
        let universe = &self.feed.universe;
        match symbols {
            Choice::Default => Ok((vec![DEFAULT_SYMBOL], Format::Plain)),
            Choice::Named(names) => {
                let (known, unknown): (Vec<_>, Vec<_>) = names
                    .iter()
                    .map(|s| universe.find(s).ok_or(s))
                    .partition(Result::is_ok);
                if unknown.is_empty() {
                    return Ok((known.into_iter().flatten().collect(), Format::Json));
                }
                let unknown: Vec<String> = unknown
                    .iter()
                    .filter_map(|u| u.err())
                    .map(|s| s.to_string())
                    .collect();
                let shown = unknown
                    .iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                let more = match unknown.len() {
                    n if n > 10 => format!(" and {} more", n - 10),
                    _ => String::new(),
                };
                Err(format!("symbols: unknown: {shown}{more}"))
            }
        }
    }
}
