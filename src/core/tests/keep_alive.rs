//! Kept-alive HTTP connections through the core: publishes back to back on one connection,
//! pipelined requests (a few at once, the rest in later turns), the deadline restarted for
//! each request and closing an idle connection, the slot it holds, and the answers that
//! close.

use super::*;
use crate::conn::CloseReason;

fn publish_request(body: &str) -> String {
    format!(
        "POST /publish HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The answers written to `c`, each as (head, body), split by their Content-Length.
fn answers(c: &Client) -> Vec<(String, String)> {
    let text = c.text();
    let mut rest = text.as_str();
    let mut out = Vec::new();
    while let Some((head, after)) = rest.split_once("\r\n\r\n") {
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .expect("a length")
            .parse()
            .unwrap();
        out.push((head.to_string(), after[..length].to_string()));
        rest = &after[length..];
    }
    out
}

#[test]
fn publishes_back_to_back_on_one_connection_each_reach_a_stream() {
    let mut h = Harness::new(&config(&["A", "B"]));
    let stream = h.stream(Some("A,B"), None);
    let start = h.last_id();
    let publisher = h.connect(&publish_request("A=1"));
    h.turn();
    for (i, body) in ["B=2", "A=3", "A=4"].into_iter().enumerate() {
        h.send(&publisher, publish_request(body).as_bytes());
        h.turn();
        assert_eq!(answers(&publisher).len(), i + 2);
    }
    let answers = answers(&publisher);
    for (i, (head, body)) in answers.iter().enumerate() {
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("\r\nConnection: keep-alive"), "{head}");
        assert_eq!(
            body,
            &format!("{}\napplied 1\nunchanged 0\n", start + 1 + i as u64)
        );
    }
    assert!(!publisher.pipe().shut);
    assert_eq!(h.core.connections(), 2, "the stream and the one publisher");
    let got: Vec<u64> = ids(&stream.events())
        .into_iter()
        .filter(|&id| id > start)
        .collect();
    assert_eq!(got, [start + 1, start + 2, start + 3, start + 4]);
}

#[test]
fn pipelined_requests_are_answered_at_once_in_order() {
    let mut h = Harness::new(&config(&["A"]));
    let start = h.last_id();
    let three = [
        publish_request("1"),
        publish_request("2"),
        publish_request("3"),
    ]
    .concat();
    let c = h.connect(&three);
    let bodies: Vec<String> = answers(&c).into_iter().map(|(_, b)| b).collect();
    assert_eq!(
        bodies,
        [1, 2, 3].map(|n| format!("{}\napplied 1\nunchanged 0\n", start + n))
    );
    assert!(h.core.clients.get(c.key).is_some_and(|c| c.is_idle()));
}

#[test]
fn a_peer_pipelining_without_end_gets_a_few_answers_a_turn() {
    let mut h = Harness::new(&config(&["A"]));
    let many: String = (0..40).map(|_| "GET /symbols HTTP/1.1\r\n\r\n").collect();
    let c = h.connect(&many);
    // The first and 16 more, then the others' turn: the loop comes back at once.
    assert_eq!(answers(&c).len(), 17);
    assert_eq!(h.core.next_deadline(), Some(h.now));
    h.turn();
    assert_eq!(answers(&c).len(), 34);
    h.turn();
    assert_eq!(answers(&c).len(), 40);
    assert!(h.core.clients.get(c.key).is_some_and(|c| c.is_idle()));
}

#[test]
fn the_deadline_restarts_for_each_request_and_closes_an_idle_connection() {
    let config = Config {
        request_timeout: Duration::from_secs(10),
        ..config(&["A"])
    };
    let mut h = Harness::new(&config);
    let c = h.connect("GET /symbols HTTP/1.1\r\n\r\n");
    h.later(Duration::from_secs(8));
    h.send(&c, b"GET /metrics HTTP/1.1\r\n\r\n");
    // Past the first request's deadline: the second's runs from its answer.
    h.later(Duration::from_secs(9));
    assert!(h.core.clients.get(c.key).is_some(), "still open at 17 s");
    assert_eq!(answers(&c).len(), 2);
    h.later(Duration::from_secs(1));
    assert!(h.core.clients.get(c.key).is_none(), "closed at 18 s");
    let closed = &h.core.counters.closed;
    assert_eq!(closed[CloseReason::IdleTimeout as usize], 1);
    assert_eq!(closed[CloseReason::RequestTimeout as usize], 0);
    assert!(!c.pipe().shut, "closed, without a response of its own");
}

#[test]
fn a_request_begun_on_a_kept_connection_has_the_request_deadline() {
    let config = Config {
        request_timeout: Duration::from_secs(10),
        ..config(&["A"])
    };
    let mut h = Harness::new(&config);
    let c = h.connect("GET /symbols HTTP/1.1\r\n\r\n");
    h.send(&c, b"GET /met");
    h.later(Duration::from_secs(10));
    assert!(h.core.clients.get(c.key).is_none());
    assert_eq!(
        h.core.counters.closed[CloseReason::RequestTimeout as usize],
        1
    );
}

#[test]
fn an_idle_connection_holds_its_slot_until_the_peer_closes() {
    let mut h = Harness::with_max_clients(&config(&["A"]), 1);
    let c = h.connect("GET /symbols HTTP/1.1\r\n\r\n");
    let refused = h.connect("GET /symbols HTTP/1.1\r\n\r\n");
    assert!(refused.text().starts_with("HTTP/1.1 503 "));
    assert!(
        refused.text().contains("Connection: close\r\n"),
        "{}",
        refused.text()
    );
    // Both leave (the idle one between requests): done, and the slot is free.
    for leaving in [&c, &refused] {
        leaving.pipe().eof = true;
        h.ready(
            leaving,
            Readiness {
                input: true,
                gone: false,
            },
        );
    }
    assert_eq!(h.core.counters.closed[CloseReason::Done as usize], 2);
    let next = h.connect("GET /symbols HTTP/1.1\r\n\r\n");
    assert!(next.text().starts_with("HTTP/1.1 200 "), "{}", next.text());
}

#[test]
fn a_malformed_request_is_answered_400_and_closes() {
    let mut h = Harness::new(&config(&["A"]));
    let c = h.connect("GET /symbols HTTP/1.1\r\n\r\n");
    h.send(
        &c,
        b"GET / HTTP/1.1\r\nno colon\r\n\r\nGET /symbols HTTP/1.1\r\n\r\n",
    );
    h.turn();
    let answers = answers(&c);
    assert_eq!(answers.len(), 2, "the 400, and nothing for what followed");
    assert!(answers[1].0.starts_with("HTTP/1.1 400 "));
    assert!(answers[1].0.contains("Connection: close"));
    assert!(c.pipe().shut, "lingering");
}

#[test]
fn scgi_answers_carry_no_connection_header_and_close() {
    let mut h = Harness::new(&config(&["A"]));
    let request = crate::scgi::encode(&[("REQUEST_METHOD", "GET"), ("PATH_INFO", "/symbols")], b"");
    let c = h.connect_over(Protocol::Scgi, &request);
    assert!(c.text().starts_with("Status: 200 OK\r\n"));
    assert!(!c.text().contains("Connection:"), "{}", c.text());
    assert!(c.pipe().shut);
}
