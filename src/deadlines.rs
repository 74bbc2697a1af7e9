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

    /// Drops the entries `keep` refuses (those of connections already gone). The core calls
    /// it when the queue holds far more entries than there are connections, so the queue
    /// stays proportional to live connections however fast they churn.
    pub fn retain(&mut self, mut keep: impl FnMut(usize, u64) -> bool) {
        self.queue.retain(|&(_, key, serial)| keep(key, serial));
    }

    /// Gives back memory after a burst.
    pub fn shrink(&mut self) {
        self.queue.shrink_to(self.queue.len() * 2);
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
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

    #[test]
    fn retain_keeps_order() {
        let t0 = Instant::now();
        let mut q = DeadlineQueue::new(Duration::from_secs(1));
        for key in 0..10 {
            q.start(t0, key, key as u64);
        }
        q.retain(|key, _| key % 3 == 0);
        assert_eq!(q.len(), 4);
        let later = t0 + Duration::from_secs(2);
        let keys: Vec<_> = std::iter::from_fn(|| q.pop_expired(later))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, [0, 3, 6, 9]);
    }
}
