//! Where a token comes from, over a request's header values: `Authorization: Bearer`, a
//! cookie, or the `access_token` query parameter (EventSource cannot set headers). The
//! query form puts the token in the request line, which front-ends and tickerd log: every
//! log line that shows a query or a request line goes through [`redact_access_token`].

use std::borrow::Cow;

use crate::request::url_decode;

/// The query parameter a token may come in.
pub const QUERY_PARAM: &str = "access_token";

/// Where a token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Bearer,
    Cookie,
    Query,
}

/// The token of an `Authorization` value with the `Bearer` scheme (RFC 6750 §2.1; the
/// scheme without regard to case, RFC 9110 §11.1). Another scheme, or no token, is `None`.
pub fn bearer(authorization: &[u8]) -> Option<&[u8]> {
    let value = authorization.trim_ascii();
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    let token = rest.trim_ascii_start();
    (scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty() && is_token68(token))
        .then_some(token)
}

/// RFC 9110 §11.2 token68: what a JWT is made of, and `=` padding at the end.
fn is_token68(t: &[u8]) -> bool {
    let body = t.len() - t.iter().rev().take_while(|&&b| b == b'=').count();
    body > 0
        && t[..body]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The value of cookie `name` in a `Cookie` header value (RFC 6265 §4.2.1:
/// `name=value` pairs separated by `; `). The name matches exactly; a value in double
/// quotes is taken without them; an empty value is `None`; the first of two is taken.
pub fn cookie<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        if &pair[..eq] != name.as_bytes() {
            return None;
        }
        let value = &pair[eq + 1..];
        let value = match value {
            [b'"', inner @ .., b'"'] => inner,
            v => v,
        };
        (!value.is_empty()).then_some(value)
    })
}

/// The first `access_token` of a query string (without its `?`), URL-decoded; `None`
/// when it is empty or not token68 (a JWT has no space, `#` or `&`), which also keeps
/// what this takes within what [`redact_access_token`] hides.
pub fn query(query: &[u8]) -> Option<Vec<u8>> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        (url_decode(&pair[..eq]) == QUERY_PARAM.as_bytes())
            .then(|| url_decode(&pair[eq + 1..]))
            .filter(|v| is_token68(v))
    })
}

/// The token of a request, looked for in this order: `Authorization: Bearer`, then the
/// cookie (when `--auth-cookie` names one), then the query. Only the first found is taken:
/// a request carrying two is judged by the first alone, never by whichever passes.
pub fn find<'a>(
    authorization: Option<&'a [u8]>,
    cookie_header: Option<&'a [u8]>,
    cookie_name: Option<&str>,
    query_string: &[u8],
) -> Option<(Source, Cow<'a, [u8]>)> {
    if let Some(t) = authorization.and_then(bearer) {
        return Some((Source::Bearer, Cow::Borrowed(t)));
    }
    if let (Some(header), Some(name)) = (cookie_header, cookie_name) {
        if let Some(t) = cookie(header, name) {
            return Some((Source::Cookie, Cow::Borrowed(t)));
        }
    }
    query(query_string).map(|t| (Source::Query, Cow::Owned(t)))
}

/// What a log line shows for a token.
pub const REDACTED: &str = "[redacted]";

/// `text` (a query string, a request target or a whole request line) with the value of
/// every `access_token` parameter replaced by `[redacted]`. A parameter starts at the
/// text's start or after `?`, `&` or a space; its name is URL-decoded before it is compared
/// (`access%5Ftoken` is the same parameter to [`query`]); its value runs to the next `&`,
/// space or the end.
pub fn redact_access_token(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut start = 0;
    while start < b.len() {
        let name_end = start
            + b[start..]
                .iter()
                .position(|c| b"=&?# ".contains(c))
                .unwrap_or(b.len() - start);
        if b.get(name_end) == Some(&b'=')
            && url_decode(&b[start..name_end]) == QUERY_PARAM.as_bytes()
        {
            let value_end = name_end
                + 1
                + b[name_end + 1..]
                    .iter()
                    .position(|c| b"& ".contains(c))
                    .unwrap_or(b.len() - name_end - 1);
            out.push_str(&text[copied..=name_end]);
            out.push_str(REDACTED);
            copied = value_end;
            start = value_end;
        }
        // The next parameter starts after the next separator.
        match b[start..].iter().position(|c| b"?& ".contains(c)) {
            Some(i) => start += i + 1,
            None => break,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}
