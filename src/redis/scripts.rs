//! The feed as tickerd keeps it in Redis, so that any number of instances serve one feed
//! with one id sequence: the keys, the Lua scripts that change them atomically, the
//! commands, and what each reply means. Pure: commands out as bytes, replies in as frames.
//!
//! Under the prefix `P` (`--redis-key`):
//! - `P:id`: the counter, the last id given to an update;
//! - `P:prices`: a hash, symbol → `"<cents> <id>"`, each symbol's current price and the id of
//!   its last update;
//! - `P:updates`: a stream, one entry per publish: `first` (the id of its first update) and
//!   `updates` (`"SYM cents SYM cents …"`), trimmed to about `--redis-maxlen` entries.
//!
//! A publish is one script: the next ids from the counter, the hash, and the stream entry,
//! so no two instances can interleave and the entries' ids follow each other without gaps.
//! An instance that (re)connects loads the counter, the hash and the stream's last entry id
//! in one script, then reads the stream on from there.

use std::fmt;

use super::wire::{self, Frame};
use crate::symbol::Symbol;

/// The keys of one feed.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    counter: String,
    prices: String,
    updates: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            counter: format!("{prefix}:id"),
            prices: format!("{prefix}:prices"),
            updates: format!("{prefix}:updates"),
        }
    }
}

// Ids are integers near 1.8e15: exact in Lua's doubles, but `..` would print them as
// 1.7964234598506e+15, so every id is formatted with %d.

/// KEYS: counter, prices, updates. ARGV: deadline, maxlen, then SYM, cents pairs. Returns
/// the last id; changes nothing when Redis's clock (ms) is past the deadline (0: none): a
/// publish that reaches Redis late, after tickerd gave up on it and answered 503 (Redis was
/// frozen, or the network held it), is never applied.
const PUBLISH: &str = "\
if tonumber(ARGV[1]) > 0 then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[1]) then
    return redis.error_reply('LATE the publish reached Redis after its deadline')
  end
end
local n = (#ARGV - 2) / 2
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
for i = 0, n - 1 do
  redis.call('HSET', KEYS[2], ARGV[3 + 2 * i], ARGV[4 + 2 * i] .. ' ' .. string.format('%d', first + i))
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*',
  'first', string.format('%d', first), 'updates', table.concat(ARGV, ' ', 3))
return last
";

/// KEYS: counter, prices, updates. ARGV: floor. Raises the counter to at least the floor
/// (an instance's last id: ids never go backwards, even after Redis lost its data), and
/// returns {counter, the stream's last entry id or 0-0, HGETALL prices, Redis's clock in ms}.
const LOAD: &str = "\
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[1]) then
  cur = tonumber(ARGV[1])
  redis.call('SET', KEYS[1], string.format('%d', cur))
end
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local pos = '0-0'
if #last > 0 then pos = last[1][1] end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {string.format('%d', cur), pos, redis.call('HGETALL', KEYS[2]), string.format('%d', ms)}
";

