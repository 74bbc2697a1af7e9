//! The feed as tickerd keeps it in Redis, so that any number of instances serve one feed
//! with one id sequence: the keys, the Lua scripts that change them atomically, the
//! commands, and what each reply means. Pure: commands out as bytes, replies in as frames.
//!
//! Under the prefix `P` (`--redis-key`):
//! - `P:id`: the counter, the last id given to an update;
//! - `P:records`: a hash, symbol → its record, `name=value@id …`: each field's value and the
//!   id of the update that last changed it;
//! - `P:updates`: a stream, one entry per publish that changed something: `u`, one line per
//!   update that changed something, `ID SYM name=value …` (the fields it changed), trimmed to
//!   about `--redis-maxlen` entries.
//!
//! A publish is one script: it compares each update with the record, gives the next id to
//! each that changes something, and writes the hash and the stream entry, so no two
//! instances can interleave, every instance holds the same per-field ids, and the entries'
//! ids follow each other without gaps. An instance that (re)connects loads the counter, the
//! hash and the stream's last entry id in one script, then reads the stream on from there.
//!
//! Values travel as the text tickerd writes them (a price at its symbol's precision), which
//! has no space, `=` or `@`; records compare by that text, as the universe does.

use std::fmt;

use super::wire::{self, Frame};
use crate::symbol::Symbol;

/// The keys of one feed.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    counter: String,
    records: String,
    updates: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            counter: format!("{prefix}:id"),
            records: format!("{prefix}:records"),
            updates: format!("{prefix}:updates"),
        }
    }
}

// Ids are integers near 1.8e15: exact in Lua's doubles, but `..` would print them as
// 1.7964234598506e+15, so every id is formatted with %d.

