//! HTTP persistence over a fake socket: after a finite answer the connection takes the next
//! request (from what it holds, or when input comes), unless the request, its version or
//! its framing says close.

use super::*;

/// What the test reads back of a request the connection took.
fn request(c: &mut Connection<Fake>) -> Action {
    match c.on_readable(&mut [0u8; 64], &rules()) {
        Input::Request(action) => action,
        other => panic!("no request: {other:?}, state {:?}", c.state),
    }
}

/// The next request after `Flow::Next`, from what the connection holds (no read).
fn held(c: &mut Connection<Fake>) -> Option<Action> {
    match c.take_held(&mut [0u8; 64], &rules()) {
        Input::Request(action) => Some(action),
        Input::Flow(Flow::Open) => None,
        other => panic!("{other:?}"),
    }
}

/// Answers the request under way with `answer`, as the core does (in the connection's
/// dialect), and writes it; returns what the write settled.
fn answer(c: &mut Connection<Fake>, answer: &str) -> (Dialect, Flow) {
    let dialect = c.dialect();
    c.start_response(Rc::from(answer.as_bytes()));
    (dialect, c.flush(&mut Written::default()))
}

const SYMBOLS: &str = "GET /symbols HTTP/1.1\r\nHost: t\r\n\r\n";
const NOPE: &str = "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n";
const METRICS: &str = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn two_requests_back_to_back_on_one_connection() {
    let mut c = conn(SYMBOLS.as_bytes(), false);
    assert!(matches!(request(&mut c), Action::Symbols { .. }));
    assert_eq!(answer(&mut c, "A"), (Dialect::HttpKeepAlive, Flow::Next));
    assert!(matches!(c.state, State::Idle));
    assert!(!c.socket.pipe().shut, "our side stays open");
    // Nothing yet: it waits.
    assert!(matches!(
        c.on_readable(&mut [0u8; 64], &rules()),
        Input::Flow(Flow::Open)
    ));
    // A 404 is a whole request answered: still kept alive.
    c.socket.pipe().input = NOPE.as_bytes().to_vec();
    assert_eq!(request(&mut c), Action::NotFound);
    assert_eq!(answer(&mut c, "B"), (Dialect::HttpKeepAlive, Flow::Next));
    c.socket.pipe().input = METRICS.as_bytes().to_vec();
    assert_eq!(request(&mut c), Action::Metrics);
    assert_eq!(answer(&mut c, "C"), (Dialect::HttpKeepAlive, Flow::Next));
    assert_eq!(text(&c), "ABC");
    // The peer closes between requests: done, not a hang-up.
    c.socket.pipe().eof = true;
    assert!(matches!(
        c.on_readable(&mut [0u8; 64], &rules()),
        Input::Flow(Flow::Close(CloseReason::Done))
    ));
}

#[test]
fn pipelined_requests_in_one_read_are_answered_in_turn() {
    let publish = "POST /publish HTTP/1.1\r\nContent-Length: 4\r\n\r\n1.25";
    let input = format!("{SYMBOLS}{publish}{METRICS}GET /tick");
    let mut c = conn(input.as_bytes(), false);
    assert!(matches!(request(&mut c), Action::Symbols { .. }));
    assert!(c.socket.pipe().input.is_empty(), "read until WouldBlock");
    assert_eq!(answer(&mut c, "1"), (Dialect::HttpKeepAlive, Flow::Next));
    // The next requests come out of what was held, with nothing more read.
    assert!(matches!(
        held(&mut c),
        Some(Action::PublishRefused(PublishError::Disabled))
    ));
    assert_eq!(answer(&mut c, "2"), (Dialect::HttpKeepAlive, Flow::Next));
    assert_eq!(held(&mut c), Some(Action::Metrics));
    assert_eq!(answer(&mut c, "3"), (Dialect::HttpKeepAlive, Flow::Next));
    // The last one is partial: it waits for the rest, which comes with a readiness event.
    assert_eq!(held(&mut c), None);
    c.socket.pipe().input = b"er HTTP/1.1\r\n\r\n".to_vec();
    assert!(matches!(request(&mut c), Action::Stream { .. }));
    assert_eq!(text(&c), "123");
}

#[test]
fn a_request_sent_after_the_answer_waits_for_its_readiness_event() {
    let mut c = conn(SYMBOLS.as_bytes(), false);
    request(&mut c);
    assert_eq!(answer(&mut c, "1"), (Dialect::HttpKeepAlive, Flow::Next));
    // Sent after the answer: not taken with it (a publisher's publishes sent one by one
    // each get a wake-up, and so a fan-out, of their own).
    c.socket.pipe().input = METRICS.as_bytes().to_vec();
    assert_eq!(held(&mut c), None);
    assert_eq!(request(&mut c), Action::Metrics);
}

