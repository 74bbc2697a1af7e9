//! HTTP/1.1 request parsing for the built-in listener, on top of httparse. Pure: bytes in,
//! a request or a reason out.

use std::fmt;

use crate::request::{query_of, strip_query, Request};
use crate::scgi::Status;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_head: usize,
    pub max_body: usize,
}

/// Headers beyond this many make the head "too large" (431), as httparse needs a bound.
const MAX_HEADERS: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Not HTTP/1.x syntax (400).
    Malformed(httparse::Error),
    /// The head is over the cap or has too many headers (431).
    HeadTooLarge,
    /// Content-Length missing a number, or given twice with different values (400).
    BadContentLength,
    /// A body announced over the cap (413).
    BodyTooLarge(u64),
    /// Transfer-Encoding: tickerd takes only bodies with a Content-Length (411).
    LengthRequired,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Malformed(e) => write!(f, "malformed request: {e}"),
            HttpError::HeadTooLarge => f.write_str("request head too large"),
            HttpError::BadContentLength => f.write_str("bad Content-Length"),
            HttpError::BodyTooLarge(n) => write!(f, "body of {n} bytes over the cap"),
            HttpError::LengthRequired => f.write_str("Transfer-Encoding without Content-Length"),
        }
    }
}

/// A parsed request and the number of input bytes it took.
pub fn parse<'a>(
    input: &'a [u8],
    limits: &Limits,
) -> Result<Status<(Request<'a>, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(input) {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_head => n,
        Ok(httparse::Status::Complete(_)) => return Err(HttpError::HeadTooLarge),
        Ok(httparse::Status::Partial) if input.len() > limits.max_head => {
            return Err(HttpError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(Status::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(e) => return Err(HttpError::Malformed(e)),
    };
    let mut req = Request {
        method: parsed.method.unwrap_or_default().as_bytes(),
        path: strip_query(parsed.path.unwrap_or_default().as_bytes()),
        query: query_of(parsed.path.unwrap_or_default().as_bytes()),
        ..Request::default()
    };
    let mut content_length: Option<u64> = None;
    // RFC 9112 §9.3: HTTP/1.1 persists unless told `close`; HTTP/1.0 only with `keep-alive`.
    let (mut close, mut keep_alive) = (false, false);
    for h in parsed.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(HttpError::BadContentLength)?;
            // RFC 9112 §6.3: differing lengths are unrecoverable.
            if content_length.is_some_and(|c| c != n) {
                return Err(HttpError::BadContentLength);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(HttpError::LengthRequired);
        } else if name.eq_ignore_ascii_case(b"last-event-id") {
            req.last_event_id = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"x-event-source-simulate") {
            req.simulate = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"authorization") {
            req.authorization = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"cookie") {
            // One Cookie header (RFC 6265 §5.4: a user agent sends one); the first counts.
            req.cookie = req.cookie.or(Some(h.value));
        } else if name.eq_ignore_ascii_case(b"content-type") {
            req.content_type = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    req.keep_alive = !close && (parsed.version == Some(1) || keep_alive);
    let body_len = content_length.unwrap_or(0);
    if body_len > limits.max_body as u64 {
        return Err(HttpError::BodyTooLarge(body_len));
    }
    let end = head_len + body_len as usize;
    if input.len() < end {
        return Ok(Status::Partial);
    }
    req.body = &input[head_len..end];
    Ok(Status::Complete((req, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head: 8192,
        max_body: 1024,
    };

    fn complete(input: &[u8]) -> (Request<'_>, usize) {
        match parse(input, &LIMITS) {
            Ok(Status::Complete(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stream_request() {
        let input = b"GET /ticker?x=1 HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 12\r\n\
                      x-event-source-simulate: Long-Polling\r\n\r\n";
        let (req, len) = complete(input);
        assert_eq!(len, input.len());
        assert_eq!(req.method, b"GET");
        assert_eq!(req.path, b"/ticker");
        assert_eq!(req.last_event_id(), Some(12));
        assert!(req.wants_long_poll());
    }

    #[test]
    fn the_first_cookie_header_is_taken() {
        let input = b"GET /ticker HTTP/1.1\r\nCookie: t=abc; x=1\r\nCookie: t=def\r\n\r\n";
        let (req, _) = complete(input);
        assert_eq!(req.cookie, Some(&b"t=abc; x=1"[..]));
    }

    #[test]
    fn publish_with_body_split_everywhere() {
        let input = b"POST /publish HTTP/1.1\r\nAuthorization: Bearer t\r\n\
                      Content-Length: 6\r\n\r\n101.50";
        let (req, _) = complete(input);
        assert_eq!(req.body, b"101.50");
        assert_eq!(req.authorization, Some(&b"Bearer t"[..]));
        assert_eq!(req.content_type, None);
        let json = b"POST /publish HTTP/1.1\r\ncontent-type: application/x-ndjson\r\n\r\n";
        assert_eq!(
            complete(json).0.content_type,
            Some(&b"application/x-ndjson"[..])
        );
        for cut in 0..input.len() {
            assert_eq!(
                parse(&input[..cut], &LIMITS),
                Ok(Status::Partial),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn which_requests_keep_the_connection() {
        for (request, keep) in [
            ("GET / HTTP/1.1\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false),
            (
                "GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n",
                false,
            ),
            ("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", true),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            (
                "GET / HTTP/1.0\r\nConnection: x\r\nConnection: keep-alive\r\n\r\n",
                true,
            ),
            (
                "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                false,
            ),
        ] {
            assert_eq!(
                complete(request.as_bytes()).0.keep_alive,
                keep,
                "{request:?}"
            );
        }
    }

    #[test]
    fn a_pipelined_request_is_left_for_the_next_parse() {
        let first = "POST /publish HTTP/1.1\r\nContent-Length: 2\r\n\r\n12";
        let input = format!("{first}GET /symbols HTTP/1.1\r\n\r\n");
        let (req, len) = complete(input.as_bytes());
        assert_eq!((req.body, len), (&b"12"[..], first.len()));
        assert_eq!(complete(&input.as_bytes()[len..]).0.path, b"/symbols");
    }

    #[test]
    fn bad_requests() {
        let long_head = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(60));
        let cases: Vec<(&[u8], HttpError)> = vec![
            (
                b"\x00\x01garbage\r\n\r\n",
                HttpError::Malformed(httparse::Error::Token),
            ),
            (long_head.as_bytes(), HttpError::HeadTooLarge),
            (many.as_bytes(), HttpError::HeadTooLarge),
            (
                b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                HttpError::BadContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                HttpError::BadContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n",
                HttpError::BodyTooLarge(2000),
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                HttpError::LengthRequired,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse(input, &LIMITS),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // A head that never ends is refused once it passes the cap, not before.
        let endless = "GET / HTTP/1.1\r\nX: ".to_string() + &"a".repeat(9000);
        assert_eq!(
            parse(endless.as_bytes(), &LIMITS),
            Err(HttpError::HeadTooLarge)
        );
        assert_eq!(
            parse(&endless.as_bytes()[..100], &LIMITS),
            Ok(Status::Partial)
        );
    }
}

/// Property tests, on the rule of `scgi::props`: over growing
/// prefixes of any input the answer stays Partial until it settles once, and never changes.
#[cfg(test)]
mod props {
    use super::*;
    use crate::scgi::props::{check_prefixes, mutated, Answer};
    use proptest::collection::vec;
    use proptest::prelude::*;

    const HTTP: Limits = Limits {
        max_head: 512,
        max_body: 64,
    };

    fn http_answer(input: &[u8]) -> Answer {
        match parse(input, &HTTP) {
            Ok(Status::Partial) => Answer::Partial,
            Ok(Status::Complete((req, len))) => Answer::Done(format!("{req:?} {len}")),
            Err(e) => Answer::Error(format!("{e:?}")),
        }
    }

    fn http_mutated() -> impl Strategy<Value = Vec<u8>> {
        ("/[a-z]{0,6}", "[0-9.]{0,6}").prop_flat_map(|(path, body)| {
            let valid = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            mutated(valid.into_bytes())
        })
    }

    /// Bytes that look like HTTP often enough to reach headers and bodies.
    fn http_like() -> impl Strategy<Value = Vec<u8>> {
        let token = prop_oneof![
            Just(b"GET /ticker HTTP/1.1\r\n".to_vec()),
            Just(b"POST /publish HTTP/1.1\r\n".to_vec()),
            Just(b"Content-Length: 3\r\n".to_vec()),
            Just(b"Content-Length: 99999\r\n".to_vec()),
            Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
            Just(b"Last-Event-ID: 7\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            vec(any::<u8>(), 0..6),
        ];
        vec(token, 0..10).prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn http_any_bytes_settle_once(
            input in prop_oneof![vec(any::<u8>(), 0..200), http_like(), http_mutated()]
        ) {
            check_prefixes(&input, http_answer)?;
        }

        #[test]
        fn http_valid_requests_round_trip(
            path in "/[a-z]{0,10}",
            last_id in proptest::option::of(0u64..u64::MAX),
            body in "[0-9.]{0,20}",
        ) {
            let lei = last_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
            let input = format!(
                "POST {path}?q=1 HTTP/1.1\r\nHost: x\r\n{lei}Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let Ok(Status::Complete((req, len))) = parse(input.as_bytes(), &HTTP) else {
                return Err(TestCaseError::fail("a valid request did not parse"));
            };
            prop_assert_eq!(len, input.len());
            prop_assert_eq!(req.path, path.as_bytes());
            prop_assert_eq!(req.body, body.as_bytes());
            prop_assert_eq!(req.last_event_id(), last_id);
            for cut in 0..input.len() {
                prop_assert_eq!(http_answer(&input.as_bytes()[..cut]), Answer::Partial);
            }
        }
    }
}
