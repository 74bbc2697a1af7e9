//! What time does: coalescing periods, heartbeats, long polls held and answered, request
//! and linger deadlines.

use super::*;

#[test]
fn coalescing_holds_a_client_to_one_write_per_period_with_the_latest_values() {
    let config = Config {
        coalesce: Some(Duration::from_millis(100)),
        ..config(&["A", "B"])
    };
    let mut h = Harness::new(&config);
    let c = h.stream(Some("A,B"), None);
    h.publish("A=1");
    h.turn();
    let after_first = c.writes();
    assert_eq!(c.events().len(), 3, "the first fan-out goes at once");
    h.publish("A=2");
    h.later(Duration::from_millis(10));
    h.publish("B=3");
    h.publish("A=4");
    h.later(Duration::from_millis(10));
    assert_eq!(c.writes(), after_first, "held until the period ends");
    assert_eq!(
        h.core.next_deadline(),
        Some(h.now + Duration::from_millis(80)),
        "the loop wakes when it ends"
    );
    h.later(Duration::from_millis(80));
    assert_eq!(c.writes(), after_first + 1, "then one write");
    let events = c.events();
    let last: Vec<&str> = events[3..].iter().map(|(_, d)| price_of(d)).collect();
    assert_eq!(last, ["3.00", "4.00"], "B, then A at its latest");
}

#[test]
fn max_hz_holds_a_stream_to_its_rate_with_the_latest_values_and_the_snapshot_is_free() {
    let config = Config {
        max_hz: Some(Duration::from_millis(250)), // --max-hz 4
        ..config(&["A", "B"])
    };
    let mut h = Harness::new(&config);
    let slow = h.connect("GET /ticker?symbols=A,B&max_hz=2 HTTP/1.1\r\n\r\n");
    // Asking more than --max-hz, or nothing, gets --max-hz.
    let capped = h.connect("GET /ticker?symbols=A,B&max_hz=1000 HTTP/1.1\r\n\r\n");
    let unasked = h.stream(Some("A,B"), None);
    let counts = |h: &Harness| {
        let _ = h;
        [
            slow.events().len(),
            capped.events().len(),
            unasked.events().len(),
        ]
    };
    assert_eq!(counts(&h), [2, 2, 2], "the snapshot");
    // The snapshot does not count: the first update goes at once.
    h.publish("A=1");
    h.turn();
    assert_eq!(counts(&h), [3, 3, 3]);
    h.later(Duration::from_millis(100));
    h.publish("A=2");
    h.turn();
    h.later(Duration::from_millis(100));
    h.publish("B=3");
    h.turn();
    assert_eq!(counts(&h), [3, 3, 3], "held");
    assert!(
        h.core.next_deadline() <= Some(h.now + Duration::from_millis(50)),
        "the loop wakes when the next round may go (250 ms)"
    );
    h.later(Duration::from_millis(60)); // 260 ms
    assert_eq!(counts(&h), [3, 5, 5], "A=2 and B=3 in one round at 250 ms");
    h.later(Duration::from_millis(40)); // 300 ms
    h.publish("A=4");
    h.turn();
    h.later(Duration::from_millis(200)); // 500 ms
    assert_eq!(counts(&h), [5, 5, 5]);
    let events = slow.events();
    let latest: Vec<&str> = events[3..].iter().map(|(_, d)| price_of(d)).collect();
    assert_eq!(
        latest,
        ["3.00", "4.00"],
        "one round at 500 ms: B, then A at its latest"
    );
    h.later(Duration::from_millis(20)); // 520 ms
    assert_eq!(counts(&h), [5, 6, 6], "A=4 at 510 ms");
    // Nothing more due: nothing more written, and no wake-up left.
    let written = slow.writes();
    h.later(Duration::from_secs(2));
    assert_eq!(slow.writes(), written);
    assert!(h.core.timers.throttled.is_empty());
    // Each stream's rate goes with its connection.
    assert_eq!(h.core.rates.len(), 3);
    h.ready(
        &slow,
        Readiness {
            input: false,
            gone: true,
        },
    );
    assert_eq!(h.core.rates.len(), 2);
}

#[test]
fn heartbeats_go_only_to_streams_that_had_nothing_since_the_last_round() {
    let config = Config {
        heartbeat: Some(Duration::from_secs(15)),
        ..config(&["A", "B"])
    };
    let mut h = Harness::new(&config);
    let idle = h.stream(Some("A"), None);
    let busy = h.stream(Some("B"), None);
    let poll = h.connect("GET /ticker?symbols=A HTTP/1.1\r\nX-Event-Source-Simulate: Long-Polling\r\nLast-Event-ID: 999999999999999999\r\n\r\n");
    // Round 1 at 15 s: both had their snapshot since the start, so no beat yet.
    h.later(Duration::from_secs(15));
    assert!(!idle.text().contains(": heartbeat"));
    h.later(Duration::from_secs(5));
    h.publish("B=1");
    // Round 2 at 30 s: the idle one had nothing since round 1; the busy one had B=1.
    h.later(Duration::from_secs(10));
    assert_eq!(idle.text().matches(": heartbeat\n\n").count(), 1);
    assert_eq!(busy.text().matches(": heartbeat\n\n").count(), 0);
    // Round 3: both idle now.
    h.later(Duration::from_secs(15));
    assert_eq!(idle.text().matches(": heartbeat\n\n").count(), 2);
    assert_eq!(busy.text().matches(": heartbeat\n\n").count(), 1);
    assert!(!poll.text().contains("heartbeat"), "never to a long poll");
    assert_eq!(h.core.counters.written.heartbeats, 3);
}

