//! Many symbols, with the real binary over real sockets: streams of chosen symbols over HTTP
//! and SCGI, the one id sequence that resumes them all (also cut at every byte), publish
//! batches, refusals that harm nobody, stalled readers, clients that vanish, and a universe
//! of 100,000 symbols.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

const FIVE: &str = "AAPL=189.20,MSFT=415.30,BRK.B=412.80,BF-B=55,NVDA=121.70";

fn start(extra: &[&str]) -> Tickerd {
    let mut args = vec!["--tick-ms", "0", "--heartbeat-s", "0", "--symbols", FIVE];
    args.extend_from_slice(extra);
    Tickerd::start(&args)
}

/// One event of a many-symbol stream.
#[derive(Debug, Clone, PartialEq)]
struct Update {
    id: u64,
    symbol: String,
    price: String,
}

fn update(e: &SseEvent) -> Update {
    let v: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_else(|_| panic!("{e:?}"));
    Update {
        id: e.id(),
        symbol: v["symbol"].as_str().unwrap().to_string(),
        price: v["price"].as_str().unwrap().to_string(),
    }
}

fn next_updates<S: Read>(s: &mut SseReader<S>, n: usize) -> Vec<Update> {
    (0..n)
        .map(|i| update(&s.next_event().unwrap_or_else(|| panic!("event {i} of {n}"))))
        .collect()
}

fn stream(t: &Tickerd, query: &str, last_id: Option<u64>) -> SseReader<TcpStream> {
    let id = last_id.map(|i| i.to_string());
    let headers: Vec<(&str, &str)> = id.iter().map(|v| ("Last-Event-ID", v.as_str())).collect();
    let mut s = http_stream(t.http(), &format!("/ticker?{query}"), &headers);
    assert_eq!(s.status, 200, "{}", s.head);
    set_timeout(s.socket(), Duration::from_secs(5));
    s
}

fn published_id(answer: (u16, String)) -> u64 {
    assert_eq!(answer.0, 200, "{}", answer.1);
    answer.1.lines().next().unwrap().parse().unwrap()
}

fn symbols_of(updates: &[Update]) -> Vec<&str> {
    updates.iter().map(|u| u.symbol.as_str()).collect()
}

fn assert_ascending(updates: &[Update]) {
    for pair in updates.windows(2) {
        assert!(pair[0].id < pair[1].id, "{updates:?}");
    }
}

#[test]
fn a_stream_carries_its_symbols_only_over_http_and_scgi() {
    let t = start(&[]);
    // The snapshot ids: the universe took consecutive ids in its order at start.
    let first = t.current_id() - 4;
    let mut snapshot_wanted = vec![
        (first + 1, "MSFT".to_string(), "415.30".to_string()),
        (first + 3, "BF-B".to_string(), "55.00".to_string()),
    ];
    let mut open = Vec::new();
    for over_scgi in [false, true] {
        let mut s = if over_scgi {
            let req = scgi_get("/ticker", &[("QUERY_STRING", "symbols=bf-b%2Cmsft,MSFT")]);
            let mut s = scgi_stream(t.scgi(), &req);
            assert!(s.head.starts_with("Status: 200"), "{}", s.head);
            set_timeout(s.socket(), Duration::from_secs(5));
            s
        } else {
            stream(&t, "symbols=bf-b%2Cmsft,MSFT", None)
        };
        let snapshot: Vec<(u64, String, String)> = next_updates(&mut s, 2)
            .into_iter()
            .map(|u| (u.id, u.symbol, u.price))
            .collect();
        assert_eq!(
            snapshot, snapshot_wanted,
            "each symbol's last update, ascending ids"
        );
        // A batch of four: the stream gets its two, with their ids, in order. (Other
        // values each pass: a publish that changes nothing is sent to no one.)
        let n = if over_scgi { 10 } else { 0 };
        let batch = format!(
            "AAPL={}\nBF-B={}.5&MSFT={}\nNVDA={}",
            n + 1,
            n + 2,
            n + 3,
            n + 4
        );
        let last = published_id(t.publish(&batch));
        let got = next_updates(&mut s, 2);
        assert_eq!(
            got,
            [
                Update {
                    id: last - 2,
                    symbol: "BF-B".into(),
                    price: format!("{}.50", n + 2)
                },
                Update {
                    id: last - 1,
                    symbol: "MSFT".into(),
                    price: format!("{}.00", n + 3)
                },
            ]
        );
        snapshot_wanted = got.into_iter().map(|u| (u.id, u.symbol, u.price)).collect();
        // Nothing for the others.
        set_timeout(s.socket(), Duration::from_millis(300));
        assert_eq!(s.next_event(), None);
        open.push(s);
    }
    let m = t.metrics();
    assert_eq!(m["tickerd_symbols"], 5.0);
    assert_eq!(m["tickerd_updates_total"], 8.0);
    assert_eq!(m["tickerd_subscriptions"], 4.0, "two streams of two");
}

