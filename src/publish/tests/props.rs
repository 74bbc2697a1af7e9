//! Property tests: any body is parsed or refused with a reason that names a line or the
//! body, never a panic; and every update written in either format reads back as it was.

use super::*;
use crate::decimal::Decimal;
use proptest::collection::vec;
use proptest::prelude::*;

/// Bodies that look like publishes often enough to reach every check.
fn publish_like() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just("AAPL"),
        Just("msft"),
        Just("BRK.B"),
        Just("NOPE"),
        Just("price"),
        Just("bid"),
        Just("size"),
        Just("n"),
        Just("time"),
        Just("="),
        Just(" "),
        Just("\n"),
        Just("&"),
        Just("1"),
        Just("-2.5"),
        Just("0.000000001"),
        Just("1e3"),
        Just("9223372036854775808"),
        Just("{"),
        Just("}"),
        Just("["),
        Just(":"),
        Just(","),
        Just("\""),
        Just("\"symbol\":"),
        Just("\"bid\":"),
        Just("null"),
        Just("\\u0041"),
    ]
    .prop_map(|t| t.as_bytes().to_vec());
    let part = prop_oneof![4 => token, 1 => vec(any::<u8>(), 0..4)];
    vec(part, 0..24).prop_map(|parts| parts.concat())
}

fn format() -> impl Strategy<Value = BodyFormat> {
    prop_oneof![Just(BodyFormat::Text), Just(BodyFormat::JsonLines)]
}

/// A value of each field of [`quote`]: bid and ask at the symbol's precision, size at a
/// precision of its own, n any integer, time not negative.
fn record(decimals: u8) -> impl Strategy<Value = [Value; 5]> {
    (
        any::<i64>(),
        any::<i64>(),
        (0..=i64::MAX, 0..=9u8),
        any::<i64>(),
        0..=i64::MAX,
    )
        .prop_map(move |(bid, ask, (size, scale), n, time)| {
            [
                Value::Decimal(Decimal::new(bid, decimals)),
                Value::Decimal(Decimal::new(ask, decimals)),
                Value::Decimal(Decimal::new(size, scale)),
                Value::Int(n),
                Value::Int(time),
            ]
        })
}

/// An update of the test universe: a symbol, and some of its fields in any order.
fn update() -> impl Strategy<Value = Update<u32>> {
    (0..UNIVERSE.len()).prop_flat_map(|i| {
        let fields =
            proptest::sample::subsequence((0..5).collect::<Vec<_>>(), 1..=5).prop_shuffle();
        (record(UNIVERSE[i].1), fields).prop_map(move |(record, fields)| Update {
            symbol: i as u32 + 1,
            values: fields.into_iter().map(|f| (f, record[f])).collect(),
        })
    })
}

fn written_as_text(updates: &[Update<u32>], schema: &Schema) -> String {
    let lines: Vec<String> = updates
        .iter()
        .map(|u| {
            let mut line = UNIVERSE[u.symbol as usize - 1].0.to_string();
            for (id, value) in &u.values {
                line += &format!(" {}={value}", schema.field(*id).name);
            }
            line
        })
        .collect();
    lines.join("\n")
}

/// Each value as a JSON string or a JSON number, as `strings` says.
fn written_as_json(updates: &[Update<u32>], schema: &Schema, strings: &[bool]) -> String {
    let lines: Vec<String> = updates
        .iter()
        .zip(strings.iter().cycle())
        .map(|(u, &string)| {
            let symbol = UNIVERSE[u.symbol as usize - 1].0;
            let mut line = format!("{{\"symbol\":\"{symbol}\"");
            let q = if string { "\"" } else { "" };
            for (id, value) in &u.values {
                line += &format!(",\"{}\":{q}{value}{q}", schema.field(*id).name);
            }
            line + "}"
        })
        .collect();
    lines.join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_body_is_parsed_or_refused_by_name(
        body in prop_oneof![vec(any::<u8>(), 0..64), publish_like()],
        format in format(),
    ) {
        match parse_batch(&body, format, &quote(), (0, 2), find) {
            Ok(updates) => {
                prop_assert!(!updates.is_empty());
                for u in updates {
                    prop_assert!(!u.values.is_empty());
                    let mut ids: Vec<FieldId> = u.values.iter().map(|v| v.0).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    prop_assert_eq!(ids.len(), u.values.len(), "a field named twice");
                }
            }
            Err(why) => prop_assert!(
                why.starts_with("line ") || why.starts_with("the body"),
                "{}", why
            ),
        }
    }

    #[test]
    fn updates_read_back_in_both_formats(
        updates in vec(update(), 1..6),
        strings in vec(any::<bool>(), 1..6),
    ) {
        let schema = quote();
        let text = written_as_text(&updates, &schema);
        let read = parse_batch(text.as_bytes(), BodyFormat::Text, &schema, (0, 2), find);
        prop_assert_eq!(read.as_ref(), Ok(&updates), "{}", text);
        let json = written_as_json(&updates, &schema, &strings);
        let read = parse_batch(json.as_bytes(), BodyFormat::JsonLines, &schema, (0, 2), find);
        prop_assert_eq!(read.as_ref(), Ok(&updates), "{}", json);
    }
}
