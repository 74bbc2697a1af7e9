//! The core: everything that decides what each connection receives, with no socket or clock
//! of its own (after quinn-proto's `Connection`). It owns the clients, the feed, the
//! subscriptions, the deadline queues and the link to Redis; the loop in `server` hands it
//! new connections, readiness and the time, and asks it when to wake next. What it needs of
//! the operating system (registering interest, connecting to Redis) goes through [`Io`], so
//! unit tests and the fuzz target drive the same core over fake sockets, and every deadline
//! is tested without sleeping.
//!
//! Carrying out requests is in `requests`, timers in `timers`, the Redis side in `redis`.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod access;
mod redis;
mod requests;
mod timers;
mod upgrade;

#[cfg(test)]
mod tests;

use self::redis::Redis;
use self::requests::Shared;
use self::timers::Timers;
use crate::answers::Answer;
use crate::clients::Clients;
use crate::config::Config;
use crate::conn::{CloseReason, Connection, Flow, Input, RequestRules, Written};
use crate::feed::Feed;
use crate::io::{Io, Readiness, Socket};
use crate::metrics::Counters;
use crate::protocol::Protocol;
use crate::rates::Rates;
use crate::rights::{Entitlements, TokenClaims};
use crate::universe::{Universe, DEFAULT_SYMBOL};
use crate::{http, route, scgi, universe};

/// The largest HTTP request head taken.
const MAX_HTTP_HEAD: usize = 8 * 1024;
/// Refusals at `--max-clients` are logged at most this often, each line with the count.
const FULL_LOG_EVERY: Duration = Duration::from_secs(10);
/// Pipelined requests a kept-alive connection may have answered in one go; the rest wait
/// for the end of the turn, so that a peer that pipelines as fast as it reads cannot hold
/// the loop.
const REQUESTS_AT_ONCE: usize = 16;

/// Refusals at `--max-clients`: when the last one was logged, and how many came after it.
/// A flood, or a server that stays full while clients churn, must not fill the log.
#[derive(Default)]
struct FullLog {
    logged_at: Option<Instant>,
    unlogged: u64,
}

pub struct Core<I: Io> {
    io: I,
    clients: Clients<I::Socket>,
    max_clients: usize,
    feed: Feed,
    rng: StdRng,
    rules: RequestRules,
    shared: Shared,
    counters: Counters,
    timers: Timers,
    next_serial: u64,
    full_log: FullLog,
    /// `--max-hz`, as the least time between two rounds of a stream.
    min_gap: Option<Duration>,
    /// The streams' `max_hz`, by connection key.
    rates: Rates,
    /// `--entitlements`: who may see what, consulted once when a stream or long poll starts
    /// and for `/symbols`. `None`: everyone sees everything, and nothing is checked.
    entitlements: Option<Entitlements>,
    /// With `--entitlements`: who opened each stream and long poll (its trusted user, or
    /// `None`), by connection key, so that a reload can tell which no longer may see their
    /// symbols. Nothing else reads it; the fan-out never does.
    stream_users: HashMap<usize, Option<String>>,
    /// The claims of the token each stream and long poll opened with, when it had one, and
    /// its `exp` (unix seconds), by connection key: a reload judges the stream with them as
    /// its start did; a live upgrade carries them.
    stream_claims: HashMap<usize, (TokenClaims, u64)>,
    /// `--jwt-jwks`: the keys a stream's token is verified with; `None`: tokens are not
    /// looked at.
    jwt_keys: Option<std::sync::Arc<crate::jwt::KeySet>>,
    /// `--jwt-issuer`, `--jwt-audience`, `--jwt-leeway-s`.
    jwt_checks: crate::jwt::Checks,
    /// `--redis`: the feed is shared through Redis.
    redis: Option<Redis<I::Socket>>,
    /// The time the loop last handed in.
    now: Instant,
    /// The wall clock when the core was made, and the time then: a `time` field the walk
    /// sets is that plus the time since, so the core reads no clock of its own.
    wall_at_start: (Instant, std::time::SystemTime),
    /// One read buffer for every socket: data is copied out of it at once.
    scratch: Box<[u8]>,
    /// Reused list of connections to settle after a heartbeat round.
    settle_later: Vec<(usize, Flow)>,
    /// Reused list of the clients a fan-out writes to.
    woken: Vec<usize>,
}

