//! The many-symbol workload (`--symbols U --subscribe K --zipf S`), the same in every
//! process of the bench: the symbols' names, each client's choice of K of them with Zipf
//! popularity (drawn from a seed, so the coordinator, the workers and every system see the
//! same subscriptions), the publishers' batches, and the event text.
//!
//! Prices carry the publish time: a published price in cents is the microseconds from the
//! run's epoch to the moment the coordinator published it, so a worker turns each event it
//! receives into a latency with no table, and every update of a symbol has a value of its
//! own (publish times only grow). The price before any publish is 0.01 (`SNAPSHOT_CENTS`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Every symbol's price before the first publish: events with it are the snapshot.
pub const SNAPSHOT_CENTS: u64 = 1;

/// The names: `S0000`, `S0001`, … (at least four digits: five characters, a typical
/// ticker's length). Index 0 is the most popular and the universe's default symbol.
#[derive(Debug, Clone, Copy)]
pub struct Universe {
    pub count: usize,
    digits: usize,
}

impl Universe {
    pub fn new(count: usize) -> Universe {
        Universe {
            count,
            digits: (count.saturating_sub(1)).to_string().len().max(4),
        }
    }

    pub fn name(&self, index: u32) -> String {
        format!("S{index:0width$}", width = self.digits)
    }

    /// `--symbols-file` for tickerd: one `SYM PRICE` a line.
    pub fn listing(&self) -> String {
        (0..self.count as u32)
            .map(|i| format!("{} 0.01\n", self.name(i)))
            .collect()
    }

    /// The `symbols=` value for a subscription.
    pub fn query(&self, symbols: &[u32]) -> String {
        let names: Vec<String> = symbols.iter().map(|&s| self.name(s)).collect();
        names.join(",")
    }
}

/// A symbol's index from its name (`S0042` → 42), if it is one of ours.
pub fn parse_name(name: &[u8]) -> Option<u32> {
    let digits = name.strip_prefix(b"S")?;
    parse_u64(digits).and_then(|n| u32::try_from(n).ok())
}

/// A plain decimal, no sign, no spaces, at most 19 digits.
pub fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 {
        return None;
    }
    text.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// `123.45` → 12345 (exactly two decimals, as every server here writes them).
pub fn parse_cents(text: &[u8]) -> Option<u64> {
    let (units, cents) = text.split_at_checked(text.len().checked_sub(3)?)?;
    let cents = cents.strip_prefix(b".")?;
    Some(parse_u64(units)? * 100 + parse_u64(cents)?)
}

pub fn format_cents(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// An event's data, as tickerd writes it for a many-symbol stream and as the bench
/// publishes it to nchan and the floor: `{"symbol":"S0042","price":"123.45"}`.
pub fn event_data(name: &str, cents: u64) -> String {
    format!(
        "{{\"symbol\":\"{name}\",\"price\":\"{}\"}}",
        format_cents(cents)
    )
}

/// The (symbol, cents) of an event's data, or `None` if it is not in that exact shape.
pub fn parse_event_data(data: &[u8]) -> Option<(u32, u64)> {
    let rest = data.strip_prefix(b"{\"symbol\":\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    let symbol = parse_name(&rest[..end])?;
    let rest = rest[end..].strip_prefix(b"\",\"price\":\"")?;
    let price = rest.strip_suffix(b"\"}")?;
    Some((symbol, parse_cents(price)?))
}

/// Zipf popularity over `n` ranks: rank r (0-based) has weight 1 / (r + 1)^s.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (0..n)
            .map(|r| {
                total += 1.0 / ((r + 1) as f64).powf(s);
                total
            })
            .collect();
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    pub fn sample<R: Rng>(&self, rng: &mut R) -> usize {
        let u: f64 = rng.gen();
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1)
    }

    /// `k` distinct ranks, drawn by popularity (in the order drawn). Rejection stops after
    /// a bounded number of tries, then takes the most popular ranks not drawn yet, so a
    /// very skewed distribution with k close to n still ends.
    pub fn distinct<R: Rng>(&self, k: usize, rng: &mut R) -> Vec<u32> {
        let n = self.cdf.len();
        let k = k.min(n);
        let mut taken = vec![false; n];
        let mut out = Vec::with_capacity(k);
        let mut tries = 0;
        while out.len() < k && tries < 100 * k {
            tries += 1;
            let r = self.sample(rng);
            if !taken[r] {
                taken[r] = true;
                out.push(r as u32);
            }
        }
        for (r, t) in taken.iter().enumerate() {
            if out.len() == k {
                break;
            }
            if !t {
                out.push(r as u32);
            }
        }
        out
    }
}

