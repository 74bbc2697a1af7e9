//! Who may publish, and what a published body means. Pure: the universe is asked through a
//! lookup the caller passes.

use crate::price::parse_price;
use crate::request::Request;
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

/// How a publish body is written, told by its Content-Type ([`Request::body_format`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// A bare price, or lines of `SYM=PRICE` or `SYM field=value …`.
    Text,
    /// One JSON object a line: `{"symbol":"AAPL","bid":"189.19","time":1765100000123}`.
    JsonLines,
}

/// A published body, as updates `(symbol, cents)` in the order given, all checked before
/// any is applied:
/// - a bare price (`123.45`) or `price=123.45`: the default symbol, as the single-price
///   service always took it;
/// - otherwise `SYM=PRICE` updates separated by newlines or `&` (empty ones skipped).
///
/// The error names the first bad line (lines counted across both separators).
pub fn parse_batch<T: Copy>(
    body: &[u8],
    default: T,
    find: impl Fn(&Symbol) -> Option<T>,
) -> Result<Vec<(T, u64)>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the body is empty: send a price, or SYM=PRICE lines".into());
    }
    if !trimmed.contains(['\n', '&']) && (trimmed.starts_with("price=") || !trimmed.contains('=')) {
        let cents = parse_price(trimmed).map_err(|_| {
            format!(
                "{} is not a positive price such as 123.45",
                quoted(trimmed.as_bytes())
            )
        })?;
        return Ok(vec![(default, cents)]);
    }
    let mut updates = Vec::new();
    for (n, line) in text.split(['\n', '&']).enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| format!("line {}: {}: {why}", n + 1, quoted(line.as_bytes()));
        let (name, price) = line
            .split_once('=')
            .ok_or_else(|| bad("expected SYM=PRICE"))?;
        let symbol = Symbol::parse(name.trim().as_bytes()).map_err(|e| bad(&e.to_string()))?;
        let id = find(&symbol).ok_or_else(|| bad(&format!("unknown symbol {symbol}")))?;
        let cents = parse_price(price).map_err(|_| bad("not a positive price such as 123.45"))?;
        updates.push((id, cents));
    }
    Ok(updates)
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
mod tests {
    use super::*;

    fn req(auth: Option<&str>) -> Request<'_> {
        Request {
            authorization: auth.map(str::as_bytes),
            ..Request::default()
        }
    }

    #[test]
    fn tokens() {
        let t = Some("s3cret");
        assert_eq!(authorize(t, &req(Some("Bearer s3cret"))), Ok(()));
        assert_eq!(authorize(t, &req(Some("bearer  s3cret "))), Ok(()));
        assert_eq!(
            authorize(None, &req(Some("Bearer s3cret"))),
            Err(PublishError::Disabled)
        );
        for auth in [
            None,
            Some("Bearer wrong!"),
            Some("Bearer s3cre"),
            Some("Basic s3cret"),
            Some("Bearer"),
            Some("Bearers3cret"),
        ] {
            assert_eq!(
                authorize(t, &req(auth)),
                Err(PublishError::Unauthorized),
                "{auth:?}"
            );
        }
    }

    /// The universe of these tests: AAPL is 1, MSFT 2, BRK.B 3; the default is 0.
    fn find(s: &Symbol) -> Option<u32> {
        ["AAPL", "MSFT", "BRK.B"]
            .iter()
            .position(|n| *n == s.as_str())
            .map(|i| i as u32 + 1)
    }

    fn batch(body: &str) -> Result<Vec<(u32, u64)>, String> {
        parse_batch(body.as_bytes(), 0, find)
    }

    #[test]
    fn a_single_price_is_the_default_symbol() {
        assert_eq!(batch("1.50"), Ok(vec![(0, 150)]));
        assert_eq!(batch("price=2\n"), Ok(vec![(0, 200)]));
        assert_eq!(batch(" 7 "), Ok(vec![(0, 700)]));
    }

    #[test]
    fn batches_in_order_with_either_separator() {
        assert_eq!(
            batch("AAPL=189.20\nmsft=415.3\r\n\nBRK.B=1&AAPL=2&"),
            Ok(vec![(1, 18_920), (2, 41_530), (3, 100), (1, 200)])
        );
        assert_eq!(batch("aapl=1"), Ok(vec![(1, 100)]));
    }

    #[test]
    fn the_first_bad_line_is_named_and_nothing_is_taken() {
        for (body, want) in [
            ("", "the body is empty"),
            ("-1", "\"-1\" is not a positive price"),
            ("abc", "\"abc\" is not a positive price"),
            ("0", "\"0\" is not a positive price"),
            (
                "AAPL=1\nIBM=2\nMSFT=x",
                "line 2: \"IBM=2\": unknown symbol IBM",
            ),
            (
                "AAPL=1\nMSFT=x\nIBM=2",
                "line 2: \"MSFT=x\": not a positive price",
            ),
            ("AAPL=1&MSFT", "line 2: \"MSFT\": expected SYM=PRICE"),
            ("AAPL=1\n1.00", "line 2: \"1.00\": expected SYM=PRICE"),
            (
                "AAPL=1\n.X=1",
                "line 2: \".X=1\": must start with a letter or a digit",
            ),
            (
                "price=1&AAPL=2",
                "line 1: \"price=1\": unknown symbol PRICE",
            ),
        ] {
            let err = batch(body).unwrap_err();
            assert!(err.starts_with(want), "{body:?}: {err}");
        }
        assert!(parse_batch(b"\xff", 0, find).is_err());
    }

    #[test]
    fn equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
