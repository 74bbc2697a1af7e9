//! Instances sharing one feed through Redis (`--redis`), each against its own private
//! redis-server: one id sequence across instances, a browser moving between them, Redis
//! killed and restarted empty, frozen (SIGSTOP), a link cut while the feed is flooded and
//! trimmed, a stand-in that speaks broken RESP, a Last-Event-ID ahead of an instance, and
//! symbols one instance does not carry. Every check is on what the streams carry.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::redis::*;
use crate::support::*;

const SYMS: &str = "AAPL=189.20,MSFT=415.30,NVDA=121.70,BRK.B=412.80,TSLA=250";
const ALL: [&str; 5] = ["AAPL", "MSFT", "NVDA", "BRK.B", "TSLA"];

/// An instance on `redis` with the five symbols, no random walk, a heartbeat every second.
fn instance(redis: &str, extra: &[&str]) -> Tickerd {
    let mut args = vec!["--redis", redis, "--tick-ms", "0", "--heartbeat-s", "1"];
    if !extra.contains(&"--symbols") {
        args.extend(["--symbols", SYMS]);
    }
    args.extend_from_slice(extra);
    Tickerd::start(&args)
}

fn metric(t: &Tickerd, name: &str) -> f64 {
    t.metrics().get(name).copied().unwrap_or(f64::NAN)
}

fn wait_up(t: &Tickerd, within: Duration) {
    assert!(
        wait_until(within, || metric(t, "tickerd_redis_up") == 1.0),
        "not up with Redis in {within:?}: {}",
        t.log()
    );
}

fn wait_down(t: &Tickerd) {
    assert!(
        wait_until(Duration::from_secs(5), || metric(t, "tickerd_redis_up")
            == 0.0),
        "still up: {}",
        t.log()
    );
}

/// Waits until the instance has applied every update up to `id`.
fn wait_level(t: &Tickerd, id: u64) {
    assert!(
        wait_until(Duration::from_secs(10), || t.current_id() >= id),
        "never reached {id}: at {}: {}",
        t.current_id(),
        t.log()
    );
}

fn stream(t: &Tickerd, symbols: &[&str], last_id: Option<u64>) -> SseReader<TcpStream> {
    let id = last_id.map(|i| i.to_string());
    let headers: Vec<(&str, &str)> = id.iter().map(|v| ("Last-Event-ID", v.as_str())).collect();
    let path = format!("/ticker?symbols={}", symbols.join(","));
    let mut s = http_stream(t.http(), &path, &headers);
    assert_eq!(s.status, 200, "{}", s.head);
    set_timeout(s.socket(), Duration::from_secs(5));
    s
}

/// The next event before `deadline`. Reads in short slices: a heartbeat every second would
/// otherwise keep one long read from ever timing out.
fn next_before(s: &mut SseReader<TcpStream>, deadline: Instant) -> Option<Update> {
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        set_timeout(
            s.socket(),
            left.clamp(Duration::from_millis(1), Duration::from_millis(50)),
        );
        if let Some(e) = s.next_event() {
            return Some(update(&e));
        }
        assert!(!s.eof, "the stream ended");
    }
}

fn read_n(s: &mut SseReader<TcpStream>, n: usize) -> Vec<Update> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n {
        match next_before(s, deadline) {
            Some(u) => got.push(u),
            None => panic!("{} events of {n} in 10 s: {got:?}", got.len()),
        }
    }
    got
}

/// Everything that arrives within `d` (heartbeats are counted by the reader).
fn read_for(s: &mut SseReader<TcpStream>, d: Duration) -> Vec<Update> {
    let deadline = Instant::now() + d;
    std::iter::from_fn(|| next_before(s, deadline)).collect()
}

/// Reads until the events seen so far end with `latest` for every symbol it names.
fn read_until_latest(
    s: &mut SseReader<TcpStream>,
    latest: &BTreeMap<String, (u64, String)>,
    within: Duration,
) -> Vec<Update> {
    let deadline = Instant::now() + within;
    let mut got: Vec<Update> = Vec::new();
    let mut have: BTreeMap<String, (u64, String)> = BTreeMap::new();
    while latest.iter().any(|(s, v)| have.get(s) != Some(v)) {
        let u = next_before(s, deadline)
            .unwrap_or_else(|| panic!("has {have:?}, wants {latest:?}; got {got:?}"));
        have.insert(u.symbol.clone(), (u.id, u.price.clone()));
        got.push(u);
    }
    got
}

fn assert_strictly_ascending(events: &[Update]) {
    for w in events.windows(2) {
        assert!(w[0].id < w[1].id, "ids not strictly ascending: {events:?}");
    }
}

