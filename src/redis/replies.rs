//! What Redis's replies to the feed's commands mean ([`super::scripts`] makes the
//! commands): a publish's counts, a load's records, a read's stream entries. Pure: frames in,
//! values out, or a [`BadReply`] naming what was wrong.

use std::fmt;

use super::scripts::{Named, StoredField};
use super::wire::Frame;

/// A reply that is not what the command gives: Redis's own error, or bytes that are not
/// the shape tickerd asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadReply(pub String);

impl fmt::Display for BadReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad<T>(what: &str, frame: &Frame) -> Result<T, BadReply> {
    let shown = format!("{frame:?}");
    let shown: String = shown.chars().take(120).collect();
    Err(match frame {
        Frame::Error(e) => BadReply(format!(
            "{what}: Redis said: {}",
            e.chars().take(200).collect::<String>()
        )),
        _ => BadReply(format!("{what}: unexpected reply {shown}")),
    })
}

fn text<'a>(what: &str, frame: &'a Frame) -> Result<&'a str, BadReply> {
    match frame {
        Frame::BulkString(b) | Frame::SimpleString(b) => {
            std::str::from_utf8(b).or_else(|_| bad(what, frame))
        }
        _ => bad(what, frame),
    }
}

fn id(what: &str, frame: &Frame) -> Result<u64, BadReply> {
    match frame {
        Frame::Integer(n) if *n >= 0 => Ok(*n as u64),
        _ => text(what, frame)?.parse().or_else(|_| bad(what, frame)),
    }
}

/// What a publish did, as Redis answered: the counter after it, and how many updates
/// changed something and how many changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub last_id: u64,
    pub changed: u64,
    pub unchanged: u64,
}

pub fn published(frame: &Frame) -> Result<Published, BadReply> {
    match frame {
        Frame::Array(parts) => match parts.as_slice() {
            [last, changed, unchanged] => Ok(Published {
                last_id: id("publish", last)?,
                changed: id("publish", changed)?,
                unchanged: id("publish", unchanged)?,
            }),
            _ => bad("publish", frame),
        },
        _ => bad("publish", frame),
    }
}

/// The answer to a merge: how many records were put back.
pub fn merged(frame: &Frame) -> Result<u64, BadReply> {
    id("merge", frame)
}

/// The answer to a seed: whether this instance seeded (the hash was empty).
pub fn seeded(frame: &Frame) -> Result<bool, BadReply> {
    match frame {
        Frame::Integer(0) => Ok(false),
        Frame::Integer(1) => Ok(true),
        _ => bad("seed", frame),
    }
}

/// One symbol's record as the hash holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub symbol: String,
    pub fields: Vec<StoredField>,
}

/// The feed as loaded: the counter, the stream's last entry id, every symbol's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub counter: u64,
    pub position: String,
    pub records: Vec<StoredRecord>,
    /// Redis's clock when it loaded, in ms since the epoch.
    pub time_ms: Option<u64>,
}

/// `name=value@id …`, each part checked.
fn parse_record(text: &str) -> Option<Vec<StoredField>> {
    text.split(' ')
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (name, rest) = part.split_once('=')?;
            let (value, id) = rest.rsplit_once('@')?;
            Some(StoredField {
                name: name.to_string(),
                value: value.to_string(),
                id: id.parse().ok()?,
            })
        })
        .collect()
}

