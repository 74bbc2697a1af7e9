//! What the tests expect of records, computed apart from the server: a [`Model`] of every
//! symbol's record (each field's value and the id of the update that last changed it),
//! kept from the publishes' answers, which says what a stream resuming after any id is due,
//! event by event; and a [`Browser`] that merges the events it gets into records and keeps
//! its last id as a browser's `EventSource` does.
//!
//! The rules, as the README states them: an update that changes nothing takes no id; the
//! updates of a batch that change something take consecutive ids; a stream resuming after
//! `g` gets, per chosen symbol, one event with the fields of its view changed after `g`, in
//! ascending order of the newest change each carries; an event has an `id:` line (that
//! newest change) unless a later event of the same write carries a change older than it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::Value;

use super::Published;
use crate::support::*;

/// A field of the schema, as `GET /fields` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// `price`, `qty`, `int` or `time`.
    pub ty: String,
}

/// A symbol's record.
#[derive(Debug, Clone)]
pub struct Record {
    pub name: String,
    pub decimals: u32,
    /// Per field (schema order): its value as events and listings write it.
    pub values: Vec<Option<Value>>,
    /// Per field: the id of the update that last changed it; 0: no value.
    pub changed: Vec<u64>,
}

/// One update: a symbol and its fields' values, as events write them (JSON strings for
/// price and qty, numbers for int and time); [`Model::body`] writes it as it is published.
#[derive(Debug, Clone)]
pub struct Update {
    pub symbol: String,
    pub values: Vec<(usize, Value)>,
}

/// An event a stream must carry: its `id:` line (if any) and its data, exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub id: Option<u64>,
    pub data: String,
}

impl Expected {
    /// Compares with an event read off a stream.
    pub fn check(&self, got: &SseEvent, what: &str) {
        let id = got.id.as_deref().map(|i| {
            i.parse::<u64>()
                .unwrap_or_else(|_| panic!("{what}: id {i:?}"))
        });
        assert_eq!(
            (id, got.data.as_str()),
            (self.id, self.data.as_str()),
            "{what}"
        );
    }
}

/// Every symbol's record, in universe order, and the newest id.
#[derive(Debug, Clone)]
pub struct Model {
    pub fields: Vec<Field>,
    pub records: Vec<Record>,
    /// The newest id given.
    pub last_id: u64,
}

