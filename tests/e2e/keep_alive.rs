//! End to end: the built-in HTTP listener keeps a connection for the next request after a
//! finite answer (a feed handler's publishes back to back, pipelined requests, HTTP/1.0 and
//! `Connection: close` honoured), and closes an idle one at `--request-timeout-s`. The same
//! publishes through each front-end are in `lighttpd`, `nginx` and `apache`
//! (`support/fronts/checks.rs`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::fronts::checks::{self, BACK_TO_BACK};
use crate::support::*;

#[test]
fn publishes_back_to_back_on_one_connection_to_the_http_listener() {
    let t = Tickerd::start(&["--tick-ms", "0"]);
    let kept = checks::publishes_on_one_connection(&t, t.http());
    for head in &kept.heads {
        assert_eq!(
            header(head, "Connection").as_deref(),
            Some("keep-alive"),
            "{head}"
        );
    }
    // Both scrapes and every publish went over the one connection, and nothing else came.
    assert_eq!((kept.accepted_http, kept.accepted_scgi), (0.0, 0.0));
}

#[test]
fn pipelined_publishes_in_one_write_are_all_answered_in_order() {
    let t = Tickerd::start(&["--tick-ms", "0"]);
    let current = t.current_id();
    let mut conn = TcpStream::connect(t.http()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let all: String = (1..=BACK_TO_BACK)
        .map(|i| publish_request("/publish", &format!("{i}.00")))
        .collect();
    conn.write_all(all.as_bytes()).unwrap();
    let answers =
        read_responses(&mut conn, BACK_TO_BACK as usize).unwrap_or_else(|e| panic!("{e}"));
    for (r, i) in answers.iter().zip(1..) {
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, format!("{}\napplied 1\nunchanged 0\n", current + i));
    }
    assert_eq!(t.metrics()["tickerd_price"], BACK_TO_BACK as f64);
}

/// Waits up to `within` for the close (EOF, with nothing before it); returns how long it took.
fn closed_within(conn: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    conn.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    match conn.read(&mut buf) {
        Ok(0) => Some(start.elapsed()),
        Ok(n) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) if is_timeout(&e) => None,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn an_idle_connection_is_closed_at_the_request_timeout() {
    let t = Tickerd::start(&["--tick-ms", "0", "--request-timeout-s", "1"]);
    let mut conn = TcpStream::connect(t.http()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A request every 0.6 s: each restarts the deadline, so the connection outlives 1 s.
    for _ in 0..3 {
        conn.write_all(b"GET /symbols HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut conn).status, 200);
        assert_eq!(closed_within(&mut conn, Duration::from_millis(600)), None);
    }
    let waited = closed_within(&mut conn, Duration::from_secs(5)).expect("closed when idle");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    let m = t.metrics();
    assert_eq!(
        m["tickerd_connections_closed_total{reason=\"idle_timeout\"}"],
        1.0
    );
    assert_eq!(
        m["tickerd_connections_closed_total{reason=\"request_timeout\"}"],
        0.0
    );
}

#[test]
fn connection_close_and_http_1_0_get_one_answer_then_the_close() {
    let t = Tickerd::start(&["--tick-ms", "0"]);
    for (request, connection) in [
        (
            "GET /symbols HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            "close",
        ),
        ("GET /symbols HTTP/1.0\r\n\r\n", "close"),
        (
            "GET /symbols HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            "keep-alive",
        ),
    ] {
        let mut conn = TcpStream::connect(t.http()).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // A second request right behind the first: answered only if the first kept it.
        conn.write_all(format!("{request}{request}").as_bytes())
            .unwrap();
        // (Both answers may come in one read.)
        let answers = read_responses(&mut conn, 1 + usize::from(connection == "keep-alive"))
            .unwrap_or_else(|e| panic!("{request:?}: {e}"));
        assert_eq!(answers[0].header("Connection").as_deref(), Some(connection));
        assert!(answers.iter().all(|r| r.status == 200), "{answers:?}");
        if connection == "close" {
            assert!(closed_within(&mut conn, Duration::from_secs(3)).is_some());
        }
    }
}