fn price(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Publishes `body` on `t`, records it, returns its last id.
fn publish(t: &Tickerd, history: &mut History, body: &str) -> u64 {
    let id = publish_to(t.http(), body).id();
    history.record(&pairs(body), id);
    id
}

/// Waits for `needle` in tickerd's log (which another thread reads from its stderr, so a
/// line may lag behind what /metrics already shows).
fn wait_log(t: &Tickerd, needle: &str) {
    assert!(
        wait_until(Duration::from_secs(5), || t.log().contains(needle)),
        "no {needle:?} in: {}",
        t.log()
    );
}

fn warnings_about_redis(t: &Tickerd) -> usize {
    t.log()
        .lines()
        .filter(|l| l.contains("streams go on with the last known prices"))
        .count()
}

fn assert_no_panic(t: &Tickerd) {
    assert!(!t.log().contains("panicked"), "{}", t.log());
    assert!(leftovers::running(t.pid()), "tickerd exited: {}", t.log());
}

#[test]
fn two_instances_share_one_id_sequence_and_every_publish_reaches_both() {
    let redis = RedisServer::start();
    let a = instance(&redis.addr(), &[]);
    let b = instance(&redis.addr(), &[]);
    wait_up(&a, Duration::from_secs(10));
    wait_up(&b, Duration::from_secs(10));
    wait_log(&a, &format!("redis {}: feed loaded (", redis.addr()));
    let mut history = History::from_symbols(a.http());
    assert_eq!(
        History::from_symbols(b.http()).by_id,
        history.by_id,
        "one feed: the same prices with the same ids"
    );
    let mut sa = stream(&a, &ALL, None);
    let mut sb = stream(&b, &ALL, None);
    let snapshot = read_n(&mut sa, 5);
    assert_eq!(read_n(&mut sb, 5), snapshot);
    assert_eq!(snapshot, history.due_after(&ALL, 0));
    let prices: Vec<&str> = snapshot.iter().map(|u| u.price.as_str()).collect();
    assert_eq!(
        prices,
        ["189.20", "415.30", "121.70", "412.80", "250.00"],
        "seeded from the instances' universe"
    );
    // Publishes alternate between the instances: each takes the next ids of the one
    // sequence, and both streams carry each update with the id its answer gave.
    let mut last = history.last_id();
    for i in 0..12u64 {
        let (t, body) = match i % 3 {
            0 => (&a, format!("AAPL={}", price(100 + i))),
            1 => (
                &b,
                format!("MSFT={}&NVDA={}", price(200 + i), price(300 + i)),
            ),
            _ => (
                &a,
                format!(
                    "TSLA={}&BRK.B={}&AAPL={}",
                    price(1 + i),
                    price(2 + i),
                    price(3 + i)
                ),
            ),
        };
        let id = publish(t, &mut history, &body);
        let k = pairs(&body).len() as u64;
        assert_eq!(id, last + k, "publish {i} ({body}) on {}", i % 3);
        let due: Vec<Update> = ((last + 1)..=id)
            .map(|id| {
                let (symbol, price) = history.by_id[&id].clone();
                Update { id, symbol, price }
            })
            .collect();
        assert_eq!(read_n(&mut sa, k as usize), due, "on A");
        assert_eq!(read_n(&mut sb, k as usize), due, "on B");
        last = id;
    }
    for t in [&a, &b] {
        assert_eq!(t.current_id(), last);
        assert_eq!(metric(t, "tickerd_redis_reconnects_total"), 0.0);
        assert_eq!(metric(t, "tickerd_redis_reloads_total"), 0.0);
    }
    let feed = feed_in_redis(&redis, "tickerd");
    assert_eq!(feed.counter, last);
    let latest: BTreeMap<String, (u64, u64)> = history
        .latest()
        .into_iter()
        .map(|(s, (id, p))| (s, ((p.parse::<f64>().unwrap() * 100.0).round() as u64, id)))
        .collect();
    assert_eq!(feed.prices, latest, "the hash holds each symbol's latest");
}

#[test]
fn a_browser_moving_to_another_instance_gets_what_the_first_would_have_sent() {
    let redis = RedisServer::start();
    let a = instance(&redis.addr(), &[]);
    let b = instance(&redis.addr(), &[]);
    wait_up(&a, Duration::from_secs(10));
    wait_up(&b, Duration::from_secs(10));
    let mut history = History::from_symbols(a.http());
    let chosen = ["AAPL", "NVDA", "TSLA"];
    let mut s = stream(&a, &chosen, None);
    assert_eq!(read_n(&mut s, 3), history.due_after(&chosen, 0));
    publish(&a, &mut history, "AAPL=1.00&MSFT=2.00");
    publish(&b, &mut history, "TSLA=3.00");
    let seen = read_n(&mut s, 2);
    let g = seen[1].id;
    let wanted: Vec<(&str, &str)> = seen
        .iter()
        .map(|u| (u.symbol.as_str(), u.price.as_str()))
        .collect();
    assert_eq!(wanted, [("AAPL", "1.00"), ("TSLA", "3.00")]);
    assert!(seen.iter().all(|u| history.knows(u)), "{seen:?}");
    drop(s); // the browser leaves A
             // While it is away: updates on both instances, some of its symbols twice.
    publish(&a, &mut history, "NVDA=4.00");
    publish(&b, &mut history, "MSFT=5.00");
    publish(&a, &mut history, "AAPL=6.00&NVDA=7.00");
    let last = publish(&b, &mut history, "BRK.B=8.00");
    wait_level(&a, last);
    wait_level(&b, last);
    let due = history.due_after(&chosen, g);
    assert_eq!(
        due.iter()
            .map(|u| (u.symbol.as_str(), u.price.as_str()))
            .collect::<Vec<_>>(),
        [("AAPL", "6.00"), ("NVDA", "7.00")]
    );
    // It comes back on B with its last id; A, asked the same, would have sent the same.
    let mut on_b = stream(&b, &chosen, Some(g));
    let mut on_a = stream(&a, &chosen, Some(g));
    let got_b = read_n(&mut on_b, due.len());
    let got_a = read_n(&mut on_a, due.len());
    assert_eq!(got_b, due);
    assert_eq!(got_a, due);
    assert_eq!(read_for(&mut on_b, Duration::from_millis(300)), []);
    // And both go on alike.
    let id = publish(&b, &mut history, "TSLA=9.00&MSFT=1.50");
    let next = vec![Update {
        id: id - 1,
        symbol: "TSLA".into(),
        price: "9.00".into(),
    }];
    assert_eq!(read_n(&mut on_b, 1), next);
    assert_eq!(read_n(&mut on_a, 1), next);
}

#[test]
fn redis_killed_then_restarted_empty_streams_go_on_and_ids_never_go_backwards() {
    let mut redis = RedisServer::start();
    let a = instance(&redis.addr(), &[]);
    let b = instance(&redis.addr(), &[]);
    wait_up(&a, Duration::from_secs(10));
    wait_up(&b, Duration::from_secs(10));
    let mut history = History::from_symbols(a.http());
    let mut sa = stream(&a, &ALL, None);
    let mut sb = stream(&b, &ALL, None);
    let mut seen_a = read_n(&mut sa, 5);
    let mut seen_b = read_n(&mut sb, 5);
    publish(&a, &mut history, "AAPL=10.00&MSFT=11.00");
    let before = publish(&b, &mut history, "NVDA=12.00");
    seen_a.extend(read_n(&mut sa, 3));
    seen_b.extend(read_n(&mut sb, 3));

    redis.kill();
    // Publishes are refused at once, told when to come back, on both instances.
    for t in [&a, &b] {
        let answer = publish_to(t.http(), "AAPL=99.00");
        answer.assert_unavailable();
        assert!(answer.took < Duration::from_secs(2), "{answer:?}");
        wait_down(t);
    }
    // Streams keep their heartbeats and carry nothing else; a new stream gets the last
    // prices, with their ids.
    let beats = (sa.comments, sb.comments);
    // (A heartbeat round skips a stream written to since the last: 3.2 s hold two rounds.)
    assert_eq!(read_for(&mut sa, Duration::from_millis(3200)), []);
    assert_eq!(read_for(&mut sb, Duration::from_millis(100)), []);
    assert!(
        sa.comments >= beats.0 + 2,
        "heartbeats on A: {}",
        sa.comments
    );
    assert!(
        sb.comments >= beats.1 + 2,
        "heartbeats on B: {}",
        sb.comments
    );
    let mut fresh = stream(&b, &ALL, None);
    assert_eq!(read_n(&mut fresh, 5), history.due_after(&ALL, 0));
    drop(fresh);
    for t in [&a, &b] {
        wait_log(t, &format!("redis {}: ", redis.addr()));
        assert_eq!(
            warnings_about_redis(t),
            1,
            "one warning per outage: {}",
            t.log()
        );
    }

    // Redis comes back with nothing: the instances reconnect by themselves and seed it
    // again, keeping their ids, so that clients are sent nothing twice.
    redis.restart_empty();
    for t in [&a, &b] {
        wait_up(t, Duration::from_secs(20));
        assert_eq!(metric(t, "tickerd_redis_reconnects_total"), 1.0);
        wait_log(t, "back after");
    }
    assert_eq!(
        read_for(&mut sa, Duration::from_millis(300)),
        [],
        "no repeats"
    );
    assert_eq!(
        read_for(&mut sb, Duration::from_millis(10)),
        [],
        "no repeats"
    );
    let feed = feed_in_redis(&redis, "tickerd");
    assert!(
        feed.counter >= before,
        "the counter raised to the instances' last id at least: {} < {before}",
        feed.counter
    );
    assert_eq!(feed.prices.len(), 5);

    // The next publish's id is above every id any instance sent; the same connections
    // carry it.
    let highest = seen_a.iter().chain(&seen_b).map(|u| u.id).max().unwrap();
    let id = publish(&a, &mut history, "TSLA=13.00");
    assert!(id > highest, "{id} after {highest}");
    let id2 = publish(&b, &mut history, "AAPL=14.00");
    assert_eq!(id2, id + 1);
    for s in [&mut sa, &mut sb] {
        assert_eq!(
            read_n(s, 2),
            history.due_after(&["TSLA", "AAPL"], before),
            "the same connection goes on"
        );
    }
    assert_eq!(
        History::from_symbols(a.http()).by_id,
        History::from_symbols(b.http()).by_id
    );
    assert_no_panic(&a);
    assert_no_panic(&b);
}

#[test]
fn a_frozen_redis_fails_publishes_in_2_s_and_after_sigcont_nothing_is_lost_or_repeated() {
    let redis = RedisServer::start();
    let a = instance(&redis.addr(), &[]);
    let b = instance(&redis.addr(), &[]);
    wait_up(&a, Duration::from_secs(10));
    wait_up(&b, Duration::from_secs(10));
    let mut history = History::from_symbols(a.http());
    let mut sa = stream(&a, &ALL, None);
    let mut sb = stream(&b, &ALL, None);
    let mut seen_a = read_n(&mut sa, 5);
    let mut seen_b = read_n(&mut sb, 5);
    publish(&a, &mut history, "AAPL=10.00&MSFT=11.00&NVDA=12.00");
    seen_a.extend(read_n(&mut sa, 3));
    seen_b.extend(read_n(&mut sb, 3));

    redis.freeze();
    // A publish that reaches the frozen Redis is answered 503 when its 2 s are up (the link
    // may fail sooner, when the pending XREAD is overdue); both instances at once.
    let ha = std::thread::spawn({
        let http = a.http();
        move || publish_to(http, "BRK.B=20.00")
    });
    let hb = std::thread::spawn({
        let http = b.http();
        move || publish_to(http, "TSLA=21.00")
    });
    for answer in [ha.join().unwrap(), hb.join().unwrap()] {
        answer.assert_unavailable();
        assert!(answer.took < Duration::from_millis(3000), "{answer:?}");
    }
    // And again while Redis stays frozen: refused at once while the links are down, within
    // 2 s once tickerd has connected again and waits for its load.
    for t in [&a, &b] {
        let answer = publish_to(t.http(), "AAPL=22.00");
        answer.assert_unavailable();
        assert!(answer.took < Duration::from_millis(3000), "{answer:?}");
        assert_eq!(metric(t, "tickerd_redis_up"), 0.0);
    }
    let beats = (sa.comments, sb.comments);
    let during_a = read_for(&mut sa, Duration::from_millis(3200));
    let during_b = read_for(&mut sb, Duration::from_millis(100));
    assert!(
        sa.comments >= beats.0 + 2,
        "heartbeats on A: {}",
        sa.comments
    );
    assert!(
        sb.comments >= beats.1 + 2,
        "heartbeats on B: {}",
        sb.comments
    );

    redis.thaw();
    wait_up(&a, Duration::from_secs(20));
    wait_up(&b, Duration::from_secs(20));
    // Publishes go through again; each stream ends with the latest of every symbol.
    publish(&b, &mut history, "AAPL=30.00&MSFT=31.00");
    publish(&a, &mut history, "NVDA=32.00&BRK.B=33.00&TSLA=34.00");
    let latest = history.latest();
    let after_a = read_until_latest(&mut sa, &latest, Duration::from_secs(10));
    let after_b = read_until_latest(&mut sb, &latest, Duration::from_secs(10));
    assert_eq!(read_for(&mut sa, Duration::from_millis(300)), []);
    for (seen, during, after) in [
        (&mut seen_a, during_a, after_a),
        (&mut seen_b, during_b, after_b),
    ] {
        seen.extend(during);
        seen.extend(after);
        assert_strictly_ascending(seen);
        // Each event is an update the feed gave, or one of the publishes answered 503
        // (see a_publish_answered_503_is_never_applied_later).
        for u in seen.iter() {
            let refused = [("BRK.B", "20.00"), ("TSLA", "21.00")];
            assert!(
                history.knows(u) || refused.contains(&(u.symbol.as_str(), u.price.as_str())),
                "{u:?} is no update the feed gave: {seen:?}"
            );
        }
    }
    assert_no_panic(&a);
    assert_no_panic(&b);
}

/// A publish that reached Redis just before it froze is answered 503 after 2 s, and the
/// publisher is told to try again: it must not turn up later, when Redis runs again (the
/// publisher may have sent something newer meanwhile, or given up).
#[test]
fn a_publish_answered_503_is_never_applied_later() {
    let redis = RedisServer::start();
    let a = instance(&redis.addr(), &[]);
    wait_up(&a, Duration::from_secs(10));
    let mut s = stream(&a, &["AAPL"], None);
    read_n(&mut s, 1);
    redis.freeze();
    let answer = publish_to(a.http(), "AAPL=666.66");
    answer.assert_unavailable();
    redis.thaw();
    wait_up(&a, Duration::from_secs(20));
    let late = read_for(&mut s, Duration::from_millis(1500));
    let feed = feed_in_redis(&redis, "tickerd");
    assert_eq!(
        (late, feed.prices["AAPL"].0),
        (vec![], 18_920),
        "the publish answered 503 was applied after all; tickerd's log: {}",
        a.log()
    );
}

/// Publishes `n` single-symbol updates on `http` from four threads; returns each body with
/// its id. Single symbols, so that ids and stream entries go one to one.
fn flood(http: std::net::SocketAddr, n: usize, tag: u64) -> Vec<(String, u64)> {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                (0..n / 4)
                    .map(|i| {
                        let body = format!(
                            "{}={}",
                            ALL[(t + i) % 5],
                            price(tag + (t * 10_000 + i) as u64)
                        );
                        let id = publish_to(http, &body).id();
                        (body, id)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

fn record_all(history: &mut History, published: &[(String, u64)]) {
    for (body, id) in published {
        history.record(&pairs(body), *id);
    }
}

/// Redis keeping stream entries in nodes of 10 (not 100), so that `MAXLEN ~ 50` trims
/// at about 50 entries and a flood of a few hundred publishes is enough.
fn small_nodes() -> RedisServer {
    RedisServer::start_with(&["--stream-node-max-entries", "10"])
}

#[test]
fn an_instance_cut_off_while_a_flood_is_trimmed_away_catches_up_to_the_latest_of_each() {
    let redis = small_nodes();
    let proxy = Proxy::start(redis.socket());
    let a = instance(&redis.addr(), &["--redis-maxlen", "50"]);
    let b = instance(&proxy.addr(), &["--redis-maxlen", "50"]);
    wait_up(&a, Duration::from_secs(10));
    wait_up(&b, Duration::from_secs(10));
    wait_log(&b, &format!("redis {}: feed loaded", proxy.addr));
    let mut history = History::from_symbols(a.http());
    let mut sa = stream(&a, &ALL, None);
    let mut sb = stream(&b, &ALL, None);
    let mut seen_a = read_n(&mut sa, 5);
    let seen_b = read_n(&mut sb, 5);
    assert_eq!(seen_a, seen_b);

    proxy.cut(Mode::Refuse);
    wait_down(&b);
    publish_to(b.http(), "AAPL=1.00").assert_unavailable();
    let behind = b.current_id();
    let published = flood(a.http(), 400, 1_000);
    record_all(&mut history, &published);
    let feed = feed_in_redis(&redis, "tickerd");
    assert!(
        feed.stream_len < 100,
        "trimmed to about 50: {}",
        feed.stream_len
    );
    assert!(
        feed.oldest_first.unwrap() > behind + 300,
        "what B missed is gone from the stream: oldest {:?}, B at {behind}",
        feed.oldest_first
    );
    assert_eq!(
        read_for(&mut sb, Duration::from_millis(100)),
        [],
        "B is cut off"
    );

    proxy.restore();
    wait_up(&b, Duration::from_secs(20));
    assert_eq!(metric(&b, "tickerd_redis_reconnects_total"), 1.0);
    // Its clients get the latest value of each symbol, at once, and nothing in between.
    let latest = history.latest();
    let caught_up = read_until_latest(&mut sb, &latest, Duration::from_secs(5));
    assert_eq!(caught_up, history.due_after(&ALL, behind));
    assert_eq!(read_for(&mut sb, Duration::from_millis(300)), []);
    // A's clients had it all along (conflated, perhaps): ascending, each a real update.
    seen_a.extend(read_until_latest(&mut sa, &latest, Duration::from_secs(5)));
    assert_strictly_ascending(&seen_a);
    assert!(seen_a.iter().all(|u| history.knows(u)));
    // And B publishes again, to both.
    let id = publish(&b, &mut history, "NVDA=7.77");
    let want = history.due_after(&["NVDA"], id - 1);
    assert_eq!(read_n(&mut sb, 1), want);
    assert_eq!(read_n(&mut sa, 1), want);
}

#[test]
fn an_instance_stalled_behind_a_trimmed_stream_reloads_and_ends_with_the_latest_of_each() {
    let redis = small_nodes();
    let proxy = Proxy::start(redis.socket());
    let a = instance(&redis.addr(), &["--redis-maxlen", "50"]);
    let b = instance(&proxy.addr(), &["--redis-maxlen", "50"]);
    wait_up(&a, Duration::from_secs(10));
    wait_up(&b, Duration::from_secs(10));
    let mut history = History::from_symbols(a.http());
    let mut sb = stream(&b, &ALL, None);
    let mut seen_b = read_n(&mut sb, 5);
    // The link stays up but passes nothing on: B's pending XREAD is answered by Redis with
    // the flood's first entry, which waits in the proxy while the rest is trimmed away. B
    // must see it within 2.5 s of asking (its XREAD deadline), so the stall lasts ≤ 1.2 s.
    let mut tries = 0;
    loop {
        tries += 1;
        let start = Instant::now();
        proxy.stall();
        let mut published = Vec::new();
        let trimmed = loop {
            published.extend(flood(a.http(), 24, 1_000 * tries));
            let first = published.iter().map(|(_, id)| *id).min().unwrap();
            if feed_in_redis(&redis, "tickerd").oldest_first.unwrap() > first + 20 {
                break true;
            }
            if start.elapsed() > Duration::from_millis(1200) {
                break false;
            }
        };
        proxy.unstall();
        record_all(&mut history, &published);
        wait_level(&b, history.last_id());
        if trimmed {
            break;
        }
        assert!(
            tries < 3,
            "could not trim the stream within a 1.2 s stall three times"
        );
    }
    assert!(
        wait_until(Duration::from_secs(5), || metric(
            &b,
            "tickerd_redis_reloads_total"
        ) == 1.0),
        "{}",
        b.log()
    );
    wait_log(&b, "the stream skips from id");
    assert_eq!(
        metric(&b, "tickerd_redis_reconnects_total"),
        0.0,
        "no outage: {}",
        b.log()
    );
    assert_eq!(warnings_about_redis(&b), 0);
    let latest = history.latest();
    seen_b.extend(read_until_latest(&mut sb, &latest, Duration::from_secs(5)));
    assert_eq!(read_for(&mut sb, Duration::from_millis(300)), []);
    assert_strictly_ascending(&seen_b);
    assert!(seen_b.iter().all(|u| history.knows(u)), "{seen_b:?}");
}

/// tickerd pointed at something that is not Redis, or a Redis that answers nonsense: each
/// kind is logged clearly, once, the links are tried again with backoff, publishes are
/// answered 503, and streams (on the instance's own prices) are untouched.
#[test]
fn garbage_from_the_redis_socket_is_logged_retried_and_harms_no_stream() {
    let deep: &'static [u8] = "*1\r\n".repeat(100).leak().as_bytes();
    let kinds: Vec<(Broken, &str)> = vec![
        (
            Broken::Answer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
            "malformed reply: unknown type byte",
        ),
        (Broken::Answer(b":1\r\n"), "load: unexpected reply"),
        (
            Broken::Answer(b"-ERR unknown command 'EVAL'\r\n"),
            "load: Redis said: ERR unknown command 'EVAL'",
        ),
        (Broken::Greet(b"+OK\r\n+OK\r\n"), "a reply nobody asked for"),
        (Broken::Answer(deep), "reply nested deeper than 8 arrays"),
        (Broken::Answer(b"$999999999999\r\n"), "reply over the"),
        (
            Broken::Answer(b"*3\r\n$1\r\n1\r\n$-5\r\n"),
            "negative bulk length",
        ),
        (Broken::Close, "Redis closed the connection"),
    ];
    let running: Vec<_> = kinds
        .into_iter()
        .map(|(kind, why)| {
            let fake = BrokenRedis::start(kind.clone());
            let t = instance(&fake.addr(), &[]);
            let s = stream(&t, &ALL, None);
            (fake, t, s, kind, why)
        })
        .collect();
    let mut held = Vec::new();
    for (fake, t, mut s, kind, why) in running {
        let prefix = format!("WARN  tickerd::redis::session] redis {}: ", fake.addr());
        assert!(
            wait_until(Duration::from_secs(5), || t
                .log()
                .lines()
                .any(|l| l.contains(&prefix) && l.contains(why))),
            "{kind:?}: no warning saying {why:?}: {}",
            t.log()
        );
        // Tried again (two connections an attempt), with backoff.
        assert!(
            wait_until(Duration::from_secs(5), || fake.accepted() >= 6),
            "{kind:?}: {} connections",
            fake.accepted()
        );
        assert_eq!(
            warnings_about_redis(&t),
            1,
            "{kind:?}: one warning: {}",
            t.log()
        );
        let answer = publish_to(t.http(), "AAPL=1.00");
        answer.assert_unavailable();
        assert!(answer.took < Duration::from_secs(1), "{kind:?}: {answer:?}");
        let m = t.metrics();
        assert_eq!(m["tickerd_redis_up"], 0.0, "{kind:?}");
        assert_eq!(m["tickerd_redis_reconnects_total"], 0.0, "{kind:?}");
        // The stream has the instance's own prices (provisional ids) and its heartbeats.
        let snapshot = read_n(&mut s, 5);
        let prices: Vec<&str> = snapshot.iter().map(|u| u.price.as_str()).collect();
        assert_eq!(
            prices,
            ["189.20", "415.30", "121.70", "412.80", "250.00"],
            "{kind:?}"
        );
        assert_strictly_ascending(&snapshot);
        held.push((s.comments, s, t, kind, fake));
    }
    // Heartbeats go on, and nothing else, on every one of them.
    let end = Instant::now() + Duration::from_secs(5);
    for (beats, s, t, kind, _) in &mut held {
        while s.comments == *beats {
            assert!(Instant::now() < end, "{kind:?}: no heartbeat");
            assert_eq!(read_for(s, Duration::from_millis(50)), [], "{kind:?}");
        }
        assert_no_panic(t);
    }
}

#[test]
fn a_last_event_id_ahead_of_an_instance_is_held_until_it_catches_up() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.socket());
    let a = instance(&redis.addr(), &[]);
    let b = instance(&proxy.addr(), &[]);
    wait_up(&a, Duration::from_secs(10));
    wait_up(&b, Duration::from_secs(10));
    let mut history = History::from_symbols(a.http());
    let chosen = ["AAPL", "MSFT"];
    let mut sa = stream(&a, &chosen, None);
    read_n(&mut sa, 2);

    // B falls behind (its link holds everything), while the browser on A moves on.
    proxy.stall();
    publish(&a, &mut history, "AAPL=1.00");
    let g = publish(&a, &mut history, "MSFT=2.00");
    assert_eq!(read_n(&mut sa, 2).last().unwrap().id, g);
    publish(&a, &mut history, "TSLA=3.00");
    let g4 = publish(&a, &mut history, "AAPL=4.00");
    // The browser moves to B, which has not seen g: held, not answered with B's past.
    assert!(b.current_id() < g, "B is behind");
    let mut sb = stream(&b, &chosen, Some(g));
    assert_eq!(read_for(&mut sb, Duration::from_millis(300)), [], "held");
    // B catches up within the hold: exactly what came after g, once.
    proxy.unstall();
    assert_eq!(
        read_n(&mut sb, 1),
        vec![Update {
            id: g4,
            symbol: "AAPL".into(),
            price: "4.00".into()
        }]
    );
    assert_eq!(
        read_for(&mut sb, Duration::from_millis(1500)),
        [],
        "nothing else"
    );

    // B cut off for good while A moves on (its connections dropped, new ones swallowed
    // whole): after about a second, B's snapshot (its last prices; the browser is sent them
    // again rather than nothing).
    proxy.cut(Mode::BlackHole);
    wait_down(&b);
    let g5 = publish(&a, &mut history, "MSFT=5.00");
    let opened = Instant::now();
    let mut sb2 = stream(&b, &chosen, Some(g5));
    let snapshot = read_n(&mut sb2, 2);
    let waited = opened.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500),
        "snapshot after {waited:?}"
    );
    let mut b_view = history.clone();
    b_view.by_id.remove(&g5);
    assert_eq!(snapshot, b_view.due_after(&chosen, 0), "B's last prices");
    // When B is back, both its streams get what they lack.
    proxy.restore();
    wait_up(&b, Duration::from_secs(20));
    let want = history.due_after(&["MSFT"], g5 - 1);
    assert_eq!(read_n(&mut sb2, 1), want);
    assert_eq!(read_n(&mut sb, 1), want);

    // An id no instance ever gave, on an instance that is level: the snapshot after ~1 s.
    let opened = Instant::now();
    let mut made_up = stream(&a, &chosen, Some(g5 + 1_000_000_000));
    assert_eq!(read_n(&mut made_up, 2), history.due_after(&chosen, 0));
    assert!(
        opened.elapsed() >= Duration::from_millis(900),
        "{:?}",
        opened.elapsed()
    );
}

