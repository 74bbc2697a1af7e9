//! Carrying out a routed request: the answers, and the start of a stream or long poll (its
//! symbols resolved, subscribed, sent what is due at once).

use std::cmp::Reverse;
use std::rc::Rc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::{Core, Io};
use crate::answers::Answer;
use crate::conn::Kind;
use crate::feed;
use crate::metrics::{self, FeedGauges};
use crate::protocol::Protocol;
use crate::publish::{self, PublishError};
use crate::response::{self, Dialect};
use crate::rights::{Entitlements, Refusal, Rights, Tier, TokenClaims};
use crate::route::{Action, Choice, StreamAsk, Token};
use crate::schema::HEADLINE;
use crate::sse;
use crate::symbol::Symbol;
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

/// Who asks, as [`Core::identify`] found: the user (a trusted `REMOTE_USER`, or the token's
/// `sub`), the valid token's claims, and when that token expires (unix seconds).
pub(super) struct Identity {
    pub(super) user: Option<String>,
    pub(super) claims: Option<TokenClaims>,
    pub(super) exp: Option<u64>,
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

    /// The rights of a caller (`user`: its identity, if any; `claims`: its token's), resolved
    /// once; `None` without `--entitlements` and `--jwt-jwks`: everyone sees everything and
    /// nothing is checked (the fast path).
    fn rights_of(&self, user: Option<&str>, claims: Option<&TokenClaims>) -> Option<Rights> {
        let rights = self.entitlements.as_ref()?.rights_for(user, claims);
        (!rights.allows_all()).then_some(rights)
    }

    /// Who a request is: its trusted `user`, and with `--jwt-jwks` its token verified against
    /// the wall clock. A trusted `REMOTE_USER` wins over the token's `sub`; the token's
    /// claims count either way. A token invalid in any way: the 401 (`WWW-Authenticate:
    /// Bearer`), logged once at info with the reason, never the token.
    fn identify(
        &mut self,
        key: usize,
        p: Dialect,
        user: Option<String>,
        token: Option<&Token>,
    ) -> Result<Identity, Rc<[u8]>> {
        let (Some(token), Some(keys)) = (token, self.jwt_keys.as_ref()) else {
            return Ok(Identity {
                user,
                claims: None,
                exp: None,
            });
        };
        let now = u64::try_from(self.wall_ms() / 1000).unwrap_or(0);
        let refused = match crate::jwt::verify(&token.0, keys, &self.jwt_checks, now) {
            Ok(v) => {
                let claims = TokenClaims {
                    sub: v.sub,
                    symbols: v.symbols,
                    groups: v.groups,
                    tier: v.tier,
                };
                match claims.check() {
                    Ok(()) => {
                        return Ok(Identity {
                            user: user.or_else(|| claims.sub.clone()),
                            claims: Some(claims),
                            exp: Some(v.exp),
                        })
                    }
                    Err(why) => format!("token: claims: {why}"),
                }
            }
            Err(refusal) => format!("token: {refusal}"),
        };
        if let Some(conn) = self.clients.get(key) {
            let who = user.as_deref().unwrap_or("anonymous");
            log::info!("{}: refused (401): user {who}: {refused}", conn.describe());
        }
        Err(self.answer(p, Answer::StreamUnauthorized(&refused)))
    }

