//! The core's side of a live upgrade: what it hands over (the universe, the counters, every
//! connection with its subscription) and how the next binary takes it back. The orchestration
//! (checking the new binary, the exec) is `crate::upgrade`'s; each connection's mapping to
//! its record is `conn`'s.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use super::{Core, Io};
use crate::answers::Answer;
use crate::conn::{Connection, Kind, State, Then};
use crate::symbol::Symbol;
use crate::universe::{SymbolId, View};
use crate::upgrade::handover::{Carried, CarriedSubscription, Handover};

/// How a take-over went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TakenOver {
    pub connections: usize,
    pub lost: usize,
}

impl<I: Io> Core<I>
where
    I::Socket: AsRawFd,
{
    /// Publishes waiting for Redis are answered 503 before a handover: their answer would be
    /// lost with the link. (Again, until none waits: a kept-alive connection goes on to a
    /// publish it held, pipelined, which waits for Redis in turn.)
    pub(crate) fn answer_awaiting(&mut self) {
        loop {
            let awaiting: Vec<usize> = self
                .clients
                .iter_mut()
                .filter(|(_, c)| matches!(c.state(), State::Awaiting { .. }))
                .map(|(key, _)| key)
                .collect();
            if awaiting.is_empty() {
                return;
            }
            for key in awaiting {
                if let Some(p) = self.clients.get(key).map(|c| c.dialect()) {
                    let answer = self.answer(p, Answer::Upgrading);
                    self.respond(key, answer);
                    self.flush(key);
                }
            }
        }
    }

    /// Everything the next binary takes over (but the time of the handover, which the
    /// orchestration stamps).
    pub(crate) fn record(&mut self) -> Handover {
        let u = &self.feed.universe;
        let schema = u.schema();
        let records = (0..u.len() as SymbolId)
            .map(|s| {
                let fields = (0..schema.len())
                    .filter_map(|f| {
                        let value = u.value(s, f)?.to_string();
                        Some((schema.field(f).name.clone(), value, u.changed_at(s, f)))
                    })
                    .collect();
                (u.symbol(s).to_string(), fields)
            })
            .collect();
        let mut connections = Vec::with_capacity(self.clients.len());
        for (key, conn) in self.clients.iter_mut() {
            let symbols = self.feed.symbols_of(key).map(|(view, symbols)| {
                let fields = (0..schema.len())
                    .filter(|f| view.fields & (1 << f) != 0)
                    .map(|f| schema.field(f).name.clone())
                    .collect();
                CarriedSubscription {
                    format: view.format,
                    fields,
                    symbols: symbols.map(|s| u.symbol(s).to_string()).collect(),
                    rate: self.rates.get(key).map(|r| r.gap),
                    user: self.stream_users.get(&key).cloned(),
                    token: self
                        .stream_claims
                        .get(&key)
                        .map(|(claims, exp)| (*exp, claims.clone())),
                }
            });
            let fd = conn.socket_mut().as_raw_fd();
            // (One still awaiting Redis could not be answered: it is dropped.)
            connections.extend(conn.to_carried(fd, symbols));
        }
        Handover {
            records,
            last_id: u.last_id(),
            updates: self.feed.updates,
            counters: self.counters.clone(),
            next_serial: self.next_serial,
            redis_loaded: self.redis.as_ref().is_some_and(|r| r.loaded()),
            handed_at_us: 0,
            connections,
        }
    }
}

