//! Property tests for the two request parsers: any bytes, split anywhere, give the same
//! answer as in one piece or a clean error, and never a panic. Both parsers re-read what has
//! arrived so far, so "split anywhere" means: over growing prefixes of any input, the answer
//! goes Partial, Partial, … and then one final answer that longer input never changes.

use proptest::collection::vec;
use proptest::prelude::*;
use tickerd::route::{Action, Choice};
use tickerd::scgi::{self, Status};
use tickerd::{http, request};

const SCGI: scgi::Limits = scgi::Limits {
    max_header: 512,
    max_body: 64,
};
const HTTP: http::Limits = http::Limits {
    max_head: 512,
    max_body: 64,
};

/// A parse answer with nothing borrowed, so answers for different prefixes compare.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Partial,
    Done(String),
    Error(String),
}

fn scgi_answer(input: &[u8]) -> Answer {
    match scgi::parse(input, &SCGI) {
        Ok(Status::Partial) => Answer::Partial,
        Ok(Status::Complete(req)) => {
            let headers: Vec<_> = req.headers().collect();
            Answer::Done(format!("{headers:?} {:?} {}", req.body, req.len))
        }
        Err(e) => Answer::Error(format!("{e:?}")),
    }
}

fn http_answer(input: &[u8]) -> Answer {
    match http::parse(input, &HTTP) {
        Ok(Status::Partial) => Answer::Partial,
        Ok(Status::Complete((req, len))) => Answer::Done(format!("{req:?} {len}")),
        Err(e) => Answer::Error(format!("{e:?}")),
    }
}

/// Over growing prefixes: Partial until some length, then the same final answer.
fn check_prefixes(input: &[u8], answer: impl Fn(&[u8]) -> Answer) -> Result<(), TestCaseError> {
    let mut settled: Option<(usize, Answer)> = None;
    for end in 0..=input.len() {
        let a = answer(&input[..end]);
        match (&settled, a) {
            (None, Answer::Partial) => {}
            (None, a) => settled = Some((end, a)),
            (Some((at, first)), a) => prop_assert_eq!(
                &a,
                first,
                "prefix {} answered {:?}, but prefix {} already settled",
                end,
                a,
                at
            ),
        }
    }
    Ok(())
}

/// Bytes that look like SCGI often enough to get past the length prefix.
fn scgi_like() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"CONTENT_LENGTH\0".to_vec()),
        Just(b"SCGI\x001\0".to_vec()),
        Just(b"0\0".to_vec()),
        Just(b"5\0".to_vec()),
        Just(b",".to_vec()),
        Just(b":".to_vec()),
        "[0-9]{1,3}".prop_map(String::into_bytes),
        vec(any::<u8>(), 0..4),
    ];
    vec(token, 0..12).prop_map(|parts| parts.concat())
}

/// A valid request with a few bytes changed and some bytes after it: the inputs closest to
/// the edges of the grammar.
fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    (
        vec((0..len.max(1), any::<u8>()), 0..3),
        vec(any::<u8>(), 0..8),
    )
        .prop_map(move |(edits, tail)| {
            let mut v = valid.clone();
            for (at, byte) in edits {
                if at < v.len() {
                    v[at] = byte;
                }
            }
            v.extend_from_slice(&tail);
            v
        })
}

fn scgi_mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        vec(("[A-Z_]{1,8}", "[ -~]{0,8}"), 0..4),
        vec(any::<u8>(), 0..8),
    )
        .prop_flat_map(|(headers, body)| {
            let pairs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            mutated(scgi::encode(&pairs, &body))
        })
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
    fn scgi_any_bytes_settle_once(
        input in prop_oneof![vec(any::<u8>(), 0..200), scgi_like(), scgi_mutated()]
    ) {
        check_prefixes(&input, scgi_answer)?;
    }

    #[test]
    fn http_any_bytes_settle_once(
        input in prop_oneof![vec(any::<u8>(), 0..200), http_like(), http_mutated()]
    ) {
        check_prefixes(&input, http_answer)?;
    }

    /// A request as a front-end sends it comes back as sent, whole or byte by byte.
    #[test]
    fn scgi_valid_requests_round_trip(
        headers in vec(("[A-Z_]{1,12}", "[ -~]{0,20}"), 0..8),
        body in vec(any::<u8>(), 0..64),
        trailing in vec(any::<u8>(), 0..8),
    ) {
        let headers: Vec<(String, String)> = headers
            .into_iter()
            .filter(|(n, _)| n != "CONTENT_LENGTH" && n != "SCGI")
            .collect();
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let mut input = scgi::encode(&pairs, &body);
        let len = input.len();
        input.extend_from_slice(&trailing);
        let Ok(Status::Complete(req)) = scgi::parse(&input, &SCGI) else {
            return Err(TestCaseError::fail("a valid request did not parse"));
        };
        prop_assert_eq!(req.body, &body[..]);
        prop_assert_eq!(req.len, len);
        let got: Vec<(&[u8], &[u8])> = req.headers().skip(2).collect();
        let want: Vec<(&[u8], &[u8])> = pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
        prop_assert_eq!(got, want);
        for cut in 0..len {
            prop_assert_eq!(scgi_answer(&input[..cut]), Answer::Partial);
        }
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
        let Ok(Status::Complete((req, len))) = http::parse(input.as_bytes(), &HTTP) else {
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

    /// Routing any SCGI request never panics, whatever its variables hold.
    #[test]
    fn scgi_routing_takes_anything(vars in vec(("[A-Z_]{1,20}", ".{0,30}"), 0..10)) {
        let pairs: Vec<(&str, &str)> = vars
            .iter()
            .filter(|(n, _)| n != "CONTENT_LENGTH" && n != "SCGI")
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let input = scgi::encode(&pairs, b"");
        let big = scgi::Limits { max_header: 1 << 16, max_body: 0 };
        if let Ok(Status::Complete(req)) = scgi::parse(&input, &big) {
            let r = request::Request::from_scgi(&req);
            let _ = tickerd::route::route(&r, &rules());
        }
    }

    /// Any query on /ticker: refused with a 400 naming the problem, or a stream of at most
    /// `--max-symbols-per-client` distinct valid symbols.
    #[test]
    fn any_symbols_query_is_refused_or_bounded(
        query in "(symbols=)?([a-zA-Z0-9.,_%+ -]|%2[cC]|%[0-9a-f]{0,2}){0,80}(&x=1)?",
    ) {
        let r = request::Request {
            method: b"GET",
            path: b"/ticker",
            query: query.as_bytes(),
            ..request::Request::default()
        };
        match tickerd::route::route(&r, &rules()) {
            Action::Stream { symbols: Choice::Named(names), .. } => {
                prop_assert!(!names.is_empty() && names.len() <= 4);
                let mut distinct = names.clone();
                distinct.sort();
                distinct.dedup();
                prop_assert_eq!(distinct.len(), names.len());
            }
            Action::Stream { symbols: Choice::Default, .. } => {
                prop_assert!(r.param("symbols").is_none());
            }
            Action::Refuse(400, why) => prop_assert!(why.starts_with("symbols: "), "{}", why),
            other => prop_assert!(false, "{:?}", other),
        }
    }
}

fn rules() -> tickerd::route::Rules {
    tickerd::route::Rules {
        publish_token: Some("token".into()),
        max_symbols: 4,
    }
}
