//! What each client receives and in how many writes: snapshots, fan-out order, publishes
//! applied whole, stalled readers and the interest the poller is told, reused keys,
//! refusals.

use super::*;
use crate::schema::Schema;

#[test]
fn a_stream_starts_with_its_head_and_snapshot_in_one_write() {
    let mut h = Harness::new(&config(&["A", "B", "C"]));
    let c = h.stream(Some("C,A"), None);
    let text = c.text();
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"),
        "{text}"
    );
    assert!(text.contains("retry: 3000\n\n"));
    let events = c.events();
    assert_eq!(events.len(), 2);
    assert!(events[0].0 < events[1].0, "ascending ids: {events:?}");
    assert!(events[0].1.contains("\"A\"") && events[1].1.contains("\"C\""));
    assert_eq!(c.writes(), 1, "head and snapshot in one writev");
    assert!(!h.writable(&c), "all written: no WRITABLE interest");
}

#[test]
fn a_fan_out_writes_each_client_once_with_its_symbols_in_ascending_id_order() {
    let mut h = Harness::new(&config(&["A", "B", "C"]));
    let ac = h.stream(Some("A,C"), None);
    let b = h.stream(Some("B"), None);
    let start = h.last_id();
    let (ac_writes, b_writes) = (ac.writes(), b.writes());
    // Two publishes in one wake-up: one fan-out after both.
    let answer = h.publish("A=1\nB=2\nC=3");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.ends_with(&format!("\r\n\r\n{}\napplied 3\nunchanged 0\n", start + 3)),
        "the last id, then the counts: {answer}"
    );
    h.publish("A=4");
    assert_eq!(ac.writes(), ac_writes, "nothing before the fan-out");
    h.turn();
    assert_eq!(ac.writes(), ac_writes + 1, "one write for both publishes");
    assert_eq!(b.writes(), b_writes + 1);
    let new: Vec<(u64, String)> = ac
        .events()
        .into_iter()
        .filter(|(id, _)| *id > start)
        .collect();
    assert_eq!(
        ids(&new),
        [start + 3, start + 4],
        "C then A: ascending ids, A once"
    );
    assert_eq!(price_of(&new[0].1), "3.00");
    assert_eq!(price_of(&new[1].1), "4.00", "A's latest");
    let new_b: Vec<_> = b
        .events()
        .into_iter()
        .filter(|(id, _)| *id > start)
        .collect();
    assert_eq!(ids(&new_b), [start + 2]);
    // A turn with nothing new writes nothing.
    h.turn();
    assert_eq!(ac.writes(), ac_writes + 1);
}

#[test]
fn the_default_stream_is_plain_prices() {
    let mut h = Harness::new(&config(&["A", "B"]));
    let c = h.stream(None, None);
    h.publish("B=7");
    h.publish("12.5");
    h.turn();
    let events = c.events();
    assert_eq!(
        events.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>(),
        ["100.00", "12.50"],
        "the default symbol only, plain"
    );
}

#[test]
fn a_publish_is_applied_whole_or_not_at_all() {
    let mut h = Harness::new(&config(&["A", "B"]));
    let c = h.stream(Some("A,B"), None);
    let before = (h.last_id(), c.writes());
    let answer = h.publish("A=1\nB=2\nNOPE=3");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("line 3"), "names the line: {answer}");
    h.turn();
    assert_eq!(
        (h.last_id(), c.writes()),
        before,
        "nothing applied, nobody woken"
    );
    assert_eq!(h.core.counters.publish_refused, 1);
    let answer = h.publish("A=1\nB=2\nA=1");
    assert!(
        answer.ends_with(&format!(
            "\r\n\r\n{}\napplied 2\nunchanged 1\n",
            before.0 + 2
        )),
        "{answer}"
    );
    h.turn();
    assert_eq!(c.events().len(), 4, "the snapshot, then both");
    let answer = h.publish("B=2");
    assert!(
        answer.ends_with(&format!(
            "\r\n\r\n{}\napplied 0\nunchanged 1\n",
            before.0 + 2
        )),
        "a publish that changes nothing takes no id: {answer}"
    );
    h.turn();
    assert_eq!(c.events().len(), 4, "and is sent to no one");
}

#[test]
fn a_stalled_reader_is_written_nothing_then_the_latest_of_each_symbol_once_it_drains() {
    let mut h = Harness::new(&config(&["A", "B", "C"]));
    let c = h.stream(Some("A,B"), None);
    let other = h.stream(Some("A"), None);
    c.pipe().blocked = true;
    h.publish("A=1");
    h.turn();
    assert!(h.writable(&c), "output waits: WRITABLE interest");
    let writes = c.writes();
    for i in 2..50 {
        h.publish(&format!("A={i}\nB={i}\nC={i}"));
        h.turn();
    }
    assert_eq!(c.writes(), writes, "nothing more while it is stalled");
    assert_eq!(other.events().len(), 1 + 49, "others keep their stream");
    // It drains: what was in flight, then exactly one write with the latest of each.
    c.pipe().blocked = false;
    h.ready(&c, Readiness::default());
    assert_eq!(c.writes(), writes + 2);
    let events = c.events();
    let tail: Vec<&str> = events[events.len() - 2..]
        .iter()
        .map(|(_, d)| price_of(d))
        .collect();
    assert_eq!(tail, ["49.00", "49.00"]);
    assert!(
        events.windows(2).all(|w| w[0].0 < w[1].0),
        "ascending: {events:?}"
    );
    assert!(!h.writable(&c), "back to READABLE only");
}

