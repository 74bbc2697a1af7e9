//! Who streams which symbols: the one owner of every subscription. For each symbol, its
//! subscribers; for each client (by connection key), its symbols. Each side records where
//! the other keeps it, so that removing a client costs O(its symbols) and an update costs
//! O(its subscribers): nothing here ever scans every client.
//!
//! A client's subscription is removed when its connection closes, before its key can be
//! reused, so a new client on an old key starts with nothing of the old one's.

use crate::schema::FieldMask;
use crate::universe::{Format, SymbolId, View};

/// A symbol of a client's, with the position of that client in the symbol's list.
type Held = (SymbolId, u32);

/// A client's symbols: one (the single-price stream, and most of a one-symbol universe's
/// clients) held inline, so that it costs no allocation of its own.
enum Symbols {
    One(Held),
    Many(Vec<Held>),
}

impl Symbols {
    fn as_slice(&self) -> &[Held] {
        match self {
            Symbols::One(held) => std::slice::from_ref(held),
            Symbols::Many(all) => all,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Held] {
        match self {
            Symbols::One(held) => std::slice::from_mut(held),
            Symbols::Many(all) => all,
        }
    }
}

/// One client's subscription.
struct Subscriber {
    /// Its symbols, each with the position of this client in that symbol's list.
    symbols: Symbols,
    // The view's two parts, side by side with `woken` (a `View` field would pad to 8
    // bytes: every stream pays for this struct).
    fields: FieldMask,
    format: Format,
    /// Already in the woken list of this round.
    woken: bool,
}

/// A symbol's subscribers: (client key, position of the symbol in that client's list).
type Subscribers = Vec<(u32, u32)>;

pub struct Subscriptions {
    by_symbol: Vec<Subscribers>,
    /// Indexed by connection key; `None` for keys without a subscription.
    by_client: Vec<Option<Subscriber>>,
    /// Clients with an update since the last `take_woken`, each once.
    woken: Vec<usize>,
    /// The sum over clients of their symbols.
    total: usize,
}

impl Subscriptions {
    pub fn new(symbols: usize) -> Subscriptions {
        Subscriptions {
            by_symbol: vec![Vec::new(); symbols],
            by_client: Vec::new(),
            woken: Vec::new(),
            total: 0,
        }
    }

    /// Subscribes client `key` to `symbols` (distinct) seeing `view`, replacing what it had.
    pub fn subscribe(&mut self, key: usize, symbols: &[SymbolId], view: View) {
        self.remove(key);
        if self.by_client.len() <= key {
            self.by_client.resize_with(key + 1, || None);
        }
        let mut mine = Vec::with_capacity(symbols.len());
        for (at, &symbol) in symbols.iter().enumerate() {
            let list = &mut self.by_symbol[symbol as usize];
            mine.push((symbol, list.len() as u32));
            list.push((key as u32, at as u32));
        }
        self.total += mine.len();
        let mine = match mine.as_slice() {
            &[one] => Symbols::One(one),
            _ => Symbols::Many(mine),
        };
        self.by_client[key] = Some(Subscriber {
            symbols: mine,
            fields: view.fields,
            format: view.format,
            woken: false,
        });
    }

    /// Ends client `key`'s subscription, if it has one.
    pub fn remove(&mut self, key: usize) {
        let Some(gone) = self.by_client.get_mut(key).and_then(Option::take) else {
            return;
        };
        self.total -= gone.symbols.as_slice().len();
        for &(symbol, pos) in gone.symbols.as_slice() {
            let list = &mut self.by_symbol[symbol as usize];
            list.swap_remove(pos as usize);
            // The last subscriber moved into the hole: tell it where it now is.
            if let Some(&(moved, at)) = list.get(pos as usize) {
                if let Some(Some(sub)) = self.by_client.get_mut(moved as usize) {
                    sub.symbols.as_mut_slice()[at as usize].1 = pos;
                }
            }
        }
        if self.by_client.len() == key + 1 {
            while self.by_client.last().is_some_and(Option::is_none) {
                self.by_client.pop();
            }
        }
    }

    /// A symbol was updated: each of its subscribers joins the woken list, once per round.
    pub fn wake(&mut self, symbol: SymbolId) {
        for &(key, _) in &self.by_symbol[symbol as usize] {
            // Every listed key has a subscriber: removal takes it off its symbols' lists.
            if let Some(Some(sub)) = self.by_client.get_mut(key as usize) {
                if !sub.woken {
                    sub.woken = true;
                    self.woken.push(key as usize);
                }
            }
        }
    }

    /// Puts client `key` in the woken list, once per round.
    pub fn wake_client(&mut self, key: usize) {
        if let Some(Some(sub)) = self.by_client.get_mut(key) {
            if !sub.woken {
                sub.woken = true;
                self.woken.push(key);
            }
        }
    }

    /// Moves the clients woken since the last call into `out` (cleared first).
    pub fn take_woken(&mut self, out: &mut Vec<usize>) {
        out.clear();
        std::mem::swap(out, &mut self.woken);
        for &key in out.iter() {
            if let Some(Some(sub)) = self.by_client.get_mut(key) {
                sub.woken = false;
            }
        }
    }

    pub fn has_woken(&self) -> bool {
        !self.woken.is_empty()
    }

