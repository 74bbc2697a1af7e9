//! The universe: every symbol tickerd carries, its record (a value per field, each with the
//! id of the update that last changed it), and one id sequence for all of them. Events are
//! made at most once per (symbol, fields carried, id line) after each update, when a client
//! first needs them, and shared by every client after.
//!
//! Ids: every update that changes at least one value takes the next id of the one sequence,
//! and every field it changed remembers it; an update that changes nothing takes none. At
//! start the symbols take consecutive ids in universe order (as if one batch had set them
//! all), so no two updates ever share an id.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

use crate::schema::{FieldId, FieldMask, Schema, Value, HEADLINE};
use crate::sse;
use crate::symbol::Symbol;

/// A symbol's place in the universe.
pub type SymbolId = u32;

/// How a stream shows events: the single-price stream of `GET /ticker` (`data: 189.20`, the
/// default symbol's headline), or the many-symbol stream
/// (`data: {"symbol":"AAPL","bid":"189.19"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Json,
}

/// What one stream sees of each symbol: the format and the fields it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub format: Format,
    pub fields: FieldMask,
}

/// One update: a symbol and the values it sets, each field named once (as a publish
/// carries it).
pub type Update = crate::publish::Update<SymbolId>;

/// A symbol as the universe is built with it: its precision and first values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub symbol: Symbol,
    pub decimals: u8,
    pub values: Vec<(FieldId, Value)>,
}

/// Event bytes kept per symbol between two of its updates: beyond this many variants (many
/// streams with different `fields`), the cache starts over rather than grow.
const MAX_CACHED: usize = 64;

/// An event's bytes, by what it carries.
struct Cached {
    fields: FieldMask,
    with_id: bool,
    format: Format,
    bytes: Rc<[u8]>,
}

struct Entry {
    symbol: Symbol,
    decimals: u8,
    values: Box<[Option<Value>]>,
    /// Per field, the id of the update that last changed it; 0: it has no value.
    changed: Box<[u64]>,
    /// The newest of `changed`: a client whose last id is at or above it is due nothing of
    /// this symbol, found without looking at the fields.
    newest: u64,
    /// The events made since the last update.
    cached: Vec<Cached>,
}

impl Entry {
    fn last_id(&self) -> u64 {
        self.newest
    }

    fn set_changed(&mut self, field: FieldId, id: u64) {
        self.changed[field] = id;
        self.newest = self.newest.max(id);
    }
}

pub struct Universe {
    schema: Schema,
    entries: Vec<Entry>,
    by_name: HashMap<Symbol, SymbolId>,
    /// The id of the newest update.
    last_id: u64,
}

