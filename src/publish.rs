//! Who may publish, and what a published body means. Pure: the universe is asked through a
//! lookup the caller passes.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::error::Category;
use serde_json::value::RawValue;

use crate::request::Request;
use crate::schema::{FieldId, Schema, Value, HEADLINE};
use crate::symbol::{quoted, Symbol};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishError {
    /// No token configured: the endpoint does not exist (404).
    Disabled,
    /// Missing or wrong bearer token (401).
    Unauthorized,
}

/// Checks the bearer token.
pub fn authorize(token: Option<&str>, req: &Request) -> Result<(), PublishError> {
    let token = token.ok_or(PublishError::Disabled)?;
    let given = req
        .authorization
        .and_then(bearer)
        .ok_or(PublishError::Unauthorized)?;
    if !constant_time_eq(given, token.as_bytes()) {
        return Err(PublishError::Unauthorized);
    }
    Ok(())
}

/// One update: a symbol and the fields it sets, each named once, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update<T> {
    pub symbol: T,
    pub values: Vec<(FieldId, Value)>,
}

/// How a publish body is written, told by its Content-Type ([`Request::body_format`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// A bare price, or lines of `SYM=PRICE` or `SYM field=value …`.
    Text,
    /// One JSON object a line: `{"symbol":"AAPL","bid":"189.19","time":1765100000123}`.
    JsonLines,
}

/// Where an update was written: the body's bare price, or line `n` (counted from 1).
#[derive(Debug, Clone, Copy)]
enum Place<'b> {
    Body(&'b str),
    Line(usize, &'b str),
}

impl Place<'_> {
    /// The refusal of what is written here, quoted and cut short so that a hostile body
    /// cannot forge log lines or flood them.
    fn refuse(self, why: impl fmt::Display) -> String {
        match self {
            Place::Body(text) => format!("the body {}: {why}", quoted(text.as_bytes())),
            Place::Line(n, line) => format!("line {n}: {}: {why}", quoted(line.as_bytes())),
        }
    }
}

/// A published body, as whole updates in the order given, every one checked before the
/// caller applies any. `find` gives a symbol's handle and its precision (decimals, at most
/// [`MAX_SCALE`](crate::decimal::MAX_SCALE)), or `None` if the universe has no such symbol;
/// `default` is the default symbol's.
///
/// [`BodyFormat::Text`]:
/// - a bare price (`123.45`) or `price=123.45` (one line, no `&`): the default symbol's
///   headline (`price=` names the headline whatever the schema calls it), as the
///   single-price service always took it;
/// - otherwise lines separated by newlines or `&` (empty ones skipped), each `SYM=PRICE`
///   (the headline) or `SYM field=value field=value …` (words separated by white space).
///
/// [`BodyFormat::JsonLines`]: one JSON object a line (empty ones skipped), `"symbol"` a
/// string and every other member a field, its value a JSON string or number whose text is
/// parsed by the field's type, exactly as written (never through a float).
///
/// The error names the first bad line (`line 2: "NOPE=2": unknown symbol NOPE`, lines
/// counted from 1 across both separators) or, for a bare price or a body refused whole,
/// the body (`the body …`).
pub fn parse_batch<T: Copy>(
    body: &[u8],
    format: BodyFormat,
    schema: &Schema,
    default: (T, u8),
    find: impl Fn(&Symbol) -> Option<(T, u8)>,
) -> Result<Vec<Update<T>>, String> {
    let text = std::str::from_utf8(body)
        .map_err(|e| format!("the body is not UTF-8 (from byte {})", e.valid_up_to() + 1))?;
    if text.trim().is_empty() {
        return Err(match format {
            BodyFormat::Text => {
                "the body is empty: send a price, SYM=PRICE lines or SYM field=value lines"
            }
            BodyFormat::JsonLines => "the body is empty: send one JSON object a line",
        }
        .into());
    }
    let line = |place: Place<'_>, update: Result<Update<T>, String>| {
        update.map_err(|why| place.refuse(why))
    };
    let located = match format {
        BodyFormat::Text => match bare_price(text.trim()) {
            Some(price) => {
                let place = Place::Body(text.trim());
                let (symbol, decimals) = default;
                let value = field_value(schema, HEADLINE, price, decimals);
                let update = value.map(|v| Update {
                    symbol,
                    values: vec![(HEADLINE, v)],
                });
                vec![line(place, update)?]
            }
            None => lines(text, &['\n', '&'])
                .map(|(place, text)| line(place, text_line(text, schema, &find)))
                .collect::<Result<_, _>>()?,
        },
        BodyFormat::JsonLines => lines(text, &['\n'])
            .map(|(place, text)| line(place, json_line(text, schema, &find)))
            .collect::<Result<_, _>>()?,
    };
    if located.is_empty() {
        return Err("the body has no update, only empty lines".into());
    }
    Ok(located)
}