/// KEYS: counter, prices, updates. ARGV: maxlen, floor, mode, then SYM, cents, id triples.
/// Only into an empty hash (returns 0 otherwise, changing nothing). `keep`: the symbols keep
/// the ids given (an instance that had loaded this feed before Redis lost it); `fresh`: they
/// take new ids above the counter and the floor, and one stream entry tells the instances
/// already reading.
const SEED: &str = "\
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[2]) then cur = tonumber(ARGV[2]) end
local first = cur + 1
local n = (#ARGV - 3) / 3
local parts = {}
for i = 0, n - 1 do
  local id = ARGV[6 + 3 * i]
  if ARGV[3] == 'fresh' then
    cur = cur + 1
    id = string.format('%d', cur)
    parts[#parts + 1] = ARGV[4 + 3 * i] .. ' ' .. ARGV[5 + 3 * i]
  end
  redis.call('HSET', KEYS[2], ARGV[4 + 3 * i], ARGV[5 + 3 * i] .. ' ' .. id)
end
redis.call('SET', KEYS[1], string.format('%d', cur))
if ARGV[3] == 'fresh' and n > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*',
    'first', string.format('%d', first), 'updates', table.concat(parts, ' '))
end
return 1
";

/// KEYS: counter, prices, updates. ARGV: maxlen, then SYM, cents, seen triples. Each symbol
/// whose hash entry still has the id `seen` takes the next id with these cents; one stream
/// entry tells the instances. Returns how many were taken.
const MERGE: &str = "\
local parts = {}
local first = nil
for i = 0, (#ARGV - 1) / 3 - 1 do
  local sym, cents, seen = ARGV[2 + 3 * i], ARGV[3 + 3 * i], ARGV[4 + 3 * i]
  local cur = redis.call('HGET', KEYS[2], sym)
  if cur and string.match(cur, ' (%d+)$') == seen then
    local id = redis.call('INCR', KEYS[1])
    if not first then first = id end
    redis.call('HSET', KEYS[2], sym, cents .. ' ' .. string.format('%d', id))
    parts[#parts + 1] = sym .. ' ' .. cents
  end
end
if first then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*',
    'first', string.format('%d', first), 'updates', table.concat(parts, ' '))
end
return #parts
";

fn eval(out: &mut Vec<u8>, script: &str, keys: &Keys, argv: Vec<String>) {
    let mut args: Vec<String> = vec![
        "EVAL".into(),
        script.into(),
        "3".into(),
        keys.counter.clone(),
        keys.prices.clone(),
        keys.updates.clone(),
    ];
    args.extend(argv);
    wire::command(out, &args);
}

/// A publish of `updates` (symbol, cents), in order, void after `deadline` (Redis's clock,
/// in ms since the epoch; 0: never).
pub(crate) fn publish(
    out: &mut Vec<u8>,
    keys: &Keys,
    maxlen: u64,
    deadline: u64,
    updates: &[(Symbol, u64)],
) {
    let mut argv = Vec::with_capacity(2 + 2 * updates.len());
    argv.push(deadline.to_string());
    argv.push(maxlen.to_string());
    for (symbol, cents) in updates {
        argv.push(symbol.to_string());
        argv.push(cents.to_string());
    }
    eval(out, PUBLISH, keys, argv);
}

/// Putting back `prices` (symbol, cents, the id the hash was seen with) that are newer here
/// than in the feed.
pub(crate) fn merge(out: &mut Vec<u8>, keys: &Keys, maxlen: u64, prices: &[(Symbol, u64, u64)]) {
    let mut argv = vec![maxlen.to_string()];
    for (symbol, cents, seen) in prices {
        argv.extend([symbol.to_string(), cents.to_string(), seen.to_string()]);
    }
    eval(out, MERGE, keys, argv);
}

/// Loading the feed, raising the counter to at least `floor`.
pub(crate) fn load(out: &mut Vec<u8>, keys: &Keys, floor: u64) {
    eval(out, LOAD, keys, vec![floor.to_string()]);
}

/// How seeded symbols get their ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeedIds {
    /// The ids given: they were this feed's before Redis lost it.
    Keep,
    /// New ones above the counter and the floor.
    Fresh,
}

/// Seeding an empty feed with `prices` (symbol, cents, id).
pub(crate) fn seed(
    out: &mut Vec<u8>,
    keys: &Keys,
    maxlen: u64,
    floor: u64,
    ids: SeedIds,
    prices: impl Iterator<Item = (Symbol, u64, u64)>,
) {
    let mode = match ids {
        SeedIds::Keep => "keep",
        SeedIds::Fresh => "fresh",
    };
    let mut argv = vec![maxlen.to_string(), floor.to_string(), mode.to_string()];
    for (symbol, cents, id) in prices {
        argv.extend([symbol.to_string(), cents.to_string(), id.to_string()]);
    }
    eval(out, SEED, keys, argv);
}

/// Reading the stream after entry `after`, waiting up to `block_ms` for one.
pub(crate) fn read_after(out: &mut Vec<u8>, keys: &Keys, after: &str, block_ms: u64, count: usize) {
    let (block, count) = (block_ms.to_string(), count.to_string());
    wire::command(
        out,
        &[
            "XREAD",
            "BLOCK",
            &block,
            "COUNT",
            &count,
            "STREAMS",
            &keys.updates,
            after,
        ],
    );
}

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

/// The answer to a publish: the id of its last update.
pub fn published(frame: &Frame) -> Result<u64, BadReply> {
    id("publish", frame)
}

/// The answer to a seed: whether this instance seeded (the hash was empty).
pub fn seeded(frame: &Frame) -> Result<bool, BadReply> {
    match frame {
        Frame::Integer(0) => Ok(false),
        Frame::Integer(1) => Ok(true),
        _ => bad("seed", frame),
    }
}

/// One symbol as the hash holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub symbol: String,
    pub cents: u64,
    pub id: u64,
}

/// The feed as loaded: the counter, the stream's last entry id, every symbol's price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub counter: u64,
    pub position: String,
    pub prices: Vec<Price>,
    /// Redis's clock when it loaded, in ms since the epoch.
    pub time_ms: Option<u64>,
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
    let mut prices = Vec::with_capacity(hash.len() / 2);
    for pair in hash.chunks(2) {
        let [symbol, value] = pair else {
            return bad("load: the hash", frame);
        };
        let value = text("load: a price", value)?;
        let (cents, id) = value
            .split_once(' ')
            .and_then(|(c, i)| Some((c.parse().ok()?, i.parse().ok()?)))
            .ok_or_else(|| BadReply(format!("load: a price {value:?} is not \"cents id\"")))?;
        prices.push(Price {
            symbol: text("load: a symbol", symbol)?.to_string(),
            cents,
            id,
        });
    }
    Ok(Loaded {
        counter: id("load: the counter", counter)?,
        position: text("load: the stream position", position)?.to_string(),
        prices,
        time_ms: time.map(|t| id("load: the time", t)).transpose()?,
    })
}

