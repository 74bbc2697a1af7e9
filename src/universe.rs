//! The universe: every symbol tickerd carries, its current price and the id of its last
//! update, and one id sequence for all of them. Each symbol's event bytes are made at most
//! once per update, when a client first needs them, and shared by every client after.
//!
//! Ids: every update of one symbol takes the next id of the one sequence, so "the id of a
//! symbol's last update" is the whole resume state. At start the symbols take consecutive
//! ids in universe order (as if one batch had set them all), so no two events ever share an
//! id.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

use rand::Rng;

use crate::price::{format_price, random_step};
use crate::sse;
use crate::symbol::Symbol;

/// A symbol's place in the universe.
pub type SymbolId = u32;

/// How a stream shows events: the single-price stream of `GET /ticker` (`data: 189.20`),
/// or the many-symbol stream (`data: {"symbol":"AAPL","price":"189.20"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Json,
}

struct Entry {
    symbol: Symbol,
    cents: u64,
    last_id: u64,
    /// The JSON event of the last update, once a client has needed it.
    json: Option<Rc<[u8]>>,
}

pub struct Universe {
    entries: Vec<Entry>,
    by_name: HashMap<Symbol, SymbolId>,
    /// The id of the newest update.
    last_id: u64,
    /// The plain event of the default symbol's last update (only that symbol has one).
    plain: Option<(u64, Rc<[u8]>)>,
}

/// The symbol named first: what `GET /ticker` without `symbols` streams.
pub const DEFAULT_SYMBOL: SymbolId = 0;

impl Universe {
    /// `listing`: the symbols in order, with their first prices; at least one, no duplicates
    /// (the command line has checked). `first_id`: above any id an earlier run reached.
    pub fn new(listing: &[(Symbol, u64)], first_id: u64) -> Universe {
        assert!(!listing.is_empty(), "a universe has at least one symbol");
        let entries: Vec<Entry> = listing
            .iter()
            .zip(first_id..)
            .map(|(&(symbol, cents), id)| Entry {
                symbol,
                cents,
                last_id: id,
                json: None,
            })
            .collect();
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.symbol, i as SymbolId))
            .collect();
        Universe {
            last_id: first_id + listing.len() as u64 - 1,
            entries,
            by_name,
            plain: None,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The id of the newest update of any symbol.
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    pub fn find(&self, symbol: &Symbol) -> Option<SymbolId> {
        self.by_name.get(symbol).copied()
    }

    pub fn symbol(&self, id: SymbolId) -> Symbol {
        self.entries[id as usize].symbol
    }

    pub fn cents(&self, id: SymbolId) -> u64 {
        self.entries[id as usize].cents
    }

    /// The id of this symbol's last update.
    pub fn updated_at(&self, id: SymbolId) -> u64 {
        self.entries[id as usize].last_id
    }

    /// One update: the symbol takes the next id; returns it.
    pub fn set(&mut self, id: SymbolId, cents: u64) -> u64 {
        self.last_id += 1;
        let entry = &mut self.entries[id as usize];
        entry.cents = cents;
        entry.last_id = self.last_id;
        entry.json = None;
        self.last_id
    }

    /// An update whose id was given elsewhere (by Redis, for every instance alike): taken
    /// only when newer than what the symbol has; returns whether it was.
    pub fn set_at(&mut self, symbol: SymbolId, cents: u64, id: u64) -> bool {
        let entry = &mut self.entries[symbol as usize];
        if id <= entry.last_id {
            return false;
        }
        entry.cents = cents;
        entry.last_id = id;
        entry.json = None;
        self.last_id = self.last_id.max(id);
        true
    }

    /// A symbol's price and id as the binary before a live upgrade had them, exactly.
    pub fn restore(&mut self, symbol: SymbolId, cents: u64, id: u64) {
        let entry = &mut self.entries[symbol as usize];
        entry.cents = cents;
        entry.last_id = id;
        entry.json = None;
    }

    /// After `restore`: the newest id is the previous binary's, or a symbol's new to this one.
    pub fn restore_last_id(&mut self, id: u64) {
        let newest = self.entries.iter().map(|e| e.last_id).max().unwrap_or(0);
        self.last_id = id.max(newest);
        self.plain = None;
    }

    /// The sequence has reached `id` elsewhere (a counter raised without updates).
    pub fn reach(&mut self, id: u64) {
        self.last_id = self.last_id.max(id);
    }

    /// One tick of the random walk: every symbol's next price, in universe order.
    pub fn walk<R: Rng>(&self, rng: &mut R) -> Vec<(SymbolId, u64)> {
        (0..self.entries.len() as SymbolId)
            .map(|id| (id, random_step(self.entries[id as usize].cents, rng)))
            .collect()
    }

    /// The event of this symbol's last update, made on first need and shared after.
    pub fn event(&mut self, id: SymbolId, format: Format) -> Rc<[u8]> {
        let entry = &mut self.entries[id as usize];
        match format {
            Format::Json => entry
                .json
                .get_or_insert_with(|| {
                    let data = format!(
                        "{{\"symbol\":\"{}\",\"price\":\"{}\"}}",
                        entry.symbol,
                        format_price(entry.cents)
                    );
                    sse::event(entry.last_id, &data).into()
                })
                .clone(),
            Format::Plain => match &self.plain {
                Some((at, bytes)) if *at == entry.last_id => bytes.clone(),
                _ => {
                    let bytes: Rc<[u8]> =
                        sse::event(entry.last_id, &format_price(entry.cents)).into();
                    self.plain = Some((entry.last_id, bytes.clone()));
                    bytes
                }
            },
        }
    }

    /// `GET /symbols`: `[{"symbol":…,"price":…,"id":…},…]` in universe order, the names
    /// starting with `prefix` (upper case), at most `limit` of them.
    pub fn listing_json(&self, prefix: &str, limit: usize) -> String {
        let mut out = String::with_capacity(64 * self.entries.len().min(limit) + 2);
        out.push('[');
        for e in self
            .entries
            .iter()
            .filter(|e| e.symbol.as_str().starts_with(prefix))
            .take(limit)
        {
            if out.len() > 1 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"symbol\":\"{}\",\"price\":\"{}\",\"id\":{}}}",
                e.symbol,
                format_price(e.cents),
                e.last_id
            );
        }
        out.push_str("]\n");
        out
    }
}

