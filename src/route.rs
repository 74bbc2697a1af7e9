//! Which endpoint a request is for, and what it asks of the server.

use std::time::Duration;

use crate::decimal::Decimal;
use crate::publish::{self, BodyFormat, PublishError};
use crate::request::Request;
use crate::selection;
use crate::symbol::{quoted, Symbol};

/// What routing needs to know of the configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    pub publish_token: Option<String>,
    /// `--max-symbols-per-client`.
    pub max_symbols: usize,
    /// `--trust-remote-user`: SCGI's `REMOTE_USER` names the caller.
    pub trust_remote_user: bool,
    /// `--jwt-jwks` is given: a stream's token is taken (the core verifies it).
    pub tokens: bool,
    /// `--auth-cookie`: the cookie a token may come in.
    pub auth_cookie: Option<String>,
}

/// A token as a request carried it, not verified yet. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(pub Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({})", crate::jwt::source::REDACTED)
    }
}

/// Which symbols a stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// No `symbols` parameter: the default symbol, in the single-price format.
    Default,
    /// `symbols=…`: these, distinct, in the many-symbol format.
    Named(Vec<Symbol>),
}

/// What a stream or long poll asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAsk {
    /// The client's Last-Event-ID, if a number.
    pub last_id: Option<u64>,
    pub symbols: Choice,
    /// `fields=bid,ask`: only these (checked against the schema by the core); `None`: all.
    pub fields: Option<Vec<String>>,
    /// `max_hz=N`: at least this long between two of its rounds of events.
    pub min_gap: Option<Duration>,
    /// Who asks: the trusted `REMOTE_USER`; `None`: no identity.
    pub user: Option<String>,
    /// With `--jwt-jwks`: the request's token (bearer, cookie or `access_token`), if any.
    pub token: Option<Token>,
}

/// The highest `max_hz` a client may ask for.
pub const MAX_HZ: u64 = 1000;

/// What the server should do with a request. Owned, so that the request's buffer can go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `GET /ticker`: an event stream.
    Stream(StreamAsk),
    /// `GET /ticker` with `X-Event-Source-Simulate: Long-Polling`: what is due, then the end.
    LongPoll(StreamAsk),
    Page,
    /// `GET /tickerd.js`: the page's client logic, for other pages to embed.
    Script,
    /// `GET /fields`: the record's schema.
    Fields,
    /// `GET /symbols`: the universe (names starting with `prefix`, at most `limit`).
    Symbols {
        prefix: String,
        limit: usize,
        /// Who asks (only what it may see is listed).
        user: Option<String>,
        /// With `--jwt-jwks`: its token, if any.
        token: Option<Token>,
    },
    Metrics,
    /// `POST /publish`, authorized: the body, checked against the universe by the core.
    Publish {
        body: Vec<u8>,
        format: BodyFormat,
    },
    PublishRefused(PublishError),
    /// Refused before anything starts: a status and a one-line reason.
    Refuse(u16, String),
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
}

pub fn route(req: &Request, rules: &Rules) -> Action {
    let endpoint = match req.path {
        b"/" | b"/index.html" => Endpoint::Page,
        b"/tickerd.js" => Endpoint::Script,
        b"/ticker" => Endpoint::Ticker,
        b"/symbols" => Endpoint::Symbols,
        b"/fields" => Endpoint::Fields,
        b"/metrics" => Endpoint::Metrics,
        b"/publish" => Endpoint::Publish,
        _ => return Action::NotFound,
    };
    let token = rules.publish_token.as_deref();
    // A disabled publisher is not there at all, whatever the method.
    if endpoint == Endpoint::Publish && token.is_none() {
        return Action::PublishRefused(PublishError::Disabled);
    }
    let allow = endpoint.allow();
    if req.method != allow.as_bytes() {
        return Action::MethodNotAllowed { allow };
    }
    match endpoint {
        Endpoint::Page => Action::Page,
        Endpoint::Script => Action::Script,
        Endpoint::Metrics => Action::Metrics,
        Endpoint::Symbols => symbols_listing(req, user_of(req, rules), token_of(req, rules)),
        Endpoint::Fields => Action::Fields,
        Endpoint::Ticker => {
            let symbols = match req.param("symbols") {
                None => Choice::Default,
                Some(list) => match selection::parse(&list, rules.max_symbols) {
                    Ok(chosen) => Choice::Named(chosen),
                    Err(e) => return Action::Refuse(400, e.to_string()),
                },
            };
            let fields = match req.param("fields") {
                None => None,
                Some(_) if symbols == Choice::Default => {
                    return Action::Refuse(
                        400,
                        "fields: needs symbols (without symbols, /ticker streams the default symbol's headline)"
                            .into(),
                    )
                }
                Some(list) => match field_names(&list) {
                    Ok(names) => Some(names),
                    Err(why) => return Action::Refuse(400, why),
                },
            };
            let min_gap = match req.param("max_hz") {
                None => None,
                Some(hz) => match min_gap(&hz) {
                    Ok(gap) => Some(gap),
                    Err(why) => return Action::Refuse(400, why),
                },
            };
            let ask = StreamAsk {
                last_id: req.last_event_id(),
                symbols,
                fields,
                min_gap,
                user: user_of(req, rules),
                token: token_of(req, rules),
            };
            if req.wants_long_poll() {
                Action::LongPoll(ask)
            } else {
                Action::Stream(ask)
            }
        }
        Endpoint::Publish => match publish::authorize(token, req) {
            Ok(()) => Action::Publish {
                body: req.body.to_vec(),
                format: req.body_format(),
            },
            Err(e) => Action::PublishRefused(e),
        },
    }
}

