//! The publish parsers' tables: every form of both formats, and every refusal with its
//! exact message; the property tests are in `props`.

use super::*;

mod props;

/// The universe of these tests: AAPL is 1 (2 decimals), MSFT 2 (5), BRK.B 3 (8); the
/// default symbol is 0 (2).
const UNIVERSE: [(&str, u8); 3] = [("AAPL", 2), ("MSFT", 5), ("BRK.B", 8)];

fn find(s: &Symbol) -> Option<(u32, u8)> {
    let i = UNIVERSE.iter().position(|(n, _)| *n == s.as_str())?;
    Some((i as u32 + 1, UNIVERSE[i].1))
}

fn quote() -> Schema {
    Schema::parse("bid:price,ask:price,size:qty,n:int,time:time").unwrap()
}

fn req(auth: Option<&str>) -> Request<'_> {
    Request {
        authorization: auth.map(str::as_bytes),
        ..Request::default()
    }
}

#[test]
fn tokens() {
    let t = Some("s3cret");
    assert_eq!(authorize(t, &req(Some("Bearer s3cret"))), Ok(()));
    assert_eq!(authorize(t, &req(Some("bearer  s3cret "))), Ok(()));
    assert_eq!(
        authorize(None, &req(Some("Bearer s3cret"))),
        Err(PublishError::Disabled)
    );
    for auth in [
        None,
        Some("Bearer wrong!"),
        Some("Bearer s3cre"),
        Some("Basic s3cret"),
        Some("Bearer"),
        Some("Bearers3cret"),
    ] {
        assert_eq!(
            authorize(t, &req(auth)),
            Err(PublishError::Unauthorized),
            "{auth:?}"
        );
    }
}

/// Each update as its symbol and `field=value …`, the values as they would be written.
fn parsed(body: &str, format: BodyFormat, schema: &Schema) -> Result<Vec<(u32, String)>, String> {
    let updates = parse_batch(body.as_bytes(), format, schema, (0, 2), find)?;
    Ok(updates
        .into_iter()
        .map(|u| {
            let fields: Vec<String> = u
                .values
                .iter()
                .map(|(id, v)| format!("{}={v}", schema.field(*id).name))
                .collect();
            (u.symbol, fields.join(" "))
        })
        .collect())
}

fn text(body: &str) -> Result<Vec<(u32, String)>, String> {
    parsed(body, BodyFormat::Text, &quote())
}

fn json(body: &str) -> Result<Vec<(u32, String)>, String> {
    parsed(body, BodyFormat::JsonLines, &quote())
}

/// With the single-price record (`price:price`) at two decimals, as the core had it before
/// records: each headline's mantissa.
fn cents(body: &str) -> Result<Vec<(u32, i64)>, String> {
    let single = Schema::single_price();
    let updates = parse_batch(body.as_bytes(), BodyFormat::Text, &single, (0, 2), |s| {
        find(s).map(|f| (f.0, 2))
    })?;
    Ok(updates
        .iter()
        .map(|u| match u.values[..] {
            [(0, Value::Decimal(d))] => (u.symbol, d.mantissa()),
            _ => panic!("{u:?}"),
        })
        .collect())
}

fn ok(updates: &[(u32, &str)]) -> Result<Vec<(u32, String)>, String> {
    Ok(updates.iter().map(|&(s, f)| (s, f.to_string())).collect())
}

#[test]
fn a_single_price_is_the_default_symbol() {
    let single = |body| parsed(body, BodyFormat::Text, &Schema::single_price());
    assert_eq!(single("1.50"), ok(&[(0, "price=1.50")]));
    assert_eq!(single("price=2\n"), ok(&[(0, "price=2.00")]));
    assert_eq!(single(" 7 "), ok(&[(0, "price=7.00")]));
    assert_eq!(cents("1.50"), Ok(vec![(0, 150)]));
    assert_eq!(cents("price=2\n"), Ok(vec![(0, 200)]));
    assert_eq!(cents(" 7 "), Ok(vec![(0, 700)]));
    // `price=` is the headline whatever the schema calls it.
    assert_eq!(text("price=1.5"), ok(&[(0, "bid=1.50")]));
    assert_eq!(text("189.2"), ok(&[(0, "bid=189.20")]));
}

