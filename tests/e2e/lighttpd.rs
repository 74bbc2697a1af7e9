//! End to end: the real lighttpd, started from the shipped `conf/lighttpd.conf`, in front of
//! the real tickerd over SCGI. Needs lighttpd installed (`.ci/run` installs it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::fronts::checks;
use crate::support::*;

fn get(front: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseReader<TcpStream> {
    http_stream(front, path, headers)
}

/// How lighttpd reaches tickerd's SCGI listener. The cases that matter to a browser run
/// over both: one function per case, one `#[test]` per case and backend.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Tcp,
    /// tickerd with `--scgi unix:PATH`, lighttpd with `TICKERD_SCGI_SOCKET=PATH`.
    Unix,
}

/// tickerd with lighttpd in front of it. Fields drop in order: lighttpd first, so tickerd
/// never sees its front-end's connections refused, then tickerd, then the socket's directory.
struct Stack {
    front: Lighttpd,
    t: Tickerd,
    _dir: Option<TempDir>,
}

impl Backend {
    fn start(self, args: &[&str]) -> Stack {
        match self {
            Backend::Tcp => {
                let t = Tickerd::start(args);
                let front = Lighttpd::start(t.scgi());
                Stack {
                    front,
                    t,
                    _dir: None,
                }
            }
            Backend::Unix => {
                let dir = TempDir::new("lighttpd-unix");
                let path = dir.join("scgi.sock");
                let scgi = format!("unix:{}", path.display());
                let mut all = args.to_vec();
                all.extend(["--scgi", &scgi]);
                let t = Tickerd::start(&all);
                assert!(path.exists(), "tickerd made no socket at {path:?}");
                assert!(
                    t.scgi.is_none(),
                    "no SCGI over TCP: lighttpd must use the socket"
                );
                let front =
                    Lighttpd::start_with(&[("TICKERD_SCGI_SOCKET", path.display().to_string())]);
                Stack {
                    front,
                    t,
                    _dir: Some(dir),
                }
            }
        }
    }
}

#[test]
fn stream_through_lighttpd_arrives_event_by_event() {
    stream_arrives_event_by_event(Backend::Tcp);
}

#[test]
fn stream_over_a_unix_socket_arrives_event_by_event() {
    stream_arrives_event_by_event(Backend::Unix);
}

fn stream_arrives_event_by_event(backend: Backend) {
    let stack = backend.start(&["--tick-ms", "200"]);
    checks::stream_through(stack.front.addr, "lighttpd");
}