/// One stream entry: its id in the stream, and its updates with their tickerd ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub position: String,
    pub first: u64,
    pub updates: Vec<(String, u64)>,
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

fn entry(item: &Frame) -> Result<Entry, BadReply> {
    let Frame::Array(pair) = item else {
        return bad("read: an entry", item);
    };
    let [position, Frame::Array(fields)] = pair.as_slice() else {
        return bad("read: an entry", item);
    };
    let (mut first, mut updates) = (None, None);
    for field in fields.chunks(2) {
        let [name, value] = field else {
            return bad("read: an entry's fields", item);
        };
        match text("read: a field", name)? {
            "first" => first = Some(id("read: first", value)?),
            "updates" => updates = Some(text("read: updates", value)?),
            _ => {}
        }
    }
    let (Some(first), Some(updates)) = (first, updates) else {
        return bad("read: an entry without first and updates", item);
    };
    let words: Vec<&str> = updates.split(' ').collect();
    if !words.len().is_multiple_of(2) {
        return bad("read: updates not in pairs", item);
    }
    // Each update takes the next id: the last must be a number too.
    if first == 0 || first.checked_add(words.len() as u64 / 2).is_none() {
        return bad("read: first is not an id", item);
    }
    let updates = words
        .chunks(2)
        .map(|p| Some((p[0].to_string(), p[1].parse().ok()?)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| BadReply(format!("read: a price in {updates:?} is not a number")))?;
    Ok(Entry {
        position: text("read: an entry id", position)?.to_string(),
        first,
        updates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Frame {
        Frame::BulkString(s.as_bytes().to_vec())
    }

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn a_publish_is_one_eval_with_its_pairs() {
        let mut out = Vec::new();
        publish(
            &mut out,
            &Keys::new("t"),
            100,
            7,
            &[(sym("AAPL"), 18_920), (sym("BRK.B"), 1)],
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("*12\r\n$4\r\nEVAL\r\n"), "{text}");
        assert!(text.ends_with(
            "$4\r\nt:id\r\n$8\r\nt:prices\r\n$9\r\nt:updates\r\n$1\r\n7\r\n$3\r\n100\r\n\
             $4\r\nAAPL\r\n$5\r\n18920\r\n$5\r\nBRK.B\r\n$1\r\n1\r\n"
        ));
    }

    #[test]
    fn a_load_reply() {
        let reply = Frame::Array(vec![
            bulk("1796423459850571"),
            bulk("1733-0"),
            Frame::Array(vec![
                bulk("AAPL"),
                bulk("18920 1796423459850570"),
                bulk("MSFT"),
                bulk("1 5"),
            ]),
        ]);
        assert_eq!(
            loaded(&reply).unwrap(),
            Loaded {
                counter: 1_796_423_459_850_571,
                position: "1733-0".into(),
                prices: vec![
                    Price {
                        symbol: "AAPL".into(),
                        cents: 18_920,
                        id: 1_796_423_459_850_570
                    },
                    Price {
                        symbol: "MSFT".into(),
                        cents: 1,
                        id: 5
                    },
                ],
                time_ms: None,
            }
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
            Frame::Array(vec![bulk("1"), bulk("0-0"), Frame::Array(vec![bulk("A")])]),
            Frame::Error("NOSCRIPT".into()),
        ] {
            assert!(loaded(&broken).is_err(), "{broken:?}");
        }
    }

    #[test]
    fn read_replies() {
        assert_eq!(entries(&Frame::Null).unwrap(), []);
        let reply = Frame::Array(vec![Frame::Array(vec![
            bulk("t:updates"),
            Frame::Array(vec![Frame::Array(vec![
                bulk("1733-1"),
                Frame::Array(vec![
                    bulk("first"),
                    bulk("41"),
                    bulk("updates"),
                    bulk("AAPL 1 MSFT 2"),
                ]),
            ])]),
        ])]);
        assert_eq!(
            entries(&reply).unwrap(),
            [Entry {
                position: "1733-1".into(),
                first: 41,
                updates: vec![("AAPL".into(), 1), ("MSFT".into(), 2)]
            }]
        );
        let odd = Frame::Array(vec![Frame::Array(vec![
            bulk("t:updates"),
            Frame::Array(vec![Frame::Array(vec![
                bulk("1733-1"),
                Frame::Array(vec![
                    bulk("first"),
                    bulk("41"),
                    bulk("updates"),
                    bulk("AAPL"),
                ]),
            ])]),
        ])]);
        assert!(entries(&odd).is_err());
        assert!(entries(&Frame::Integer(3)).is_err());
    }

    #[test]
    fn errors_quote_redis() {
        let e = published(&Frame::Error("ERR something broke".into())).unwrap_err();
        assert_eq!(e.0, "publish: Redis said: ERR something broke");
        assert_eq!(published(&Frame::Integer(17)), Ok(17));
        assert_eq!(seeded(&Frame::Integer(1)), Ok(true));
    }
}
