//! What streams and listings carry, over HTTP and SCGI: a record's snapshot whole and then
//! only what changed, updates that change nothing, `fields=` streams, refusals of unknown
//! fields and bad `max_hz`, and what `/fields` and `/symbols` say.

use super::*;
use crate::support::clients::Via;

/// EURUSD (5 decimals) and AAPL (2) with a record of bid, ask and size; only bid (the
/// headline) has a value at start.
const QUOTES: [&str; 4] = [
    "--fields",
    "bid:price,ask:price,size:qty",
    "--symbols",
    "EURUSD=1.08345,AAPL=189.20",
];

#[test]
fn a_snapshot_carries_the_whole_record_then_events_carry_only_what_changed() {
    let t = start(&QUOTES);
    let vias = both(&t);
    let all = "/ticker?symbols=EURUSD,AAPL";
    let mut full: Vec<_> = vias.iter().map(|v| open(v, all, None)).collect();
    let mut bid_only = open(&vias[0], "/ticker?symbols=EURUSD,AAPL&fields=bid", None);
    let mut ask_only = open(&vias[1], "/ticker?symbols=EURUSD&fields=ask,size", None);
    let start_id = newest(&t) - 1;
    let snapshot = [
        event(start_id, "{\"symbol\":\"EURUSD\",\"bid\":\"1.08345\"}"),
        event(start_id + 1, "{\"symbol\":\"AAPL\",\"bid\":\"189.20\"}"),
    ];
    for s in full.iter_mut().chain([&mut bid_only]) {
        expect(s, &snapshot, "the fields with a value");
    }
    assert_quiet(
        &mut ask_only,
        Duration::from_millis(200),
        "ask and size have no value yet",
    );

    // The whole record, published over HTTP: every stream gets the fields it carries.
    let p = publish_ok(
        &vias[0],
        "EURUSD bid=1.0835 ask=1.08360 size=1000000",
        Lines::Text,
    );
    assert_eq!((p.applied, p.unchanged), (1, 0));
    let whole =
        "{\"symbol\":\"EURUSD\",\"bid\":\"1.08350\",\"ask\":\"1.08360\",\"size\":\"1000000\"}";
    for s in &mut full {
        expect(s, &[event(p.last_id, whole)], "the three fields");
    }
    expect(
        &mut bid_only,
        &[event(
            p.last_id,
            "{\"symbol\":\"EURUSD\",\"bid\":\"1.08350\"}",
        )],
        "bid",
    );
    expect(
        &mut ask_only,
        &[event(
            p.last_id,
            "{\"symbol\":\"EURUSD\",\"ask\":\"1.08360\",\"size\":\"1000000\"}",
        )],
        "ask and size",
    );
    // A new stream's snapshot carries the whole record.
    let mut late = open(&vias[1], "/ticker?symbols=EURUSD", None);
    expect(&mut late, &[event(p.last_id, whole)], "a later snapshot");

    // One field, over SCGI: events carry it alone; a stream without it gets nothing.
    let p = publish_ok(&vias[1], "EURUSD ask=1.08370", Lines::Text);
    let ask = "{\"symbol\":\"EURUSD\",\"ask\":\"1.08370\"}";
    for s in full.iter_mut().chain([&mut late, &mut ask_only]) {
        expect(s, &[event(p.last_id, ask)], "ask alone");
    }
    assert_quiet(
        &mut bid_only,
        Duration::from_millis(300),
        "an ask-only update to a bid stream",
    );

    // An update that changes nothing takes no id and sends nothing, over either listener.
    for via in &vias {
        let id = newest(&t);
        let r = publish_via(via, "EURUSD bid=1.08350 ask=1.0837", None);
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, &*format!("{id}\napplied 0\nunchanged 1\n"))
        );
        assert_eq!(newest(&t), id);
    }
    for s in full
        .iter_mut()
        .chain([&mut bid_only, &mut ask_only, &mut late])
    {
        assert_quiet(
            s,
            Duration::from_millis(300),
            "an update that changed nothing",
        );
    }
    // A field set to its value is not sent with the one that changed.
    let p = publish_ok(
        &vias[0],
        "EURUSD bid=1.08351 size=1000000\nAAPL=190",
        Lines::Text,
    );
    assert_eq!((p.applied, p.unchanged), (2, 0));
    let bid = event(p.last_id - 1, "{\"symbol\":\"EURUSD\",\"bid\":\"1.08351\"}");
    let aapl = event(p.last_id, "{\"symbol\":\"AAPL\",\"bid\":\"190.00\"}");
    for s in full.iter_mut().chain([&mut bid_only]) {
        expect(
            s,
            &[bid.clone(), aapl.clone()],
            "bid alone, then AAPL's headline",
        );
    }
    expect(&mut late, &[bid], "its one symbol");
    assert_quiet(
        &mut ask_only,
        Duration::from_millis(300),
        "size was set to what it held",
    );
    let m = t.metrics();
    assert_eq!(m["tickerd_updates_total"], 4.0, "{m:?}");
}

