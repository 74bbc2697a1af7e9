//! Records, with the real binary over real sockets: exact prices at each symbol's precision,
//! snapshots of whole records then deltas of the fields that changed, `fields=` and
//! `max_hz=` streams, text and JSON-lines publishes checked whole, `/fields` and `/symbols`
//! ([`values`], [`streams`], [`pacing`]); a browser that merges records, cut mid-stream and
//! resuming with its last id, directly and through lighttpd, nginx and Apache, and long
//! polls ([`resume`], on a [`journey`]); two instances sharing records through Redis
//! ([`redis`]); streams of records across a live upgrade ([`upgrade`]). What a stream must
//! carry is computed by a model of the records ([`model`]) from the publishes' answers, and
//! compared event by event.

mod journey;
mod model;
mod pacing;
mod redis;
mod resume;
mod streams;
mod upgrade;
mod values;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::clients::{Sock, Via};
use crate::support::*;

/// What an accepted publish answered: `LASTID\napplied N\nunchanged M\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub last_id: u64,
    pub applied: usize,
    pub unchanged: usize,
}

/// How a publish body is written: text lines, or JSON lines (sent as
/// `application/x-ndjson`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    Text,
    Json,
}

impl Lines {
    fn content_type(self) -> Option<&'static str> {
        match self {
            Lines::Text => None,
            Lines::Json => Some("application/x-ndjson"),
        }
    }
}

/// POST /publish with the token, as `via` speaks (HTTP to tickerd or a front-end, or an SCGI
/// netstring as a front-end sends it, the Content-Type as `CONTENT_TYPE`). Returns the
/// response.
pub fn publish_via(via: &Via, body: &str, content_type: Option<&str>) -> Response {
    let mut sock = via.connect().expect("connect to publish");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = format!("Bearer {TOKEN}");
    let request = match via {
        Via::Http(_) | Via::Front(_) => {
            let ct = content_type
                .map(|t| format!("Content-Type: {t}\r\n"))
                .unwrap_or_default();
            format!(
                "POST /publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
                 Authorization: {auth}\r\n{ct}Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
        Via::Scgi(_) | Via::ScgiUnix(_) => {
            let mut vars = vec![
                ("REQUEST_METHOD", "POST"),
                ("SCRIPT_NAME", ""),
                ("PATH_INFO", "/publish"),
                ("REQUEST_URI", "/publish"),
                ("SERVER_PROTOCOL", "HTTP/1.1"),
                ("HTTP_AUTHORIZATION", auth.as_str()),
            ];
            if let Some(t) = content_type {
                vars.push(("CONTENT_TYPE", t));
            }
            scgi_bytes(&vars, body)
        }
    };
    sock.write_all(&request).unwrap();
    read_response(&mut sock)
}

/// A publish that must be accepted: its answer, parsed.
pub fn publish_ok(via: &Via, body: &str, format: Lines) -> Published {
    let r = publish_via(via, body, format.content_type());
    assert_eq!(r.status, 200, "publish {body:?} over {}: {r:?}", via.name());
    parse_published(&r.body)
}

/// A publish that must be refused 400, answered with one line that starts with `place`
/// (`line 2: "AAPL=1.005": `) and contains `says`. Returns the line.
pub fn publish_refused(via: &Via, body: &str, format: Lines, place: &str, says: &str) -> String {
    let r = publish_via(via, body, format.content_type());
    assert_eq!(r.status, 400, "publish {body:?} over {}: {r:?}", via.name());
    assert_eq!(r.body.lines().count(), 1, "one line: {:?}", r.body);
    assert!(
        r.body.starts_with(place) && r.body.contains(says),
        "publish {body:?}: wanted {place:?} … {says:?}, got {:?}",
        r.body
    );
    r.body.trim_end().to_string()
}

pub fn parse_published(body: &str) -> Published {
    let lines: Vec<&str> = body.lines().collect();
    let count = |i: usize, label: &str| -> usize {
        lines
            .get(i)
            .and_then(|l| l.strip_prefix(label))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {label:?} line {i} in {body:?}"))
    };
    assert_eq!(lines.len(), 3, "{body:?}");
    Published {
        last_id: lines[0]
            .parse()
            .unwrap_or_else(|_| panic!("no id: {body:?}")),
        applied: count(1, "applied "),
        unchanged: count(2, "unchanged "),
    }
}

/// A GET answered whole, by `via`.
pub fn get_via(via: &Via, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut sock = via.connect().expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(&via.get(path, headers)).unwrap();
    read_response(&mut sock)
}

/// An event stream of `path` by `via`, resuming after `last_id` when given; reads time out
/// after 10 s.
pub fn open(via: &Via, path: &str, last_id: Option<u64>) -> SseReader<Sock> {
    let id = last_id.map(|i| i.to_string());
    let mut headers = vec![("Accept", "text/event-stream")];
    if let Some(id) = &id {
        headers.push(("Last-Event-ID", id.as_str()));
    }
    let mut sock = via.connect().expect("connect to stream");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(&via.get(path, &headers)).unwrap();
    let s = SseReader::new(sock);
    assert_eq!(s.status, 200, "{path} over {}: {}", via.name(), s.head);
    s
}

/// Nothing arrives on `s` within `d` (an event would fail the test).
pub fn assert_quiet(s: &mut SseReader<Sock>, d: Duration, what: &str) {
    s.socket().set_read_timeout(Some(d)).unwrap();
    let e = s.next_event();
    assert_eq!(e, None, "{what}: nothing should arrive");
    assert!(!s.eof, "{what}: the stream ended");
    s.socket()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
}

/// The next event, which must come within 10 s.
pub fn next(s: &mut SseReader<Sock>, what: &str) -> SseEvent {
    s.next_event()
        .unwrap_or_else(|| panic!("{what}: no event (eof {})", s.eof))
}

/// `GET /symbols` of `http`, as it is.
pub fn symbols_text(http: SocketAddr) -> String {
    let r = get(http, "/symbols");
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

/// tickerd's newest id.
pub fn newest(t: &Tickerd) -> u64 {
    t.current_id()
}

/// tickerd without the random walk or heartbeats, with these flags.
fn start(args: &[&str]) -> Tickerd {
    let mut all = vec!["--tick-ms", "0", "--heartbeat-s", "0"];
    all.extend_from_slice(args);
    Tickerd::start(&all)
}

/// tickerd's two listeners: its own HTTP, and SCGI spoken as a front-end speaks it.
fn both(t: &Tickerd) -> [Via; 2] {
    [Via::Http(t.http()), Via::Scgi(t.scgi())]
}

/// An event with an `id:` line, as [`expect`] takes it.
fn event(id: u64, data: &str) -> (Option<u64>, String) {
    (Some(id), data.to_string())
}

/// The next events of `s` are exactly `want` (id lines and data).
fn expect(s: &mut SseReader<Sock>, want: &[(Option<u64>, String)], what: &str) {
    for (i, w) in want.iter().enumerate() {
        let e = next(s, &format!("{what}: event {i}"));
        let id = e.id.as_deref().map(|i| i.parse::<u64>().unwrap());
        assert_eq!((id, e.data), w.clone(), "{what}: event {i}");
    }
}

/// Nothing changed: the same newest id and the same listing.
fn assert_unchanged(t: &Tickerd, id: u64, listing: &str, what: &str) {
    assert_eq!(newest(t), id, "{what}: an id was taken");
    assert_eq!(symbols_text(t.http()), listing, "{what}: a record changed");
}
