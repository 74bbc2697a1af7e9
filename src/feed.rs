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
use crate::schema::{FieldMask, HEADLINE};
use crate::subscriptions::Subscriptions;
use crate::universe::{Format, SymbolId, Universe, Update, View};
use crate::walk::Walk;

/// Where a client resumes: the id after which its symbols' updates are due. Without a
/// `Last-Event-ID`, with one that is not a number (the request gives `None` then), or with
/// one above the newest id (from another run, or made up): 0, the whole snapshot.
pub fn resume_point(last_event_id: Option<u64>, newest: u64) -> u64 {
    match last_event_id {
        Some(g) if g <= newest => g,
        _ => 0,
    }
}

/// One event due to a client: a symbol and the fields it carries.
#[derive(Debug, Clone, Copy)]
struct Due {
    /// The newest change it carries: its place in the order, and its id.
    id: u64,
    /// The oldest change it carries.
    oldest: u64,
    symbol: SymbolId,
    fields: FieldMask,
    /// Whether it writes `id:` (see [`Feed::due`]).
    with_id: bool,
}

/// What a waiting client writes next.
#[derive(Debug)]
pub struct Delivery {
    pub out: Outbox,
    /// The id the client has once it is written.
    pub last_id: u64,
    /// How many events it carries.
    pub events: u64,
    /// The bytes of those events (`tickerd_event_bytes_total`).
    pub event_bytes: u64,
}

/// What a batch did: the id of its last change (the universe's newest id when nothing
/// changed), how many updates changed something and how many changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub last_id: u64,
    pub changed: usize,
    pub unchanged: usize,
}

pub struct Feed {
    pub universe: Universe,
    subscriptions: Subscriptions,
    walk: Walk,
    /// Reused by `due`.
    scratch: Vec<Due>,
    /// Symbol updates applied since start (`tickerd_updates_total`).
    pub updates: u64,
}

impl Feed {
    pub fn new(universe: Universe) -> Feed {
        Feed {
            subscriptions: Subscriptions::new(universe.len()),
            walk: Walk::new(universe.schema()),
            universe,
            scratch: Vec::new(),
            updates: 0,
        }
    }

    /// Applies a batch of updates in order (each that changes something takes the next id)
    /// and wakes the subscribers of what changed.
    pub fn apply(&mut self, batch: &[Update]) -> Applied {
        let mut changed = 0;
        for update in batch {
            if self.universe.set(update).is_some() {
                self.subscriptions.wake(update.symbol);
                changed += 1;
            }
        }
        self.updates += changed as u64;
        Applied {
            last_id: self.universe.last_id(),
            changed,
            unchanged: batch.len() - changed,
        }
    }

    /// One tick of the random walk: every symbol moves once. `wall_ms`: the wall clock.
    pub fn walk<R: Rng>(&mut self, rng: &mut R, wall_ms: i64) {
        let moves = self.walk_moves(rng, wall_ms);
        self.apply(&moves);
    }

    /// The next tick's moves, not applied (with Redis, they go there first).
    pub fn walk_moves<R: Rng>(&self, rng: &mut R, wall_ms: i64) -> Vec<Update> {
        self.walk.tick(&self.universe, rng, wall_ms)
    }

