//! One client connection as a state machine over any `Read + Write` socket. It knows
//! nothing of the event loop: each handler does its I/O until `WouldBlock` and returns what
//! the loop should do next. Generic so that tests drive it over a fake socket.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;

use crate::http;
use crate::price::{CatchUp, Event};
use crate::request::Request;
use crate::response::{self, Protocol};
use crate::route::{self, Action};
use crate::scgi;
use crate::sse;

/// A socket whose write side can be shut while its read side stays open.
pub trait Socket: Read + Write {
    fn shutdown_write(&self) -> io::Result<()>;
}

/// A waiting client: an event stream, or a long poll that ends after one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stream,
    LongPoll,
}

/// What a client waiting for ticks holds: nothing but the id it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    pub kind: Kind,
    /// The id of the last event this client has (sent, or named in Last-Event-ID).
    pub last_id: Option<u64>,
    /// The peer shut its write side right after the request (lighttpd's
    /// `tcp-fin-propagate`): end-of-input then no longer means it left.
    pub input_closed: bool,
}

#[derive(Debug)]
pub enum State {
    /// Gathering the request. `input_closed`: EOF came with it.
    Reading { buf: Vec<u8>, input_closed: bool },
    /// Waiting for the next tick.
    Parked(Waiter),
    /// Output under way: shared bytes and how far they are written. `then`: what the client
    /// becomes once they are out; `None` ends the response.
    Writing {
        out: Rc<[u8]>,
        offset: usize,
        then: Option<Waiter>,
    },
    /// Response sent and our write side shut; input is drained until the peer closes, so
    /// that unread input cannot turn the close into a reset that destroys the response.
    Lingering,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The response was complete and the peer closed.
    Done,
    /// The peer closed or reset its side.
    Hangup,
    /// A read or write failed (EPIPE, ECONNRESET…).
    IoError,
    /// The request did not arrive in time.
    RequestTimeout,
    /// The peer did not close after a finished response in time.
    LingerTimeout,
    /// Unparseable request, closed without an answer (SCGI).
    BadRequest,
    /// A client sent data where none belongs.
    UnexpectedInput,
}

impl CloseReason {
    pub const ALL: [CloseReason; 7] = [
        CloseReason::Done,
        CloseReason::Hangup,
        CloseReason::IoError,
        CloseReason::RequestTimeout,
        CloseReason::LingerTimeout,
        CloseReason::BadRequest,
        CloseReason::UnexpectedInput,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Done => "done",
            CloseReason::Hangup => "hangup",
            CloseReason::IoError => "io_error",
            CloseReason::RequestTimeout => "request_timeout",
            CloseReason::LingerTimeout => "linger_timeout",
            CloseReason::BadRequest => "bad_request",
            CloseReason::UnexpectedInput => "unexpected_input",
        }
    }
}

/// Why a failed read or write ended a connection: a peer that went away (reset, broken
/// pipe) is a hang-up like EOF; anything else is an I/O error.
fn io_close_reason(e: &io::Error) -> CloseReason {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => {
            CloseReason::Hangup
        }
        _ => CloseReason::IoError,
    }
}

/// What the loop should do after a handler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Open,
    /// Just entered `Lingering`: start its deadline.
    Linger,
    Close(CloseReason),
}

/// The result of input on a connection.
#[derive(Debug)]
pub enum Input {
    Flow(Flow),
    /// A whole request: the loop carries it out with `Connection::respond`.
    Request(Action),
}

/// Caps and the token, as the parsers and router need them.
#[derive(Debug, Clone)]
pub struct RequestRules {
    pub scgi: scgi::Limits,
    pub http: http::Limits,
    pub publish_token: Option<String>,
}

impl RequestRules {
    /// The most request bytes worth holding: anything longer is refused by the parsers.
    fn max_request(&self, protocol: Protocol) -> usize {
        match protocol {
            Protocol::Scgi => self.scgi.max_header + self.scgi.max_body + 16,
            Protocol::Http => self.http.max_head + self.http.max_body,
        }
    }
}

