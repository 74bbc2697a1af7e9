//! A browser's journey through a feed of records: it streams its symbols (and fields), is
//! cut off after some events (mid-write, right after an event without an `id:` line, or
//! after live events), comes back with the last id it saw while updates go on, and long
//! polls now and then. Every event it gets is compared with what the [`Model`] says is due,
//! and at the end its merged records must be the server's, field by field.

use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::model::{listed, Browser, Expected, Model, Update};
use super::*;
use crate::support::clients::Via;
use crate::support::http::Body;

/// An instance the journey reaches: how it streams, how it is published to, and the
/// process (to wait until it has applied every update, when updates come through Redis).
pub struct Stop<'a> {
    pub stream: Via,
    pub publish: Via,
    pub t: &'a Tickerd,
}

/// What the journey went through, for the test to check that it met the hard cases.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub connections: usize,
    /// Cuts with events of the write still unread.
    pub cut_mid_write: usize,
    /// Cuts right after an event without an `id:` line.
    pub cut_after_no_id: usize,
    /// Events read as they were published, after the catch-up.
    pub live_events: usize,
    pub long_polls: usize,
    pub publishes: usize,
    pub events: usize,
}

pub struct Journey {
    pub model: Model,
    pub browser: Browser,
    pub chosen: Vec<String>,
    view: Vec<usize>,
    view_names: Vec<String>,
    path: String,
    rng: StdRng,
    /// The next round cuts right after an event without an id (see [`Journey::stagger`]).
    cut_after_no_id: bool,
    pub stats: Stats,
}

impl Journey {
    /// A browser streaming `chosen` (and only `fields`, when given) under `prefix` (`""`,
    /// or a front-end's `/prices`), from the records `model` holds. `seed` makes the
    /// updates and the cuts.
    pub fn new(
        model: Model,
        chosen: &[&str],
        fields: Option<&[&str]>,
        prefix: &str,
        seed: u64,
    ) -> Journey {
        let view: Vec<usize> = match fields {
            Some(names) => names.iter().map(|n| model.field(n)).collect(),
            None => (0..model.fields.len()).collect(),
        };
        let view_names = view.iter().map(|&f| model.fields[f].name.clone()).collect();
        let mut path = format!("{prefix}/ticker?symbols={}", chosen.join(","));
        if let Some(names) = fields {
            path.push_str(&format!("&fields={}", names.join(",")));
        }
        Journey {
            model,
            browser: Browser::default(),
            chosen: chosen.iter().map(|s| s.to_string()).collect(),
            view,
            view_names,
            path,
            rng: StdRng::seed_from_u64(seed),
            cut_after_no_id: false,
            stats: Stats::default(),
        }
    }

    /// Publishes a random batch on `on` (text or JSON lines), and keeps the model.
    pub fn publish(&mut self, on: &Stop) -> Published {
        let batch = self.model.random_batch(&mut self.rng, 3);
        self.publish_batch(on, &batch)
    }

    pub fn publish_batch(&mut self, on: &Stop, batch: &[Update]) -> Published {
        let format = match self.rng.gen_bool(0.5) {
            true => Lines::Text,
            false => Lines::Json,
        };
        let body = self.model.body(batch, format);
        let p = publish_ok(&on.publish, &body, format);
        self.model.apply(batch, &p);
        self.stats.publishes += 1;
        p
    }

    /// Waits until `on` has applied every update the model knows.
    pub fn reach(&self, on: &Stop) {
        let id = self.model.last_id;
        assert!(
            wait_until(Duration::from_secs(10), || on.t.current_id() >= id),
            "never reached {id}: at {}",
            on.t.current_id()
        );
    }

    /// Where the server resumes the browser: its last id, or the whole snapshot.
    fn after(&self) -> u64 {
        self.browser
            .last_id
            .filter(|&g| g <= self.model.last_id)
            .unwrap_or(0)
    }

    /// Reads `want` off `s`, each compared, each taken by the browser.
    fn read(&mut self, s: &mut SseReader<Sock>, want: &[Expected], what: &str) {
        for (i, w) in want.iter().enumerate() {
            let what = format!(
                "{what}, event {i} of {}, connection {} after {:?}",
                want.len(),
                self.stats.connections,
                self.browser.last_id
            );
            let e = next(s, &what);
            w.check(&e, &what);
            self.browser.take(&e);
            self.stats.events += 1;
        }
    }