impl Model {
    /// The records as tickerd at `http` lists them at start (or after a load from Redis that
    /// seeded them): every field with a value changed at the symbol's id, its last update.
    pub fn load(http: SocketAddr) -> Model {
        let r = get(http, "/fields");
        assert_eq!(r.status, 200, "{r:?}");
        let schema: Value = serde_json::from_str(&r.body).unwrap();
        let fields: Vec<Field> = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| Field {
                name: f["name"].as_str().unwrap().to_string(),
                ty: f["type"].as_str().unwrap().to_string(),
            })
            .collect();
        let listing: Value = serde_json::from_str(&super::symbols_text(http)).unwrap();
        let records = listing
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let id = s["id"].as_u64().unwrap();
                let values: Vec<Option<Value>> =
                    fields.iter().map(|f| s.get(&f.name).cloned()).collect();
                Record {
                    name: s["symbol"].as_str().unwrap().to_string(),
                    decimals: s["decimals"].as_u64().unwrap() as u32,
                    changed: values
                        .iter()
                        .map(|v| if v.is_some() { id } else { 0 })
                        .collect(),
                    values,
                }
            })
            .collect::<Vec<_>>();
        let last_id = records
            .iter()
            .flat_map(|r| r.changed.iter().copied())
            .max()
            .unwrap();
        Model {
            fields,
            records,
            last_id,
        }
    }

    pub fn field(&self, name: &str) -> usize {
        self.fields
            .iter()
            .position(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name}"))
    }

    pub fn record(&self, symbol: &str) -> &Record {
        self.records
            .iter()
            .find(|r| r.name == symbol)
            .unwrap_or_else(|| panic!("no symbol {symbol}"))
    }

    fn record_mut(&mut self, symbol: &str) -> &mut Record {
        self.records
            .iter_mut()
            .find(|r| r.name == symbol)
            .unwrap_or_else(|| panic!("no symbol {symbol}"))
    }

    /// Applies an accepted batch as its answer says: the updates that change something
    /// take consecutive ids ending at the answer's; checks the answer's counts and that no
    /// id was skipped.
    pub fn apply(&mut self, batch: &[Update], answer: &Published) {
        let mut changed = 0;
        let mut next = self.last_id;
        for u in batch {
            let record = self.record_mut(&u.symbol);
            let differs = u
                .values
                .iter()
                .any(|(f, v)| record.values[*f].as_ref() != Some(v));
            if !differs {
                continue;
            }
            next += 1;
            changed += 1;
            for (f, v) in &u.values {
                if record.values[*f].as_ref() != Some(v) {
                    record.values[*f] = Some(v.clone());
                    record.changed[*f] = next;
                }
            }
        }
        let wanted = Published {
            last_id: next,
            applied: changed,
            unchanged: batch.len() - changed,
        };
        assert_eq!(*answer, wanted, "the answer to {batch:?}");
        self.last_id = next;
    }

    /// The events a stream of `chosen` carrying the fields `view` (indices) is due after
    /// `after`, in order, exactly.
    pub fn due(&self, chosen: &[String], view: &[usize], after: u64) -> Vec<Expected> {
        // (newest, oldest, symbol, fields)
        let mut due: Vec<(u64, u64, &Record, Vec<usize>)> = Vec::new();
        for name in chosen {
            let r = self.record(name);
            let fields: Vec<usize> = (0..self.fields.len())
                .filter(|f| view.contains(f) && r.changed[*f] > after)
                .collect();
            if fields.is_empty() {
                continue;
            }
            let newest = fields.iter().map(|&f| r.changed[f]).max().unwrap();
            let oldest = fields.iter().map(|&f| r.changed[f]).min().unwrap();
            due.push((newest, oldest, r, fields));
        }
        due.sort_by_key(|d| d.0);
        let mut out = Vec::with_capacity(due.len());
        for (i, (newest, _, r, fields)) in due.iter().enumerate() {
            // A browser cut right after this event resumes from its id: every change the
            // events after it carry must be newer, or the event has no id.
            let safe = due[i + 1..].iter().all(|later| later.1 > *newest);
            out.push(Expected {
                id: safe.then_some(*newest),
                data: self.data(r, fields),
            });
        }
        out
    }

    /// An event's data: `{"symbol":…,"field":value,…}` in schema order.
    fn data(&self, r: &Record, fields: &[usize]) -> String {
        format!("{{\"symbol\":\"{}\"{}}}", r.name, self.members(r, fields))
    }

    /// `,"field":value` for each of `fields`, in schema order.
    fn members(&self, r: &Record, fields: &[usize]) -> String {
        let mut out = String::new();
        for &f in fields {
            let v = r.values[f].as_ref().expect("a field with a value");
            out.push_str(&format!(",\"{}\":{v}", self.fields[f].name));
        }
        out
    }

    /// `GET /symbols` as it must read, exactly.
    pub fn listing(&self) -> String {
        let all: Vec<usize> = (0..self.fields.len()).collect();
        let entries: Vec<String> = self
            .records
            .iter()
            .map(|r| {
                let id = r.changed.iter().copied().max().unwrap();
                let with_values: Vec<usize> = all
                    .iter()
                    .copied()
                    .filter(|&f| r.values[f].is_some())
                    .collect();
                format!(
                    "{{\"symbol\":\"{}\",\"decimals\":{},\"id\":{id}{}}}",
                    r.name,
                    r.decimals,
                    self.members(r, &with_values)
                )
            })
            .collect();
        format!("[{}]\n", entries.join(","))
    }

    /// Each chosen symbol's record as a browser carrying the fields `view` must hold it.
    pub fn merged(&self, chosen: &[String], view: &[usize]) -> BTreeMap<String, Fields> {
        chosen
            .iter()
            .map(|name| {
                let r = self.record(name);
                let fields = view
                    .iter()
                    .filter_map(|&f| Some((self.fields[f].name.clone(), r.values[f].clone()?)))
                    .collect();
                (name.clone(), fields)
            })
            .filter(|(_, f): &(String, Fields)| !f.is_empty())
            .collect()
    }

    /// A random batch of 1 to `most` updates of random symbols (a symbol may come twice),
    /// each setting 1 to 3 random fields to new values or, now and then, to the value they
    /// hold (which changes nothing).
    pub fn random_batch(&self, rng: &mut StdRng, most: usize) -> Vec<Update> {
        (0..rng.gen_range(1..=most))
            .map(|_| {
                let r = &self.records[rng.gen_range(0..self.records.len())];
                let mut fields: Vec<usize> = (0..self.fields.len()).collect();
                let n = rng.gen_range(1..=fields.len().min(3));
                let mut values = Vec::new();
                for _ in 0..n {
                    let f = fields.swap_remove(rng.gen_range(0..fields.len()));
                    let value = match (&r.values[f], rng.gen_range(0..8)) {
                        (Some(v), 0) => v.clone(),
                        _ => self.random_value(rng, f, r.decimals),
                    };
                    values.push((f, value));
                }
                Update {
                    symbol: r.name.clone(),
                    values,
                }
            })
            .collect()
    }

    /// A random value of field `f`'s type, as events write it.
    pub fn random_value(&self, rng: &mut StdRng, f: usize, decimals: u32) -> Value {
        match self.fields[f].ty.as_str() {
            "price" => {
                let m: i64 = rng.gen_range(-2_000..2_000_000);
                Value::String(decimal(m, decimals))
            }
            "qty" => {
                const QTY: [&str; 8] = ["0.1", "0.10", "1", "1.0", "250", "12.345678", "0", "7.5"];
                Value::String(QTY[rng.gen_range(0..QTY.len())].to_string())
            }
            "int" => Value::from(rng.gen_range(-1_000_i64..1_000)),
            "time" => Value::from(1_765_100_000_000_i64 + rng.gen_range(0..100_000)),
            other => panic!("type {other}"),
        }
    }

    /// A batch as text lines (`SYM field=value …`) or JSON lines (a qty now and then as a
    /// JSON number, written as it is).
    pub fn body(&self, batch: &[Update], format: super::Lines) -> String {
        let line = |u: &Update| match format {
            // The headline alone: `SYM=PRICE`, as a single-price publisher writes it.
            super::Lines::Text if u.values.len() == 1 && u.values[0].0 == 0 => {
                let v = &u.values[0].1;
                format!(
                    "{}={}",
                    u.symbol,
                    v.as_str().map_or(v.to_string(), String::from)
                )
            }
            super::Lines::Text => {
                let mut line = u.symbol.clone();
                for (f, v) in &u.values {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        v => v.to_string(),
                    };
                    line.push_str(&format!(" {}={text}", self.fields[*f].name));
                }
                line
            }
            super::Lines::Json => {
                let mut line = format!("{{\"symbol\":\"{}\"", u.symbol);
                for (f, v) in &u.values {
                    let json = match (&self.fields[*f].ty[..], v) {
                        // The text of a JSON number is taken as written: 0.10 stays 0.10,
                        // 1.50 stays 1.50.
                        ("qty", Value::String(s)) if !s.starts_with('1') => s.clone(),
                        ("price", Value::String(s)) if s.ends_with(['1', '3', '5', '7', '9']) => {
                            s.clone()
                        }
                        (_, v) => v.to_string(),
                    };
                    line.push_str(&format!(",\"{}\":{json}", self.fields[*f].name));
                }
                line.push('}');
                line
            }
        };
        batch.iter().map(line).collect::<Vec<_>>().join("\n")
    }
}

