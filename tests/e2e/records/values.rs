//! Publishing values, over HTTP and SCGI: prices exact at each symbol's precision
//! (padded, never rounded, negatives taken), JSON lines with numbers and strings kept as
//! written, ints and times as JSON numbers, and batches refused whole.

use std::collections::BTreeMap;

use serde_json::Value;

use super::*;

const PRECISIONS: &str = "EURUSD=1.08345,USDJPY=151.235,ETH-BTC=0.05123456,AAPL=189.20,WTI=75.10";

#[test]
fn prices_are_exact_at_each_symbols_precision_over_http_and_scgi() {
    let t = start(&["--symbols", PRECISIONS]);
    let listing: Value = serde_json::from_str(&symbols_text(t.http())).unwrap();
    let decimals: BTreeMap<&str, u64> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["symbol"].as_str().unwrap(),
                s["decimals"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        decimals,
        BTreeMap::from([
            ("EURUSD", 5),
            ("USDJPY", 3),
            ("ETH-BTC", 8),
            ("AAPL", 2),
            ("WTI", 2)
        ]),
        "each from the decimals its price was written with"
    );
    let path = "/ticker?symbols=EURUSD,USDJPY,ETH-BTC,AAPL,WTI";
    let vias = both(&t);
    let mut streams: Vec<_> = vias.iter().map(|v| open(v, path, None)).collect();
    let first = newest(&t) - 4;
    let snapshot: Vec<_> = [
        "{\"symbol\":\"EURUSD\",\"price\":\"1.08345\"}",
        "{\"symbol\":\"USDJPY\",\"price\":\"151.235\"}",
        "{\"symbol\":\"ETH-BTC\",\"price\":\"0.05123456\"}",
        "{\"symbol\":\"AAPL\",\"price\":\"189.20\"}",
        "{\"symbol\":\"WTI\",\"price\":\"75.10\"}",
    ]
    .iter()
    .enumerate()
    .map(|(i, d)| event(first + i as u64, d))
    .collect();
    for (s, via) in streams.iter_mut().zip(&vias) {
        expect(s, &snapshot, &format!("snapshot over {}", via.name()));
    }
    for (pass, via) in vias.iter().enumerate() {
        // Other values each pass: a publish that changes nothing is sent to no one.
        let k = pass as u64;
        let batch = format!(
            "EURUSD=1.{}\nUSDJPY={}\nETH-BTC=0.{}\nWTI=-37.6{}",
            5 + k,
            150 + k,
            1 + k,
            3 + k
        );
        let p = publish_ok(via, &batch, Lines::Text);
        assert_eq!((p.applied, p.unchanged), (4, 0), "{batch:?}");
        let want = [
            event(
                p.last_id - 3,
                &format!("{{\"symbol\":\"EURUSD\",\"price\":\"1.{}0000\"}}", 5 + k),
            ),
            event(
                p.last_id - 2,
                &format!("{{\"symbol\":\"USDJPY\",\"price\":\"{}.000\"}}", 150 + k),
            ),
            event(
                p.last_id - 1,
                &format!(
                    "{{\"symbol\":\"ETH-BTC\",\"price\":\"0.{}0000000\"}}",
                    1 + k
                ),
            ),
            event(
                p.last_id,
                &format!("{{\"symbol\":\"WTI\",\"price\":\"-37.6{}\"}}", 3 + k),
            ),
        ];
        for (s, v) in streams.iter_mut().zip(&vias) {
            expect(
                s,
                &want,
                &format!("published over {}, read over {}", via.name(), v.name()),
            );
        }
        // More decimals than the symbol's, anywhere in the batch: refused whole, never
        // rounded, nothing applied.
        let (id, before) = (newest(&t), symbols_text(t.http()));
        for (body, format, place, says) in [
            (
                "WTI=1\nAAPL=1.005\nEURUSD=2",
                Lines::Text,
                "line 2: \"AAPL=1.005\": ",
                "price: 1.005 has more than the symbol's 2 decimals (never rounded)",
            ),
            (
                "EURUSD=1.083451",
                Lines::Text,
                "line 1: ",
                "more than the symbol's 5 decimals",
            ),
            (
                "USDJPY=151.2351&WTI=2",
                Lines::Text,
                "line 1: ",
                "more than the symbol's 3 decimals",
            ),
            (
                "AAPL=2\nETH-BTC=0.051234561",
                Lines::Text,
                "line 2: ",
                "more than the symbol's 8 decimals",
            ),
            (
                "{\"symbol\":\"WTI\",\"price\":\"3\"}\n{\"symbol\":\"AAPL\",\"price\":1.005}",
                Lines::Json,
                "line 2: ",
                "price: 1.005 has more than the symbol's 2 decimals",
            ),
        ] {
            publish_refused(via, body, format, place, says);
            assert_unchanged(&t, id, &before, body);
        }
        for (s, v) in streams.iter_mut().zip(&vias) {
            assert_quiet(
                s,
                Duration::from_millis(300),
                &format!("after refusals, over {}", v.name()),
            );
        }
    }
}

