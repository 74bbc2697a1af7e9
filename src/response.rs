//! Response heads and whole responses, in the two dialects: an HTTP/1.1 status line on the
//! built-in listener, a CGI `Status:` header over SCGI (Apache's mod_proxy_scgi takes a
//! status line as a malformed header and never answers).

use std::fmt::Write as _;

use crate::protocol::Protocol;
use crate::sse;

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A response head. `content_length: None` leaves the body open-ended (a stream).
pub fn head(
    protocol: Protocol,
    status: u16,
    content_type: &str,
    content_length: Option<usize>,
    extra: &[(&str, &str)],
) -> String {
    let mut out = String::with_capacity(160);
    let _ = match protocol {
        Protocol::Http => write!(out, "HTTP/1.1 {status} {}\r\n", reason(status)),
        Protocol::Scgi => write!(out, "Status: {status} {}\r\n", reason(status)),
    };
    let _ = write!(out, "Content-Type: {content_type}\r\n");
    if let Some(n) = content_length {
        let _ = write!(out, "Content-Length: {n}\r\n");
    }
    for (name, value) in extra {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    // The built-in listener answers one request per connection: say so.
    if protocol == Protocol::Http {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    out
}

/// A whole response with a body.
pub fn full(
    protocol: Protocol,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = head(protocol, status, content_type, Some(body.len()), extra).into_bytes();
    out.extend_from_slice(body);
    out
}

/// A short plain-text answer, for errors and the publisher.
pub fn text(protocol: Protocol, status: u16, extra: &[(&str, &str)], body: &str) -> Vec<u8> {
    full(
        protocol,
        status,
        "text/plain; charset=utf-8",
        extra,
        body.as_bytes(),
    )
}

const NO_CACHE: (&str, &str) = ("Cache-Control", "no-cache");
/// nginx buffers SCGI responses unless told otherwise; this tells it per response.
const NO_BUFFERING: (&str, &str) = ("X-Accel-Buffering", "no");

/// The head of an event stream and its `retry:` preamble, made once per protocol at start.
pub fn stream_start(protocol: Protocol, retry_ms: u64) -> Vec<u8> {
    let mut out = head(
        protocol,
        200,
        "text/event-stream",
        None,
        &[NO_CACHE, NO_BUFFERING],
    )
    .into_bytes();
    out.extend_from_slice(&sse::retry(retry_ms));
    out
}

/// The head of a long-poll answer: the events due (`body_len` bytes of them) follow, and
/// the length lets the front-end keep the browser's connection alive.
pub fn long_poll_head(protocol: Protocol, body_len: usize) -> Vec<u8> {
    head(
        protocol,
        200,
        "text/event-stream",
        Some(body_len),
        &[NO_CACHE, NO_BUFFERING],
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects() {
        let http = text(Protocol::Http, 404, &[], "no\n");
        assert_eq!(
            String::from_utf8(http).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 3\r\nConnection: close\r\n\r\nno\n"
        );
        let scgi = text(Protocol::Scgi, 405, &[("Allow", "GET")], "");
        assert_eq!(
            String::from_utf8(scgi).unwrap(),
            "Status: 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 0\r\nAllow: GET\r\n\r\n"
        );
    }

    #[test]
    fn stream_start_has_no_length_and_a_retry() {
        let s = String::from_utf8(stream_start(Protocol::Scgi, 1500)).unwrap();
        assert!(s.starts_with("Status: 200 OK\r\nContent-Type: text/event-stream\r\n"));
        assert!(s.contains("Cache-Control: no-cache\r\n"));
        assert!(!s.contains("Content-Length"));
        assert!(s.ends_with("\r\n\r\nretry: 1500\n\n"));
    }

    #[test]
    fn a_long_poll_head_has_the_length_of_its_events() {
        let s = String::from_utf8(long_poll_head(Protocol::Http, 19)).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"));
        assert!(s.contains("Content-Length: 19\r\n"), "{s}");
        assert!(s.ends_with("\r\n\r\n"));
    }
}