pub fn loaded(frame: &Frame) -> Result<Loaded, BadReply> {
    let Frame::Array(parts) = frame else {
        return bad("load", frame);
    };
    let (counter, position, hash, time) = match parts.as_slice() {
        [c, p, Frame::Array(h)] => (c, p, h, None),
        [c, p, Frame::Array(h), t] => (c, p, h, Some(t)),
        _ => return bad("load", frame),
    };
    let mut records = Vec::with_capacity(hash.len() / 2);
    for pair in hash.chunks(2) {
        let [symbol, value] = pair else {
            return bad("load: the hash", frame);
        };
        let value = text("load: a record", value)?;
        let fields = parse_record(value).ok_or_else(|| {
            let shown: String = value.chars().take(120).collect();
            BadReply(format!(
                "load: a record {shown:?} is not \"name=value@id …\""
            ))
        })?;
        records.push(StoredRecord {
            symbol: text("load: a symbol", symbol)?.to_string(),
            fields,
        });
    }
    Ok(Loaded {
        counter: id("load: the counter", counter)?,
        position: text("load: the stream position", position)?.to_string(),
        records,
        time_ms: time.map(|t| id("load: the time", t)).transpose()?,
    })
}

/// One update of a stream entry: its id, its symbol, the values it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryUpdate {
    pub id: u64,
    pub symbol: String,
    pub values: Named,
}

/// One stream entry: its id in the stream, and its updates, whose ids follow each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub position: String,
    pub updates: Vec<EntryUpdate>,
}

impl Entry {
    /// The ids of its first and last updates.
    pub fn ids(&self) -> (u64, u64) {
        let first = self.updates.first().map_or(0, |u| u.id);
        (first, self.updates.last().map_or(0, |u| u.id))
    }
}

/// The entries of an XREAD reply; none when it timed out.
pub fn entries(frame: &Frame) -> Result<Vec<Entry>, BadReply> {
    let streams = match frame {
        Frame::Null => return Ok(Vec::new()),
        Frame::Array(streams) => streams,
        _ => return bad("read", frame),
    };
    let mut out = Vec::new();
    for stream in streams {
        let Frame::Array(pair) = stream else {
            return bad("read", frame);
        };
        let [_key, Frame::Array(items)] = pair.as_slice() else {
            return bad("read", frame);
        };
        for item in items {
            out.push(entry(item)?);
        }
    }
    Ok(out)
}