/// The seed of client `client` of worker `worker` (the same worker index in every system).
pub fn client_seed(worker: u64, client: u64) -> u64 {
    0x5eed_0000_0000_0000 ^ (worker << 32) ^ client
}

/// A client's symbols.
pub fn subscription(zipf: &Zipf, k: usize, seed: u64) -> Vec<u32> {
    zipf.distinct(k, &mut StdRng::seed_from_u64(seed))
}

/// The publishers' batches: each `size` distinct symbols, uniformly at random (every
/// symbol is updated at the same rate; popularity is in who subscribes).
pub struct Batches {
    rng: StdRng,
    all: Vec<u32>,
}

impl Batches {
    pub fn new(universe: usize, seed: u64) -> Batches {
        Batches {
            rng: StdRng::seed_from_u64(seed),
            all: (0..universe as u32).collect(),
        }
    }

    pub fn next(&mut self, size: usize) -> Vec<u32> {
        let size = size.min(self.all.len());
        // A partial Fisher–Yates shuffle: the first `size` places are the batch.
        for i in 0..size {
            let j = self.rng.gen_range(i..self.all.len());
            self.all.swap(i, j);
        }
        self.all[..size].to_vec()
    }
}

/// The checks of this module's own logic, run by the smoke run (a `harness = false` bench
/// target gets no `#[test]`s).
pub fn self_check() {
    names_and_events_round_trip();
    zipf_subscriptions_are_distinct_seeded_and_skewed();
    batches_are_distinct();
}

fn names_and_events_round_trip() {
    let u = Universe::new(1000);
    assert_eq!(u.name(42), "S0042");
    assert_eq!(parse_name(b"S0042"), Some(42));
    assert_eq!(Universe::new(100_000).name(7), "S00007");
    let data = event_data("S0042", 1_234_567);
    assert_eq!(data, "{\"symbol\":\"S0042\",\"price\":\"12345.67\"}");
    assert_eq!(parse_event_data(data.as_bytes()), Some((42, 1_234_567)));
    assert_eq!(
        parse_event_data(b"{\"symbol\":\"S1\",\"price\":\"0.01\"}"),
        Some((1, 1))
    );
    for bad in [
        &b"12.00"[..],
        b"{\"symbol\":\"X1\",\"price\":\"1.00\"}",
        b"{\"symbol\":\"S1\",\"price\":\"1.0\"}",
    ] {
        assert_eq!(parse_event_data(bad), None);
    }
}

fn zipf_subscriptions_are_distinct_seeded_and_skewed() {
    let z = Zipf::new(1000, 1.0);
    let a = subscription(&z, 20, client_seed(1, 2));
    assert_eq!(a, subscription(&z, 20, client_seed(1, 2)));
    let mut sorted = a.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 20);
    let top = (0..1000)
        .filter(|&c| subscription(&z, 20, client_seed(0, c)).contains(&0))
        .count();
    assert!(top > 850, "the top symbol is in most subscriptions: {top}");
    // Skewed enough that rejection gives up: still k distinct.
    let all = Zipf::new(10, 8.0).distinct(10, &mut StdRng::seed_from_u64(1));
    assert_eq!(all.len(), 10);
}

fn batches_are_distinct() {
    let mut b = Batches::new(50, 1);
    for _ in 0..100 {
        let mut x = b.next(20);
        x.sort();
        x.dedup();
        assert_eq!(x.len(), 20);
    }
}
