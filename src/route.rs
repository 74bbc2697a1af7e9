//! Which endpoint a request is for, and what it asks of the server.

use crate::publish::{self, PublishError};
use crate::request::Request;

/// What the server should do with a request. Owned, so that the request's buffer can go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `GET /ticker`: an event stream. `last_id` is the client's Last-Event-ID, if a number.
    Stream {
        last_id: Option<u64>,
    },
    /// `GET /ticker` with `X-Event-Source-Simulate: Long-Polling`: one event, then the end.
    LongPoll {
        last_id: Option<u64>,
    },
    Page,
    Metrics,
    /// `POST /publish`, authorized, with this price in cents.
    Publish(u64),
    PublishRefused(PublishError),
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
}

pub fn route(req: &Request, publish_token: Option<&str>) -> Action {
    let endpoint = match req.path {
        b"/" | b"/index.html" => Endpoint::Page,
        b"/ticker" => Endpoint::Ticker,
        b"/metrics" => Endpoint::Metrics,
        b"/publish" => Endpoint::Publish,
        _ => return Action::NotFound,
    };
    // A disabled publisher is not there at all, whatever the method.
    if endpoint == Endpoint::Publish && publish_token.is_none() {
        return Action::PublishRefused(PublishError::Disabled);
    }
    let allow = endpoint.allow();
    if req.method != allow.as_bytes() {
        return Action::MethodNotAllowed { allow };
    }
    match endpoint {
        Endpoint::Page => Action::Page,
        Endpoint::Metrics => Action::Metrics,
        Endpoint::Ticker if req.wants_long_poll() => Action::LongPoll {
            last_id: req.last_event_id(),
        },
        Endpoint::Ticker => Action::Stream {
            last_id: req.last_event_id(),
        },
        Endpoint::Publish => match publish::authorize_and_parse(publish_token, req) {
            Ok(cents) => Action::Publish(cents),
            Err(e) => Action::PublishRefused(e),
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Page,
    Ticker,
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
        Request {
            method: b"GET",
            path: path.as_bytes(),
            ..Request::default()
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(route(&get("/"), None), Action::Page);
        assert_eq!(route(&get("/metrics"), None), Action::Metrics);
        assert_eq!(route(&get("/nope"), None), Action::NotFound);
        assert_eq!(
            route(&get("/ticker"), None),
            Action::Stream { last_id: None }
        );
        let lp = Request {
            simulate: Some(b"long-polling"),
            last_event_id: Some(b"7"),
            ..get("/ticker")
        };
        assert_eq!(route(&lp, None), Action::LongPoll { last_id: Some(7) });
    }

    #[test]
    fn methods_and_publishing() {
        let post_ticker = Request {
            method: b"POST",
            ..get("/ticker")
        };
        assert_eq!(
            route(&post_ticker, None),
            Action::MethodNotAllowed { allow: "GET" }
        );
        assert_eq!(
            route(&get("/publish"), None),
            Action::PublishRefused(PublishError::Disabled)
        );
        assert_eq!(
            route(&get("/publish"), Some("t")),
            Action::MethodNotAllowed { allow: "POST" }
        );
        let publish = Request {
            method: b"POST",
            authorization: Some(b"Bearer t"),
            body: b"5.25",
            ..get("/publish")
        };
        assert_eq!(route(&publish, Some("t")), Action::Publish(525));
        assert_eq!(
            route(&publish, Some("u")),
            Action::PublishRefused(PublishError::Unauthorized)
        );
    }
}
