//! Per-connection deadlines without a timer per connection. Every deadline in one queue has
//! the same duration, so pushing in arrival order keeps the queue sorted: expiry is popping
//! from the front, O(1) per deadline. An entry names the connection by slab key and serial,
//! so one whose connection has gone (and whose key may be reused) is skipped, not fired.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub struct DeadlineQueue {
    after: Duration,
    queue: VecDeque<(Instant, usize, u64)>,
}

impl DeadlineQueue {
    pub fn new(after: Duration) -> Self {
        DeadlineQueue {
            after,
            queue: VecDeque::new(),
        }
    }

    /// Starts a deadline `after` from `now` for connection (`key`, `serial`).
    pub fn start(&mut self, now: Instant, key: usize, serial: u64) {
        self.queue.push_back((now + self.after, key, serial));
    }

    /// The earliest pending deadline.
    pub fn next(&self) -> Option<Instant> {
        self.queue.front().map(|&(at, _, _)| at)
    }

    /// Takes the next deadline that has passed at `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(usize, u64)> {
        match self.queue.front() {
            Some(&(at, key, serial)) if at <= now => {
                self.queue.pop_front();
                Some((key, serial))
            }
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_order() {
        let t0 = Instant::now();
        let mut q = DeadlineQueue::new(Duration::from_secs(10));
        q.start(t0, 1, 100);
        q.start(t0 + Duration::from_secs(1), 2, 101);
        assert_eq!(q.next(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(q.pop_expired(t0 + Duration::from_secs(9)), None);
        assert_eq!(q.pop_expired(t0 + Duration::from_secs(10)), Some((1, 100)));
        assert_eq!(q.pop_expired(t0 + Duration::from_secs(10)), None);
        assert_eq!(q.pop_expired(t0 + Duration::from_secs(60)), Some((2, 101)));
        assert!(q.is_empty());
    }
}
