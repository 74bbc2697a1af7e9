//! Carrying out a routed request: the answers, and the start of a stream or long poll (its
//! symbols resolved, subscribed, sent what is due at once).

use std::cmp::Reverse;
use std::rc::Rc;

use super::{Core, Io};
use crate::answers::Answer;
use crate::conn::Kind;
use crate::feed;
use crate::metrics::{self, FeedGauges};
use crate::protocol::Protocol;
use crate::publish::{self, PublishError};
use crate::response::{self, Dialect};
use crate::route::{Action, Choice, StreamAsk};
use crate::schema::HEADLINE;
use crate::sse;
use crate::universe::{Format, SymbolId, View, DEFAULT_SYMBOL};

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

/// A whole response made once per dialect (`Dialect::ALL`'s order).
struct PerDialect([Rc<[u8]>; 3]);

impl PerDialect {
    fn new(make: impl Fn(Dialect) -> Vec<u8>) -> PerDialect {
        PerDialect(Dialect::ALL.map(|d| make(d).into()))
    }

    fn get(&self, d: Dialect) -> Rc<[u8]> {
        self.0[d as usize].clone()
    }
}

pub(super) struct Shared {
    stream_start: PerProtocol,
    page: PerDialect,
    script: PerDialect,
    pub(super) heartbeat: Rc<[u8]>,
}