#[test]
fn batches_in_order_with_either_separator() {
    assert_eq!(
        cents("AAPL=189.20\nmsft=415.3\r\n\nBRK.B=1&AAPL=2&"),
        Ok(vec![(1, 18_920), (2, 41_530), (3, 100), (1, 200)])
    );
    assert_eq!(cents("aapl=1"), Ok(vec![(1, 100)]));
    assert_eq!(cents("AAPL = 1"), Ok(vec![(1, 100)]));
    // At each symbol's precision.
    assert_eq!(
        text("AAPL=189.2\nmsft=415.3&BRK.B=0.00000001"),
        ok(&[
            (1, "bid=189.20"),
            (2, "bid=415.30000"),
            (3, "bid=0.00000001")
        ])
    );
}

#[test]
fn text_records() {
    for (body, want) in [
        (
            "MSFT bid=415.3 ask=415.31 size=100 n=-3 time=1765100000123",
            vec![(
                2,
                "bid=415.30000 ask=415.31000 size=100 n=-3 time=1765100000123",
            )],
        ),
        // Fields in the order given; a qty keeps the decimals it was written with.
        (
            "brk.b  size=0.10\tbid=1",
            vec![(3, "size=0.10 bid=1.00000000")],
        ),
        (
            "AAPL ask=2\r\nMSFT=3&AAPL n=0 time=0\n\n",
            vec![(1, "ask=2.00"), (2, "bid=3.00000"), (1, "n=0 time=0")],
        ),
        ("AAPL bid=-37.63", vec![(1, "bid=-37.63")]),
    ] {
        assert_eq!(text(body), ok(&want), "{body:?}");
    }
}