/// Bytes read from one socket per wake-up at most, so one busy peer cannot starve others.
pub const READ_BUDGET: usize = 64 * 1024;

/// Per-connection counters the loop adds up for /metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub bytes: u64,
    pub events: u64,
    pub heartbeats: u64,
}

pub struct Connection<S> {
    pub socket: S,
    pub protocol: Protocol,
    pub state: State,
    /// Tells this connection from a later one that reuses its slab key.
    pub serial: u64,
    pub peer: Option<SocketAddr>,
    /// What the poller was last told: whether WRITABLE is in this socket's interest.
    pub registered_writable: bool,
}

impl<S: Socket> Connection<S> {
    pub fn new(socket: S, protocol: Protocol, serial: u64, peer: Option<SocketAddr>) -> Self {
        Connection {
            socket,
            protocol,
            state: State::Reading {
                buf: Vec::new(),
                input_closed: false,
            },
            serial,
            peer,
            registered_writable: false,
        }
    }

    /// Whether output is waiting for the socket to drain (the loop asks for WRITABLE then).
    pub fn wants_write(&self) -> bool {
        matches!(self.state, State::Writing { .. })
    }

    /// The socket has input, EOF or an error.
    pub fn on_readable(&mut self, scratch: &mut [u8], rules: &RequestRules) -> Input {
        match &mut self.state {
            State::Reading { buf, input_closed } => {
                let limit = rules.max_request(self.protocol);
                match read_into(&mut self.socket, scratch, buf, limit) {
                    Ok(eof) => *input_closed |= eof,
                    Err(e) => return Input::Flow(Flow::Close(io_close_reason(&e))),
                }
                let eof = *input_closed;
                match parse(self.protocol, buf, rules) {
                    Parsed::Partial if eof || buf.len() >= limit => {
                        // Too long cannot be partial: the parsers refuse first. So this is
                        // a peer that left mid-request.
                        Input::Flow(Flow::Close(CloseReason::Hangup))
                    }
                    Parsed::Partial => Input::Flow(Flow::Open),
                    Parsed::Request(action) => Input::Request(action),
                    Parsed::Refuse(status, why) => {
                        log::warn!("{}: refused ({status}): {why}", self.describe());
                        let answer =
                            response::text(self.protocol, status, &[], &format!("{why}\n"));
                        self.start_response(answer.into());
                        Input::Flow(Flow::Open)
                    }
                    Parsed::Drop(why) => {
                        log::warn!("{}: closed: {why}", self.describe());
                        Input::Flow(Flow::Close(CloseReason::BadRequest))
                    }
                }
            }
            State::Parked(Waiter { input_closed, .. })
            | State::Writing {
                then: Some(Waiter { input_closed, .. }),
                ..
            } => {
                let input_closed = *input_closed;
                Input::Flow(self.drain_stray_input(scratch, input_closed))
            }
            State::Writing { then: None, .. } => Input::Flow(self.drain_stray_input(scratch, true)),
            State::Lingering => Input::Flow(match drain(&mut self.socket, scratch) {
                Drained::WouldBlock(_) => Flow::Open,
                Drained::Eof | Drained::Error(_) => Flow::Close(CloseReason::Done),
            }),
        }
    }

    /// Input on a connection whose request is done: read and throw away; too much of it is
    /// abuse. EOF is either a peer that left or one that only shut its write side (lighttpd's
    /// `tcp-fin-propagate`), and when it comes after the request, in a wake-up of its own,
    /// nothing tells the two apart. So a stream answers it with a probe: a heartbeat that a
    /// peer that left answers with a reset (an error event, within one round trip), while a
    /// half-closed one takes it and keeps its stream.
    fn drain_stray_input(&mut self, scratch: &mut [u8], input_closed: bool) -> Flow {
        match drain(&mut self.socket, scratch) {
            Drained::WouldBlock(n) if n >= READ_BUDGET => {
                log::warn!("{}: closed: {n} bytes after the request", self.describe());
                Flow::Close(CloseReason::UnexpectedInput)
            }
            Drained::WouldBlock(_) => Flow::Open,
            Drained::Eof if input_closed => Flow::Open,
            Drained::Eof => self.probe_after_eof(),
            Drained::Error(reason) => Flow::Close(reason),
        }
    }

