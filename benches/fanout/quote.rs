//! The quote workload (`--quote`), the same in every process of the bench: each symbol
//! carries a record of six fields (`--fields bid:price,ask:price,last:price,size:qty,
//! volume:qty,time:time`), symbols at 2, 5 and 8 decimals in turn, and each update sets 1 to
//! 3 of the fields (`SYM bid=… size=…`).
//!
//! Values carry the publish time, as prices do in the price workload: every value an update
//! sets is T, the microseconds from the run's epoch to its publish, written in the field's
//! type (a price is T as the mantissa at the symbol's precision, `150.00000` for T =
//! 15,000,000 at 5 decimals; a qty the whole number T; a time the number T). So each field
//! says which update set it: a client tells a field repeated or gone back, the latency of
//! an event (its newest field's), and the bench's record of what it published is, per
//! field, the T of the last update that set it. Before any publish every field is 1
//! (`INITIAL`): the snapshot.
//!
//! T has 7 or 8 digits in a run of seconds: prices of 9 or 10 characters, qtys and times
//! of 8. Real quotes are about as long in all (a 6-character stock price, a 13-digit time).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::workload::{parse_name, parse_u64, Universe};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Price,
    Qty,
    Time,
}

/// The record's fields, in tickerd's order (`--fields`): events carry them in this order.
pub const FIELDS: [(&str, Type); 6] = [
    ("bid", Type::Price),
    ("ask", Type::Price),
    ("last", Type::Price),
    ("size", Type::Qty),
    ("volume", Type::Qty),
    ("time", Type::Time),
];

pub const WIDTH: usize = FIELDS.len();
/// Every field of the record.
pub const ALL: u8 = (1 << WIDTH) - 1;

/// Every field's value before any publish.
pub const INITIAL: u64 = 1;

/// `--fields` for tickerd.
pub fn fields_flag() -> String {
    let fields: Vec<String> = FIELDS
        .iter()
        .map(|(name, ty)| {
            let ty = match ty {
                Type::Price => "price",
                Type::Qty => "qty",
                Type::Time => "time",
            };
            format!("{name}:{ty}")
        })
        .collect();
    fields.join(",")
}

/// A symbol's precision: 2, 5 and 8 decimals in turn (a stock, an FX pair, a crypto pair).
pub fn decimals(symbol: u32) -> u8 {
    [2, 5, 8][symbol as usize % 3]
}

/// `--symbols-file` for tickerd: `S0000 decimals=2 bid=0.01 … time=1` a line.
pub fn listing(universe: &Universe) -> String {
    let mut out = String::new();
    for s in 0..universe.count as u32 {
        out.push_str(&universe.name(s));
        out.push_str(&format!(" decimals={}", decimals(s)));
        for (f, (name, _)) in FIELDS.iter().enumerate() {
            out.push_str(&format!(" {name}="));
            write_value(&mut out, f, s, INITIAL);
        }
        out.push('\n');
    }
    out
}

fn pow10(d: u8) -> u64 {
    10u64.pow(u32::from(d))
}

/// Field `f`'s value T as published and as tickerd writes it (without JSON's quotes).
fn write_value(out: &mut String, f: usize, symbol: u32, t: u64) {
    match FIELDS[f].1 {
        Type::Price => {
            let d = decimals(symbol);
            let p = pow10(d);
            out.push_str(&format!(
                "{}.{:0width$}",
                t / p,
                t % p,
                width = usize::from(d)
            ));
        }
        Type::Qty | Type::Time => out.push_str(&t.to_string()),
    }
}

/// One line of a publish: `S0042 bid=150.00000 size=15000000`, the fields of `mask` set to T.
pub fn update_line(out: &mut String, name: &str, symbol: u32, mask: u8, t: u64) {
    out.push_str(name);
    for (f, (field, _)) in FIELDS.iter().enumerate() {
        if mask & (1 << f) != 0 {
            out.push(' ');
            out.push_str(field);
            out.push('=');
            write_value(out, f, symbol, t);
        }
    }
}

