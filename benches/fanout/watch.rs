//! A many-symbol client's view, and what a worker thread learns from all of them: each
//! event checked (its symbol one the client chose, ids strictly increasing, a symbol's value
//! never repeated or going back), its latency recorded, each update's first and last arrival
//! and id kept, and at the end whether each client holds every symbol's final value.
//!
//! The worker hands it all to the coordinator as one file (`Summary::write_to`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, Read, Write};

use crate::hist::Histogram;
use crate::workload::{parse_event_data, parse_u64, SNAPSHOT_CENTS};

/// One client's symbols and the last value and id it got of each.
#[derive(Debug)]
pub struct Watch {
    pub symbols: Box<[u32]>,
    /// The last value received per symbol (0: none yet).
    pub cents: Box<[u64]>,
    /// The last numeric id received (nchan's are not numbers: they stay unchecked).
    pub last_id: u64,
}

impl Watch {
    pub fn new(symbols: Vec<u32>) -> Watch {
        let cents = vec![0; symbols.len()].into_boxed_slice();
        Watch {
            symbols: symbols.into_boxed_slice(),
            cents,
            last_id: 0,
        }
    }

    /// How many of its symbols do not hold their final value.
    pub fn stale(&self, finals: &[u64]) -> u64 {
        self.symbols
            .iter()
            .zip(self.cents.iter())
            .filter(|(&s, &c)| finals.get(s as usize) != Some(&c))
            .count() as u64
    }
}

/// A multiplicative hash for u64 keys: the per-event map lookup must be cheap.
#[derive(Default)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// An update, as (symbol << 40) | cents: unique per system, since prices are publish times.
pub fn update_key(symbol: u32, cents: u64) -> u64 {
    (u64::from(symbol) << 40) | (cents & ((1 << 40) - 1))
}

pub fn key_symbol(key: u64) -> u32 {
    (key >> 40) as u32
}

pub fn key_cents(key: u64) -> u64 {
    key & ((1 << 40) - 1)
}

/// Where an update arrived: first and last arrival (ns), its id (0: not numeric), how many
/// clients got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrivals {
    pub first: u64,
    pub last: u64,
    pub id: u64,
    pub clients: u64,
}

/// The counters of a worker (or of all of them, once merged).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Events of published updates received.
    pub received: u64,
    /// Events of the price before any publish (the snapshot at connect).
    pub snapshot: u64,
    /// Reads that returned bytes.
    pub reads: u64,
    /// TCP data segments the clients received from the server while measured (`MARK` to
    /// the end): how often the server's bytes reached a client, the same measure for every
    /// server here (0 over a Unix socket).
    pub segments: u64,
    /// Events whose data is not `{"symbol":…,"price":…}` of one of ours.
    pub bad: u64,
    /// Events of a symbol the client did not choose.
    pub foreign: u64,
    /// Events whose numeric id is not above the client's previous one.
    pub id_not_increasing: u64,
    /// Events repeating the value a client already has for that symbol.
    pub repeated: u64,
    /// Events with a value older than the one the client has (publish order reversed).
    pub went_back: u64,
    /// The same update seen with two different ids.
    pub id_conflicts: u64,
    /// At the end: clients with a symbol not at its final value, and such symbols.
    pub stale_clients: u64,
    pub stale_symbols: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.received += o.received;
        self.snapshot += o.snapshot;
        self.reads += o.reads;
        self.segments += o.segments;
        self.bad += o.bad;
        self.foreign += o.foreign;
        self.id_not_increasing += o.id_not_increasing;
        self.repeated += o.repeated;
        self.went_back += o.went_back;
        self.id_conflicts += o.id_conflicts;
        self.stale_clients += o.stale_clients;
        self.stale_symbols += o.stale_symbols;
    }

    const FIELDS: usize = 12;

    fn to_array(self) -> [u64; Self::FIELDS] {
        [
            self.received,
            self.snapshot,
            self.reads,
            self.segments,
            self.bad,
            self.foreign,
            self.id_not_increasing,
            self.repeated,
            self.went_back,
            self.id_conflicts,
            self.stale_clients,
            self.stale_symbols,
        ]
    }

    fn from_array(a: [u64; Self::FIELDS]) -> Counts {
        Counts {
            received: a[0],
            snapshot: a[1],
            reads: a[2],
            segments: a[3],
            bad: a[4],
            foreign: a[5],
            id_not_increasing: a[6],
            repeated: a[7],
            went_back: a[8],
            id_conflicts: a[9],
            stale_clients: a[10],
            stale_symbols: a[11],
        }
    }
}

