//! Every canned answer tickerd gives, rendered in one place with the counter it bumps (after
//! sozu's `DefaultAnswer`): the refusals of bad requests, the publisher's answers, and the
//! 503s of a full server, an absent Redis and an upgrade. The streams, the page and the
//! listings are not canned: they are built where their content is.

use crate::feed::Applied;
use crate::metrics::Counters;
use crate::response::{self, Dialect};

/// What each kind of 503 tells clients to wait, in seconds.
const RETRY_FULL: &str = "5";
const RETRY_REDIS: &str = "2";
const RETRY_UPGRADE: &str = "1";

/// A short plain-text answer and why it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<'a> {
    /// 200: a publish was applied; its last update took this id.
    Published(Applied),
    /// A request the parsers or the router refused (400, 411, 413, 431): the reason.
    Refused { status: u16, why: &'a str },
    /// 400: a publish batch that does not check out; nothing of it was applied.
    BadBatch(&'a str),
    /// 401: a publish without the right token.
    Unauthorized,
    /// 404: publishing is off (no token configured): the endpoint is not there.
    PublishingDisabled,
    /// 404: no such endpoint.
    NotFound,
    /// 404: a stream of symbols the universe does not have (the reason names them).
    UnknownSymbols(&'a str),
    /// 405, with the method the endpoint takes.
    MethodNotAllowed { allow: &'static str },
    /// 401 with `WWW-Authenticate: Bearer`: a stream or long poll without an identity, of
    /// symbols anonymous may not see (the reason names them).
    StreamUnauthorized(&'a str),
    /// 403: an identified caller's stream or long poll of symbols it may not see (the
    /// reason names them, whether they exist or not).
    StreamForbidden(&'a str),
    /// 503: `--max-clients` reached.
    Full,
    /// 503: a publish that Redis cannot take now.
    RedisUnavailable,
    /// 503: a publish waiting for Redis when a live upgrade began.
    Upgrading,
}

impl Answer<'_> {
    /// The status code.
    pub fn status(&self) -> u16 {
        match self {
            Answer::Published(_) => 200,
            Answer::Refused { status, .. } => *status,
            Answer::BadBatch(_) => 400,
            Answer::Unauthorized | Answer::StreamUnauthorized(_) => 401,
            Answer::StreamForbidden(_) => 403,
            Answer::PublishingDisabled | Answer::NotFound | Answer::UnknownSymbols(_) => 404,
            Answer::MethodNotAllowed { .. } => 405,
            Answer::Full | Answer::RedisUnavailable | Answer::Upgrading => 503,
        }
    }

    /// The whole response in `dialect`, with its counter bumped in `counters`.
    pub fn render(&self, dialect: Dialect, counters: &mut Counters) -> Vec<u8> {
        self.count(counters);
        let (extra, body): (&[(&str, &str)], String) = match self {
            // The first line is the id, as before records, for the publishers that read it.
            Answer::Published(a) => (
                &[],
                format!(
                    "{}\napplied {}\nunchanged {}\n",
                    a.last_id, a.changed, a.unchanged
                ),
            ),
            Answer::Refused { why, .. } | Answer::BadBatch(why) | Answer::UnknownSymbols(why) => {
                (&[], format!("{why}\n"))
            }
            Answer::StreamUnauthorized(why) => {
                (&[("WWW-Authenticate", "Bearer")], format!("{why}\n"))
            }
            Answer::StreamForbidden(why) => (&[], format!("{why}\n")),
            Answer::Unauthorized => (
                &[("WWW-Authenticate", "Bearer")],
                "missing or wrong token\n".into(),
            ),
            Answer::PublishingDisabled => (&[], "publishing is disabled\n".into()),
            Answer::NotFound => (&[], "not found\n".into()),
            Answer::MethodNotAllowed { allow } => {
                return response::text(dialect, 405, &[("Allow", allow)], "method not allowed\n")
            }
            Answer::Full => (&[("Retry-After", RETRY_FULL)], "server full\n".into()),
            Answer::RedisUnavailable => (
                &[("Retry-After", RETRY_REDIS)],
                "Redis is unavailable: try again\n".into(),
            ),
            Answer::Upgrading => (
                &[("Retry-After", RETRY_UPGRADE)],
                "tickerd is upgrading: try again\n".into(),
            ),
        };
        response::text(dialect, self.status(), extra, &body)
    }

    /// The counter this answer bumps, if any.
    fn count(&self, c: &mut Counters) {
        match self {
            Answer::Published(_) => {
                c.published += 1;
                c.ticks += 1;
            }
            Answer::BadBatch(_) | Answer::Unauthorized | Answer::RedisUnavailable => {
                c.publish_refused += 1
            }
            Answer::Full => c.refused_full += 1,
            Answer::StreamUnauthorized(_) => c.streams_unauthorized += 1,
            Answer::StreamForbidden(_) => c.streams_forbidden += 1,
            Answer::Refused { .. }
            | Answer::PublishingDisabled
            | Answer::NotFound
            | Answer::UnknownSymbols(_)
            | Answer::MethodNotAllowed { .. }
            | Answer::Upgrading => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(answer: Answer, dialect: Dialect) -> (String, Counters) {
        let mut c = Counters::default();
        let bytes = answer.render(dialect, &mut c);
        (String::from_utf8(bytes).unwrap(), c)
    }

    #[test]
    fn each_answer_its_status_headers_body_and_counter() {
        let applied = Applied {
            last_id: 42,
            changed: 2,
            unchanged: 1,
        };
        let (t, c) = text(Answer::Published(applied), Dialect::HttpClose);
        assert!(
            t.starts_with("HTTP/1.1 200 OK\r\n")
                && t.ends_with("\r\n\r\n42\napplied 2\nunchanged 1\n"),
            "{t}"
        );
        assert_eq!((c.published, c.ticks), (1, 1));

        let (t, c) = text(Answer::Unauthorized, Dialect::Scgi);
        assert!(t.starts_with("Status: 401 Unauthorized\r\n"), "{t}");
        assert!(t.contains("WWW-Authenticate: Bearer\r\n"));
        assert!(t.ends_with("missing or wrong token\n"));
        assert_eq!(c.publish_refused, 1);

        let (t, c) = text(Answer::Full, Dialect::HttpClose);
        assert!(
            t.starts_with("HTTP/1.1 503 ") && t.contains("Retry-After: 5\r\n"),
            "{t}"
        );
        assert!(t.ends_with("server full\n"));
        assert_eq!(c.refused_full, 1);

        let (t, c) = text(Answer::RedisUnavailable, Dialect::HttpClose);
        assert!(
            t.contains("Retry-After: 2\r\n") && t.ends_with("try again\n"),
            "{t}"
        );
        assert_eq!(c.publish_refused, 1);

        let (t, c) = text(Answer::Upgrading, Dialect::Scgi);
        assert!(
            t.starts_with("Status: 503 ") && t.contains("Retry-After: 1\r\n"),
            "{t}"
        );
        assert_eq!(c, Counters::default());

        let (t, c) = text(Answer::BadBatch("line 2: no"), Dialect::HttpClose);
        assert!(t.starts_with("HTTP/1.1 400 ") && t.ends_with("\r\n\r\nline 2: no\n"));
        assert_eq!(c.publish_refused, 1);

        let (t, _) = text(
            Answer::Refused {
                status: 413,
                why: "too big",
            },
            Dialect::Scgi,
        );
        assert!(t.starts_with("Status: 413 Content Too Large\r\n") && t.ends_with("too big\n"));

        let (t, _) = text(
            Answer::MethodNotAllowed { allow: "POST" },
            Dialect::HttpClose,
        );
        assert!(
            t.starts_with("HTTP/1.1 405 ") && t.contains("Allow: POST\r\n"),
            "{t}"
        );

        let (t, c) = text(
            Answer::StreamUnauthorized("symbols: need an identity: A"),
            Dialect::Scgi,
        );
        assert!(t.starts_with("Status: 401 Unauthorized\r\n"), "{t}");
        assert!(t.contains("WWW-Authenticate: Bearer\r\n") && t.ends_with("identity: A\n"));
        assert_eq!((c.streams_unauthorized, c.publish_refused), (1, 0));

        let (t, c) = text(
            Answer::StreamForbidden("symbols: not entitled: A"),
            Dialect::HttpClose,
        );
        assert!(t.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{t}");
        assert!(!t.contains("WWW-Authenticate") && t.ends_with("not entitled: A\n"));
        assert_eq!(c.streams_forbidden, 1);

        for (answer, body) in [
            (Answer::NotFound, "not found\n"),
            (Answer::PublishingDisabled, "publishing is disabled\n"),
            (
                Answer::UnknownSymbols("symbols: unknown: X"),
                "symbols: unknown: X\n",
            ),
        ] {
            let (t, c) = text(answer, Dialect::HttpClose);
            assert!(
                t.starts_with("HTTP/1.1 404 Not Found\r\n") && t.ends_with(body),
                "{t}"
            );
            assert_eq!(c, Counters::default());
        }
    }
}
