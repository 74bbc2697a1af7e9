//! The core's side of `--redis`: events and timers of the links go to the driver
//! (`crate::redis`) with the feed; publishes and random-walk ticks go to Redis instead of the
//! feed; and the publishes Redis answered are answered to their clients.

use std::time::{Duration, Instant};

use super::{Core, Io};
use crate::answers::Answer;
use crate::feed::Applied;
use crate::io::Readiness;
use crate::redis::{Answered, Publisher};
use crate::universe::Update;

/// How long a stream resuming from an id ahead of this instance waits for it.
pub(super) const AHEAD_HOLD: Duration = Duration::from_secs(1);

pub(super) type Redis<S> = crate::redis::Redis<S>;

impl<I: Io> Core<I> {
    /// Whether `token` is a link to Redis.
    pub(crate) fn is_link(&self, token: usize) -> bool {
        self.redis.is_some() && Redis::<I::Socket>::owns(token)
    }

    /// A readiness event on a link to Redis.
    pub(crate) fn on_link(&mut self, token: usize, readiness: Readiness, now: Instant) {
        self.now = now;
        let Some(redis) = &mut self.redis else { return };
        redis.on_event(token, readiness, &mut self.io, &mut self.feed, now);
        self.answer_publishes();
    }

    pub(super) fn redis_timers(&mut self) {
        let Some(redis) = &mut self.redis else { return };
        redis.on_timers(&mut self.io, self.now);
        self.answer_publishes();
    }

    /// A publish (checked against the universe) goes to Redis; connection `key` waits for
    /// the answer. False: Redis is away, answer 503 now.
    pub(super) fn redis_publish(&mut self, key: usize, serial: u64, batch: &[Update]) -> bool {
        let Some(redis) = &mut self.redis else {
            return false;
        };
        let publisher = Publisher::Client { key, serial };
        // The connection waits (`Awaiting`, as every request being carried out) for
        // `answer_publishes`: a link that failed on the way has answered it already.
        let sent = redis.publish(&self.feed, batch, publisher, self.now);
        self.answer_publishes();
        sent
    }

    /// A random-walk tick goes to Redis like a publish (skipped while Redis is away).
    pub(super) fn redis_walk(&mut self) {
        let wall = self.wall_ms();
        let Some(redis) = &mut self.redis else { return };
        let moves = self.feed.walk_moves(&mut self.rng, wall);
        redis.publish(&self.feed, &moves, Publisher::Walk, self.now);
        self.answer_publishes();
    }

    /// Answers the publishes that waited for Redis: 200 with the id of its last update, or
    /// 503. A publisher that left is skipped.
    fn answer_publishes(&mut self) {
        let Some(redis) = &mut self.redis else { return };
        for Answered {
            key,
            serial,
            published,
        } in redis.take_answered()
        {
            let Some(conn) = self.clients.get_serial(key, serial) else {
                continue;
            };
            let answer = match published {
                Some(p) => Answer::Published(Applied {
                    last_id: p.last_id,
                    changed: p.changed as usize,
                    unchanged: p.unchanged as usize,
                }),
                None => Answer::RedisUnavailable,
            };
            let bytes = answer.render(conn.dialect(), &mut self.counters);
            conn.start_response(bytes.into());
            self.flush(key);
        }
    }
}
