//! Who may publish, and what a published body means.

use crate::price::parse_price;
use crate::request::Request;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishError {
    /// No token configured: the endpoint does not exist (404).
    Disabled,
    /// Missing or wrong bearer token (401).
    Unauthorized,
    /// Not a positive finite price (400).
    BadPrice,
}

/// Checks the bearer token and parses the price, in cents.
pub fn authorize_and_parse(token: Option<&str>, req: &Request) -> Result<u64, PublishError> {
    let token = token.ok_or(PublishError::Disabled)?;
    let given = req
        .authorization
        .and_then(bearer)
        .ok_or(PublishError::Unauthorized)?;
    if !constant_time_eq(given, token.as_bytes()) {
        return Err(PublishError::Unauthorized);
    }
    let body = std::str::from_utf8(req.body).map_err(|_| PublishError::BadPrice)?;
    parse_price(body).map_err(|_| PublishError::BadPrice)
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

    fn req<'a>(auth: Option<&'a str>, body: &'a str) -> Request<'a> {
        Request {
            authorization: auth.map(str::as_bytes),
            body: body.as_bytes(),
            ..Request::default()
        }
    }

    #[test]
    fn rules() {
        let t = Some("s3cret");
        assert_eq!(
            authorize_and_parse(t, &req(Some("Bearer s3cret"), "1.50")),
            Ok(150)
        );
        assert_eq!(
            authorize_and_parse(t, &req(Some("bearer  s3cret "), "price=2")),
            Ok(200)
        );
        assert_eq!(
            authorize_and_parse(None, &req(Some("Bearer s3cret"), "1")),
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
                authorize_and_parse(t, &req(auth, "1")),
                Err(PublishError::Unauthorized),
                "{auth:?}"
            );
        }
        for body in ["", "-1", "abc", "0", "\u{ff}"] {
            assert_eq!(
                authorize_and_parse(t, &req(Some("Bearer s3cret"), body)),
                Err(PublishError::BadPrice)
            );
        }
    }

    #[test]
    fn equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
