//! What a live upgrade hands to the next binary: the universe's records and ids, the
//! counters, and every connection (its descriptor number, protocol, state, symbols and
//! unwritten bytes), in one versioned binary record. The listeners go beside it, named in
//! an environment variable, so that a binary that cannot read the record still has them.
//! Pure: a `Handover` in, bytes out, and back; the core gathers and restores.
//!
//! Format: `TICKERD-HANDOVER` (16 bytes), the version (u32), the body's length (u64), the
//! body. Integers are little-endian; a byte string is its length (u32) then its bytes.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use std::time::Duration;

use crate::conn::{After, Kind, Then, Waiter, Written};
use crate::metrics::Counters;
use crate::protocol::Protocol;
use crate::rights::TokenClaims;
use crate::universe::Format;

const MAGIC: &[u8; 16] = b"TICKERD-HANDOVER";
/// Bumped whenever the body changes: a binary reads only its own version. (2: records with
/// per-field ids, each stream's fields and max_hz; kept-alive HTTP connections, idle or with
/// their next request held; the `idle_timeout` and `event_bytes` counters.)
pub const VERSION: u32 = 2;
/// The record's descriptor (a memfd) in the next binary's environment.
pub const STATE_ENV: &str = "TICKERD_HANDOVER_FD";
/// The previous binary's poller, for the next one to close off its critical path.
pub const POLLER_ENV: &str = "TICKERD_HANDOVER_POLLER";

/// Everything the next binary takes over.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Handover {
    /// Each symbol: its name and its record, each field's name, value (as events write it)
    /// and the id that last changed it.
    pub records: Vec<(String, Vec<CarriedField>)>,
    pub last_id: u64,
    pub updates: u64,
    pub counters: Counters,
    pub next_serial: u64,
    /// The ids are a Redis feed's (loaded at least once).
    pub redis_loaded: bool,
    /// When the previous binary handed over (wall clock, µs): the new one logs the pause.
    pub handed_at_us: u64,
    pub connections: Vec<Carried>,
}

/// A field of a record: name, value, the id that last changed it.
pub type CarriedField = (String, String, u64);

/// A subscription: the format, the fields its stream carries, the symbols (names), and its
/// `max_hz` as the least time between two rounds (the time of its last round is not carried:
/// the next may come at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedSubscription {
    pub format: Format,
    pub fields: Vec<String>,
    pub symbols: Vec<String>,
    pub rate: Option<Duration>,
    /// With `--entitlements`, who it streams for (`Some(None)`: anonymous), so that a
    /// reload after the upgrade checks it again; `None` without entitlements.
    pub user: Option<Option<String>>,
    /// The token it started with, when it had one: its `exp` (unix seconds) and its claims,
    /// so that it still ends at that expiry and a reload judges it as before.
    pub token: Option<(u64, TokenClaims)>,
}

/// One connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Carried {
    pub fd: RawFd,
    pub protocol: Protocol,
    pub serial: u64,
    pub peer: Option<SocketAddr>,
    pub state: CarriedState,
    /// Its subscription.
    pub symbols: Option<CarriedSubscription>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CarriedState {
    /// Still reading its request: what it sent so far.
    Reading {
        buf: Vec<u8>,
        input_closed: bool,
    },
    /// Kept alive between requests.
    Idle,
    Parked(Waiter),
    /// The bytes not yet written, and what it becomes after.
    Writing {
        bytes: Vec<u8>,
        then: Then,
    },
    Lingering,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoverError {
    NotARecord,
    /// A record of another binary's version.
    Version(u32),
    Truncated,
    Malformed(&'static str),
}

impl fmt::Display for HandoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandoverError::NotARecord => f.write_str("not a handover record"),
            HandoverError::Version(v) => {
                write!(
                    f,
                    "a record of version {v}, and this binary reads version {VERSION}"
                )
            }
            HandoverError::Truncated => f.write_str("the record is cut short"),
            HandoverError::Malformed(what) => write!(f, "malformed record: {what}"),
        }
    }
}

