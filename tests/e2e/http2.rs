//! HTTP/2 end to end: the real lighttpd from the shipped `conf/lighttpd.conf` (its optional
//! TLS listener on, with a certificate made at test time) in front of the real tickerd.
//! Needs lighttpd, lighttpd-mod-openssl, curl, openssl and nghttp2-client.

use std::time::{Duration, Instant};

use crate::support::h2::frames::{self, H2c};
use crate::support::h2::*;
use crate::support::*;

/// Streams `url` with curl for 3 s and checks the answer was HTTP/2 and that the events
/// came one by one with consecutive ids (`server.stream-response-body = 2` over h2).
fn stream_with_curl(url: &str, http2: &[&str], cacert: Option<&TestCert>) {
    let mut args = vec![
        "-N",
        "--max-time",
        "3",
        "-w",
        "\nhttp_version=%{http_version}\n",
    ];
    args.extend_from_slice(http2);
    let ca;
    if let Some(cert) = cacert {
        ca = cert.cert.display().to_string();
        args.extend(["--cacert", &ca]);
    }
    args.push(url);
    let (code, lines, stderr) = Curl::spawn(&args).finish(Duration::from_secs(20));
    // 28: curl's --max-time ended the stream, which never ends by itself.
    assert_eq!(code, Some(28), "{stderr}");
    let version = lines
        .iter()
        .find_map(|(_, l)| l.strip_prefix("http_version="));
    assert_eq!(version, Some("2"), "{url}: not HTTP/2");
    let events: Vec<(Instant, u64)> = lines
        .iter()
        .filter_map(|(at, l)| Some((*at, l.strip_prefix("id: ")?.parse().ok()?)))
        .collect();
    let ids: Vec<u64> = events.iter().map(|(_, id)| *id).collect();
    assert!(ids.len() >= 10, "{url}: {ids:?} {stderr}");
    assert_consecutive(&ids, url);
    // Streamed, not buffered: ticks are 100 ms apart, and so are most arrivals.
    let spaced = events
        .windows(2)
        .filter(|w| w[1].0 - w[0].0 >= Duration::from_millis(50))
        .count();
    assert!(spaced >= ids.len() / 2, "{url}: events came in bursts");
}