/// The price of a one-line body that is a bare price or `price=…`; `None` for lines.
fn bare_price(trimmed: &str) -> Option<&str> {
    if trimmed.contains(['\n', '&']) {
        return None;
    }
    match trimmed.strip_prefix("price=") {
        Some(price) => Some(price.trim()),
        None => (!trimmed.contains('=')).then_some(trimmed),
    }
}

/// The non-empty lines of `text`, trimmed, with their places (empty ones still counted).
fn lines<'b>(
    text: &'b str,
    separators: &'static [char],
) -> impl Iterator<Item = (Place<'b>, &'b str)> {
    text.split(separators)
        .map(str::trim)
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(n, line)| (Place::Line(n + 1, line), line))
}

/// `SYM=PRICE` (the headline) or `SYM field=value …`: told apart by what comes before the
/// first `=`, one word (a symbol) or more (a symbol and a field name).
fn text_line<T: Copy>(
    line: &str,
    schema: &Schema,
    find: &impl Fn(&Symbol) -> Option<(T, u8)>,
) -> Result<Update<T>, String> {
    if let Some((name, price)) = line.split_once('=') {
        let name = name.trim();
        if !name.contains(char::is_whitespace) {
            let (symbol, decimals) = symbol(name, find)?;
            let value = field_value(schema, HEADLINE, price.trim(), decimals)?;
            return Ok(Update {
                symbol,
                values: vec![(HEADLINE, value)],
            });
        }
    }
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    let mut fields = words.peekable();
    if fields.peek().is_none() {
        return Err("expected SYM=PRICE or SYM field=value …".into());
    }
    let (symbol, decimals) = symbol(name, find)?;
    let mut values = Vec::new();
    for word in fields {
        let (field, text) = word
            .split_once('=')
            .ok_or_else(|| format!("{}: expected field=value", quoted(word.as_bytes())))?;
        let id = field_id(schema, field, &values)?;
        values.push((id, field_value(schema, id, text, decimals)?));
    }
    Ok(Update { symbol, values })
}

/// One JSON object: `"symbol"` and the fields, in the order written.
fn json_line<T: Copy>(
    line: &str,
    schema: &Schema,
    find: &impl Fn(&Symbol) -> Option<(T, u8)>,
) -> Result<Update<T>, String> {
    let Members(members) = serde_json::from_str(line).map_err(|e| match e.classify() {
        Category::Data => "not a JSON object".to_string(),
        _ => {
            // Its position within the line, not serde's "at line 1 column N".
            let message = e.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(&message[..], |(m, _)| m);
            format!("not JSON: {message} (column {})", e.column())
        }
    })?;
    let mut names = members.iter().filter(|(key, _)| key == "symbol");
    let name = match (names.next(), names.next()) {
        (None, _) => return Err("missing \"symbol\"".into()),
        (Some(_), Some(_)) => return Err("\"symbol\" given twice".into()),
        (Some((_, raw)), None) => match json_text(raw) {
            Ok(JsonText::String(name)) => name,
            _ => return Err("\"symbol\" is not a JSON string".into()),
        },
    };
    let (symbol, decimals) = symbol(&name, find)?;
    let mut values = Vec::new();
    for (key, raw) in members.iter().filter(|(key, _)| key != "symbol") {
        let id = field_id(schema, key, &values)?;
        let text = match json_text(raw) {
            Ok(JsonText::String(text)) => text,
            Ok(JsonText::Number(text)) => text.to_string(),
            Err(kind) => {
                let ty = schema.field(id).ty.name();
                return Err(format!(
                    "{key}: expected a JSON string or number for type {ty}, not {kind}"
                ));
            }
        };
        values.push((id, field_value(schema, id, &text, decimals)?));
    }
    if values.is_empty() {
        return Err("the update names no field".into());
    }
    Ok(Update { symbol, values })
}