/// `fields=bid,ask`: distinct names in the order given (empty entries skipped); whether the
/// schema has them is the core's to say.
fn field_names(list: &[u8]) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    for name in list.split(|&b| b == b',') {
        let name = name.trim_ascii();
        if name.is_empty() {
            continue;
        }
        if name.len() > 32 || !name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_') {
            return Err(format!("fields: {} is not a field name", quoted(name)));
        }
        let name = String::from_utf8_lossy(name).into_owned();
        if !names.contains(&name) {
            names.push(name);
        }
        if names.len() > crate::schema::MAX_FIELDS {
            return Err("fields: more names than a record has fields".into());
        }
    }
    if names.is_empty() {
        return Err("fields: the list is empty".into());
    }
    Ok(names)
}

/// `max_hz=N`, a decimal above 0 and at most 1000, as the time between two rounds. Parsed
/// as an exact decimal, never a float.
pub(crate) fn min_gap(text: &[u8]) -> Result<Duration, String> {
    let refuse = || {
        format!(
            "max_hz: {} is not a number above 0 and at most {MAX_HZ}",
            quoted(text)
        )
    };
    let text = std::str::from_utf8(text).map_err(|_| refuse())?;
    let hz = Decimal::parse(text.trim()).map_err(|_| refuse())?;
    let unit = 10u64.pow(hz.scale() as u32);
    let mantissa = u64::try_from(hz.mantissa()).map_err(|_| refuse())?;
    if mantissa == 0 || mantissa > MAX_HZ * unit {
        return Err(refuse());
    }
    // 1/hz seconds = unit / mantissa seconds, in nanoseconds (unit ≤ 10^9: no overflow).
    Ok(Duration::from_nanos(1_000_000_000 * unit / mantissa))
}

/// The caller's identity: `REMOTE_USER`, only with `--trust-remote-user` (and only SCGI
/// sets it: [`Request::remote_user`]).
fn user_of(req: &Request, rules: &Rules) -> Option<String> {
    let user = req.remote_user.filter(|_| rules.trust_remote_user)?;
    Some(String::from_utf8_lossy(user).into_owned())
}

/// With `--jwt-jwks`: the request's token, the first of `Authorization: Bearer`, the
/// `--auth-cookie` cookie and the `access_token` query ([`crate::jwt::source::find`]).
fn token_of(req: &Request, rules: &Rules) -> Option<Token> {
    if !rules.tokens {
        return None;
    }
    let found = crate::jwt::source::find(
        req.authorization,
        req.cookie,
        rules.auth_cookie.as_deref(),
        req.query,
    );
    found.map(|(_, t)| Token(t.into_owned()))
}

/// `/symbols?prefix=AA&limit=20`, both optional: what the page's picker completes from.
fn symbols_listing(req: &Request, user: Option<String>, token: Option<Token>) -> Action {
    let prefix = req.param("prefix").unwrap_or_default();
    let prefix = String::from_utf8_lossy(&prefix).trim().to_ascii_uppercase();
    let limit = match req.param("limit") {
        None => usize::MAX,
        Some(n) => match std::str::from_utf8(&n).ok().and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return Action::Refuse(400, "limit: not a whole number".into()),
        },
    };
    Action::Symbols {
        prefix,
        limit,
        user,
        token,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Page,
    Script,
    Ticker,
    Symbols,
    Fields,
    Metrics,
    Publish,
}

