//! The record every symbol carries: its fields, their types, and the values they hold
//! (`--fields bid:price,ask:price,size:qty`). The first field is the headline: what
//! `GET /ticker` without `symbols` streams, what `SYM=PRICE` sets, what the random walk
//! moves. Pure: text in, values out.

use std::fmt::{self, Write as _};

use crate::decimal::{Decimal, DecimalError, MAX_SCALE};

/// The most fields a record has: a set of fields is one `u32` ([`FieldMask`]).
pub const MAX_FIELDS: usize = 32;
/// The longest field name.
const MAX_NAME: usize = 32;
/// Names an event or a listing already uses for itself.
const RESERVED: [&str; 3] = ["symbol", "decimals", "id"];

/// A field's place in the record.
pub type FieldId = usize;
/// A set of fields, bit `i` for field `i`.
pub type FieldMask = u32;

pub const HEADLINE: FieldId = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// An exact decimal at the symbol's precision (`decimals`).
    Price,
    /// An exact non-negative decimal, kept with the decimals it was published with.
    Qty,
    /// A signed 64-bit integer.
    Int,
    /// Milliseconds since the Unix epoch.
    Time,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Price => "price",
            FieldType::Qty => "qty",
            FieldType::Int => "int",
            FieldType::Time => "time",
        }
    }

    fn named(name: &str) -> Option<FieldType> {
        [
            FieldType::Price,
            FieldType::Qty,
            FieldType::Int,
            FieldType::Time,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }

    /// A value of this type from its text (a published value, a JSON number's text or a
    /// JSON string's content), at `decimals` for a price. The error is a short reason.
    pub fn parse(self, text: &str, decimals: u8) -> Result<Value, String> {
        match self {
            FieldType::Price => Decimal::parse_at(text, decimals)
                .map(Value::Decimal)
                .map_err(|e| match e {
                    DecimalError::TooManyDecimals { max } => {
                        format!("{text} has more than the symbol's {max} decimals (never rounded)")
                    }
                    e => format!("{text:?} is not a price: {e}"),
                }),
            FieldType::Qty => match Decimal::parse(text) {
                Ok(d) if d.is_negative() => Err(format!("{text} is negative: a qty is not")),
                Ok(d) => Ok(Value::Decimal(d)),
                Err(e) => Err(format!("{text:?} is not a qty: {e}")),
            },
            FieldType::Int | FieldType::Time => {
                let plain = text.strip_prefix('-').unwrap_or(text);
                let n = match !plain.is_empty() && plain.bytes().all(|b| b.is_ascii_digit()) {
                    true => text.parse::<i64>().ok(),
                    false => None,
                };
                match (self, n) {
                    (FieldType::Time, Some(n)) if n < 0 => Err(format!(
                        "{text} is not a time: milliseconds since 1970, not negative"
                    )),
                    (_, Some(n)) => Ok(Value::Int(n)),
                    (FieldType::Time, None) => Err(format!(
                        "{text:?} is not a time: whole milliseconds since 1970"
                    )),
                    (_, None) => Err(format!("{text:?} is not a 64-bit integer")),
                }
            }
        }
    }
}

/// A field's value. Values compare by what they hold, which is the text they are written
/// as: a qty `0.1` and `0.10` differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Value {
    /// `price` and `qty`.
    Decimal(Decimal),
    /// `int` and `time`.
    Int(i64),
}

impl Value {
    /// As JSON: decimals as strings (exact in every client), integers as numbers.
    pub fn write_json(&self, out: &mut String) {
        let _ = match self {
            Value::Decimal(d) => write!(out, "\"{d}\""),
            Value::Int(n) => write!(out, "{n}"),
        };
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Decimal(d) => d.fmt(f),
            Value::Int(n) => n.fmt(f),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    fields: Vec<Field>,
}

impl Schema {
    /// `price:price`: one price per symbol, the model before records.
    pub fn single_price() -> Schema {
        Schema::parse("price:price").expect("valid")
    }

    /// The demo universe's quote (see the README's "Records").
    pub fn quote() -> Schema {
        Schema::parse("last:price,bid:price,ask:price,size:qty,volume:qty,time:time")
            .expect("valid")
    }

    /// `--fields`: `NAME:TYPE` comma-separated. Errors name the entry.
    pub fn parse(list: &str) -> Result<Schema, String> {
        let mut fields: Vec<Field> = Vec::new();
        for (n, entry) in list.split(',').enumerate() {
            let entry = entry.trim();
            let bad = |why: String| format!("entry {} ({entry:?}): {why}", n + 1);
            let (name, ty) = entry
                .split_once(':')
                .ok_or_else(|| bad("expected NAME:TYPE, such as bid:price".into()))?;
            let (name, ty) = (name.trim(), ty.trim());
            let valid = name.len() <= MAX_NAME
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(bad(format!(
                    "a name is [a-z][a-z0-9_]*, at most {MAX_NAME} characters"
                )));
            }
            if RESERVED.contains(&name) {
                return Err(bad(format!(
                    "{name} is reserved (events and listings use it)"
                )));
            }
            let ty = FieldType::named(ty)
                .ok_or_else(|| bad(format!("{ty:?} is not a type: price, qty, int or time")))?;
            if fields.iter().any(|f| f.name == name) {
                return Err(bad(format!("{name} is a duplicate")));
            }
            if fields.len() == MAX_FIELDS {
                return Err(format!("more than {MAX_FIELDS} fields"));
            }
            fields.push(Field {
                name: name.to_string(),
                ty,
            });
        }
        Ok(Schema { fields })
    }