/// A JSON value as text to parse: a string's content, or a number's text as written.
enum JsonText<'a> {
    String(String),
    Number(&'a str),
}

/// The text of a raw JSON value; for any other kind, what it is.
fn json_text(raw: &RawValue) -> Result<JsonText<'_>, &'static str> {
    let raw = raw.get();
    match raw.as_bytes().first() {
        Some(b'"') => serde_json::from_str(raw)
            .map(JsonText::String)
            .map_err(|_| "a string"),
        Some(b'-' | b'0'..=b'9') => Ok(JsonText::Number(raw)),
        Some(b'n') => Err("null"),
        Some(b't' | b'f') => Err("a boolean"),
        Some(b'[') => Err("an array"),
        _ => Err("an object"),
    }
}

/// A JSON object's members in the order written, each value's raw text. Duplicates are
/// kept, so that they can be refused: a map type would silently keep one of them.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Each;
        impl<'de> Visitor<'de> for Each {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Each)
    }
}

/// A symbol of the universe, and its precision.
fn symbol<T>(name: &str, find: &impl Fn(&Symbol) -> Option<(T, u8)>) -> Result<(T, u8), String> {
    let symbol = Symbol::parse(name.as_bytes()).map_err(|e| e.to_string())?;
    find(&symbol).ok_or_else(|| format!("unknown symbol {symbol}"))
}

/// Field `name` of the schema, not yet among `values`: each is named once in an update.
fn field_id(schema: &Schema, name: &str, values: &[(FieldId, Value)]) -> Result<FieldId, String> {
    let plain = name.len() <= SHOWN
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let shown = match plain {
        true => name.to_string(),
        false => quoted(name.as_bytes()),
    };
    let id = schema
        .find(name)
        .ok_or_else(|| format!("unknown field {shown}"))?;
    if values.iter().any(|&(set, _)| set == id) {
        return Err(format!("duplicate field {shown}"));
    }
    Ok(id)
}

/// The longest name or value an error shows whole (a valid value is at most 21 characters,
/// unless written with leading zeros); a longer one is quoted and cut short.
const SHOWN: usize = 40;

/// A field's value from its text, at the symbol's precision; the error names the field.
fn field_value(schema: &Schema, id: FieldId, text: &str, decimals: u8) -> Result<Value, String> {
    let field = schema.field(id);
    field
        .ty
        .parse(text, decimals)
        .map_err(|why| match text.len() <= SHOWN {
            true => format!("{}: {why}", field.name),
            // The type's reason shows the whole text: a long one is shown cut short instead.
            false => format!(
                "{}: {} is not a {}",
                field.name,
                quoted(text.as_bytes()),
                field.ty.name()
            ),
        })
}

/// The credentials of `Bearer <token>` (RFC 6750 §2.1; the scheme is case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at_checked(6)?;
    (scheme.eq_ignore_ascii_case(b"bearer") && rest.first() == Some(&b' '))
        .then(|| rest.trim_ascii())
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right. The length is not secret enough to hide.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
