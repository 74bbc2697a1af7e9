//! The client registry: every open connection in one slab, keyed by the token its socket is registered under. The
//! slab entry's state is the only record of what a client is doing, so counts are taken
//! from it rather than kept beside it.

use slab::Slab;

use crate::conn::{Connection, State};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StateCounts {
    pub reading: usize,
    /// Kept alive between requests.
    pub idle: usize,
    pub parked: usize,
    pub writing: usize,
    pub lingering: usize,
}

pub struct Clients<S> {
    slab: Slab<Connection<S>>,
}

impl<S> Clients<S> {
    pub fn with_capacity(n: usize) -> Self {
        Clients {
            slab: Slab::with_capacity(n),
        }
    }

    pub fn vacant_key(&self) -> usize {
        self.slab.vacant_key()
    }

    pub fn insert(&mut self, conn: Connection<S>) -> usize {
        self.slab.insert(conn)
    }

    pub fn get(&self, key: usize) -> Option<&Connection<S>> {
        self.slab.get(key)
    }

    /// A connection by key; `None` for a key already freed (a late event for it).
    pub fn get_mut(&mut self, key: usize) -> Option<&mut Connection<S>> {
        self.slab.get_mut(key)
    }

    /// The connection with this key if it is still the one with this serial.
    pub fn get_serial(&mut self, key: usize, serial: u64) -> Option<&mut Connection<S>> {
        self.slab.get_mut(key).filter(|c| c.serial() == serial)
    }

    pub fn remove(&mut self, key: usize) -> Option<Connection<S>> {
        self.slab.try_remove(key)
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut Connection<S>)> {
        self.slab.iter_mut()
    }

    pub fn drain(&mut self) -> impl Iterator<Item = Connection<S>> + '_ {
        self.slab.drain()
    }

    /// Connections by state, leaving out `except` (the one asking, for /metrics).
    pub fn counts(&self, except: Option<usize>) -> StateCounts {
        let mut counts = StateCounts::default();
        for (key, conn) in self.slab.iter() {
            if Some(key) == except {
                continue;
            }
            match conn.state() {
                State::Reading { .. } => counts.reading += 1,
                State::Idle => counts.idle += 1,
                State::Parked(_) => counts.parked += 1,
                // An answer under way, or still to come from Redis.
                State::Writing { .. } | State::Awaiting { .. } => counts.writing += 1,
                State::Lingering => counts.lingering += 1,
            }
        }
        counts
    }
}