impl<I: Io> Core<I> {
    /// A core serving `config`'s universe, holding at most `max_clients` connections.
    pub fn new(config: &Config, io: I, max_clients: usize, mut rng: StdRng, now: Instant) -> Self {
        // With Redis the ids are the feed's, loaded at once: until then the universe's are
        // provisional, below any of the feed's.
        let wall = std::time::SystemTime::now();
        let first_id = match config.redis {
            Some(_) => 1,
            None => universe::first_event_id(wall),
        };
        let max_body = config.max_publish_bytes;
        let redis = config.redis.clone().map(|addr| {
            let rng = StdRng::seed_from_u64(rng.gen());
            Redis::new(addr, &config.redis_key, config.redis_maxlen, rng, now)
        });
        Core {
            io,
            clients: Clients::with_capacity(max_clients.min(1 << 16)),
            max_clients,
            feed: Feed::new(Universe::new(
                config.schema.clone(),
                &config.universe,
                first_id,
            )),
            rng,
            rules: RequestRules {
                scgi: scgi::Limits {
                    max_header: config.max_scgi_header,
                    max_body,
                },
                http: http::Limits {
                    max_head: MAX_HTTP_HEAD,
                    max_body,
                },
                route: route::Rules {
                    publish_token: config.publish_token.clone(),
                    max_symbols: config.max_symbols_per_client,
                    trust_remote_user: config.trust_remote_user,
                    tokens: config.jwt_keys.is_some(),
                    auth_cookie: config.auth_cookie.clone(),
                },
            },
            shared: Shared::new(config.retry_ms),
            counters: Counters::default(),
            timers: Timers::new(config, now),
            next_serial: 0,
            full_log: FullLog::default(),
            min_gap: config.max_hz,
            rates: Rates::default(),
            // With keys and no file, rights come from tokens alone: anonymous has none.
            entitlements: config
                .entitlements
                .clone()
                .or_else(|| config.jwt_keys.as_ref().map(|_| Entitlements::default())),
            stream_users: HashMap::new(),
            stream_claims: HashMap::new(),
            jwt_keys: config.jwt_keys.clone(),
            jwt_checks: config.jwt_checks.clone(),
            redis,
            now,
            wall_at_start: (now, wall),
            scratch: vec![0; 64 * 1024].into_boxed_slice(),
            settle_later: Vec::new(),
            woken: Vec::new(),
        }
    }

    /// The universe's size and default symbol, for the start-up log line.
    pub(crate) fn universe(&self) -> (usize, String) {
        let u = &self.feed.universe;
        (u.len(), u.symbol(DEFAULT_SYMBOL).to_string())
    }

    /// The wall clock at the time the loop last handed in, in ms since the epoch.
    fn wall_ms(&self) -> i64 {
        let (at, wall) = self.wall_at_start;
        let now = wall + self.now.saturating_duration_since(at);
        now.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    pub(crate) fn max_clients(&self) -> usize {
        self.max_clients
    }

    /// Open connections.
    pub(crate) fn connections(&self) -> usize {
        self.clients.len()
    }

    /// The loop's counters (accepts, refusals at accept) are kept with the core's.
    pub(crate) fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// When the core must be called again at the latest ([`Core::advance`]).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let redis = self.redis.as_ref().and_then(Redis::next_deadline);
        [self.timers.next(self.feed.has_woken()), redis]
            .into_iter()
            .flatten()
            .min()
    }

    /// A connection accepted on a `protocol` listener: registered and waiting for its
    /// request, or, when `--max-clients` are open, answered 503 and closed.
    pub fn accept(
        &mut self,
        mut socket: I::Socket,
        protocol: Protocol,
        peer: Option<SocketAddr>,
        now: Instant,
    ) {
        self.now = now;
        let key = self.clients.vacant_key();
        if let Err(e) = self.io.register(&mut socket, key, false) {
            log::warn!("cannot register a new connection: {e}");
            return;
        }
        self.next_serial += 1;
        let mut conn = Connection::new(socket, protocol, self.next_serial, peer);
        if self.clients.len() >= self.max_clients {
            self.log_full(&conn);
            let answer = Answer::Full.render(protocol.into(), &mut self.counters);
            conn.start_response(answer.into());
            let key = self.clients.insert(conn);
            self.flush(key);
        } else {
            log::debug!("{}: accepted", conn.describe());
            let key = self.clients.insert(conn);
            self.timers.requests.start(now, key, self.next_serial);
        }
    }

    fn log_full(&mut self, conn: &Connection<I::Socket>) {
        let log = &mut self.full_log;
        log.unlogged += 1;
        if log
            .logged_at
            .is_none_or(|at| self.now.duration_since(at) >= FULL_LOG_EVERY)
        {
            log::warn!(
                "{}: refused (503): --max-clients {} reached; {} refused since the last such line (one every {FULL_LOG_EVERY:?} at most)",
                conn.describe(),
                self.max_clients,
                log.unlogged
            );
            log.logged_at = Some(self.now);
            log.unlogged = 0;
        }
        log::debug!("{}: refused (503): full", conn.describe());
    }