impl Shared {
    pub(super) fn new(retry_ms: u64) -> Shared {
        let file = |content_type: &'static str, body: &'static str| {
            PerDialect::new(move |d| {
                let extra = [("Cache-Control", "no-cache")];
                response::full(d, 200, content_type, &extra, body.as_bytes())
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

impl<I: Io> Core<I> {
    /// Carries out a routed request on connection `key`.
    pub(super) fn carry_out(&mut self, key: usize, action: Action) {
        let Some(conn) = self.clients.get(key) else {
            return;
        };
        // Over HTTP it says whether the connection stays open after the answer.
        let p = conn.dialect();
        let answer: Rc<[u8]> = match action {
            Action::Stream(ask) => return self.start_stream(key, Kind::Stream, ask),
            Action::LongPoll(ask) => return self.start_stream(key, Kind::LongPoll, ask),
            Action::Fields => {
                let body = self.feed.universe.schema().json();
                let extra = [("Cache-Control", "no-cache")];
                response::full(p, 200, "application/json", &extra, body.as_bytes()).into()
            }
            Action::Page => self.shared.page.get(p),
            Action::Script => self.shared.script.get(p),
            Action::Symbols {
                prefix,
                limit,
                user,
                token,
            } => {
                let (user, claims) = match self.identify(key, p, user, token.as_ref()) {
                    Ok(who) => (who.user, who.claims),
                    Err(answer) => return self.respond(key, answer),
                };
                let u = &self.feed.universe;
                let body = match self.rights_of(user.as_deref(), claims.as_ref()) {
                    None => u.listing_json(&prefix, limit),
                    Some(r) => u.listing_json_of(&prefix, limit, |s| r.tier_of(s).is_some()),
                };
                let extra = [("Cache-Control", "no-cache")];
                response::full(p, 200, "application/json", &extra, body.as_bytes()).into()
            }
            Action::Metrics => {
                let body = self.metrics(key);
                response::full(p, 200, "text/plain; version=0.0.4", &[], body.as_bytes()).into()
            }
            Action::Publish { body, format } => {
                let u = &self.feed.universe;
                let default = (DEFAULT_SYMBOL, u.decimals(DEFAULT_SYMBOL));
                let find = |s: &_| u.find(s).map(|id| (id, u.decimals(id)));
                match publish::parse_batch(&body, format, u.schema(), default, find) {
                    Ok(batch) if self.redis.is_some() => {
                        // Through Redis: answered when Redis has given the ids.
                        let serial = conn.serial();
                        if self.redis_publish(key, serial, &batch) {
                            return;
                        }
                        self.answer(p, Answer::RedisUnavailable)
                    }
                    Ok(batch) => {
                        // Applied now; the fan-out follows once the loop has handled every
                        // ready event, so publishes that arrive together fold into one.
                        let applied = self.feed.apply(&batch);
                        self.answer(p, Answer::Published(applied))
                    }
                    Err(why) => {
                        let why = why.to_string();
                        self.log_refusal(key, 400, &format!("publish refused: {why}"));
                        self.answer(p, Answer::BadBatch(&why))
                    }
                }
            }
            Action::PublishRefused(PublishError::Disabled) => {
                self.answer(p, Answer::PublishingDisabled)
            }
            Action::PublishRefused(PublishError::Unauthorized) => {
                self.log_refusal(key, 401, "publish refused: missing or wrong token");
                self.answer(p, Answer::Unauthorized)
            }
            Action::Refuse(status, why) => {
                self.log_refusal(key, status, &why);
                self.answer(p, Answer::Refused { status, why: &why })
            }
            Action::NotFound => self.answer(p, Answer::NotFound),
            Action::MethodNotAllowed { allow } => {
                self.answer(p, Answer::MethodNotAllowed { allow })
            }
        };
        self.respond(key, answer);
    }

    /// Connection `key` starts writing a finite response.
    pub(super) fn respond(&mut self, key: usize, answer: Rc<[u8]>) {
        if let Some(conn) = self.clients.get_mut(key) {
            conn.start_response(answer);
        }
    }

    /// A canned answer, its counter bumped.
    pub(super) fn answer(&mut self, p: Dialect, answer: Answer) -> Rc<[u8]> {
        answer.render(p, &mut self.counters).into()
    }

    fn log_refusal(&self, key: usize, status: u16, why: &str) {
        if let Some(conn) = self.clients.get(key) {
            log::warn!("{}: refused ({status}): {why}", conn.describe());
        }
    }

    /// The page for `GET /metrics`, asked on connection `key` (not counted in it).
    fn metrics(&self, key: usize) -> String {
        let counts = self.clients.counts(Some(key));
        let u = &self.feed.universe;
        let gauges = FeedGauges {
            symbols: u.len(),
            subscriptions: self.feed.subscriptions(),
            updates: self.feed.updates,
            last_id: u.last_id(),
            headline: u
                .value(DEFAULT_SYMBOL, HEADLINE)
                .map(|v| v.to_string())
                .unwrap_or_default(),
        };
        let redis = self.redis.as_ref().map(|r| r.gauges());
        metrics::render(
            &self.counters,
            &counts,
            self.max_clients,
            &gauges,
            redis.as_ref(),
        )
    }

    /// A stream or long poll of `symbols`, resuming after `last_id`: subscribed, then sent
    /// what is due at once (a stream's head with it). Symbols outside the caller's rights:
    /// 401 or 403 (before anything else is looked at); unknown symbols: 404, unknown fields:
    /// 400, nothing started.
    fn start_stream(&mut self, key: usize, kind: Kind, ask: StreamAsk) {
        let Some(p) = self.clients.get(key).map(|c| c.dialect()) else {
            return;
        };
        let who = match self.identify(key, p, ask.user.clone(), ask.token.as_ref()) {
            Ok(who) => who,
            Err(answer) => return self.respond(key, answer),
        };
        let rights_cap = match self.admit(key, p, &who, &ask.symbols) {
            Ok(cap) => cap,
            Err(answer) => return self.respond(key, answer),
        };
        if self.entitlements.is_some() {
            // For a reload (SIGHUP) to check it again; removed when the connection closes.
            // Set before the symbols are resolved: a 404 or 400 closes, which removes it.
            self.stream_users.insert(key, who.user.clone());
            if let (Some(claims), Some(exp)) = (who.claims.clone(), who.exp) {
                self.stream_claims.insert(key, (claims, exp));
            }
        }
        let (ids, format) = match self.resolve(&ask.symbols) {
            Ok(chosen) => chosen,
            Err(why) => {
                self.log_refusal(key, 404, &why);
                let answer = self.answer(p, Answer::UnknownSymbols(&why));
                return self.respond(key, answer);
            }
        };
        let view = match self.view(format, ask.fields.as_deref()) {
            Ok(view) => view,
            Err(why) => {
                self.log_refusal(key, 400, &why);
                let answer = self.answer(
                    p,
                    Answer::Refused {
                        status: 400,
                        why: &why,
                    },
                );
                return self.respond(key, answer);
            }
        };
        // A stream opened with a token ends when it expires (a long poll is answered sooner).
        let serial = self.clients.get(key).map(|c| c.serial());
        let expires = match (kind, who.exp, serial) {
            (Kind::Stream, Some(exp), Some(serial)) => {
                Some((self.expiry_instant(exp, serial), serial))
            }
            _ => None,
        };
        let Some(conn) = self.clients.get_mut(key) else {
            return;
        };
        match kind {
            Kind::Stream => self.counters.streams_started += 1,
            Kind::LongPoll => self.counters.long_polls_started += 1,
        }
        let last_id = ask.last_id;
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
                self.timers.ahead.start(self.now, key, conn.serial());
                g
            }
            _ => feed::resume_point(last_id, newest),
        };
        // A client asking more than --max-hz or its rights' cap, or nothing, gets the
        // strictest of them (the longest least gap).
        let gap = [ask.min_gap, self.min_gap, rights_cap]
            .into_iter()
            .flatten()
            .max();
        if let Some((at, serial)) = expires {
            self.timers.expiring.push(Reverse((at, key, serial)));
        }
        conn.start_stream(kind, after);
        self.rates.set(key, gap);
        let head = (kind == Kind::Stream).then(|| self.shared.stream_start.get(conn.protocol()));
        if kind == Kind::LongPoll {
            self.timers.long_polls.start(self.now, key, conn.serial());
        }
        self.feed.subscribe(key, &ids, view);
        self.send_due(key, head);
    }

    /// What a stream sees of each symbol: every field, or those `fields` names (an unknown
    /// one: the 400 reason).
    fn view(&self, format: Format, fields: Option<&[String]>) -> Result<View, String> {
        let schema = self.feed.universe.schema();
        let Some(names) = fields else {
            return Ok(View {
                format,
                fields: schema.all(),
            });
        };
        let mut mask = 0;
        let mut unknown = Vec::new();
        for name in names {
            match schema.find(name) {
                Some(f) => mask |= 1 << f,
                None => unknown.push(name.as_str()),
            }
        }
        if !unknown.is_empty() {
            let known: Vec<&str> = schema.fields().iter().map(|f| f.name.as_str()).collect();
            return Err(format!(
                "fields: unknown: {} (the fields are {})",
                unknown.join(", "),
                known.join(", ")
            ));
        }
        Ok(View {
            format,
            fields: mask,
        })
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
                Err(format!("symbols: unknown: {}", shown(unknown)))
            }
        }
    }
}

/// The first ten names, and how many more: what a 401, 403 or 404 reason names.
pub(super) fn shown(names: Vec<String>) -> String {
    let more = match names.len() {
        n if n > 10 => format!(" and {} more", n - 10),
        _ => String::new(),
    };
    let first: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
    format!("{}{more}", first.join(", "))
}