#[cfg(test)]
fn encode(h: &Handover) -> Vec<u8> {
    encode_as(h, VERSION)
}

/// `encode` with another version number (for the test of a binary that cannot read it).
pub fn encode_as(h: &Handover, version: u32) -> Vec<u8> {
    let mut b = Body::default();
    b.u32(h.records.len() as u32);
    for (name, fields) in &h.records {
        b.bytes(name.as_bytes());
        b.u32(fields.len() as u32);
        for (field, value, id) in fields {
            b.bytes(field.as_bytes());
            b.bytes(value.as_bytes());
            b.u64(*id);
        }
    }
    b.u64(h.last_id);
    b.u64(h.updates);
    counters(&mut b, &h.counters);
    b.u64(h.next_serial);
    b.u8(h.redis_loaded as u8);
    b.u64(h.handed_at_us);
    b.u32(h.connections.len() as u32);
    for c in &h.connections {
        b.u32(c.fd as u32);
        b.u8(match c.protocol {
            Protocol::Http => 0,
            Protocol::Scgi => 1,
        });
        b.u64(c.serial);
        b.bytes(c.peer.map(|p| p.to_string()).unwrap_or_default().as_bytes());
        match &c.state {
            CarriedState::Reading { buf, input_closed } => {
                b.u8(0);
                b.bytes(buf);
                b.u8(*input_closed as u8);
            }
            CarriedState::Parked(w) => {
                b.u8(1);
                waiter(&mut b, w);
            }
            CarriedState::Writing { bytes, then } => {
                b.u8(2);
                b.bytes(bytes);
                match then {
                    Then::Finish(After::Close) => b.u8(0),
                    Then::Park(w) => {
                        b.u8(1);
                        waiter(&mut b, w);
                    }
                    Then::Finish(After::KeepAlive(held)) => {
                        b.u8(2);
                        b.bytes(&held.bytes);
                        b.u8(held.input_closed as u8);
                    }
                }
            }
            CarriedState::Lingering => b.u8(3),
            CarriedState::Idle => b.u8(4),
        }
        match &c.symbols {
            None => b.u8(0),
            Some(sub) => {
                b.u8(match sub.format {
                    Format::Plain => 1,
                    Format::Json => 2,
                });
                for list in [&sub.fields, &sub.symbols] {
                    b.u32(list.len() as u32);
                    for n in list {
                        b.bytes(n.as_bytes());
                    }
                }
                b.u64(sub.rate.map_or(0, |r| r.as_nanos().max(1) as u64));
                match &sub.user {
                    None => b.u8(0),
                    Some(None) => b.u8(1),
                    Some(Some(user)) => {
                        b.u8(2);
                        b.bytes(user.as_bytes());
                    }
                }
                match &sub.token {
                    None => b.u8(0),
                    Some((exp, claims)) => {
                        b.u8(1);
                        b.u64(*exp);
                        for one in [&claims.sub, &claims.tier] {
                            match one {
                                None => b.u8(0),
                                Some(text) => {
                                    b.u8(1);
                                    b.bytes(text.as_bytes());
                                }
                            }
                        }
                        for list in [&claims.symbols, &claims.groups] {
                            b.u32(list.len() as u32);
                            for n in list {
                                b.bytes(n.as_bytes());
                            }
                        }
                    }
                }
            }
        }
    }
    let mut out = Vec::with_capacity(28 + b.0.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(b.0.len() as u64).to_le_bytes());
    out.extend_from_slice(&b.0);
    out
}

