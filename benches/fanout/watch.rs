//! A many-symbol client's view, and what a worker thread learns from all of them: each
//! event checked (its symbol one the client chose, ids strictly increasing, a value never
//! repeated or going back, field by field for a quote), its latency recorded, each update's
//! first and last arrival and id kept, and at the end whether each client holds every
//! symbol's final record. A quote client also counts the bytes of what it got against the
//! whole records it holds (what a server without deltas would send), and with `max_hz` the
//! time between two events of a symbol.
//!
//! The worker hands it all to the coordinator as one file (`Summary::write_to`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, Read, Write};

use crate::hist::Histogram;
use crate::quote;
use crate::workload::{parse_event_data, parse_u64, SNAPSHOT_CENTS};

/// What each symbol carries: a price (`{"symbol":…,"price":…}`), or a quote's six fields,
/// each event carrying those that changed (`quote`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Price,
    Quote,
}

impl Record {
    /// Values per symbol.
    pub fn width(self) -> usize {
        match self {
            Record::Price => 1,
            Record::Quote => quote::WIDTH,
        }
    }
}

/// One client's symbols and the last value and id it got of each.
#[derive(Debug)]
pub struct Watch {
    pub symbols: Box<[u32]>,
    record: Record,
    /// Per symbol, the last value received of each field of its record (0: none yet): for a
    /// quote, the record merged from the events.
    pub values: Box<[u64]>,
    /// The last numeric id received (nchan's are not numbers: they stay unchecked).
    pub last_id: u64,
    /// With `max_hz`: the time between two events of a symbol.
    pace: Option<Pace>,
}

/// A `max_hz` client's bound and, per symbol, when its last update arrived (ns) and how
/// many came.
#[derive(Debug)]
struct Pace {
    gap_ns: u64,
    arrived: Box<[(u64, u32)]>,
}

impl Watch {
    /// `max_hz`: the rate the client asked for, whose gaps it then measures.
    pub fn new(symbols: Vec<u32>, record: Record, max_hz: Option<f64>) -> Watch {
        let values = vec![0; symbols.len() * record.width()].into_boxed_slice();
        let pace = max_hz.map(|hz| Pace {
            gap_ns: (1e9 / hz) as u64,
            arrived: vec![(0, 0); symbols.len()].into_boxed_slice(),
        });
        Watch {
            symbols: symbols.into_boxed_slice(),
            record,
            values,
            last_id: 0,
            pace,
        }
    }

    /// How many of its symbols do not hold their final record (`finals`: per symbol, its
    /// record's values), field by field.
    pub fn stale(&self, finals: &[u64]) -> u64 {
        let w = self.record.width();
        self.symbols
            .iter()
            .zip(self.values.chunks_exact(w))
            .filter(|(&s, got)| finals.get(s as usize * w..(s as usize + 1) * w) != Some(got))
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

/// Where an update arrived: first and last arrival (ns), its id (0: not numeric, or it came
/// only in events without an `id:` line), how many clients got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrivals {
    pub first: u64,
    pub last: u64,
    pub id: u64,
    pub clients: u64,
}

impl Arrivals {
    /// The update came with `id` too (0: without one): a second, different id is a conflict.
    fn take_id(&mut self, id: u64, conflicts: &mut u64) {
        match (self.id, id) {
            (_, 0) => {}
            (0, id) => self.id = id,
            (had, id) => *conflicts += u64::from(had != id),
        }
    }
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
    /// Quotes: the bytes of the events received (their data, and the whole event as
    /// written: `id:` line, `data:` line, blank line), and what the same events would have
    /// been carrying the whole record the client then held (with an `id:` line each).
    pub data_bytes: u64,
    pub whole_data_bytes: u64,
    pub event_bytes: u64,
    pub whole_event_bytes: u64,
    /// `max_hz`: gaps between two events of a symbol to a client, and those shorter than
    /// the client asked (1 / max_hz).
    pub gaps: u64,
    pub short_gaps: u64,
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
        self.data_bytes += o.data_bytes;
        self.whole_data_bytes += o.whole_data_bytes;
        self.event_bytes += o.event_bytes;
        self.whole_event_bytes += o.whole_event_bytes;
        self.gaps += o.gaps;
        self.short_gaps += o.short_gaps;
    }

    const FIELDS: usize = 18;

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
            self.data_bytes,
            self.whole_data_bytes,
            self.event_bytes,
            self.whole_event_bytes,
            self.gaps,
            self.short_gaps,
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
            data_bytes: a[12],
            whole_data_bytes: a[13],
            event_bytes: a[14],
            whole_event_bytes: a[15],
            gaps: a[16],
            short_gaps: a[17],
        }
    }
}

/// The extremes of `max_hz`'s gaps: the shortest between two events of a symbol to a
/// client, and the most events of one symbol to one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extremes {
    pub min_gap_ns: u64,
    pub most: u64,
}

impl Default for Extremes {
    fn default() -> Self {
        Extremes {
            min_gap_ns: u64::MAX,
            most: 0,
        }
    }
}

/// Everything a worker learned.
#[derive(Debug, Default)]
pub struct Summary {
    pub counts: Counts,
    pub extremes: Extremes,
    /// Publish → receive, in µs.
    pub latency: Histogram,
    pub updates: FastMap<u64, Arrivals>,
}

impl Summary {
    /// Takes one event a client received at `now` (ns); `epoch`: the ns that price 0 means;
    /// `id`: the event's own `id:` field, if it has one.
    pub fn on_event(
        &mut self,
        w: &mut Watch,
        now: u64,
        epoch: u64,
        id: Option<&[u8]>,
        data: &[u8],
    ) {
        match w.record {
            Record::Price => self.on_price(w, now, epoch, id, data),
            Record::Quote => self.on_quote(w, now, epoch, id, data),
        }
    }

