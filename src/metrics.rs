//! Counters, and their rendering in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write as _;

use crate::clients::StateCounts;
use crate::conn::{CloseReason, Written};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    pub accepted_scgi: u64,
    pub accepted_http: u64,
    pub refused_full: u64,
    pub refused_no_descriptors: u64,
    pub closed: [u64; CloseReason::ALL.len()],
    pub written: Written,
    pub ticks: u64,
    pub published: u64,
    pub publish_refused: u64,
    pub streams_started: u64,
    pub long_polls_started: u64,
    /// Streams and long polls refused by the rights (`--entitlements`): 401 and 403.
    pub streams_unauthorized: u64,
    pub streams_forbidden: u64,
    /// Stream or long-poll requests that carried a numeric Last-Event-ID (reconnections).
    pub requests_with_last_event_id: u64,
    /// Bytes of the events written (heads, heartbeats and answers aside): what deltas save.
    pub event_bytes: u64,
}

impl Counters {
    pub fn closed(&mut self, reason: CloseReason) {
        // CloseReason::ALL lists the variants in declaration order.
        self.closed[reason as usize] += 1;
    }
}

/// What /metrics shows of the universe and the subscriptions (no per-symbol series: their
/// number would grow with the universe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedGauges {
    pub symbols: usize,
    pub subscriptions: usize,
    pub updates: u64,
    /// The universe's newest id.
    pub last_id: u64,
    /// The default symbol's price, in cents.
    /// The default symbol's headline, as written in events.
    pub headline: String,
}

/// What /metrics shows of the link to Redis (`--redis` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisGauges {
    pub up: bool,
    pub reconnects: u64,
    pub reloads: u64,
    pub unknown_symbols: u64,
}