#[test]
fn page_and_metrics_through_lighttpd_at_the_root_and_under_a_prefix() {
    let t = Tickerd::start(&["--tick-ms", "0"]);
    let front = Lighttpd::start(t.scgi());
    for path in ["/", "/prices/"] {
        let (status, head, body) = http_request(
            front.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status, 200, "{path}: {head}");
        assert!(body.contains("EventSource"), "{path}");
    }
    for path in ["/metrics", "/prices/metrics"] {
        let (status, _, body) = http_request(
            front.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status, 200, "{path}");
        assert!(body.contains("tickerd_event_id"), "{path}");
    }
    let (status, _, _) = http_request(
        front.addr,
        "GET /prices/nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 404);
    // Without its slash the prefix redirects, so the page's relative URLs resolve under it.
    let (status, head, _) = http_request(
        front.addr,
        "GET /prices HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 301, "{head}");
    assert!(head.contains("Location: /prices/"), "{head}");
}

#[test]
fn stream_under_the_prefix_and_publishing_through_lighttpd() {
    let t = Tickerd::start(&["--tick-ms", "0"]);
    let front = Lighttpd::start(t.scgi());
    let current = t.current_id().to_string();
    let mut s = get(front.addr, "/prices/ticker", &[("Last-Event-ID", &current)]);
    assert_eq!(s.status, 200);
    let body = "price=77.70";
    let req = format!(
        "POST /prices/publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, _, answer) = http_request(front.addr, &req);
    assert_eq!(status, 200, "{answer}");
    let e = s.next_event().unwrap();
    assert_eq!(
        (e.id().to_string(), e.data.as_str()),
        (answer.lines().next().unwrap().to_string(), "77.70")
    );
}

#[test]
fn publishes_back_to_back_through_lighttpd_on_one_kept_connection() {
    let t = Tickerd::start(&["--tick-ms", "0"]);
    let front = Lighttpd::start(t.scgi());
    checks::publishes_through(&t, front.addr, "lighttpd");
}

#[test]
fn last_event_id_through_lighttpd() {
    last_event_id(Backend::Tcp);
}

#[test]
fn last_event_id_over_a_unix_socket() {
    last_event_id(Backend::Unix);
}

#[test]
fn symbols_and_their_resume_through_lighttpd() {
    symbols(Backend::Tcp);
}

#[test]
fn symbols_and_their_resume_over_a_unix_socket() {
    symbols(Backend::Unix);
}

fn symbols(backend: Backend) {
    let stack = backend.start(&["--tick-ms", "0", "--symbols", checks::FIVE_SYMBOLS]);
    checks::symbols_through(&stack.t, stack.front.addr);
}

fn last_event_id(backend: Backend) {
    let stack = backend.start(&["--tick-ms", "0"]);
    checks::last_event_id_through(&stack.t, stack.front.addr);
}

#[test]
fn long_poll_through_lighttpd_keeps_the_browser_connection() {
    long_poll_keeps_the_browser_connection(Backend::Tcp);
}

#[test]
fn long_poll_over_a_unix_socket_keeps_the_browser_connection() {
    long_poll_keeps_the_browser_connection(Backend::Unix);
}

fn long_poll_keeps_the_browser_connection(backend: Backend) {
    let stack = backend.start(&["--tick-ms", "0"]);
    let Stack { front, t, .. } = &stack;
    let mut s = TcpStream::connect(front.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let poll = |s: &mut TcpStream, last: Option<u64>| -> (u16, String, String) {
        let lei = last
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET /ticker HTTP/1.1\r\nHost: t\r\nX-Event-Source-Simulate: Long-Polling\r\n{lei}\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        let r = read_response(s);
        (r.status, r.head, r.body)
    };
    let current = t.current_id();
    let (status, head, body) = poll(&mut s, None);
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, format!("id: {current}\ndata: 100.00\n\n"));
    // The same browser connection, up to date this time: held until the next tick.
    let publisher = std::thread::spawn({
        let http = t.http();
        move || {
            std::thread::sleep(Duration::from_millis(300));
            let body = "2.50";
            let req = format!(
                "POST /publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            http_request(http, &req).0
        }
    });
    let start = Instant::now();
    let (status, _, body) = poll(&mut s, Some(current));
    assert_eq!(status, 200);
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "held until the tick"
    );
    assert_eq!(body, format!("id: {}\ndata: 2.50\n\n", current + 1));
    assert_eq!(publisher.join().unwrap(), 200);
}

#[test]
fn browsers_that_leave_free_their_backend_slot() {
    browsers_that_leave_free_their_slot(Backend::Tcp);
}

#[test]
fn browsers_that_leave_free_their_slot_over_a_unix_socket() {
    browsers_that_leave_free_their_slot(Backend::Unix);
}

fn browsers_that_leave_free_their_slot(backend: Backend) {
    let stack = backend.start(&["--tick-ms", "200", "--heartbeat-s", "1"]);
    let took = checks::browsers_leave(&stack.t, stack.front.addr, Duration::from_secs(5));
    eprintln!("40 browsers' slots freed in {took:?}");
}

#[test]
fn a_silent_parked_stream_is_freed_by_the_heartbeat() {
    // No ticks at all: lighttpd learns that a browser left (FIN) only when it next writes to
    // it, so the heartbeat is what frees the slot.
    let t = Tickerd::start(&["--tick-ms", "0", "--heartbeat-s", "1"]);
    let front = Lighttpd::start(t.scgi());
    let current = t.current_id().to_string();
    let s = get(front.addr, "/ticker", &[("Last-Event-ID", &current)]);
    assert!(wait_until(Duration::from_secs(3), || t.metrics()
        ["tickerd_clients{state=\"parked\"}"]
        == 1.0));
    drop(s);
    assert!(
        wait_until(Duration::from_secs(5), || t.clients() == 0.0),
        "{:?}",
        t.metrics()
    );
}

#[test]
fn backend_down_gives_503_and_coming_back_serves_again() {
    let backend = ReservedPort::new();
    let front = Lighttpd::start(backend.addr);
    let (status, _, _) = http_request(
        front.addr,
        "GET /ticker HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 503);
    let addr = backend.release();
    let t = Tickerd::start(&["--tick-ms", "50", "--scgi", &addr.to_string()]);
    assert!(
        wait_until(Duration::from_secs(5), || {
            let mut s = TcpStream::connect(front.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut raw = Vec::new();
            let _ = s.read_to_end(&mut raw);
            split_response(&raw).0 == 200
        }),
        "lighttpd serves again once tickerd is back"
    );
    let mut s = get(front.addr, "/ticker", &[]);
    assert!(s.next_event().is_some());
    drop(t);
}

#[test]
fn lighttpd_dying_with_2000_streams_frees_every_backend_connection() {
    let _heavy = heavy(); // 2,000 streams
    let t = Tickerd::start(&["--tick-ms", "0", "--heartbeat-s", "0"]);
    let mut front = Lighttpd::start(t.scgi());
    let _streams: Vec<_> = (0..2000).map(|_| get(front.addr, "/ticker", &[])).collect();
    assert!(
        wait_until(Duration::from_secs(10), || t.clients() == 2000.0),
        "{:?}",
        t.metrics()
    );
    front.kill();
    assert!(
        wait_until(Duration::from_secs(2), || t.clients() == 0.0),
        "{:?}",
        t.metrics()
    );
    // Start it again: browsers can reconnect through it.
    let again = Lighttpd::start(t.scgi());
    let current = t.current_id();
    let mut s = get(
        again.addr,
        "/ticker",
        &[("Last-Event-ID", &(current - 1).to_string())],
    );
    assert_eq!(s.status, 200);
    assert_eq!(s.next_event().unwrap().id(), current);
}

#[test]
fn a_browser_half_close_does_not_end_the_stream() {
    // A client that shuts its write side after the request (curl's --no-buffer does not, some
    // proxies do): lighttpd 1.4.69 keeps the stream, and tickerd must not take any FIN that
    // lighttpd passes on (tcp-fin-propagate) for a hang-up.
    let t = Tickerd::start(&["--tick-ms", "50"]);
    let front = Lighttpd::start(t.scgi());
    let mut s = TcpStream::connect(front.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /ticker HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    half_close(&s);
    let mut r = SseReader::new(s);
    assert_eq!(r.status, 200);
    let first = r.next_event().expect("first event").id();
    for n in 1..5 {
        assert_eq!(r.next_event().expect("still streaming").id(), first + n);
    }
}