#[test]
fn the_default_stream_is_the_first_symbol_in_the_old_format() {
    let t = start(&[]);
    let mut s = http_stream(t.http(), "/ticker", &[]);
    set_timeout(s.socket(), Duration::from_secs(5));
    let e = s.next_event().unwrap();
    assert_eq!(e.data, "189.20");
    let id = published_id(t.publish("MSFT=1\nAAPL=2"));
    let e = s.next_event().unwrap();
    assert_eq!((e.id(), e.data.as_str()), (id, "2.00"));
    // A bare price is the default symbol's too.
    let id = published_id(t.publish("3.25"));
    let e = s.next_event().unwrap();
    assert_eq!((e.id(), e.data.as_str()), (id, "3.25"));
    assert_eq!(t.metrics()["tickerd_price"], 3.25);
}

#[test]
fn last_event_id_resumes_every_chosen_symbol() {
    let t = start(&[]);
    let mut s = stream(&t, "symbols=AAPL,NVDA,BRK.B", None);
    let snapshot = next_updates(&mut s, 3);
    drop(s);
    // Four batches: the browser "was away" for the last three.
    let a = published_id(t.publish("NVDA=10&AAPL=11"));
    let b = published_id(t.publish("MSFT=12"));
    let c = published_id(t.publish("BRK.B=13&NVDA=14"));
    let d = published_id(t.publish("NVDA=15"));
    assert_eq!((b, c, d), (a + 1, a + 3, a + 4));
    // After a: BRK.B (c - 1) and NVDA (d), latest value each, ascending.
    let mut s = stream(&t, "symbols=AAPL,NVDA,BRK.B", Some(a));
    let got = next_updates(&mut s, 2);
    assert_eq!(
        got.iter()
            .map(|u| (u.id, u.symbol.as_str(), u.price.as_str()))
            .collect::<Vec<_>>(),
        [(c - 1, "BRK.B", "13.00"), (d, "NVDA", "15.00")]
    );
    // At the newest id: nothing, until one of them changes.
    let mut s = stream(&t, "symbols=AAPL,NVDA,BRK.B", Some(d));
    set_timeout(s.socket(), Duration::from_millis(300));
    assert_eq!(s.next_event(), None, "parked");
    published_id(t.publish("MSFT=1"));
    assert_eq!(s.next_event(), None, "not one of its symbols");
    set_timeout(s.socket(), Duration::from_secs(5));
    let e = published_id(t.publish("AAPL=2"));
    assert_eq!(update(&s.next_event().unwrap()).id, e);
    // From the future, garbage, or empty: the whole snapshot.
    let future = (t.current_id() + 100).to_string();
    for bad in [future.as_str(), "x", ""] {
        let mut s = http_stream(
            t.http(),
            "/ticker?symbols=AAPL,NVDA,BRK.B",
            &[("Last-Event-ID", bad)],
        );
        set_timeout(s.socket(), Duration::from_secs(5));
        let got = next_updates(&mut s, 3);
        assert_ascending(&got);
        let mut names = symbols_of(&got);
        names.sort();
        assert_eq!(names, ["AAPL", "BRK.B", "NVDA"], "{bad:?}");
    }
    assert_eq!(snapshot.len(), 3);
}