/// An event's data carrying the fields of `mask` at `values` (one per field), as tickerd
/// writes it: `{"symbol":"S0042","bid":"150.00000","time":15000000}`.
pub fn event_data(name: &str, symbol: u32, mask: u8, values: &[u64; WIDTH]) -> String {
    let mut out = format!("{{\"symbol\":\"{name}\"");
    for (f, (field, ty)) in FIELDS.iter().enumerate() {
        if mask & (1 << f) != 0 {
            out.push_str(&format!(",\"{field}\":"));
            let quoted = *ty != Type::Time;
            if quoted {
                out.push('"');
            }
            write_value(&mut out, f, symbol, values[f]);
            if quoted {
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// The length of [`event_data`], without writing it: what a client counts for the whole
/// record it holds (the event a server without deltas would send).
pub fn data_len(name_len: usize, symbol: u32, mask: u8, values: &[u64; WIDTH]) -> usize {
    // {"symbol":"…"  …  }
    let mut len = 12 + name_len + 1;
    for (f, (field, ty)) in FIELDS.iter().enumerate() {
        if mask & (1 << f) == 0 {
            continue;
        }
        // ,"field":
        len += field.len() + 4;
        len += match ty {
            Type::Price => {
                let d = decimals(symbol);
                digits(values[f] / pow10(d)) + 1 + usize::from(d) + 2
            }
            Type::Qty => digits(values[f]) + 2,
            Type::Time => digits(values[f]),
        };
    }
    len
}

/// An event's record as read: the symbol, the fields it carries and their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carried {
    pub symbol: u32,
    /// The length of its name.
    pub name_len: usize,
    pub mask: u8,
    pub values: [u64; WIDTH],
}

impl Carried {
    /// The newest value it carries: the publish time of the newest update in it.
    pub fn newest(&self) -> u64 {
        (0..WIDTH)
            .filter(|f| self.mask & (1 << f) != 0)
            .map(|f| self.values[f])
            .max()
            .unwrap_or(0)
    }
}

/// Reads an event's data written as [`event_data`] writes it: the fields in the record's
/// order, each once, a price with exactly its symbol's decimals, a qty a whole number in a
/// string, a time a bare number. `None` for anything else.
pub fn parse_event_data(data: &[u8]) -> Option<Carried> {
    let rest = data.strip_prefix(b"{\"symbol\":\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    let symbol = parse_name(&rest[..end])?;
    let mut rest = &rest[end + 1..];
    let mut c = Carried {
        symbol,
        name_len: end,
        mask: 0,
        values: [0; WIDTH],
    };
    let mut next_field = 0;
    loop {
        if rest == b"}" {
            return (c.mask != 0).then_some(c);
        }
        rest = rest.strip_prefix(b",\"")?;
        let end = rest.iter().position(|&b| b == b'"')?;
        let name = &rest[..end];
        let f = (next_field..WIDTH).find(|&f| FIELDS[f].0.as_bytes() == name)?;
        next_field = f + 1;
        rest = rest[end + 1..].strip_prefix(b":")?;
        let (text, after) = match FIELDS[f].1 {
            Type::Time => {
                let end = rest.iter().position(|&b| b == b',' || b == b'}')?;
                rest.split_at(end)
            }
            Type::Price | Type::Qty => {
                let inner = rest.strip_prefix(b"\"")?;
                let end = inner.iter().position(|&b| b == b'"')?;
                (&inner[..end], &inner[end + 1..])
            }
        };
        c.values[f] = match FIELDS[f].1 {
            Type::Price => parse_price(text, decimals(symbol))?,
            Type::Qty | Type::Time => parse_u64(text)?,
        };
        c.mask |= 1 << f;
        rest = after;
    }
}

/// `150.00000` at 5 decimals → 15,000,000: exactly `d` decimals.
fn parse_price(text: &[u8], d: u8) -> Option<u64> {
    let point = text.iter().position(|&b| b == b'.')?;
    let (units, frac) = (&text[..point], &text[point + 1..]);
    if frac.len() != usize::from(d) {
        return None;
    }
    parse_u64(units)?
        .checked_mul(pow10(d))?
        .checked_add(parse_u64(frac)?)
}

/// How many fields of tickerd's `GET /symbols` answer differ from `finals` (each symbol's
/// record, `WIDTH` values a symbol): a field with another value or none, a symbol missing
/// or at another precision (all its fields then count). An answer that does not parse is
/// an error.
pub fn listing_differs(json: &str, finals: &[u64]) -> Result<u64, String> {
    let listed: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(json).map_err(|e| format!("GET /symbols: {e}"))?;
    let symbols = finals.len() / WIDTH;
    let mut seen = vec![false; symbols];
    let mut differ = 0;
    for entry in &listed {
        let symbol = entry
            .get("symbol")
            .and_then(|s| s.as_str())
            .and_then(|s| parse_name(s.as_bytes()))
            .filter(|&s| (s as usize) < symbols)
            .ok_or_else(|| format!("GET /symbols: not one of the bench's symbols: {entry:?}"))?;
        seen[symbol as usize] = true;
        if entry.get("decimals").and_then(|d| d.as_u64()) != Some(u64::from(decimals(symbol))) {
            differ += WIDTH as u64;
            continue;
        }
        for (f, (name, ty)) in FIELDS.iter().enumerate() {
            let value = match (ty, entry.get(*name)) {
                (Type::Price, Some(serde_json::Value::String(t))) => {
                    parse_price(t.as_bytes(), decimals(symbol))
                }
                (Type::Qty, Some(serde_json::Value::String(t))) => parse_u64(t.as_bytes()),
                (Type::Time, Some(serde_json::Value::Number(n))) => n.as_u64(),
                _ => None,
            };
            differ += u64::from(value != Some(finals[symbol as usize * WIDTH + f]));
        }
    }
    differ += seen.iter().filter(|&&s| !s).count() as u64 * WIDTH as u64;
    Ok(differ)
}

/// The fields each update sets: 1 to 3 of the six, each as likely, drawn from a seed so
/// that every system gets the same.
pub struct Masks {
    rng: StdRng,
}

impl Masks {
    pub fn new(seed: u64) -> Masks {
        Masks {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn next(&mut self) -> u8 {
        let n = self.rng.gen_range(1..=3);
        let mut mask = 0u8;
        while mask.count_ones() < n {
            mask |= 1 << self.rng.gen_range(0..WIDTH);
        }
        mask
    }
}

/// The checks of this module, run by the smoke run: against tickerd's own parsers and
/// value types, the listing and what the bench publishes read as the values it means, and
/// events written with tickerd's values read back, with the lengths the clients count.
/// (The smoke run's quote rows check the rest against the real server: every event read,
/// its bytes what tickerd counted, its records what it lists.)
pub fn self_check() {
    use tickerd::decimal::Decimal;
    use tickerd::listing::{parse_file, Defaults};
    use tickerd::publish::{parse_batch, BodyFormat};
    use tickerd::schema::{Schema, Value};

    let names = Universe::new(6);
    let schema = Schema::parse(&fields_flag()).expect("the bench's fields");
    let defaults = Defaults {
        decimals: 2,
        price: Decimal::new(1, 2),
    };
    let listed = parse_file(&listing(&names), &schema, defaults).expect("the bench's listing");
    // An event's data as tickerd writes it: its values in schema order, each by tickerd's
    // own `write_json`.
    let written = |s: u32, mask: u8, values: &[Option<Value>]| {
        let mut data = format!("{{\"symbol\":\"{}\"", names.name(s));
        for (f, value) in values.iter().enumerate() {
            if let (true, Some(v)) = (mask & (1 << f) != 0, value) {
                data.push_str(&format!(",\"{}\":", schema.field(f).name));
                v.write_json(&mut data);
            }
        }
        data.push('}');
        data
    };
    let mut records: Vec<Vec<Option<Value>>> = Vec::new();
    for (s, l) in listed.iter().enumerate() {
        let s = s as u32;
        assert_eq!(l.decimals, decimals(s));
        let mut values = vec![None; WIDTH];
        for &(f, v) in &l.values {
            values[f] = Some(v);
        }
        let data = written(s, ALL, &values);
        let c = parse_event_data(data.as_bytes()).expect("a snapshot");
        assert_eq!((c.symbol, c.mask, c.values), (s, ALL, [INITIAL; WIDTH]));
        assert_eq!(
            data_len(c.name_len, s, ALL, &c.values),
            data.len(),
            "{data}"
        );
        assert_eq!(event_data(&names.name(s), s, ALL, &c.values), data);
        records.push(values);
    }
    let mut masks = Masks::new(7);
    let mut finals = vec![INITIAL; 6 * WIDTH];
    for (i, t) in [1u64, 9, 10, 99_999_999, 123_456_789_012, 15_000_000]
        .into_iter()
        .enumerate()
    {
        let s = i as u32;
        let mask = masks.next();
        let mut line = String::new();
        update_line(&mut line, &names.name(s), s, mask, t);
        let find = |sym: &tickerd::symbol::Symbol| {
            let i = (0..6).find(|&i| names.name(i) == sym.as_str())?;
            Some((i, decimals(i)))
        };
        let batch = parse_batch(line.as_bytes(), BodyFormat::Text, &schema, (0, 2), find)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!((batch.len(), batch[0].symbol), (1, s), "{line}");
        for &(f, v) in &batch[0].values {
            records[i][f] = Some(v);
            finals[i * WIDTH + f] = t;
        }
        let data = written(s, mask, &records[i]);
        let c = parse_event_data(data.as_bytes()).unwrap_or_else(|| panic!("{data}"));
        let mut want = [0; WIDTH];
        for (f, v) in want.iter_mut().enumerate() {
            if mask & (1 << f) != 0 {
                *v = t;
            }
        }
        assert_eq!((c.symbol, c.mask, c.values), (s, mask, want), "{data}");
        assert_eq!(c.newest(), t);
        assert_eq!(data_len(c.name_len, s, mask, &want), data.len(), "{data}");
        assert_eq!(event_data(&names.name(s), s, mask, &want), data);
    }
    // tickerd's listing (`{"symbol":…,"decimals":…,"id":…,<fields>}`) against the records.
    let listing: Vec<String> = records
        .iter()
        .enumerate()
        .map(|(s, values)| {
            let data = written(s as u32, ALL, values);
            let fields = &data[data.find("\",").expect("fields") + 1..];
            format!(
                "{{\"symbol\":\"{}\",\"decimals\":{},\"id\":{}{fields}",
                names.name(s as u32),
                decimals(s as u32),
                100 + s
            )
        })
        .collect();
    let listing = format!("[{}]", listing.join(","));
    assert_eq!(listing_differs(&listing, &finals), Ok(0), "{listing}");
    // Against nothing published, and a seventh symbol that tickerd does not list.
    let set = finals.iter().filter(|&&v| v != INITIAL).count() as u64;
    assert_eq!(
        listing_differs(&listing, &[INITIAL; 7 * WIDTH]),
        Ok(set + WIDTH as u64)
    );
    finals[WIDTH + 5] += 1;
    assert_eq!(listing_differs(&listing, &finals), Ok(1));
    let mut seen = [0u32; 4];
    for _ in 0..1000 {
        seen[masks.next().count_ones() as usize] += 1;
    }
    assert!(
        seen[0] == 0 && seen[1..].iter().all(|&n| n > 250),
        "{seen:?}"
    );
    for bad in [
        &b"{\"symbol\":\"S0000\"}"[..],
        b"{\"symbol\":\"S0000\",\"bid\":\"1.0\"}",
        b"{\"symbol\":\"S0000\",\"bid\":1.00}",
        b"{\"symbol\":\"S0000\",\"ask\":\"1.00\",\"bid\":\"1.00\"}",
        b"{\"symbol\":\"S0000\",\"time\":\"1\"}",
        b"{\"symbol\":\"S0000\",\"size\":\"1\"",
    ] {
        assert_eq!(
            parse_event_data(bad),
            None,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}
