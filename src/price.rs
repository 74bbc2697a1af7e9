//! The price source: a random walk, prices parsed from publishers, and the current event.
//!
//! Prices are kept in whole cents so that "two decimals" is exact and formatting never
//! rounds differently from parsing.

use std::fmt::Write as _;
use std::rc::Rc;

use rand::Rng;

use crate::response::{self, Protocol};
use crate::sse;

/// The largest price accepted, in cents (10^12 currency units): keeps arithmetic far from
/// overflow and the text short.
pub const MAX_CENTS: u64 = 100_000_000_000_000;

/// The newest event: its id, its price and its bytes, formatted once per tick and shared by
/// every client that writes them: as an event in a stream, and as a whole long-poll answer
/// in each protocol's dialect.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: u64,
    pub cents: u64,
    pub sse: Rc<[u8]>,
    long_poll_http: Rc<[u8]>,
    long_poll_scgi: Rc<[u8]>,
}

impl Event {
    pub fn new(id: u64, cents: u64) -> Event {
        let sse = sse::event(id, &format_price(cents));
        Event {
            id,
            cents,
            long_poll_http: response::long_poll(Protocol::Http, &sse).into(),
            long_poll_scgi: response::long_poll(Protocol::Scgi, &sse).into(),
            sse: sse.into(),
        }
    }

    pub fn price(&self) -> String {
        format_price(self.cents)
    }

    /// The whole long-poll answer for this event.
    pub fn long_poll(&self, protocol: Protocol) -> Rc<[u8]> {
        match protocol {
            Protocol::Http => self.long_poll_http.clone(),
            Protocol::Scgi => self.long_poll_scgi.clone(),
        }
    }
}

/// Events kept for streams that are behind by a few ticks folded into one fan-out.
pub const RECENT: usize = 16;

/// Current price, the id counter, and the last few events.
pub struct PriceSource {
    current: Event,
    /// The SSE bytes of the events before the current one, oldest first, at most RECENT - 1.
    earlier: std::collections::VecDeque<(u64, Rc<[u8]>)>,
}

impl PriceSource {
    /// `first_id` should be above any id an earlier run reached (see `first_event_id`).
    pub fn new(first_id: u64, cents: u64) -> PriceSource {
        PriceSource {
            current: Event::new(first_id, cents),
            earlier: std::collections::VecDeque::with_capacity(RECENT),
        }
    }

    pub fn current(&self) -> &Event {
        &self.current
    }

    /// A new tick with the given price; the id grows by exactly one.
    pub fn set(&mut self, cents: u64) -> &Event {
        if self.earlier.len() == RECENT - 1 {
            self.earlier.pop_front();
        }
        self.earlier
            .push_back((self.current.id, self.current.sse.clone()));
        self.current = Event::new(self.current.id + 1, cents);
        &self.current
    }

    /// The events after `id` up to the current one, as one stream chunk, and how many:
    /// `None` when `id` is current, or when the events after it are no longer all kept.
    pub fn since(&self, id: u64) -> Option<(Rc<[u8]>, u64)> {
        let count = self
            .current
            .id
            .checked_sub(id)
            .filter(|&n| n >= 1 && n - 1 <= self.earlier.len() as u64)?;
        if count == 1 {
            return Some((self.current.sse.clone(), 1));
        }
        let mut bytes = Vec::with_capacity(count as usize * self.current.sse.len());
        for (_, sse) in self.earlier.iter().filter(|(e, _)| *e > id) {
            bytes.extend_from_slice(sse);
        }
        bytes.extend_from_slice(&self.current.sse);
        Some((bytes.into(), count))
    }

    /// A tick of the random walk.
    pub fn walk<R: Rng>(&mut self, rng: &mut R) -> &Event {
        self.set(random_step(self.current.cents, rng))
    }
}

/// The catch-up chunks of one fan-out, made on demand, once per starting id, and shared by
/// every stream parked at that id.
pub struct CatchUp<'a> {
    source: &'a PriceSource,
    made: Vec<(u64, Rc<[u8]>, u64)>,
}

impl<'a> CatchUp<'a> {
    pub fn new(source: &'a PriceSource) -> Self {
        CatchUp {
            source,
            made: Vec::new(),
        }
    }

    /// The events after `id`, when more than one and all still kept: (bytes, count).
    pub fn after(&mut self, id: u64) -> Option<(Rc<[u8]>, u64)> {
        if self.source.current.id <= id + 1 {
            return None; // up to date, or one behind: the current event alone does
        }
        if let Some((_, bytes, count)) = self.made.iter().find(|(from, _, _)| *from == id) {
            return Some((bytes.clone(), *count));
        }
        let (bytes, count) = self.source.since(id)?;
        self.made.push((id, bytes.clone(), count));
        Some((bytes, count))
    }
}

/// One step of the random walk: up to ±0.5 % per tick, never below one cent.
pub fn random_step<R: Rng>(cents: u64, rng: &mut R) -> u64 {
    let cents = cents as f64;
    let step = cents * rng.gen_range(-0.005..=0.005);
    (cents + step).round().clamp(1.0, MAX_CENTS as f64) as u64
}

