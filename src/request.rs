//! What tickerd needs to know of a request, whichever protocol brought it, and the CGI
//! routing rules that turn SCGI variables into a path.

use crate::publish::BodyFormat;
use crate::scgi;

/// A request, borrowing from the bytes it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request<'a> {
    pub method: &'a [u8],
    /// The path inside tickerd's mount (`/ticker`), without the query.
    pub path: &'a [u8],
    /// The query string, without the `?`, still URL-encoded.
    pub query: &'a [u8],
    pub last_event_id: Option<&'a [u8]>,
    /// `X-Event-Source-Simulate`, the seed's long-polling switch.
    pub simulate: Option<&'a [u8]>,
    pub authorization: Option<&'a [u8]>,
    /// `Cookie` (SCGI: `HTTP_COOKIE`): a token may come in one (`--auth-cookie`).
    pub cookie: Option<&'a [u8]>,
    /// SCGI's `REMOTE_USER`: the user the front-end authenticated. Never set from HTTP (a
    /// client could send any header); used only with `--trust-remote-user`.
    pub remote_user: Option<&'a [u8]>,
    /// `Content-Type` (SCGI: `CONTENT_TYPE`): how a publish body is written.
    pub content_type: Option<&'a [u8]>,
    pub body: &'a [u8],
    /// HTTP: the client may send another request on this connection after this one's
    /// answer (HTTP/1.1 without `Connection: close`, HTTP/1.0 with `Connection:
    /// keep-alive`). Never over SCGI: one request per connection.
    pub keep_alive: bool,
}

