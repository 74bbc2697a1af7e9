//! What each client is due, and who must write now: the universe and the subscriptions
//! together. The core asks it; it never scans the clients.
//!
//! The resume rule. Events always go out in ascending id order, and each update takes the
//! next id, so a client whose last id is `g` has had, for each of its symbols, every value
//! up to `g`: what it is due is exactly its symbols whose last update is above `g`, latest
//! value each, in ascending id order. That one rule serves the snapshot on connect (`g` =
//! 0), a reconnection with `Last-Event-ID: g`, and the catch-up after a slow write: no
//! history, no queue per client, at most one pending update per symbol.

use std::rc::Rc;

use rand::Rng;

use crate::conn::{Kind, Waiter};
use crate::outbox::Outbox;
use crate::protocol::Protocol;
use crate::response;
use crate::subscriptions::Subscriptions;
use crate::universe::{Format, SymbolId, Universe};

/// Where a client resumes: the id after which its symbols' updates are due. Without a
/// `Last-Event-ID`, with one that is not a number (the request gives `None` then), or with
/// one above the newest id (from another run, or made up): 0, the whole snapshot.
pub fn resume_point(last_event_id: Option<u64>, newest: u64) -> u64 {
    match last_event_id {
        Some(g) if g <= newest => g,
        _ => 0,
    }
}

/// The symbols due after id `after`, given each one's last update id, in ascending id
/// order.
pub fn due_after(
    symbols: impl Iterator<Item = SymbolId>,
    updated_at: impl Fn(SymbolId) -> u64,
    after: u64,
    out: &mut Vec<(u64, SymbolId)>,
) {
    out.clear();
    out.extend(
        symbols
            .map(|s| (updated_at(s), s))
            .filter(|&(id, _)| id > after),
    );
    out.sort_unstable();
}

/// What a waiting client writes next.
#[derive(Debug)]
pub struct Delivery {
    pub out: Outbox,
    /// The id the client has once it is written.
    pub last_id: u64,
    /// How many events it carries.
    pub events: u64,
}

pub struct Feed {
    pub universe: Universe,
    subscriptions: Subscriptions,
    /// Reused by `due`.
    scratch: Vec<(u64, SymbolId)>,
    /// Symbol updates applied since start (`tickerd_updates_total`).
    pub updates: u64,
}

impl Feed {
    pub fn new(universe: Universe) -> Feed {
        Feed {
            subscriptions: Subscriptions::new(universe.len()),
            universe,
            scratch: Vec::new(),
            updates: 0,
        }
    }

    /// Applies a batch of updates in order (each takes the next id) and wakes their
    /// subscribers; returns the id of the last.
    pub fn apply(&mut self, batch: &[(SymbolId, u64)]) -> u64 {
        for &(symbol, cents) in batch {
            self.universe.set(symbol, cents);
            self.subscriptions.wake(symbol);
        }
        self.updates += batch.len() as u64;
        self.universe.last_id()
    }

    /// One tick of the random walk: every symbol moves once.
    pub fn walk<R: Rng>(&mut self, rng: &mut R) {
        let moves = self.universe.walk(rng);
        self.apply(&moves);
    }

    /// Updates whose ids were given elsewhere (by Redis): each taken when newer than what its
    /// symbol has, waking its subscribers; returns how many were taken.
    pub fn apply_at(&mut self, updates: impl Iterator<Item = (SymbolId, u64, u64)>) -> usize {
        let mut taken = 0;
        for (symbol, cents, id) in updates {
            if self.universe.set_at(symbol, cents, id) {
                self.subscriptions.wake(symbol);
                taken += 1;
            }
        }
        self.updates += taken as u64;
        taken
    }

    pub fn subscribe(&mut self, key: usize, symbols: &[SymbolId], format: Format) {
        self.subscriptions.subscribe(key, symbols, format);
    }

    pub fn unsubscribe(&mut self, key: usize) {
        self.subscriptions.remove(key);
    }

    /// The clients with updates since the last call, each once.
    pub fn take_woken(&mut self, out: &mut Vec<usize>) {
        self.subscriptions.take_woken(out);
    }