/// The bytes of one multi-event write (a snapshot of five symbols), cut at every offset:
/// the browser keeps the id of the last event it dispatched, reconnects with it after one
/// more update, and ends with the latest value of every symbol.
#[test]
fn a_connection_cut_at_every_byte_resumes_to_the_latest_of_every_symbol() {
    let t = start(&[]);
    let query = "symbols=AAPL,MSFT,BRK.B,BF-B,NVDA";
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    let mut cut = 0;
    loop {
        // The first write of a fresh connection, as the browser would get it whole; the
        // connection is then cut after `cut` bytes of it.
        let whole = first_write(&t, query);
        if latest.is_empty() {
            latest = dispatched(&whole).0;
        }
        if cut > whole.len() {
            break;
        }
        let (mut seen, last_id) = dispatched(&whole[..cut]);
        // One more update while it is away, on a symbol that changes with the offset.
        let names: Vec<String> = latest.keys().cloned().collect();
        let symbol = &names[cut % names.len()];
        let price = format!("{}.{:02}", 100 + cut / 100, cut % 100);
        published_id(t.publish(&format!("{symbol}={price}")));
        latest.insert(symbol.clone(), price);
        // It reconnects with the last id it has, and is sent what it lacks at once.
        let mut again = stream(&t, query, last_id);
        let mut previous = last_id.unwrap_or(0);
        while seen != latest {
            let e = again
                .next_event()
                .unwrap_or_else(|| panic!("cut at {cut}: has {seen:?}, wants {latest:?}"));
            let u = update(&e);
            assert!(u.id > previous, "cut at {cut}: ascending ids");
            previous = u.id;
            seen.insert(u.symbol, u.price);
        }
        cut += 1;
    }
    assert!(cut > 300, "{cut} offsets");
}

/// The bytes a fresh stream of `query` gets in its first write: head and snapshot.
fn first_write(t: &Tickerd, query: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(t.http()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("GET /ticker?{query} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let events = query.split(',').count();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while raw.windows(2).filter(|w| w == b"\n\n").count() < events + 1 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        raw.extend_from_slice(&buf[..n]);
    }
    raw
}

/// What a browser keeps of the bytes it got: the events it dispatched (those ended by their
/// blank line), and the last event id (WHATWG: set when an event is dispatched).
fn dispatched(bytes: &[u8]) -> (BTreeMap<String, String>, Option<u64>) {
    let text = String::from_utf8_lossy(bytes);
    let Some((_, body)) = text.split_once("\r\n\r\n") else {
        return (BTreeMap::new(), None);
    };
    let mut seen = BTreeMap::new();
    let mut last = None;
    let mut rest = body;
    while let Some(end) = rest.find("\n\n") {
        let block = &rest[..end];
        rest = &rest[end + 2..];
        let mut id = None;
        let mut data = None;
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse::<u64>().unwrap());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(v.to_string());
            }
        }
        if let Some(id) = id {
            last = Some(id);
        }
        if let Some(data) = data {
            let u = update(&SseEvent {
                id: id.map(|i| i.to_string()),
                data,
            });
            seen.insert(u.symbol, u.price);
        }
    }
    (seen, last)
}

#[test]
fn long_polls_carry_every_due_event_with_a_length() {
    let t = start(&[]);
    let addr = t.http();
    let poll = move |last_id: Option<u64>| {
        let mut req = "GET /ticker?symbols=msft,NVDA HTTP/1.1\r\nHost: t\r\n\
             X-Event-Source-Simulate: Long-Polling\r\n"
            .to_string();
        if let Some(id) = last_id {
            req.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        req.push_str("\r\n");
        let (status, head, body) = http_request(addr, &req);
        assert_eq!(status, 200);
        assert!(
            head.contains(&format!("Content-Length: {}\r\n", body.len())),
            "{head}"
        );
        let mut r = SseReader::new(std::io::Cursor::new(format!("{head}{body}")));
        std::iter::from_fn(|| r.next_event())
            .map(|e| update(&e))
            .collect::<Vec<_>>()
    };
    let snapshot = poll(None);
    assert_eq!(symbols_of(&snapshot), ["MSFT", "NVDA"]);
    let last = snapshot[1].id;
    // Held while nothing is due, answered with what changed once something does.
    let waiting = std::thread::spawn(move || poll(Some(last)));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!waiting.is_finished(), "held");
    let id = published_id(t.publish("NVDA=7&AAPL=8&MSFT=9"));
    let got = waiting.join().unwrap();
    assert_eq!(
        got.iter()
            .map(|u| (u.id, u.symbol.as_str()))
            .collect::<Vec<_>>(),
        [(id - 2, "NVDA"), (id, "MSFT")]
    );
}