    /// A cut after `n` of `events`: wherever it falls, the browser holds every change up
    /// to its last id (so resuming from it misses nothing).
    fn note_cut(&mut self, events: &[Expected], n: usize) {
        self.assert_resumable(&format!("cut after {n} of {events:?}"));
        if n < events.len() {
            self.stats.cut_mid_write += 1;
        }
        if n > 0 && events[n - 1].id.is_none() {
            self.stats.cut_after_no_id += 1;
        }
    }

    /// The resume invariant: every field the browser carries whose last change is not
    /// above its last id has that change's value in the browser's records.
    pub fn assert_resumable(&self, what: &str) {
        let g = self.browser.last_id.unwrap_or(0);
        for name in &self.chosen {
            let r = self.model.record(name);
            for &f in &self.view {
                if r.changed[f] == 0 || r.changed[f] > g {
                    continue;
                }
                let field = &self.model.fields[f].name;
                let has = self.browser.records.get(name).and_then(|fs| fs.get(field));
                assert_eq!(
                    has,
                    r.values[f].as_ref(),
                    "{what}: {name}'s {field} changed at {} and the browser's last id is {g}",
                    r.changed[f]
                );
            }
        }
    }

    /// One connection to `on`: the browser resumes with its last id and reads what is due,
    /// cut after `k` events (or, every other time, right after an event without an id when
    /// the write has one); if it read all of it, batches are published to `publishers`
    /// (one at random each) while it listens until one changes a field it carries, and it
    /// reads up to `k` events in all. Then, while
    /// it is away, one or two batches more.
    pub fn round(&mut self, on: &Stop, publishers: &[&Stop], k: usize) {
        self.reach(on);
        let after = self.after();
        let mut s = open(&on.stream, &self.path, self.browser.last_id);
        self.stats.connections += 1;
        let due = self.model.due(&self.chosen, &self.view, after);
        let forced = std::mem::take(&mut self.cut_after_no_id);
        let k = match due.iter().position(|e| e.id.is_none()) {
            Some(i) if forced || self.rng.gen_bool(0.5) => i + 1,
            None if forced => panic!("no event without an id after a stagger: {due:?}"),
            _ => k,
        };
        let n = k.min(due.len());
        self.read(&mut s, &due[..n], "catch-up");
        self.note_cut(&due, n);
        if n == due.len() && k > n {
            // What the server resumes from next: the last event of a write has an id.
            let written = due.last().map_or(after, |e| e.id.expect("an id"));
            // (Until one of its fields changes: a batch may touch none.)
            for _ in 0..10 {
                let on_pub = publishers[self.rng.gen_range(0..publishers.len())];
                self.publish(on_pub);
                if !self.model.due(&self.chosen, &self.view, written).is_empty() {
                    break;
                }
            }
            let live = self.model.due(&self.chosen, &self.view, written);
            let m = (k - n).min(live.len());
            self.read(&mut s, &live[..m], "live");
            self.stats.live_events += m;
            self.note_cut(&live, m);
        }
        drop(s);
        for _ in 0..self.rng.gen_range(1..=2) {
            let on_pub = publishers[self.rng.gen_range(0..publishers.len())];
            self.publish(on_pub);
        }
    }

    /// A long poll with the browser's last id: answered at once with every event due (and
    /// nothing due is first made due); then one with the newest id, held until a field it
    /// carries changes, answered with that.
    pub fn long_polls(&mut self, on: &Stop, publishers: &[&Stop]) {
        for _ in 0..20 {
            if !self
                .model
                .due(&self.chosen, &self.view, self.after())
                .is_empty()
            {
                break;
            }
            self.publish(publishers[0]);
        }
        self.reach(on);
        let due = self.model.due(&self.chosen, &self.view, self.after());
        assert!(!due.is_empty(), "twenty batches and nothing due");
        let got = poll(&on.stream, &self.path, self.browser.last_id);
        self.check_poll(&got, &due, "a long poll with something due");

        // Up to date: held until one of its fields changes.
        self.reach(on);
        let newest = self.browser.last_id;
        assert_eq!(
            self.model.due(&self.chosen, &self.view, self.after()),
            [],
            "up to date"
        );
        let (via, path) = (on.stream.clone(), self.path.clone());
        let held = std::thread::spawn(move || poll(&via, &path, newest));
        std::thread::sleep(Duration::from_millis(300));
        assert!(!held.is_finished(), "a long poll with nothing due is held");
        let symbol = self.chosen[self.rng.gen_range(0..self.chosen.len())].clone();
        let field = self.view[self.rng.gen_range(0..self.view.len())];
        self.change(publishers[publishers.len() - 1], &symbol, field);
        let got = held.join().unwrap();
        let due = self.model.due(&self.chosen, &self.view, self.after());
        assert_eq!(due.len(), 1, "{due:?}");
        self.check_poll(&got, &due, "a held long poll");
    }

