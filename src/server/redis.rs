//! The feed shared through Redis (`--redis`): two outbound links in the same loop, one for
//! commands (loading the feed, seeding it, publishing) and one that reads the stream of
//! updates (`XREAD BLOCK`). Every update, from a publisher or the random walk, goes to Redis
//! first and reaches this instance's clients, as every other instance's, from the stream,
//! with the id Redis gave it. While Redis is away, clients keep their streams and the last
//! known prices, and publishes are answered 503.

use std::time::{Duration, Instant, SystemTime};

use mio::event::Event as IoEvent;
use mio::{Interest, Token};

use super::Server;
use crate::config::ListenAddr;
use crate::metrics::RedisGauges;
use crate::net::Socket;
use crate::price;
use crate::redis_feed::{self, Entry, Keys, Loaded, SeedIds};
use crate::redis_link::{Link, LinkError};
use crate::resp::Frame;
use crate::response;
use crate::symbol::Symbol;
use crate::universe::SymbolId;

pub(super) const COMMANDS_TOKEN: Token = Token(usize::MAX - 16);
pub(super) const TAIL_TOKEN: Token = Token(usize::MAX - 17);

/// A publish not answered by Redis in this long is answered 503 (and the link, hung, is
/// dropped and made again).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// How much earlier than tickerd's own deadline Redis refuses a publish that reaches it late.
const DEADLINE_MARGIN: Duration = Duration::from_millis(250);
/// Loading a large universe takes longer than a publish.
const LOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one `XREAD BLOCK` waits for an entry; no answer in this plus a margin is a
/// Redis that hangs.
const BLOCK_MS: u64 = 1000;
const READ_TIMEOUT: Duration = Duration::from_millis(BLOCK_MS + 1500);
const READ_COUNT: usize = 256;
/// How long a stream resuming from an id ahead of this instance waits for it.
pub(super) const AHEAD_HOLD: Duration = Duration::from_secs(1);
/// What 503 answers tell publishers to wait, in seconds.
const RETRY_AFTER: &str = "2";

/// What a command's reply answers.
pub(super) enum Command {
    Load,
    Seed,
    Publish { key: usize, serial: u64 },
    Walk,
    Merge,
}

/// Where this instance is with the feed in Redis.
enum Session {
    /// Waiting for both links.
    Connecting,
    Loading,
    Seeding,
    /// Every update up to id `applied` is applied; the stream is read after `position`.
    Loaded {
        applied: u64,
        position: String,
    },
}

pub(super) struct Redis {
    addr: ListenAddr,
    keys: Keys,
    maxlen: u64,
    commands: Link<Socket, Command>,
    tail: Link<Socket, ()>,
    session: Session,
    /// Loaded at least once: the universe's ids are this feed's own.
    ever_loaded: bool,
    /// Since when Redis has been away (for the log line when it is back).
    down_since: Option<Instant>,
    /// This outage has had its warning (one per outage, not one per retry).
    outage_logged: bool,
    /// Times the feed was loaded again after Redis was away.
    reconnects: u64,
    reloads: u64,
    unknown_symbols: u64,
    unknown_logged: bool,
    /// Redis's clock minus ours, in ms, as of the last load: publishes carry their deadline
    /// in Redis's clock.
    clock_offset_ms: Option<i64>,
}

impl Redis {
    pub(super) fn new(addr: ListenAddr, prefix: &str, maxlen: u64, now: Instant) -> Redis {
        Redis {
            addr,
            keys: Keys::new(prefix),
            maxlen,
            commands: Link::new(now),
            tail: Link::new(now),
            session: Session::Connecting,
            ever_loaded: false,
            down_since: Some(now),
            outage_logged: false,
            reconnects: 0,
            reloads: 0,
            unknown_symbols: 0,
            unknown_logged: false,
            clock_offset_ms: None,
        }
    }

    /// A publish's deadline in Redis's clock (0: unknown, none): a margin before tickerd
    /// gives up on it, so that Redis refuses it rather than apply it as tickerd answers 503.
    /// (The offset errs early: Redis's clock was read before the load's reply arrived.)
    fn deadline_ms(&self, timeout: Duration) -> u64 {
        let Some(offset) = self.clock_offset_ms else {
            return 0;
        };
        let margin = DEADLINE_MARGIN.as_millis() as i64;
        (wall_ms() as i64 + offset + timeout.as_millis() as i64 - margin).max(1) as u64
    }