/// `m` scaled by `10^-d`, as text with exactly `d` decimals.
pub fn decimal(m: i64, d: u32) -> String {
    let sign = if m < 0 { "-" } else { "" };
    let a = m.unsigned_abs();
    if d == 0 {
        return format!("{sign}{a}");
    }
    let unit = 10u64.pow(d);
    format!(
        "{sign}{}.{:0width$}",
        a / unit,
        a % unit,
        width = d as usize
    )
}

/// A record's fields, by name.
pub type Fields = BTreeMap<String, Value>;

/// A browser: the records it merged from the events it dispatched, and its last event id
/// (set by an event's `id:` line, kept by an event without one).
#[derive(Debug, Default, Clone)]
pub struct Browser {
    pub last_id: Option<u64>,
    pub records: BTreeMap<String, Fields>,
    /// Events dispatched without an `id:` line.
    pub without_id: usize,
}

impl Browser {
    pub fn take(&mut self, e: &SseEvent) {
        let v: Value = serde_json::from_str(&e.data).unwrap_or_else(|_| panic!("not JSON: {e:?}"));
        let symbol = v["symbol"].as_str().expect("a symbol").to_string();
        let record = self.records.entry(symbol).or_default();
        for (name, value) in v.as_object().unwrap() {
            if name != "symbol" {
                record.insert(name.clone(), value.clone());
            }
        }
        match &e.id {
            Some(id) => self.last_id = Some(id.parse().unwrap()),
            None => self.without_id += 1,
        }
    }
}

/// `GET /symbols` of `http`, the chosen symbols' records restricted to the fields `view`
/// (by name): what a browser's merged records must equal.
pub fn listed(http: SocketAddr, chosen: &[String], view: &[&str]) -> BTreeMap<String, Fields> {
    let listing: Value = serde_json::from_str(&super::symbols_text(http)).unwrap();
    listing
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| chosen.iter().any(|c| c == s["symbol"].as_str().unwrap()))
        .map(|s| {
            let fields: Fields = s
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| view.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (s["symbol"].as_str().unwrap().to_string(), fields)
        })
        .filter(|(_, f)| !f.is_empty())
        .collect()
}
