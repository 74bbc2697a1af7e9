//! Timers taken from the poll timeout: the random walk, heartbeats, the accept pause, the
//! coalescing period, and the per-connection deadline queues.

use std::time::{Duration, Instant};

use super::Server;
use crate::conn::{CloseReason, State};
use crate::deadlines::DeadlineQueue;

/// Timers taken from the poll timeout.
pub(super) struct Timers {
    pub(super) tick: Option<(Instant, Duration)>,
    pub(super) heartbeat: Option<(Instant, Duration)>,
    pub(super) accept_paused_until: Option<Instant>,
    /// `WATCHDOG_USEC`: the next keep-alive for systemd, and the period.
    pub(super) watchdog: Option<(Instant, Duration)>,
    /// `--coalesce-ms`: the next fan-out may not come before this; `None` without it.
    pub(super) coalesce: Option<(Instant, Duration)>,
    pub(super) requests: DeadlineQueue,
    pub(super) lingering: DeadlineQueue,
    pub(super) long_polls: DeadlineQueue,
    /// Streams resuming from an id ahead of this instance (`--redis`), held until it
    /// catches up or this passes.
    pub(super) ahead: DeadlineQueue,
}

impl Timers {
    pub(super) fn next(&self, woken: bool) -> Option<Instant> {
        [
            self.tick.map(|(at, _)| at),
            self.heartbeat.map(|(at, _)| at),
            self.accept_paused_until,
            self.watchdog.map(|(at, _)| at),
            self.coalesce.filter(|_| woken).map(|(at, _)| at),
            self.requests.next(),
            self.lingering.next(),
            self.long_polls.next(),
            self.ahead.next(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl Server {
    pub(super) fn on_timers(&mut self, now: Instant) {
        self.redis_timers(now);
        self.upgrade_timers(now);
        if let Some((at, period)) = self.timers.watchdog {
            if at <= now {
                crate::notify::watchdog();
                self.timers.watchdog = Some((now + period, period));
            }
        }
        self.compact_deadlines();
        if let Some((at, period)) = self.timers.tick {
            if at <= now {
                // Keep the beat; after a stall, skip ahead rather than tick in a burst.
                let next = if at + period > now {
                    at + period
                } else {
                    now + period
                };
                self.timers.tick = Some((next, period));
                match self.redis {
                    Some(_) => self.redis_walk(),
                    None => self.feed.walk(&mut self.rng),
                }
                self.counters.ticks += 1;
            }
        }
        if let Some((at, period)) = self.timers.heartbeat {
            if at <= now {
                self.timers.heartbeat = Some((now + period, period));
                self.heartbeat();
            }
        }
        if self.timers.accept_paused_until.is_some_and(|at| at <= now) {
            self.timers.accept_paused_until = None;
            for index in 0..self.listeners.len() {
                self.accept(index);
            }
        }
        while let Some((key, serial)) = self.timers.requests.pop_expired(now) {
            if let Some(conn) = self.clients.get_serial(key, serial) {
                if matches!(conn.state, State::Reading { .. }) {
                    log::warn!("{}: closed: request not complete in time", conn.describe());
                    self.close(key, CloseReason::RequestTimeout);
                }
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
                if matches!(conn.state, State::Lingering) {
                    self.close(key, CloseReason::LingerTimeout);
                }
            }
        }
    }

    /// Deadline entries outlive their connections (a closed one is skipped when its entry
    /// expires). When a queue holds many more entries than there are connections, drop the
    /// dead ones, so memory follows live connections, not the churn of the last 30 s.
    fn compact_deadlines(&mut self) {
        let live = self.clients.len();
        let clients = &mut self.clients;
        for queue in [
            &mut self.timers.requests,
            &mut self.timers.lingering,
            &mut self.timers.long_polls,
            &mut self.timers.ahead,
        ] {
            if queue.len() > 2 * live + 1024 {
                queue.retain(|key, serial| clients.get_serial(key, serial).is_some());
                queue.shrink();
            }
        }
    }
}
