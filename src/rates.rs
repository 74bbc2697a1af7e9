//! The streams' `max_hz`: for each stream that has one (asked, or capped by `--max-hz`), the
//! least time between two of its rounds of events and when its next may go. Held by
//! connection key, only for the streams that have one, so that the others pay nothing for
//! it; a stream's rate goes when its connection closes, before the key can be reused, as its
//! subscription does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One stream's `max_hz`: at least `gap` between two rounds (the snapshot does not count);
/// what changes meanwhile is merged into the next round, the latest of each field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub gap: Duration,
    /// No round before this.
    pub not_before: Option<Instant>,
    /// A wake-up is set for `not_before` (so that only one is).
    pub scheduled: bool,
}

#[derive(Default)]
pub struct Rates(HashMap<usize, Rate>);

impl Rates {
    /// Stream `key` has a rate of one round per `gap` (`None`: none), its first round free.
    pub fn set(&mut self, key: usize, gap: Option<Duration>) {
        match gap {
            Some(gap) => {
                let rate = Rate {
                    gap,
                    not_before: None,
                    scheduled: false,
                };
                self.0.insert(key, rate);
            }
            None => {
                self.0.remove(&key);
            }
        }
    }

    pub fn get(&self, key: usize) -> Option<Rate> {
        match self.0.is_empty() {
            true => None,
            false => self.0.get(&key).copied(),
        }
    }

    pub fn get_mut(&mut self, key: usize) -> Option<&mut Rate> {
        self.0.get_mut(&key)
    }

    /// Its connection closed.
    pub fn remove(&mut self, key: usize) {
        if !self.0.is_empty() {
            self.0.remove(&key);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}