/// Eight symbols with plausible prices, so that `cargo run --release` shows a moving
/// watchlist; the first is the default symbol.
pub const DEMO: &[(&str, u64)] = &[
    ("AAPL", 18_920),
    ("MSFT", 41_530),
    ("NVDA", 12_170),
    ("AMZN", 18_640),
    ("GOOGL", 17_190),
    ("META", 50_310),
    ("TSLA", 24_850),
    ("BRK.B", 41_280),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s.as_bytes()).unwrap()
    }

    fn universe() -> Universe {
        Universe::new(&[(sym("AAPL"), 18_920), (sym("MSFT"), 41_530)], 100)
    }

    #[test]
    fn symbols_start_with_consecutive_ids() {
        let u = universe();
        assert_eq!(
            (u.updated_at(0), u.updated_at(1), u.last_id()),
            (100, 101, 101)
        );
        assert_eq!(u.find(&sym("msft")), Some(1));
        assert_eq!(u.find(&sym("IBM")), None);
    }

    #[test]
    fn each_update_takes_the_next_id() {
        let mut u = universe();
        assert_eq!(u.set(1, 500), 102);
        assert_eq!(u.set(1, 600), 103);
        assert_eq!(u.set(0, 700), 104);
        assert_eq!((u.updated_at(0), u.updated_at(1)), (104, 103));
        assert_eq!(u.cents(1), 600);
    }

    #[test]
    fn events_are_made_once_per_update_and_shared() {
        let mut u = universe();
        let a = u.event(0, Format::Json);
        assert_eq!(
            &*a,
            b"id: 100\ndata: {\"symbol\":\"AAPL\",\"price\":\"189.20\"}\n\n"
        );
        assert!(Rc::ptr_eq(&a, &u.event(0, Format::Json)));
        let p = u.event(0, Format::Plain);
        assert_eq!(&*p, b"id: 100\ndata: 189.20\n\n");
        assert!(Rc::ptr_eq(&p, &u.event(0, Format::Plain)));
        u.set(0, 1);
        assert_eq!(
            &*u.event(0, Format::Json),
            b"id: 102\ndata: {\"symbol\":\"AAPL\",\"price\":\"0.01\"}\n\n"
        );
        assert_eq!(&*u.event(0, Format::Plain), b"id: 102\ndata: 0.01\n\n");
    }

    #[test]
    fn a_walk_moves_every_symbol_once() {
        use rand::SeedableRng;
        let u = universe();
        let moves = u.walk(&mut rand::rngs::StdRng::seed_from_u64(1));
        assert_eq!(moves.iter().map(|&(s, _)| s).collect::<Vec<_>>(), [0, 1]);
        assert!(moves[1].1.abs_diff(41_530) <= 208);
    }

    #[test]
    fn updates_with_given_ids_are_taken_when_newer() {
        let mut u = universe();
        assert!(u.set_at(1, 7, 500));
        assert!(!u.set_at(1, 8, 500), "the same id again");
        assert!(!u.set_at(0, 8, 50), "older than what it has");
        assert_eq!((u.cents(1), u.updated_at(1), u.last_id()), (7, 500, 500));
        u.reach(900);
        assert_eq!(u.last_id(), 900);
        u.reach(10);
        assert_eq!(u.last_id(), 900);
    }

    #[test]
    fn listing() {
        let u = universe();
        assert_eq!(
            u.listing_json("", usize::MAX),
            "[{\"symbol\":\"AAPL\",\"price\":\"189.20\",\"id\":100},\
             {\"symbol\":\"MSFT\",\"price\":\"415.30\",\"id\":101}]\n"
        );
        assert_eq!(
            u.listing_json("M", 5),
            "[{\"symbol\":\"MSFT\",\"price\":\"415.30\",\"id\":101}]\n"
        );
        assert_eq!(u.listing_json("", 0), "[]\n");
    }

    #[test]
    fn the_demo_universe_is_valid() {
        for (name, cents) in DEMO {
            assert_eq!(sym(name).as_str(), *name);
            assert!(*cents > 0);
        }
    }
}