#[test]
fn a_buffer_full_of_pipelined_requests_is_read_on_as_they_are_taken() {
    // More than a request may take (1,088 bytes here): the first read stops at the cap,
    // and the rest would never come with a readiness event of its own.
    let input = SYMBOLS.repeat(60);
    let mut c = conn(input.as_bytes(), false);
    assert!(matches!(request(&mut c), Action::Symbols { .. }));
    assert!(!c.socket.pipe().input.is_empty(), "stopped at the cap");
    let mut answered = 1;
    loop {
        assert_eq!(answer(&mut c, "."), (Dialect::HttpKeepAlive, Flow::Next));
        match held(&mut c) {
            Some(Action::Symbols { .. }) => answered += 1,
            None => break,
            Some(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(answered, 60);
    assert!(matches!(c.state, State::Idle));
}

#[test]
fn a_request_sent_while_the_answer_is_written_is_held_for_after_it() {
    let mut c = conn(SYMBOLS.as_bytes(), false);
    request(&mut c);
    c.socket.pipe().blocked = true;
    assert_eq!(
        answer(&mut c, "answer"),
        (Dialect::HttpKeepAlive, Flow::Open)
    );
    // The next request arrives before the answer could go: held, not thrown away.
    c.socket.pipe().input = METRICS.as_bytes().to_vec();
    assert!(matches!(
        c.on_readable(&mut [0u8; 64], &rules()),
        Input::Flow(Flow::Open)
    ));
    assert!(c.socket.pipe().input.is_empty());
    c.socket.pipe().blocked = false;
    assert_eq!(c.flush(&mut Written::default()), Flow::Next);
    assert_eq!(held(&mut c), Some(Action::Metrics));
    assert_eq!(text(&c), "answer");
}

#[test]
fn a_peer_that_shuts_its_side_while_answered_is_closed_once_the_answer_is_out() {
    let mut c = conn(SYMBOLS.as_bytes(), false);
    request(&mut c);
    c.socket.pipe().blocked = true;
    assert_eq!(
        answer(&mut c, "answer"),
        (Dialect::HttpKeepAlive, Flow::Open)
    );
    c.socket.pipe().eof = true;
    assert!(matches!(
        c.on_readable(&mut [0u8; 64], &rules()),
        Input::Flow(Flow::Open)
    ));
    c.socket.pipe().blocked = false;
    assert_eq!(
        c.flush(&mut Written::default()),
        Flow::Close(CloseReason::Done)
    );
    assert_eq!(text(&c), "answer");
}

#[test]
fn connection_close_is_honoured_and_what_follows_is_not_answered() {
    let input = format!("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n{SYMBOLS}");
    let mut c = conn(input.as_bytes(), false);
    assert_eq!(request(&mut c), Action::Metrics);
    assert_eq!(answer(&mut c, "M"), (Dialect::HttpClose, Flow::Linger));
    assert!(c.socket.pipe().shut);
    // What came after is drained, never parsed.
    assert!(matches!(
        c.on_readable(&mut [0u8; 64], &rules()),
        Input::Flow(Flow::Open)
    ));
    assert_eq!(text(&c), "M");
}

#[test]
fn http_1_0_keeps_the_connection_only_when_asked() {
    let mut c = conn(b"GET /metrics HTTP/1.0\r\n\r\n", false);
    request(&mut c);
    assert_eq!(answer(&mut c, "x"), (Dialect::HttpClose, Flow::Linger));
    let mut c = conn(
        b"GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        false,
    );
    request(&mut c);
    assert_eq!(answer(&mut c, "x"), (Dialect::HttpKeepAlive, Flow::Next));
}

#[test]
fn a_400_closes_however_the_request_asked() {
    // A malformed head: what follows cannot be trusted to start a request.
    let input = format!("GET /metrics HTTP/1.1\r\nBad Header\r\n\r\n{METRICS}");
    let mut c = conn(input.as_bytes(), false);
    assert!(matches!(request(&mut c), Action::Refuse(400, _)));
    assert_eq!(answer(&mut c, "400"), (Dialect::HttpClose, Flow::Linger));
    assert!(c.socket.pipe().shut);
    // So does a body over the cap (413), unread.
    let mut c = conn(
        b"POST /publish HTTP/1.1\r\nContent-Length: 100\r\n\r\n",
        false,
    );
    assert!(matches!(request(&mut c), Action::Refuse(413, _)));
    assert_eq!(answer(&mut c, "413"), (Dialect::HttpClose, Flow::Linger));
}

#[test]
fn a_peer_that_shut_its_side_is_answered_what_it_sent_then_closed() {
    // One request, then EOF: nothing can follow, so the answer says close.
    let mut c = conn(METRICS.as_bytes(), true);
    request(&mut c);
    assert_eq!(answer(&mut c, "x"), (Dialect::HttpClose, Flow::Linger));
    // Two pipelined, then EOF: both answered, then done.
    let mut c = conn(format!("{METRICS}{NOPE}").as_bytes(), true);
    request(&mut c);
    assert_eq!(answer(&mut c, "1"), (Dialect::HttpKeepAlive, Flow::Next));
    assert_eq!(held(&mut c), Some(Action::NotFound));
    assert_eq!(answer(&mut c, "2"), (Dialect::HttpClose, Flow::Linger));
}

#[test]
fn scgi_and_streams_never_stay_for_another_request() {
    let mut c = conn(&scgi::encode(&[("PATH_INFO", "/metrics")], b""), false);
    c.protocol = Protocol::Scgi;
    request(&mut c);
    assert_eq!(answer(&mut c, "x"), (Dialect::Scgi, Flow::Linger));
    // A long poll's answer ends its connection (its head says close: feed.rs).
    let mut c = conn(
        b"GET /ticker HTTP/1.1\r\nX-Event-Source-Simulate: Long-Polling\r\n\r\n",
        false,
    );
    assert!(matches!(request(&mut c), Action::LongPoll { .. }));
    let mut w = Written::default();
    c.start_stream(Kind::LongPoll, 0);
    c.deliver(events("answer"), 1, 1, &mut w);
    assert_eq!(c.flush(&mut w), Flow::Linger);
}
