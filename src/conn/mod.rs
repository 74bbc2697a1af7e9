//! One client connection as a state machine over any `Read + Write` socket. It knows
//! nothing of the event loop: each handler does its I/O until `WouldBlock` and returns what
//! the core should do next. Generic so that tests drive it over a fake socket.
//!
//! An HTTP connection persists (RFC 9112 §9.3) across finite answers: after one it reads
//! the next request, starting with what the peer already sent after the last (pipelined).
//! SCGI carries one request per connection, and streams and long polls end with theirs.

use std::net::SocketAddr;
use std::rc::Rc;

mod carried;
mod input;
mod state;

pub use self::input::{RequestRules, READ_BUDGET};
pub use self::state::{After, CloseReason, Flow, Held, Input, Kind, State, Then, Waiter, Written};

use self::state::io_close_reason;

use self::input::{drain, parse, read_into, Drained, Parsed};
use crate::io::Socket;
use crate::outbox::{Outbox, Progress};
use crate::protocol::Protocol;
use crate::response::Dialect;
use crate::route::Action;
use crate::sse;

pub struct Connection<S> {
    socket: S,
    protocol: Protocol,
    state: State,
    /// Tells this connection from a later one that reuses its slab key, and a kept-alive
    /// one's request from its earlier ones (`renumber`).
    serial: u64,
    peer: Option<SocketAddr>,
    /// What the poller was last told: whether WRITABLE is in this socket's interest.
    registered_writable: bool,
}

impl<S> Connection<S> {
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn serial(&self) -> u64 {
        self.serial
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.socket
    }

    pub fn is_reading(&self) -> bool {
        matches!(self.state, State::Reading { .. })
    }

    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    pub fn is_lingering(&self) -> bool {
        matches!(self.state, State::Lingering)
    }

    /// How its answer is to be written now: over HTTP, whether its head says that the
    /// connection stays open (a request being carried out that keeps it alive).
    pub fn dialect(&self) -> Dialect {
        match (self.protocol, &self.state) {
            (Protocol::Scgi, _) => Dialect::Scgi,
            (Protocol::Http, State::Awaiting { after, .. }) if after.keeps_alive() => {
                Dialect::HttpKeepAlive
            }
            (Protocol::Http, _) => Dialect::HttpClose,
        }
    }

    /// Whether output is waiting for the socket to drain (WRITABLE interest then).
    pub fn wants_write(&self) -> bool {
        matches!(self.state, State::Writing { .. })
    }

    /// The interest the poller must be told (`Some(writable)`) when it is not what it was
    /// last told: WRITABLE only while output waits for the socket to drain.
    pub fn interest_change(&self) -> Option<bool> {
        let wants_write = self.wants_write();
        (wants_write != self.registered_writable).then_some(wants_write)
    }

    /// The poller was told `writable`.
    pub fn set_registered_writable(&mut self, writable: bool) {
        self.registered_writable = writable;
    }
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

    /// The socket has input, EOF or an error.
    pub fn on_readable(&mut self, scratch: &mut [u8], rules: &RequestRules) -> Input {
        let limit = rules.max_request(self.protocol);
        match &mut self.state {
            State::Reading { buf, input_closed } => {
                match read_into(&mut self.socket, scratch, buf, limit) {
                    Ok(eof) => *input_closed |= eof,
                    Err(e) => return Input::Flow(Flow::Close(io_close_reason(&e))),
                }
                self.take_request(scratch, rules)
            }
            State::Idle => {
                let mut buf = Vec::new();
                let eof = match read_into(&mut self.socket, scratch, &mut buf, limit) {
                    Ok(eof) => eof,
                    Err(e) => return Input::Flow(Flow::Close(io_close_reason(&e))),
                };
                if buf.is_empty() {
                    // A peer that closes between requests is done.
                    return Input::Flow(match eof {
                        true => Flow::Close(CloseReason::Done),
                        false => Flow::Open,
                    });
                }
                self.state = State::Reading {
                    buf,
                    input_closed: eof,
                };
                self.take_request(scratch, rules)
            }
            // The next request, come early: held (up to what a request may take; the rest
            // waits in the socket) for when the answer is out.
            State::Awaiting {
                after: After::KeepAlive(held),
                ..
            }
            | State::Writing {
                then: Then::Finish(After::KeepAlive(held)),
                ..
            } => Input::Flow(
                match read_into(&mut self.socket, scratch, &mut held.bytes, limit) {
                    Ok(eof) => {
                        held.input_closed |= eof;
                        Flow::Open
                    }
                    Err(e) => Flow::Close(io_close_reason(&e)),
                },
            ),
            State::Parked(Waiter { input_closed, .. })
            | State::Writing {
                then: Then::Park(Waiter { input_closed, .. }),
                ..
            } => {
                let input_closed = *input_closed;
                Input::Flow(self.drain_stray_input(scratch, input_closed))
            }
            State::Writing {
                then: Then::Finish(After::Close),
                ..
            }
            | State::Awaiting {
                after: After::Close,
                ..
            } => Input::Flow(self.drain_stray_input(scratch, true)),
            State::Lingering => Input::Flow(match drain(&mut self.socket, scratch) {
                Drained::WouldBlock(_) => Flow::Open,
                Drained::Eof | Drained::Error(_) => Flow::Close(CloseReason::Done),
            }),
        }
    }