    fn probe_after_eof(&mut self) -> Flow {
        match &mut self.state {
            State::Parked(w) if w.kind == Kind::Stream => {
                w.input_closed = true;
                self.state = State::Writing {
                    out: Rc::from(sse::HEARTBEAT),
                    offset: 0,
                    then: Some(*w),
                };
                Flow::Open
            }
            // Output under way is the probe already.
            State::Writing { then: Some(w), .. } if w.kind == Kind::Stream => {
                w.input_closed = true;
                Flow::Open
            }
            // A long poll cannot take a comment inside its Content-Length.
            _ => Flow::Close(CloseReason::Hangup),
        }
    }

    /// Starts a stream or long poll: the head (shared, made once per protocol; empty for a
    /// long poll), then events by the rules in `flush`, which the loop calls next.
    pub fn start_stream(&mut self, head: Rc<[u8]>, kind: Kind, last_id: Option<u64>) {
        let input_closed = self.input_closed();
        self.state = State::Writing {
            out: head,
            offset: 0,
            then: Some(Waiter {
                kind,
                last_id,
                input_closed,
            }),
        };
    }

    /// Starts a finite response; once written, the connection lingers, then closes.
    pub fn start_response(&mut self, bytes: Rc<[u8]>) {
        self.state = State::Writing {
            out: bytes,
            offset: 0,
            then: None,
        };
    }

    fn input_closed(&self) -> bool {
        match &self.state {
            State::Reading { input_closed, .. } => *input_closed,
            State::Parked(w) => w.input_closed,
            State::Writing { then, .. } => then.is_some_and(|w| w.input_closed),
            State::Lingering => true,
        }
    }

    /// A new tick: a parked client starts writing it. Others pick it up when their current
    /// write completes (conflation), so nobody ever queues more than one event.
    ///
    /// `catch_up`: the fan-out's chunks of events after a given id. A parked stream keeps up,
    /// so when several ticks folded into this fan-out it gets all of them since its own id,
    /// in order, in one write. Long polls, and clients not parked, get the newest only.
    pub fn on_tick(&mut self, now: &Event, catch_up: &mut CatchUp, written: &mut Written) -> Flow {
        match self.state {
            State::Parked(w) => {
                let chunk = match (w.kind, w.last_id) {
                    (Kind::Stream, Some(id)) => catch_up.after(id),
                    _ => None,
                };
                self.state = match chunk {
                    Some((bytes, count)) => {
                        written.events += count;
                        State::Writing {
                            out: bytes,
                            offset: 0,
                            then: Some(Waiter {
                                last_id: Some(now.id),
                                ..w
                            }),
                        }
                    }
                    _ => next_state(w, self.protocol, now, written),
                };
                self.flush(now, written)
            }
            _ => Flow::Open,
        }
    }

    /// A long poll held too long (front-ends and browsers give up on silent requests): it
    /// gets the current event, which it has, and ends; the client simply polls again.
    pub fn on_long_poll_expiry(&mut self, now: &Event, written: &mut Written) -> Flow {
        match self.state {
            State::Parked(w) if w.kind == Kind::LongPoll => {
                let expired = Waiter { last_id: None, ..w };
                self.state = next_state(expired, self.protocol, now, written);
                self.flush(now, written)
            }
            _ => Flow::Open,
        }
    }

    /// Heartbeat: a comment to a parked stream (not to a long poll, whose body has a length).
    pub fn on_heartbeat(&mut self, beat: &Rc<[u8]>, now: &Event, written: &mut Written) -> Flow {
        match self.state {
            State::Parked(waiter) if waiter.kind == Kind::Stream => {
                written.heartbeats += 1;
                self.state = State::Writing {
                    out: beat.clone(),
                    offset: 0,
                    then: Some(waiter),
                };
                self.flush(now, written)
            }
            _ => Flow::Open,
        }
    }