    /// A readiness event on connection `key` (a late one, for a connection already closed,
    /// is ignored).
    pub fn on_socket(&mut self, key: usize, readiness: Readiness, now: Instant) {
        self.now = now;
        if self.clients.get(key).is_none() {
            return;
        }
        // Input first, even on a hang-up: a request may have come with the close.
        if readiness.input && !self.on_input(key) {
            return;
        }
        if readiness.gone {
            // A read would not say so: after a FIN, read returns 0 before it reports the
            // reset.
            if let Some(conn) = self.clients.get_mut(key) {
                let reason = match conn.is_lingering() {
                    true => CloseReason::Done,
                    false => CloseReason::Hangup,
                };
                return self.close(key, reason);
            }
        }
        self.flush(key);
    }

    /// Fires the timers that are due at `now`, then writes to every client the updates
    /// since the last call concern: the loop calls it once per wake-up, after the events.
    pub fn advance(&mut self, now: Instant) {
        self.now = now;
        self.on_timers();
        self.fan_out();
    }

    /// Closes every connection (each close ends its stream for the front-end or browser).
    pub(crate) fn shut_down(&mut self) {
        log::info!("stopping: closing {} connections", self.clients.len());
        self.clients.drain().for_each(drop);
    }

    /// Reads input on connection `key` and carries out a request that is whole. False when
    /// that settled the connection (it closes).
    fn on_input(&mut self, key: usize) -> bool {
        let Some(conn) = self.clients.get_mut(key) else {
            return false;
        };
        let input = conn.on_readable(&mut self.scratch, &self.rules);
        self.take_input(key, input)
    }

    /// Carries out a request that is whole: the next request of a kept-alive connection,
    /// held already (pipelined). False when that settled the connection (it closes).
    fn take_held(&mut self, key: usize) -> bool {
        let Some(conn) = self.clients.get_mut(key) else {
            return false;
        };
        let input = conn.take_held(&mut self.scratch, &self.rules);
        self.take_input(key, input)
    }

    fn take_input(&mut self, key: usize, input: Input) -> bool {
        match input {
            Input::Flow(Flow::Open) => true,
            Input::Flow(flow) => {
                self.settle(key, flow);
                false
            }
            Input::Request(action) => {
                self.carry_out(key, action);
                true
            }
        }
    }

    /// Writes what a connection has pending and settles the outcome. A stream whose write
    /// completes gets what changed meanwhile in one more write (with `--coalesce-ms`, at the
    /// next fan-out instead); a kept-alive connection whose answer is out takes its next
    /// request at once when it holds it whole (pipelined; a few in a row at most). It
    /// reads nothing more: a request sent after the answer comes with a readiness event, in
    /// a wake-up of its own, so that a publisher's publishes sent one by one each get a
    /// fan-out of their own, as they did on a connection each.
    fn flush(&mut self, key: usize) {
        let mut answered = 0;
        loop {
            let Some(conn) = self.clients.get_mut(key) else {
                return;
            };
            match conn.flush(&mut self.counters.written) {
                Flow::Open => {}
                Flow::Next if answered < REQUESTS_AT_ONCE => {
                    answered += 1;
                    self.next_request(key);
                    if !self.take_held(key) {
                        return;
                    }
                    continue;
                }
                flow => return self.settle(key, flow),
            }
            let Some(waiter) = conn.waiting() else { break };
            if self.timers.coalesce.is_some() {
                if self.feed.has_due(key, waiter.last_id) {
                    self.feed.wake_client(key);
                }
                break;
            }
            if !self.send_due(key, None) {
                break;
            }
        }
        self.settle(key, Flow::Open);
    }

    /// A parked client starts writing what is due to it (`Feed::delivery`), after `head`
    /// when given (the start of a stream: the snapshot, which its `max_hz` does not count).
    /// Returns whether a write started: false when nothing is due, the client is not parked,
    /// or its `max_hz` holds it back (it is woken when its next round may go).
    fn send_due(&mut self, key: usize, head: Option<Rc<[u8]>>) -> bool {
        let Some(conn) = self.clients.get_mut(key) else {
            return false;
        };
        let Some(waiter) = conn.waiting() else {
            return false;
        };
        let snapshot = head.is_some();
        if let Some(rate) = self.rates.get(key) {
            if let Some(at) = rate.not_before.filter(|&at| at > self.now) {
                if !rate.scheduled && self.feed.has_due(key, waiter.last_id) {
                    if let Some(rate) = self.rates.get_mut(key) {
                        rate.scheduled = true;
                    }
                    let serial = conn.serial();
                    self.timers.throttled.push(Reverse((at, key, serial)));
                }
                return false;
            }
        }
        match self.feed.delivery(key, waiter, conn.protocol(), head) {
            Some(d) => {
                self.counters.event_bytes += d.event_bytes;
                conn.deliver(d.out, d.last_id, d.events, &mut self.counters.written);
                if let (false, Some(rate)) = (snapshot, self.rates.get_mut(key)) {
                    rate.not_before = Some(self.now + rate.gap);
                }
                true
            }
            None => false,
        }
    }

