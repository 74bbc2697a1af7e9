//! HTTP/2 end to end: the real lighttpd from the shipped `conf/lighttpd.conf` (its optional
//! TLS listener on, with a certificate made at test time) in front of the real tickerd.
//! Needs lighttpd, lighttpd-mod-openssl, curl, openssl and nghttp2-client.

mod common;

use std::time::{Duration, Instant};

use common::h2::*;
use common::*;

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
