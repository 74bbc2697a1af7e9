//! What both publish targets check, against a fixed record and a universe of three
//! precisions: never a panic; a refusal names a line or the body; an update names each of
//! its fields once, a price at its symbol's precision; and the updates taken, written back
//! in the same format, read the same.
use std::sync::OnceLock;

use tickerd::publish::{parse_batch, BodyFormat, Update};
use tickerd::schema::{FieldType, Schema, Value};
use tickerd::symbol::Symbol;

/// The default symbol is the first.
const UNIVERSE: [(&str, u8); 3] = [("AAPL", 2), ("EURUSD", 5), ("BTC", 8)];

fn find(s: &Symbol) -> Option<(usize, u8)> {
    let i = UNIVERSE.iter().position(|(name, _)| *name == s.as_str())?;
    Some((i, UNIVERSE[i].1))
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse("bid:price,ask:price,size:qty,n:int,time:time").unwrap())
}

fn parse(body: &[u8], format: BodyFormat) -> Result<Vec<Update<usize>>, String> {
    parse_batch(body, format, schema(), (0, UNIVERSE[0].1), find)
}

pub fn check(body: &[u8], format: BodyFormat) {
    let updates = match parse(body, format) {
        Ok(updates) => updates,
        Err(why) => {
            assert!(
                why.starts_with("line ") || why.starts_with("the body"),
                "{why}"
            );
            return;
        }
    };
    assert!(!updates.is_empty());
    let mut again = String::new();
    for u in &updates {
        assert!(!u.values.is_empty(), "an update of no field");
        let (name, decimals) = UNIVERSE[u.symbol];
        again += &match format {
            BodyFormat::Text => name.to_string(),
            BodyFormat::JsonLines => format!("{{\"symbol\":\"{name}\""),
        };
        for (i, (id, value)) in u.values.iter().enumerate() {
            assert!(
                u.values[..i].iter().all(|(other, _)| other != id),
                "a field twice"
            );
            let field = schema().field(*id);
            if let (FieldType::Price, Value::Decimal(d)) = (field.ty, value) {
                assert_eq!(d.scale(), decimals, "a price not at its symbol's precision");
            }
            match format {
                BodyFormat::Text => again += &format!(" {}={value}", field.name),
                BodyFormat::JsonLines => {
                    again += &format!(",\"{}\":", field.name);
                    value.write_json(&mut again);
                }
            }
        }
        again += if format == BodyFormat::Text {
            "\n"
        } else {
            "}\n"
        };
    }
    assert_eq!(parse(again.as_bytes(), format), Ok(updates), "{again}");
}