impl Endpoint {
    fn allow(self) -> &'static str {
        match self {
            Endpoint::Publish => "POST",
            _ => "GET",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &'static str) -> Request<'static> {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, q),
            None => (path, ""),
        };
        Request {
            method: b"GET",
            path: path.as_bytes(),
            query: query.as_bytes(),
            ..Request::default()
        }
    }

    fn rules(token: Option<&str>) -> Rules {
        Rules {
            publish_token: token.map(String::from),
            max_symbols: 3,
            trust_remote_user: false,
            tokens: false,
            auth_cookie: None,
        }
    }

    fn named(names: &[&str]) -> Choice {
        Choice::Named(
            names
                .iter()
                .map(|n| Symbol::parse(n.as_bytes()).unwrap())
                .collect(),
        )
    }

    #[test]
    fn endpoints() {
        let r = rules(None);
        assert_eq!(route(&get("/"), &r), Action::Page);
        assert_eq!(route(&get("/tickerd.js"), &r), Action::Script);
        assert_eq!(route(&get("/metrics"), &r), Action::Metrics);
        assert_eq!(route(&get("/fields"), &r), Action::Fields);
        assert_eq!(route(&get("/nope"), &r), Action::NotFound);
        assert_eq!(
            route(&get("/ticker"), &r),
            Action::Stream(StreamAsk {
                last_id: None,
                symbols: Choice::Default,
                fields: None,
                min_gap: None,
                user: None,
                token: None,
            })
        );
        let lp = Request {
            simulate: Some(b"long-polling"),
            last_event_id: Some(b"7"),
            ..get("/ticker?symbols=msft%2Caapl")
        };
        assert_eq!(
            route(&lp, &r),
            Action::LongPoll(StreamAsk {
                last_id: Some(7),
                symbols: named(&["MSFT", "AAPL"]),
                fields: None,
                min_gap: None,
                user: None,
                token: None,
            })
        );
    }

    #[test]
    fn fields_and_max_hz() {
        let r = rules(None);
        let Action::Stream(ask) = route(
            &get("/ticker?symbols=A&fields=bid,%20ask,bid&max_hz=2.5"),
            &r,
        ) else {
            panic!()
        };
        assert_eq!(ask.fields, Some(vec!["bid".to_string(), "ask".to_string()]));
        assert_eq!(ask.min_gap, Some(Duration::from_millis(400)));
        let Action::Stream(ask) = route(&get("/ticker?max_hz=1000"), &r) else {
            panic!()
        };
        assert_eq!(ask.min_gap, Some(Duration::from_millis(1)));
        let Action::Stream(ask) = route(&get("/ticker?max_hz=0.001"), &r) else {
            panic!()
        };
        assert_eq!(ask.min_gap, Some(Duration::from_secs(1000)));
        for (path, want) in [
            ("/ticker?symbols=A&max_hz=", "max_hz: \"\" is not a number"),
            ("/ticker?max_hz=0", "max_hz: \"0\" is not"),
            ("/ticker?max_hz=-1", "max_hz: \"-1\""),
            ("/ticker?max_hz=1000.1", "max_hz: \"1000.1\""),
            ("/ticker?max_hz=abc", "max_hz: \"abc\""),
            ("/ticker?max_hz=1e3", "max_hz: \"1e3\""),
            ("/ticker?symbols=A&fields=", "fields: the list is empty"),
            (
                "/ticker?symbols=A&fields=b%3Cd",
                "fields: \"b<d\" is not a field name",
            ),
            ("/ticker?fields=bid", "fields: needs symbols"),
        ] {
            match route(&get(path), &r) {
                Action::Refuse(400, why) => assert!(why.starts_with(want), "{path}: {why}"),
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn symbol_lists_are_checked_before_any_stream() {
        let r = rules(None);
        for (path, want) in [
            ("/ticker?symbols=", "symbols: the list is empty"),
            (
                "/ticker?symbols=A,B,C,D",
                "symbols: 4 symbols asked, at most 3 per client",
            ),
            ("/ticker?symbols=A%20B", "symbols: \"A B\" is not a symbol"),
        ] {
            match route(&get(path), &r) {
                Action::Refuse(400, why) => assert!(why.starts_with(want), "{path}: {why}"),
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_token_is_taken_only_with_keys() {
        let token = |req: &Request, r: &Rules| match route(req, r) {
            Action::Stream(ask) => ask.token.map(|t| t.0),
            Action::Symbols { token, .. } => token.map(|t| t.0),
            other => panic!("{other:?}"),
        };
        let with_keys = Rules {
            tokens: true,
            auth_cookie: Some("tk".into()),
            ..rules(None)
        };
        let bearer = Request {
            authorization: Some(b"Bearer a.b.c"),
            ..get("/ticker")
        };
        let cookie = Request {
            cookie: Some(b"x=1; tk=d.e.f"),
            ..get("/symbols")
        };
        let query = get("/ticker?symbols=A&access_token=g.h.i");
        for req in [&bearer, &cookie, &query] {
            assert_eq!(token(req, &rules(None)), None);
        }
        assert_eq!(token(&bearer, &with_keys), Some(b"a.b.c".to_vec()));
        assert_eq!(token(&cookie, &with_keys), Some(b"d.e.f".to_vec()));
        assert_eq!(token(&query, &with_keys), Some(b"g.h.i".to_vec()));
        // Its Debug (an Action's) never shows it.
        let shown = format!("{:?}", route(&query, &with_keys));
        assert!(
            !shown.contains("g.h.i") && shown.contains("[redacted]"),
            "{shown}"
        );
    }

    #[test]
    fn remote_user_only_when_trusted() {
        let stream = Request {
            remote_user: Some(b"alice"),
            ..get("/ticker?symbols=A")
        };
        let listing = Request {
            remote_user: Some(b"alice"),
            ..get("/symbols")
        };
        let user = |req: &Request, r: &Rules| match route(req, r) {
            Action::Stream(ask) => ask.user,
            Action::Symbols { user, .. } => user,
            other => panic!("{other:?}"),
        };
        let trusted = Rules {
            trust_remote_user: true,
            ..rules(None)
        };
        for req in [&stream, &listing] {
            assert_eq!(user(req, &rules(None)), None);
            assert_eq!(user(req, &trusted), Some("alice".into()));
        }
        assert_eq!(user(&get("/ticker?symbols=A"), &trusted), None);
    }

    #[test]
    fn the_symbols_listing() {
        let r = rules(None);
        assert_eq!(
            route(&get("/symbols?prefix=br&limit=5"), &r),
            Action::Symbols {
                prefix: "BR".into(),
                limit: 5,
                user: None,
                token: None,
            }
        );
        assert_eq!(
            route(&get("/symbols"), &r),
            Action::Symbols {
                prefix: String::new(),
                limit: usize::MAX,
                user: None,
                token: None,
            }
        );
        assert!(matches!(
            route(&get("/symbols?limit=x"), &r),
            Action::Refuse(400, _)
        ));
    }

    #[test]
    fn methods_and_publishing() {
        let post_ticker = Request {
            method: b"POST",
            ..get("/ticker")
        };
        assert_eq!(
            route(&post_ticker, &rules(None)),
            Action::MethodNotAllowed { allow: "GET" }
        );
        assert_eq!(
            route(&get("/publish"), &rules(None)),
            Action::PublishRefused(PublishError::Disabled)
        );
        assert_eq!(
            route(&get("/publish"), &rules(Some("t"))),
            Action::MethodNotAllowed { allow: "POST" }
        );
        let publish = Request {
            method: b"POST",
            authorization: Some(b"Bearer t"),
            body: b"5.25",
            ..get("/publish")
        };
        assert_eq!(
            route(&publish, &rules(Some("t"))),
            Action::Publish {
                body: b"5.25".to_vec(),
                format: BodyFormat::Text
            }
        );
        assert_eq!(
            route(&publish, &rules(Some("u"))),
            Action::PublishRefused(PublishError::Unauthorized)
        );
    }
}

/// Property tests: routing takes any request without a panic,
/// and any `symbols` query is refused with a 400 naming the problem or bounded.
#[cfg(test)]
mod props {
    use super::*;
    use crate::scgi::{self, Status};
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn rules() -> Rules {
        Rules {
            publish_token: Some("token".into()),
            max_symbols: 4,
            trust_remote_user: false,
            tokens: false,
            auth_cookie: None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

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
                let r = Request::from_scgi(&req);
                let _ = route(&r, &rules());
            }
        }

        /// Any query on /ticker: refused with a 400 naming the problem, or a stream of at most
        /// `--max-symbols-per-client` distinct valid symbols.
        #[test]
        fn any_symbols_query_is_refused_or_bounded(
            query in "(symbols=)?([a-zA-Z0-9.,_%+ -]|%2[cC]|%[0-9a-f]{0,2}){0,80}(&x=1)?",
        ) {
            let r = Request {
                method: b"GET",
                path: b"/ticker",
                query: query.as_bytes(),
                ..Request::default()
            };
            match route(&r, &rules()) {
                Action::Stream(StreamAsk { symbols: Choice::Named(names), .. }) => {
                    prop_assert!(!names.is_empty() && names.len() <= 4);
                    let mut distinct = names.clone();
                    distinct.sort();
                    distinct.dedup();
                    prop_assert_eq!(distinct.len(), names.len());
                }
                Action::Stream(StreamAsk { symbols: Choice::Default, .. }) => {
                    prop_assert!(r.param("symbols").is_none());
                }
                Action::Refuse(400, why) => prop_assert!(why.starts_with("symbols: "), "{}", why),
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