pub fn decode(bytes: &[u8]) -> Result<Handover, HandoverError> {
    if bytes.len() < 28 || &bytes[..16] != MAGIC {
        return Err(HandoverError::NotARecord);
    }
    let version = u32::from_le_bytes(bytes[16..20].try_into().unwrap_or_default());
    if version != VERSION {
        return Err(HandoverError::Version(version));
    }
    let len = u64::from_le_bytes(bytes[20..28].try_into().unwrap_or_default());
    let body = &bytes[28..];
    if body.len() as u64 != len {
        return Err(HandoverError::Truncated);
    }
    let mut r = Reader(body);
    let mut h = Handover::default();
    for _ in 0..r.count()? {
        let name = r.string()?;
        let mut fields = Vec::new();
        for _ in 0..r.count()? {
            fields.push((r.string()?, r.string()?, r.u64()?));
        }
        h.records.push((name, fields));
    }
    h.last_id = r.u64()?;
    h.updates = r.u64()?;
    h.counters = read_counters(&mut r)?;
    h.next_serial = r.u64()?;
    h.redis_loaded = r.flag()?;
    h.handed_at_us = r.u64()?;
    for _ in 0..r.count()? {
        let fd = r.u32()? as RawFd;
        let protocol = match r.u8()? {
            0 => Protocol::Http,
            1 => Protocol::Scgi,
            _ => return Err(HandoverError::Malformed("protocol")),
        };
        let serial = r.u64()?;
        let peer = r.string()?;
        let peer = match peer.as_str() {
            "" => None,
            p => Some(p.parse().map_err(|_| HandoverError::Malformed("peer"))?),
        };
        let state = match r.u8()? {
            0 => CarriedState::Reading {
                buf: r.bytes()?.to_vec(),
                input_closed: r.flag()?,
            },
            1 => CarriedState::Parked(read_waiter(&mut r)?),
            2 => {
                let bytes = r.bytes()?.to_vec();
                let then = match r.u8()? {
                    0 => Then::Finish(After::Close),
                    1 => Then::Park(read_waiter(&mut r)?),
                    2 => {
                        let held = r.bytes()?.to_vec();
                        Then::Finish(After::keep_alive(held, r.flag()?))
                    }
                    _ => return Err(HandoverError::Malformed("what follows a write")),
                };
                CarriedState::Writing { bytes, then }
            }
            3 => CarriedState::Lingering,
            4 => CarriedState::Idle,
            _ => return Err(HandoverError::Malformed("connection state")),
        };
        let symbols = match r.u8()? {
            0 => None,
            f => {
                let format = match f {
                    1 => Format::Plain,
                    2 => Format::Json,
                    _ => return Err(HandoverError::Malformed("format")),
                };
                let mut lists = [Vec::new(), Vec::new()];
                for list in &mut lists {
                    for _ in 0..r.count()? {
                        list.push(r.string()?);
                    }
                }
                let [fields, symbols] = lists;
                let rate = match r.u64()? {
                    0 => None,
                    nanos => Some(Duration::from_nanos(nanos)),
                };
                let user = match r.u8()? {
                    0 => None,
                    1 => Some(None),
                    2 => Some(Some(r.string()?)),
                    _ => return Err(HandoverError::Malformed("a stream's user")),
                };
                let token = match r.u8()? {
                    0 => None,
                    1 => {
                        let exp = r.u64()?;
                        let mut texts = [None, None];
                        for text in &mut texts {
                            *text = match r.u8()? {
                                0 => None,
                                1 => Some(r.string()?),
                                _ => return Err(HandoverError::Malformed("a stream's token")),
                            };
                        }
                        let mut lists = [Vec::new(), Vec::new()];
                        for list in &mut lists {
                            for _ in 0..r.count()? {
                                list.push(r.string()?);
                            }
                        }
                        let [sub, tier] = texts;
                        let [symbols, groups] = lists;
                        let claims = TokenClaims {
                            sub,
                            symbols,
                            groups,
                            tier,
                        };
                        Some((exp, claims))
                    }
                    _ => return Err(HandoverError::Malformed("a stream's token")),
                };
                Some(CarriedSubscription {
                    format,
                    fields,
                    symbols,
                    rate,
                    user,
                    token,
                })
            }
        };
        h.connections.push(Carried {
            fd,
            protocol,
            serial,
            peer,
            state,
            symbols,
        });
    }
    if !r.0.is_empty() {
        return Err(HandoverError::Malformed("bytes after the last connection"));
    }
    Ok(h)
}