#[test]
fn bad_symbol_lists_and_batches_are_refused_and_harm_nobody() {
    let t = start(&[
        "--max-symbols-per-client",
        "3",
        "--max-publish-bytes",
        "200",
    ]);
    let mut healthy = stream(&t, "symbols=AAPL", None);
    let first = update(&healthy.next_event().unwrap());
    let get =
        |query: &str| http_request(t.http(), &format!("GET /ticker?{query} HTTP/1.1\r\n\r\n"));
    for (query, status, says) in [
        ("symbols=", 400, "symbols: the list is empty"),
        ("symbols=,,", 400, "symbols: the list is empty"),
        (
            "symbols=AAPL,A%0Bid",
            400,
            "symbols: \"A\\u{b}id\" is not a symbol",
        ),
        (
            "symbols=A,B,C,D",
            400,
            "symbols: 4 symbols asked, at most 3 per client",
        ),
        ("symbols=AAPL,ZZZ,IBM", 404, "symbols: unknown: ZZZ, IBM"),
    ] {
        let (got, head, body) = get(query);
        assert_eq!(got, status, "{query}: {body}");
        assert_eq!(body.lines().count(), 1, "one line: {body:?}");
        assert!(body.starts_with(says), "{query}: {body}");
        assert!(!head.contains("event-stream"), "{head}");
    }
    // Publish batches: the first bad line named, nothing applied.
    let before = t.current_id();
    for (body, says) in [
        (
            "AAPL=1\nNOPE=2\nMSFT=x",
            "line 2: \"NOPE=2\": unknown symbol NOPE",
        ),
        (
            "AAPL=1&MSFT=1.005",
            "line 2: \"MSFT=1.005\": price: 1.005 has more than the symbol's 2 decimals",
        ),
        ("AAPL=1\nMSFT", "line 2: \"MSFT\": expected SYM=PRICE"),
    ] {
        let (status, answer) = t.publish(body);
        assert_eq!(status, 400, "{body:?}");
        assert!(answer.starts_with(says), "{body:?}: {answer}");
    }
    let (status, _) = t.publish(&"AAPL=1\n".repeat(40));
    assert_eq!(status, 413, "over --max-publish-bytes");
    assert_eq!(t.current_id(), before, "nothing half-applied");
    // The log is read by a thread of ours: give it a moment to catch up.
    assert!(
        wait_until(Duration::from_secs(2), || t
            .log()
            .contains("publish refused: line 2")),
        "{}",
        t.log()
    );
    // The healthy stream saw none of it, and goes on.
    let id = published_id(t.publish("AAPL=9"));
    let next = update(&healthy.next_event().unwrap());
    assert_eq!((next.id, next.price.as_str()), (id, "9.00"));
    assert!(next.id > first.id);
    assert_eq!(t.metrics()["tickerd_subscriptions"], 1.0);
}

