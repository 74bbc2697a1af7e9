//! Reading a request off a connection: how much to hold, the parsers of either protocol
//! and the router behind them, and what to do with input that comes after the request
//! (held for the next request on a kept-alive connection, thrown away on others).

use std::io::{self, ErrorKind, Read};

use super::{io_close_reason, CloseReason};
use crate::http;
use crate::protocol::Protocol;
use crate::request::Request;
use crate::route::{self, Action};
use crate::scgi;

/// Caps and the token, as the parsers and router need them.
#[derive(Debug, Clone)]
pub struct RequestRules {
    pub scgi: scgi::Limits,
    pub http: http::Limits,
    pub route: route::Rules,
}

impl RequestRules {
    /// The most request bytes worth holding: anything longer is refused by the parsers.
    pub(super) fn max_request(&self, protocol: Protocol) -> usize {
        match protocol {
            Protocol::Scgi => self.scgi.max_header + self.scgi.max_body + 16,
            Protocol::Http => self.http.max_head + self.http.max_body,
        }
    }
}

/// Bytes read from one socket per wake-up at most, so one busy peer cannot starve others.
pub const READ_BUDGET: usize = 64 * 1024;

pub(super) enum Parsed {
    Partial,
    /// A whole request, which took the first `used` bytes; `keep_alive`: the connection
    /// may carry another one after its answer.
    Request {
        action: Action,
        used: usize,
        keep_alive: bool,
    },
    /// Answer with this status and reason, then close: the bytes that follow cannot be
    /// trusted to start the next request.
    Refuse(u16, String),
    /// Close without an answer.
    Drop(String),
}

pub(super) fn parse(protocol: Protocol, buf: &[u8], rules: &RequestRules) -> Parsed {
    match protocol {
        Protocol::Scgi => match scgi::parse(buf, &rules.scgi) {
            Ok(scgi::Status::Partial) => Parsed::Partial,
            // SCGI carries one request per connection; more bytes are a lying front-end.
            Ok(scgi::Status::Complete(req)) if req.len < buf.len() => Parsed::Drop(format!(
                "{} bytes beyond CONTENT_LENGTH",
                buf.len() - req.len
            )),
            Ok(scgi::Status::Complete(req)) => Parsed::Request {
                action: route::route(&Request::from_scgi(&req), &rules.route),
                used: req.len,
                keep_alive: false,
            },
            Err(e @ scgi::ScgiError::BodyTooLarge(_)) => Parsed::Refuse(413, e.to_string()),
            Err(e) => Parsed::Drop(e.to_string()),
        },
        Protocol::Http => match http::parse(buf, &rules.http) {
            Ok(scgi::Status::Partial) => Parsed::Partial,
            // Bytes after the request are the next one (pipelined), kept for after the
            // answer when the connection persists.
            Ok(scgi::Status::Complete((req, used))) => Parsed::Request {
                action: route::route(&req, &rules.route),
                used,
                keep_alive: req.keep_alive,
            },
            Err(e) => {
                let status = match e {
                    http::HttpError::Malformed(_) | http::HttpError::BadContentLength => 400,
                    http::HttpError::HeadTooLarge => 431,
                    http::HttpError::BodyTooLarge(_) => 413,
                    http::HttpError::LengthRequired => 411,
                };
                Parsed::Refuse(status, e.to_string())
            }
        },
    }
}

/// Reads until `WouldBlock`, EOF or `limit` bytes held; returns whether EOF was seen. At
/// the limit it reads nothing (what is left waits in the socket).
pub(super) fn read_into<S: Read>(
    socket: &mut S,
    scratch: &mut [u8],
    buf: &mut Vec<u8>,
    limit: usize,
) -> io::Result<bool> {
    while buf.len() < limit {
        let room = scratch.len().min(limit - buf.len());
        match socket.read(&mut scratch[..room]) {
            Ok(0) => return Ok(true),
            Ok(n) => buf.extend_from_slice(&scratch[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

pub(super) enum Drained {
    /// No more input for now; this many bytes were thrown away.
    WouldBlock(usize),
    Eof,
    Error(CloseReason),
}

/// Reads and discards up to `READ_BUDGET` bytes.
pub(super) fn drain<S: Read>(socket: &mut S, scratch: &mut [u8]) -> Drained {
    let mut total = 0;
    while total < READ_BUDGET {
        match socket.read(scratch) {
            Ok(0) => return Drained::Eof,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Drained::Error(io_close_reason(&e)),
        }
    }
    Drained::WouldBlock(total)
}