fn waiter(b: &mut Body, w: &Waiter) {
    b.u8(match w.kind {
        Kind::Stream => 0,
        Kind::LongPoll => 1,
    });
    b.u64(w.last_id);
    b.u8(w.input_closed as u8);
    b.u8(w.active as u8);
}

fn read_waiter(r: &mut Reader) -> Result<Waiter, HandoverError> {
    let kind = match r.u8()? {
        0 => Kind::Stream,
        1 => Kind::LongPoll,
        _ => return Err(HandoverError::Malformed("waiter kind")),
    };
    Ok(Waiter {
        kind,
        last_id: r.u64()?,
        input_closed: r.flag()?,
        active: r.flag()?,
    })
}

/// The counters, in declaration order (a new field is a new version).
fn counters(b: &mut Body, c: &Counters) {
    for v in counter_values(c) {
        b.u64(v);
    }
}

fn counter_values(c: &Counters) -> Vec<u64> {
    let mut v = vec![
        c.accepted_scgi,
        c.accepted_http,
        c.refused_full,
        c.refused_no_descriptors,
    ];
    v.extend_from_slice(&c.closed);
    let w = &c.written;
    v.extend([w.bytes, w.calls, w.events, w.heartbeats]);
    v.extend([
        c.ticks,
        c.published,
        c.publish_refused,
        c.streams_started,
        c.long_polls_started,
        c.requests_with_last_event_id,
        c.event_bytes,
    ]);
    v
}

fn read_counters(r: &mut Reader) -> Result<Counters, HandoverError> {
    let mut c = Counters {
        accepted_scgi: r.u64()?,
        accepted_http: r.u64()?,
        refused_full: r.u64()?,
        refused_no_descriptors: r.u64()?,
        ..Counters::default()
    };
    for slot in c.closed.iter_mut() {
        *slot = r.u64()?;
    }
    c.written = Written {
        bytes: r.u64()?,
        calls: r.u64()?,
        events: r.u64()?,
        heartbeats: r.u64()?,
    };
    c.ticks = r.u64()?;
    c.published = r.u64()?;
    c.publish_refused = r.u64()?;
    c.streams_started = r.u64()?;
    c.long_polls_started = r.u64()?;
    c.requests_with_last_event_id = r.u64()?;
    c.event_bytes = r.u64()?;
    Ok(c)
}

#[derive(Default)]
struct Body(Vec<u8>);

