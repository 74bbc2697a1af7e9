//! The feed shared through Redis (`--redis`): two outbound links in the same loop, one for
//! commands (loading the feed, seeding it, publishing) and one that reads the stream of
//! updates (`XREAD BLOCK`). Every update, from a publisher or the random walk, goes to Redis
//! first and reaches this instance's clients, as every other instance's, from the stream,
//! with the id Redis gave it. While Redis is away, clients keep their streams and the last
//! known prices, and publishes are answered 503.
//!
//! One concern a module: [`wire`] (RESP), [`link`] (one connection as a state machine),
//! [`scripts`] (the keys, the Lua scripts and what their replies mean), [`session`] (where
//! this instance is with the feed, without sockets). This driver joins them: it connects
//! the links through [`Io`], hands what they read to the session, and sends what the
//! session asks.

mod link;
pub mod replies;
pub mod scripts;
mod session;
pub mod wire;

use std::time::{Duration, Instant};

use rand::rngs::StdRng;

use self::link::{Link, LinkError};
pub(crate) use self::replies::Published;
use self::scripts::Keys;
use self::session::{Request, Session};
use self::wire::Frame;
use crate::config::ListenAddr;
use crate::feed::Feed;
use crate::io::{Io, Readiness, Socket};
use crate::metrics::RedisGauges;
use crate::symbol::Symbol;
use crate::universe::Update;

/// The links' tokens, below the loop's own (signals, listeners).
pub(crate) const COMMANDS_TOKEN: usize = usize::MAX - 16;
pub(crate) const TAIL_TOKEN: usize = usize::MAX - 17;

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

/// Who a publish is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Publisher {
    /// A client's `POST /publish`, on connection (key, serial), waiting for the answer.
    Client { key: usize, serial: u64 },
    /// A tick of the random walk.
    Walk,
}

/// What a reply on the commands link answers.
enum Command {
    Load,
    Seed,
    Publish(Publisher),
    Merge,
}

/// A client's publish that Redis answered (what it did) or never will (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answered {
    pub key: usize,
    pub serial: u64,
    pub published: Option<Published>,
}

pub(crate) struct Redis<S> {
    addr: ListenAddr,
    keys: Keys,
    maxlen: u64,
    commands: Link<S, Command>,
    tail: Link<S, ()>,
    session: Session,
    /// Jitters the links' backoff.
    rng: StdRng,
    /// Publishes answered (or failed) since the core last took them.
    answered: Vec<Answered>,
    /// The links' read buffer (replies are copied out of it at once).
    scratch: Box<[u8]>,
}

impl<S: Socket> Redis<S> {
    pub fn new(addr: ListenAddr, prefix: &str, maxlen: u64, rng: StdRng, now: Instant) -> Self {
        Redis {
            session: Session::new(addr.to_string(), false, now),
            addr,
            keys: Keys::new(prefix),
            maxlen,
            commands: Link::new(now),
            tail: Link::new(now),
            rng,
            answered: Vec::new(),
            scratch: vec![0; 64 * 1024].into_boxed_slice(),
        }
    }

    /// The clients' publishes Redis answered, or never will, since the last call.
    pub fn take_answered(&mut self) -> Vec<Answered> {
        std::mem::take(&mut self.answered)
    }

    /// Whether `token` is one of the links'.
    pub fn owns(token: usize) -> bool {
        token == COMMANDS_TOKEN || token == TAIL_TOKEN
    }

    /// The universe's ids are this feed's (it was loaded at least once).
    pub fn loaded(&self) -> bool {
        self.session.ever_loaded()
    }

    /// After a live upgrade from a binary that had loaded the feed: its ids are the feed's.
    pub fn set_loaded_before(&mut self, now: Instant) {
        self.session = Session::new(self.addr.to_string(), true, now);
    }

