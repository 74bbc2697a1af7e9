//! The real binary over real sockets: streams over HTTP and SCGI, the Last-Event-ID rules,
//! long polling, publishing, limits, bad input and shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

/// Ticks driven by the test: no random walk, prices only from publishing.
const MANUAL: &[&str] = &["--tick-ms", "0"];

#[test]
fn http_stream_ids_grow_by_one() {
    let t = Tickerd::start(&["--tick-ms", "50"]);
    let mut s = http_stream(t.http(), "/ticker", &[]);
    assert_eq!(s.status, 200);
    assert!(s.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", s.head);
    assert!(s.head.contains("Content-Type: text/event-stream\r\n"));
    assert!(s.head.contains("Cache-Control: no-cache\r\n"));
    let events: Vec<_> = (0..10).map(|_| s.next_event().expect("event")).collect();
    assert_eq!(s.retry, Some(3000));
    for pair in events.windows(2) {
        assert_eq!(pair[1].id(), pair[0].id() + 1, "{events:?}");
    }
    for e in &events {
        let (whole, cents) = e.data.split_once('.').expect("two decimals");
        assert!(whole.parse::<u64>().is_ok() && cents.len() == 2, "{e:?}");
    }
    // Ids start from the wall clock in µs, above anything an earlier run reached.
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    assert!(events[0].id() > now_us - 60_000_000 && events[0].id() < now_us);
}

#[test]
fn scgi_stream_uses_a_cgi_status_header() {
    let t = Tickerd::start(&["--tick-ms", "50", "--retry-ms", "1234"]);
    let mut s = scgi_stream(t.scgi(), &scgi_get("/ticker", &[]));
    assert!(s.head.starts_with("Status: 200 OK\r\n"), "{}", s.head);
    assert!(s.head.contains("Content-Type: text/event-stream\r\n"));
    let a = s.next_event().unwrap();
    let b = s.next_event().unwrap();
    let c = s.next_event().unwrap();
    assert_eq!(s.retry, Some(1234));
    assert_eq!((b.id(), c.id()), (a.id() + 1, a.id() + 2));
}

#[test]
fn last_event_id_equal_to_current_waits_for_the_next_tick() {
    let t = Tickerd::start(MANUAL);
    let mut current = t.current_id();
    for over_scgi in [false, true] {
        let mut s = if over_scgi {
            let id = current.to_string();
            scgi_stream(
                t.scgi(),
                &scgi_get("/ticker", &[("HTTP_LAST_EVENT_ID", &id)]),
            )
        } else {
            http_stream(
                t.http(),
                "/ticker",
                &[("Last-Event-ID", &current.to_string())],
            )
        };
        set_timeout(s.socket(), Duration::from_millis(400));
        assert_eq!(s.next_event(), None, "nothing before the next tick");
        set_timeout(s.socket(), Duration::from_secs(5));
        // (Another price each pass: a publish that changes nothing is sent to no one.)
        let price = if over_scgi { "43.00" } else { "42.00" };
        let (status, body) = t.publish(price);
        assert_eq!(status, 200);
        let e = s.next_event().expect("the tick");
        assert_eq!(e.id(), body.lines().next().unwrap().parse::<u64>().unwrap());
        assert_eq!(e.data, price);
        current = e.id();
    }
}

#[test]
fn any_other_last_event_id_gets_the_current_event_at_once() {
    let t = Tickerd::start(MANUAL);
    t.publish("10.50");
    let current = t.current_id();
    for id in [
        None,
        Some((current - 1).to_string()),
        Some((current + 5).to_string()),
        Some("garbage".to_string()),
        Some(String::new()),
    ] {
        let headers: Vec<(&str, &str)> = id.iter().map(|v| ("Last-Event-ID", v.as_str())).collect();
        let mut s = http_stream(t.http(), "/ticker", &headers);
        set_timeout(s.socket(), Duration::from_secs(2));
        let e = s
            .next_event()
            .unwrap_or_else(|| panic!("no event for {id:?}"));
        assert_eq!((e.id(), e.data.as_str()), (current, "10.50"), "{id:?}");
    }
    let reconnects = t.metrics()["tickerd_requests_with_last_event_id_total"];
    assert_eq!(reconnects, 2.0, "two of the ids were numbers");
}

#[test]
fn long_poll_returns_exactly_one_event_and_ends() {
    let t = Tickerd::start(MANUAL);
    let current = t.current_id();
    // Behind: the current event at once, with a Content-Length, then the end.
    let (status, head, body) = http_request(
        t.http(),
        "GET /ticker HTTP/1.1\r\nHost: t\r\nX-Event-Source-Simulate: long-POLLING\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    assert_eq!(body, format!("id: {current}\ndata: 100.00\n\n"));
    // Up to date, over SCGI: held until the next tick, then one event and EOF.
    let mut s = TcpStream::connect(t.scgi()).unwrap();
    s.write_all(&scgi_get(
        "/ticker",
        &[
            ("HTTP_X_EVENT_SOURCE_SIMULATE", "Long-Polling"),
            ("HTTP_LAST_EVENT_ID", &current.to_string()),
        ],
    ))
    .unwrap();
    set_timeout(&s, Duration::from_millis(300));
    let mut buf = [0u8; 256];
    assert!(s.read(&mut buf).is_err(), "held until the next tick");
    t.publish("99.99");
    set_timeout(&s, Duration::from_secs(5));
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let (status, head, body) = split_response(&raw);
    assert_eq!(status, 200);
    assert!(head.starts_with("Status: 200 OK\r\n"));
    assert_eq!(body, format!("id: {}\ndata: 99.99\n\n", current + 1));
}

#[test]
fn publishing_rules() {
    // The body cap of the single-price service (the default is 64 KiB, for batches).
    let t = Tickerd::start(&["--tick-ms", "0", "--max-publish-bytes", "1024"]);
    let before = t.current_id();
    let mut watcher = http_stream(
        t.http(),
        "/ticker",
        &[("Last-Event-ID", &before.to_string())],
    );
    let (status, body) = t.publish("price=123.45\n");
    assert_eq!(
        (status, body.lines().next().unwrap().parse::<u64>().unwrap()),
        (200, before + 1)
    );
    let e = watcher.next_event().unwrap();
    assert_eq!((e.id(), e.data.as_str()), (before + 1, "123.45"));

    let post = |auth: Option<&str>, body: &str| {
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "POST /publish HTTP/1.1\r\nHost: t\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        http_request(t.http(), &req).0
    };
    assert_eq!(post(None, "1.00"), 401);
    assert_eq!(post(Some("Bearer wrong-token-123"), "1.00"), 401);
    assert_eq!(post(Some("Basic dGVzdA=="), "1.00"), 401);
    let auth = format!("Bearer {TOKEN}");
    // Never rounded: more decimals than the symbol's precision is refused (negative
    // prices are prices: futures and spreads go below zero).
    for bad in [
        "", "--5", "abc", "inf", "1e9", "NaN", "1.005", "2.999", "1,5",
    ] {
        assert_eq!(post(Some(&auth), bad), 400, "{bad:?}");
    }
    assert_eq!(post(Some(&auth), &"1".repeat(2000)), 413);
    let (status, head, _) = http_request(t.http(), "GET /publish HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 405);
    assert!(head.contains("Allow: POST"));
    // None of the refused ones ticked.
    assert_eq!(t.current_id(), before + 1);
    // Once the refusals are logged, check that no line shows the token.
    assert!(wait_until(Duration::from_secs(2), || t
        .log()
        .contains("publish refused")));
    assert!(!t.log().contains(TOKEN), "the token must never be logged");
    // Over SCGI, the token comes as HTTP_AUTHORIZATION.
    let req = scgi_bytes(
        &[
            ("REQUEST_METHOD", "POST"),
            ("PATH_INFO", "/publish"),
            ("HTTP_AUTHORIZATION", &auth),
        ],
        "7.25",
    );
    let mut s = TcpStream::connect(t.scgi()).unwrap();
    s.write_all(&req).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert_eq!(split_response(&raw).0, 200);
    assert_eq!(t.metrics()["tickerd_price"], 7.25);
}

#[test]
fn publishing_disabled_is_404() {
    let t = Tickerd::start_with_token(MANUAL, None);
    let req = "POST /publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer x\r\nContent-Length: 1\r\n\r\n5";
    assert_eq!(http_request(t.http(), req).0, 404);
}

#[test]
fn endpoints_and_errors_over_http() {
    let t = Tickerd::start(MANUAL);
    let (status, head, body) = http_request(t.http(), "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 200);
    assert!(head.contains("text/html"));
    // The page's client logic is its own script, served beside it; both use relative URLs.
    assert!(body.contains(r#"<script src="tickerd.js">"#));
    assert!(
        !body.contains("'/") && !body.contains("\"/ticker"),
        "the page must use relative URLs"
    );
    let (status, head, js) = http_request(t.http(), "GET /tickerd.js HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 200);
    assert!(head.contains("text/javascript"));
    assert!(js.contains("EventSource") && js.contains("Long-Polling"));
    assert!(!js.contains("'/ticker") && !js.contains("\"/ticker"));
    let (status, _, _) = http_request(t.http(), "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 404);
    let (status, head, _) = http_request(t.http(), "DELETE /ticker HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET"));
    let (status, _, _) = http_request(t.http(), "\x16\x03\x01garbage\r\n\r\n");
    assert_eq!(status, 400);
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(10_000));
    let (status, _, _) = http_request(t.http(), &big);
    assert_eq!(status, 431);
    let (status, _, _) = http_request(
        t.http(),
        "POST /publish HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(status, 411);
}

#[test]
fn routing_follows_cgi_rules_under_a_prefix() {
    let t = Tickerd::start(&["--tick-ms", "0", "--http", "off"]);
    let get = |vars: &[(&str, &str)]| {
        let mut headers = vec![("REQUEST_METHOD", "GET")];
        headers.extend_from_slice(vars);
        let mut s = TcpStream::connect(t.scgi()).unwrap();
        s.write_all(&scgi_bytes(&headers, "")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut raw = vec![0u8; 512];
        let n = s.read(&mut raw).unwrap();
        split_response(&raw[..n]).0
    };
    let prefix = [
        ("SCRIPT_NAME", "/prices"),
        ("REQUEST_URI", "/prices/metrics"),
    ];
    assert_eq!(get(&[prefix[0], prefix[1], ("PATH_INFO", "/metrics")]), 200);
    assert_eq!(get(&[("SCRIPT_NAME", "/prices"), ("PATH_INFO", "/")]), 200);
    assert_eq!(
        get(&[("SCRIPT_NAME", "/prices"), ("PATH_INFO", "/nope")]),
        404
    );
    // No PATH_INFO (nginx's stock params): DOCUMENT_URI, then REQUEST_URI.
    assert_eq!(get(&[("DOCUMENT_URI", "/metrics")]), 200);
    assert_eq!(get(&[("REQUEST_URI", "/metrics?x=1")]), 200);
}

#[test]
fn a_thousand_clients_vanish_and_their_slots_are_freed() {
    let _heavy = heavy(); // 1,000 sockets
    let t = Tickerd::start(&["--tick-ms", "0", "--heartbeat-s", "0"]);
    let mut streams = Vec::new();
    for i in 0..1000 {
        let mut s = TcpStream::connect(if i % 2 == 0 { t.http() } else { t.scgi() }).unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /ticker HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
        } else {
            s.write_all(&scgi_get("/ticker", &[])).unwrap();
        }
        streams.push(s);
    }
    assert!(
        wait_until(Duration::from_secs(10), || t.metrics()
            ["tickerd_clients{state=\"parked\"}"]
            == 1000.0),
        "all 1000 parked: {:?}",
        t.metrics()
    );
    // Over each protocol, half leave politely (FIN), half crash (RST).
    for (i, s) in streams.into_iter().enumerate() {
        if i % 4 < 2 {
            drop(s);
        } else {
            reset(s);
        }
    }
    let start = Instant::now();
    assert!(
        wait_until(Duration::from_secs(2), || t.clients() == 0.0),
        "clients left after 2 s: {:?}",
        t.metrics()
    );
    eprintln!("1000 clients freed in {:?}", start.elapsed());
    let m = t.metrics();
    assert!(
        m["tickerd_connections_closed_total{reason=\"hangup\"}"]
            + m["tickerd_connections_closed_total{reason=\"io_error\"}"]
            >= 1000.0
    );
}

#[test]
fn bad_scgi_input_does_not_disturb_a_healthy_stream() {
    let t = Tickerd::start(&[
        "--tick-ms",
        "20",
        "--max-scgi-header",
        "4096",
        "--max-publish-bytes",
        "1024",
    ]);
    let mut healthy = scgi_stream(t.scgi(), &scgi_get("/ticker", &[]));
    let mut last = healthy.next_event().unwrap().id();
    let raw = |block: &[u8], body: &[u8]| {
        let mut v = format!("{}:", block.len()).into_bytes();
        v.extend_from_slice(block);
        v.push(b',');
        v.extend_from_slice(body);
        v
    };
    let bad_inputs: Vec<(&str, Vec<u8>)> = vec![
        ("http on the scgi port", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        (
            "random bytes",
            (0..2000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("10^12 netstring", b"1000000000000:CONTENT_LENGTH".to_vec()),
        ("over the header cap", b"5000:".to_vec()),
        (
            "content length not first",
            raw(b"SCGI\x001\x00CONTENT_LENGTH\x000\x00", b""),
        ),
        (
            "duplicate content length",
            raw(
                b"CONTENT_LENGTH\x000\x00SCGI\x001\x00CONTENT_LENGTH\x000\x00",
                b"",
            ),
        ),
        (
            "non-numeric content length",
            raw(b"CONTENT_LENGTH\x00ten\x00SCGI\x001\x00", b""),
        ),
        ("no SCGI=1", raw(b"CONTENT_LENGTH\x000\x00", b"")),
        ("NUL bytes", vec![0u8; 64]),
        (
            "missing comma",
            b"24:CONTENT_LENGTH\x000\x00SCGI\x001\x00;".to_vec(),
        ),
        (
            "body longer than declared",
            raw(b"CONTENT_LENGTH\x002\x00SCGI\x001\x00", b"abcdef"),
        ),
    ];
    for (name, input) in &bad_inputs {
        let mut s = TcpStream::connect(t.scgi()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(input);
        let mut buf = Vec::new();
        // Closed without an answer (or with at most a short refusal): never left hanging.
        let res = s.read_to_end(&mut buf);
        assert!(
            res.is_ok()
                || matches!(res, Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{name}: {res:?}"
        );
        assert!(
            buf.is_empty(),
            "{name}: closed without an answer, got {:?}",
            String::from_utf8_lossy(&buf)
        );
        // The healthy stream keeps its consecutive ids.
        let e = healthy.next_event().expect("healthy stream still flowing");
        assert!(e.id() > last, "{name}");
        last = e.id();
    }
    // A body over the cap is answered 413.
    let mut s = TcpStream::connect(t.scgi()).unwrap();
    s.write_all(&raw(b"CONTENT_LENGTH\x002000\x00SCGI\x001\x00", b""))
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert_eq!(split_response(&buf).0, 413);
    // The stream never skipped: read a few more and check they are consecutive.
    let a = healthy.next_event().unwrap().id();
    let b = healthy.next_event().unwrap().id();
    assert_eq!(b, a + 1);
    // The log is read by a thread of ours: give it a moment to catch up.
    let logged = |what: &str| wait_until(Duration::from_secs(2), || t.log().contains(what));
    assert!(logged("first header is not CONTENT_LENGTH"), "{}", t.log());
    assert!(logged("CONTENT_LENGTH given twice"));
    assert!(logged("beyond CONTENT_LENGTH"));
}

#[test]
fn a_half_close_with_the_request_is_not_a_hangup() {
    // What lighttpd's tcp-fin-propagate (and older lighttpd) do: FIN right after the request.
    let t = Tickerd::start(&["--tick-ms", "30"]);
    let mut s = TcpStream::connect(t.scgi()).unwrap();
    s.write_all(&scgi_get("/ticker", &[])).unwrap();
    half_close(&s);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = SseReader::new(s);
    let first = r.next_event().unwrap().id();
    for n in 1..5 {
        assert_eq!(r.next_event().unwrap().id(), first + n);
    }
    // Once the peer really goes, the next writes fail and its slot is freed.
    drop(r);
    assert!(
        wait_until(Duration::from_secs(3), || t.clients() == 0.0),
        "{:?}",
        t.metrics()
    );
}

#[test]
fn a_stalled_request_is_dropped_at_its_deadline() {
    let t = Tickerd::start(&["--tick-ms", "0", "--request-timeout-s", "1"]);
    // The deadline runs from accept: start the clock before connecting.
    let start = Instant::now();
    let mut s = TcpStream::connect(t.scgi()).unwrap();
    s.write_all(b"70:CONTENT_LENGTH\x000\x00").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(
        t.metrics()["tickerd_connections_closed_total{reason=\"request_timeout\"}"],
        1.0
    );
}

#[test]
fn full_server_answers_503_with_retry_after_then_recovers() {
    let t = Tickerd::start(&["--tick-ms", "0", "--max-clients", "5"]);
    let held: Vec<_> = (0..5)
        .map(|_| http_stream(t.http(), "/ticker", &[]))
        .collect();
    let start = Instant::now();
    let (status, head, _) = http_request(t.http(), "GET /ticker HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 503, "{head}");
    assert!(head.contains("Retry-After: "), "{head}");
    assert!(start.elapsed() < Duration::from_secs(1), "refused fast");
    let mut s = TcpStream::connect(t.scgi()).unwrap();
    s.write_all(&scgi_get("/ticker", &[])).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert_eq!(split_response(&raw).0, 503);
    drop(held);
    // Slots come back as the streams go.
    assert!(wait_until(Duration::from_secs(3), || {
        let (status, _, _) = http_request(t.http(), "GET /metrics HTTP/1.1\r\n\r\n");
        status == 200
    }));
    let mut again = http_stream(t.http(), "/ticker", &[]);
    assert_eq!(again.status, 200);
    assert!(again.next_event().is_some());
    assert!(wait_until(Duration::from_secs(2), || t
        .log()
        .contains("--max-clients 5 reached")));
    // Two refusals above, and maybe some recovery probes while the streams were closing.
    assert!(t.metrics()["tickerd_connections_refused_total{reason=\"full\"}"] >= 2.0);
}

#[test]
fn heartbeats_reach_idle_streams() {
    let t = Tickerd::start(&["--tick-ms", "0", "--heartbeat-s", "1"]);
    let current = t.current_id().to_string();
    let mut s = http_stream(t.http(), "/ticker", &[("Last-Event-ID", &current)]);
    let start = Instant::now();
    set_timeout(s.socket(), Duration::from_millis(3000));
    let mut buf = [0u8; 256];
    let n = s.socket().read(&mut buf).expect("a heartbeat within 3 s");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with(':') && text.ends_with("\n\n"), "{text:?}");
    // The period runs from start-up (or the last tick), not from this stream's start.
    assert!(start.elapsed() < Duration::from_millis(2500));
    assert_eq!(t.metrics()["tickerd_heartbeats_written_total"], 1.0);
}

#[test]
fn scgi_over_a_unix_socket() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;
    let dir = TempDir::new("unix");
    let path = dir.join("scgi.sock");
    let addr = format!("unix:{}", path.display());
    let mut t = Tickerd::start(&[
        "--tick-ms",
        "30",
        "--scgi",
        &addr,
        "--scgi-socket-mode",
        "600",
    ]);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&scgi_get("/ticker", &[])).unwrap();
    let mut r = SseReader::new(s);
    let a = r.next_event().unwrap().id();
    assert_eq!(r.next_event().unwrap().id(), a + 1);
    t.terminate_within(Duration::from_secs(2));
    assert!(!path.exists(), "the socket file is removed on exit");
}

#[test]
fn sigterm_ends_every_stream_and_exits_zero() {
    let mut t = Tickerd::start(&["--tick-ms", "100"]);
    let mut streams: Vec<_> = (0..20)
        .map(|i| {
            if i % 2 == 0 {
                http_stream(t.http(), "/ticker", &[])
            } else {
                scgi_stream(t.scgi(), &scgi_get("/ticker", &[]))
            }
        })
        .collect();
    for s in &mut streams {
        s.next_event().unwrap();
    }
    let took = t.terminate_within(Duration::from_secs(1));
    eprintln!("exited in {took:?}");
    for s in &mut streams {
        set_timeout(s.socket(), Duration::from_secs(1));
        s.read_to_end();
        assert!(s.eof, "each stream ended");
    }
    // SIGHUP is logged and ignored.
    let mut t = Tickerd::start(MANUAL);
    t.signal(libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(2), || t
        .log()
        .contains("SIGHUP ignored")));
    assert!(
        t.wait_exit(Duration::from_millis(200)).is_none(),
        "still running"
    );
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    for (args, word) in [
        (&["--tick-ms", "soon"][..], "--tick-ms"),
        (&["--scgi", "nowhere"][..], "--scgi"),
        (&["--frobnicate"][..], "--frobnicate"),
        (&["--publish-token", "x"][..], "--publish-token"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tickerd"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(word), "{err}");
    }
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_tickerd"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--scgi",
        "--http",
        "--tick-ms",
        "--heartbeat-s",
        "--retry-ms",
        "--max-clients",
        "--publish-token-file",
    ] {
        assert!(help.contains(flag), "--help lists {flag}");
    }
}

#[test]
fn a_second_instance_on_the_same_address_fails_clearly() {
    let t = Tickerd::start(MANUAL);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tickerd"))
        .args(["--http", &t.http().to_string(), "--scgi", "off"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen on") && err.contains(&t.http().to_string()),
        "{err}"
    );
}

#[test]
fn a_long_poll_is_not_held_for_ever() {
    let t = Tickerd::start(&["--tick-ms", "0", "--long-poll-s", "1"]);
    let current = t.current_id();
    let start = Instant::now();
    let req = format!(
        "GET /ticker HTTP/1.1\r\nHost: t\r\nX-Event-Source-Simulate: Long-Polling\r\nLast-Event-ID: {current}\r\n\r\n"
    );
    let (status, _, body) = http_request(t.http(), &req);
    let waited = start.elapsed();
    assert_eq!(status, 200);
    // No tick came: the answer is the event the client has, after the hold time.
    assert_eq!(body, format!("id: {current}\ndata: 100.00\n\n"));
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[test]
fn a_request_sent_with_the_close_is_still_carried_out() {
    // Over a Unix socket a peer that sends and closes raises EPOLLHUP at once.
    use std::os::unix::net::UnixStream;
    let dir = TempDir::new("close");
    let path = dir.join("s.sock");
    let t = Tickerd::start(&[
        "--tick-ms",
        "0",
        "--scgi",
        &format!("unix:{}", path.display()),
    ]);
    let before = t.current_id();
    let auth = format!("Bearer {TOKEN}");
    let req = scgi_bytes(
        &[
            ("REQUEST_METHOD", "POST"),
            ("PATH_INFO", "/publish"),
            ("HTTP_AUTHORIZATION", &auth),
        ],
        "3.30",
    );
    let mut s = UnixStream::connect(&path).unwrap();
    s.write_all(&req).unwrap();
    drop(s);
    assert!(
        wait_until(Duration::from_secs(2), || t.current_id() == before + 1),
        "publish lost"
    );
}

#[test]
fn a_tickerd_whose_starter_is_gone_is_killed() {
    // A test run killed before its Drop could stop tickerd (SIGKILL, a CI timeout) must not
    // leave it running. A thread stands in for the run: it starts tickerd and ends without
    // dropping it.
    let pid = std::thread::spawn(|| {
        let t = Tickerd::start(MANUAL);
        let pid = t.pid();
        std::mem::forget(t);
        pid
    })
    .join()
    .unwrap();
    let mut status = 0;
    let reaped = wait_until(Duration::from_secs(5), || {
        // SAFETY: waitpid(2) on our own child, which nothing else waits for (its Child was
        // forgotten).
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == pid }
    });
    if !reaped {
        // SAFETY: kill(2) on our own child, so as not to leave it behind.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("tickerd outlived the thread that started it");
    }
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "status {status:#x}"
    );
}