/// GETs the page with curl; returns the HTTP version curl used.
fn page_with_curl(url: &str, http2: &[&str], cacert: Option<&TestCert>) -> String {
    let ca = cacert.map(|c| c.cert.display().to_string());
    let mut args = vec!["--max-time", "10", "-w", "\nhttp_version=%{http_version}\n"];
    args.extend_from_slice(http2);
    if let Some(ca) = &ca {
        args.extend(["--cacert", ca]);
    }
    args.push(url);
    let (code, lines, stderr) = Curl::spawn(&args).finish(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{url}: {stderr}");
    assert!(
        lines.iter().any(|(_, l)| l.contains("EventSource")),
        "{url}: not the page"
    );
    lines
        .iter()
        .find_map(|(_, l)| l.strip_prefix("http_version="))
        .unwrap()
        .to_string()
}

#[test]
fn page_and_stream_over_tls_negotiate_h2() {
    let t = Tickerd::start(&["--tick-ms", "100"]);
    let cert = TestCert::new();
    let (_front, tls) = Lighttpd::start_tls(t.scgi(), &cert);
    let base = format!("https://127.0.0.1:{}", tls.port());
    assert_eq!(
        page_with_curl(&format!("{base}/"), &["--http2"], Some(&cert)),
        "2"
    );
    stream_with_curl(&format!("{base}/ticker"), &["--http2"], Some(&cert));
    stream_with_curl(&format!("{base}/prices/ticker"), &["--http2"], Some(&cert));
    // nghttp says what ALPN chose.
    let out = std::process::Command::new(tool("nghttp", "nghttp2-client"))
        .args(["-v", "-n", "-t", "10", &format!("{base}/")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("The negotiated protocol: h2"), "{text}");
}

#[test]
fn page_and_stream_over_cleartext_h2c() {
    let t = Tickerd::start(&["--tick-ms", "100"]);
    let cert = TestCert::new();
    let (front, _tls) = Lighttpd::start_tls(t.scgi(), &cert);
    let base = format!("http://{}", front.addr);
    // Prior knowledge: the client starts with the HTTP/2 preface.
    let prior = ["--http2-prior-knowledge"];
    assert_eq!(page_with_curl(&format!("{base}/"), &prior, None), "2");
    stream_with_curl(&format!("{base}/ticker"), &prior, None);
    // Upgrade: an HTTP/1.1 request with `Upgrade: h2c`, answered 101 and then in HTTP/2.
    assert_eq!(page_with_curl(&format!("{base}/"), &["--http2"], None), "2");
    stream_with_curl(&format!("{base}/ticker"), &["--http2"], None);
}

/// lighttpd 1.4.69 announces SETTINGS_MAX_CONCURRENT_STREAMS = 8 (fixed in its source).
const LIGHTTPD_STREAMS: u32 = 8;

#[test]
fn eight_streams_on_one_h2c_connection_and_the_ninth_is_refused() {
    let t = Tickerd::start(&["--tick-ms", "100", "--heartbeat-s", "1"]);
    let front = Lighttpd::start(t.scgi());
    let mut c = H2c::connect(front.addr, true);
    assert_eq!(
        c.settings.get(&frames::SETTINGS_MAX_CONCURRENT_STREAMS),
        Some(&LIGHTTPD_STREAMS),
        "{:?}",
        c.settings
    );
    // Twelve streams after the SETTINGS were acknowledged: ids 1, 3, ..., 23.
    let ids: Vec<u32> = (0..12).map(|i| 2 * i + 1).collect();
    for id in &ids {
        c.get(*id, "/ticker", &[]);
    }
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && ids[..8].iter().any(|id| sse_ids(&text(&c, *id)).len() < 5) {
        c.pump(Instant::now() + Duration::from_millis(200));
    }
    for id in &ids[..8] {
        let s = c.stream(*id);
        assert_eq!(s.head, Some(0x88), "stream {id}: no 200");
        assert_eq!(s.reset, None, "stream {id}");
        let events = sse_ids(&text(&c, *id));
        assert!(events.len() >= 5, "stream {id}: {events:?}");
        assert_consecutive(&events, &format!("stream {id}"));
    }
    for id in &ids[8..] {
        let s = c.stream(*id);
        assert_eq!(s.reset, Some(frames::REFUSED_STREAM), "stream {id}: {s:?}");
        assert_eq!((s.head, s.data.len()), (None, 0), "stream {id}");
    }
    // One TCP connection to lighttpd, eight SCGI streams to tickerd.
    assert_eq!(established_on(front.addr), 1);
    assert_eq!(t.clients(), 8.0, "{:?}", t.metrics());
    // A cancelled stream (a closed tab) frees its backend slot, and a new stream fits.
    c.cancel(ids[0]);
    assert!(
        wait_until(Duration::from_secs(5), || t.clients() == 7.0),
        "{:?}",
        t.metrics()
    );
    c.get(25, "/ticker", &[]);
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && sse_ids(&text(&c, 25)).len() < 3 {
        c.pump(Instant::now() + Duration::from_millis(200));
    }
    assert_eq!(c.stream(25).reset, None);
    assert!(sse_ids(&text(&c, 25)).len() >= 3, "{:?}", c.stream(25));
    assert_eq!(t.clients(), 8.0);
    assert_eq!(c.goaway, None);
}

fn text(c: &H2c, id: u32) -> String {
    String::from_utf8_lossy(&c.stream(id).data).to_string()
}

#[test]
fn streams_sent_before_the_settings_ack_beyond_eight_are_held_and_stall_the_connection() {
    // What a client gets that opens more than 8 streams at once on a new connection, before
    // it has seen lighttpd's SETTINGS (nghttp -m 12 does; a browser restoring many tabs
    // might). lighttpd 1.4.69 (h2.c) then neither answers nor refuses the 9th HEADERS: it
    // stops reading the connection's frames until one of the 8 streams ends. Event streams
    // do not end, so the client's RST_STREAM and PING are never read either.
    let t = Tickerd::start(&["--tick-ms", "100", "--heartbeat-s", "1"]);
    let front = Lighttpd::start(t.scgi());
    let mut c = H2c::connect(front.addr, false);
    let ids: Vec<u32> = (0..12).map(|i| 2 * i + 1).collect();
    for id in &ids {
        c.get(*id, "/ticker", &[]);
    }
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && ids[..8].iter().any(|id| sse_ids(&text(&c, *id)).len() < 3) {
        c.pump(Instant::now() + Duration::from_millis(200));
    }
    for id in &ids[..8] {
        assert!(
            sse_ids(&text(&c, *id)).len() >= 3,
            "stream {id} got {:?}",
            text(&c, *id)
        );
    }
    assert!(wait_until(Duration::from_secs(5), || t.clients() == 8.0));
    c.cancel(ids[0]);
    c.ping();
    let before = sse_ids(&text(&c, ids[0])).len();
    c.pump(Instant::now() + Duration::from_secs(2));
    for id in &ids[..8] {
        let events = sse_ids(&text(&c, *id));
        assert_consecutive(&events, &format!("stream {id}"));
    }
    // The cancelled stream still flows, its backend slot is still held, no PING answer.
    assert!(
        sse_ids(&text(&c, ids[0])).len() > before,
        "{:?}",
        c.stream(ids[0])
    );
    assert_eq!(t.clients(), 8.0);
    assert_eq!(c.ping_acks, 0);
    for id in &ids[8..] {
        let s = c.stream(*id);
        assert_eq!(
            (s.head, s.reset, s.data.len()),
            (None, None, 0),
            "stream {id}"
        );
    }
    assert_eq!(c.goaway, None);
}

#[test]
fn eight_streams_share_one_tls_connection_with_curl() {
    let t = Tickerd::start(&["--tick-ms", "100", "--heartbeat-s", "1"]);
    let cert = TestCert::new();
    let (_front, tls) = Lighttpd::start_tls(t.scgi(), &cert);
    // Long enough that the checks see the streams open on a loaded machine.
    streams_share_one_tls_connection(&t, &cert, tls, 8, 8, 10);
}