#[test]
fn json_lines_keep_values_as_written_and_ints_and_times_are_numbers() {
    let t = start(&[
        "--fields",
        "bid:price,size:qty,n:int,time:time",
        "--symbols",
        "A=1.00,B=2",
    ]);
    let vias = both(&t);
    let mut streams: Vec<_> = vias
        .iter()
        .map(|v| open(v, "/ticker?symbols=A,B", None))
        .collect();
    for s in &mut streams {
        next(s, "A's snapshot");
        next(s, "B's snapshot");
    }
    // Numbers and strings, over HTTP as application/x-ndjson; symbols in any case.
    let body = "{\"symbol\":\"A\",\"bid\":\"1.5\",\"size\":0.10,\"n\":3,\"time\":1765100000123}\n\
                \n\
                {\"symbol\":\"b\",\"n\":-42,\"bid\":2.25,\"size\":\"12.345678\"}\n";
    let p = publish_ok(&vias[0], body, Lines::Json);
    assert_eq!((p.applied, p.unchanged), (2, 0));
    let want = [
        event(
            p.last_id - 1,
            "{\"symbol\":\"A\",\"bid\":\"1.50\",\"size\":\"0.10\",\"n\":3,\"time\":1765100000123}",
        ),
        event(
            p.last_id,
            "{\"symbol\":\"B\",\"bid\":\"2.25\",\"size\":\"12.345678\",\"n\":-42}",
        ),
    ];
    for s in &mut streams {
        expect(s, &want, "JSON lines, in schema order");
    }
    // As JSON: decimals are strings, int and time numbers.
    let v: Value = serde_json::from_str(&want[0].1).unwrap();
    assert!(v["bid"].is_string() && v["size"].is_string(), "{v}");
    assert!(v["n"].is_i64() && v["time"].is_i64(), "{v}");

    // A qty keeps the decimals it was published with: 0.1 then 0.10 is a change, 0.10
    // again is not. Over SCGI, JSON as CONTENT_TYPE application/json with a parameter.
    let r = publish_via(
        &vias[1],
        "{\"symbol\":\"A\",\"size\":\"0.1\"}",
        Some("application/json; charset=utf-8"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let p = parse_published(&r.body);
    assert_eq!((p.applied, p.unchanged), (1, 0));
    for s in &mut streams {
        expect(
            s,
            &[event(p.last_id, "{\"symbol\":\"A\",\"size\":\"0.1\"}")],
            "0.1",
        );
    }
    let p = publish_ok(&vias[1], "A size=0.10", Lines::Text);
    assert_eq!(
        (p.applied, p.unchanged),
        (1, 0),
        "0.10 after 0.1 is a change"
    );
    for s in &mut streams {
        expect(
            s,
            &[event(p.last_id, "{\"symbol\":\"A\",\"size\":\"0.10\"}")],
            "0.10",
        );
    }
    let p2 = publish_ok(
        &vias[0],
        "{\"symbol\":\"A\",\"size\":0.10,\"n\":3}",
        Lines::Json,
    );
    assert_eq!(
        p2,
        Published {
            last_id: p.last_id,
            applied: 0,
            unchanged: 1
        }
    );
    // A time is whole ms; an int takes 64 bits.
    let p = publish_ok(&vias[0], "B time=0 n=-9223372036854775808", Lines::Text);
    for s in &mut streams {
        expect(
            s,
            &[event(
                p.last_id,
                "{\"symbol\":\"B\",\"n\":-9223372036854775808,\"time\":0}",
            )],
            "extremes",
        );
        assert_quiet(s, Duration::from_millis(200), "nothing else");
    }
    let listing = symbols_text(t.http());
    assert_eq!(
        listing,
        format!(
            "[{{\"symbol\":\"A\",\"decimals\":2,\"id\":{},\"bid\":\"1.50\",\"size\":\"0.10\",\"n\":3,\"time\":1765100000123}},\
             {{\"symbol\":\"B\",\"decimals\":2,\"id\":{},\"bid\":\"2.25\",\"size\":\"12.345678\",\"n\":-9223372036854775808,\"time\":0}}]\n",
            p.last_id - 1,
            p.last_id
        )
    );
}

#[test]
fn a_batch_with_one_bad_line_applies_nothing_and_streams_see_nothing() {
    let t = start(&[
        "--fields",
        "bid:price,ask:price,size:qty,n:int",
        "--symbols",
        "A=1.00,B=2.00",
    ]);
    let vias = both(&t);
    let mut streams: Vec<_> = vias
        .iter()
        .map(|v| open(v, "/ticker?symbols=A,B", None))
        .collect();
    for s in &mut streams {
        next(s, "A's snapshot");
        next(s, "B's snapshot");
    }
    let (id, listing) = (newest(&t), symbols_text(t.http()));
    let cases: [(&str, Lines, &str, &str); 14] = [
        (
            "A bid=1.5\nB nope=2",
            Lines::Text,
            "line 2: \"B nope=2\": ",
            "unknown field nope",
        ),
        (
            "A bid=1.5 bid=2",
            Lines::Text,
            "line 1: ",
            "duplicate field bid",
        ),
        (
            "A bid=1.5&B n=1.5",
            Lines::Text,
            "line 2: \"B n=1.5\": ",
            "n: \"1.5\" is not a 64-bit integer",
        ),
        (
            "A ask=3\nB size=-1",
            Lines::Text,
            "line 2: ",
            "size: -1 is negative",
        ),
        (
            "A bid=x",
            Lines::Text,
            "line 1: ",
            "bid: \"x\" is not a price",
        ),
        (
            "A=1.5\nNOPE=2",
            Lines::Text,
            "line 2: ",
            "unknown symbol NOPE",
        ),
        // (One line without `=` would be a bare price of the default symbol.)
        (
            "B ask=1\nA bid",
            Lines::Text,
            "line 2: \"A bid\": ",
            "\"bid\": expected field=value",
        ),
        (
            "{\"symbol\":\"A\",\"bid\":\"1.5\"}\n{\"symbol\":\"B\",\"bid\":null}",
            Lines::Json,
            "line 2: ",
            "bid: expected a JSON string or number for type price, not null",
        ),
        (
            "{\"symbol\":\"A\",\"bid\":\"1.5\",\"bid\":\"2\"}",
            Lines::Json,
            "line 1: ",
            "duplicate field bid",
        ),
        (
            "{\"symbol\":\"A\",\"bid\":1.5}\n\n{\"symbol\":\"B\",\"nope\":1}",
            Lines::Json,
            "line 3: ",
            "unknown field nope",
        ),
        (
            "{\"symbol\":\"A\",\"n\":\"x\"}",
            Lines::Json,
            "line 1: ",
            "n: \"x\" is not a 64-bit integer",
        ),
        (
            "{\"symbol\":\"A\",\"size\":true}",
            Lines::Json,
            "line 1: ",
            "not a boolean",
        ),
        (
            "{\"symbol\":\"A\"}",
            Lines::Json,
            "line 1: ",
            "the update names no field",
        ),
        (
            "{\"symbol\":\"A\",\"bid\":\"1\"}\n[1]",
            Lines::Json,
            "line 2: ",
            "not a JSON object",
        ),
    ];
    for (i, (body, format, place, says)) in cases.iter().enumerate() {
        // Half over HTTP, half over SCGI.
        let via = &vias[i % 2];
        publish_refused(via, body, *format, place, says);
        assert_unchanged(&t, id, &listing, body);
    }
    assert!(
        wait_until(Duration::from_secs(2), || t
            .log()
            .contains("publish refused: line 2: \"B nope=2\"")),
        "{}",
        t.log()
    );
    for s in &mut streams {
        assert_quiet(s, Duration::from_millis(300), "after refused batches");
    }
    // The streams go on with the next good batch.
    let p = publish_ok(&vias[1], "B ask=2.01 n=7", Lines::Text);
    for s in &mut streams {
        expect(
            s,
            &[event(
                p.last_id,
                "{\"symbol\":\"B\",\"ask\":\"2.01\",\"n\":7}",
            )],
            "the next good one",
        );
    }
    let m = t.metrics();
    assert_eq!(m["tickerd_updates_total"], 1.0, "{m:?}");
}