impl Body {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HandoverError> {
        if self.0.len() < n {
            return Err(HandoverError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, HandoverError> {
        Ok(self.take(1)?[0])
    }
    fn flag(&mut self) -> Result<bool, HandoverError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(HandoverError::Malformed("flag")),
        }
    }
    fn u32(&mut self) -> Result<u32, HandoverError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64(&mut self) -> Result<u64, HandoverError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
    /// A count of items that each take at least one byte: never more than the bytes left.
    fn count(&mut self) -> Result<usize, HandoverError> {
        let n = self.u32()? as usize;
        if n > self.0.len() {
            return Err(HandoverError::Truncated);
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8], HandoverError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, HandoverError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| HandoverError::Malformed("text"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::CloseReason;

    fn sample() -> Handover {
        let mut counters = Counters {
            accepted_scgi: 1,
            accepted_http: 2,
            refused_full: 3,
            refused_no_descriptors: 4,
            written: Written {
                bytes: 5,
                calls: 6,
                events: 7,
                heartbeats: 8,
            },
            ticks: 9,
            published: 10,
            publish_refused: 11,
            streams_started: 12,
            long_polls_started: 13,
            requests_with_last_event_id: 14,
            event_bytes: 15,
            ..Counters::default()
        };
        counters.closed(CloseReason::Hangup);
        counters.closed(CloseReason::LingerTimeout);
        counters.closed(CloseReason::IdleTimeout);
        let waiter = Waiter {
            kind: Kind::Stream,
            last_id: 1_796_423_459_850_571,
            input_closed: true,
            active: false,
        };
        Handover {
            records: vec![
                (
                    "AAPL".into(),
                    vec![
                        ("bid".into(), "189.19".into(), 100),
                        ("size".into(), "0.10".into(), 99),
                    ],
                ),
                ("BRK.B".into(), vec![("bid".into(), "-1.5".into(), 101)]),
            ],
            last_id: 101,
            updates: 77,
            counters,
            next_serial: 5000,
            redis_loaded: true,
            handed_at_us: 1_796_423_459_850_000,
            connections: vec![
                Carried {
                    fd: 9,
                    protocol: Protocol::Http,
                    serial: 1,
                    peer: Some("127.0.0.1:5555".parse().unwrap()),
                    state: CarriedState::Parked(waiter),
                    symbols: Some(CarriedSubscription {
                        format: Format::Json,
                        fields: vec!["bid".into()],
                        symbols: vec!["AAPL".into(), "BRK.B".into()],
                        rate: Some(Duration::from_millis(250)),
                        user: Some(Some("alice".into())),
                        token: Some((
                            1_800_000_000,
                            TokenClaims {
                                sub: Some("alice".into()),
                                symbols: vec!["FX.*".into()],
                                groups: vec!["pro".into()],
                                tier: None,
                            },
                        )),
                    }),
                },
                Carried {
                    fd: 10,
                    protocol: Protocol::Scgi,
                    serial: 2,
                    peer: None,
                    state: CarriedState::Writing {
                        bytes: b"id: 1\ndata: x\n\n".to_vec(),
                        then: Then::Park(Waiter {
                            kind: Kind::LongPoll,
                            ..waiter
                        }),
                    },
                    symbols: Some(CarriedSubscription {
                        format: Format::Plain,
                        fields: vec!["bid".into(), "size".into()],
                        symbols: vec!["AAPL".into()],
                        rate: None,
                        user: Some(None),
                        token: None,
                    }),
                },
                Carried {
                    fd: 11,
                    protocol: Protocol::Http,
                    serial: 3,
                    peer: Some("[::1]:80".parse().unwrap()),
                    state: CarriedState::Reading {
                        buf: b"GET /tick".to_vec(),
                        input_closed: false,
                    },
                    symbols: None,
                },
                Carried {
                    fd: 12,
                    protocol: Protocol::Http,
                    serial: 4,
                    peer: None,
                    state: CarriedState::Writing {
                        bytes: vec![],
                        then: Then::Finish(After::Close),
                    },
                    symbols: None,
                },
                Carried {
                    fd: 14,
                    protocol: Protocol::Http,
                    serial: 6,
                    peer: None,
                    state: CarriedState::Writing {
                        bytes: b"HTTP/1.1 200 OK\r\n".to_vec(),
                        then: Then::Finish(After::keep_alive(b"GET /sym".to_vec(), true)),
                    },
                    symbols: None,
                },
                Carried {
                    fd: 15,
                    protocol: Protocol::Http,
                    serial: 7,
                    peer: None,
                    state: CarriedState::Idle,
                    symbols: None,
                },
                Carried {
                    fd: 13,
                    protocol: Protocol::Scgi,
                    serial: 5,
                    peer: None,
                    state: CarriedState::Lingering,
                    symbols: None,
                },
            ],
        }
    }

    #[test]
    fn every_field_round_trips() {
        let h = sample();
        assert_eq!(decode(&encode(&h)), Ok(h));
        assert_eq!(
            decode(&encode(&Handover::default())),
            Ok(Handover::default())
        );
    }

    #[test]
    fn another_version_or_damage_is_refused() {
        let h = sample();
        assert_eq!(
            decode(&encode_as(&h, VERSION + 1)),
            Err(HandoverError::Version(VERSION + 1))
        );
        let bytes = encode(&h);
        assert_eq!(decode(b"garbage"), Err(HandoverError::NotARecord));
        for cut in 28..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(HandoverError::Truncated));
    }

    proptest::proptest! {
        /// Any bytes after a valid header: an error or a record, never a panic or a huge
        /// allocation.
        #[test]
        fn any_body_is_refused_or_read(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&VERSION.to_le_bytes());
            bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
            bytes.extend_from_slice(&body);
            let _ = decode(&bytes);
        }
    }
}
