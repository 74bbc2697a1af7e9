//! What every front-end must do in front of tickerd, one function per behaviour, each taking
//! the front-end's launcher. Each returns what a test may want to compare between front-ends
//! (heads, statuses); the differences are asserted in that front-end's own test file.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use super::super::*;
use super::Front;

pub type Start = fn(SocketAddr) -> Front;

/// A stream through the front-end: every event, ids consecutive, each arriving about when
/// tickerd wrote it rather than in a burst. Returns the stream's head.
pub fn stream_arrives_event_by_event(start: Start) -> String {
    let t = Tickerd::start(&["--tick-ms", "200"]);
    let front = start(t.scgi());
    stream_through(front.addr, front.name)
}

/// The checks of `stream_arrives_event_by_event` through the front-end at `front` (`name`
/// for messages), in front of a tickerd ticking every 200 ms.
pub fn stream_through(front: SocketAddr, name: &str) -> String {
    let mut s = http_stream(front, "/ticker", &[]);
    assert_eq!(s.status, 200, "{}", s.head);
    assert_eq!(
        header(&s.head, "Content-Type").as_deref(),
        Some("text/event-stream"),
        "{}",
        s.head
    );
    let mut ids = Vec::new();
    let mut gaps = Vec::new();
    let mut last = Instant::now();
    for _ in 0..8 {
        let e = s
            .next_event()
            .unwrap_or_else(|| panic!("event through {name}"));
        ids.push(e.id());
        gaps.push(last.elapsed());
        last = Instant::now();
    }
    assert_eq!(s.retry, Some(3000));
    for pair in ids.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "{ids:?}");
    }
    // Streamed, not buffered: events come about one tick (200 ms) apart. A front-end that
    // buffered would deliver them in bursts, most gaps near zero. (Not all: a busy machine
    // can delay one read past the next tick.)
    let spaced = gaps[1..]
        .iter()
        .filter(|g| **g >= Duration::from_millis(60))
        .count();
    assert!(spaced >= 4, "events should arrive one by one: {gaps:?}");
    s.head.clone()
}