/// Lua: a record's text as a table name → {value, id} and the names in order.
const PARSE_RECORD: &str = "\
local function parse(text)
  local rec, order = {}, {}
  if text then
    for name, value, id in string.gmatch(text, '([^ =]+)=([^ @]+)@(%d+)') do
      rec[name] = {value, id}
      order[#order + 1] = name
    end
  end
  return rec, order
end
local function write(rec, order)
  local out = {}
  for _, name in ipairs(order) do
    out[#out + 1] = name .. '=' .. rec[name][1] .. '@' .. rec[name][2]
  end
  return table.concat(out, ' ')
end
";

/// KEYS: counter, records, updates. ARGV: deadline, maxlen, then per update SYM, N and N
/// name, value pairs. Returns {the counter, updates that changed something, updates that
/// changed nothing}; changes nothing when Redis's clock (ms) is past the deadline (0: none):
/// a publish that reaches Redis late, after tickerd gave up on it and answered 503 (Redis
/// was frozen, or the network held it), is never applied.
const PUBLISH: &str = "\
if tonumber(ARGV[1]) > 0 then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[1]) then
    return redis.error_reply('LATE the publish reached Redis after its deadline')
  end
end
local lines, changed, unchanged = {}, 0, 0
local i = 3
while i <= #ARGV do
  local sym, n = ARGV[i], tonumber(ARGV[i + 1])
  local rec, order = parse(redis.call('HGET', KEYS[2], sym))
  local diff = {}
  for j = 0, n - 1 do
    local name, value = ARGV[i + 2 + 2 * j], ARGV[i + 3 + 2 * j]
    if not rec[name] or rec[name][1] ~= value then diff[#diff + 1] = {name, value} end
  end
  if #diff > 0 then
    local id = string.format('%d', redis.call('INCR', KEYS[1]))
    local parts = {id, sym}
    for _, d in ipairs(diff) do
      if not rec[d[1]] then order[#order + 1] = d[1] end
      rec[d[1]] = {d[2], id}
      parts[#parts + 1] = d[1] .. '=' .. d[2]
    end
    redis.call('HSET', KEYS[2], sym, write(rec, order))
    lines[#lines + 1] = table.concat(parts, ' ')
    changed = changed + 1
  else
    unchanged = unchanged + 1
  end
  i = i + 2 + 2 * n
end
if #lines > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'u', table.concat(lines, '\\n'))
end
return {string.format('%d', tonumber(redis.call('GET', KEYS[1]) or '0')), changed, unchanged}
";

/// KEYS: counter, records, updates. ARGV: floor. Raises the counter to at least the floor
/// (an instance's last id: ids never go backwards, even after Redis lost its data), and
/// returns {counter, the stream's last entry id or 0-0, HGETALL records, Redis's clock in
/// ms}.
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

/// KEYS: counter, records, updates. ARGV: maxlen, floor, mode, then SYM, record pairs.
/// Only into an empty hash (returns 0 otherwise, changing nothing). `keep`: the records
/// keep the ids given (an instance that had loaded this feed before Redis lost it);
/// `fresh`: each symbol takes a new id above the counter and the floor, and one stream
/// entry tells the instances already reading.
const SEED: &str = "\
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[2]) then cur = tonumber(ARGV[2]) end
local lines = {}
for i = 4, #ARGV, 2 do
  local sym, rec = ARGV[i], ARGV[i + 1]
  if ARGV[3] == 'fresh' then
    cur = cur + 1
    local id = string.format('%d', cur)
    rec = string.gsub(rec, '@%d+', '@' .. id)
    local plain = string.gsub(rec, '@%d+', '')
    lines[#lines + 1] = id .. ' ' .. sym .. ' ' .. plain
  end
  redis.call('HSET', KEYS[2], sym, rec)
end
redis.call('SET', KEYS[1], string.format('%d', cur))
if #lines > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'u', table.concat(lines, '\\n'))
end
return 1
";

/// KEYS: counter, records, updates. ARGV: maxlen, then per symbol SYM, SEEN, N and N name,
/// value pairs. Each symbol whose record's newest id is still `SEEN` takes the next id for
/// these values; one stream entry tells the instances. Returns how many were taken.
const MERGE: &str = "\
local lines = {}
local i = 2
while i <= #ARGV do
  local sym, seen, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local rec, order = parse(redis.call('HGET', KEYS[2], sym))
  local newest = 0
  for _, name in ipairs(order) do
    if tonumber(rec[name][2]) > newest then newest = tonumber(rec[name][2]) end
  end
  if #order > 0 and string.format('%d', newest) == seen then
    local id = string.format('%d', redis.call('INCR', KEYS[1]))
    local parts = {id, sym}
    for j = 0, n - 1 do
      local name, value = ARGV[i + 3 + 2 * j], ARGV[i + 4 + 2 * j]
      if not rec[name] then order[#order + 1] = name end
      rec[name] = {value, id}
      parts[#parts + 1] = name .. '=' .. value
    end
    redis.call('HSET', KEYS[2], sym, write(rec, order))
    lines[#lines + 1] = table.concat(parts, ' ')
  end
  i = i + 3 + 2 * n
end
if #lines > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'u', table.concat(lines, '\\n'))
end
return #lines
";

/// A field as Redis holds it: its name, its value's text, the id that last changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredField {
    pub name: String,
    pub value: String,
    pub id: u64,
}

/// A record's text in the hash: `name=value@id …`.
pub(crate) fn record_text(fields: &[StoredField]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("{}={}@{}", f.name, f.value, f.id))
        .collect();
    parts.join(" ")
}

/// Values named for Redis: (field name, value text).
pub(crate) type Named = Vec<(String, String)>;

fn eval(out: &mut Vec<u8>, script: &str, keys: &Keys, argv: Vec<String>) {
    let script = match script {
        PUBLISH | MERGE => format!("{PARSE_RECORD}{script}"),
        _ => script.to_string(),
    };
    let mut args: Vec<String> = vec![
        "EVAL".into(),
        script,
        "3".into(),
        keys.counter.clone(),
        keys.records.clone(),
        keys.updates.clone(),
    ];
    args.extend(argv);
    wire::command(out, &args);
}

/// A publish of `updates` (symbol, values), in order, void after `deadline` (Redis's
/// clock, in ms since the epoch; 0: never).
pub(crate) fn publish(
    out: &mut Vec<u8>,
    keys: &Keys,
    maxlen: u64,
    deadline: u64,
    updates: &[(Symbol, Named)],
) {
    let mut argv = vec![deadline.to_string(), maxlen.to_string()];
    for (symbol, values) in updates {
        argv.push(symbol.to_string());
        argv.push(values.len().to_string());
        for (name, value) in values {
            argv.extend([name.clone(), value.clone()]);
        }
    }
    eval(out, PUBLISH, keys, argv);
}

/// Putting back `records` (symbol, the newest id the hash was seen with, the values newer
/// here than in the feed).
pub(crate) fn merge(out: &mut Vec<u8>, keys: &Keys, maxlen: u64, records: &[(Symbol, u64, Named)]) {
    let mut argv = vec![maxlen.to_string()];
    for (symbol, seen, values) in records {
        argv.extend([
            symbol.to_string(),
            seen.to_string(),
            values.len().to_string(),
        ]);
        for (name, value) in values {
            argv.extend([name.clone(), value.clone()]);
        }
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

/// Seeding an empty feed with `records` (symbol, its fields).
pub(crate) fn seed(
    out: &mut Vec<u8>,
    keys: &Keys,
    maxlen: u64,
    floor: u64,
    ids: SeedIds,
    records: impl Iterator<Item = (Symbol, Vec<StoredField>)>,
) {
    let mode = match ids {
        SeedIds::Keep => "keep",
        SeedIds::Fresh => "fresh",
    };
    let mut argv = vec![maxlen.to_string(), floor.to_string(), mode.to_string()];
    for (symbol, fields) in records {
        argv.extend([symbol.to_string(), record_text(&fields)]);
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

    fn bulk(s: &str) -> Frame {
        Frame::BulkString(s.as_bytes().to_vec())
    }

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s.as_bytes()).unwrap()
    }

    fn named(pairs: &[(&str, &str)]) -> Named {
        pairs
            .iter()
            .map(|&(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_publish_is_one_eval_with_its_updates() {
        let mut out = Vec::new();
        publish(
            &mut out,
            &Keys::new("t"),
            100,
            7,
            &[
                (sym("AAPL"), named(&[("bid", "189.19"), ("ask", "189.21")])),
                (sym("BRK.B"), named(&[("price", "1.00")])),
            ],
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("*18\r\n$4\r\nEVAL\r\n"), "{text}");
        assert!(text.ends_with(
            "$4\r\nt:id\r\n$9\r\nt:records\r\n$9\r\nt:updates\r\n$1\r\n7\r\n$3\r\n100\r\n\
             $4\r\nAAPL\r\n$1\r\n2\r\n$3\r\nbid\r\n$6\r\n189.19\r\n$3\r\nask\r\n$6\r\n189.21\r\n\
             $5\r\nBRK.B\r\n$1\r\n1\r\n$5\r\nprice\r\n$4\r\n1.00\r\n"
        ));
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