    pub fn has_woken(&self) -> bool {
        self.subscriptions.has_woken()
    }

    /// Puts client `key` back in the woken list (its updates wait for the next fan-out).
    pub fn wake_client(&mut self, key: usize) {
        self.subscriptions.wake_client(key);
    }

    /// Appends to `pieces` the events due to client `key` after id `after` (see the module
    /// comment), each the shared bytes of its symbol's last update; returns the id of the
    /// last, or `None` when nothing is due.
    pub fn due(&mut self, key: usize, after: u64, pieces: &mut Vec<Rc<[u8]>>) -> Option<u64> {
        let (symbols, format) = self.subscriptions.of(key)?;
        let universe = &self.universe;
        due_after(
            symbols,
            |s| universe.updated_at(s),
            after,
            &mut self.scratch,
        );
        for &(_, symbol) in &self.scratch {
            pieces.push(self.universe.event(symbol, format));
        }
        self.scratch.last().map(|&(id, _)| id)
    }

    /// What waiting client `key` writes next: its stream's `head` first when given, then
    /// the events due to it, in one outbox; a long poll's answer gets a head with their
    /// length. `None` when there is nothing to write.
    pub fn delivery(
        &mut self,
        key: usize,
        waiter: Waiter,
        protocol: Protocol,
        head: Option<Rc<[u8]>>,
    ) -> Option<Delivery> {
        let mut pieces: Vec<Rc<[u8]>> = head.into_iter().collect();
        let heads = pieces.len();
        let last = self.due(key, waiter.last_id, &mut pieces);
        if pieces.is_empty() {
            return None;
        }
        let events = (pieces.len() - heads) as u64;
        if waiter.kind == Kind::LongPoll {
            let len = pieces.iter().map(|p| p.len()).sum();
            pieces.insert(0, response::long_poll_head(protocol, len).into());
        }
        Some(Delivery {
            out: Outbox::new(pieces),
            last_id: last.unwrap_or(waiter.last_id),
            events,
        })
    }

    /// Client `key`'s format and symbols, if it has a subscription.
    pub fn symbols_of(&self, key: usize) -> Option<(Format, impl Iterator<Item = SymbolId> + '_)> {
        self.subscriptions
            .of(key)
            .map(|(symbols, format)| (format, symbols))
    }

    /// Whether anything is due to client `key` after id `after`.
    pub fn has_due(&self, key: usize, after: u64) -> bool {
        self.subscriptions
            .of(key)
            .is_some_and(|(mut symbols, _)| symbols.any(|s| self.universe.updated_at(s) > after))
    }