/// The page for `GET /metrics`.
pub fn render(
    c: &Counters,
    clients: &StateCounts,
    max_clients: usize,
    feed: &FeedGauges,
    redis: Option<&RedisGauges>,
) -> String {
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP tickerd_{name} {help}");
        let _ = writeln!(out, "# TYPE tickerd_{name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(out, "tickerd_{name} {value}");
            } else {
                let _ = writeln!(out, "tickerd_{name}{{{labels}}} {value}");
            }
        }
    };
    metric(
        "clients",
        "gauge",
        "Open connections by state (the scrape itself not counted).",
        &[
            ("state=\"reading_request\"", clients.reading as u64),
            ("state=\"idle\"", clients.idle as u64),
            ("state=\"parked\"", clients.parked as u64),
            ("state=\"writing\"", clients.writing as u64),
            ("state=\"closing\"", clients.lingering as u64),
        ],
    );
    metric(
        "max_clients",
        "gauge",
        "Connections held at most before answering 503.",
        &[("", max_clients as u64)],
    );
    metric(
        "connections_accepted_total",
        "counter",
        "Connections accepted, by listener.",
        &[
            ("listener=\"scgi\"", c.accepted_scgi),
            ("listener=\"http\"", c.accepted_http),
        ],
    );
    metric(
        "connections_refused_total",
        "counter",
        "Connections refused at accept, by reason.",
        &[
            ("reason=\"full\"", c.refused_full),
            ("reason=\"no_descriptors\"", c.refused_no_descriptors),
        ],
    );
    let closed: Vec<(String, u64)> = CloseReason::ALL
        .iter()
        .zip(c.closed)
        .map(|(r, n)| (format!("reason=\"{}\"", r.label()), n))
        .collect();
    let closed: Vec<(&str, u64)> = closed.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    metric(
        "connections_closed_total",
        "counter",
        "Connections closed, by reason (done = answered normally).",
        &closed,
    );
    metric(
        "events_written_total",
        "counter",
        "Events written to clients (streams and long polls).",
        &[("", c.written.events)],
    );
    metric(
        "event_bytes_total",
        "counter",
        "Bytes of the events written to clients (their data; heads and heartbeats aside).",
        &[("", c.event_bytes)],
    );
    metric(
        "bytes_written_total",
        "counter",
        "Bytes written to clients, heads included.",
        &[("", c.written.bytes)],
    );
    metric(
        "writes_total",
        "counter",
        "write or writev calls that sent bytes to clients (one carries every update due).",
        &[("", c.written.calls)],
    );
    metric(
        "heartbeats_written_total",
        "counter",
        "Heartbeat comments written to idle streams.",
        &[("", c.written.heartbeats)],
    );
    metric(
        "ticks_total",
        "counter",
        "Batches of new prices: random-walk ticks and accepted publishes.",
        &[("", c.ticks)],
    );
    metric(
        "updates_total",
        "counter",
        "Symbol updates: each new price of one symbol (each takes an id).",
        &[("", feed.updates)],
    );
    metric(
        "symbols",
        "gauge",
        "Symbols in the universe.",
        &[("", feed.symbols as u64)],
    );
    metric(
        "subscriptions",
        "gauge",
        "Sum over open streams and long polls of the symbols each one carries.",
        &[("", feed.subscriptions as u64)],
    );
    metric(
        "publishes_total",
        "counter",
        "POST /publish requests, by result.",
        &[
            ("result=\"ok\"", c.published),
            ("result=\"refused\"", c.publish_refused),
        ],
    );
    metric(
        "requests_total",
        "counter",
        "Ticker requests, by kind.",
        &[
            ("kind=\"stream\"", c.streams_started),
            ("kind=\"long_poll\"", c.long_polls_started),
        ],
    );
    metric(
        "ticker_refused_total",
        "counter",
        "Ticker requests refused by the entitlements, by status.",
        &[
            ("status=\"401\"", c.streams_unauthorized),
            ("status=\"403\"", c.streams_forbidden),
        ],
    );
    metric(
        "requests_with_last_event_id_total",
        "counter",
        "Ticker requests that carried a numeric Last-Event-ID.",
        &[("", c.requests_with_last_event_id)],
    );
    metric(
        "event_id",
        "gauge",
        "Id of the newest update of any symbol.",
        &[("", feed.last_id)],
    );
    if let Some(r) = redis {
        metric(
            "redis_up",
            "gauge",
            "1 while the feed is loaded from Redis and its links are up (publishes taken).",
            &[("", r.up as u64)],
        );
        metric(
            "redis_reconnects_total",
            "counter",
            "Times the feed was loaded again after Redis was away.",
            &[("", r.reconnects)],
        );
        metric(
            "redis_reloads_total",
            "counter",
            "Times the stream skipped ids (trimmed while behind) and the feed was reloaded.",
            &[("", r.reloads)],
        );
        metric(
            "redis_unknown_symbols_total",
            "counter",
            "Updates from Redis for symbols this instance does not carry.",
            &[("", r.unknown_symbols)],
        );
    }
    let _ = writeln!(
        out,
        "# HELP tickerd_price The default symbol's headline (its first field)."
    );
    let _ = writeln!(out, "# TYPE tickerd_price gauge");
    let _ = writeln!(out, "tickerd_price {}", feed.headline);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_once() {
        let mut c = Counters::default();
        c.closed(CloseReason::Hangup);
        c.closed(CloseReason::Hangup);
        let counts = StateCounts {
            reading: 1,
            idle: 5,
            parked: 2,
            writing: 3,
            lingering: 4,
        };
        let feed = FeedGauges {
            symbols: 8,
            subscriptions: 20,
            updates: 30,
            last_id: 77,
            headline: "123.45".into(),
        };
        let redis = RedisGauges {
            up: true,
            reconnects: 2,
            reloads: 0,
            unknown_symbols: 0,
        };
        assert!(!render(&c, &counts, 100, &feed, None).contains("redis"));
        let text = render(&c, &counts, 100, &feed, Some(&redis));
        assert!(text.contains("tickerd_redis_up 1\n"));
        assert!(text.contains("tickerd_redis_reconnects_total 2\n"));
        assert!(text.contains("tickerd_symbols 8\n"));
        assert!(text.contains("tickerd_subscriptions 20\n"));
        assert!(text.contains("tickerd_updates_total 30\n"));
        assert!(text.contains("tickerd_clients{state=\"parked\"} 2\n"));
        assert!(text.contains("tickerd_clients{state=\"idle\"} 5\n"));
        assert!(text.contains("tickerd_connections_closed_total{reason=\"hangup\"} 2\n"));
        assert!(text.contains("tickerd_event_id 77\n"));
        assert!(text.contains("tickerd_price 123.45\n"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split(' ').nth(2).unwrap();
            assert_eq!(
                text.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{name}"
            );
        }
    }
}