#[test]
fn fields_and_symbols_describe_the_schema_and_each_record() {
    let dir = TempDir::new("records-file");
    let file = dir.join("symbols");
    std::fs::write(
        &file,
        "# a universe of quotes\n\
         EURUSD 1.08345 ask=1.08347 size=0.10 volume=0\n\
         USDJPY decimals=3 last=151.2 time=1765100000123\n\
         \n\
         X 5 decimals=0\n\
         BTC-USD\n",
    )
    .unwrap();
    let t = start(&[
        "--fields",
        "last:price,bid:price,ask:price,size:qty,volume:qty,time:time",
        "--symbols-file",
        file.to_str().unwrap(),
        "--decimals",
        "4",
        "--initial-price",
        "7",
    ]);
    for via in both(&t) {
        let r = get_via(&via, "/fields", &[]);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.header("Content-Type").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            r.body,
            "{\"headline\":\"last\",\"fields\":[{\"name\":\"last\",\"type\":\"price\"},\
             {\"name\":\"bid\",\"type\":\"price\"},{\"name\":\"ask\",\"type\":\"price\"},\
             {\"name\":\"size\",\"type\":\"qty\"},{\"name\":\"volume\",\"type\":\"qty\"},\
             {\"name\":\"time\",\"type\":\"time\"}]}\n"
        );
    }
    let first = newest(&t) - 3;
    let listing = |ids: [u64; 4], eurusd: &str| {
        format!(
            "[{{\"symbol\":\"EURUSD\",\"decimals\":5,\"id\":{},{eurusd}}},\
             {{\"symbol\":\"USDJPY\",\"decimals\":3,\"id\":{},\"last\":\"151.200\",\"time\":1765100000123}},\
             {{\"symbol\":\"X\",\"decimals\":0,\"id\":{},\"last\":\"5\"}},\
             {{\"symbol\":\"BTC-USD\",\"decimals\":4,\"id\":{},\"last\":\"7.0000\"}}]\n",
            ids[0], ids[1], ids[2], ids[3]
        )
    };
    let eurusd = "\"last\":\"1.08345\",\"ask\":\"1.08347\",\"size\":\"0.10\",\"volume\":\"0\"";
    let ids = [first, first + 1, first + 2, first + 3];
    assert_eq!(symbols_text(t.http()), listing(ids, eurusd));
    let r = get_via(&Via::Scgi(t.scgi()), "/symbols?prefix=u&limit=5", &[]);
    assert_eq!(
        r.body,
        format!(
            "[{{\"symbol\":\"USDJPY\",\"decimals\":3,\"id\":{},\"last\":\"151.200\",\"time\":1765100000123}}]\n",
            first + 1
        )
    );
    // A publish shows in the listing: the symbol's id is its newest change; fields keep
    // their places in the schema's order whatever order they were published in.
    let p = publish_ok(
        &Via::Http(t.http()),
        "EURUSD volume=12.5 bid=1.0834",
        Lines::Text,
    );
    let eurusd = "\"last\":\"1.08345\",\"bid\":\"1.08340\",\"ask\":\"1.08347\",\"size\":\"0.10\",\"volume\":\"12.5\"";
    assert_eq!(
        symbols_text(t.http()),
        listing([p.last_id, first + 1, first + 2, first + 3], eurusd)
    );
}

#[test]
fn unknown_fields_and_bad_max_hz_are_refused_naming_them() {
    let t = start(&QUOTES);
    for via in both(&t) {
        for (query, says) in [
            (
                "symbols=EURUSD&fields=nope",
                "fields: unknown: nope (the fields are bid, ask, size)",
            ),
            (
                "symbols=EURUSD&fields=bid,zz,ask,yy",
                "fields: unknown: zz, yy (the fields are bid, ask, size)",
            ),
            ("symbols=EURUSD&fields=", "fields: the list is empty"),
            (
                "symbols=EURUSD&fields=b%20d",
                "fields: \"b d\" is not a field name",
            ),
            ("fields=bid", "fields: needs symbols"),
            (
                "symbols=EURUSD&max_hz=",
                "max_hz: \"\" is not a number above 0 and at most 1000",
            ),
            (
                "symbols=EURUSD&max_hz=0",
                "max_hz: \"0\" is not a number above 0",
            ),
            ("symbols=EURUSD&max_hz=-2", "max_hz: \"-2\" is not"),
            ("symbols=EURUSD&max_hz=1001", "max_hz: \"1001\" is not"),
            ("symbols=EURUSD&max_hz=x", "max_hz: \"x\" is not"),
            ("symbols=EURUSD&max_hz=0.0", "max_hz: \"0.0\" is not"),
        ] {
            for long_poll in [false, true] {
                let headers: &[(&str, &str)] = match long_poll {
                    true => &[("X-Event-Source-Simulate", "Long-Polling")],
                    false => &[("Accept", "text/event-stream")],
                };
                let r = get_via(&via, &format!("/ticker?{query}"), headers);
                assert_eq!(r.status, 400, "{query} over {}: {r:?}", via.name());
                assert_eq!(r.body.lines().count(), 1, "{r:?}");
                assert!(r.body.starts_with(says), "{query}: {:?}", r.body);
                assert!(!r.head.contains("event-stream"), "{}", r.head);
            }
        }
        // The edges are taken: each such stream starts with EURUSD's snapshot (bid alone
        // has a value).
        let first = newest(&t) - 1;
        for query in [
            "max_hz=1000",
            "max_hz=0.5",
            "max_hz=%202.5",
            "fields=ask,,bid,ask",
        ] {
            let mut s = open(&via, &format!("/ticker?symbols=EURUSD&{query}"), None);
            let e = next(&mut s, query);
            assert_eq!(
                (e.id(), e.data.as_str()),
                (first, "{\"symbol\":\"EURUSD\",\"bid\":\"1.08345\"}"),
                "{query}"
            );
        }
    }
}