    /// Acts on a handler's outcome: close, start lingering, go on to the next request, or
    /// fix the interest.
    fn settle(&mut self, key: usize, flow: Flow) {
        let Some(conn) = self.clients.get_mut(key) else {
            return;
        };
        match flow {
            Flow::Close(reason) => return self.close(key, reason),
            Flow::Linger => self.timers.lingering.start(self.now, key, conn.serial()),
            Flow::Next => {
                // What it holds is taken at the end of the turn (`REQUESTS_AT_ONCE`).
                self.next_request(key);
                self.timers
                    .next_request
                    .start(self.now, key, self.next_serial);
            }
            Flow::Open => {}
        }
        let Some(conn) = self.clients.get_mut(key) else {
            return;
        };
        // Interest follows state: WRITABLE only while output waits for the socket to drain,
        // so a client that keeps up costs no epoll_ctl call per tick.
        if let Some(writable) = conn.interest_change() {
            match self.io.reregister(conn.socket_mut(), key, writable) {
                Ok(()) => conn.set_registered_writable(writable),
                Err(_) => self.close(key, CloseReason::IoError),
            }
        }
    }

    /// Connection `key`, kept alive, waits for its next request: a new serial names it, so
    /// that nothing of the last one (its deadline) touches it, and its deadline starts.
    fn next_request(&mut self, key: usize) {
        if let Some(conn) = self.clients.get_mut(key) {
            self.next_serial += 1;
            conn.renumber(self.next_serial);
            log::debug!("{}: kept alive", conn.describe());
            self.timers.requests.start(self.now, key, self.next_serial);
        }
    }

    fn close(&mut self, key: usize, reason: CloseReason) {
        // Before the key can be reused: its subscription and rate go with it.
        self.feed.unsubscribe(key);
        self.rates.remove(key);
        self.stream_users.remove(&key);
        self.stream_claims.remove(&key);
        if let Some(conn) = self.clients.remove(key) {
            self.counters.closed(reason);
            log::debug!("{}: closed ({})", conn.describe(), reason.label());
            // Dropping the socket closes it, which also takes it out of the poller.
        }
    }

    /// The clients with updates since the last fan-out each start writing what is due to
    /// them, in one write each. Updates that arrived during a long fan-out fold into the
    /// next one: a client never holds more than its latest value per symbol.
    fn fan_out(&mut self) {
        if !self.feed.has_woken() {
            return;
        }
        if let Some((at, period)) = &mut self.timers.coalesce {
            if self.now < *at {
                return;
            }
            *at = self.now + *period;
        }
        let mut woken = std::mem::take(&mut self.woken);
        self.feed.take_woken(&mut woken);
        for &key in &woken {
            if self.send_due(key, None) {
                self.flush(key);
            }
        }
        self.woken = woken;
    }

    /// A heartbeat round: a comment to every parked stream that had no bytes since the last.
    fn heartbeat(&mut self) {
        // Updates not yet fanned out go first: a heartbeat must not hold up a parked stream.
        self.fan_out();
        let beat = &self.shared.heartbeat;
        visit_all(
            &mut self.clients,
            &mut self.counters.written,
            &mut self.settle_later,
            |conn, written| conn.on_heartbeat(beat, written),
        );
        let mut pending = std::mem::take(&mut self.settle_later);
        for (key, flow) in pending.drain(..) {
            self.settle(key, flow);
        }
        self.settle_later = pending;
    }
}

/// Runs `visit` on every connection and notes, for settling after, those that must close,
/// linger, or change interest. (A free function: `visit` borrows other parts of the core.)
fn visit_all<S: Socket>(
    clients: &mut Clients<S>,
    written: &mut Written,
    settle_later: &mut Vec<(usize, Flow)>,
    mut visit: impl FnMut(&mut Connection<S>, &mut Written) -> Flow,
) {
    for (key, conn) in clients.iter_mut() {
        let flow = visit(conn, written);
        if flow != Flow::Open || conn.interest_change().is_some() {
            settle_later.push((key, flow));
        }
    }
}
