//! Where this instance is with the feed in Redis, as a state machine without sockets: it
//! takes what the links report (both up, a reply, a failure) and the feed it keeps, changes
//! the feed, and says which requests go out next. Each state carries its own bookkeeping:
//! an outage knows since when it lasts, whether its warning went out, and whether the feed
//! was ever loaded (a first start, or a return).
//!
//! `Away` → (both links up) `Loading` → `Loaded`, reading the stream on; an empty feed is
//! seeded first (`Seeding` → `Loading`); entries that skip ids (trimmed while this instance
//! was behind) reload it (`Loaded` → `Loading`); any failure → `Away`.

use std::time::{Duration, Instant, SystemTime};

use super::replies::{Entry, Loaded};
use super::scripts::{Named, SeedIds, StoredField};
use crate::feed::Feed;
use crate::schema::{FieldId, Value};
use crate::symbol::Symbol;
use crate::universe;
use crate::universe::{SymbolId, Update};

/// Redis away: since when, whether that was logged, and whether the feed was ever loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    since: Instant,
    warned: bool,
    /// Never loaded: this instance's ids are still its own, below any of the feed's.
    first: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for both links.
    Away(Outage),
    /// The feed is loading: after an outage (`Some`), or again while connected (a gap).
    Loading(Option<Outage>),
    /// The feed in Redis was empty: this instance seeds it, then loads it.
    Seeding(Option<Outage>),
    /// Every update up to id `applied` is applied; the stream is read after `position`.
    Loaded { applied: u64, position: String },
}

/// What goes to Redis next (the driver encodes it and picks the link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Load the feed, raising its counter to at least `floor`.
    Load { floor: u64 },
    /// Seed an empty feed with every symbol's record.
    Seed {
        floor: u64,
        ids: SeedIds,
        records: Vec<(Symbol, Vec<StoredField>)>,
    },
    /// Put back values newer here than in the feed: (symbol, the newest id the feed's
    /// record had, the values).
    Merge(Vec<(Symbol, u64, Named)>),
    /// Read the stream after this entry.
    Read { after: String },
}

/// Counts for /metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Times the feed was loaded again after Redis was away.
    pub reconnects: u64,
    /// Times the stream skipped ids and the feed was reloaded.
    pub reloads: u64,
    /// Updates for symbols this instance does not carry (the first is logged).
    pub unknown_symbols: u64,
    /// Values of fields this instance does not carry, or that do not fit its field's type
    /// or its symbol's precision (the first is logged).
    pub unknown_fields: u64,
}

pub struct Session {
    state: State,
    stats: Stats,
    /// Redis's address, for log lines.
    label: String,
    /// Redis's clock minus ours, in ms, as of the last load: publishes carry their deadline
    /// in Redis's clock.
    clock_offset_ms: Option<i64>,
}

impl Session {
    /// A session that has not reached Redis yet. `loaded_before`: the ids are the feed's
    /// already (after a live upgrade from a binary that had loaded it).
    pub fn new(label: String, loaded_before: bool, now: Instant) -> Session {
        Session {
            state: State::Away(Outage {
                since: now,
                warned: false,
                first: !loaded_before,
            }),
            stats: Stats::default(),
            label,
            clock_offset_ms: None,
        }
    }

    /// The feed is loaded and read: Redis is up.
    pub fn is_up(&self) -> bool {
        matches!(self.state, State::Loaded { .. })
    }

    /// Publishes may go to Redis (the commands link is all they need: they go on while the
    /// feed loads).
    pub fn takes_publishes(&self) -> bool {
        !matches!(self.state, State::Away(_))
    }