    /// `tickerd_subscriptions`: the sum over clients of their symbols.
    pub fn subscriptions(&self) -> usize {
        self.subscriptions.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbol::Symbol;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn universe(n: usize) -> Universe {
        let listing: Vec<(Symbol, u64)> = (0..n)
            .map(|i| {
                (
                    Symbol::parse(format!("S{i}").as_bytes()).unwrap(),
                    100 + i as u64,
                )
            })
            .collect();
        Universe::new(&listing, 1000)
    }

    fn ids(feed: &mut Feed, key: usize, after: u64) -> Vec<u64> {
        let mut pieces = Vec::new();
        let last = feed.due(key, after, &mut pieces);
        let ids: Vec<u64> = pieces
            .iter()
            .map(|p| {
                let text = std::str::from_utf8(p).unwrap();
                text[4..text.find('\n').unwrap()].parse().unwrap()
            })
            .collect();
        assert_eq!(last, ids.last().copied());
        ids
    }

    #[test]
    fn resume_points() {
        assert_eq!(resume_point(None, 50), 0);
        assert_eq!(resume_point(Some(50), 50), 50);
        assert_eq!(resume_point(Some(7), 50), 7);
        assert_eq!(
            resume_point(Some(51), 50),
            0,
            "from the future: the snapshot"
        );
    }

    #[test]
    fn snapshot_then_changes_since_in_ascending_order() {
        let mut feed = Feed::new(universe(4)); // ids 1000..=1003
        feed.subscribe(7, &[3, 0, 2], Format::Json);
        assert_eq!(ids(&mut feed, 7, 0), [1000, 1002, 1003]);
        feed.apply(&[(2, 5), (1, 6), (0, 7), (2, 8)]); // 1004..=1007
        assert_eq!(
            ids(&mut feed, 7, 1003),
            [1006, 1007],
            "symbol 2 once, its latest"
        );
        assert_eq!(ids(&mut feed, 7, 1006), [1007]);
        assert!(ids(&mut feed, 7, 1007).is_empty());
        assert!(
            ids(&mut feed, 8, 0).is_empty(),
            "no subscription, nothing due"
        );
    }

    #[test]
    fn updates_wake_only_subscribers() {
        let mut feed = Feed::new(universe(3));
        feed.subscribe(1, &[0], Format::Plain);
        feed.subscribe(2, &[1, 2], Format::Json);
        feed.apply(&[(2, 9)]);
        let mut woken = Vec::new();
        feed.take_woken(&mut woken);
        assert_eq!(woken, [2]);
        feed.walk(&mut rand::thread_rng());
        feed.take_woken(&mut woken);
        woken.sort();
        assert_eq!(woken, [1, 2]);
        assert_eq!(feed.updates, 4);
    }

    /// The bytes a browser would receive, cut anywhere, leave its last id (the id of the
    /// last event it dispatched) where resuming gives it the latest of every symbol.
    #[derive(Debug, Clone)]
    enum Step {
        Update(Vec<(SymbolId, u64)>),
        /// Deliver what is due, cut after this many bytes (modulo the length), reconnect.
        Cut(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            proptest::collection::vec((0..6u32, 1..1000u64), 1..8).prop_map(Step::Update),
            (0..2000usize).prop_map(Step::Cut),
        ]
    }

    /// What a browser keeps of an event stream (WHATWG: the last event id is set when an
    /// event is dispatched, at its blank line; an event cut short is never dispatched).
    fn receive(bytes: &[u8], last_id: &mut u64, seen: &mut BTreeMap<String, String>) {
        let text = std::str::from_utf8(bytes).unwrap();
        let mut rest = text;
        while let Some(end) = rest.find("\n\n") {
            let block = &rest[..end];
            rest = &rest[end + 2..];
            let id: u64 = block[4..block.find('\n').unwrap()].parse().unwrap();
            let data = &block[block.find("data: ").unwrap() + 6..];
            let symbol = data.split('"').nth(3).unwrap().to_string();
            let price = data.split('"').nth(7).unwrap().to_string();
            assert!(id > *last_id, "ascending ids: {id} after {}", *last_id);
            *last_id = id;
            seen.insert(symbol, price);
        }
    }

    proptest! {
        #[test]
        fn a_connection_cut_anywhere_resumes_to_the_latest_of_every_symbol(
            steps in proptest::collection::vec(step(), 1..30),
            chosen in proptest::collection::btree_set(0..6u32, 1..6),
        ) {
            let mut feed = Feed::new(universe(6));
            let chosen: Vec<SymbolId> = chosen.into_iter().collect();
            let mut last_id = 0; // the browser's; 0: none yet
            let mut seen = BTreeMap::new();
            for step in steps.iter().chain([&Step::Cut(usize::MAX)]) {
                match step {
                    Step::Update(batch) => {
                        feed.apply(batch);
                    }
                    Step::Cut(at) => {
                        // A reconnection: a new client resuming from the browser's last id.
                        feed.subscribe(1, &chosen, Format::Json);
                        let after = resume_point((last_id > 0).then_some(last_id), feed.universe.last_id());
                        let mut pieces = Vec::new();
                        feed.due(1, after, &mut pieces);
                        let bytes = pieces.concat();
                        let cut = if *at == usize::MAX { bytes.len() } else { at % (bytes.len() + 1) };
                        receive(&bytes[..cut], &mut last_id, &mut seen);
                        feed.unsubscribe(1);
                    }
                }
            }
            // After the last, uncut delivery: the latest value of every chosen symbol.
            for &s in &chosen {
                let name = feed.universe.symbol(s).to_string();
                let price = crate::price::format_price(feed.universe.cents(s));
                prop_assert_eq!(seen.get(&name), Some(&price), "{}", name);
            }
        }
    }
}
