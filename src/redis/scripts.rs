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

use super::wire;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