#[test]
fn json_lines() {
    for (body, want) in [
        (
            r#"{"symbol":"AAPL","bid":"189.19","ask":189.21,"time":1765100000123}"#,
            vec![(1, "bid=189.19 ask=189.21 time=1765100000123")],
        ),
        // A number's text as written: a qty keeps its decimals.
        (r#"{"symbol":"msft","size":1.50}"#, vec![(2, "size=1.50")]),
        (
            "\n {\"size\": \"0.10\", \"symbol\": \"BRK.B\" }\r\n\n{\"symbol\":\"AAPL\",\"n\":\"-7\"}",
            vec![(3, "size=0.10"), (1, "n=-7")],
        ),
        // Escapes in names and strings are decoded.
        (
            r#"{"symbol":"A\u0041PL","\u0062id":"1"}"#,
            vec![(1, "bid=1.00")],
        ),
    ] {
        assert_eq!(json(body), ok(&want), "{body:?}");
    }
}

/// Every refusal: the message as a whole, so that a change of wording is seen.
#[test]
fn text_refusals_name_the_first_bad_line() {
    let long = format!("AAPL bid={}", "1".repeat(100));
    for (body, want) in [
        (
            "",
            "the body is empty: send a price, SYM=PRICE lines or SYM field=value lines",
        ),
        (
            " \r\n ",
            "the body is empty: send a price, SYM=PRICE lines or SYM field=value lines",
        ),
        ("&\n&", "the body has no update, only empty lines"),
        (
            "abc",
            r#"the body "abc": bid: "abc" is not a price: not a decimal such as 123.45"#,
        ),
        (
            "1.005",
            r#"the body "1.005": bid: 1.005 has more than the symbol's 2 decimals (never rounded)"#,
        ),
        (
            "price=1e3",
            r#"the body "price=1e3": bid: "1e3" is not a price: not a decimal such as 123.45"#,
        ),
        // One line of one word and no `=` is a bare price, as it always was.
        (
            "AAPL bid",
            r#"the body "AAPL bid": bid: "AAPL bid" is not a price: not a decimal such as 123.45"#,
        ),
        // A one-line `field=value` is `SYM=PRICE`: there is no bare field.
        ("bid=1.5", r#"line 1: "bid=1.5": unknown symbol BID"#),
        (
            "AAPL=1\nIBM=2\nMSFT=x",
            r#"line 2: "IBM=2": unknown symbol IBM"#,
        ),
        (
            "AAPL=1\nMSFT=x\nIBM=2",
            r#"line 2: "MSFT=x": bid: "x" is not a price: not a decimal such as 123.45"#,
        ),
        (
            "AAPL=1&MSFT",
            r#"line 2: "MSFT": expected SYM=PRICE or SYM field=value …"#,
        ),
        (
            "AAPL=1\n1.00",
            r#"line 2: "1.00": expected SYM=PRICE or SYM field=value …"#,
        ),
        (
            "AAPL=1\n.X=1",
            r#"line 2: ".X=1": must start with a letter or a digit"#,
        ),
        (
            "AAPL=1\n.X bid=1",
            r#"line 2: ".X bid=1": must start with a letter or a digit"#,
        ),
        (
            "price=1&AAPL=2",
            r#"line 1: "price=1": unknown symbol PRICE"#,
        ),
        (
            "AAPL=1&&MSFT=1\nNOPE=1",
            r#"line 4: "NOPE=1": unknown symbol NOPE"#,
        ),
        (
            "AAPL=\nMSFT=1",
            r#"line 1: "AAPL=": bid: "" is not a price: not a decimal such as 123.45"#,
        ),
        (
            "AAPL=1\nAAPL bid",
            r#"line 2: "AAPL bid": "bid": expected field=value"#,
        ),
        (
            "AAPL bid=1 volume=2",
            r#"line 1: "AAPL bid=1 volume=2": unknown field volume"#,
        ),
        (
            "AAPL bid=1 BID=2",
            r#"line 1: "AAPL bid=1 BID=2": unknown field BID"#,
        ),
        (
            "AAPL bid=1 =2",
            r#"line 1: "AAPL bid=1 =2": unknown field """#,
        ),
        (
            "AAPL bid=1 ask=2 bid=3",
            r#"line 1: "AAPL bid=1 ask=2 bid=3": duplicate field bid"#,
        ),
        (
            "MSFT bid=1.000001",
            r#"line 1: "MSFT bid=1.000001": bid: 1.000001 has more than the symbol's 5 decimals (never rounded)"#,
        ),
        (
            "AAPL bid=1e3",
            r#"line 1: "AAPL bid=1e3": bid: "1e3" is not a price: not a decimal such as 123.45"#,
        ),
        (
            "AAPL size=-1",
            r#"line 1: "AAPL size=-1": size: -1 is negative: a qty is not"#,
        ),
        (
            "AAPL n=1.5",
            r#"line 1: "AAPL n=1.5": n: "1.5" is not a 64-bit integer"#,
        ),
        (
            "AAPL time=-1",
            r#"line 1: "AAPL time=-1": time: -1 is not a time: milliseconds since 1970, not negative"#,
        ),
        ("NOPE bid=1", r#"line 1: "NOPE bid=1": unknown symbol NOPE"#),
        // A long value is shown cut short, like the line.
        (
            &long,
            r#"line 1: "AAPL bid=1111111111111111111111111111111…": bid: "1111111111111111111111111111111111111111…" is not a price"#,
        ),
    ] {
        assert_eq!(text(body), Err(want.to_string()), "{body:?}");
    }
    assert_eq!(
        parse_batch(b"AAPL=1\n\xff", BodyFormat::Text, &quote(), (0, 2), find),
        Err("the body is not UTF-8 (from byte 8)".into())
    );
}

#[test]
fn json_refusals_name_the_first_bad_line() {
    for (body, want) in [
        ("\n", "the body is empty: send one JSON object a line"),
        (
            r#"{"symbol":"AAPL","bid":1e3}"#,
            r#"line 1: "{\"symbol\":\"AAPL\",\"bid\":1e3}": bid: "1e3" is not a price: not a decimal such as 123.45"#,
        ),
        (
            r#"{"symbol":"AAPL","bid":1.005}"#,
            "bid: 1.005 has more than the symbol's 2 decimals (never rounded)",
        ),
        (
            r#"{"symbol":"AAPL","bid":"1 "}"#,
            r#"bid: "1 " is not a price: not a decimal such as 123.45"#,
        ),
        (
            r#"{"symbol":"AAPL","bid":null}"#,
            "bid: expected a JSON string or number for type price, not null",
        ),
        (
            r#"{"symbol":"AAPL","n":true}"#,
            "n: expected a JSON string or number for type int, not a boolean",
        ),
        (
            r#"{"symbol":"AAPL","size":[1]}"#,
            "size: expected a JSON string or number for type qty, not an array",
        ),
        (
            r#"{"symbol":"AAPL","time":{}}"#,
            "time: expected a JSON string or number for type time, not an object",
        ),
        (
            r#"{"symbol":"AAPL","bid":"1","bid":"2"}"#,
            "duplicate field bid",
        ),
        (
            r#"{"symbol":"AAPL","symbol":"MSFT","bid":"1"}"#,
            r#""symbol" given twice"#,
        ),
        (r#"{"bid":"1"}"#, r#"missing "symbol""#),
        (
            r#"{"symbol":7,"bid":"1"}"#,
            r#""symbol" is not a JSON string"#,
        ),
        (r#"{"symbol":"NOPE","bid":"1"}"#, "unknown symbol NOPE"),
        (
            r#"{"symbol":"A B","bid":"1"}"#,
            "character ' ' not allowed (A-Z 0-9 . - _)",
        ),
        (r#"{"symbol":"AAPL"}"#, "the update names no field"),
        (r#"{"symbol":"AAPL","volume":"1"}"#, "unknown field volume"),
        (r#"{"symbol":"AAPL","a\nb":"1"}"#, r#"unknown field "a\nb""#),
        ("[1]", "not a JSON object"),
        ("7", "not a JSON object"),
        (r#""AAPL""#, "not a JSON object"),
        (
            r#"{"symbol":"AAPL","#,
            "not JSON: EOF while parsing a value (column 17)",
        ),
        ("AAPL=1", "not JSON: expected value (column 1)"),
        (
            r#"{"symbol":"AAPL","bid":"1"} x"#,
            "not JSON: trailing characters (column 29)",
        ),
        // `&` separates text lines only.
        (
            r#"{"symbol":"AAPL","bid":"1"}&{"symbol":"AAPL","bid":"2"}"#,
            "not JSON: trailing characters (column 28)",
        ),
    ] {
        let err = json(body).unwrap_err();
        assert!(err.ends_with(want), "{body:?}: {err}");
        assert!(
            err.starts_with("line 1: ") || err.starts_with("the body"),
            "{err}"
        );
    }
    let err = json("{\"symbol\":\"AAPL\",\"bid\":\"1\"}\n\n{\"symbol\":\"NOPE\",\"bid\":\"1\"}");
    assert_eq!(
        err,
        Err(r#"line 3: "{\"symbol\":\"NOPE\",\"bid\":\"1\"}": unknown symbol NOPE"#.into())
    );
}

/// Prices are exact and signed: refused only when they are not decimals or have more
/// decimals than their symbol.
#[test]
fn prices_are_exact_signed_and_never_rounded() {
    assert_eq!(cents("-1"), Ok(vec![(0, -100)]));
    assert_eq!(cents("0"), Ok(vec![(0, 0)]));
    assert_eq!(cents("AAPL=1&MSFT=-37.63"), Ok(vec![(1, 100), (2, -3763)]));
    assert_eq!(cents("AAPL price=0.01"), Ok(vec![(1, 1)]));
    for (body, want) in [
        (
            "AAPL=1.005",
            r#"line 1: "AAPL=1.005": price: 1.005 has more than the symbol's 2 decimals (never rounded)"#,
        ),
        (
            "2.999",
            r#"the body "2.999": price: 2.999 has more than the symbol's 2 decimals (never rounded)"#,
        ),
        (
            "AAPL=x",
            r#"line 1: "AAPL=x": price: "x" is not a price: not a decimal such as 123.45"#,
        ),
        ("AAPL bid=1", r#"line 1: "AAPL bid=1": unknown field bid"#),
    ] {
        assert_eq!(cents(body), Err(want.to_string()), "{body:?}");
    }
}

#[test]
fn equality() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
}
