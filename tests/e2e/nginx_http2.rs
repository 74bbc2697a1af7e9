//! HTTP/2 through nginx: the real nginx 1.22 from the shipped `conf/nginx.conf`, with the
//! `listen ... ssl http2` and `listen ... http2` (h2c) lines its header documents written into
//! its listen snippet, in front of the real tickerd. Where lighttpd 1.4.69 caps a connection
//! at 8 streams (`http2`), nginx allows 128, so many tabs share one connection.
//! Needs nginx-light, curl, openssl and nghttp2-client.

use std::time::{Duration, Instant};

use crate::support::fronts::nginx;
use crate::support::h2::frames::{self, H2c};
use crate::support::h2::*;
use crate::support::*;

/// nginx's default `http2_max_concurrent_streams`, which the shipped file keeps.
const NGINX_STREAMS: u32 = 128;

/// What one curl run gave.
struct CurlRun {
    code: Option<i32>,
    /// `%{http_version}`: "2", "1.1".
    version: String,
    /// The `id:` values, with their arrival times.
    events: Vec<(Instant, u64)>,
    lines: Vec<String>,
}

/// Runs curl with `args`, asking it to print the HTTP version it used.
fn curl(args: &[&str]) -> CurlRun {
    let mut all = vec!["-w", "\nhttp_version=%{http_version}\n"];
    all.extend_from_slice(args);
    let (code, lines, stderr) = Curl::spawn(&all).finish(Duration::from_secs(30));
    let version = lines
        .iter()
        .find_map(|(_, l)| l.strip_prefix("http_version="))
        .unwrap_or_else(|| panic!("curl {args:?}: no version: {stderr}"))
        .to_string();
    let events = lines
        .iter()
        .filter_map(|(at, l)| Some((*at, l.strip_prefix("id: ")?.parse().ok()?)))
        .collect();
    let lines = lines.into_iter().map(|(_, l)| l).collect();
    CurlRun {
        code,
        version,
        events,
        lines,
    }
}

/// Streams `url` for 3 s over HTTP/2 and checks the events came one by one, with
/// consecutive ids: nginx passes each of tickerd's writes on as it comes over h2 too.
fn assert_streams_over_h2(url: &str, http2: &[&str]) {
    let mut args = vec!["-N", "--max-time", "3"];
    args.extend_from_slice(http2);
    args.push(url);
    let run = curl(&args);
    // 28: curl's --max-time ended the stream, which never ends by itself.
    assert_eq!(run.code, Some(28), "{url}");
    assert_eq!(run.version, "2", "{url}: not HTTP/2");
    let events = run.events;
    let ids: Vec<u64> = events.iter().map(|(_, id)| *id).collect();
    assert!(ids.len() >= 10, "{url}: {ids:?}");
    assert_consecutive(&ids, url);
    // Streamed, not buffered: ticks are 100 ms apart, and so are most arrivals.
    let spaced = events
        .windows(2)
        .filter(|w| w[1].0 - w[0].0 >= Duration::from_millis(50))
        .count();
    assert!(spaced >= ids.len() / 2, "{url}: events came in bursts");
}

/// GETs the page; returns the HTTP version curl used.
fn page_version(url: &str, http: &[&str]) -> String {
    let mut args = vec!["--max-time", "10"];
    args.extend_from_slice(http);
    args.push(url);
    let run = curl(&args);
    assert_eq!(run.code, Some(0), "{url}");
    assert!(
        run.lines.iter().any(|l| l.contains("EventSource")),
        "{url}: not the page"
    );
    run.version
}

fn text(c: &H2c, id: u32) -> String {
    String::from_utf8_lossy(&c.stream(id).data).to_string()
}

/// Pumps `c` until every stream in `ids` has at least `events` events (or 30 s pass).
fn pump_until_events(c: &mut H2c, ids: &[u32], events: usize) {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end && ids.iter().any(|id| sse_ids(&text(c, *id)).len() < events) {
        c.pump(Instant::now() + Duration::from_millis(200));
    }
}

/// Asserts each stream was answered 200, not reset, and got at least `events` events with
/// consecutive ids.
fn assert_served(c: &H2c, ids: &[u32], events: usize) {
    for id in ids {
        let s = c.stream(*id);
        assert_eq!(s.head, Some(0x88), "stream {id}: no 200: {s:?}");
        assert_eq!(s.reset, None, "stream {id}");
        let got = sse_ids(&text(c, *id));
        assert!(got.len() >= events, "stream {id}: {got:?}");
        assert_consecutive(&got, &format!("stream {id}"));
    }
}