/// Long polls on one browser connection: each answer is exactly one event; an up-to-date poll
/// waits for the next tick; the connection stays open for the next poll. Returns both heads.
pub fn long_poll_answers_one_event_and_keeps_the_connection(start: Start) -> (String, String) {
    let t = Tickerd::start(&["--tick-ms", "0"]);
    let front = start(t.scgi());
    let mut s = TcpStream::connect(front.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let poll = |s: &mut TcpStream, last: Option<u64>| -> Response {
        let lei = last
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET /ticker HTTP/1.1\r\nHost: t\r\nX-Event-Source-Simulate: Long-Polling\r\n{lei}\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        read_response(s)
    };
    let current = t.current_id();
    let first = poll(&mut s, None);
    assert_eq!(first.status, 200, "{}", first.head);
    assert_eq!(first.body, format!("id: {current}\ndata: 100.00\n\n"));
    // The same connection, up to date this time: held until the next tick, then that event.
    let asked = Instant::now();
    let publisher = std::thread::spawn({
        let http = t.http();
        move || {
            std::thread::sleep(Duration::from_millis(500));
            let body = "2.50";
            let req = format!(
                "POST /publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            http_request(http, &req).0
        }
    });
    let second = poll(&mut s, Some(current));
    assert_eq!(second.status, 200, "{}", second.head);
    assert!(
        asked.elapsed() >= Duration::from_millis(400),
        "answered before the tick: {second:?}"
    );
    assert_eq!(second.body, format!("id: {}\ndata: 2.50\n\n", current + 1));
    assert_eq!(publisher.join().unwrap(), 200);
    // Nothing follows the event: no second event and no close, until the browser asks again.
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut extra = [0u8; 64];
    match s.read(&mut extra) {
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
        Ok(n) => panic!(
            "after the answer, {n} bytes or a close: {:?}",
            String::from_utf8_lossy(&extra[..n])
        ),
    }
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let third = poll(&mut s, Some(current));
    assert_eq!(third.body, format!("id: {}\ndata: 2.50\n\n", current + 1));
    (first.head, second.head)
}

/// `Last-Event-ID` passes through: the current id waits for the next tick, another id gets
/// the current event at once, and tickerd counts both as reconnections.
pub fn last_event_id_passes_through(start: Start) {
    let t = Tickerd::start(&["--tick-ms", "0"]);
    let front = start(t.scgi());
    last_event_id_through(&t, front.addr);
}

/// The checks of `last_event_id_passes_through` through the front-end at `front`, in front
/// of `t` (which must not tick).
pub fn last_event_id_through(t: &Tickerd, front: SocketAddr) {
    let current = t.current_id();
    let mut stale = http_stream(
        front,
        "/ticker",
        &[("Last-Event-ID", &(current - 3).to_string())],
    );
    assert_eq!(stale.next_event().unwrap().id(), current);
    let mut s = http_stream(front, "/ticker", &[("Last-Event-ID", &current.to_string())]);
    assert_eq!(s.status, 200, "{}", s.head);
    set_timeout(s.socket(), Duration::from_millis(500));
    assert_eq!(s.next_event(), None, "up to date: nothing before the tick");
    set_timeout(s.socket(), Duration::from_secs(10));
    assert_eq!(t.publish("1.23").0, 200);
    assert_eq!(s.next_event().unwrap().id(), current + 1);
    assert_eq!(stale.next_event().unwrap().id(), current + 1);
    assert_eq!(
        t.metrics()["tickerd_requests_with_last_event_id_total"],
        2.0
    );
}

/// Browsers that leave, half of them cleanly (FIN) and half with a reset, free their slots
/// in tickerd within `within`. tickerd ticks every 200 ms with a 1 s heartbeat, so a
/// front-end that notices only at tickerd's writes has writes to notice at.
pub fn leaving_browsers_free_their_slots(start: Start, within: Duration) {
    let t = Tickerd::start(&["--tick-ms", "200", "--heartbeat-s", "1"]);
    let front = start(t.scgi());
    let took = browsers_leave(&t, front.addr, within);
    eprintln!("{}: 40 browsers' slots freed in {took:?}", front.name);
}

/// 40 browsers stream through the front-end at `front` in front of `t` (which must tick or
/// send heartbeats), then leave, half with a FIN and half with a reset: every backend slot
/// is free within `within`. Returns how long that took.
pub fn browsers_leave(t: &Tickerd, front: SocketAddr, within: Duration) -> Duration {
    let mut streams: Vec<_> = (0..40)
        .map(|_| http_stream(front, "/ticker", &[]))
        .collect();
    for s in &mut streams {
        s.next_event().expect("streaming");
    }
    assert!(
        wait_until(Duration::from_secs(5), || t.clients() == 40.0),
        "{:?}",
        t.metrics()
    );
    for (i, mut s) in streams.into_iter().enumerate() {
        let socket = s.socket().try_clone().unwrap();
        drop(s);
        if i % 2 == 0 {
            drop(socket);
        } else {
            reset(socket);
        }
    }
    let start = Instant::now();
    assert!(
        wait_until(within, || t.clients() == 0.0),
        "backend slots still held: {:?}",
        t.metrics()
    );
    start.elapsed()
}

/// A parked stream (up to date, no ticks) whose browser leaves cleanly, with tickerd's
/// heartbeat every `heartbeat_s` seconds (0: off): freed within `within`.
pub fn a_parked_stream_is_freed(start: Start, heartbeat_s: &str, within: Duration) {
    let t = Tickerd::start(&["--tick-ms", "0", "--heartbeat-s", heartbeat_s]);
    let front = start(t.scgi());
    let current = t.current_id().to_string();
    let s = http_stream(front.addr, "/ticker", &[("Last-Event-ID", &current)]);
    assert_eq!(s.status, 200, "{}", s.head);
    assert!(wait_until(Duration::from_secs(5), || t.metrics()
        ["tickerd_clients{state=\"parked\"}"]
        == 1.0));
    drop(s);
    let left = Instant::now();
    assert!(
        wait_until(within, || t.clients() == 0.0),
        "{:?}",
        t.metrics()
    );
    eprintln!("{}: parked slot freed in {:?}", front.name, left.elapsed());
}

/// The page, /metrics and 404s at the root and under /prices/, and /prices redirected to
/// /prices/. Returns the redirect's Location.
pub fn page_at_the_root_and_under_the_prefix(start: Start) -> String {
    let t = Tickerd::start(&["--tick-ms", "0"]);
    let front = start(t.scgi());
    for path in ["/", "/prices/"] {
        let r = get(front.addr, path);
        assert_eq!(r.status, 200, "{path}: {}", r.head);
        assert!(r.body.contains("EventSource"), "{path}");
        assert!(
            r.header("Content-Type").unwrap().starts_with("text/html"),
            "{}",
            r.head
        );
    }
    for path in ["/metrics", "/prices/metrics"] {
        let r = get(front.addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body.contains("tickerd_event_id"), "{path}");
    }
    for path in ["/prices/nope", "/nope", "/pricesfoo"] {
        assert_eq!(get(front.addr, path).status, 404, "{path}");
    }
    let r = get(front.addr, "/prices");
    assert_eq!(r.status, 301, "{}", r.head);
    let location = r.header("Location").expect("Location");
    assert!(location.ends_with("/prices/"), "{location}");
    location
}

/// Publishing through the front-end with the token reaches a stream under the prefix; a
/// wrong or missing token is refused by tickerd (so the header does pass through).
pub fn publish_through_the_front_end(start: Start) {
    let t = Tickerd::start(&["--tick-ms", "0"]);
    let front = start(t.scgi());
    let current = t.current_id().to_string();
    let mut s = http_stream(front.addr, "/prices/ticker", &[("Last-Event-ID", &current)]);
    assert_eq!(s.status, 200, "{}", s.head);
    for (auth, status) in [("", 401), ("Authorization: Bearer wrong\r\n", 401)] {
        let r = request(front.addr, "POST", "/prices/publish", auth, "1.00");
        assert_eq!(r.status, status, "{auth:?}: {r:?}");
    }
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let r = request(front.addr, "POST", "/prices/publish", &auth, "price=77.70");
    assert_eq!(r.status, 200, "{r:?}");
    let e = s.next_event().unwrap();
    assert_eq!(
        (e.id().to_string(), e.data.as_str()),
        (r.body.lines().next().unwrap().to_string(), "77.70")
    );
    let r = request(front.addr, "POST", "/publish", &auth, "88.80");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.next_event().unwrap().data, "88.80");
    assert_eq!(t.metrics()["tickerd_publishes_total{result=\"ok\"}"], 2.0);
}

/// While tickerd is down the front-end answers an error, whose status this returns; the
/// first request after tickerd is back is served.
pub fn backend_down_then_back(start: Start) -> u16 {
    let backend = ReservedPort::new();
    let front = start(backend.addr);
    let down = get(front.addr, "/ticker");
    assert!(down.status >= 500, "{down:?}");
    let addr = backend.release();
    let t = Tickerd::start(&["--tick-ms", "50", "--scgi", &addr.to_string()]);
    let r = get(front.addr, "/metrics");
    assert_eq!(
        r.status, 200,
        "the first request once tickerd is back: {r:?}"
    );
    let mut s = http_stream(front.addr, "/ticker", &[]);
    assert!(s.next_event().is_some());
    drop(t);
    down.status
}

/// A front-end killed with streams open: tickerd frees every one of them; a new front-end
/// serves again.
pub fn front_end_killed_frees_every_stream(start: Start) {
    let t = Tickerd::start(&["--tick-ms", "0", "--heartbeat-s", "0"]);
    let mut front = start(t.scgi());
    let _streams: Vec<_> = (0..100)
        .map(|_| http_stream(front.addr, "/ticker", &[]))
        .collect();
    assert!(
        wait_until(Duration::from_secs(10), || t.clients() == 100.0),
        "{:?}",
        t.metrics()
    );
    front.kill();
    assert!(
        wait_until(Duration::from_secs(5), || t.clients() == 0.0),
        "{:?}",
        t.metrics()
    );
    let again = start(t.scgi());
    let current = t.current_id();
    let mut s = http_stream(
        again.addr,
        "/ticker",
        &[("Last-Event-ID", &(current - 1).to_string())],
    );
    assert_eq!(s.next_event().unwrap().id(), current);
}

/// `n` streams open at once through the front-end, each getting its first event: the
/// front-end's shipped limits (for Apache, worker threads) allow that many.
pub fn many_streams_at_once(start: Start, n: usize) {
    let t = Tickerd::start(&["--tick-ms", "0", "--heartbeat-s", "0"]);
    let front = start(t.scgi());
    let current = t.current_id();
    let mut streams = Vec::new();
    for i in 0..n {
        let mut s = http_stream(front.addr, "/ticker", &[]);
        assert_eq!(s.status, 200, "stream {i}: {}", s.head);
        assert_eq!(s.next_event().map(|e| e.id()), Some(current), "stream {i}");
        streams.push(s);
    }
    assert!(
        wait_until(Duration::from_secs(5), || t.clients() == n as f64),
        "{:?}",
        t.metrics()
    );
    assert_eq!(t.publish("5.55").0, 200);
    for (i, s) in streams.iter_mut().enumerate() {
        assert_eq!(s.next_event().map(|e| e.data), Some("5.55".into()), "{i}");
    }
}

/// tickerd on a Unix socket (mode 666: the front-end's workers may run as another user),
/// the front-end started by `start` with that socket's path: a stream, the page and a
/// publish all reach tickerd over the socket.
pub fn over_a_unix_socket(start: impl FnOnce(&Path) -> Front) {
    let dir = TempDir::new("unix");
    let socket = dir.join("scgi.sock");
    let scgi = format!("unix:{}", socket.display());
    let t = Tickerd::start(&[
        "--tick-ms",
        "50",
        "--scgi",
        &scgi,
        "--scgi-socket-mode",
        "666",
    ]);
    let front = start(&socket);
    let mut s = http_stream(front.addr, "/prices/ticker", &[]);
    assert_eq!(s.status, 200, "{}", s.head);
    let first = s.next_event().expect("event over the Unix socket").id();
    assert_eq!(s.next_event().unwrap().id(), first + 1);
    let page = get(front.addr, "/");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("<html"), "{page:?}");
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let r = request(front.addr, "POST", "/prices/publish", &auth, "77.70");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        t.metrics()["tickerd_connections_accepted_total{listener=\"scgi\"}"],
        3.0
    );
}

