//! Response heads and whole responses, in the two dialects: an HTTP/1.1 status line on the
//! built-in listener, a CGI `Status:` header over SCGI (Apache's mod_proxy_scgi takes a
//! status line as a malformed header and never answers). Over HTTP the head also says
//! whether the connection stays open for another request after the answer.

use std::fmt::Write as _;

use crate::protocol::Protocol;
use crate::sse;

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// How a response is written: a CGI `Status:` header (SCGI, one request per connection),
/// or an HTTP/1.1 status line with what becomes of the connection after the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Scgi,
    /// `Connection: close`: the connection closes after this response (streams and long
    /// polls, requests that asked for it, and refusals that leave the framing in doubt).
    HttpClose,
    /// `Connection: keep-alive`: the connection reads the next request after this one.
    /// (Said to HTTP/1.1 clients too, for whom it is the default, as nginx and Apache do.)
    HttpKeepAlive,
}

impl Dialect {
    pub const ALL: [Dialect; 3] = [Dialect::Scgi, Dialect::HttpClose, Dialect::HttpKeepAlive];
}

/// A protocol's dialect for a response after which the connection closes.
impl From<Protocol> for Dialect {
    fn from(protocol: Protocol) -> Dialect {
        match protocol {
            Protocol::Http => Dialect::HttpClose,
            Protocol::Scgi => Dialect::Scgi,
        }
    }
}

/// A response head. `content_length: None` leaves the body open-ended (a stream).
pub fn head(
    dialect: Dialect,
    status: u16,
    content_type: &str,
    content_length: Option<usize>,
    extra: &[(&str, &str)],
) -> String {
    let mut out = String::with_capacity(160);
    let _ = match dialect {
        Dialect::HttpClose | Dialect::HttpKeepAlive => {
            write!(out, "HTTP/1.1 {status} {}\r\n", reason(status))
        }
        Dialect::Scgi => write!(out, "Status: {status} {}\r\n", reason(status)),
    };
    let _ = write!(out, "Content-Type: {content_type}\r\n");
    if let Some(n) = content_length {
        let _ = write!(out, "Content-Length: {n}\r\n");
    }
    for (name, value) in extra {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    match dialect {
        Dialect::HttpClose => out.push_str("Connection: close\r\n"),
        Dialect::HttpKeepAlive => out.push_str("Connection: keep-alive\r\n"),
        Dialect::Scgi => {}
    }
    out.push_str("\r\n");
    out
}

/// A whole response with a body.
pub fn full(
    dialect: Dialect,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = head(dialect, status, content_type, Some(body.len()), extra).into_bytes();
    out.extend_from_slice(body);
    out
}

/// A short plain-text answer, for errors and the publisher.
pub fn text(dialect: Dialect, status: u16, extra: &[(&str, &str)], body: &str) -> Vec<u8> {
    full(
        dialect,
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
/// A stream ends only when its connection closes.
pub fn stream_start(protocol: Protocol, retry_ms: u64) -> Vec<u8> {
    let mut out = head(
        protocol.into(),
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
/// the length lets the front-end keep the browser's connection alive. tickerd closes its own
/// after the answer (a front-end learns that the answer is over from the close).
pub fn long_poll_head(protocol: Protocol, body_len: usize) -> Vec<u8> {
    head(
        protocol.into(),
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
        let http = text(Dialect::HttpClose, 404, &[], "no\n");
        assert_eq!(
            String::from_utf8(http).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 3\r\nConnection: close\r\n\r\nno\n"
        );
        let scgi = text(Dialect::Scgi, 405, &[("Allow", "GET")], "");
        assert_eq!(
            String::from_utf8(scgi).unwrap(),
            "Status: 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 0\r\nAllow: GET\r\n\r\n"
        );
        let kept = text(Dialect::HttpKeepAlive, 200, &[], "7\n");
        assert_eq!(
            String::from_utf8(kept).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 2\r\nConnection: keep-alive\r\n\r\n7\n"
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
