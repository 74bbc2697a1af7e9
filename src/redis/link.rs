//! One outbound connection to Redis, as a state machine of the same kind as a client
//! connection: `Down` (waiting to retry) → `Connecting` → `Up` (commands written, replies
//! read in order, each matched to the request that asked) → `Down` again on any failure,
//! with a jittered backoff that grows from 250 ms to 10 s. Generic over the socket, so that
//! tests drive it over a fake one; the driver connects and registers it through `Io`.
//!
//! A request has a deadline: a Redis that stops answering (SIGSTOP, a cut network) fails the
//! link when the oldest request is overdue, so nothing waits on it for ever.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use rand::Rng;

use super::wire::{self, Frame, RespError};

/// The first wait after a failure, and the longest.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long a connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest reply taken (a 100,000-symbol universe loads in about 5 MB).
pub const MAX_REPLY: usize = 256 << 20;

/// Why a link went down.
#[derive(Debug)]
pub enum LinkError {
    Io(io::Error),
    Closed,
    Protocol(RespError),
    /// A reply with no request waiting for it.
    Unasked,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Io(e) => write!(f, "{e}"),
            LinkError::Closed => f.write_str("Redis closed the connection"),
            LinkError::Protocol(e) => write!(f, "{e}"),
            LinkError::Unasked => f.write_str("a reply nobody asked for"),
        }
    }
}

enum State<S, T> {
    Down {
        retry_at: Instant,
    },
    Connecting {
        socket: S,
        deadline: Instant,
    },
    Up {
        socket: S,
        out: Vec<u8>,
        input: Vec<u8>,
        /// Requests sent, oldest first, with their deadlines.
        waiting: VecDeque<(T, Instant)>,
    },
}

pub struct Link<S, T> {
    state: State<S, T>,
    /// The wait after the next failure.
    backoff: Duration,
}

impl<S: Read + Write, T> Link<S, T> {
    /// A link that may connect at once.
    pub fn new(now: Instant) -> Self {
        Link {
            state: State::Down { retry_at: now },
            backoff: BACKOFF_MIN,
        }
    }

    /// Down and its wait is over.
    pub fn may_connect(&self, now: Instant) -> bool {
        matches!(self.state, State::Down { retry_at } if retry_at <= now)
    }

    /// A connect was started on `socket`.
    pub fn connecting(&mut self, socket: S, now: Instant) {
        self.state = State::Connecting {
            socket,
            deadline: now + CONNECT_TIMEOUT,
        };
    }

    pub fn is_connecting(&self) -> bool {
        matches!(self.state, State::Connecting { .. })
    }

    pub fn is_up(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    /// The connect completed.
    pub fn connected(&mut self) {
        if let State::Connecting { .. } = self.state {
            let State::Connecting { socket, .. } =
                std::mem::replace(&mut self.state, State::Down { retry_at: far() })
            else {
                unreachable!()
            };
            self.state = State::Up {
                socket,
                out: Vec::new(),
                input: Vec::new(),
                waiting: VecDeque::new(),
            };
        }
    }

    pub fn socket(&mut self) -> Option<&mut S> {
        match &mut self.state {
            State::Down { .. } => None,
            State::Connecting { socket, .. } | State::Up { socket, .. } => Some(socket),
        }
    }

    /// Queues a command (its RESP bytes) answered by the reply for `tag`, due by `deadline`.
    /// Returns the tag back when the link is not up.
    pub fn send(&mut self, command: &[u8], tag: T, deadline: Instant) -> Result<(), T> {
        match &mut self.state {
            State::Up { out, waiting, .. } => {
                out.extend_from_slice(command);
                waiting.push_back((tag, deadline));
                Ok(())
            }
            _ => Err(tag),
        }
    }

    /// Requests waiting for their reply.
    pub fn waiting(&self) -> usize {
        match &self.state {
            State::Up { waiting, .. } => waiting.len(),
            _ => 0,
        }
    }

    /// Writes queued commands until done or `WouldBlock`.
    pub fn flush(&mut self) -> Result<(), LinkError> {
        let State::Up { socket, out, .. } = &mut self.state else {
            return Ok(());
        };
        let mut written = 0;
        let result = loop {
            if written == out.len() {
                break Ok(());
            }
            match socket.write(&out[written..]) {
                Ok(0) => break Err(LinkError::Closed),
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Err(LinkError::Io(e)),
            }
        };
        out.drain(..written);
        result
    }

    /// Reads what Redis sent and returns the whole replies, each with the tag of the request
    /// it answers, in order.
    pub fn read(&mut self, scratch: &mut [u8]) -> Result<Vec<(T, Frame)>, LinkError> {
        let State::Up {
            socket,
            input,
            waiting,
            ..
        } = &mut self.state
        else {
            return Ok(Vec::new());
        };
        let mut replies = Vec::new();
        loop {
            match socket.read(scratch) {
                Ok(0) => return Err(LinkError::Closed),
                Ok(n) => input.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(LinkError::Io(e)),
            }
            // Take replies as they complete, so that the buffer holds at most one.
            take_replies(input, waiting, &mut replies)?;
        }
        take_replies(input, waiting, &mut replies)?;
        if !replies.is_empty() {
            // Redis answers: the next failure starts the backoff afresh.
            self.backoff = BACKOFF_MIN;
        }
        Ok(replies)
    }

    /// The earliest moment something is due: a retry, a connect's or a request's deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Down { retry_at } => Some(*retry_at),
            State::Connecting { deadline, .. } => Some(*deadline),
            // Not only the oldest: a publish (2 s) may wait behind a load (10 s).
            State::Up { waiting, .. } => waiting.iter().map(|(_, d)| *d).min(),
        }
    }

    /// A connect or any request has passed its deadline.
    pub fn overdue(&self, now: Instant) -> bool {
        match &self.state {
            State::Down { .. } => false,
            State::Connecting { deadline, .. } => *deadline <= now,
            State::Up { waiting, .. } => waiting.iter().any(|(_, d)| *d <= now),
        }
    }

    /// Down: the socket is dropped (closed), the next attempt waits for the backoff, which
    /// doubles up to `BACKOFF_MAX`, each wait spread over ±50 % so that instances do not
    /// come back in step. Returns the requests that will never be answered.
    pub fn fail<R: Rng>(&mut self, now: Instant, rng: &mut R) -> Vec<T> {
        let wait = self.backoff.mul_f64(rng.gen_range(0.5..1.5));
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        match std::mem::replace(
            &mut self.state,
            State::Down {
                retry_at: now + wait,
            },
        ) {
            State::Up { waiting, .. } => waiting.into_iter().map(|(tag, _)| tag).collect(),
            _ => Vec::new(),
        }
    }

    /// Drops the socket and connects again at once, with no backoff: Redis closed a
    /// connection that had nothing pending (its `timeout` for idle clients), nothing failed.
    pub fn reconnect_now(&mut self, now: Instant) {
        self.state = State::Down { retry_at: now };
    }

    /// How long the current backoff is (for the log line).
    pub fn retry_in(&self, now: Instant) -> Option<Duration> {
        match self.state {
            State::Down { retry_at } => Some(retry_at.saturating_duration_since(now)),
            _ => None,
        }
    }
}