impl<I: Io> Core<I> {
    /// The new binary's side: the universe's prices and ids, the counters, and every
    /// connection (its socket made by `socket_of` from the record), registered and going on
    /// where it was: streams in the middle of a write go on, parked ones get anything due.
    pub(crate) fn take_over(
        &mut self,
        record: Handover,
        mut socket_of: impl FnMut(RawFd, bool) -> io::Result<I::Socket>,
        now: Instant,
    ) -> TakenOver {
        self.now = now;
        let u = &mut self.feed.universe;
        let (mut dropped_symbols, mut dropped_values) = (0, 0);
        for (name, fields) in &record.records {
            let Some(s) = Symbol::parse(name.as_bytes()).ok().and_then(|s| u.find(&s)) else {
                dropped_symbols += 1;
                continue;
            };
            for (field, text, id) in fields {
                match u.parse_value(s, field, text) {
                    Ok((f, value)) => u.restore(s, f, value, *id),
                    Err(_) => dropped_values += 1,
                }
            }
        }
        u.restore_last_id(record.last_id);
        if dropped_symbols > 0 {
            log::warn!("upgrade: {dropped_symbols} symbols of the previous binary are not in this one's universe: their subscribers lose them");
        }
        if dropped_values > 0 {
            log::warn!("upgrade: {dropped_values} values of the previous binary do not fit this one's --fields or precisions: left out");
        }
        self.feed.updates = record.updates;
        self.counters = record.counters;
        self.next_serial = record.next_serial;
        if record.redis_loaded {
            if let Some(redis) = &mut self.redis {
                redis.set_loaded_before(self.now);
            }
        }
        let connections = record.connections.len();
        let mut lost = 0;
        let mut keys = Vec::with_capacity(connections);
        for carried in record.connections {
            let adopted = socket_of(carried.fd, carried.peer.is_some())
                .and_then(|socket| self.adopt(socket, carried));
            match adopted {
                Ok(key) => keys.push(key),
                Err(e) => {
                    lost += 1;
                    log::warn!("upgrade: a handed-over connection could not be taken: {e}");
                }
            }
        }
        for key in keys {
            self.flush(key);
        }
        // The handover interrupted the beat: the next tick is due now, not a period after
        // this process started.
        if let Some(tick) = &mut self.timers.tick {
            tick.at = self.now;
        }
        TakenOver { connections, lost }
    }

    /// One connection of the record: registered, its deadline started, subscribed.
    fn adopt(&mut self, socket: I::Socket, mut carried: Carried) -> io::Result<usize> {
        let symbols = carried.symbols.take();
        let key = self.clients.vacant_key();
        let mut conn = Connection::from_carried(socket, carried);
        let writable = conn.wants_write();
        self.io.register(conn.socket_mut(), key, writable)?;
        conn.set_registered_writable(writable);
        let serial = conn.serial();
        match conn.state() {
            State::Reading { .. } | State::Idle => {
                self.timers.requests.start(self.now, key, serial);
                // A kept-alive one may hold its next request whole: taken at the turn's end.
                self.timers.next_request.start(self.now, key, serial);
            }
            State::Parked(w)
            | State::Writing {
                then: Then::Park(w),
                ..
            } if w.kind == Kind::LongPoll => self.timers.long_polls.start(self.now, key, serial),
            State::Lingering => self.timers.lingering.start(self.now, key, serial),
            _ => {}
        }
        self.clients.insert(conn);
        if let Some(sub) = symbols {
            let u = &self.feed.universe;
            let ids: Vec<SymbolId> = sub
                .symbols
                .iter()
                .filter_map(|n| u.find(&Symbol::parse(n.as_bytes()).ok()?))
                .collect();
            let fields = sub
                .fields
                .iter()
                .filter_map(|n| u.schema().find(n))
                .fold(0, |mask, f| mask | 1 << f);
            let view = View {
                format: sub.format,
                fields,
            };
            self.feed.subscribe(key, &ids, view);
            self.rates.set(key, sub.rate);
            // Checked again at the next reload, as it was before the upgrade (a stream from
            // a binary without --entitlements is checked as anonymous).
            if self.entitlements.is_some() {
                self.stream_users.insert(key, sub.user.flatten());
            }
            // A token stream still ends at its token's expiry, and is judged by its claims.
            if let Some((exp, claims)) = sub.token {
                let serial = self.clients.get(key).map(|c| c.serial());
                if let Some(serial) = serial {
                    let at = self.expiry_instant(exp, serial);
                    self.timers
                        .expiring
                        .push(std::cmp::Reverse((at, key, serial)));
                    if self.entitlements.is_some() {
                        self.stream_claims.insert(key, (claims, exp));
                    }
                }
            }
        }
        Ok(key)
    }
}