/// Everything a worker learned.
#[derive(Debug, Default)]
pub struct Summary {
    pub counts: Counts,
    /// Publish → receive, in µs.
    pub latency: Histogram,
    pub updates: FastMap<u64, Arrivals>,
}

impl Summary {
    /// Takes one event a client received at `now` (ns); `epoch`: the ns that price 0 means.
    pub fn on_event(
        &mut self,
        w: &mut Watch,
        now: u64,
        epoch: u64,
        id: Option<&[u8]>,
        data: &[u8],
    ) {
        let Some((symbol, cents)) = parse_event_data(data) else {
            self.counts.bad += 1;
            return;
        };
        let Some(slot) = w.symbols.iter().position(|&s| s == symbol) else {
            self.counts.foreign += 1;
            return;
        };
        let id = id.and_then(parse_u64).unwrap_or(0);
        if id > 0 {
            if id <= w.last_id {
                self.counts.id_not_increasing += 1;
            }
            w.last_id = w.last_id.max(id);
        }
        let had = w.cents[slot];
        if cents == had {
            self.counts.repeated += 1;
        } else if cents < had {
            self.counts.went_back += 1;
        }
        w.cents[slot] = cents;
        if cents <= SNAPSHOT_CENTS {
            self.counts.snapshot += 1;
            return;
        }
        self.counts.received += 1;
        let published = epoch + cents * 1000;
        self.latency.record(now.saturating_sub(published) / 1000);
        let conflicts = &mut self.counts.id_conflicts;
        self.updates
            .entry(update_key(symbol, cents))
            .and_modify(|a| {
                a.first = a.first.min(now);
                a.last = a.last.max(now);
                a.clients += 1;
                if a.id != id {
                    *conflicts += 1;
                }
            })
            .or_insert(Arrivals {
                first: now,
                last: now,
                id,
                clients: 1,
            });
    }

    /// Adds another worker's (or thread's) summary.
    pub fn merge(&mut self, other: &Summary) {
        self.counts.add(&other.counts);
        self.latency.merge(&other.latency);
        for (&k, a) in &other.updates {
            let conflicts = &mut self.counts.id_conflicts;
            self.updates
                .entry(k)
                .and_modify(|m| {
                    m.first = m.first.min(a.first);
                    m.last = m.last.max(a.last);
                    m.clients += a.clients;
                    if m.id != a.id {
                        *conflicts += 1;
                    }
                })
                .or_insert(*a);
        }
    }

    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        for v in self.counts.to_array() {
            out.write_all(&v.to_le_bytes())?;
        }
        self.latency.write_to(out)?;
        out.write_all(&(self.updates.len() as u64).to_le_bytes())?;
        for (&k, a) in &self.updates {
            for v in [k, a.first, a.last, a.id, a.clients] {
                out.write_all(&v.to_le_bytes())?;
            }
        }
        Ok(())
    }

    pub fn read_from(input: &mut impl Read) -> io::Result<Summary> {
        fn word(input: &mut impl Read) -> io::Result<u64> {
            let mut w = [0u8; 8];
            input.read_exact(&mut w)?;
            Ok(u64::from_le_bytes(w))
        }
        let mut counts = [0u64; Counts::FIELDS];
        for c in &mut counts {
            *c = word(input)?;
        }
        let latency = Histogram::read_from(input)?;
        let n = word(input)?;
        let mut updates = FastMap::default();
        for _ in 0..n {
            let k = word(input)?;
            let a = Arrivals {
                first: word(input)?,
                last: word(input)?,
                id: word(input)?,
                clients: word(input)?,
            };
            updates.insert(k, a);
        }
        Ok(Summary {
            counts: Counts::from_array(counts),
            latency,
            updates,
        })
    }
}