    fn on_price(&mut self, w: &mut Watch, now: u64, epoch: u64, id: Option<&[u8]>, data: &[u8]) {
        let Some((symbol, cents)) = parse_event_data(data) else {
            self.counts.bad += 1;
            return;
        };
        let Some(slot) = w.symbols.iter().position(|&s| s == symbol) else {
            self.counts.foreign += 1;
            return;
        };
        let id = self.check_id(w, id);
        let had = w.values[slot];
        if cents == had {
            self.counts.repeated += 1;
        } else if cents < had {
            self.counts.went_back += 1;
        }
        w.values[slot] = cents;
        if cents <= SNAPSHOT_CENTS {
            self.counts.snapshot += 1;
            return;
        }
        self.on_update(w, slot, now, epoch, id, symbol, cents);
    }

    /// A quote's event: the fields that changed since the symbol's last event to this
    /// client, merged into its record. The first event of a symbol is its snapshot, which
    /// carries every field.
    fn on_quote(&mut self, w: &mut Watch, now: u64, epoch: u64, id: Option<&[u8]>, data: &[u8]) {
        let Some(c) = quote::parse_event_data(data) else {
            self.counts.bad += 1;
            return;
        };
        let Some(slot) = w.symbols.iter().position(|&s| s == c.symbol) else {
            self.counts.foreign += 1;
            return;
        };
        let id_len = id.map_or(0, <[u8]>::len);
        let id = self.check_id(w, id);
        let record: &mut [u64; quote::WIDTH] = (&mut w.values
            [slot * quote::WIDTH..(slot + 1) * quote::WIDTH])
            .try_into()
            .expect("a quote's width");
        if record.iter().all(|&v| v == 0) {
            // A snapshot carries the whole record.
            if c.mask != quote::ALL {
                self.counts.bad += 1;
            }
            *record = c.values;
            self.counts.snapshot += 1;
            return;
        }
        for f in (0..quote::WIDTH).filter(|f| c.mask & (1 << f) != 0) {
            // An event carries only what changed: a field it repeats is a fault.
            if c.values[f] == record[f] {
                self.counts.repeated += 1;
            } else if c.values[f] < record[f] {
                self.counts.went_back += 1;
            }
            record[f] = c.values[f];
        }
        let whole = quote::data_len(c.name_len, c.symbol, quote::ALL, record) as u64;
        let framing = |id_len: usize| (if id_len > 0 { 5 + id_len } else { 0 } + 8) as u64;
        self.counts.data_bytes += data.len() as u64;
        self.counts.whole_data_bytes += whole;
        self.counts.event_bytes += framing(id_len) + data.len() as u64;
        let last_id_len = w.last_id.checked_ilog10().map_or(1, |l| l as usize + 1);
        self.counts.whole_event_bytes += framing(last_id_len) + whole;
        self.on_update(w, slot, now, epoch, id, c.symbol, c.newest());
    }

    /// Checks an event's id against the client's last; returns it (0: none, or not a number).
    fn check_id(&mut self, w: &mut Watch, id: Option<&[u8]>) -> u64 {
        let id = id.and_then(parse_u64).unwrap_or(0);
        if id > 0 {
            if id <= w.last_id {
                self.counts.id_not_increasing += 1;
            }
            w.last_id = w.last_id.max(id);
        }
        id
    }

    /// A published update reached a client (symbol `slot` of its watch): its latency, its
    /// gap since the symbol's previous one (`max_hz`), and its arrivals. `newest`: the value
    /// it carries (for a quote, its newest field's), which is its publish time.
    #[allow(clippy::too_many_arguments)]
    fn on_update(
        &mut self,
        w: &mut Watch,
        slot: usize,
        now: u64,
        epoch: u64,
        id: u64,
        symbol: u32,
        newest: u64,
    ) {
        self.counts.received += 1;
        let published = epoch + newest * 1000;
        self.latency.record(now.saturating_sub(published) / 1000);
        if let Some(pace) = &mut w.pace {
            let (at, n) = &mut pace.arrived[slot];
            if *at > 0 {
                let gap = now.saturating_sub(*at);
                self.counts.gaps += 1;
                self.counts.short_gaps += u64::from(gap < pace.gap_ns);
                self.extremes.min_gap_ns = self.extremes.min_gap_ns.min(gap);
            }
            *at = now;
            *n += 1;
            self.extremes.most = self.extremes.most.max(u64::from(*n));
        }
        let conflicts = &mut self.counts.id_conflicts;
        self.updates
            .entry(update_key(symbol, newest))
            .and_modify(|a| {
                a.first = a.first.min(now);
                a.last = a.last.max(now);
                a.clients += 1;
                a.take_id(id, conflicts);
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
        self.extremes.min_gap_ns = self.extremes.min_gap_ns.min(other.extremes.min_gap_ns);
        self.extremes.most = self.extremes.most.max(other.extremes.most);
        self.latency.merge(&other.latency);
        for (&k, a) in &other.updates {
            let conflicts = &mut self.counts.id_conflicts;
            self.updates
                .entry(k)
                .and_modify(|m| {
                    m.first = m.first.min(a.first);
                    m.last = m.last.max(a.last);
                    m.clients += a.clients;
                    m.take_id(a.id, conflicts);
                })
                .or_insert(*a);
        }
    }

    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        for v in self.counts.to_array() {
            out.write_all(&v.to_le_bytes())?;
        }
        out.write_all(&self.extremes.min_gap_ns.to_le_bytes())?;
        out.write_all(&self.extremes.most.to_le_bytes())?;
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
        let extremes = Extremes {
            min_gap_ns: word(input)?,
            most: word(input)?,
        };
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
            extremes,
            latency,
            updates,
        })
    }
}