#[test]
fn page_stream_and_publish_over_tls_negotiate_h2_through_nginx() {
    let t = Tickerd::start(&["--tick-ms", "100"]);
    let cert = TestCert::new();
    let n = nginx::start_h2(t.scgi(), &cert, "");
    let ca = cert.cert.display().to_string();
    let h2 = ["--http2", "--cacert", &ca];
    let base = format!("https://127.0.0.1:{}", n.tls.port());
    assert_eq!(page_version(&format!("{base}/"), &h2), "2");
    assert_streams_over_h2(&format!("{base}/ticker"), &h2);
    assert_streams_over_h2(&format!("{base}/prices/ticker"), &h2);
    // The request body reaches tickerd over h2 as well.
    let auth = format!("Authorization: Bearer {TOKEN}");
    let url = format!("{base}/publish");
    let mut publish = h2.to_vec();
    publish.extend([
        "--max-time",
        "10",
        "-H",
        &auth,
        "--data-binary",
        "123.45",
        &url,
    ]);
    let run = curl(&publish);
    assert_eq!(
        (run.code, run.version.as_str()),
        (Some(0), "2"),
        "{:?}",
        run.lines
    );
    assert_eq!(t.metrics()["tickerd_publishes_total{result=\"ok\"}"], 1.0);
    // The same TLS port still serves HTTP/1.1 to a client that does not offer h2.
    assert_eq!(
        page_version(&format!("{base}/"), &["--http1.1", "--cacert", &ca]),
        "1.1"
    );
    // nghttp says what ALPN chose, and shows nginx's SETTINGS.
    let out = std::process::Command::new(tool("nghttp", "nghttp2-client"))
        .args(["-v", "-n", "-t", "10", &format!("{base}/")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("The negotiated protocol: h2"), "{text}");
    assert!(
        text.contains(&format!(
            "SETTINGS_MAX_CONCURRENT_STREAMS(0x03):{NGINX_STREAMS}"
        )),
        "{text}"
    );
}

#[test]
fn page_and_stream_over_prior_knowledge_h2c_through_nginx() {
    let t = Tickerd::start(&["--tick-ms", "100"]);
    let cert = TestCert::new();
    let n = nginx::start_h2(t.scgi(), &cert, "");
    let prior = ["--http2-prior-knowledge"];
    let base = format!("http://{}", n.h2c);
    assert_eq!(page_version(&format!("{base}/"), &prior), "2");
    assert_streams_over_h2(&format!("{base}/ticker"), &prior);
    assert_streams_over_h2(&format!("{base}/prices/ticker"), &prior);
    // nginx 1.22 has no `Upgrade: h2c`: on the HTTP/1.1 port, curl --http2 stays on 1.1.
    let plain = format!("http://{}/", n.front.addr);
    assert_eq!(page_version(&plain, &["--http2"]), "1.1");
}

#[test]
fn a_hundred_streams_share_one_h2c_connection_through_nginx() {
    let t = Tickerd::start(&["--tick-ms", "100", "--heartbeat-s", "1"]);
    let cert = TestCert::new();
    let n = nginx::start_h2(t.scgi(), &cert, "");
    let mut c = H2c::connect(n.h2c, true);
    assert_eq!(
        c.settings.get(&frames::SETTINGS_MAX_CONCURRENT_STREAMS),
        Some(&NGINX_STREAMS),
        "{:?}",
        c.settings
    );
    let ids: Vec<u32> = (0..100).map(|i| 2 * i + 1).collect();
    for id in &ids {
        let path = if id % 4 == 1 {
            "/ticker"
        } else {
            "/prices/ticker"
        };
        c.get(*id, path, &[]);
    }
    pump_until_events(&mut c, &ids, 5);
    assert_served(&c, &ids, 5);
    // One TCP connection to nginx, a hundred SCGI streams to tickerd.
    assert_eq!(established_on(n.h2c), 1);
    assert_eq!(t.clients(), 100.0, "{:?}", t.metrics());
    // With a hundred streams open nginx still reads the connection's frames.
    c.ping();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && c.ping_acks == 0 {
        c.pump(Instant::now() + Duration::from_millis(200));
    }
    assert_eq!(c.ping_acks, 1);
    // A cancelled stream (a closed tab) frees its backend slot at once; the others go on.
    c.cancel(ids[0]);
    assert!(
        wait_until(Duration::from_secs(10), || t.clients() == 99.0),
        "{:?}",
        t.metrics()
    );
    let before: Vec<usize> = ids.iter().map(|id| sse_ids(&text(&c, *id)).len()).collect();
    pump_until_events(&mut c, &ids[1..], before.iter().max().unwrap() + 3);
    assert_served(&c, &ids[1..], before.iter().max().unwrap() + 3);
    assert_eq!(c.goaway, None);
    // The connection closed (the browser quit): nginx frees all 99 backend slots.
    drop(c);
    assert!(
        wait_until(Duration::from_secs(10), || t.clients() == 0.0),
        "{:?}",
        t.metrics()
    );
}

#[test]
fn a_hundred_streams_share_one_tls_connection_with_curl() {
    let t = Tickerd::start(&["--tick-ms", "100", "--heartbeat-s", "1"]);
    let cert = TestCert::new();
    let n = nginx::start_h2(t.scgi(), &cert, "");
    // curl's own cap is 100 streams per connection, under nginx's 128. Long enough that the
    // checks see the streams open on a loaded machine.
    streams_share_one_tls_connection(&t, &cert, n.tls, 100, 15, 5);
}

#[test]
fn streams_beyond_128_are_refused_at_once_and_the_connection_goes_on() {
    // Unlike lighttpd (`http2`), which stops reading a connection that opened too
    // many streams before acknowledging its SETTINGS, nginx answers every extra HEADERS with
    // RST_STREAM(REFUSED_STREAM), which tells a client it may retry the request.
    let t = Tickerd::start(&["--tick-ms", "100", "--heartbeat-s", "1"]);
    let cert = TestCert::new();
    let n = nginx::start_h2(t.scgi(), &cert, "");
    // All 130 sent at once, before nginx's SETTINGS were even read.
    let mut c = H2c::connect(n.h2c, false);
    let ids: Vec<u32> = (0..130).map(|i| 2 * i + 1).collect();
    for id in &ids {
        c.get(*id, "/ticker", &[]);
    }
    let (served, refused) = ids.split_at(NGINX_STREAMS as usize);
    pump_until_events(&mut c, served, 3);
    assert_served(&c, served, 3);
    for id in refused {
        let s = c.stream(*id);
        assert_eq!(s.reset, Some(frames::REFUSED_STREAM), "stream {id}: {s:?}");
        assert_eq!((s.head, s.data.len()), (None, 0), "stream {id}");
    }
    assert_eq!(t.clients(), f64::from(NGINX_STREAMS), "{:?}", t.metrics());
    // A cancelled stream frees its slot, and a new stream on the same connection fits.
    c.cancel(ids[0]);
    assert!(
        wait_until(Duration::from_secs(10), || t.clients()
            == f64::from(NGINX_STREAMS - 1)),
        "{:?}",
        t.metrics()
    );
    c.get(261, "/ticker", &[]);
    pump_until_events(&mut c, &[261], 3);
    assert_served(&c, &[261], 3);
    assert_eq!(t.clients(), f64::from(NGINX_STREAMS));
    assert_eq!(established_on(n.h2c), 1);
    assert_eq!(c.goaway, None);
}

#[test]
fn a_silent_h2_stream_outlives_nginx_keepalive_timeout() {
    // nginx 1.22 applies `keepalive_timeout` (which replaced http2_idle_timeout) to an h2
    // connection only while it has no open stream. Shortened to 1 s here (the default is
    // 75 s) to show both sides: a connection whose one request (the page) has ended is
    // closed, one holding a stream that is silent for 4 s (no ticks, no heartbeat) is not.
    let t = Tickerd::start(&["--tick-ms", "0", "--heartbeat-s", "0"]);
    let cert = TestCert::new();
    let n = nginx::start_h2(t.scgi(), &cert, "keepalive_timeout 1s;");
    let mut stream = H2c::connect(n.h2c, true);
    stream.get(1, "/ticker", &[]);
    pump_until_events(&mut stream, &[1], 1);
    let first = sse_ids(&text(&stream, 1));
    assert_eq!(first.len(), 1, "{:?}", stream.stream(1));
    let mut idle = H2c::connect(n.h2c, true);
    idle.get(1, "/", &[]);
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        stream.pump(Instant::now() + Duration::from_millis(100));
        idle.pump(Instant::now() + Duration::from_millis(100));
    }
    assert_eq!(
        idle.stream(1).head,
        Some(0x88),
        "no page: {:?}",
        idle.stream(1)
    );
    assert_eq!(idle.goaway, Some(0), "the idle connection was not closed");
    assert_eq!(stream.goaway, None);
    assert_eq!(established_on(n.h2c), 1);
    assert_eq!(t.clients(), 1.0);
    // The silent stream still delivers the next event.
    assert_eq!(t.publish("123.45").0, 200);
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && sse_ids(&text(&stream, 1)).len() < 2 {
        stream.pump(Instant::now() + Duration::from_millis(200));
    }
    assert_eq!(sse_ids(&text(&stream, 1)), vec![first[0], first[0] + 1]);
    assert_eq!(stream.stream(1).reset, None);
}