    /// Updates whose ids were given elsewhere (by Redis): each value taken when newer than
    /// its field's, waking the symbol's subscribers; returns how many updates were taken.
    pub fn apply_at<'a>(&mut self, updates: impl Iterator<Item = (&'a Update, u64)>) -> usize {
        let mut taken = 0;
        for (update, id) in updates {
            if self.universe.set_at(update, id) {
                self.subscriptions.wake(update.symbol);
                taken += 1;
            }
        }
        self.updates += taken as u64;
        taken
    }

    pub fn subscribe(&mut self, key: usize, symbols: &[SymbolId], view: View) {
        self.subscriptions.subscribe(key, symbols, view);
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
    /// comment): for each of its symbols with a field of its view changed after `after`,
    /// one event carrying those fields, in ascending order of the newest change each
    /// carries, whose id it is. Returns the id of the last, or `None` when nothing is due.
    ///
    /// An event may carry a change older than an event before it (a symbol whose bid
    /// changed at 5 and ask at 9 comes after one changed at 7). A browser cut off after the
    /// event of 7 must not resume from 7, or it would never get the bid of 5: so an event
    /// writes its `id:` only when every change the events after it carry is newer than its
    /// own; otherwise it has none and the browser keeps its previous id. The last event
    /// always has one.
    pub fn due(&mut self, key: usize, after: u64, pieces: &mut Vec<Rc<[u8]>>) -> Option<u64> {
        let (symbols, view) = self.subscriptions.of(key)?;
        let wanted = match view.format {
            Format::Plain => 1 << HEADLINE,
            Format::Json => view.fields,
        };
        let universe = &self.universe;
        self.scratch.clear();
        for symbol in symbols {
            let fields = universe.changed_after(symbol, after, wanted);
            if fields != 0 {
                let (oldest, id) = universe.span(symbol, fields);
                self.scratch.push(Due {
                    id,
                    oldest,
                    symbol,
                    fields,
                    with_id: true,
                });
            }
        }
        self.scratch.sort_unstable_by_key(|d| d.id);
        let mut floor = u64::MAX;
        for d in self.scratch.iter_mut().rev() {
            d.with_id = d.id < floor;
            floor = floor.min(d.oldest);
        }
        for d in &self.scratch {
            pieces.push(
                self.universe
                    .event(d.symbol, d.fields, d.with_id, view.format),
            );
        }
        self.scratch.last().map(|d| d.id)
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
        let event_bytes = pieces[heads..].iter().map(|p| p.len() as u64).sum();
        if waiter.kind == Kind::LongPoll {
            let len = pieces.iter().map(|p| p.len()).sum();
            pieces.insert(0, response::long_poll_head(protocol, len).into());
        }
        Some(Delivery {
            out: Outbox::new(pieces),
            last_id: last.unwrap_or(waiter.last_id),
            events,
            event_bytes,
        })
    }

    /// Client `key`'s view and symbols, if it has a subscription.
    pub fn symbols_of(&self, key: usize) -> Option<(View, impl Iterator<Item = SymbolId> + '_)> {
        self.subscriptions
            .of(key)
            .map(|(symbols, view)| (view, symbols))
    }

    /// Whether anything is due to client `key` after id `after`.
    pub fn has_due(&self, key: usize, after: u64) -> bool {
        self.subscriptions
            .of(key)
            .is_some_and(|(mut symbols, view)| {
                let wanted = match view.format {
                    Format::Plain => 1 << HEADLINE,
                    Format::Json => view.fields,
                };
                symbols.any(|s| self.universe.changed_after(s, after, wanted) != 0)
            })
    }

    /// `tickerd_subscriptions`: the sum over clients of their symbols.
    pub fn subscriptions(&self) -> usize {
        self.subscriptions.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Decimal;
    use crate::schema::{FieldId, Schema, Value};
    use crate::symbol::Symbol;
    use crate::universe::Listed;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const FIELDS: usize = 3;

    /// `n` symbols S0… with fields a, b, c (prices at 2 decimals); each starts with `a`.
    fn universe(n: usize) -> Universe {
        let listing: Vec<Listed> = (0..n)
            .map(|i| Listed {
                symbol: Symbol::parse(format!("S{i}").as_bytes()).unwrap(),
                decimals: 2,
                values: vec![(0, price(100 + i as i64))],
            })
            .collect();
        Universe::new(
            Schema::parse("a:price,b:price,c:price").unwrap(),
            &listing,
            1000,
        )
    }

    fn price(cents: i64) -> Value {
        Value::Decimal(Decimal::new(cents, 2))
    }

    fn set(symbol: SymbolId, values: &[(FieldId, i64)]) -> Update {
        Update {
            symbol,
            values: values.iter().map(|&(f, c)| (f, price(c))).collect(),
        }
    }

    fn json(fields: FieldMask) -> View {
        View {
            format: Format::Json,
            fields,
        }
    }

    /// The `id:` of each event due (`None`: the event has none).
    fn ids(feed: &mut Feed, key: usize, after: u64) -> Vec<Option<u64>> {
        let mut pieces = Vec::new();
        let last = feed.due(key, after, &mut pieces);
        let ids: Vec<Option<u64>> = pieces
            .iter()
            .map(|p| {
                let text = std::str::from_utf8(p).unwrap();
                text.strip_prefix("id: ")
                    .map(|t| t[..t.find('\n').unwrap()].parse().unwrap())
            })
            .collect();
        assert_eq!(last, ids.last().copied().flatten());
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
        feed.subscribe(7, &[3, 0, 2], json(0b111));
        assert_eq!(ids(&mut feed, 7, 0), [Some(1000), Some(1002), Some(1003)]);
        let applied = feed.apply(&[
            set(2, &[(0, 5)]),
            set(1, &[(0, 6)]),
            set(0, &[(0, 7)]),
            set(2, &[(0, 8)]),
        ]);
        assert_eq!(
            applied,
            Applied {
                last_id: 1007,
                changed: 4,
                unchanged: 0
            }
        );
        assert_eq!(
            ids(&mut feed, 7, 1003),
            [Some(1006), Some(1007)],
            "symbol 2 once, its latest"
        );
        assert_eq!(ids(&mut feed, 7, 1006), [Some(1007)]);
        assert!(ids(&mut feed, 7, 1007).is_empty());
        assert!(ids(&mut feed, 8, 0).is_empty(), "no subscription");
    }

    #[test]
    fn updates_that_change_nothing_take_no_id_and_wake_no_one() {
        let mut feed = Feed::new(universe(2));
        feed.subscribe(1, &[0], json(0b111));
        let applied = feed.apply(&[set(0, &[(0, 100)]), set(1, &[(0, 101)])]);
        assert_eq!(
            applied,
            Applied {
                last_id: 1001,
                changed: 0,
                unchanged: 2
            }
        );
        assert!(!feed.has_woken());
        let applied = feed.apply(&[set(0, &[(0, 100), (1, 3)])]);
        assert_eq!(
            applied,
            Applied {
                last_id: 1002,
                changed: 1,
                unchanged: 0
            }
        );
        assert_eq!(
            feed.universe.changed_at(0, 0),
            1000,
            "a kept value keeps its id"
        );
    }

    #[test]
    fn an_event_carries_the_fields_changed_since() {
        let mut feed = Feed::new(universe(1));
        feed.subscribe(1, &[0], json(0b111));
        feed.apply(&[set(0, &[(1, 5), (2, 6)])]); // 1001
        feed.apply(&[set(0, &[(2, 7)])]); // 1002
        let mut pieces = Vec::new();
        feed.due(1, 1001, &mut pieces);
        assert_eq!(
            &*pieces[0],
            b"id: 1002\ndata: {\"symbol\":\"S0\",\"c\":\"0.07\"}\n\n"
        );
        pieces.clear();
        feed.due(1, 0, &mut pieces);
        assert_eq!(
            &*pieces[0],
            b"id: 1002\ndata: {\"symbol\":\"S0\",\"a\":\"1.00\",\"b\":\"0.05\",\"c\":\"0.07\"}\n\n"
        );
    }

    #[test]
    fn a_field_filter_sees_only_its_fields() {
        let mut feed = Feed::new(universe(1));
        feed.subscribe(1, &[0], json(0b010));
        assert!(ids(&mut feed, 1, 0).is_empty(), "b has no value yet");
        feed.apply(&[set(0, &[(0, 9)])]); // 1001
        assert!(!feed.has_due(1, 0), "a change of a field it does not see");
        feed.apply(&[set(0, &[(1, 9), (0, 8)])]); // 1002
        let mut pieces = Vec::new();
        feed.due(1, 0, &mut pieces);
        assert_eq!(
            &*pieces[0],
            b"id: 1002\ndata: {\"symbol\":\"S0\",\"b\":\"0.09\"}\n\n"
        );
    }

    #[test]
    fn an_event_whose_id_would_skip_an_older_change_has_none() {
        let mut feed = Feed::new(universe(2)); // 1000, 1001
        feed.subscribe(1, &[0, 1], json(0b111));
        feed.apply(&[set(0, &[(1, 5)]), set(1, &[(1, 7)]), set(0, &[(2, 9)])]); // 1002..=1004
                                                                                // S1 (1003) goes first but S0's event after it carries the change of 1002: a
                                                                                // browser cut after S1's event must resume from 1001, not 1003.
        assert_eq!(ids(&mut feed, 1, 1001), [None, Some(1004)]);
        assert_eq!(ids(&mut feed, 1, 1002), [Some(1003), Some(1004)]);
    }

    #[test]
    fn updates_wake_only_subscribers() {
        let mut feed = Feed::new(universe(3));
        feed.subscribe(
            1,
            &[0],
            View {
                format: Format::Plain,
                fields: 1,
            },
        );
        feed.subscribe(2, &[1, 2], json(0b111));
        feed.apply(&[set(2, &[(0, 9)])]);
        let mut woken = Vec::new();
        feed.take_woken(&mut woken);
        assert_eq!(woken, [2]);
        feed.walk(&mut rand::thread_rng(), 0);
        feed.take_woken(&mut woken);
        woken.sort();
        assert_eq!(woken, [1, 2]);
        assert_eq!(feed.updates, 4);
    }

    /// The bytes a browser would receive, cut anywhere, leave its last id (the id of the
    /// last event it dispatched that had one) where resuming gives it every field it is
    /// missing.
    #[derive(Debug, Clone)]
    enum Step {
        /// (symbol, field, value) each an update; a value may be the one it has.
        Update(Vec<(u32, FieldId, i64)>),
        /// Deliver what is due, cut after this many bytes (modulo the length), reconnect.
        Cut(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            proptest::collection::vec((0..6u32, 0..FIELDS, 0..4i64), 1..8).prop_map(Step::Update),
            (0..4000usize).prop_map(Step::Cut),
        ]
    }

    type Records = BTreeMap<String, BTreeMap<String, String>>;

    /// What a browser keeps of an event stream (WHATWG: the last event id is set when an
    /// event with an `id:` is dispatched, at its blank line; an event cut short is never
    /// dispatched), merged into records as `tickerd.js` does.
    fn receive(bytes: &[u8], last_id: &mut u64, records: &mut Records) {
        let text = std::str::from_utf8(bytes).unwrap();
        let mut rest = text;
        while let Some(end) = rest.find("\n\n") {
            let block = &rest[..end];
            rest = &rest[end + 2..];
            if let Some(id) = block.strip_prefix("id: ") {
                let id: u64 = id[..id.find('\n').unwrap()].parse().unwrap();
                assert!(id > *last_id, "ascending ids: {id} after {}", *last_id);
                *last_id = id;
            }
            let data = &block[block.find("data: ").unwrap() + 6..];
            let object: BTreeMap<String, String> = serde_json::from_str(data).unwrap();
            let record = records.entry(object["symbol"].clone()).or_default();
            for (field, value) in object.into_iter().filter(|(f, _)| f != "symbol") {
                record.insert(field, value);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn a_connection_cut_anywhere_resumes_to_the_servers_records(
            steps in proptest::collection::vec(step(), 1..30),
            chosen in proptest::collection::btree_set(0..6u32, 1..6),
            fields in 1..(1u32 << FIELDS),
        ) {
            let mut feed = Feed::new(universe(6));
            let chosen: Vec<SymbolId> = chosen.into_iter().collect();
            let mut last_id = 0; // the browser's; 0: none yet
            let mut records = Records::new();
            for step in steps.iter().chain([&Step::Cut(usize::MAX)]) {
                match step {
                    Step::Update(batch) => {
                        let batch: Vec<Update> =
                            batch.iter().map(|&(s, f, v)| set(s, &[(f, v)])).collect();
                        feed.apply(&batch);
                    }
                    Step::Cut(at) => {
                        // A reconnection: a new client resuming from the browser's last id.
                        feed.subscribe(1, &chosen, json(fields));
                        let after = resume_point((last_id > 0).then_some(last_id), feed.universe.last_id());
                        let mut pieces = Vec::new();
                        feed.due(1, after, &mut pieces);
                        let bytes = pieces.concat();
                        let cut = if *at == usize::MAX { bytes.len() } else { at % (bytes.len() + 1) };
                        receive(&bytes[..cut], &mut last_id, &mut records);
                        feed.unsubscribe(1);
                    }
                }
            }
            // After the last, uncut delivery: the client's record of every chosen symbol is
            // the server's, field by field (those its view carries).
            let u = &feed.universe;
            for &s in &chosen {
                let server: BTreeMap<String, String> = (0..FIELDS)
                    .filter(|f| fields & (1 << f) != 0)
                    .filter_map(|f| Some((u.schema().field(f).name.clone(), u.value(s, f)?.to_string())))
                    .collect();
                let name = u.symbol(s).to_string();
                let client = records.get(&name).cloned().unwrap_or_default();
                prop_assert_eq!(client, server, "{}", name);
            }
        }
    }
}