    pub fn gauges(&self) -> RedisGauges {
        let stats = self.session.stats();
        RedisGauges {
            up: self.session.is_up(),
            reconnects: stats.reconnects,
            reloads: stats.reloads,
            unknown_symbols: stats.unknown_symbols,
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        [self.commands.next_deadline(), self.tail.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Connects the links whose backoff is over; fails them when Redis is overdue.
    pub fn on_timers<I: Io<Socket = S>>(&mut self, io: &mut I, now: Instant) {
        if self.commands.overdue(now) || self.tail.overdue(now) {
            return self.failed(now, "no answer in time");
        }
        for token in [COMMANDS_TOKEN, TAIL_TOKEN] {
            let due = match token {
                COMMANDS_TOKEN => self.commands.may_connect(now),
                _ => self.tail.may_connect(now),
            };
            if !due {
                continue;
            }
            let started = io.connect(&self.addr).and_then(|mut socket| {
                io.register(&mut socket, token, true)?;
                Ok(socket)
            });
            match started {
                Ok(socket) if token == COMMANDS_TOKEN => self.commands.connecting(socket, now),
                Ok(socket) => self.tail.connecting(socket, now),
                Err(e) => return self.failed(now, &format!("connect: {e}")),
            }
        }
    }

    /// A readiness event on link `token`: a connect that completes, replies, a failure.
    pub fn on_event<I: Io<Socket = S>>(
        &mut self,
        token: usize,
        readiness: Readiness,
        io: &mut I,
        feed: &mut Feed,
        now: Instant,
    ) {
        let link_connecting = match token {
            COMMANDS_TOKEN => self.commands.is_connecting(),
            _ => self.tail.is_connecting(),
        };
        if link_connecting {
            let socket = match token {
                COMMANDS_TOKEN => self.commands.socket(),
                _ => self.tail.socket(),
            };
            match socket.and_then(|s| io.connect_result(s)) {
                None => return, // still in progress: a spurious wake-up
                Some(Err(e)) => return self.failed(now, &format!("connect: {e}")),
                Some(Ok(())) => {
                    match token {
                        COMMANDS_TOKEN => self.commands.connected(),
                        _ => self.tail.connected(),
                    }
                    if self.commands.is_up() && self.tail.is_up() {
                        if let Some(request) = self.session.links_up(feed) {
                            self.send(request, now);
                        }
                    }
                }
            }
        }
        if readiness.input {
            if token == COMMANDS_TOKEN {
                match self.commands.read(&mut self.scratch) {
                    Ok(replies) => {
                        for (command, frame) in replies {
                            self.on_reply(command, &frame, feed, now);
                        }
                    }
                    // Redis closes idle clients when its `timeout` is set: no outage, the
                    // command link just comes back.
                    Err(LinkError::Closed)
                        if self.commands.waiting() == 0 && self.session.is_up() =>
                    {
                        log::debug!(
                            "redis {}: the command link was closed idle; connecting again",
                            self.addr
                        );
                        self.commands.reconnect_now(now);
                        return;
                    }
                    Err(e) => return self.failed(now, &e.to_string()),
                }
            } else {
                match self.tail.read(&mut self.scratch) {
                    Ok(replies) => {
                        for ((), frame) in replies {
                            self.on_entries(&frame, feed, now);
                        }
                    }
                    Err(e) => return self.failed(now, &e.to_string()),
                }
            }
        }
        self.flush(now);
    }

    /// Writes what the links have queued.
    fn flush(&mut self, now: Instant) {
        if let Err(e) = self.commands.flush().and_then(|()| self.tail.flush()) {
            self.failed(now, &e.to_string());
        }
    }

    /// Redis is away (a link failed, or it did not answer in time): both links go, every
    /// publish waiting for it is answered 503, and the links are made again after a backoff.
    /// Clients keep their streams and the prices they have.
    fn failed(&mut self, now: Instant, why: &str) {
        let pending = self.commands.fail(now, &mut self.rng);
        self.tail.fail(now, &mut self.rng);
        let retry = self.commands.retry_in(now).unwrap_or_default();
        self.session.failed(why, retry, now);
        for command in pending {
            if let Command::Publish(Publisher::Client { key, serial }) = command {
                self.answered.push(Answered {
                    key,
                    serial,
                    published: None,
                });
            }
        }
    }

    fn on_reply(&mut self, command: Command, frame: &Frame, feed: &mut Feed, now: Instant) {
        match command {
            Command::Load => match replies::loaded(frame) {
                Ok(loaded) => {
                    let mut next = Vec::new();
                    self.session.loaded(loaded, feed, &mut next);
                    for request in next {
                        self.send(request, now);
                    }
                }
                Err(e) => self.failed(now, &e.0),
            },
            Command::Seed => match replies::seeded(frame) {
                Ok(seeded) => {
                    if let Some(request) = self.session.seeded(seeded, feed) {
                        self.send(request, now);
                    }
                }
                Err(e) => self.failed(now, &e.0),
            },
            Command::Publish(Publisher::Client { key, serial }) => {
                let published = replies::published(frame)
                    .map_err(|e| log::warn!("redis: {e}"))
                    .ok();
                self.answered.push(Answered {
                    key,
                    serial,
                    published,
                });
            }
            Command::Publish(Publisher::Walk) => {
                if let Err(e) = replies::published(frame) {
                    log::warn!("redis: random walk: {e}");
                }
            }
            Command::Merge => match replies::merged(frame) {
                Ok(n) => log::info!("redis: put back newer values of {n} symbols Redis had lost"),
                Err(e) => log::warn!("redis: putting back newer values: {e}"),
            },
        }
    }

    fn on_entries(&mut self, frame: &Frame, feed: &mut Feed, now: Instant) {
        match replies::entries(frame) {
            Ok(entries) => {
                if let Some(request) = self.session.entries(entries, feed) {
                    self.send(request, now);
                }
            }
            Err(e) => self.failed(now, &e.0),
        }
    }

    /// Puts what the session asks on its link (nothing when the link is down: the failure
    /// that took it has been handled).
    fn send(&mut self, request: Request, now: Instant) {
        let mut bytes = Vec::new();
        let (keys, maxlen) = (&self.keys, self.maxlen);
        let _ = match request {
            Request::Load { floor } => {
                scripts::load(&mut bytes, keys, floor);
                self.commands
                    .send(&bytes, Command::Load, now + LOAD_TIMEOUT)
                    .map_err(drop)
            }
            Request::Seed {
                floor,
                ids,
                records,
            } => {
                scripts::seed(&mut bytes, keys, maxlen, floor, ids, records.into_iter());
                self.commands
                    .send(&bytes, Command::Seed, now + LOAD_TIMEOUT)
                    .map_err(drop)
            }
            Request::Merge(newer) => {
                scripts::merge(&mut bytes, keys, maxlen, &newer);
                self.commands
                    .send(&bytes, Command::Merge, now + PUBLISH_TIMEOUT)
                    .map_err(drop)
            }
            Request::Read { after } => {
                scripts::read_after(&mut bytes, keys, &after, BLOCK_MS, READ_COUNT);
                self.tail.send(&bytes, (), now + READ_TIMEOUT)
            }
        };
    }

    /// Updates to Redis as one publish, for `publisher`. The ids come from Redis: the
    /// commands link is all it needs (publishing goes on while the feed reloads). False:
    /// Redis is away (answer 503 now). A link that fails on the way answers it among the
    /// answered.
    pub fn publish(
        &mut self,
        feed: &Feed,
        updates: &[Update],
        publisher: Publisher,
        now: Instant,
    ) -> bool {
        if !self.commands.is_up() || !self.session.takes_publishes() {
            return false;
        }
        let u = &feed.universe;
        let named: Vec<(Symbol, scripts::Named)> = updates
            .iter()
            .map(|update| {
                let values = update
                    .values
                    .iter()
                    .map(|(f, v)| (u.schema().field(*f).name.clone(), v.to_string()))
                    .collect();
                (u.symbol(update.symbol), values)
            })
            .collect();
        let mut bytes = Vec::new();
        let deadline = self.deadline_ms(PUBLISH_TIMEOUT);
        scripts::publish(&mut bytes, &self.keys, self.maxlen, deadline, &named);
        let command = Command::Publish(publisher);
        if self
            .commands
            .send(&bytes, command, now + PUBLISH_TIMEOUT)
            .is_err()
        {
            return false;
        }
        self.flush(now);
        true
    }

    /// A publish's deadline in Redis's clock (0: unknown, none): a margin before tickerd
    /// gives up on it, so that Redis refuses it rather than apply it as tickerd answers 503.
    /// (The offset errs early: Redis's clock was read before the load's reply arrived.)
    fn deadline_ms(&self, timeout: Duration) -> u64 {
        let Some(offset) = self.session.clock_offset_ms() else {
            return 0;
        };
        let margin = DEADLINE_MARGIN.as_millis() as i64;
        (session::wall_ms() as i64 + offset + timeout.as_millis() as i64 - margin).max(1) as u64
    }
}