/// A reader that stops reading while its symbols move thousands of times: once its socket
/// is full, tickerd writes it nothing more and holds no more than its latest value per
/// symbol; when it reads again it gets what was in flight, then exactly the latest of each
/// symbol, once.
#[test]
fn a_stalled_reader_gets_the_latest_of_each_symbol_and_nothing_else() {
    let _heavy = heavy(); // publishes flat out
    let t = start(&[]);
    let stalled = {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        s.connect(&t.http().into()).unwrap();
        let mut s: TcpStream = s.into();
        s.write_all(b"GET /ticker?symbols=AAPL,MSFT,NVDA HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        s
    };
    let mut latest = BTreeMap::new();
    let mut round = 0u64;
    let publish_round = |round: &mut u64, latest: &mut BTreeMap<String, String>| {
        *round += 1;
        let price = format!("{}.{:02}", *round / 100, *round % 100);
        published_id(t.publish(&format!("AAPL={price}&MSFT={price}&NVDA={price}")));
        for sym in ["AAPL", "MSFT", "NVDA"] {
            latest.insert(sym.to_string(), price.clone());
        }
    };
    let writing = |t: &Tickerd| t.metrics()["tickerd_clients{state=\"writing\"}"];
    let written = |t: &Tickerd| t.metrics()["tickerd_events_written_total"] as u64;
    // Until its socket is full and tickerd's write to it waits (bounded: 100,000 rounds).
    let started = Instant::now();
    while writing(&t) < 1.0 {
        for _ in 0..100 {
            publish_round(&mut round, &mut latest);
        }
        assert!(round < 100_000, "its socket never filled");
    }
    let at_stall = written(&t);
    // A thousand more rounds (3,000 updates): nothing more is written to it meanwhile.
    for _ in 0..1000 {
        publish_round(&mut round, &mut latest);
    }
    assert_eq!(written(&t), at_stall, "a stalled client is written nothing");
    assert_eq!(writing(&t), 1.0);
    eprintln!(
        "stalled after {round} rounds ({:?}); {at_stall} events written to it",
        started.elapsed()
    );
    // It reads again: what was in flight, then the latest of each symbol in one write.
    let mut s = SseReader::new(stalled);
    set_timeout(s.socket(), Duration::from_millis(500));
    let got: Vec<Update> = std::iter::from_fn(|| s.next_event())
        .map(|e| update(&e))
        .collect();
    assert_ascending(&got);
    let total = written(&t);
    assert_eq!(total, at_stall + 3, "then one write of its three symbols");
    assert_eq!(got.len() as u64, total, "exactly what tickerd wrote to it");
    let tail: BTreeMap<String, String> = got[got.len() - 3..]
        .iter()
        .map(|u| (u.symbol.clone(), u.price.clone()))
        .collect();
    assert_eq!(tail, latest, "the last write is the latest of each, once");
}

#[test]
fn a_thousand_clients_on_random_subsets_vanish_and_leave_no_subscription() {
    let _heavy = heavy(); // 1,000 sockets
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    let names: Vec<String> = (0..50).map(|i| format!("S{i}")).collect();
    let t = Tickerd::start(&["--tick-ms", "0", "--symbols", &names.join(",")]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut clients = Vec::new();
    let mut total = 0;
    for n in 0..1000 {
        let k = rng.gen_range(1..=10);
        let chosen: Vec<&str> = names
            .choose_multiple(&mut rng, k)
            .map(String::as_str)
            .collect();
        total += k;
        let query = format!("symbols={}", chosen.join(","));
        let s = if n % 2 == 0 {
            let mut s = TcpStream::connect(t.http()).unwrap();
            s.write_all(format!("GET /ticker?{query} HTTP/1.1\r\n\r\n").as_bytes())
                .unwrap();
            s
        } else {
            let mut s = TcpStream::connect(t.scgi()).unwrap();
            s.write_all(&scgi_get("/ticker", &[("QUERY_STRING", &query)]))
                .unwrap();
            s
        };
        clients.push(s);
    }
    assert!(
        wait_until(Duration::from_secs(10), || t.metrics()
            ["tickerd_subscriptions"]
            == total as f64),
        "{total} subscriptions: {:?}",
        t.metrics()["tickerd_subscriptions"]
    );
    // Half leave with a reset, half with a clean close; an update reaches the rest.
    for (n, s) in clients.into_iter().enumerate() {
        if n % 2 == 0 {
            reset(s);
        } else {
            drop(s);
        }
    }
    published_id(t.publish("S1=2"));
    let start = Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || {
            let m = t.metrics();
            m["tickerd_subscriptions"] == 0.0 && t.clients() == 0.0
        }),
        "{:?}",
        t.metrics()
    );
    eprintln!(
        "1,000 clients on random subsets freed in {:?}",
        start.elapsed()
    );
}

#[test]
fn coalescing_limits_each_client_to_one_write_per_period() {
    let t = start(&["--coalesce-ms", "250"]);
    let mut s = stream(&t, "symbols=AAPL,MSFT", None);
    next_updates(&mut s, 2);
    let writes_before = t.metrics()["tickerd_writes_total"];
    // 40 publishes over about a second, each to both symbols.
    let start = Instant::now();
    let mut last = 0;
    for n in 1..=40u32 {
        last = published_id(t.publish(&format!("AAPL={n}&MSFT={n}.5")));
        std::thread::sleep(Duration::from_millis(25));
    }
    let took = start.elapsed();
    // The last values arrive within a period, in one write with the rest.
    let mut seen = BTreeMap::new();
    let mut events = 0;
    set_timeout(s.socket(), Duration::from_secs(2));
    while seen.get("MSFT").map(|(id, _)| *id) != Some(last) {
        let u = update(&s.next_event().expect("the last update"));
        seen.insert(u.symbol.clone(), (u.id, u.price));
        events += 1;
    }
    assert_eq!(seen["AAPL"].1, "40.00");
    // The 40 publish answers and the first scrape's answer are a write each.
    let writes = t.metrics()["tickerd_writes_total"] - writes_before - 41.0;
    let bound = (took.as_millis() / 250 + 2) as f64;
    assert!(
        writes <= bound,
        "{writes} writes to the stream in {took:?} (bound {bound})"
    );
    assert!(events < 80, "conflated: {events} events for 80 updates");
    eprintln!("coalesced: {events} events in {writes} writes over {took:?}");
}