    /// Client `key`'s symbols and view.
    pub fn of(&self, key: usize) -> Option<(impl Iterator<Item = SymbolId> + '_, View)> {
        let sub = self.by_client.get(key)?.as_ref()?;
        Some((
            sub.symbols.as_slice().iter().map(|&(s, _)| s),
            View {
                format: sub.format,
                fields: sub.fields,
            },
        ))
    }

    #[cfg(test)]
    fn subscribers(&self, symbol: SymbolId) -> usize {
        self.by_symbol[symbol as usize].len()
    }

    /// The sum over clients of their symbols (`tickerd_subscriptions`).
    pub fn total(&self) -> usize {
        self.total
    }

    /// Checks that both sides agree (tests).
    #[cfg(test)]
    fn check(&self) {
        let mut total = 0;
        for (key, sub) in self.by_client.iter().enumerate() {
            let Some(sub) = sub else { continue };
            total += sub.symbols.as_slice().len();
            for (at, &(symbol, pos)) in sub.symbols.as_slice().iter().enumerate() {
                assert_eq!(
                    self.by_symbol[symbol as usize][pos as usize],
                    (key as u32, at as u32)
                );
            }
        }
        let listed: usize = self.by_symbol.iter().map(Vec::len).sum();
        assert_eq!((total, listed), (self.total, self.total));
    }
}

#[cfg(test)]
mod tests {

    const JSON: View = View {
        format: Format::Json,
        fields: 1,
    };
    const PLAIN: View = View {
        format: Format::Plain,
        fields: 1,
    };
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn woken(s: &mut Subscriptions) -> BTreeSet<usize> {
        let mut out = Vec::new();
        s.take_woken(&mut out);
        let set: BTreeSet<usize> = out.iter().copied().collect();
        assert_eq!(set.len(), out.len(), "each client once per round");
        set
    }

    #[test]
    fn an_update_wakes_its_subscribers_once() {
        let mut s = Subscriptions::new(4);
        s.subscribe(0, &[0, 1], JSON);
        s.subscribe(1, &[1], JSON);
        s.subscribe(2, &[3], PLAIN);
        s.wake(1);
        s.wake(0);
        s.wake(1);
        assert_eq!(woken(&mut s), BTreeSet::from([0, 1]));
        assert!(woken(&mut s).is_empty());
        assert_eq!(s.total(), 4);
        s.check();
    }

    #[test]
    fn a_reused_key_gets_nothing_of_the_old_subscription() {
        let mut s = Subscriptions::new(3);
        s.subscribe(5, &[0, 1], JSON);
        s.remove(5);
        // The connection key 5 is reused by a client of symbol 2 only.
        s.subscribe(5, &[2], JSON);
        s.wake(0);
        s.wake(1);
        assert!(woken(&mut s).is_empty(), "an old subscription's update");
        s.wake(2);
        assert_eq!(woken(&mut s), BTreeSet::from([5]));
        assert_eq!(s.of(5).unwrap().0.collect::<Vec<_>>(), [2]);
        s.check();
    }

    #[test]
    fn a_key_woken_then_reused_is_woken_for_its_new_client() {
        let mut s = Subscriptions::new(1);
        s.subscribe(0, &[0], JSON);
        s.wake(0);
        s.remove(0);
        // The woken list may still name the key (the core asks the client on it what is
        // due, which is harmless); a new subscriber on the key is woken afresh.
        s.subscribe(0, &[0], JSON);
        s.wake(0);
        let mut out = Vec::new();
        s.take_woken(&mut out);
        assert!(out.contains(&0));
        s.check();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Join(usize, Vec<SymbolId>),
        Leave(usize),
        Publish(Vec<SymbolId>),
    }

    const SYMBOLS: u32 = 12;
    const KEYS: usize = 10;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..KEYS, proptest::collection::btree_set(0..SYMBOLS, 0..6))
                .prop_map(|(k, s)| Op::Join(k, s.into_iter().collect())),
            (0..KEYS).prop_map(Op::Leave),
            proptest::collection::vec(0..SYMBOLS, 0..5).prop_map(Op::Publish),
        ]
    }

    proptest! {
        /// Against a model (a map of client to symbol set): after any sequence of joins,
        /// leaves and publishes, an update wakes exactly the clients whose current
        /// subscription holds one of its symbols, the totals agree, and both sides of the
        /// index point at each other.
        #[test]
        fn the_index_agrees_with_a_simple_model(ops in proptest::collection::vec(op(), 0..80)) {
            let mut s = Subscriptions::new(SYMBOLS as usize);
            let mut model: BTreeMap<usize, BTreeSet<SymbolId>> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Join(key, symbols) => {
                        s.subscribe(key, &symbols, JSON);
                        model.insert(key, symbols.into_iter().collect());
                    }
                    Op::Leave(key) => {
                        s.remove(key);
                        model.remove(&key);
                    }
                    Op::Publish(symbols) => {
                        for &symbol in &symbols {
                            s.wake(symbol);
                        }
                        let want: BTreeSet<usize> = model
                            .iter()
                            .filter(|(_, mine)| symbols.iter().any(|x| mine.contains(x)))
                            .map(|(&k, _)| k)
                            .collect();
                        prop_assert_eq!(woken(&mut s), want);
                    }
                }
                s.check();
                let total: usize = model.values().map(BTreeSet::len).sum();
                prop_assert_eq!(s.total(), total);
                for symbol in 0..SYMBOLS {
                    let n = model.values().filter(|m| m.contains(&symbol)).count();
                    prop_assert_eq!(s.subscribers(symbol), n);
                }
            }
        }
    }
}