    /// At least 1: a schema without fields does not parse, so there is no `is_empty`.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn field(&self, id: FieldId) -> &Field {
        &self.fields[id]
    }

    pub fn find(&self, name: &str) -> Option<FieldId> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// Every field.
    pub fn all(&self) -> FieldMask {
        match self.fields.len() {
            MAX_FIELDS => FieldMask::MAX,
            n => (1 << n) - 1,
        }
    }

    /// `GET /fields`: `{"headline":"price","fields":[{"name":"price","type":"price"}]}`.
    pub fn json(&self) -> String {
        let mut out = format!("{{\"headline\":\"{}\",\"fields\":[", self.fields[0].name);
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"name\":\"{}\",\"type\":\"{}\"}}",
                f.name,
                f.ty.name()
            );
        }
        out.push_str("]}\n");
        out
    }
}

/// `decimals=N` and `--decimals`: a precision, 0 to 9.
pub fn parse_decimals(text: &str) -> Result<u8, String> {
    match text.parse::<u8>() {
        Ok(n) if n <= MAX_SCALE => Ok(n),
        _ => Err(format!(
            "decimals {text:?}: a whole number from 0 to {MAX_SCALE}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema() {
        let s = Schema::parse("bid:price, ask:price,size:qty,n:int,time:time").unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s.find("ask"), Some(1));
        assert_eq!(s.find("nope"), None);
        assert_eq!(s.field(4).ty, FieldType::Time);
        assert_eq!(s.all(), 0b11111);
        assert_eq!(
            Schema::single_price().json(),
            "{\"headline\":\"price\",\"fields\":[{\"name\":\"price\",\"type\":\"price\"}]}\n"
        );
        let many: Vec<String> = (0..32).map(|i| format!("f{i}:int")).collect();
        assert_eq!(Schema::parse(&many.join(",")).unwrap().all(), u32::MAX);
    }

    #[test]
    fn schema_errors_name_the_entry() {
        for (list, want) in [
            ("", "entry 1 (\"\"): expected NAME:TYPE"),
            ("bid:price,ask", "entry 2 (\"ask\"): expected"),
            ("Bid:price", "a name is [a-z]"),
            ("1x:price", "a name is [a-z]"),
            ("b-d:price", "a name is [a-z]"),
            ("bid:float", "\"float\" is not a type"),
            (
                "bid:price,bid:qty",
                "entry 2 (\"bid:qty\"): bid is a duplicate",
            ),
            ("symbol:price", "symbol is reserved"),
            ("id:int", "id is reserved"),
        ] {
            let err = Schema::parse(list).unwrap_err();
            assert!(err.contains(want), "{list:?}: {err}");
        }
        let long = format!("{}:int", "a".repeat(33));
        assert!(Schema::parse(&long).is_err());
        let many: Vec<String> = (0..33).map(|i| format!("f{i}:int")).collect();
        assert_eq!(
            Schema::parse(&many.join(",")).unwrap_err(),
            "more than 32 fields"
        );
    }

    #[test]
    fn values_by_type() {
        let p = |t: FieldType, text: &str| t.parse(text, 2).map(|v| v.to_string());
        assert_eq!(p(FieldType::Price, "1.5"), Ok("1.50".into()));
        assert_eq!(p(FieldType::Price, "-37.63"), Ok("-37.63".into()));
        assert!(p(FieldType::Price, "1.005")
            .unwrap_err()
            .contains("more than the symbol's 2 decimals"));
        assert_eq!(p(FieldType::Qty, "0.10"), Ok("0.10".into()));
        assert_eq!(p(FieldType::Qty, "12.345678"), Ok("12.345678".into()));
        assert!(p(FieldType::Qty, "-1").unwrap_err().contains("negative"));
        assert_eq!(p(FieldType::Int, "-42"), Ok("-42".into()));
        assert!(p(FieldType::Int, "1.0").is_err());
        assert!(p(FieldType::Int, "+1").is_err());
        assert!(p(FieldType::Int, "9223372036854775808").is_err());
        assert_eq!(
            p(FieldType::Time, "1765100000123"),
            Ok("1765100000123".into())
        );
        assert!(p(FieldType::Time, "-1").is_err());
        assert!(p(FieldType::Time, "").is_err());
        let qty = |t| FieldType::Qty.parse(t, 0).unwrap();
        assert_ne!(qty("0.1"), qty("0.10"), "values compare by their text");
        let mut json = String::new();
        qty("0.10").write_json(&mut json);
        Value::Int(7).write_json(&mut json);
        assert_eq!(json, "\"0.10\"7");
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimals("0"), Ok(0));
        assert_eq!(parse_decimals("9"), Ok(9));
        assert!(parse_decimals("10").is_err());
        assert!(parse_decimals("-1").is_err());
        assert!(parse_decimals("x").is_err());
    }
}