fn take_replies<T>(
    input: &mut Vec<u8>,
    waiting: &mut VecDeque<(T, Instant)>,
    replies: &mut Vec<(T, Frame)>,
) -> Result<(), LinkError> {
    while let Some(frame) = wire::take_reply(input, MAX_REPLY).map_err(LinkError::Protocol)? {
        let (tag, _) = waiting.pop_front().ok_or(LinkError::Unasked)?;
        replies.push((tag, frame));
    }
    Ok(())
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    use crate::fake::FakeSocket as Fake;

    fn up(now: Instant) -> Link<Fake, u32> {
        let mut link = Link::new(now);
        assert!(link.may_connect(now));
        link.connecting(Fake::default(), now);
        link.connected();
        assert!(link.is_up());
        link
    }

    #[test]
    fn replies_are_matched_to_requests_in_order_across_reads() {
        let now = Instant::now();
        let mut link = up(now);
        let later = now + Duration::from_secs(2);
        link.send(b"A", 1, later).unwrap();
        link.send(b"B", 2, later).unwrap();
        link.socket().unwrap().pipe().take = 1;
        link.flush().unwrap();
        link.flush().unwrap();
        assert_eq!(link.socket().unwrap().pipe().output, b"AB");
        let mut scratch = [0u8; 3];
        link.socket().unwrap().pipe().input = b":1\r\n$2".to_vec();
        let got = link.read(&mut scratch).unwrap();
        assert_eq!(got, [(1, Frame::Integer(1))]);
        link.socket().unwrap().pipe().input = b"\r\nhi\r\n".to_vec();
        let got = link.read(&mut scratch).unwrap();
        assert_eq!(got, [(2, Frame::BulkString(b"hi".to_vec()))]);
        assert_eq!(link.waiting(), 0);
    }

    #[test]
    fn garbage_an_unasked_reply_or_eof_fail_the_link() {
        let now = Instant::now();
        let mut scratch = [0u8; 64];
        let mut link = up(now);
        link.send(b"A", 1, now).unwrap();
        link.socket().unwrap().pipe().input = b"?garbage\r\n".to_vec();
        assert!(matches!(
            link.read(&mut scratch),
            Err(LinkError::Protocol(_))
        ));
        let mut link = up(now);
        link.socket().unwrap().pipe().input = b"+OK\r\n".to_vec();
        assert!(matches!(link.read(&mut scratch), Err(LinkError::Unasked)));
        let mut link = up(now);
        link.socket().unwrap().pipe().eof = true;
        assert!(matches!(link.read(&mut scratch), Err(LinkError::Closed)));
    }

    #[test]
    fn an_overdue_request_and_the_backoff() {
        let now = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut link = up(now);
        link.send(b"A", 7, now + Duration::from_secs(2)).unwrap();
        assert!(!link.overdue(now + Duration::from_secs(1)));
        assert!(link.overdue(now + Duration::from_secs(2)));
        assert_eq!(
            link.fail(now, &mut rng),
            [7],
            "the pending request is handed back"
        );
        assert_eq!(link.send(b"B", 8, now), Err(8), "down: nothing is queued");
        // Waits grow 250 ms → 10 s, each spread over ±50 %.
        let mut expected = BACKOFF_MIN;
        for _ in 0..10 {
            let wait = link.retry_in(now).unwrap();
            assert!(
                wait >= expected / 2 && wait <= expected * 3 / 2,
                "{wait:?} for {expected:?}"
            );
            link.connecting(Fake::default(), now);
            link.fail(now, &mut rng);
            expected = (expected * 2).min(BACKOFF_MAX);
        }
        assert_eq!(expected, BACKOFF_MAX);
        // A reply resets it.
        let mut link = up(now);
        link.backoff = BACKOFF_MAX;
        link.send(b"A", 1, now).unwrap();
        link.socket().unwrap().pipe().input = b"+OK\r\n".to_vec();
        link.read(&mut [0u8; 16]).unwrap();
        link.fail(now, &mut rng);
        assert!(link.retry_in(now).unwrap() < BACKOFF_MIN * 2);
    }
}