/// The many-symbol universe the symbol checks run on.
pub const FIVE_SYMBOLS: &str = "AAPL=189.20,MSFT=415.30,BRK.B=412.80,BF-B=55,NVDA=121.70";

/// Symbols through a front-end started by `start` in front of a tickerd of five symbols
/// (see [`symbols_through`]).
pub fn symbols_pass_through(start: Start) {
    let t = Tickerd::start(&["--tick-ms", "0", "--symbols", FIVE_SYMBOLS]);
    let front = start(t.scgi());
    symbols_through(&t, front.addr);
}

/// Through the front-end at `front`, at the root and under `/prices/`: the `symbols` query
/// reaches tickerd (URL-encoded commas too), a stream of chosen symbols starts with their
/// snapshot in ascending id order, `Last-Event-ID` resumes exactly the symbols updated
/// since, an up-to-date stream waits for its next update, a long poll carries every due
/// event, and the 400 and 404 refusals come through as they are. `t` must not tick and
/// must carry [`FIVE_SYMBOLS`].
pub fn symbols_through(t: &Tickerd, front: SocketAddr) {
    let events = |s: &mut SseReader<TcpStream>, n: usize| -> Vec<(u64, String)> {
        (0..n)
            .map(|_| {
                let e = s.next_event().expect("an event");
                let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
                (e.id(), v["symbol"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let names = |got: &[(u64, String)]| got.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>();
    for prefix in ["", "/prices"] {
        let path = format!("{prefix}/ticker?symbols=nvda%2Cbf-b,MSFT");
        let mut s = http_stream(front, &path, &[]);
        assert_eq!(s.status, 200, "{path}: {}", s.head);
        let snapshot = events(&mut s, 3);
        assert!(snapshot.windows(2).all(|w| w[0].0 < w[1].0), "{snapshot:?}");
        let mut sorted = names(&snapshot);
        sorted.sort();
        assert_eq!(sorted, ["BF-B", "MSFT", "NVDA"], "{path}");
        // Away for two batches; back with the last id it had. (Other values each pass: a
        // publish that changes nothing is sent to no one.)
        let k = if prefix.is_empty() { 0 } else { 10 };
        let (status, body) = t.publish(&format!("NVDA={}&AAPL={}", k + 1, k + 2));
        assert_eq!(status, 200, "{body}");
        let after: u64 = body.lines().next().unwrap().parse().unwrap();
        let batch = format!("BF-B={}\nMSFT={}\nBRK.B={}", k + 3, k + 4, k + 5);
        assert_eq!(t.publish(&batch).0, 200);
        let mut back = http_stream(front, &path, &[("Last-Event-ID", &after.to_string())]);
        let got = events(&mut back, 2);
        assert_eq!(
            got,
            [
                (after + 1, "BF-B".to_string()),
                (after + 2, "MSFT".to_string())
            ],
            "{path}: resumed after {after}"
        );
        // Up to date: it waits for one of its symbols to change.
        let newest = t.current_id();
        let mut current = http_stream(front, &path, &[("Last-Event-ID", &newest.to_string())]);
        set_timeout(current.socket(), Duration::from_millis(400));
        assert_eq!(current.next_event(), None, "{path}: up to date");
        set_timeout(current.socket(), Duration::from_secs(10));
        let (_, body) = t.publish(&format!("AAPL={}&NVDA={}", k + 6, k + 7));
        let id: u64 = body.lines().next().unwrap().parse().unwrap();
        assert_eq!(events(&mut current, 1), [(id, "NVDA".to_string())]);
        assert_eq!(events(&mut back, 1), [(id, "NVDA".to_string())]);
        // A long poll: every due event, in one answer.
        let mut c = TcpStream::connect(front).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nX-Event-Source-Simulate: Long-Polling\r\n\
             Last-Event-ID: {after}\r\n\r\n"
        );
        c.write_all(req.as_bytes()).unwrap();
        let r = read_response(&mut c);
        assert_eq!(r.status, 200, "{}", r.head);
        let ids: Vec<&str> = r
            .body
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .collect();
        assert_eq!(ids.len(), 3, "BF-B, MSFT, NVDA: {}", r.body);
        // Refusals come through with their status and line.
        for (query, status, says) in [
            ("symbols=AAPL,NOPE", 404, "symbols: unknown: NOPE"),
            ("symbols=AA%20PL", 400, "symbols: \"AA PL\" is not a symbol"),
        ] {
            let mut c = TcpStream::connect(front).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let req = format!("GET {prefix}/ticker?{query} HTTP/1.1\r\nHost: t\r\n\r\n");
            c.write_all(req.as_bytes()).unwrap();
            let r = read_response(&mut c);
            assert_eq!(r.status, status, "{prefix}/ticker?{query}: {}", r.head);
            assert!(r.body.starts_with(says), "{query}: {}", r.body);
        }
    }
}

/// Publishes back to back on one kept-alive connection, in [`publishes_on_one_connection`].
pub const BACK_TO_BACK: u64 = 200;

/// What [`publishes_on_one_connection`] saw.
pub struct KeptAlive {
    /// Each publish's answer head.
    pub heads: Vec<String>,
    /// Connections tickerd accepted on its HTTP and SCGI listeners from just before the
    /// publishes to just after (scraped on the publishing connection itself, so the last
    /// scrape counts when it went through a front-end).
    pub accepted_http: f64,
    pub accepted_scgi: f64,
}

/// The price of publish `i`: distinct, with two decimals as tickerd writes it.
fn price(i: u64) -> String {
    format!("{}.{:02}", 100 + i / 100, i % 100)
}

/// A feed handler's connection: [`BACK_TO_BACK`] publishes, each sent when the last was
/// answered, on one TCP connection to `addr` (tickerd's HTTP listener, or a front-end in
/// front of `t`): each is answered 200 with the next id, and a stream through `addr` gets
/// every one, in order. Any close of that connection on the way fails the test (the next
/// write or read would).
pub fn publishes_on_one_connection(t: &Tickerd, addr: SocketAddr) -> KeptAlive {
    let current = t.current_id();
    let mut stream = http_stream(addr, "/ticker", &[("Last-Event-ID", &current.to_string())]);
    assert_eq!(stream.status, 200, "{}", stream.head);
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let before = metrics_on(&mut conn);
    let mut heads = Vec::new();
    for i in 1..=BACK_TO_BACK {
        let request = publish_request("/publish", &price(i));
        if let Err(e) = conn.write_all(request.as_bytes()) {
            panic!("publish {i} of {BACK_TO_BACK}: {e}");
        }
        let r = try_read_response(&mut conn)
            .unwrap_or_else(|e| panic!("publish {i} of {BACK_TO_BACK}: {e}"));
        assert_eq!(r.status, 200, "publish {i}: {r:?}");
        assert_eq!(
            r.body,
            format!("{}\napplied 1\nunchanged 0\n", current + i),
            "publish {i}: the id and the counts"
        );
        heads.push(r.head);
    }
    let after = metrics_on(&mut conn);
    let accepted = |listener: &str| {
        let name = format!("tickerd_connections_accepted_total{{listener=\"{listener}\"}}");
        after[&name] - before[&name]
    };
    for i in 1..=BACK_TO_BACK {
        let e = stream
            .next_event()
            .unwrap_or_else(|| panic!("event {i} of {BACK_TO_BACK} on the stream"));
        assert_eq!((e.id(), e.data), (current + i, price(i)));
    }
    KeptAlive {
        heads,
        accepted_http: accepted("http"),
        accepted_scgi: accepted("scgi"),
    }
}

/// [`publishes_on_one_connection`] through the front-end `start` starts: it keeps the
/// publisher's connection (no answer says close), and opens an SCGI connection to tickerd
/// for each request (the last scrape's included).
pub fn publishes_on_one_kept_connection_through(start: Start) {
    let t = Tickerd::start(&["--tick-ms", "0"]);
    let front = start(t.scgi());
    publishes_through(&t, front.addr, front.name);
}

/// The checks of [`publishes_on_one_kept_connection_through`] through the front-end at
/// `front` (`name` for messages).
pub fn publishes_through(t: &Tickerd, front: SocketAddr, name: &str) {
    let kept = publishes_on_one_connection(t, front);
    for head in &kept.heads {
        let connection = header(head, "Connection").unwrap_or_default();
        assert!(
            !connection.eq_ignore_ascii_case("close"),
            "{name} closes the publisher's connection: {head}"
        );
    }
    assert_eq!(
        (kept.accepted_http, kept.accepted_scgi),
        (0.0, BACK_TO_BACK as f64 + 1.0),
        "{name}: one SCGI connection per request"
    );
}