    /// The universe's ids are this feed's (it was loaded at least once).
    pub(super) fn loaded(&self) -> bool {
        self.ever_loaded
    }

    /// After a live upgrade from a binary that had loaded the feed: its ids are the feed's.
    pub(super) fn set_loaded_before(&mut self) {
        self.ever_loaded = true;
    }

    /// The feed is loaded and both links are up: publishes are taken.
    pub(super) fn is_up(&self) -> bool {
        matches!(self.session, Session::Loaded { .. })
    }

    pub(super) fn gauges(&self) -> RedisGauges {
        RedisGauges {
            up: self.is_up(),
            reconnects: self.reconnects,
            reloads: self.reloads,
            unknown_symbols: self.unknown_symbols,
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        [self.commands.next_deadline(), self.tail.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn link_connecting(&self, token: Token) -> bool {
        match token {
            COMMANDS_TOKEN => self.commands.is_connecting(),
            _ => self.tail.is_connecting(),
        }
    }

    fn socket(&mut self, token: Token) -> Option<&mut Socket> {
        match token {
            COMMANDS_TOKEN => self.commands.socket(),
            _ => self.tail.socket(),
        }
    }
}

impl Server {
    fn redis(&mut self) -> &mut Redis {
        self.redis.as_mut().expect("only with --redis")
    }

    /// Connects the links whose backoff is over; fails them when Redis is overdue.
    pub(super) fn redis_timers(&mut self, now: Instant) {
        let Some(redis) = &mut self.redis else { return };
        if redis.commands.overdue(now) || redis.tail.overdue(now) {
            return self.redis_failed(now, "no answer in time");
        }
        for token in [COMMANDS_TOKEN, TAIL_TOKEN] {
            let Some(redis) = &mut self.redis else { return };
            let due = match token {
                COMMANDS_TOKEN => redis.commands.may_connect(now),
                _ => redis.tail.may_connect(now),
            };
            if !due {
                continue;
            }
            let registry = self.poll.registry();
            let started = Socket::connect(&redis.addr).and_then(|mut socket| {
                let interest = Interest::READABLE | Interest::WRITABLE;
                registry.register(&mut socket, token, interest)?;
                Ok(socket)
            });
            let redis = self.redis();
            match started {
                Ok(socket) => match token {
                    COMMANDS_TOKEN => redis.commands.connecting(socket, now),
                    _ => redis.tail.connecting(socket, now),
                },
                Err(e) => return self.redis_failed(now, &format!("connect: {e}")),
            }
        }
    }

    /// A readiness event on one of the links.
    pub(super) fn on_redis_event(&mut self, token: Token, event: &IoEvent) {
        let now = Instant::now();
        let redis = self.redis();
        if redis.link_connecting(token) {
            match redis.socket(token).and_then(|s| s.connect_result()) {
                None => return, // still in progress: a spurious wake-up
                Some(Err(e)) => return self.redis_failed(now, &format!("connect: {e}")),
                Some(Ok(())) => {
                    match token {
                        COMMANDS_TOKEN => redis.commands.connected(),
                        _ => redis.tail.connected(),
                    }
                    // (Only after an outage: the command link alone comes back when Redis
                    // closed it idle, and the feed is still loaded.)
                    if redis.commands.is_up()
                        && redis.tail.is_up()
                        && matches!(redis.session, Session::Connecting)
                    {
                        self.redis_load(now);
                    }
                }
            }
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            let redis = self.redis.as_mut().expect("only with --redis");
            if token == COMMANDS_TOKEN {
                match redis.commands.read(&mut self.scratch) {
                    Ok(replies) => {
                        for (command, frame) in replies {
                            self.on_redis_reply(command, &frame, now);
                        }
                    }
                    // Redis closes idle clients when its `timeout` is set: no outage, the
                    // command link just comes back.
                    Err(LinkError::Closed) if redis.commands.waiting() == 0 && redis.is_up() => {
                        log::debug!(
                            "redis {}: the command link was closed idle; connecting again",
                            redis.addr
                        );
                        redis.commands.reconnect_now(now);
                        return;
                    }
                    Err(e) => return self.redis_failed(now, &e.to_string()),
                }
            } else {
                match redis.tail.read(&mut self.scratch) {
                    Ok(replies) => {
                        for ((), frame) in replies {
                            self.on_redis_entries(&frame, now);
                        }
                    }
                    Err(e) => return self.redis_failed(now, &e.to_string()),
                }
            }
        }
        self.redis_flush(now);
    }

    /// Writes what the links have queued.
    fn redis_flush(&mut self, now: Instant) {
        let Some(redis) = &mut self.redis else { return };
        if let Err(e) = redis.commands.flush().and_then(|()| redis.tail.flush()) {
            self.redis_failed(now, &e.to_string());
        }
    }

    /// Redis is away (a link failed, or it did not answer in time): both links go, every
    /// publish waiting for it is answered 503, and the links are made again after a backoff.
    /// Clients keep their streams and the prices they have.
    pub(super) fn redis_failed(&mut self, now: Instant, why: &str) {
        let redis = self.redis.as_mut().expect("only with --redis");
        let pending = redis.commands.fail(now, &mut self.rng);
        redis.tail.fail(now, &mut self.rng);
        redis.session = Session::Connecting;
        let retry = redis.commands.retry_in(now).unwrap_or_default();
        if !redis.outage_logged {
            redis.outage_logged = true;
            log::warn!(
                "redis {}: {why}: streams go on with the last known prices, publishes are answered 503 until it is back; retrying in {retry:?}, backing off to 10 s",
                redis.addr
            );
        } else {
            log::debug!("redis {}: {why}; retrying in {retry:?}", redis.addr);
        }
        redis.down_since.get_or_insert(now);
        for command in pending {
            if let Command::Publish { key, serial } = command {
                self.answer_publish(key, serial, None);
            }
        }
    }

    /// Both links are up: load the feed, raising the counter to this instance's last id so
    /// that ids never go backwards, even after Redis lost everything.
    fn redis_load(&mut self, now: Instant) {
        let floor = if self.redis().ever_loaded {
            self.feed.universe.last_id()
        } else {
            0
        };
        let redis = self.redis();
        let mut command = Vec::new();
        redis_feed::load(&mut command, &redis.keys, floor);
        redis.session = Session::Loading;
        let _ = redis
            .commands
            .send(&command, Command::Load, now + LOAD_TIMEOUT);
    }

    /// The feed in Redis is empty: seed it with this instance's prices. An instance that had
    /// loaded it before keeps its ids (Redis lost them; clients have them); a new one takes
    /// fresh ids above the wall clock, so that they stay above any earlier run's.
    fn redis_seed(&mut self, now: Instant) {
        // The counter starts again above the wall clock (in µs) either way: the instance that
        // reseeds may be behind others, whose clients have ids above its own.
        let wall = price::first_event_id(SystemTime::now());
        let (floor, ids) = if self.redis().ever_loaded {
            (self.feed.universe.last_id().max(wall), SeedIds::Keep)
        } else {
            (wall, SeedIds::Fresh)
        };
        let u = &self.feed.universe;
        let prices = (0..u.len() as SymbolId).map(|s| (u.symbol(s), u.cents(s), u.updated_at(s)));
        let redis = self.redis.as_mut().expect("only with --redis");
        let mut command = Vec::new();
        redis_feed::seed(&mut command, &redis.keys, redis.maxlen, floor, ids, prices);
        redis.session = Session::Seeding;
        let _ = redis
            .commands
            .send(&command, Command::Seed, now + LOAD_TIMEOUT);
    }

    fn on_redis_reply(&mut self, command: Command, frame: &Frame, now: Instant) {
        match command {
            Command::Load => match redis_feed::loaded(frame) {
                Ok(loaded) if loaded.prices.is_empty() => self.redis_seed(now),
                Ok(loaded) => self.redis_loaded(loaded, now),
                Err(e) => self.redis_failed(now, &e.0),
            },
            Command::Seed => match redis_feed::seeded(frame) {
                Ok(seeded) => {
                    if seeded {
                        log::info!(
                            "redis: the feed was empty: seeded it with this instance's {} symbols",
                            self.feed.universe.len()
                        );
                    }
                    self.redis_load(now);
                }
                Err(e) => self.redis_failed(now, &e.0),
            },
            Command::Publish { key, serial } => {
                let id = redis_feed::published(frame)
                    .map_err(|e| log::warn!("redis: {e}"))
                    .ok();
                self.answer_publish(key, serial, id);
            }
            Command::Walk => {
                if let Err(e) = redis_feed::published(frame) {
                    log::warn!("redis: random walk: {e}");
                }
            }
            Command::Merge => match redis_feed::published(frame) {
                Ok(n) => log::info!("redis: put back {n} newer prices Redis had lost"),
                Err(e) => log::warn!("redis: putting back newer prices: {e}"),
            },
        }
    }

    /// The feed is loaded: every symbol whose last update in Redis is newer than ours takes
    /// it (clients get the latest value of each, never a replay), then the stream is read
    /// from where the load saw it.
    fn redis_loaded(&mut self, loaded: Loaded, now: Instant) {
        // Symbols this instance holds newer than the feed does: Redis lost them (reseeded
        // by an instance that was behind, or restored from an older snapshot). They go back,
        // each under a new id, unless updated meanwhile.
        let u = &self.feed.universe;
        let newer: Vec<(Symbol, u64, u64)> = loaded
            .prices
            .iter()
            .filter_map(|p| {
                let s = u.find(&Symbol::parse(p.symbol.as_bytes()).ok()?)?;
                (u.updated_at(s) > p.id).then(|| (u.symbol(s), u.cents(s), p.id))
            })
            .collect();
        let updates: Vec<(SymbolId, u64, u64)> = loaded
            .prices
            .iter()
            .filter_map(|p| Some((self.known(&p.symbol)?, p.cents, p.id)))
            .collect();
        let taken = self.feed.apply_at(updates.into_iter());
        self.feed.universe.reach(loaded.counter);
        let redis = self.redis.as_mut().expect("only with --redis");
        redis.clock_offset_ms = loaded.time_ms.map(|t| t as i64 - wall_ms() as i64);
        let first = !redis.ever_loaded;
        redis.ever_loaded = true;
        redis.outage_logged = false;
        if !first && redis.down_since.is_some() {
            redis.reconnects += 1;
        }
        match redis.down_since.take() {
            Some(_) if first => log::info!(
                "redis {}: feed loaded ({} symbols, {taken} newer than ours, last id {})",
                redis.addr,
                loaded.prices.len(),
                loaded.counter
            ),
            Some(since) => log::info!(
                "redis {}: back after {:?}: {taken} symbols moved meanwhile, last id {}",
                redis.addr,
                since.elapsed(),
                loaded.counter
            ),
            None => log::info!("redis: reloaded: {taken} symbols newer than ours"),
        }
        redis.session = Session::Loaded {
            applied: loaded.counter,
            position: loaded.position,
        };
        if !newer.is_empty() {
            let mut command = Vec::new();
            redis_feed::merge(&mut command, &redis.keys, redis.maxlen, &newer);
            let _ = redis
                .commands
                .send(&command, Command::Merge, now + PUBLISH_TIMEOUT);
            self.redis_flush(now);
        }
        self.redis_read(now);
    }

    /// Asks for the stream's next entries.
    fn redis_read(&mut self, now: Instant) {
        let redis = self.redis();
        let Session::Loaded { position, .. } = &redis.session else {
            return;
        };
        let mut command = Vec::new();
        redis_feed::read_after(&mut command, &redis.keys, position, BLOCK_MS, READ_COUNT);
        let _ = redis.tail.send(&command, (), now + READ_TIMEOUT);
    }

    /// Entries from the stream, in order: each applied with the ids Redis gave, unless
    /// already had; one that skips ids (entries trimmed while this instance was behind)
    /// reloads the feed instead.
    fn on_redis_entries(&mut self, frame: &Frame, now: Instant) {
        let entries = match redis_feed::entries(frame) {
            Ok(entries) => entries,
            Err(e) => return self.redis_failed(now, &e.0),
        };
        for entry in entries {
            let Session::Loaded { applied, .. } = self.redis().session else {
                return;
            };
            let last = entry.first + entry.updates.len() as u64 - 1;
            if last <= applied {
                self.redis_advance(entry.position, applied);
                continue;
            }
            if entry.first != applied + 1 {
                let redis = self.redis();
                redis.reloads += 1;
                log::info!(
                    "redis: the stream skips from id {applied} to {} (trimmed while this instance was behind): reloading",
                    entry.first
                );
                return self.redis_load(now);
            }
            self.redis_apply(&entry);
            self.redis_advance(entry.position, last);
        }
        self.redis_read(now);
    }

    fn redis_apply(&mut self, entry: &Entry) {
        let updates: Vec<(SymbolId, u64, u64)> = entry
            .updates
            .iter()
            .zip(entry.first..)
            .filter_map(|((symbol, cents), id)| Some((self.known(symbol)?, *cents, id)))
            .collect();
        self.feed.apply_at(updates.into_iter());
        self.feed
            .universe
            .reach(entry.first + entry.updates.len() as u64 - 1);
    }

    fn redis_advance(&mut self, to: String, applied: u64) {
        self.redis().session = Session::Loaded {
            applied,
            position: to,
        };
    }

    /// A symbol of the feed, if this instance carries it: one it does not is counted, and
    /// logged once (instances should share one universe).
    fn known(&mut self, name: &str) -> Option<SymbolId> {
        let found = Symbol::parse(name.as_bytes())
            .ok()
            .and_then(|s| self.feed.universe.find(&s));
        if found.is_none() {
            let redis = self.redis();
            redis.unknown_symbols += 1;
            if !redis.unknown_logged {
                redis.unknown_logged = true;
                log::warn!(
                    "redis: an update for {:?}, which this instance does not carry (is its universe the other instances'?); counted in tickerd_redis_unknown_symbols_total, logged once",
                    name.chars().take(40).collect::<String>()
                );
            }
        }
        found
    }

    /// A publish (checked against the universe) goes to Redis; connection `key` waits for
    /// the answer. False: Redis is away, answer 503 now.
    pub(super) fn redis_publish(
        &mut self,
        key: usize,
        serial: u64,
        batch: &[(SymbolId, u64)],
    ) -> bool {
        self.redis_send(batch, Command::Publish { key, serial })
    }

    /// A random-walk tick goes to Redis like a publish (skipped while Redis is away).
    pub(super) fn redis_walk(&mut self) {
        let moves = self.feed.universe.walk(&mut self.rng);
        self.redis_send(&moves, Command::Walk);
    }

    /// Updates to Redis as one publish, whose reply answers `command`. The ids come from
    /// Redis: the commands link is all it needs (publishing goes on while the feed reloads).
    fn redis_send(&mut self, updates: &[(SymbolId, u64)], command: Command) -> bool {
        let u = &self.feed.universe;
        let named: Vec<(Symbol, u64)> = updates.iter().map(|&(s, c)| (u.symbol(s), c)).collect();
        let redis = self.redis.as_mut().expect("only with --redis");
        if !redis.commands.is_up() || matches!(redis.session, Session::Connecting) {
            return false;
        }
        let mut bytes = Vec::new();
        let deadline = redis.deadline_ms(PUBLISH_TIMEOUT);
        redis_feed::publish(&mut bytes, &redis.keys, redis.maxlen, deadline, &named);
        let now = Instant::now();
        if redis
            .commands
            .send(&bytes, command, now + PUBLISH_TIMEOUT)
            .is_err()
        {
            return false;
        }
        self.redis_flush(now);
        true
    }

    /// Answers a publish that waited for Redis: 200 with the id of its last update, or 503.
    fn answer_publish(&mut self, key: usize, serial: u64, id: Option<u64>) {
        let Some(conn) = self.clients.get_serial(key, serial) else {
            return; // the publisher left
        };
        let p = conn.protocol;
        let answer = match id {
            Some(id) => {
                self.counters.published += 1;
                self.counters.ticks += 1;
                response::text(p, 200, &[], &format!("{id}\n"))
            }
            None => {
                self.counters.publish_refused += 1;
                response::text(
                    p,
                    503,
                    &[("Retry-After", RETRY_AFTER)],
                    "Redis is unavailable: try again\n",
                )
            }
        };
        conn.start_response(answer.into());
        self.flush(key);
    }
}

/// The wall clock in ms since the epoch.
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