/// `ID SYM name=value …`.
fn entry_update(line: &str) -> Option<EntryUpdate> {
    let mut words = line.split(' ').filter(|w| !w.is_empty());
    let id = words.next()?.parse().ok().filter(|&id| id > 0)?;
    let symbol = words.next()?.to_string();
    let values = words
        .map(|w| {
            let (name, value) = w.split_once('=')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect::<Option<Named>>()?;
    (!values.is_empty()).then_some(EntryUpdate { id, symbol, values })
}

fn entry(item: &Frame) -> Result<Entry, BadReply> {
    let Frame::Array(pair) = item else {
        return bad("read: an entry", item);
    };
    let [position, Frame::Array(fields)] = pair.as_slice() else {
        return bad("read: an entry", item);
    };
    let mut lines = None;
    for field in fields.chunks(2) {
        let [name, value] = field else {
            return bad("read: an entry's fields", item);
        };
        if text("read: a field", name)? == "u" {
            lines = Some(text("read: updates", value)?);
        }
    }
    let Some(lines) = lines else {
        return bad("read: an entry without updates", item);
    };
    let updates = lines
        .split('\n')
        .map(entry_update)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            let shown: String = lines.chars().take(120).collect();
            BadReply(format!(
                "read: updates {shown:?} are not \"ID SYM name=value …\" lines"
            ))
        })?;
    // Each update took the next id.
    if updates.is_empty() || updates.windows(2).any(|w| w[1].id != w[0].id + 1) {
        return bad("read: an entry whose ids do not follow each other", item);
    }
    Ok(Entry {
        position: text("read: an entry id", position)?.to_string(),
        updates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::scripts::record_text;

    fn bulk(s: &str) -> Frame {
        Frame::BulkString(s.as_bytes().to_vec())
    }

    fn named(pairs: &[(&str, &str)]) -> Named {
        pairs
            .iter()
            .map(|&(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_load_reply() {
        let reply = Frame::Array(vec![
            bulk("1796423459850571"),
            bulk("1733-0"),
            Frame::Array(vec![
                bulk("AAPL"),
                bulk("bid=189.19@1796423459850570 ask=189.21@5"),
                bulk("MSFT"),
                bulk("price=-1.5@5"),
            ]),
        ]);
        let field = |name: &str, value: &str, id| StoredField {
            name: name.into(),
            value: value.into(),
            id,
        };
        assert_eq!(
            loaded(&reply).unwrap(),
            Loaded {
                counter: 1_796_423_459_850_571,
                position: "1733-0".into(),
                records: vec![
                    StoredRecord {
                        symbol: "AAPL".into(),
                        fields: vec![
                            field("bid", "189.19", 1_796_423_459_850_570),
                            field("ask", "189.21", 5)
                        ],
                    },
                    StoredRecord {
                        symbol: "MSFT".into(),
                        fields: vec![field("price", "-1.5", 5)],
                    },
                ],
                time_ms: None,
            }
        );
        assert_eq!(
            record_text(&[field("bid", "1.5", 3), field("n", "7", 4)]),
            "bid=1.5@3 n=7@4"
        );
        for broken in [
            Frame::Null,
            Frame::Array(vec![bulk("1"), bulk("0-0")]),
            Frame::Array(vec![bulk("x"), bulk("0-0"), Frame::Array(vec![])]),
            Frame::Array(vec![
                bulk("1"),
                bulk("0-0"),
                Frame::Array(vec![bulk("A"), bulk("1.5 2")]),
            ]),
            Frame::Array(vec![
                bulk("1"),
                bulk("0-0"),
                Frame::Array(vec![bulk("A"), bulk("bid=1.5@x")]),
            ]),
            Frame::Array(vec![bulk("1"), bulk("0-0"), Frame::Array(vec![bulk("A")])]),
            Frame::Error("NOSCRIPT".into()),
        ] {
            assert!(loaded(&broken).is_err(), "{broken:?}");
        }
    }

    fn read_reply(lines: &str) -> Frame {
        Frame::Array(vec![Frame::Array(vec![
            bulk("t:updates"),
            Frame::Array(vec![Frame::Array(vec![
                bulk("1733-1"),
                Frame::Array(vec![bulk("u"), bulk(lines)]),
            ])]),
        ])])
    }

    #[test]
    fn read_replies() {
        assert_eq!(entries(&Frame::Null).unwrap(), []);
        let entry = &entries(&read_reply("41 AAPL bid=1 ask=2\n42 MSFT price=3.00")).unwrap()[0];
        assert_eq!(entry.position, "1733-1");
        assert_eq!(entry.ids(), (41, 42));
        assert_eq!(
            entry.updates[0],
            EntryUpdate {
                id: 41,
                symbol: "AAPL".into(),
                values: named(&[("bid", "1"), ("ask", "2")])
            }
        );
        for broken in [
            "41 AAPL",
            "41 AAPL bid",
            "x AAPL bid=1",
            "0 AAPL bid=1",
            "41 AAPL bid=1\n43 MSFT a=1",
            "",
        ] {
            assert!(entries(&read_reply(broken)).is_err(), "{broken:?}");
        }
        assert!(entries(&Frame::Integer(3)).is_err());
    }

    #[test]
    fn replies_and_errors_quote_redis() {
        let e = published(&Frame::Error("ERR something broke".into())).unwrap_err();
        assert_eq!(e.0, "publish: Redis said: ERR something broke");
        assert_eq!(
            published(&Frame::Array(vec![
                bulk("17"),
                Frame::Integer(2),
                Frame::Integer(1)
            ])),
            Ok(Published {
                last_id: 17,
                changed: 2,
                unchanged: 1
            })
        );
        assert!(published(&Frame::Integer(17)).is_err());
        assert_eq!(merged(&Frame::Integer(2)), Ok(2));
        assert_eq!(seeded(&Frame::Integer(1)), Ok(true));
    }
}