#[test]
fn a_reused_slab_key_gets_nothing_of_the_old_subscription() {
    let mut h = Harness::new(&config(&["A", "B"]));
    let old = h.stream(Some("A"), None);
    h.ready(
        &old,
        Readiness {
            input: true,
            gone: true,
        },
    );
    assert!(h.core.clients.get(old.key).is_none(), "closed");
    let new = h.stream(Some("B"), None);
    assert_eq!(new.key, old.key, "the slab reuses the key");
    let writes = new.writes();
    h.publish("A=3");
    h.turn();
    assert_eq!(new.writes(), writes, "A's update is not the new client's");
    assert_eq!(h.core.feed.subscriptions(), 1);
    // A late event for a key that is free is ignored.
    h.core.on_socket(
        12345,
        Readiness {
            input: true,
            gone: true,
        },
        h.now,
    );
}

#[test]
fn a_full_server_answers_503_and_closes() {
    let mut h = Harness::with_max_clients(&config(&["A"]), 1);
    let first = h.stream(Some("A"), None);
    let second = h.stream(Some("A"), None);
    assert_eq!(first.events().len(), 1);
    let text = second.text();
    assert!(
        text.starts_with("HTTP/1.1 503 ") && text.contains("Retry-After: 5\r\n"),
        "{text}"
    );
    assert!(second.pipe().shut);
    assert_eq!(h.core.counters.refused_full, 1);
}

#[test]
fn requests_the_parsers_refuse_are_answered_in_the_protocol_s_dialect() {
    let config = Config {
        max_publish_bytes: 64,
        ..config(&["A"])
    };
    let mut h = Harness::new(&config);
    let big = crate::scgi::encode(&[], &[b'x'; 100]);
    let c = h.connect_over(Protocol::Scgi, &big);
    assert!(c.text().starts_with("Status: 413 "), "{}", c.text());
    let c = h.connect("\x01\x02 nonsense\r\n\r\n");
    assert!(c.text().starts_with("HTTP/1.1 400 "), "{}", c.text());
    let c = h.connect(&"a".repeat(9000));
    assert!(c.text().starts_with("HTTP/1.1 4"), "{}", c.text());
    // A netstring that is not one: closed without an answer.
    let c = h.connect_over(Protocol::Scgi, b"5:abcde,");
    assert_eq!(c.text(), "");
    assert!(h.core.clients.get(c.key).is_none());
}

#[test]
fn a_resumed_stream_gets_exactly_what_changed_after_its_id() {
    let mut h = Harness::new(&config(&["A", "B", "C"]));
    h.publish("A=1\nB=2");
    let mark = h.last_id();
    h.publish("C=3\nA=4");
    let c = h.stream(Some("A,B,C"), Some(mark));
    assert_eq!(ids(&c.events()), [mark + 1, mark + 2], "C and A, not B");
    let up_to_date = h.stream(Some("B"), Some(h.last_id()));
    assert!(up_to_date.events().is_empty(), "waits for B's next update");
    let future = h.stream(Some("B"), Some(h.last_id() + 1000));
    assert_eq!(
        future.events().len(),
        1,
        "an id from elsewhere: the snapshot"
    );
}

#[test]
fn a_stream_gets_the_fields_it_asked_for_as_deltas_and_an_unknown_field_is_refused() {
    let config = Config {
        schema: Schema::parse("bid:price,ask:price,n:int").unwrap(),
        ..config(&["A", "B"])
    };
    let mut h = Harness::new(&config);
    let bad = h.connect("GET /ticker?symbols=A&fields=bid,nope,zz HTTP/1.1\r\n\r\n");
    let text = bad.text();
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert!(
        text.contains("fields: unknown: nope, zz (the fields are bid, ask, n)"),
        "{text}"
    );
    let all = h.stream(Some("A"), None);
    let asks = h.connect("GET /ticker?symbols=A,B&fields=ask HTTP/1.1\r\n\r\n");
    assert_eq!(all.events().len(), 1, "A's snapshot: its bid");
    assert!(asks.events().is_empty(), "no ask has a value yet");
    // Two updates in one turn: one event each symbol, the fields that changed.
    let answer = h.publish("A=1\nA=2");
    assert!(answer.contains("applied 2"), "{answer}");
    h.turn();
    let events = all.events();
    assert_eq!(events.last().unwrap().1, r#"{"symbol":"A","bid":"2.00"}"#);
    assert!(
        asks.events().is_empty(),
        "a change of a field it does not see"
    );
    // Field lines: an update sets only the fields it names.
    let answer = h.publish("A ask=2.01 n=7\nB bid=1 ask=1.5\nA n=7");
    assert!(answer.contains("applied 2\nunchanged 1"), "{answer}");
    h.turn();
    let events = all.events();
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].1, r#"{"symbol":"A","ask":"2.01","n":7}"#);
    let asks = asks.events();
    let data: Vec<&str> = asks.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(
        data,
        [
            r#"{"symbol":"A","ask":"2.01"}"#,
            r#"{"symbol":"B","ask":"1.50"}"#
        ]
    );
    // JSON lines, values as strings or numbers, their text taken exactly.
    let body = "{\"symbol\":\"A\",\"bid\":2.5,\"n\":\"-3\"}";
    let c = h.connect(&format!(
        "POST /publish HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert!(c.text().contains("applied 1"), "{}", c.text());
    h.turn();
    assert_eq!(
        all.events().last().unwrap().1,
        r#"{"symbol":"A","bid":"2.50","n":-3}"#
    );
}