    /// Whether the caller of a stream or long poll may see its symbols, decided before they
    /// are looked up in the universe: a symbol outside the rights answers the same (401 or
    /// 403 naming it) whether it exists or not, so a caller cannot probe which exist. `Ok`:
    /// the stream's cap from the rights (`None`: uncapped); `Err`: the answer, logged once
    /// at info with the user (never a token). A caller with a valid token is identified,
    /// with or without a `sub`.
    fn admit(
        &mut self,
        key: usize,
        p: Dialect,
        who: &Identity,
        symbols: &Choice,
    ) -> Result<Option<Duration>, Rc<[u8]>> {
        let user = who.user.as_deref();
        let Some(rights) = self.rights_of(user, who.claims.as_ref()) else {
            return Ok(None);
        };
        let symbols: Vec<Symbol> = match symbols {
            Choice::Default => vec![self.feed.universe.symbol(DEFAULT_SYMBOL)],
            Choice::Named(names) => names.clone(),
        };
        let identified = user.is_some() || who.claims.is_some();
        let who = user.unwrap_or("anonymous");
        let describe = |k| {
            self.clients
                .get(k)
                .map(|c| c.describe())
                .unwrap_or_default()
        };
        match rights.admit(&symbols, identified) {
            Ok(Tier::Realtime) => Ok(rights.stream_cap(&symbols)),
            Ok(tier) => {
                // Only reachable if the file's check at start is bypassed (or a token's tier
                // claim): never serve a delayed tier in real time.
                let why = format!("tier {tier}: delayed tiers are not served yet");
                log::info!("{}: refused (403): user {who}: {why}", describe(key));
                Err(self.answer(p, Answer::StreamForbidden(&why)))
            }
            Err(refusal) => {
                let missing = shown(refusal.missing().iter().map(|s| s.to_string()).collect());
                let unauthorized = matches!(refusal, Refusal::Unauthorized { .. });
                let why = match unauthorized {
                    true => format!("symbols: need an identity: {missing}"),
                    false => format!("symbols: not entitled: {missing}"),
                };
                log::info!(
                    "{}: refused ({}): user {who}: {why}",
                    describe(key),
                    refusal.status()
                );
                let answer = match unauthorized {
                    true => Answer::StreamUnauthorized(&why),
                    false => Answer::StreamForbidden(&why),
                };
                Err(self.answer(p, answer))
            }
        }
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
fn shown(names: Vec<String>) -> String {
    let more = match names.len() {
        n if n > 10 => format!(" and {} more", n - 10),
        _ => String::new(),
    };
    let first: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
    format!("{}{more}", first.join(", "))
}

/// What ends a stream whose rights were revoked by a reload, before the connection closes:
/// a named event (a page may listen for it; `tickerd.js` does not yet, and an EventSource
/// reconnects after the close as after any other, getting 401/403 or its stream back), with
/// no `id:` line, so that the browser's last id stays where it was.
pub const REAUTH_REVOKED: &[u8] = b"event: reauth\ndata: revoked\n\n";

/// What ends a stream whose token has expired, before the connection closes (no `id:`).
pub const REAUTH_EXPIRED: &[u8] = b"event: reauth\ndata: expired\n\n";

/// Streams whose tokens expire in the same second end spread over this much after `exp`
/// (the bound is 5 s; the last second is left for a late loop turn).
pub const EXPIRY_SPREAD_MS: u64 = 4000;

/// A connection's place in the spread, from its serial: the same for the same connection,
/// scattered across connections (splitmix64's finalizer).
fn spread_ms(serial: u64) -> u64 {
    let mut z = serial.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % EXPIRY_SPREAD_MS
}

impl<I: Io> Core<I> {
    /// When a stream whose token expires at `exp` (unix seconds) ends, in the loop's time:
    /// `exp` plus the connection's spread, converted through the wall clock the core was
    /// made at (the same base as [`Core::wall_ms`]). Already past: now.
    pub(super) fn expiry_instant(&self, exp: u64, serial: u64) -> Instant {
        let wall = UNIX_EPOCH + Duration::from_secs(exp) + Duration::from_millis(spread_ms(serial));
        let (at, wall_at) = self.wall_at_start;
        let at = match wall.duration_since(wall_at) {
            Ok(after) => at + after,
            Err(_) => at,
        };
        at.max(self.now)
    }

    /// A stream whose token expired: `event: reauth` / `data: expired`, then the close.
    pub(super) fn end_expired(&mut self, key: usize) {
        let Some(conn) = self.clients.get_mut(key) else {
            return;
        };
        if !conn.end_stream(Rc::from(REAUTH_EXPIRED)) {
            return;
        }
        let who = self.stream_users.get(&key).cloned().flatten();
        log::info!(
            "{}: stream ended (reauth: expired): user {}",
            conn.describe(),
            who.as_deref().unwrap_or("anonymous")
        );
        self.feed.unsubscribe(key);
        self.rates.remove(key);
        self.stream_users.remove(&key);
        self.stream_claims.remove(&key);
        self.flush(key);
    }
}

impl<I: Io> Core<I> {
    /// A reloaded key set (SIGHUP): tokens are verified with it from now on. Open streams
    /// go on: their tokens were verified when they started, and they end at their expiry.
    pub fn reload_keys(&mut self, keys: crate::jwt::KeySet) {
        self.jwt_keys = Some(std::sync::Arc::new(keys));
    }

    /// A reloaded entitlements file (SIGHUP): from now on, streams start with it; every open
    /// stream whose rights no longer cover all its symbols at real time ends at once with
    /// `event: reauth` / `data: revoked`, and a waiting long poll is answered 401 or 403 as
    /// a new one would be. Others go on untouched (their cap stays what it was). Returns
    /// how many ended and how many go on.
    pub fn reload_entitlements(&mut self, entitlements: Entitlements) -> (usize, usize) {
        let mut checked: Vec<(usize, Option<String>)> = self
            .stream_users
            .iter()
            .map(|(k, u)| (*k, u.clone()))
            .collect();
        checked.sort_unstable_by_key(|(k, _)| *k);
        self.entitlements = Some(entitlements);
        let (mut ended, mut kept) = (0, 0);
        for (key, user) in checked {
            let Some(symbols) = self.feed.symbols_of(key).map(|(_, ids)| {
                let u = &self.feed.universe;
                ids.map(|id| u.symbol(id)).collect::<Vec<Symbol>>()
            }) else {
                continue; // not subscribed (yet, or any more)
            };
            let claims = self.stream_claims.get(&key).map(|(c, _)| c.clone());
            let rights = self
                .entitlements
                .as_ref()
                .map(|e| e.rights_for(user.as_deref(), claims.as_ref()))
                .unwrap_or_default();
            let identified = user.is_some() || claims.is_some();
            let missing = match rights.admit(&symbols, identified) {
                Ok(Tier::Realtime) => {
                    kept += 1;
                    continue;
                }
                Ok(tier) => format!("tier {tier}"),
                Err(refusal) => shown(refusal.missing().iter().map(|s| s.to_string()).collect()),
            };
            let Some(conn) = self.clients.get_mut(key) else {
                continue;
            };
            let who = user.as_deref().unwrap_or("anonymous");
            let p = conn.dialect();
            if conn.end_stream(Rc::from(REAUTH_REVOKED)) {
                log::info!(
                    "{}: stream ended (reauth: revoked): user {who}: not entitled: {missing}",
                    conn.describe()
                );
            } else if conn.waiting().is_some() {
                // A parked long poll: answered as a new one would be (admit logs why).
                let who = Identity {
                    user,
                    claims,
                    exp: None,
                };
                let Err(answer) = self.admit(key, p, &who, &Choice::Named(symbols)) else {
                    continue;
                };
                if let Some(conn) = self.clients.get_mut(key) {
                    conn.start_response(answer);
                }
            } else {
                // A long poll writing its answer already: it ends with it.
                continue;
            }
            ended += 1;
            self.feed.unsubscribe(key);
            self.rates.remove(key);
            self.stream_users.remove(&key);
            self.stream_claims.remove(&key);
            self.flush(key);
        }
        (ended, kept)
    }
}
