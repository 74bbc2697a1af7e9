//! The core's timers: the random walk, heartbeats, the coalescing period, and the
//! per-connection deadline queues. The loop takes the earliest from `Core::next_deadline`
//! as its poll timeout and calls `Core::advance` with the time; nothing here reads a clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::redis::AHEAD_HOLD;
use super::{Core, Io};
use crate::config::Config;
use crate::conn::CloseReason;
use crate::deadlines::DeadlineQueue;

/// How long a finished connection may take to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// A timer that fires every period.
#[derive(Debug, Clone, Copy)]
pub(super) struct Periodic {
    pub(super) at: Instant,
    pub(super) period: Duration,
}

pub(super) struct Timers {
    /// `--tick-ms`: the random walk.
    pub(super) tick: Option<Periodic>,
    /// `--heartbeat-s`.
    heartbeat: Option<Periodic>,
    /// `--coalesce-ms`: the next fan-out may not come before this; `None` without it.
    pub(super) coalesce: Option<(Instant, Duration)>,
    pub(super) requests: DeadlineQueue,
    /// Kept-alive connections whose next request, held already, is taken at the end of
    /// this turn (after `REQUESTS_AT_ONCE`, or a live upgrade): due at once.
    pub(super) next_request: DeadlineQueue,
    pub(super) lingering: DeadlineQueue,
    pub(super) long_polls: DeadlineQueue,
    /// Streams resuming from an id ahead of this instance (`--redis`), held until it
    /// catches up or this passes.
    pub(super) ahead: DeadlineQueue,
    /// Streams held back by their `max_hz`, each until its next round may go: a heap, as
    /// each stream has its own period. One entry per held stream at most (`Rate::scheduled`).
    pub(super) throttled: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// Streams opened with a token, each ending when it expires (`exp` plus its spread):
    /// a heap, as each token has its own `exp`.
    pub(super) expiring: BinaryHeap<Reverse<(Instant, usize, u64)>>,
}

impl Timers {
    pub(super) fn new(config: &Config, now: Instant) -> Timers {
        let every = |period: Option<Duration>| {
            period.map(|period| Periodic {
                at: now + period,
                period,
            })
        };
        Timers {
            tick: every(config.tick),
            heartbeat: every(config.heartbeat),
            coalesce: config.coalesce.map(|p| (now, p)),
            requests: DeadlineQueue::new(config.request_timeout),
            next_request: DeadlineQueue::new(Duration::ZERO),
            lingering: DeadlineQueue::new(LINGER),
            long_polls: DeadlineQueue::new(config.long_poll_hold),
            ahead: DeadlineQueue::new(AHEAD_HOLD),
            throttled: BinaryHeap::new(),
            expiring: BinaryHeap::new(),
        }
    }