    /// The universe's ids are this feed's (it was loaded at least once).
    pub fn ever_loaded(&self) -> bool {
        match &self.state {
            State::Away(o) | State::Loading(Some(o)) | State::Seeding(Some(o)) => !o.first,
            State::Loading(None) | State::Seeding(None) | State::Loaded { .. } => true,
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn clock_offset_ms(&self) -> Option<i64> {
        self.clock_offset_ms
    }

    /// Both links are up: load the feed, raising the counter to this instance's last id so
    /// that ids never go backwards, even after Redis lost everything. (Only from `Away`: a
    /// command link that comes back alone, closed idle by Redis, finds the feed loaded.)
    pub fn links_up(&mut self, feed: &Feed) -> Option<Request> {
        let State::Away(outage) = self.state else {
            return None;
        };
        Some(self.load(Some(outage), feed))
    }

    fn load(&mut self, outage: Option<Outage>, feed: &Feed) -> Request {
        let floor = match self.ever_loaded() {
            true => feed.universe.last_id(),
            false => 0,
        };
        self.state = State::Loading(outage);
        Request::Load { floor }
    }

    /// The feed as loaded: empty, it is seeded with this instance's records; otherwise every
    /// field whose last change in Redis is newer than ours takes it (clients get the latest
    /// value of each, never a replay), values this instance holds newer than the feed go
    /// back, and the stream is read on from where the load saw it.
    pub fn loaded(&mut self, loaded: Loaded, feed: &mut Feed, out: &mut Vec<Request>) {
        let outage = match &self.state {
            State::Loading(outage) => *outage,
            _ => return, // a reply from before a failure
        };
        if loaded.records.is_empty() {
            return out.push(self.seed(outage, feed));
        }
        let mut newer: Vec<(Symbol, u64, Named)> = Vec::new();
        let mut updates: Vec<(Update, u64)> = Vec::new();
        for record in &loaded.records {
            let Some(symbol) = self.known(feed, &record.symbol) else {
                continue;
            };
            // Values this instance holds newer than the feed does: Redis lost them
            // (reseeded by an instance that was behind, or restored from an older
            // snapshot). They go back under a new id, unless the record moved meanwhile.
            let u = &feed.universe;
            let mine: Named = (0..u.schema().len())
                .filter_map(|field| {
                    let name = &u.schema().field(field).name;
                    let theirs = record.fields.iter().find(|f| &f.name == name);
                    let ours = u.changed_at(symbol, field);
                    (ours > theirs.map_or(0, |f| f.id))
                        .then(|| Some((name.clone(), u.value(symbol, field)?.to_string())))
                        .flatten()
                })
                .collect();
            if !mine.is_empty() {
                let seen = record.fields.iter().map(|f| f.id).max().unwrap_or(0);
                newer.push((u.symbol(symbol), seen, mine));
            }
            for f in &record.fields {
                if let Some(value) = self.value(feed, symbol, &f.name, &f.value) {
                    updates.push((
                        Update {
                            symbol,
                            values: vec![value],
                        },
                        f.id,
                    ));
                }
            }
        }
        let taken = feed.apply_at(updates.iter().map(|(u, id)| (u, *id)));
        feed.universe.reach(loaded.counter);
        self.clock_offset_ms = loaded.time_ms.map(|t| t as i64 - wall_ms() as i64);
        match outage {
            Some(o) if o.first => log::info!(
                "redis {}: feed loaded ({} symbols, {taken} fields newer than ours, last id {})",
                self.label,
                loaded.records.len(),
                loaded.counter
            ),
            Some(o) => {
                self.stats.reconnects += 1;
                log::info!(
                    "redis {}: back after {:?}: {taken} fields moved meanwhile, last id {}",
                    self.label,
                    o.since.elapsed(),
                    loaded.counter
                )
            }
            None => log::info!("redis: reloaded: {taken} fields newer than ours"),
        }
        self.state = State::Loaded {
            applied: loaded.counter,
            position: loaded.position.clone(),
        };
        if !newer.is_empty() {
            out.push(Request::Merge(newer));
        }
        out.push(Request::Read {
            after: loaded.position,
        });
    }

    /// The feed in Redis is empty: seed it. An instance that had loaded it before keeps its
    /// ids (Redis lost them; clients have them); a new one takes fresh ids above the wall
    /// clock, so that they stay above any earlier run's.
    fn seed(&mut self, outage: Option<Outage>, feed: &Feed) -> Request {
        // The counter starts again above the wall clock (in µs) either way: the instance that
        // reseeds may be behind others, whose clients have ids above its own.
        let wall = universe::first_event_id(SystemTime::now());
        let u = &feed.universe;
        let (floor, ids) = match self.ever_loaded() {
            true => (u.last_id().max(wall), SeedIds::Keep),
            false => (wall, SeedIds::Fresh),
        };
        let records = (0..u.len() as SymbolId)
            .map(|s| {
                let fields = (0..u.schema().len())
                    .filter_map(|field| {
                        Some(StoredField {
                            name: u.schema().field(field).name.clone(),
                            value: u.value(s, field)?.to_string(),
                            id: u.changed_at(s, field),
                        })
                    })
                    .collect();
                (u.symbol(s), fields)
            })
            .collect();
        self.state = State::Seeding(outage);
        Request::Seed {
            floor,
            ids,
            records,
        }
    }

    /// The seed's answer: `seeded` when this instance seeded (another may have first).
    /// Either way the feed is loaded next.
    pub fn seeded(&mut self, seeded: bool, feed: &Feed) -> Option<Request> {
        let State::Seeding(outage) = self.state else {
            return None;
        };
        if seeded {
            log::info!(
                "redis: the feed was empty: seeded it with this instance's {} symbols",
                feed.universe.len()
            );
        }
        Some(self.load(outage, feed))
    }

    /// Entries from the stream, in order: each applied with the ids Redis gave, unless
    /// already had; one that skips ids reloads the feed instead. Then the next read.
    pub fn entries(&mut self, entries: Vec<Entry>, feed: &mut Feed) -> Option<Request> {
        for entry in entries {
            let State::Loaded { applied, .. } = self.state else {
                return None;
            };
            let (first, last) = entry.ids();
            if last > applied {
                if first != applied + 1 {
                    self.stats.reloads += 1;
                    log::info!(
                        "redis: the stream skips from id {applied} to {first} (trimmed while this instance was behind): reloading"
                    );
                    return Some(self.load(None, feed));
                }
                self.apply(&entry, feed);
            }
            self.state = State::Loaded {
                applied: last.max(applied),
                position: entry.position,
            };
        }
        match &self.state {
            State::Loaded { position, .. } => Some(Request::Read {
                after: position.clone(),
            }),
            _ => None,
        }
    }

    fn apply(&mut self, entry: &Entry, feed: &mut Feed) {
        let mut updates: Vec<(Update, u64)> = Vec::with_capacity(entry.updates.len());
        for update in &entry.updates {
            let Some(symbol) = self.known(feed, &update.symbol) else {
                continue;
            };
            let values: Vec<(FieldId, Value)> = update
                .values
                .iter()
                .filter_map(|(name, text)| self.value(feed, symbol, name, text))
                .collect();
            updates.push((Update { symbol, values }, update.id));
        }
        feed.apply_at(updates.iter().map(|(u, id)| (u, *id)));
        feed.universe.reach(entry.ids().1);
    }

    /// A field's value from Redis, if this instance carries the field and the text fits
    /// its type and the symbol's precision: one that does not is counted, and the first is
    /// logged (instances should share one schema and one universe).
    fn value(
        &mut self,
        feed: &Feed,
        symbol: SymbolId,
        name: &str,
        text: &str,
    ) -> Option<(FieldId, Value)> {
        let u = &feed.universe;
        match u.parse_value(symbol, name, text) {
            Ok(value) => Some(value),
            Err(why) => {
                if self.stats.unknown_fields == 0 {
                    log::warn!(
                        "redis: {} {}={:?}: {why} (are this instance's --fields and universe the other instances'?); counted, logged once",
                        u.symbol(symbol),
                        name.chars().take(40).collect::<String>(),
                        text.chars().take(40).collect::<String>()
                    );
                }
                self.stats.unknown_fields += 1;
                None
            }
        }
    }

    /// A symbol of the feed, if this instance carries it: one it does not is counted, and
    /// the first is logged (instances should share one universe).
    fn known(&mut self, feed: &Feed, name: &str) -> Option<SymbolId> {
        let found = Symbol::parse(name.as_bytes())
            .ok()
            .and_then(|s| feed.universe.find(&s));
        if found.is_none() {
            if self.stats.unknown_symbols == 0 {
                log::warn!(
                    "redis: an update for {:?}, which this instance does not carry (is its universe the other instances'?); counted in tickerd_redis_unknown_symbols_total, logged once",
                    name.chars().take(40).collect::<String>()
                );
            }
            self.stats.unknown_symbols += 1;
        }
        found
    }

    /// Redis is away (a link failed, or it did not answer in time; the driver dropped both
    /// links): one warning per outage, not one per retry.
    pub fn failed(&mut self, why: &str, retry_in: Duration, now: Instant) {
        let outage = match self.state {
            State::Away(o) | State::Loading(Some(o)) | State::Seeding(Some(o)) => o,
            State::Loading(None) | State::Seeding(None) | State::Loaded { .. } => Outage {
                since: now,
                warned: false,
                first: false,
            },
        };
        if outage.warned {
            log::debug!("redis {}: {why}; retrying in {retry_in:?}", self.label);
        } else {
            log::warn!(
                "redis {}: {why}: streams go on with the last known prices, publishes are answered 503 until it is back; retrying in {retry_in:?}, backing off to 10 s",
                self.label
            );
        }
        self.state = State::Away(Outage {
            warned: true,
            ..outage
        });
    }
}

/// The wall clock in ms since the epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Decimal;
    use crate::redis::replies::{EntryUpdate, StoredRecord};
    use crate::schema::Schema;
    use crate::universe::{Listed, Universe};

    /// A feed of A and B at 1.00, with the provisional ids an instance has before its
    /// first load (1 and 2).
    fn feed() -> Feed {
        let listing: Vec<Listed> = ["A", "B"]
            .iter()
            .map(|s| Listed {
                symbol: Symbol::parse(s.as_bytes()).unwrap(),
                decimals: 2,
                values: vec![(0, Value::Decimal(Decimal::new(100, 2)))],
            })
            .collect();
        Feed::new(Universe::new(Schema::single_price(), &listing, 1))
    }

    fn text(cents: u64) -> String {
        Decimal::new(cents as i64, 2).to_string()
    }

    /// A record of one price as the hash holds it.
    fn price(symbol: &str, cents: u64, id: u64) -> StoredRecord {
        StoredRecord {
            symbol: symbol.into(),
            fields: vec![StoredField {
                name: "price".into(),
                value: text(cents),
                id,
            }],
        }
    }

    fn load_reply(counter: u64, position: &str, records: Vec<StoredRecord>) -> Loaded {
        Loaded {
            counter,
            position: position.into(),
            records,
            time_ms: Some(wall_ms()),
        }
    }

    fn entry(position: &str, first: u64, updates: &[(&str, u64)]) -> Entry {
        Entry {
            position: position.into(),
            updates: updates
                .iter()
                .zip(first..)
                .map(|(&(s, c), id)| EntryUpdate {
                    id,
                    symbol: s.into(),
                    values: vec![("price".into(), text(c))],
                })
                .collect(),
        }
    }

    fn cents_at(feed: &Feed, symbol: &str) -> (u64, u64) {
        let u = &feed.universe;
        let s = u.find(&Symbol::parse(symbol.as_bytes()).unwrap()).unwrap();
        let Some(Value::Decimal(d)) = u.value(s, 0) else {
            panic!("a price")
        };
        (d.mantissa() as u64, u.updated_at(s))
    }

    /// A session loaded at id 500 (A = 1.23 at 400, B = 0.07 at 500), reading after 10-0.
    fn loaded(feed: &mut Feed, now: Instant) -> Session {
        let mut s = Session::new("test".into(), false, now);
        assert_eq!(s.links_up(feed), Some(Request::Load { floor: 0 }));
        let mut out = Vec::new();
        let reply = load_reply(500, "10-0", vec![price("A", 123, 400), price("B", 7, 500)]);
        s.loaded(reply, feed, &mut out);
        assert_eq!(
            out,
            [Request::Read {
                after: "10-0".into()
            }]
        );
        s
    }

    #[test]
    fn a_start_loads_the_feed_then_reads_the_stream_on() {
        let now = Instant::now();
        let mut feed = feed();
        let new = Session::new("test".into(), false, now);
        assert!(!new.is_up() && !new.takes_publishes() && !new.ever_loaded());
        let mut s = loaded(&mut feed, now);
        assert!(s.is_up() && s.takes_publishes() && s.ever_loaded());
        assert_eq!(cents_at(&feed, "A"), (123, 400));
        assert_eq!(cents_at(&feed, "B"), (7, 500));
        assert_eq!(feed.universe.last_id(), 500, "the feed's ids from now on");
        assert!(s.clock_offset_ms().is_some_and(|o| o.abs() < 5_000));
        assert_eq!(s.stats(), Stats::default(), "a first load is no reconnect");
        // A command link that comes back alone (closed idle) finds the feed loaded.
        assert_eq!(s.links_up(&feed), None);
    }

    #[test]
    fn entries_apply_in_order_and_what_was_had_is_skipped() {
        let now = Instant::now();
        let mut feed = feed();
        let mut s = loaded(&mut feed, now);
        let next = s.entries(
            vec![
                entry("10-1", 500, &[("B", 7)]), // had already (the load saw it)
                entry("10-2", 501, &[("A", 1), ("B", 2)]),
            ],
            &mut feed,
        );
        assert_eq!(
            next,
            Some(Request::Read {
                after: "10-2".into()
            })
        );
        assert_eq!(cents_at(&feed, "A"), (1, 501));
        assert_eq!(cents_at(&feed, "B"), (2, 502));
        assert_eq!(
            s.state,
            State::Loaded {
                applied: 502,
                position: "10-2".into()
            }
        );
        // A timed-out read (no entries) reads again from the same place.
        assert_eq!(
            s.entries(vec![], &mut feed),
            Some(Request::Read {
                after: "10-2".into()
            })
        );
    }

    #[test]
    fn a_gap_in_the_stream_reloads_the_feed() {
        let now = Instant::now();
        let mut feed = feed();
        let mut s = loaded(&mut feed, now);
        let next = s.entries(vec![entry("10-9", 600, &[("A", 9)])], &mut feed);
        assert_eq!(
            next,
            Some(Request::Load { floor: 500 }),
            "ids never go backwards"
        );
        assert_eq!(s.stats().reloads, 1);
        assert_eq!(
            cents_at(&feed, "A"),
            (123, 400),
            "the entry after the gap is not applied"
        );
        assert!(
            !s.is_up() && s.takes_publishes(),
            "publishes go on while it reloads"
        );
        let mut out = Vec::new();
        s.loaded(
            load_reply(600, "10-9", vec![price("A", 9, 600), price("B", 7, 500)]),
            &mut feed,
            &mut out,
        );
        assert_eq!(
            out,
            [Request::Read {
                after: "10-9".into()
            }]
        );
        assert_eq!(cents_at(&feed, "A"), (9, 600));
        assert_eq!(s.stats().reconnects, 0, "a reload is not a reconnect");
    }

    #[test]
    fn an_outage_is_one_state_warned_once_and_a_recovery_is_counted() {
        let t0 = Instant::now();
        let mut feed = feed();
        let mut s = loaded(&mut feed, t0);
        let t1 = t0 + Duration::from_secs(1);
        s.failed("connect: refused", Duration::from_millis(250), t1);
        let away = Outage {
            since: t1,
            warned: true,
            first: false,
        };
        assert_eq!(s.state, State::Away(away));
        assert!(!s.is_up() && !s.takes_publishes() && s.ever_loaded());
        // Retries that fail again keep the same outage: no second warning, same start.
        let t2 = t1 + Duration::from_secs(1);
        s.failed("connect: refused", Duration::from_millis(500), t2);
        assert_eq!(s.state, State::Away(away));
        // Back: loaded again above this instance's last id, counted as a reconnect.
        assert_eq!(s.links_up(&feed), Some(Request::Load { floor: 500 }));
        assert_eq!(s.state, State::Loading(Some(away)));
        // Failing while it loads is the same outage still.
        s.failed("no answer in time", Duration::from_secs(1), t1);
        assert_eq!(s.state, State::Away(away));
        s.links_up(&feed);
        let mut out = Vec::new();
        s.loaded(
            load_reply(510, "10-5", vec![price("A", 5, 510), price("B", 7, 500)]),
            &mut feed,
            &mut out,
        );
        assert!(s.is_up());
        assert_eq!(s.stats().reconnects, 1);
        assert_eq!(cents_at(&feed, "A"), (5, 510), "what moved meanwhile");
    }

    #[test]
    fn a_failure_before_the_first_load_keeps_the_start_s_outage() {
        let t0 = Instant::now();
        let feed = feed();
        let mut s = Session::new("test".into(), false, t0);
        s.failed("connect: refused", Duration::from_millis(250), t0);
        assert_eq!(
            s.state,
            State::Away(Outage {
                since: t0,
                warned: true,
                first: true
            })
        );
        assert!(!s.ever_loaded());
        assert_eq!(
            s.links_up(&feed),
            Some(Request::Load { floor: 0 }),
            "own ids are not the feed's"
        );
    }

    #[test]
    fn an_empty_feed_is_seeded_fresh_by_a_new_instance_then_loaded() {
        let now = Instant::now();
        let mut feed = feed();
        let mut s = Session::new("test".into(), false, now);
        s.links_up(&feed);
        let mut out = Vec::new();
        s.loaded(load_reply(0, "0-0", vec![]), &mut feed, &mut out);
        let [Request::Seed {
            floor,
            ids,
            records,
        }] = out.as_slice()
        else {
            panic!("{out:?}");
        };
        assert_eq!(*ids, SeedIds::Fresh);
        assert!(
            *floor >= universe::first_event_id(SystemTime::now()) - 10_000_000,
            "above the wall clock"
        );
        assert_eq!(records.len(), 2);
        assert!(!s.is_up() && s.takes_publishes());
        assert_eq!(s.seeded(true, &feed), Some(Request::Load { floor: 0 }));
        assert!(matches!(s.state, State::Loading(Some(_))));
    }

    #[test]
    fn a_feed_redis_lost_is_seeded_with_the_ids_clients_have() {
        let now = Instant::now();
        let mut feed = feed();
        let mut s = loaded(&mut feed, now);
        s.failed("Redis closed the connection", Duration::ZERO, now);
        s.links_up(&feed);
        let mut out = Vec::new();
        s.loaded(load_reply(0, "0-0", vec![]), &mut feed, &mut out);
        let [Request::Seed {
            floor,
            ids,
            records,
        }] = out.as_slice()
        else {
            panic!("{out:?}");
        };
        assert_eq!(*ids, SeedIds::Keep);
        assert!(*floor >= 500);
        let a = StoredField {
            name: "price".into(),
            value: "1.23".into(),
            id: 400,
        };
        assert!(records.contains(&(Symbol::parse(b"A").unwrap(), vec![a])));
        assert_eq!(s.seeded(false, &feed), Some(Request::Load { floor: 500 }));
    }

    #[test]
    fn prices_newer_here_go_back_and_unknown_symbols_are_counted() {
        let now = Instant::now();
        let mut feed = feed();
        let mut s = loaded(&mut feed, now);
        s.entries(
            vec![entry("10-1", 501, &[("A", 42), ("ZZZ", 1)])],
            &mut feed,
        );
        assert_eq!(s.stats().unknown_symbols, 1);
        assert_eq!(cents_at(&feed, "A"), (42, 501), "the others still apply");
        // Redis restored from an older snapshot: A at 400 there, at 501 here.
        s.failed("Redis closed the connection", Duration::ZERO, now);
        s.links_up(&feed);
        let mut out = Vec::new();
        s.loaded(
            load_reply(502, "10-0", vec![price("A", 123, 400), price("B", 7, 500)]),
            &mut feed,
            &mut out,
        );
        assert_eq!(
            out,
            [
                Request::Merge(vec![(
                    Symbol::parse(b"A").unwrap(),
                    400,
                    vec![("price".into(), "0.42".into())]
                )]),
                Request::Read {
                    after: "10-0".into()
                }
            ]
        );
        assert_eq!(cents_at(&feed, "A"), (42, 501), "ours is kept");
    }

    #[test]
    fn after_a_live_upgrade_the_ids_are_the_feed_s_already() {
        let now = Instant::now();
        let mut feed = feed();
        feed.universe.reach(900);
        let mut s = Session::new("test".into(), true, now);
        assert!(s.ever_loaded());
        assert_eq!(s.links_up(&feed), Some(Request::Load { floor: 900 }));
    }
}