impl<'a> Request<'a> {
    /// CGI rules (RFC 3875 §4.1.5, §4.1.13): inside the mount, the path is PATH_INFO.
    /// Front-ends that send none (nginx's stock scgi_params; lighttpd at "/" without
    /// fix-root-scriptname) mount at the root: fall back to DOCUMENT_URI, then REQUEST_URI.
    pub fn from_scgi(req: &scgi::Request<'a>) -> Request<'a> {
        let mut out = Request {
            body: req.body,
            ..Request::default()
        };
        let mut path_info = None;
        let mut document_uri = None;
        let mut request_uri = None;
        let mut query_string = None;
        for (name, value) in req.headers() {
            match name {
                b"REQUEST_METHOD" => out.method = value,
                b"QUERY_STRING" => query_string = Some(value),
                b"PATH_INFO" => path_info = Some(value),
                b"DOCUMENT_URI" => document_uri = Some(value),
                b"REQUEST_URI" => request_uri = Some(value),
                b"HTTP_LAST_EVENT_ID" => out.last_event_id = Some(value),
                b"HTTP_X_EVENT_SOURCE_SIMULATE" => out.simulate = Some(value),
                b"HTTP_AUTHORIZATION" => out.authorization = Some(value),
                b"HTTP_COOKIE" => out.cookie = Some(value),
                // CGI (RFC 3875 §4.1.11): set by the front-end, not the client. Empty: none.
                b"REMOTE_USER" if !value.is_empty() => out.remote_user = Some(value),
                // CGI (RFC 3875 §4.1.3): the body's type, without the HTTP_ prefix.
                b"CONTENT_TYPE" => out.content_type = Some(value),
                _ => {}
            }
        }
        out.path = path_info
            .filter(|p| !p.is_empty())
            .or(document_uri)
            .or(request_uri)
            .map(strip_query)
            .unwrap_or(b"/");
        // CGI's QUERY_STRING; a front-end that sends none still sends REQUEST_URI.
        out.query = query_string
            .or_else(|| request_uri.map(query_of))
            .unwrap_or_default();
        out
    }

    /// The first value of query parameter `name`, URL-decoded (`%2C` and `+` too).
    pub fn param(&self, name: &str) -> Option<Vec<u8>> {
        self.query.split(|&b| b == b'&').find_map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &b""[..]),
            };
            (url_decode(key) == name.as_bytes()).then(|| url_decode(value))
        })
    }

    /// `X-Event-Source-Simulate: Long-Polling`, the value matched without regard to case.
    pub fn wants_long_poll(&self) -> bool {
        self.simulate
            .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"long-polling"))
    }

    /// How the body is written: JSON lines for `application/x-ndjson` or
    /// `application/json` (matched without regard to case, parameters such as
    /// `; charset=utf-8` ignored), text for any other type or none.
    pub fn body_format(&self) -> BodyFormat {
        let media = self
            .content_type
            .and_then(|v| v.split(|&b| b == b';').next())
            .unwrap_or_default()
            .trim_ascii();
        let json = [&b"application/x-ndjson"[..], b"application/json"];
        match json.iter().any(|t| media.eq_ignore_ascii_case(t)) {
            true => BodyFormat::JsonLines,
            false => BodyFormat::Text,
        }
    }

    /// The id the client last saw: `None` when absent or not a number, which the rules treat
    /// alike (anything but the current id gets the current event at once).
    pub fn last_event_id(&self) -> Option<u64> {
        std::str::from_utf8(self.last_event_id?)
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

pub(crate) fn strip_query(target: &[u8]) -> &[u8] {
    match target.iter().position(|&b| b == b'?') {
        Some(q) => &target[..q],
        None => target,
    }
}

/// What follows the `?` of a request target; empty without one.
pub(crate) fn query_of(target: &[u8]) -> &[u8] {
    match target.iter().position(|&b| b == b'?') {
        Some(q) => &target[q + 1..],
        None => b"",
    }
}

/// Form URL decoding: `%XX` is that byte, `+` a space; a `%` not followed by two hex
/// digits stays as it is.
pub(crate) fn url_decode(text: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                text.get(i + 1).and_then(|&b| hex(b)),
                text.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(headers: &[(&str, &str)]) -> Vec<u8> {
        let bytes = scgi::encode(headers, b"");
        let limits = scgi::Limits {
            max_header: 4096,
            max_body: 0,
        };
        let Ok(scgi::Status::Complete(req)) = scgi::parse(&bytes, &limits) else {
            panic!()
        };
        Request::from_scgi(&req).path.to_vec()
    }

    #[test]
    fn cgi_routing() {
        // lighttpd at "/" with fix-root-scriptname, and under a prefix.
        assert_eq!(
            routed(&[("SCRIPT_NAME", ""), ("PATH_INFO", "/ticker")]),
            b"/ticker"
        );
        assert_eq!(
            routed(&[
                ("SCRIPT_NAME", "/prices"),
                ("PATH_INFO", "/ticker"),
                ("REQUEST_URI", "/prices/ticker")
            ]),
            b"/ticker"
        );
        // lighttpd at "/" without fix-root-scriptname: the whole path as SCRIPT_NAME.
        assert_eq!(
            routed(&[("SCRIPT_NAME", "/ticker"), ("REQUEST_URI", "/ticker?x=1")]),
            b"/ticker"
        );
        // nginx's stock scgi_params.
        assert_eq!(
            routed(&[("DOCUMENT_URI", "/metrics"), ("REQUEST_URI", "/metrics?a")]),
            b"/metrics"
        );
        assert_eq!(routed(&[]), b"/");
    }

    #[test]
    fn query_parameters_are_url_decoded() {
        let req = |q: &'static str| Request {
            query: q.as_bytes(),
            ..Request::default()
        };
        let r = req("x=1&symbols=aapl%2Cmsft%2c+brk.b&symbols=other");
        assert_eq!(r.param("symbols").unwrap(), b"aapl,msft, brk.b");
        assert_eq!(r.param("x").unwrap(), b"1");
        assert_eq!(r.param("nope"), None);
        assert_eq!(req("symbols").param("symbols").unwrap(), b"");
        assert_eq!(req("s%79mbols=A").param("symbols").unwrap(), b"A");
        assert_eq!(url_decode(b"100%"), b"100%");
        assert_eq!(url_decode(b"%zz%4"), b"%zz%4");
        assert_eq!(url_decode(b"%e2%82%ac"), "€".as_bytes());
    }

    #[test]
    fn the_query_over_scgi() {
        let query = |headers: &[(&str, &str)]| {
            let bytes = scgi::encode(headers, b"");
            let limits = scgi::Limits {
                max_header: 4096,
                max_body: 0,
            };
            let Ok(scgi::Status::Complete(req)) = scgi::parse(&bytes, &limits) else {
                panic!()
            };
            Request::from_scgi(&req).query.to_vec()
        };
        assert_eq!(
            query(&[("QUERY_STRING", "symbols=A"), ("REQUEST_URI", "/t?b")]),
            b"symbols=A"
        );
        assert_eq!(query(&[("REQUEST_URI", "/ticker?symbols=B")]), b"symbols=B");
        assert_eq!(query(&[("REQUEST_URI", "/ticker")]), b"");
    }

    #[test]
    fn the_cookie_over_scgi() {
        let bytes = scgi::encode(&[("HTTP_COOKIE", "t=abc; x=1")], b"");
        let limits = scgi::Limits {
            max_header: 4096,
            max_body: 0,
        };
        let Ok(scgi::Status::Complete(req)) = scgi::parse(&bytes, &limits) else {
            panic!()
        };
        assert_eq!(Request::from_scgi(&req).cookie, Some(&b"t=abc; x=1"[..]));
    }

    #[test]
    fn long_poll_header_is_case_insensitive() {
        for (value, want) in [
            ("Long-Polling", true),
            ("long-polling", true),
            (" LONG-POLLING ", true),
            ("long", false),
            ("", false),
        ] {
            let req = Request {
                simulate: Some(value.as_bytes()),
                ..Request::default()
            };
            assert_eq!(req.wants_long_poll(), want, "{value:?}");
        }
        assert!(!Request::default().wants_long_poll());
    }

    #[test]
    fn the_body_format_is_told_by_its_content_type() {
        for (value, want) in [
            (Some("application/x-ndjson"), BodyFormat::JsonLines),
            (Some("application/json"), BodyFormat::JsonLines),
            (
                Some("Application/JSON; charset=utf-8"),
                BodyFormat::JsonLines,
            ),
            (
                Some(" application/x-ndjson ;charset=UTF-8"),
                BodyFormat::JsonLines,
            ),
            (Some("application/x-www-form-urlencoded"), BodyFormat::Text),
            (Some("text/plain"), BodyFormat::Text),
            (Some("application/jsonx"), BodyFormat::Text),
            (Some("application/json-seq"), BodyFormat::Text),
            (Some(""), BodyFormat::Text),
            (None, BodyFormat::Text),
        ] {
            let req = Request {
                content_type: value.map(str::as_bytes),
                ..Request::default()
            };
            assert_eq!(req.body_format(), want, "{value:?}");
        }
        // SCGI: the CGI variable, not an HTTP_ one.
        let bytes = scgi::encode(
            &[
                ("REQUEST_METHOD", "POST"),
                ("CONTENT_TYPE", "application/x-ndjson"),
            ],
            b"",
        );
        let limits = scgi::Limits {
            max_header: 4096,
            max_body: 0,
        };
        let Ok(scgi::Status::Complete(req)) = scgi::parse(&bytes, &limits) else {
            panic!()
        };
        let req = Request::from_scgi(&req);
        assert_eq!(req.content_type, Some(&b"application/x-ndjson"[..]));
        assert_eq!(req.body_format(), BodyFormat::JsonLines);
    }

    #[test]
    fn last_event_id_parsing() {
        let with = |v: &'static str| Request {
            last_event_id: Some(v.as_bytes()),
            ..Request::default()
        };
        assert_eq!(with("42").last_event_id(), Some(42));
        assert_eq!(with(" 42 ").last_event_id(), Some(42));
        assert_eq!(with("x42").last_event_id(), None);
        assert_eq!(with("-1").last_event_id(), None);
        assert_eq!(with("99999999999999999999999").last_event_id(), None);
        assert_eq!(Request::default().last_event_id(), None);
    }
}