#[test]
fn past_keepalive_requests_nginx_sends_goaway_and_open_streams_go_on() {
    // After `keepalive_requests` streams (default 1000) or `keepalive_time` (default 1 h) on
    // one connection, nginx 1.22 answers the next stream and sends GOAWAY(NO_ERROR): the
    // client opens a new connection for later requests. Lowered to 3 here to show that the
    // streams already open are not cut by it.
    let t = Tickerd::start(&["--tick-ms", "100", "--heartbeat-s", "1"]);
    let cert = TestCert::new();
    let n = nginx::start_h2(t.scgi(), &cert, "keepalive_requests 3;");
    let mut c = H2c::connect(n.h2c, true);
    let ids = [1, 3, 5];
    for id in ids {
        c.get(id, "/ticker", &[]);
    }
    pump_until_events(&mut c, &ids, 3);
    assert_eq!(c.goaway, Some(0));
    let before = sse_ids(&text(&c, 1)).len();
    pump_until_events(&mut c, &ids, before + 10);
    assert_served(&c, &ids, before + 10);
    assert_eq!(t.clients(), 3.0);
    assert_eq!(established_on(n.h2c), 1);
    drop(c);
    assert!(
        wait_until(Duration::from_secs(10), || t.clients() == 0.0),
        "{:?}",
        t.metrics()
    );
}