/// The first id of a run: the wall clock in microseconds. Ids grow by one per update of one
/// symbol, so an earlier run's ids stay below it unless that run made more than a million
/// updates a second on average; an id a browser remembers from before a restart is never
/// taken for one of this run.
pub fn first_event_id(now: std::time::SystemTime) -> u64 {
    now.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

/// The symbol named first: what `GET /ticker` without `symbols` streams.
pub const DEFAULT_SYMBOL: SymbolId = 0;

impl Universe {
    /// `listing`: the symbols in order, with their precisions and first values (the
    /// headline at least); at least one symbol, no duplicates (the command line has
    /// checked). `first_id`: above any id an earlier run reached.
    pub fn new(schema: Schema, listing: &[Listed], first_id: u64) -> Universe {
        assert!(!listing.is_empty(), "a universe has at least one symbol");
        let fields = schema.len();
        let entries: Vec<Entry> = listing
            .iter()
            .zip(first_id..)
            .map(|(listed, id)| {
                let mut entry = Entry {
                    symbol: listed.symbol,
                    decimals: listed.decimals,
                    values: vec![None; fields].into(),
                    changed: vec![0; fields].into(),
                    newest: 0,
                    cached: Vec::new(),
                };
                for &(field, value) in &listed.values {
                    entry.values[field] = Some(value);
                    entry.set_changed(field, id);
                }
                entry
            })
            .collect();
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.symbol, i as SymbolId))
            .collect();
        Universe {
            schema,
            last_id: first_id + listing.len() as u64 - 1,
            entries,
            by_name,
        }
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// At least 1: a universe has a symbol ([`Universe::new`]), so there is no `is_empty`.
    #[allow(clippy::len_without_is_empty)]
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

    /// The symbol's precision: every price field is written with this many decimals.
    pub fn decimals(&self, id: SymbolId) -> u8 {
        self.entries[id as usize].decimals
    }

    pub fn value(&self, id: SymbolId, field: FieldId) -> Option<Value> {
        self.entries[id as usize].values[field]
    }

    /// A field's value from its name and text as events write them (another instance's, or
    /// the previous binary's): at this symbol's precision; the reason when the schema has no
    /// such field or the text does not fit it.
    pub fn parse_value(
        &self,
        id: SymbolId,
        name: &str,
        text: &str,
    ) -> Result<(FieldId, Value), String> {
        let field = self
            .schema
            .find(name)
            .ok_or_else(|| "not a field of this instance's --fields".to_string())?;
        let value = self.schema.field(field).ty.parse(text, self.decimals(id))?;
        Ok((field, value))
    }

    /// The id of the update that last changed this field (0: it has no value).
    pub fn changed_at(&self, id: SymbolId, field: FieldId) -> u64 {
        self.entries[id as usize].changed[field]
    }

    /// The id of this symbol's last update.
    #[cfg(test)]
    pub fn updated_at(&self, id: SymbolId) -> u64 {
        self.entries[id as usize].last_id()
    }

    /// The fields of `wanted` changed after id `after`.
    pub fn changed_after(&self, id: SymbolId, after: u64, wanted: FieldMask) -> FieldMask {
        let entry = &self.entries[id as usize];
        if entry.newest <= after {
            return 0;
        }
        let mut mask = 0;
        for (field, &at) in entry.changed.iter().enumerate() {
            if at > after && wanted & (1 << field) != 0 {
                mask |= 1 << field;
            }
        }
        mask
    }

    /// The oldest and the newest id among these fields' last changes.
    pub fn span(&self, id: SymbolId, fields: FieldMask) -> (u64, u64) {
        let entry = &self.entries[id as usize];
        let mut span = (u64::MAX, 0);
        for (field, &at) in entry.changed.iter().enumerate() {
            if fields & (1 << field) != 0 {
                span = (span.0.min(at), span.1.max(at));
            }
        }
        span
    }

    /// One update: the values that differ from the record's are set and take the next id.
    /// Returns it, or `None` when nothing changed (no id is taken).
    pub fn set(&mut self, update: &Update) -> Option<u64> {
        let next = self.last_id + 1;
        let entry = &mut self.entries[update.symbol as usize];
        let mut changed = false;
        for &(field, value) in &update.values {
            if entry.values[field] != Some(value) {
                entry.values[field] = Some(value);
                entry.set_changed(field, next);
                changed = true;
            }
        }
        if !changed {
            return None;
        }
        entry.cached.clear();
        self.last_id = next;
        Some(next)
    }

    /// An update whose id was given elsewhere (by Redis, for every instance alike): each
    /// value taken when the id is newer than its field's; returns whether any was.
    pub fn set_at(&mut self, update: &Update, id: u64) -> bool {
        let entry = &mut self.entries[update.symbol as usize];
        let mut taken = false;
        for &(field, value) in &update.values {
            if id > entry.changed[field] {
                entry.values[field] = Some(value);
                entry.set_changed(field, id);
                taken = true;
            }
        }
        if taken {
            entry.cached.clear();
            self.last_id = self.last_id.max(id);
        }
        taken
    }

    /// A field's value and id as the binary before a live upgrade had them, exactly.
    pub fn restore(&mut self, symbol: SymbolId, field: FieldId, value: Value, id: u64) {
        let entry = &mut self.entries[symbol as usize];
        entry.values[field] = Some(value);
        entry.changed[field] = id;
        entry.newest = entry.changed.iter().copied().max().unwrap_or(0);
        entry.cached.clear();
    }

    /// After `restore`: the newest id is the previous binary's, or a symbol's new to this one.
    pub fn restore_last_id(&mut self, id: u64) {
        let newest = self.entries.iter().map(Entry::last_id).max().unwrap_or(0);
        self.last_id = id.max(newest);
    }

    /// The sequence has reached `id` elsewhere (a counter raised without updates).
    pub fn reach(&mut self, id: u64) {
        self.last_id = self.last_id.max(id);
    }

    /// The event of this symbol carrying `fields` (with an `id:` line, the newest of their
    /// changes, when `with_id`), made on first need and shared after, until the symbol's
    /// next update. `Plain` carries the headline alone.
    pub fn event(
        &mut self,
        id: SymbolId,
        fields: FieldMask,
        with_id: bool,
        format: Format,
    ) -> Rc<[u8]> {
        let entry = &self.entries[id as usize];
        if let Some(c) = entry
            .cached
            .iter()
            .find(|c| c.fields == fields && c.with_id == with_id && c.format == format)
        {
            return c.bytes.clone();
        }
        // Made once per update for each variant: only then is the id looked for.
        let (_, newest) = self.span(id, fields);
        let entry = &mut self.entries[id as usize];
        let data = match format {
            Format::Plain => entry.values[HEADLINE]
                .map(|v| v.to_string())
                .unwrap_or_default(),
            Format::Json => {
                let mut data = String::with_capacity(32 + 24 * fields.count_ones() as usize);
                let _ = write!(data, "{{\"symbol\":\"{}\"", entry.symbol);
                write_fields(&mut data, &self.schema, &entry.values, fields);
                data.push('}');
                data
            }
        };
        let bytes: Rc<[u8]> = sse::event(with_id.then_some(newest), &data).into();
        if entry.cached.len() == MAX_CACHED {
            entry.cached.clear();
        }
        entry.cached.push(Cached {
            fields,
            with_id,
            format,
            bytes: bytes.clone(),
        });
        bytes
    }

    /// `GET /symbols`: `[{"symbol":…,"decimals":…,"id":…,<fields>},…]` in universe order,
    /// the names starting with `prefix` (upper case), at most `limit` of them. `id` is the
    /// symbol's last update.
    pub fn listing_json(&self, prefix: &str, limit: usize) -> String {
        self.listing_json_of(prefix, limit, |_| true)
    }

    /// [`Universe::listing_json`] of the symbols `visible` keeps (the caller's rights): the
    /// others are not there for it, and do not count towards `limit`.
    pub fn listing_json_of(
        &self,
        prefix: &str,
        limit: usize,
        visible: impl Fn(&Symbol) -> bool,
    ) -> String {
        let mut out = String::with_capacity(96 * self.entries.len().min(limit) + 2);
        out.push('[');
        for e in self
            .entries
            .iter()
            .filter(|e| e.symbol.as_str().starts_with(prefix) && visible(&e.symbol))
            .take(limit)
        {
            if out.len() > 1 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"symbol\":\"{}\",\"decimals\":{},\"id\":{}",
                e.symbol,
                e.decimals,
                e.last_id()
            );
            write_fields(&mut out, &self.schema, &e.values, self.schema.all());
            out.push('}');
        }
        out.push_str("]\n");
        out
    }
}