    /// The earliest timer; the coalescing period counts only when clients are `woken`.
    pub(super) fn next(&self, woken: bool) -> Option<Instant> {
        [
            self.tick.map(|t| t.at),
            self.heartbeat.map(|t| t.at),
            self.coalesce.filter(|_| woken).map(|(at, _)| at),
            self.requests.next(),
            self.next_request.next(),
            self.lingering.next(),
            self.long_polls.next(),
            self.ahead.next(),
            self.throttled.peek().map(|Reverse((at, _, _))| *at),
            self.expiring.peek().map(|Reverse((at, _, _))| *at),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl<I: Io> Core<I> {
    pub(super) fn on_timers(&mut self) {
        let now = self.now;
        self.redis_timers();
        self.compact_deadlines();
        if let Some(tick) = &mut self.timers.tick {
            if tick.at <= now {
                // Keep the beat; after a stall, skip ahead rather than tick in a burst.
                tick.at = match tick.at + tick.period {
                    next if next > now => next,
                    _ => now + tick.period,
                };
                self.walk();
            }
        }
        if let Some(beat) = &mut self.timers.heartbeat {
            if beat.at <= now {
                beat.at = now + beat.period;
                self.heartbeat();
            }
        }
        while let Some((key, serial)) = self.timers.requests.pop_expired(now) {
            if let Some(conn) = self.clients.get_serial(key, serial) {
                if conn.is_reading() {
                    log::warn!("{}: closed: request not complete in time", conn.describe());
                    self.close(key, CloseReason::RequestTimeout);
                } else if conn.is_idle() {
                    log::debug!("{}: closed: no next request in time", conn.describe());
                    self.close(key, CloseReason::IdleTimeout);
                }
            }
        }
        // Only those queued before: one whose requests run out again now waits for the next
        // turn.
        for _ in 0..self.timers.next_request.len() {
            let Some((key, serial)) = self.timers.next_request.pop_expired(now) else {
                break;
            };
            if self.clients.get_serial(key, serial).is_some() && self.take_held(key) {
                self.flush(key);
            }
        }
        while let Some((key, serial)) = self.timers.ahead.pop_expired(now) {
            // Still ahead: the id was not this feed's after all (another feed's, or made
            // up), so the stream gets the whole snapshot, as without Redis.
            let newest = self.feed.universe.last_id();
            if let Some(conn) = self.clients.get_serial(key, serial) {
                if conn.rewind_if_ahead(newest) {
                    self.send_due(key, None);
                    self.flush(key);
                }
            }
        }
        while let Some(&Reverse((at, key, serial))) = self.timers.throttled.peek() {
            if at > now {
                break;
            }
            self.timers.throttled.pop();
            // Its next round may go: it joins the next fan-out.
            if self.clients.get_serial(key, serial).is_none() {
                continue;
            }
            if let Some(rate) = self.rates.get_mut(key) {
                rate.scheduled = false;
                self.feed.wake_client(key);
            }
        }
        while let Some(&Reverse((at, key, serial))) = self.timers.expiring.peek() {
            if at > now {
                break;
            }
            self.timers.expiring.pop();
            if self.clients.get_serial(key, serial).is_some() {
                self.end_expired(key);
            }
        }
        while let Some((key, serial)) = self.timers.long_polls.pop_expired(now) {
            // Held too long (front-ends and browsers give up on silent requests): answered
            // with what it has, its symbols' current values; the client simply polls again.
            if let Some(conn) = self.clients.get_serial(key, serial) {
                if conn.rewind_long_poll() {
                    self.send_due(key, None);
                    self.flush(key);
                }
            }
        }
        while let Some((key, serial)) = self.timers.lingering.pop_expired(now) {
            if let Some(conn) = self.clients.get_serial(key, serial) {
                if conn.is_lingering() {
                    self.close(key, CloseReason::LingerTimeout);
                }
            }
        }
    }

    /// One tick of the random walk: every symbol moves once (through Redis with `--redis`).
    fn walk(&mut self) {
        match self.redis.is_some() {
            true => self.redis_walk(),
            false => {
                let wall = self.wall_ms();
                self.feed.walk(&mut self.rng, wall)
            }
        }
        self.counters.ticks += 1;
    }

    /// Deadline entries outlive their connections (a closed one is skipped when its entry
    /// expires). When a queue holds many more entries than there are connections, drop the
    /// dead ones, so memory follows live connections, not the churn of the last 30 s.
    fn compact_deadlines(&mut self) {
        let live = self.clients.len();
        let clients = &mut self.clients;
        for queue in [
            &mut self.timers.requests,
            &mut self.timers.next_request,
            &mut self.timers.lingering,
            &mut self.timers.long_polls,
            &mut self.timers.ahead,
        ] {
            if queue.len() > 2 * live + 1024 {
                queue.retain(|key, serial| clients.get_serial(key, serial).is_some());
                queue.shrink();
            }
        }
        // Token expiries can be hours away: the entries of streams gone before then too.
        let expiring = &mut self.timers.expiring;
        if expiring.len() > 2 * live + 1024 {
            expiring
                .retain(|Reverse((_, key, serial))| clients.get_serial(*key, *serial).is_some());
            expiring.shrink_to(expiring.len() * 2);
        }
    }
}
