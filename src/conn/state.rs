//! What a connection is at each moment (its states, and what a waiting client holds), and
//! what its handlers tell the core: the flow that follows, why it closed, what was written.

use std::io::{self, ErrorKind};

use crate::outbox::Outbox;
use crate::route::Action;

/// A waiting client: an event stream, or a long poll that ends after one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stream,
    LongPoll,
}

/// What a client waiting for updates holds: the id it has. Its symbols are in the
/// subscription index, under its connection key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    pub kind: Kind,
    /// The id of the last event this client has (sent, or its resume point): every update
    /// of its symbols up to it has reached it.
    pub last_id: u64,
    /// The peer shut its write side right after the request (lighttpd's
    /// `tcp-fin-propagate`): end-of-input then no longer means it left.
    pub input_closed: bool,
    /// Bytes went to it since the last heartbeat round, so it needs no heartbeat.
    pub active: bool,
}

/// What becomes of a connection once a finite answer is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// Our write side is shut and it lingers until the peer closes: SCGI (one request per
    /// connection), HTTP that asked to close, a refusal that leaves the framing in doubt.
    Close,
    /// HTTP persistence: it takes the next request, starting with what is held. (Boxed:
    /// this enum sits in every connection's state, which every stream pays for.)
    KeepAlive(Box<Held>),
}

/// What a kept-alive connection holds of its next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The bytes the peer sent after the answered request (pipelined), read already: until
    /// `WouldBlock`, or as many as a request may take, which then hold one whole.
    pub bytes: Vec<u8>,
    /// EOF came after them.
    pub input_closed: bool,
}

impl After {
    pub fn keep_alive(bytes: Vec<u8>, input_closed: bool) -> After {
        After::KeepAlive(Box::new(Held {
            bytes,
            input_closed,
        }))
    }

    pub(super) fn keeps_alive(&self) -> bool {
        !matches!(self, After::Close)
    }
}

/// What a connection becomes once its output is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// A stream waits for more.
    Park(Waiter),
    /// A finite answer (a long poll's too) is out.
    Finish(After),
}

#[derive(Debug)]
pub enum State {
    /// Gathering a request. `input_closed`: EOF came with it.
    Reading { buf: Vec<u8>, input_closed: bool },
    /// Kept alive after an answer, with nothing of the next request yet (all input was
    /// read, so the next comes with a readiness event): the peer may close, or the request
    /// deadline closes it.
    Idle,
    /// Waiting for an update of its symbols.
    Parked(Waiter),
    /// Output under way: shared pieces and how far they are written, and what the client
    /// becomes once they are out.
    Writing { out: Outbox, then: Then },
    /// A whole request is being carried out (at once, or through Redis for a publish): it
    /// starts a stream, or its answer comes with `start_response`. `after`: what follows
    /// that answer; `input_closed`: EOF came with the request (for the stream it starts).
    Awaiting { after: After, input_closed: bool },
    /// Response sent and our write side shut; input is drained until the peer closes, so
    /// that unread input cannot turn the close into a reset that destroys the response.
    Lingering,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The response was complete and the peer closed (a kept-alive one: between requests).
    Done,
    /// The peer closed or reset its side.
    Hangup,
    /// A read or write failed (EPIPE, ECONNRESET…).
    IoError,
    /// The request did not arrive in time.
    RequestTimeout,
    /// A kept-alive connection had no next request in time (`--request-timeout`).
    IdleTimeout,
    /// The peer did not close after a finished response in time.
    LingerTimeout,
    /// Unparseable request, closed without an answer (SCGI).
    BadRequest,
    /// A client sent data where none belongs.
    UnexpectedInput,
}

impl CloseReason {
    pub const ALL: [CloseReason; 8] = [
        CloseReason::Done,
        CloseReason::Hangup,
        CloseReason::IoError,
        CloseReason::RequestTimeout,
        CloseReason::IdleTimeout,
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
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::LingerTimeout => "linger_timeout",
            CloseReason::BadRequest => "bad_request",
            CloseReason::UnexpectedInput => "unexpected_input",
        }
    }
}

/// Why a failed read or write ended a connection: a peer that went away (reset, broken
/// pipe) is a hang-up like EOF; anything else is an I/O error.
pub(super) fn io_close_reason(e: &io::Error) -> CloseReason {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => {
            CloseReason::Hangup
        }
        _ => CloseReason::IoError,
    }
}

/// What the core should do after a handler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Open,
    /// Just entered `Lingering`: start its deadline.
    Linger,
    /// An answer is out and the connection kept alive: it waits for its next request,
    /// whose deadline starts now, and which may be held whole already (`take_held`).
    Next,
    Close(CloseReason),
}

/// The result of input on a connection.
#[derive(Debug)]
pub enum Input {
    Flow(Flow),
    /// A whole request (or one the parsers refuse): the core carries it out.
    Request(Action),
}

/// Counters of what connections wrote, added up for /metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub bytes: u64,
    /// write/writev calls that sent bytes.
    pub calls: u64,
    pub events: u64,
    pub heartbeats: u64,
}