/// The first id of a run: the wall clock in microseconds. Ids grow by one per tick, so an
/// earlier run's ids stay below it unless that run ticked more than a million times a
/// second on average; an id a browser remembers from before a restart is never current.
pub fn first_event_id(now: std::time::SystemTime) -> u64 {
    now.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

pub fn format_price(cents: u64) -> String {
    let mut s = String::with_capacity(16);
    let _ = write!(s, "{}.{:02}", cents / 100, cents % 100);
    s
}

#[derive(Debug, PartialEq, Eq)]
pub struct BadPrice;

/// A publisher's price: `123.45` or `price=123.45`, surrounding white space ignored.
/// Must be a positive finite number that is at least one cent once rounded.
pub fn parse_price(text: &str) -> Result<u64, BadPrice> {
    let text = text.trim();
    let text = text.strip_prefix("price=").unwrap_or(text).trim();
    // Only plain decimals: f64's parser would also take "inf", "NaN" and "1e3".
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(BadPrice);
    }
    let value: f64 = text.parse().map_err(|_| BadPrice)?;
    let cents = (value * 100.0).round();
    if !cents.is_finite() || cents < 1.0 || cents > MAX_CENTS as f64 {
        return Err(BadPrice);
    }
    Ok(cents as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn formats_two_decimals() {
        assert_eq!(format_price(10_000), "100.00");
        assert_eq!(format_price(5), "0.05");
        assert_eq!(format_price(12_345), "123.45");
    }

    #[test]
    fn parses_publisher_prices() {
        assert_eq!(parse_price("123.45"), Ok(12_345));
        assert_eq!(parse_price("price=123.45\n"), Ok(12_345));
        assert_eq!(parse_price(" 7 "), Ok(700));
        assert_eq!(parse_price("0.005"), Ok(1));
        for bad in [
            "", "0", "0.00", "-1", "abc", "inf", "NaN", "1e3", "1.2.3", "price=", "1,5",
        ] {
            assert_eq!(parse_price(bad), Err(BadPrice), "{bad:?}");
        }
        assert_eq!(parse_price("1000000000000000"), Err(BadPrice));
    }

    #[test]
    fn ids_grow_by_one_and_walk_stays_positive() {
        let mut source = PriceSource::new(41, 1);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for n in 0..1000u64 {
            let e = source.walk(&mut rng);
            assert_eq!(e.id, 42 + n);
            assert!(e.cents >= 1);
        }
    }

    #[test]
    fn since_gives_every_event_after_an_id_while_kept() {
        let mut source = PriceSource::new(10, 100);
        assert!(source.since(10).is_none(), "nothing after the current id");
        source.set(200);
        source.set(300);
        let (bytes, n) = source.since(10).unwrap();
        assert_eq!(n, 2);
        assert_eq!(&*bytes, b"id: 11\ndata: 2.00\n\nid: 12\ndata: 3.00\n\n");
        assert_eq!(&*source.since(11).unwrap().0, b"id: 12\ndata: 3.00\n\n");
        for cents in 0..RECENT as u64 {
            source.set(400 + cents);
        }
        assert!(source.since(10).is_none(), "too far behind: newest only");
        let (bytes, n) = source.since(source.current().id - RECENT as u64).unwrap();
        assert_eq!(n, RECENT as u64);
        assert_eq!(bytes.len(), RECENT * source.current().sse.len());
    }

    #[test]
    fn since_refuses_ids_before_what_is_kept() {
        let mut source = PriceSource::new(10, 100);
        source.set(200);
        // Kept: events 10 and 11. After 8 would need 9 too.
        assert_eq!(source.since(8), None);
        assert_eq!(source.since(9).map(|(_, n)| n), Some(2));
        assert_eq!(source.since(10).map(|(_, n)| n), Some(1));
    }

    #[test]
    fn catch_up_chunks_per_starting_id() {
        let mut source = PriceSource::new(10, 100);
        for cents in [200, 300, 400] {
            source.set(cents);
        }
        let mut catch_up = CatchUp::new(&source);
        assert!(catch_up.after(13).is_none(), "current");
        assert!(catch_up.after(12).is_none(), "one behind: the event alone");
        let (a, n) = catch_up.after(11).unwrap();
        assert_eq!(
            (n, &*a),
            (2, &b"id: 12\ndata: 3.00\n\nid: 13\ndata: 4.00\n\n"[..])
        );
        let (b, _) = catch_up.after(11).unwrap();
        assert!(Rc::ptr_eq(&a, &b), "made once, shared");
        assert_eq!(catch_up.after(10).unwrap().1, 3);
    }

    #[test]
    fn event_bytes_are_sse() {
        let e = Event::new(9, 101);
        assert_eq!(&*e.sse, b"id: 9\ndata: 1.01\n\n");
    }

    #[test]
    fn first_id_is_above_an_earlier_runs_ids() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let earlier = first_event_id(t);
        // An earlier run that lived one second and ticked a thousand times a second...
        let reached = earlier + 1000;
        // ...stays below the next run's first id, one second later.
        assert!(first_event_id(t + std::time::Duration::from_secs(1)) > reached);
    }
}