#[test]
fn the_symbols_listing_is_json() {
    let t = start(&[]);
    let (status, head, body) = http_request(t.http(), "GET /symbols HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: application/json"), "{head}");
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[2]["symbol"], "BRK.B");
    assert_eq!(all[2]["price"], "412.80");
    assert!(all[2]["id"].as_u64().unwrap() > 0);
    let (_, _, body) = http_request(t.http(), "GET /symbols?prefix=b&limit=1 HTTP/1.1\r\n\r\n");
    let some: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(some.as_array().unwrap().len(), 1);
    assert_eq!(some[0]["symbol"], "BRK.B");
}

#[test]
fn a_universe_of_a_hundred_thousand_symbols() {
    let dir = TempDir::new("universe");
    let path = dir.join("symbols.txt");
    let mut text = String::from("# generated\n");
    for i in 0..100_000 {
        text.push_str(&format!("S{i:06} {}.{:02}\n", 1 + i % 900, i % 100));
    }
    std::fs::write(&path, text).unwrap();
    let small = Tickerd::start(&["--tick-ms", "0"]);
    let started = Instant::now();
    let t = Tickerd::start(&["--tick-ms", "0", "--symbols-file", path.to_str().unwrap()]);
    let took = started.elapsed();
    let per_symbol = (t.rss_kib().saturating_sub(small.rss_kib())) * 1024 / 100_000;
    eprintln!("100,000 symbols: listening after {took:?}; about {per_symbol} B of RSS per symbol");
    // Measured, not a benchmark: a generous bound that catches only something badly wrong.
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(t
        .log()
        .contains("universe: 100000 symbols from --symbols-file"));
    assert_eq!(t.metrics()["tickerd_symbols"], 100_000.0);
    let mut s = stream(&t, "symbols=S099999,S000000,S050000", None);
    let snapshot = next_updates(&mut s, 3);
    assert_eq!(symbols_of(&snapshot), ["S000000", "S050000", "S099999"]);
    let id = published_id(t.publish("S050000=1.23\nS077777=2"));
    assert_eq!(update(&s.next_event().unwrap()).id, id - 1);
    let (_, _, body) = http_request(t.http(), "GET /symbols?prefix=S09999 HTTP/1.1\r\n\r\n");
    let some: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(some.as_array().unwrap().len(), 10);
}

#[test]
fn a_bad_universe_exits_2_naming_the_entry() {
    let dir = TempDir::new("universe");
    let path = dir.join("bad.txt");
    std::fs::write(&path, "AAPL 1\n# c\n\nMSFT 2\naapl 3\n").unwrap();
    for (args, says) in [
        (
            vec!["--symbols", "AAPL,MS FT"],
            "--symbols: entry 2: \"MS FT\"",
        ),
        (
            vec!["--symbols-file", path.to_str().unwrap()],
            "line 5: AAPL is a duplicate (first at line 1)",
        ),
        (
            vec!["--symbols", "A", "--symbols-file", path.to_str().unwrap()],
            "not both",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tickerd"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// A closed client's connection key is the next one a new client gets: the newcomer must
/// never receive the old subscription's updates.
#[test]
fn a_new_client_on_a_reused_key_gets_nothing_of_the_old_subscription() {
    let t = start(&[]);
    for round in 0..20 {
        let mut old = stream(&t, "symbols=AAPL", None);
        next_updates(&mut old, 1);
        drop(old);
        assert!(wait_until(Duration::from_secs(5), || t.clients() == 0.0));
        // The freed key goes to the next connection: this one.
        let mut new = stream(&t, "symbols=MSFT", None);
        assert_eq!(symbols_of(&next_updates(&mut new, 1)), ["MSFT"]);
        published_id(t.publish(&format!("AAPL={round}.5")));
        let id = published_id(t.publish(&format!("MSFT={round}.25")));
        let got = update(&new.next_event().unwrap());
        assert_eq!((got.id, got.symbol.as_str()), (id, "MSFT"), "round {round}");
        assert_eq!(t.metrics()["tickerd_subscriptions"], 1.0);
    }
}