    /// Writes pending output until done or `WouldBlock`; when done, applies the rules: a
    /// client behind the newest event gets it, a long poll ends after its one event, a
    /// stream that has the newest event parks.
    pub fn flush(&mut self, now: &Event, written: &mut Written) -> Flow {
        loop {
            let State::Writing { out, offset, then } = &mut self.state else {
                return Flow::Open;
            };
            while *offset < out.len() {
                match self.socket.write(&out[*offset..]) {
                    Ok(0) => return Flow::Close(CloseReason::IoError),
                    Ok(n) => {
                        *offset += n;
                        written.bytes += n as u64;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Flow::Open,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Flow::Close(io_close_reason(&e)),
                }
            }
            match *then {
                None => {
                    // Our side is done: tell the peer with a FIN, then wait for its close.
                    let _ = self.socket.shutdown_write();
                    self.state = State::Lingering;
                    return Flow::Linger;
                }
                Some(w) => self.state = next_state(w, self.protocol, now, written),
            }
        }
    }

    /// A short label for log lines: protocol, serial and peer.
    pub fn describe(&self) -> String {
        let proto = match self.protocol {
            Protocol::Http => "http",
            Protocol::Scgi => "scgi",
        };
        match self.peer {
            Some(peer) => format!("{proto}#{} {peer}", self.serial),
            None => format!("{proto}#{}", self.serial),
        }
    }
}

/// What a waiting client does next, by the rules: one that has the current event parks; a
/// stream behind it writes the newest event (never the ones between: conflation); a long
/// poll writes its one answer and ends. All bytes are the tick's, shared.
fn next_state(w: Waiter, protocol: Protocol, now: &Event, written: &mut Written) -> State {
    if w.last_id == Some(now.id) {
        return State::Parked(w);
    }
    written.events += 1;
    match w.kind {
        Kind::Stream => State::Writing {
            out: now.sse.clone(),
            offset: 0,
            then: Some(Waiter {
                last_id: Some(now.id),
                ..w
            }),
        },
        Kind::LongPoll => State::Writing {
            out: now.long_poll(protocol),
            offset: 0,
            then: None,
        },
    }
}

enum Parsed {
    Partial,
    Request(Action),
    /// Answer with this status and reason, then close.
    Refuse(u16, String),
    /// Close without an answer.
    Drop(String),
}

fn parse(protocol: Protocol, buf: &[u8], rules: &RequestRules) -> Parsed {
    let token = rules.publish_token.as_deref();
    match protocol {
        Protocol::Scgi => match scgi::parse(buf, &rules.scgi) {
            Ok(scgi::Status::Partial) => Parsed::Partial,
            // SCGI carries one request per connection; more bytes are a lying front-end.
            Ok(scgi::Status::Complete(req)) if req.len < buf.len() => Parsed::Drop(format!(
                "{} bytes beyond CONTENT_LENGTH",
                buf.len() - req.len
            )),
            Ok(scgi::Status::Complete(req)) => {
                Parsed::Request(route::route(&Request::from_scgi(&req), token))
            }
            Err(e @ scgi::ScgiError::BodyTooLarge(_)) => Parsed::Refuse(413, e.to_string()),
            Err(e) => Parsed::Drop(e.to_string()),
        },
        Protocol::Http => match http::parse(buf, &rules.http) {
            Ok(scgi::Status::Partial) => Parsed::Partial,
            // Bytes after the request would be a pipelined one: answered with
            // `Connection: close`, it is not read.
            Ok(scgi::Status::Complete((req, _))) => Parsed::Request(route::route(&req, token)),
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

/// Reads until `WouldBlock`, EOF or `limit` bytes held; returns whether EOF was seen.
fn read_into<S: Read>(
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

enum Drained {
    /// No more input for now; this many bytes were thrown away.
    WouldBlock(usize),
    Eof,
    Error(CloseReason),
}

/// Reads and discards up to `READ_BUDGET` bytes.
fn drain<S: Read>(socket: &mut S, scratch: &mut [u8]) -> Drained {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::price::PriceSource;
    use std::cell::Cell;

    /// A socket that takes at most `take` bytes per write, can be made to block or fail,
    /// and serves scripted input.
    #[derive(Default)]
    struct Fake {
        input: Vec<u8>,
        /// After the input: EOF (true) or WouldBlock (false).
        eof: bool,
        output: Vec<u8>,
        take: usize,
        blocked: bool,
        broken: bool,
        shut: Cell<bool>,
    }

    impl Read for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.input.is_empty() {
                return if self.eof {
                    Ok(0)
                } else {
                    Err(ErrorKind::WouldBlock.into())
                };
            }
            let n = buf.len().min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input.drain(..n);
            Ok(n)
        }
    }

    impl Write for Fake {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.broken {
                return Err(ErrorKind::BrokenPipe.into());
            }
            if self.blocked {
                return Err(ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(if self.take == 0 {
                usize::MAX
            } else {
                self.take
            });
            self.output.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Socket for Fake {
        fn shutdown_write(&self) -> io::Result<()> {
            self.shut.set(true);
            Ok(())
        }
    }

    fn rules() -> RequestRules {
        RequestRules {
            scgi: scgi::Limits {
                max_header: 1024,
                max_body: 64,
            },
            http: http::Limits {
                max_head: 1024,
                max_body: 64,
            },
            publish_token: None,
        }
    }

    fn conn(input: &[u8], eof: bool) -> Connection<Fake> {
        let fake = Fake {
            input: input.to_vec(),
            eof,
            ..Fake::default()
        };
        Connection::new(fake, Protocol::Http, 1, None)
    }

    fn head() -> Rc<[u8]> {
        Rc::from(&b"HEAD|"[..])
    }

    fn text(c: &Connection<Fake>) -> String {
        String::from_utf8(c.socket.output.clone()).unwrap()
    }

    #[test]
    fn request_split_across_reads() {
        let mut c = conn(b"GET /tick", false);
        let mut scratch = [0u8; 4];
        assert!(matches!(
            c.on_readable(&mut scratch, &rules()),
            Input::Flow(Flow::Open)
        ));
        c.socket.input = b"er HTTP/1.1\r\nLast-Event-ID: 5\r\n\r\n".to_vec();
        match c.on_readable(&mut scratch, &rules()) {
            Input::Request(Action::Stream { last_id: Some(5) }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn eof_with_the_request_is_a_half_close_not_a_hangup() {
        let mut c = conn(b"GET /ticker HTTP/1.1\r\n\r\n", true);
        let mut scratch = [0u8; 64];
        assert!(matches!(
            c.on_readable(&mut scratch, &rules()),
            Input::Request(_)
        ));
        let mut w = Written::default();
        let e = Event::new(10, 100);
        c.start_stream(head(), Kind::Stream, None);
        c.flush(&e, &mut w);
        assert!(matches!(
            c.state,
            State::Parked(Waiter {
                input_closed: true,
                ..
            })
        ));
        // Another read-closed wake-up: still streaming.
        assert!(matches!(
            c.on_readable(&mut scratch, &rules()),
            Input::Flow(Flow::Open)
        ));
        // Without the half-close, EOF on a parked stream is the peer leaving.
        let mut d = conn(b"GET /ticker HTTP/1.1\r\n\r\n", false);
        assert!(matches!(
            d.on_readable(&mut scratch, &rules()),
            Input::Request(_)
        ));
        d.start_stream(head(), Kind::Stream, None);
        d.flush(&e, &mut w);
        // EOF in a wake-up of its own: a heartbeat probes whether the peer is still there.
        d.socket.eof = true;
        assert!(matches!(
            d.on_readable(&mut scratch, &rules()),
            Input::Flow(Flow::Open)
        ));
        assert_eq!(d.flush(&e, &mut w), Flow::Open);
        assert!(text(&d).ends_with(std::str::from_utf8(sse::HEARTBEAT).unwrap()));
        // A peer that left answers with a reset: that is the hang-up.
        d.socket.broken = true;
        assert_eq!(
            d.on_heartbeat(&Rc::from(sse::HEARTBEAT), &e, &mut w),
            Flow::Close(CloseReason::Hangup)
        );
    }

    #[test]
    fn eof_before_the_request_is_whole_is_a_hangup() {
        let mut c = conn(b"GET /ticker HTTP/1.1\r\n", true);
        assert!(matches!(
            c.on_readable(&mut [0u8; 64], &rules()),
            Input::Flow(Flow::Close(CloseReason::Hangup))
        ));
    }

    #[test]
    fn last_event_id_rules() {
        let e = Event::new(10, 100);
        let mut w = Written::default();
        // Equal to the current id: parked, nothing but the head sent.
        let mut c = conn(b"", false);
        c.start_stream(head(), Kind::Stream, Some(10));
        c.flush(&e, &mut w);
        assert_eq!(text(&c), "HEAD|");
        assert!(matches!(c.state, State::Parked(_)));
        // Anything else: the current event at once.
        for last in [None, Some(9), Some(11), Some(0)] {
            let mut c = conn(b"", false);
            c.start_stream(head(), Kind::Stream, last);
            c.flush(&e, &mut w);
            assert_eq!(text(&c), "HEAD|id: 10\ndata: 1.00\n\n", "{last:?}");
            assert!(matches!(
                c.state,
                State::Parked(Waiter {
                    last_id: Some(10),
                    ..
                })
            ));
        }
    }

    #[test]
    fn conflation_sends_only_the_newest_after_a_slow_write() {
        let mut w = Written::default();
        let mut c = conn(b"", false);
        c.socket.blocked = true;
        c.start_stream(head(), Kind::Stream, Some(1));
        c.flush(&Event::new(1, 100), &mut w);
        // Ticks 2..=50 arrive while the head is stuck.
        for id in 2..=50 {
            assert_eq!(
                c.on_tick(
                    &Event::new(id, 100 + id),
                    &mut CatchUp::new(&PriceSource::new(0, 1)),
                    &mut w
                ),
                Flow::Open
            );
        }
        c.socket.blocked = false;
        c.socket.take = 3; // and the socket takes only 3 bytes per write
        assert_eq!(c.flush(&Event::new(50, 150), &mut w), Flow::Open);
        assert_eq!(text(&c), "HEAD|id: 50\ndata: 1.50\n\n");
        assert_eq!(w.events, 1);
    }

    /// The seed's rule: the event already under way is finished, then the newest follows;
    /// the ones between are never sent.
    #[test]
    fn a_tick_mid_write_is_sent_after_the_current_event() {
        let mut w = Written::default();
        let mut c = conn(b"", false);
        c.start_stream(head(), Kind::Stream, None);
        c.flush(&Event::new(1, 100), &mut w);
        c.socket.blocked = true;
        c.on_tick(
            &Event::new(2, 200),
            &mut CatchUp::new(&PriceSource::new(0, 1)),
            &mut w,
        );
        c.socket.blocked = false;
        c.socket.take = 5;
        for id in 3..=9 {
            c.on_tick(
                &Event::new(id, id * 100),
                &mut CatchUp::new(&PriceSource::new(0, 1)),
                &mut w,
            );
        }
        c.flush(&Event::new(9, 900), &mut w);
        assert_eq!(
            text(&c),
            "HEAD|id: 1\ndata: 1.00\n\nid: 2\ndata: 2.00\n\nid: 9\ndata: 9.00\n\n"
        );
    }

    #[test]
    fn folded_ticks_reach_streams_that_keep_up_in_order() {
        let mut w = Written::default();
        // Ticks 6, 7 and 8 folded into one fan-out.
        let mut source = PriceSource::new(5, 500);
        for cents in [600, 700, 800] {
            source.set(cents);
        }
        let now = source.current().clone();
        let parked_at = |id: u64, kind: Kind| {
            let mut c = conn(b"", false);
            c.start_stream(head(), kind, Some(id));
            c.flush(&Event::new(id, id * 100), &mut Written::default());
            c
        };
        let mut catch_up = CatchUp::new(&source);
        // Parked at the last fan-out: every event since, in order, in one write.
        let mut at_5 = parked_at(5, Kind::Stream);
        at_5.on_tick(&now, &mut catch_up, &mut w);
        assert_eq!(
            text(&at_5),
            "HEAD|id: 6\ndata: 6.00\n\nid: 7\ndata: 7.00\n\nid: 8\ndata: 8.00\n\n"
        );
        assert!(matches!(
            at_5.state,
            State::Parked(Waiter {
                last_id: Some(8),
                ..
            })
        ));
        // A write that finished mid-batch parked it at 6: it gets 7 and 8, not only 8.
        let mut at_6 = parked_at(6, Kind::Stream);
        at_6.on_tick(&now, &mut catch_up, &mut w);
        assert_eq!(
            text(&at_6),
            "HEAD|id: 7\ndata: 7.00\n\nid: 8\ndata: 8.00\n\n"
        );
        // Further behind than what is kept: the newest only.
        let mut at_1 = parked_at(1, Kind::Stream);
        at_1.on_tick(&now, &mut catch_up, &mut w);
        assert_eq!(text(&at_1), "HEAD|id: 8\ndata: 8.00\n\n");
        // A long poll takes one event: the newest.
        let mut lp = conn(b"", false);
        lp.start_stream(Rc::from(&[][..]), Kind::LongPoll, Some(5));
        lp.flush(&Event::new(5, 500), &mut w);
        lp.on_tick(&now, &mut catch_up, &mut w);
        assert!(text(&lp).ends_with("\r\n\r\nid: 8\ndata: 8.00\n\n"));
    }

    #[test]
    fn long_poll_sends_one_event_then_lingers() {
        let mut w = Written::default();
        let mut c = conn(b"", false);
        let empty: Rc<[u8]> = Rc::from(&[][..]);
        c.start_stream(empty, Kind::LongPoll, Some(4));
        assert_eq!(c.flush(&Event::new(4, 100), &mut w), Flow::Open);
        assert_eq!(text(&c), "");
        assert_eq!(
            c.on_tick(
                &Event::new(5, 120),
                &mut CatchUp::new(&PriceSource::new(0, 1)),
                &mut w
            ),
            Flow::Linger
        );
        assert!(text(&c).ends_with("\r\n\r\nid: 5\ndata: 1.20\n\n"));
        assert!(c.socket.shut.get());
        // Later ticks write nothing more.
        c.on_tick(
            &Event::new(6, 130),
            &mut CatchUp::new(&PriceSource::new(0, 1)),
            &mut w,
        );
        assert!(text(&c).ends_with("data: 1.20\n\n"));
    }

    #[test]
    fn write_errors_close_and_heartbeats_go_to_parked_streams_only() {
        let mut w = Written::default();
        let e = Event::new(1, 100);
        let beat: Rc<[u8]> = Rc::from(&b":\n"[..]);
        let mut c = conn(b"", false);
        c.start_stream(head(), Kind::Stream, Some(1));
        c.flush(&e, &mut w);
        assert_eq!(c.on_heartbeat(&beat, &e, &mut w), Flow::Open);
        assert_eq!(text(&c), "HEAD|:\n");
        // A broken pipe is the peer gone: a hang-up, decided in one place.
        c.socket.broken = true;
        assert_eq!(
            c.on_heartbeat(&beat, &e, &mut w),
            Flow::Close(CloseReason::Hangup)
        );
    }

    #[test]
    fn scgi_errors() {
        let mut scratch = [0u8; 256];
        let mut c = conn(b"5:abcde,", false);
        c.protocol = Protocol::Scgi;
        assert!(matches!(
            c.on_readable(&mut scratch, &rules()),
            Input::Flow(Flow::Close(CloseReason::BadRequest))
        ));
        // Over the body cap: a 413 answer.
        let big = scgi::encode(&[], &[b'x'; 100]);
        let mut c = conn(&big, false);
        c.protocol = Protocol::Scgi;
        assert!(matches!(
            c.on_readable(&mut scratch, &rules()),
            Input::Flow(Flow::Open)
        ));
        let mut w = Written::default();
        assert_eq!(c.flush(&Event::new(1, 1), &mut w), Flow::Linger);
        assert!(text(&c).starts_with("Status: 413 "));
        // A body longer than CONTENT_LENGTH.
        let mut long = scgi::encode(&[], b"ab");
        long.extend_from_slice(b"cd");
        let mut c = conn(&long, false);
        c.protocol = Protocol::Scgi;
        assert!(matches!(
            c.on_readable(&mut scratch, &rules()),
            Input::Flow(Flow::Close(CloseReason::BadRequest))
        ));
    }

    #[test]
    fn http_errors_are_answered() {
        let mut scratch = [0u8; 256];
        let mut c = conn(b"\x01\x02 nonsense\r\n\r\n", false);
        assert!(matches!(
            c.on_readable(&mut scratch, &rules()),
            Input::Flow(Flow::Open)
        ));
        c.flush(&Event::new(1, 1), &mut Written::default());
        assert!(text(&c).starts_with("HTTP/1.1 400 "));
        let mut c = conn(&[b'a'; 5000], false);
        assert!(matches!(
            c.on_readable(&mut scratch, &rules()),
            Input::Flow(Flow::Open)
        ));
        c.flush(&Event::new(1, 1), &mut Written::default());
        assert!(text(&c).starts_with("HTTP/1.1 4"), "{}", text(&c));
    }

    #[test]
    fn flood_after_the_request_closes() {
        let mut input = b"GET /ticker HTTP/1.1\r\n\r\n".to_vec();
        let mut c = conn(&input, false);
        let mut scratch = [0u8; 4096];
        assert!(matches!(
            c.on_readable(&mut scratch, &rules()),
            Input::Request(_)
        ));
        let e = Event::new(1, 1);
        c.start_stream(head(), Kind::Stream, None);
        c.flush(&e, &mut Written::default());
        input.clear();
        c.socket.input = vec![b'x'; READ_BUDGET + 10];
        assert!(matches!(
            c.on_readable(&mut scratch, &rules()),
            Input::Flow(Flow::Close(CloseReason::UnexpectedInput))
        ));
    }

    proptest::proptest! {
        /// Any bytes, in any chunks, over either protocol: the connection never panics,
        /// never holds more request bytes than the cap, and reaches an answer or keeps
        /// waiting; once it closes, nothing more happens.
        #[test]
        fn any_input_in_any_chunks(
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            cuts in proptest::collection::vec(1usize..400, 1..20),
            scgi in proptest::prelude::any::<bool>(),
            eof in proptest::prelude::any::<bool>(),
        ) {
            let rules = rules();
            let limit = rules.max_request(if scgi { Protocol::Scgi } else { Protocol::Http });
            let mut c = conn(b"", false);
            c.protocol = if scgi { Protocol::Scgi } else { Protocol::Http };
            c.socket.take = 7;
            let mut scratch = [0u8; 97];
            let mut w = Written::default();
            let now = Event::new(3, 300);
            let mut rest = &input[..];
            for cut in cuts.iter().cycle().take(64) {
                let n = (*cut).min(rest.len());
                c.socket.input.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                c.socket.eof = eof && rest.is_empty();
                let flow = match c.on_readable(&mut scratch, &rules) {
                    Input::Flow(f) => f,
                    Input::Request(Action::Stream { last_id } | Action::LongPoll { last_id }) => {
                        c.start_stream(head(), Kind::Stream, last_id);
                        Flow::Open
                    }
                    Input::Request(_) => {
                        c.start_response(Rc::from(&b"answer"[..]));
                        Flow::Open
                    }
                };
                if let State::Reading { buf, .. } = &c.state {
                    proptest::prop_assert!(buf.len() <= limit);
                }
                if let Flow::Close(_) = flow {
                    break;
                }
                if let Flow::Close(_) = c.flush(&now, &mut w) {
                    break;
                }
                if rest.is_empty() && !c.socket.eof {
                    break;
                }
            }
        }
    }
}