#[test]
fn an_update_for_a_symbol_an_instance_does_not_carry_is_counted_and_logged_once() {
    let redis = RedisServer::start();
    let wider = format!("{SYMS},ZZZ=7");
    let a = instance(&redis.addr(), &["--symbols", &wider]);
    wait_up(&a, Duration::from_secs(10));
    let b = instance(&redis.addr(), &[]);
    wait_up(&b, Duration::from_secs(10));
    let unknown = |t: &Tickerd| metric(t, "tickerd_redis_unknown_symbols_total");
    let logged = |t: &Tickerd| {
        t.log()
            .lines()
            .filter(|l| l.contains("does not carry"))
            .count()
    };
    assert_eq!(unknown(&b), 1.0, "ZZZ, in the hash B loaded");
    wait_log(&b, "does not carry");
    assert_eq!(logged(&b), 1, "{}", b.log());
    assert!(b.log().contains("\"ZZZ\""), "{}", b.log());
    let mut history = History::from_symbols(a.http());
    let mut sb = stream(&b, &ALL, None);
    let mut sa = stream(&a, &["ZZZ", "AAPL"], None);
    read_n(&mut sb, 5);
    read_n(&mut sa, 2);
    let id = publish(&a, &mut history, "ZZZ=1.00&AAPL=2.00");
    assert_eq!(read_n(&mut sb, 1), history.due_after(&["AAPL"], id - 1));
    assert_eq!(
        read_n(&mut sa, 2),
        history.due_after(&["ZZZ", "AAPL"], id - 2)
    );
    publish(&a, &mut history, "ZZZ=3.00");
    assert_eq!(read_n(&mut sa, 1)[0].price, "3.00");
    assert!(
        wait_until(Duration::from_secs(5), || unknown(&b) == 3.0),
        "{}",
        unknown(&b)
    );
    assert_eq!(logged(&b), 1, "logged once: {}", b.log());
    assert_eq!(read_for(&mut sb, Duration::from_millis(300)), []);
    assert_eq!((unknown(&a), logged(&a)), (0.0, 0));
    // B itself refuses the symbol, as without Redis.
    let answer = publish_to(b.http(), "ZZZ=4.00");
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(answer.body.contains("ZZZ"), "{answer:?}");
    let (status, _, _) = http_request(
        b.http(),
        "GET /ticker?symbols=ZZZ HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(status, 404);
    assert_no_panic(&b);
}

/// Redis lost its data while one instance lagged behind (its link was down): whichever
/// instance comes back first reseeds the feed. The ids it then gives must still be above
/// every id any instance sent, or another instance's clients (whose last id is higher)
/// never get those updates; and the instances must end on the same prices.
#[test]
fn ids_never_go_backwards_when_the_instance_that_reseeds_an_emptied_redis_lagged_behind() {
    let mut redis = RedisServer::start();
    let (pa, pb) = (Proxy::start(redis.socket()), Proxy::start(redis.socket()));
    let a = instance(&pa.addr(), &[]);
    let b = instance(&pb.addr(), &[]);
    wait_up(&a, Duration::from_secs(10));
    wait_up(&b, Duration::from_secs(10));
    let mut history = History::from_symbols(a.http());
    let mut sa = stream(&a, &ALL, None);
    read_n(&mut sa, 5);
    // B's link goes; A moves on.
    pb.cut(Mode::Refuse);
    wait_down(&b);
    let highest = publish(&a, &mut history, "AAPL=1.00&MSFT=2.00");
    assert_eq!(read_n(&mut sa, 2).last().unwrap().id, highest);
    // A's link goes too, Redis loses everything, and B is back first.
    pa.cut(Mode::Refuse);
    wait_down(&a);
    redis.restart_empty();
    pb.restore();
    wait_up(&b, Duration::from_secs(20));
    let answer = publish_to(b.http(), "TSLA=3.00");
    let id = answer.id();
    pa.restore();
    wait_up(&a, Duration::from_secs(20));
    assert!(
        id > highest,
        "B gave TSLA=3.00 id {id}, but A had already sent {highest} (AAPL=1.00&MSFT=2.00 took {}..={highest}): \
         A's clients never get it.\nA: {}\nB: {}",
        highest - 1,
        a.log(),
        b.log()
    );
    history.record(&pairs("TSLA=3.00"), id);
    assert_eq!(read_n(&mut sa, 1), history.due_after(&["TSLA"], highest));
    let prices = |t: &Tickerd| -> Vec<(String, String)> {
        History::from_symbols(t.http())
            .latest()
            .into_iter()
            .map(|(s, (_, p))| (s, p))
            .collect()
    };
    assert_eq!(prices(&a), prices(&b), "the instances disagree");
}

/// A Redis whose `timeout` closes idle clients (managed services often set one) closes
/// tickerd's command link whenever nothing is published for that long. That is no outage:
/// publishes must not be refused for it, nor clients' streams disturbed.
#[test]
fn an_idle_command_link_closed_by_redis_timeout_is_no_outage() {
    let redis = RedisServer::start_with(&["--timeout", "1"]);
    let a = instance(&redis.addr(), &[]);
    wait_up(&a, Duration::from_secs(10));
    let mut s = stream(&a, &ALL, None);
    read_n(&mut s, 5);
    // A publisher that comes now and then, each time after a silence of 2.5 s. (Redis
    // counts idleness in whole seconds and checks it about every 100 ms: after 2.5 s an
    // idle client is closed.)
    let mut refused = 0;
    for _ in 0..2 {
        assert_eq!(read_for(&mut s, Duration::from_millis(2500)), []);
        if publish_to(a.http(), "AAPL=5.00").status != 200 {
            refused += 1;
        }
        read_for(&mut s, Duration::from_millis(200));
    }
    assert_eq!(
        (
            refused,
            metric(&a, "tickerd_redis_reconnects_total"),
            warnings_about_redis(&a)
        ),
        (0, 0.0, 0),
        "publishes refused, reconnects, outage warnings: {}",
        a.log()
    );
}

/// After a link fails, tickerd connects again and loads the feed. If Redis still does not
/// answer (frozen, or a network that black-holes), the load waits for its own 10 s; a
/// publish that comes meanwhile must still be answered within about 2 s, not held behind it.
#[test]
fn a_publish_during_a_load_from_a_hung_redis_is_answered_within_2_s() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.socket());
    let a = instance(&proxy.addr(), &[]);
    wait_up(&a, Duration::from_secs(10));
    let first = proxy.accepted();
    redis.freeze();
    publish_to(a.http(), "AAPL=1.00").assert_unavailable();
    // tickerd connects again (the proxy accepts, Redis's backlog takes the connection) and
    // sends its load, which goes unanswered.
    assert!(
        wait_until(Duration::from_secs(5), || proxy.accepted() >= first + 2),
        "no new connection: {}",
        a.log()
    );
    let answer = publish_to(a.http(), "AAPL=2.00");
    redis.thaw();
    answer.assert_unavailable();
    assert!(
        answer.took < Duration::from_millis(3000),
        "answered after {:?}: {}",
        answer.took,
        a.log()
    );
}