    /// Publishes on `on` a new value of `symbol`'s `field`, alone.
    fn change(&mut self, on: &Stop, symbol: &str, field: usize) {
        let record = self.model.record(symbol).clone();
        let value = loop {
            let v = self
                .model
                .random_value(&mut self.rng, field, record.decimals);
            if record.values[field].as_ref() != Some(&v) {
                break v;
            }
        };
        let batch = [Update {
            symbol: symbol.to_string(),
            values: vec![(field, value)],
        }];
        self.publish_batch(on, &batch);
    }

    /// Three updates on `on` after which the browser is due an event without an id: a
    /// field of X, then one of Y, then another of X. X's event carries the first and the
    /// third, so it comes after Y's, whose id would skip X's first: Y's has none. The next
    /// round cuts right after it.
    pub fn stagger(&mut self, on: &Stop) {
        assert!(self.chosen.len() >= 2 && self.view.len() >= 2);
        let x = self.rng.gen_range(0..self.chosen.len());
        let y = (x + self.rng.gen_range(1..self.chosen.len())) % self.chosen.len();
        let (x, y) = (self.chosen[x].clone(), self.chosen[y].clone());
        let (first, second) = (self.view[0], self.view[self.view.len() - 1]);
        self.change(on, &x, first);
        self.change(on, &y, first);
        self.change(on, &x, second);
        self.cut_after_no_id = true;
    }

    fn check_poll(&mut self, got: &[SseEvent], want: &[Expected], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: {got:?}, wanted {want:?}");
        for (g, w) in got.iter().zip(want) {
            w.check(g, what);
            self.browser.take(g);
        }
        self.stats.long_polls += 1;
        self.stats.events += got.len();
        self.assert_resumable(what);
    }

    /// The last connection, to `on`: everything due, then nothing; and the browser's
    /// records are what `/symbols` of `http` lists for its symbols and fields, which is the
    /// model's, whose listing is exactly `/symbols`.
    pub fn finish(&mut self, on: &Stop, http: SocketAddr) {
        self.reach(on);
        let after = self.after();
        let mut s = open(&on.stream, &self.path, self.browser.last_id);
        self.stats.connections += 1;
        let due = self.model.due(&self.chosen, &self.view, after);
        self.read(&mut s, &due, "the last catch-up");
        assert_quiet(
            &mut s,
            Duration::from_millis(300),
            "after the last catch-up",
        );
        let view: Vec<&str> = self.view_names.iter().map(String::as_str).collect();
        assert_eq!(
            self.browser.records,
            listed(http, &self.chosen, &view),
            "the browser's records and /symbols"
        );
        assert_eq!(
            self.browser.records,
            self.model.merged(&self.chosen, &self.view)
        );
        assert_eq!(symbols_text(http), self.model.listing(), "/symbols");
    }
}

/// A long poll of `path` by `via` with `last_id`: its events.
pub fn poll(via: &Via, path: &str, last_id: Option<u64>) -> Vec<SseEvent> {
    let id = last_id.map(|i| i.to_string());
    let mut headers = vec![("X-Event-Source-Simulate", "Long-Polling")];
    if let Some(id) = &id {
        headers.push(("Last-Event-ID", id.as_str()));
    }
    let r = get_via(via, path, &headers);
    assert_eq!(r.status, 200, "long poll {path} over {}: {r:?}", via.name());
    let mut body = Body::new(false);
    body.take(r.body.as_bytes()).unwrap();
    let mut events = Vec::new();
    while let Some(block) = body.next_block() {
        if let Some(data) = block.data {
            events.push(SseEvent { id: block.id, data });
        }
    }
    assert!(body.bytes().is_empty(), "a partial event: {:?}", r.body);
    events
}