#[test]
fn a_long_poll_answers_once_with_a_length_and_a_held_one_gets_its_snapshot() {
    let config = Config {
        long_poll_hold: Duration::from_secs(30),
        ..config(&["A", "B"])
    };
    let mut h = Harness::new(&config);
    let now_id = h.last_id();
    let request = |g: u64| {
        format!("GET /ticker?symbols=A,B HTTP/1.1\r\nX-Event-Source-Simulate: Long-Polling\r\nLast-Event-ID: {g}\r\n\r\n")
    };
    // Up to date: it waits, then the next update answers it.
    let waiting = h.connect(&request(now_id));
    assert_eq!(waiting.text(), "");
    h.publish("B=5");
    h.turn();
    let text = waiting.text();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    assert!(
        text.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{text}"
    );
    assert_eq!(waiting.events().len(), 1);
    assert!(waiting.pipe().shut, "answered, then our side is shut");
    h.publish("A=6");
    h.turn();
    assert_eq!(waiting.events().len(), 1, "one answer only");
    // Held past --long-poll-s: answered with the current value of each symbol.
    let held = h.connect(&request(h.last_id()));
    h.later(Duration::from_secs(29));
    assert_eq!(held.text(), "");
    h.later(Duration::from_secs(1));
    let prices: Vec<String> = held
        .events()
        .iter()
        .map(|(_, d)| price_of(d).to_string())
        .collect();
    assert_eq!(prices, ["5.00", "6.00"]);
}

#[test]
fn deadlines_close_a_slow_request_and_a_peer_that_never_closes() {
    let config = Config {
        request_timeout: Duration::from_secs(10),
        ..config(&["A"])
    };
    let mut h = Harness::new(&config);
    let slow = h.connect("GET /tick");
    let answered = h.connect("GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(answered.text().starts_with("HTTP/1.1 404 "));
    assert!(answered.pipe().shut, "lingering");
    h.later(Duration::from_secs(2));
    assert_eq!(
        h.core.counters.closed[crate::conn::CloseReason::LingerTimeout as usize],
        1
    );
    assert!(h.core.clients.get(answered.key).is_none());
    h.later(Duration::from_secs(8));
    assert_eq!(
        h.core.counters.closed[crate::conn::CloseReason::RequestTimeout as usize],
        1
    );
    assert!(h.core.clients.get(slow.key).is_none());
    assert_eq!(h.core.connections(), 0);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Whatever the updates and however time passes, a `max_hz` stream's rounds after the
    /// snapshot come at least 1/N s apart, each carries at most one event per symbol, and
    /// once updates stop it ends with the latest value of every symbol.
    #[test]
    fn max_hz_rounds_are_spaced_and_end_current(
        hz in proptest::sample::select(vec!["1", "2.5", "4", "20"]),
        steps in proptest::collection::vec((0..3usize, 0..6u32, 0..400u64), 1..40),
    ) {
        let gap = crate::route::min_gap(hz.as_bytes()).unwrap();
        let mut h = Harness::new(&config(&["A", "B", "C"]));
        let c = h.connect(&format!("GET /ticker?symbols=A,B,C&max_hz={hz} HTTP/1.1\r\n\r\n"));
        let mut rounds: Vec<(Instant, usize)> = Vec::new(); // (when, events so far)
        let mut seen = c.events().len();
        let mut check = |h: &Harness, rounds: &mut Vec<(Instant, usize)>| {
            let events = c.events();
            if events.len() > seen {
                let round: Vec<String> = events[seen..].iter().map(|(_, d)| d[..14].to_string()).collect();
                let mut distinct = round.clone();
                distinct.sort();
                distinct.dedup();
                assert_eq!(distinct.len(), round.len(), "one event per symbol a round: {round:?}");
                rounds.push((h.now, events.len()));
                seen = events.len();
            }
        };
        for &(symbol, value, ms) in &steps {
            h.publish(&format!("{}={value}.{:02}", ["A", "B", "C"][symbol], ms % 100));
            h.turn();
            check(&h, &mut rounds);
            // Time passes in small steps, as wake-ups would come.
            for _ in 0..(ms / 50) {
                h.later(Duration::from_millis(50));
                check(&h, &mut rounds);
            }
        }
        h.later(gap + Duration::from_millis(1));
        check(&h, &mut rounds);
        for pair in rounds.windows(2) {
            proptest::prop_assert!(pair[1].0 - pair[0].0 >= gap, "rounds {:?} apart, max_hz {hz}", pair[1].0 - pair[0].0);
        }
        // Current at the end: each symbol's last event is its value now.
        let events = c.events();
        for name in ["A", "B", "C"] {
            let last = events.iter().rev().find(|(_, d)| d.contains(&format!("\"{name}\""))).map(|(_, d)| price_of(d).to_string());
            let u = &h.core.feed.universe;
            let s = u.find(&Symbol::parse(name.as_bytes()).unwrap()).unwrap();
            proptest::prop_assert_eq!(last, u.value(s, 0).map(|v| v.to_string()), "{}", name);
        }
    }
}
