//! A latency histogram that workers fill at a million events a second and the coordinator
//! merges: log-linear buckets (64 per power of two, so any value is within 1.6 % of its
//! bucket's), fixed size, written and read as raw little-endian counts.

use std::io::{self, Read, Write};

/// Sub-buckets per power of two.
const SUB: u64 = 64;
/// Values below this have a bucket each.
const LINEAR: u64 = 2 * SUB;
pub const BUCKETS: usize = LINEAR as usize + (64 - 7) * SUB as usize;

#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    pub total: u64,
    pub max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let bits = 63 - v.leading_zeros() as u64; // ≥ 7
    let shift = bits - 6;
    let mantissa = v >> shift; // 64..128
    (LINEAR + (bits - 7) * SUB + (mantissa - SUB)) as usize
}

/// The middle of bucket `i`.
fn value(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let bits = (i - LINEAR) / SUB + 7;
    let shift = bits - 6;
    let mantissa = (i - LINEAR) % SUB + SUB;
    (mantissa << shift) + (1 << shift) / 2
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `p` (as `report::percentile` picks it: rank round((n-1)·p)).
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((self.total - 1) as f64 * p).round() as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return value(i).min(self.max);
            }
        }
        self.max
    }

    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.total.to_le_bytes())?;
        out.write_all(&self.max.to_le_bytes())?;
        for c in &self.counts {
            out.write_all(&c.to_le_bytes())?;
        }
        Ok(())
    }

    pub fn read_from(input: &mut impl Read) -> io::Result<Histogram> {
        let mut word = [0u8; 8];
        let mut next = || -> io::Result<u64> {
            input.read_exact(&mut word)?;
            Ok(u64::from_le_bytes(word))
        };
        let total = next()?;
        let max = next()?;
        let counts = (0..BUCKETS).map(|_| next()).collect::<io::Result<_>>()?;
        Ok(Histogram { counts, total, max })
    }
}

/// The checks of this module's own logic, run by the smoke run (a `harness = false` bench
/// target gets no `#[test]`s).
pub fn self_check() {
    buckets_are_within_two_percent();
    percentiles_merge_and_round_trip();
}

fn buckets_are_within_two_percent() {
    for v in (0..100_000u64).chain([1 << 40, u64::MAX / 3]) {
        let i = index(v);
        assert!(i < BUCKETS);
        let mid = value(i);
        let err = (mid as f64 - v as f64).abs() / (v.max(1) as f64);
        assert!(err <= 1.0 / 64.0, "{v}: {mid}");
    }
}

fn percentiles_merge_and_round_trip() {
    let mut a = Histogram::default();
    let mut b = Histogram::default();
    for v in 1..=1000 {
        if v % 2 == 0 {
            a.record(v)
        } else {
            b.record(v)
        }
    }
    a.merge(&b);
    let mut bytes = Vec::new();
    a.write_to(&mut bytes).unwrap();
    let h = Histogram::read_from(&mut bytes.as_slice()).unwrap();
    assert_eq!((h.total, h.max), (1000, 1000));
    let p50 = h.percentile(0.5) as f64;
    assert!((p50 - 500.0).abs() < 10.0, "{p50}");
    let p99 = h.percentile(0.99) as f64;
    assert!((p99 - 990.0).abs() < 16.0, "{p99}");
    assert_eq!(h.percentile(1.0), 1000);
}