    /// After `Flow::Next`: the next request when what is held has it whole. Otherwise the
    /// connection waits for input, which comes with a readiness event: what is held was
    /// read until `WouldBlock` (a full buffer would hold a whole request).
    pub fn take_held(&mut self, scratch: &mut [u8], rules: &RequestRules) -> Input {
        self.take_request(scratch, rules)
    }

    /// Parses what `Reading` holds: a whole request is carried out (the state holds what
    /// follows its answer, and the bytes after it), a partial one waits for more.
    fn take_request(&mut self, scratch: &mut [u8], rules: &RequestRules) -> Input {
        let limit = rules.max_request(self.protocol);
        let State::Reading { buf, input_closed } = &mut self.state else {
            return Input::Flow(Flow::Open);
        };
        let (action, after) = match parse(self.protocol, buf, rules) {
            Parsed::Partial if *input_closed || buf.len() >= limit => {
                // Too long cannot be partial: the parsers refuse first. So this is a peer
                // that left mid-request.
                return Input::Flow(Flow::Close(CloseReason::Hangup));
            }
            Parsed::Partial => return Input::Flow(Flow::Open),
            Parsed::Request {
                action,
                used,
                keep_alive,
            } => {
                // A read that stopped at the cap left input in the socket, which no
                // readiness event will announce: read on into the room the request leaves.
                let full = buf.len() >= limit;
                buf.drain(..used);
                if full && keep_alive && !*input_closed {
                    match read_into(&mut self.socket, scratch, buf, limit) {
                        Ok(eof) => *input_closed |= eof,
                        Err(e) => return Input::Flow(Flow::Close(io_close_reason(&e))),
                    }
                }
                // Kept alive unless the peer has shut its side with nothing more to ask.
                let after = match keep_alive && !(*input_closed && buf.is_empty()) {
                    true => After::keep_alive(std::mem::take(buf), *input_closed),
                    false => After::Close,
                };
                (action, after)
            }
            // Answered by the core, with every other refusal.
            Parsed::Refuse(status, why) => (Action::Refuse(status, why), After::Close),
            Parsed::Drop(why) => {
                log::warn!("{}: closed: {why}", self.describe());
                return Input::Flow(Flow::Close(CloseReason::BadRequest));
            }
        };
        let input_closed = *input_closed;
        self.state = State::Awaiting {
            after,
            input_closed,
        };
        Input::Request(action)
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
                    out: Outbox::one(Rc::from(sse::HEARTBEAT)),
                    then: Then::Park(*w),
                };
                Flow::Open
            }
            // Output under way is the probe already.
            State::Writing {
                then: Then::Park(w),
                ..
            } if w.kind == Kind::Stream => {
                w.input_closed = true;
                Flow::Open
            }
            // A long poll cannot take a comment inside its Content-Length.
            _ => Flow::Close(CloseReason::Hangup),
        }
    }

    /// Starts a stream or long poll resuming after id `after`: the client waits, and the
    /// loop hands it what is due with `deliver` (a stream's head goes with its first
    /// delivery).
    pub fn start_stream(&mut self, kind: Kind, after: u64) {
        let input_closed = self.input_closed();
        self.state = State::Parked(Waiter {
            kind,
            last_id: after,
            input_closed,
            active: false,
        });
    }

    /// A stream ends with `last` (an `event: reauth`), written after whatever it is writing
    /// now; then the connection closes. Returns whether it was a stream; anything else is
    /// left as it is.
    pub fn end_stream(&mut self, last: Rc<[u8]>) -> bool {
        match std::mem::replace(&mut self.state, State::Lingering) {
            State::Parked(w) if w.kind == Kind::Stream => {
                self.state = State::Writing {
                    out: Outbox::one(last),
                    then: Then::Finish(After::Close),
                };
                true
            }
            State::Writing {
                mut out,
                then: Then::Park(w),
            } if w.kind == Kind::Stream => {
                out.push(last);
                self.state = State::Writing {
                    out,
                    then: Then::Finish(After::Close),
                };
                true
            }
            other => {
                self.state = other;
                false
            }
        }
    }

    /// Starts a finite response, written in [`Connection::dialect`]'s terms; once written,
    /// the connection reads its next request (kept alive) or lingers, then closes.
    pub fn start_response(&mut self, bytes: Rc<[u8]>) {
        let after = match std::mem::replace(&mut self.state, State::Lingering) {
            State::Awaiting { after, .. } => after,
            // (Refused at accept: it closes.)
            _ => After::Close,
        };
        self.state = State::Writing {
            out: Outbox::one(bytes),
            then: Then::Finish(after),
        };
    }

    fn input_closed(&self) -> bool {
        match &self.state {
            State::Reading { input_closed, .. } | State::Awaiting { input_closed, .. } => {
                *input_closed
            }
            State::Parked(w)
            | State::Writing {
                then: Then::Park(w),
                ..
            } => w.input_closed,
            State::Idle => false,
            State::Writing { .. } | State::Lingering => true,
        }
    }

    /// The waiting client, if this one is parked.
    pub fn waiting(&self) -> Option<Waiter> {
        match self.state {
            State::Parked(w) => Some(w),
            _ => None,
        }
    }

    /// A parked client starts writing `out`, which carries `events` events up to id
    /// `last_id`: a stream then waits for more, a long poll ends with it. Any other client
    /// is left as it is (the core only delivers to parked ones).
    pub fn deliver(&mut self, out: Outbox, last_id: u64, events: u64, written: &mut Written) {
        let State::Parked(w) = self.state else {
            return;
        };
        written.events += events;
        let then = match w.kind {
            Kind::Stream => Then::Park(Waiter {
                last_id,
                active: true,
                ..w
            }),
            Kind::LongPoll => Then::Finish(After::Close),
        };
        self.state = State::Writing { out, then };
    }

    /// A parked long poll held too long is answered with what it has: it rewinds to the
    /// start, so that everything is due. Returns whether it was one.
    pub fn rewind_long_poll(&mut self) -> bool {
        match &mut self.state {
            State::Parked(w) if w.kind == Kind::LongPoll => {
                w.last_id = 0;
                true
            }
            _ => false,
        }
    }

    /// A parked client whose last id is above `newest` (held for another instance's id that
    /// this one never reached) rewinds to the start: everything is due. Returns whether it
    /// did.
    pub fn rewind_if_ahead(&mut self, newest: u64) -> bool {
        match &mut self.state {
            State::Parked(w) if w.last_id > newest => {
                w.last_id = 0;
                true
            }
            _ => false,
        }
    }

    /// Heartbeat round: a comment to a parked stream that had no bytes since the last round
    /// (not to a long poll, whose body has a length). Every stream's `active` restarts.
    pub fn on_heartbeat(&mut self, beat: &Rc<[u8]>, written: &mut Written) -> Flow {
        match &mut self.state {
            State::Parked(w) if w.kind == Kind::Stream && w.active => {
                w.active = false;
                Flow::Open
            }
            State::Parked(w) if w.kind == Kind::Stream => {
                written.heartbeats += 1;
                self.state = State::Writing {
                    out: Outbox::one(beat.clone()),
                    then: Then::Park(*w),
                };
                self.flush(written)
            }
            State::Writing {
                then: Then::Park(w),
                ..
            } => {
                w.active = false;
                Flow::Open
            }
            _ => Flow::Open,
        }
    }

    /// Writes pending output until done or `WouldBlock`. When done, a stream parks (the
    /// loop then hands it whatever changed meanwhile), a finished response on a kept-alive
    /// connection goes back to reading (`Flow::Next`), and any other lingers.
    pub fn flush(&mut self, written: &mut Written) -> Flow {
        let State::Writing { out, then } = &mut self.state else {
            return Flow::Open;
        };
        match out.write_to(&mut self.socket, &mut written.bytes, &mut written.calls) {
            Ok(Progress::Blocked) => return Flow::Open,
            Ok(Progress::Done) => {}
            Err(e) => return Flow::Close(io_close_reason(&e)),
        }
        match std::mem::replace(then, Then::Finish(After::Close)) {
            Then::Park(w) => {
                self.state = State::Parked(w);
                Flow::Open
            }
            Then::Finish(After::Close) => {
                // Our side is done: tell the peer with a FIN, then wait for its close.
                let _ = self.socket.shutdown_write();
                self.state = State::Lingering;
                Flow::Linger
            }
            Then::Finish(After::KeepAlive(held)) => {
                let Held {
                    bytes: held,
                    input_closed,
                } = *held;
                match (held.is_empty(), input_closed) {
                    // The peer shut its side after its last request: nothing more can come.
                    (true, true) => return Flow::Close(CloseReason::Done),
                    (true, false) => self.state = State::Idle,
                    (false, _) => {
                        self.state = State::Reading {
                            buf: held,
                            input_closed,
                        }
                    }
                }
                Flow::Next
            }
        }
    }

    /// Gives this connection a new serial: a kept-alive one's next request is told from its
    /// last that way (deadlines and Redis answers name a request by key and serial).
    pub fn renumber(&mut self, serial: u64) {
        self.serial = serial;
    }

    /// A short label for log lines: protocol, serial and peer.
    pub fn describe(&self) -> String {
        let proto = self.protocol.name();
        match self.peer {
            Some(peer) => format!("{proto}#{} {peer}", self.serial),
            None => format!("{proto}#{}", self.serial),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeSocket as Fake;
    use crate::publish::PublishError;
    use crate::{http, route, scgi};

    mod keep_alive;

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
            route: route::Rules {
                publish_token: None,
                max_symbols: 8,
                trust_remote_user: false,
                tokens: false,
                auth_cookie: None,
            },
        }
    }

    fn conn(input: &[u8], eof: bool) -> Connection<Fake> {
        Connection::new(Fake::new(3, input, eof), Protocol::Http, 1, None)
    }

    fn head() -> Rc<[u8]> {
        Rc::from(&b"HEAD|"[..])
    }

    fn text(c: &Connection<Fake>) -> String {
        c.socket.text()
    }

    #[test]
    fn request_split_across_reads() {
        let mut c = conn(b"GET /tick", false);
        let mut scratch = [0u8; 4];
        assert!(matches!(
            c.on_readable(&mut scratch, &rules()),
            Input::Flow(Flow::Open)
        ));
        c.socket.pipe().input = b"er HTTP/1.1\r\nLast-Event-ID: 5\r\n\r\n".to_vec();
        match c.on_readable(&mut scratch, &rules()) {
            Input::Request(Action::Stream(crate::route::StreamAsk {
                last_id: Some(5), ..
            })) => {}
            other => panic!("{other:?}"),
        }
    }

    fn events(bytes: &str) -> Outbox {
        Outbox::one(Rc::from(bytes.as_bytes()))
    }

    /// A stream started after `after`, its head delivered and written.
    fn streaming(c: &mut Connection<Fake>, after: u64, w: &mut Written) {
        c.start_stream(Kind::Stream, after);
        c.deliver(Outbox::one(head()), after, 0, w);
        c.flush(w);
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
        streaming(&mut c, 10, &mut w);
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
        streaming(&mut d, 10, &mut w);
        // EOF in a wake-up of its own: a heartbeat probes whether the peer is still there.
        d.socket.pipe().eof = true;
        assert!(matches!(
            d.on_readable(&mut scratch, &rules()),
            Input::Flow(Flow::Open)
        ));
        assert_eq!(d.flush(&mut w), Flow::Open);
        assert!(text(&d).ends_with(std::str::from_utf8(sse::HEARTBEAT).unwrap()));
        // A peer that left answers with a reset: the next write is the hang-up.
        d.socket.pipe().broken = true;
        d.deliver(events("id: 11\n\n"), 11, 1, &mut w);
        assert_eq!(d.flush(&mut w), Flow::Close(CloseReason::Hangup));
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
    fn a_stream_parks_after_each_delivery_with_its_last_id() {
        let mut w = Written::default();
        let mut c = conn(b"", false);
        c.start_stream(Kind::Stream, 4);
        assert_eq!(c.waiting().map(|w| w.last_id), Some(4));
        let mut first: Vec<Rc<[u8]>> = vec![head()];
        first.push(Rc::from(&b"id: 5\n\n"[..]));
        first.push(Rc::from(&b"id: 7\n\n"[..]));
        c.deliver(Outbox::new(first), 7, 2, &mut w);
        c.socket.pipe().take = 3; // the socket takes 3 bytes per write
        assert_eq!(c.flush(&mut w), Flow::Open);
        assert_eq!(text(&c), "HEAD|id: 5\n\nid: 7\n\n");
        assert_eq!(c.waiting().map(|w| w.last_id), Some(7));
        assert_eq!((w.events, w.bytes), (2, 19));
    }

    /// The connection holds one outbox: a delivery to a client that is still writing is
    /// refused (the core hands it what changed when its write completes).
    #[test]
    fn a_client_still_writing_takes_no_second_delivery() {
        let mut w = Written::default();
        let mut c = conn(b"", false);
        c.socket.pipe().blocked = true;
        c.start_stream(Kind::Stream, 1);
        c.deliver(Outbox::one(head()), 1, 0, &mut w);
        assert_eq!(c.flush(&mut w), Flow::Open);
        assert!(c.waiting().is_none());
        c.deliver(events("id: 2\n\n"), 2, 1, &mut w);
        c.socket.pipe().blocked = false;
        c.flush(&mut w);
        assert_eq!(text(&c), "HEAD|");
        assert_eq!(c.waiting().map(|w| w.last_id), Some(1));
        assert_eq!(w.events, 0);
    }

    #[test]
    fn a_long_poll_sends_one_answer_then_lingers() {
        let mut w = Written::default();
        let mut c = conn(b"", false);
        c.start_stream(Kind::LongPoll, 4);
        assert_eq!(c.flush(&mut w), Flow::Open);
        assert_eq!(text(&c), "");
        c.deliver(events("answer"), 5, 1, &mut w);
        assert_eq!(c.flush(&mut w), Flow::Linger);
        assert_eq!(text(&c), "answer");
        assert!(c.socket.pipe().shut);
        assert!(matches!(c.state, State::Lingering));
        // Nothing more is written.
        c.deliver(events("more"), 6, 1, &mut w);
        c.flush(&mut w);
        assert_eq!(text(&c), "answer");
    }

    #[test]
    fn heartbeats_go_to_parked_streams_that_had_nothing_since_the_last_round() {
        let mut w = Written::default();
        let beat: Rc<[u8]> = Rc::from(&b":\n"[..]);
        let mut c = conn(b"", false);
        streaming(&mut c, 1, &mut w);
        // It just had its head: this round skips it, the next one beats.
        assert_eq!(c.on_heartbeat(&beat, &mut w), Flow::Open);
        assert_eq!(text(&c), "HEAD|");
        assert_eq!(c.on_heartbeat(&beat, &mut w), Flow::Open);
        assert_eq!(text(&c), "HEAD|:\n");
        assert_eq!(w.heartbeats, 1);
        // A long poll never gets one.
        let mut lp = conn(b"", false);
        lp.start_stream(Kind::LongPoll, 1);
        lp.on_heartbeat(&beat, &mut w);
        lp.on_heartbeat(&beat, &mut w);
        assert_eq!(text(&lp), "");
        // A broken pipe is the peer gone: a hang-up, decided in one place.
        c.socket.pipe().broken = true;
        assert_eq!(
            c.on_heartbeat(&beat, &mut w),
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
        // Over the body cap: a 413 answer (rendered by the core: core/tests.rs).
        let big = scgi::encode(&[], &[b'x'; 100]);
        let mut c = conn(&big, false);
        c.protocol = Protocol::Scgi;
        assert!(matches!(
            c.on_readable(&mut scratch, &rules()),
            Input::Request(Action::Refuse(413, _))
        ));
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
        // Refused with a status the core answers (the bytes: core/tests.rs).
        let mut c = conn(b"\x01\x02 nonsense\r\n\r\n", false);
        assert!(matches!(
            c.on_readable(&mut scratch, &rules()),
            Input::Request(Action::Refuse(400, _))
        ));
        let mut c = conn(&[b'a'; 5000], false);
        match c.on_readable(&mut scratch, &rules()) {
            Input::Request(Action::Refuse(status, _)) => assert!((400..500).contains(&status)),
            other => panic!("{other:?}"),
        }
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
        streaming(&mut c, 0, &mut Written::default());
        input.clear();
        c.socket.pipe().input = vec![b'x'; READ_BUDGET + 10];
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
            c.socket.pipe().take = 7;
            let mut scratch = [0u8; 97];
            let mut w = Written::default();
            let mut rest = &input[..];
            for cut in cuts.iter().cycle().take(64) {
                let n = (*cut).min(rest.len());
                c.socket.pipe().input.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                c.socket.pipe().eof = eof && rest.is_empty();
                let flow = match c.on_readable(&mut scratch, &rules) {
                    Input::Flow(f) => f,
                    Input::Request(Action::Stream(ask) | Action::LongPoll(ask)) => {
                        let last_id = ask.last_id;
                        streaming(&mut c, last_id.unwrap_or(0), &mut w);
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
                if let Flow::Close(_) = c.flush(&mut w) {
                    break;
                }
                if rest.is_empty() && !c.socket.pipe().eof {
                    break;
                }
            }
        }
    }
}