/// `,"name":value` for each field of `fields` that has a value, in schema order.
fn write_fields(out: &mut String, schema: &Schema, values: &[Option<Value>], fields: FieldMask) {
    for (field, value) in values.iter().enumerate() {
        if let (true, Some(value)) = (fields & (1 << field) != 0, value) {
            let _ = write!(out, ",\"{}\":", schema.field(field).name);
            value.write_json(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Decimal;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s.as_bytes()).unwrap()
    }

    fn price(m: i64, scale: u8) -> Value {
        Value::Decimal(Decimal::new(m, scale))
    }

    /// AAPL (2 decimals, 189.20) and EURUSD (5, 1.08345) with fields bid, ask, size.
    fn universe() -> Universe {
        let schema = Schema::parse("bid:price,ask:price,size:qty").unwrap();
        Universe::new(
            schema,
            &[
                Listed {
                    symbol: sym("AAPL"),
                    decimals: 2,
                    values: vec![(0, price(18_920, 2))],
                },
                Listed {
                    symbol: sym("EURUSD"),
                    decimals: 5,
                    values: vec![(0, price(108_345, 5)), (1, price(108_347, 5))],
                },
            ],
            100,
        )
    }

    fn update(symbol: SymbolId, values: &[(FieldId, Value)]) -> Update {
        Update {
            symbol,
            values: values.to_vec(),
        }
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

    #[test]
    fn symbols_start_with_consecutive_ids() {
        let u = universe();
        assert_eq!(
            (u.updated_at(0), u.updated_at(1), u.last_id()),
            (100, 101, 101)
        );
        assert_eq!((u.changed_at(1, 1), u.changed_at(1, 2)), (101, 0));
        assert_eq!(u.find(&sym("eurusd")), Some(1));
        assert_eq!(u.find(&sym("IBM")), None);
        assert_eq!(u.decimals(1), 5);
    }

    #[test]
    fn an_update_takes_one_id_for_the_fields_it_changes() {
        let mut u = universe();
        let up = update(1, &[(0, price(108_345, 5)), (2, price(10, 1))]);
        assert_eq!(u.set(&up), Some(102), "size is new; bid is the same");
        assert_eq!((u.changed_at(1, 0), u.changed_at(1, 2)), (101, 102));
        assert_eq!(u.set(&up), None, "nothing changes: no id");
        assert_eq!(u.last_id(), 102);
        let qty = update(1, &[(2, price(100, 2))]);
        assert_eq!(u.set(&qty), Some(103), "1.0 then 1.00 is a change");
        assert_eq!(u.changed_after(1, 101, u32::MAX), 0b100);
        assert_eq!(u.changed_after(1, 100, 0b011), 0b011);
        assert_eq!(u.span(1, 0b111), (101, 103));
    }

    #[test]
    fn events_carry_the_fields_asked_and_are_shared() {
        let mut u = universe();
        let all = u.event(1, 0b011, true, Format::Json);
        assert_eq!(
            &*all,
            b"id: 101\ndata: {\"symbol\":\"EURUSD\",\"bid\":\"1.08345\",\"ask\":\"1.08347\"}\n\n"
        );
        assert!(Rc::ptr_eq(&all, &u.event(1, 0b011, true, Format::Json)));
        let ask = u.event(1, 0b010, false, Format::Json);
        assert_eq!(
            &*ask,
            b"data: {\"symbol\":\"EURUSD\",\"ask\":\"1.08347\"}\n\n"
        );
        let plain = u.event(0, 0b001, true, Format::Plain);
        assert_eq!(&*plain, b"id: 100\ndata: 189.20\n\n");
        u.set(&update(1, &[(1, price(108_350, 5))]));
        assert_eq!(
            &*u.event(1, 0b010, true, Format::Json),
            b"id: 102\ndata: {\"symbol\":\"EURUSD\",\"ask\":\"1.08350\"}\n\n"
        );
        assert!(Rc::ptr_eq(&plain, &u.event(0, 0b001, true, Format::Plain)));
    }

    #[test]
    fn updates_with_given_ids_are_taken_per_field_when_newer() {
        let mut u = universe();
        assert!(u.set_at(&update(1, &[(0, price(7, 5))]), 500));
        assert!(!u.set_at(&update(1, &[(0, price(8, 5))]), 500), "same id");
        assert!(!u.set_at(&update(1, &[(1, price(8, 5))]), 50), "older");
        assert_eq!(u.value(1, 0), Some(price(7, 5)));
        assert_eq!((u.updated_at(1), u.last_id()), (500, 500));
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
            "[{\"symbol\":\"AAPL\",\"decimals\":2,\"id\":100,\"bid\":\"189.20\"},\
             {\"symbol\":\"EURUSD\",\"decimals\":5,\"id\":101,\"bid\":\"1.08345\",\"ask\":\"1.08347\"}]\n"
        );
        assert_eq!(
            u.listing_json("E", 5),
            "[{\"symbol\":\"EURUSD\",\"decimals\":5,\"id\":101,\"bid\":\"1.08345\",\"ask\":\"1.08347\"}]\n"
        );
        assert_eq!(u.listing_json("", 0), "[]\n");
    }
}
