//! The one-symbol workload's figures for one system: deliveries matched to publishes,
//! latency and fan-out spread percentiles, CPU and memory; printed as a table and one JSON
//! line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use crate::procs::ProcFigures;
use crate::stats::{ms, percentile, round};

/// What the coordinator measured around a run.
#[derive(Debug, Default, Clone)]
pub struct Run {
    pub name: String,
    pub clients: usize,
    /// Streams that never read, held beside the measured ones.
    pub stalled: u64,
    pub connected: u64,
    pub failed: u64,
    pub dropped: u64,
    /// Events a stream got again or before one it already had.
    pub disorder: u64,
    pub responses: u64,
    pub connect_ms: u64,
    /// Publish time of each sequence number (1-based).
    pub published: Vec<u64>,
    pub window: Duration,
    pub procs: Vec<ProcFigures>,
}

#[derive(Debug, Default, Clone)]
pub struct Row {
    pub name: String,
    pub clients: usize,
    pub stalled: u64,
    pub connected: u64,
    pub failed: u64,
    pub dropped: u64,
    pub disorder: u64,
    pub connect_ms: u64,
    pub published: usize,
    pub expected: u64,
    pub received: u64,
    pub missing: u64,
    pub latency_ms: [f64; 3],
    pub spread_ms: [f64; 2],
    pub responses_per_s: f64,
    pub procs: Vec<ProcFigures>,
}

impl Row {
    /// A process's CPU µs per delivered event.
    pub fn cpu_us_per_event(&self, p: &ProcFigures) -> f64 {
        p.cpu_us_per(self.received)
    }
}

/// Matches arrivals (seq, ns) to publishes and computes the figures.
pub fn summarize(run: &Run, arrivals: &[(u32, u64)], streams: bool) -> Row {
    let n = run.published.len();
    let mut latencies = Vec::with_capacity(arrivals.len());
    let mut first_last: HashMap<u32, (u64, u64)> = HashMap::new();
    for &(seq, at) in arrivals {
        if seq == 0 || seq as usize > n {
            continue; // the event current at connect, not one of ours
        }
        let sent = run.published[seq as usize - 1];
        latencies.push(at.saturating_sub(sent));
        let e = first_last.entry(seq).or_insert((at, at));
        e.0 = e.0.min(at);
        e.1 = e.1.max(at);
    }
    latencies.sort_unstable();
    if std::env::var_os("FANOUT_SPREADS").is_some() {
        let mut per_seq: Vec<_> = first_last
            .iter()
            .map(|(s, (a, b))| (*s, ms(b - a)))
            .collect();
        per_seq.sort_by_key(|p| p.0);
        eprintln!("{} spreads by seq (ms): {per_seq:.1?}", run.name);
    }
    let mut spreads: Vec<u64> = first_last.values().map(|(a, b)| b - a).collect();
    spreads.sort_unstable();
    let received = latencies.len() as u64;
    let expected = if streams { run.connected * n as u64 } else { 0 };
    Row {
        name: run.name.clone(),
        clients: run.clients,
        stalled: run.stalled,
        connected: run.connected,
        failed: run.failed,
        dropped: run.dropped,
        disorder: run.disorder,
        connect_ms: run.connect_ms,
        published: n,
        expected,
        received,
        missing: expected.saturating_sub(received),
        latency_ms: [
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies.last().copied().unwrap_or(0)),
        ],
        spread_ms: [
            ms(percentile(&spreads, 0.5)),
            ms(percentile(&spreads, 0.99)),
        ],
        responses_per_s: run.responses as f64 / run.window.as_secs_f64().max(1e-9),
        procs: run.procs.clone(),
    }
}

/// The table, with CPU per event and spread also as ratios to the floor's row.
pub fn table(rows: &[Row], long_poll: bool) -> String {
    let floor = rows.iter().find(|r| r.name == "floor");
    let floor_cpu = floor
        .and_then(|f| Some(f.cpu_us_per_event(f.procs.first()?)))
        .unwrap_or(0.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>13} {:>9} {:>22} {:>21} {:>17} {:>26} {:>12} {:>14}",
        "system",
        "conns ok/fail",
        "conn ms",
        "events exp/recv/miss",
        "latency p50/p99/max",
        "spread p50/p99",
        "CPU µs/event (× floor)",
        "RSS B/client",
        "RSS Δ all/2nd half"
    );
    for r in rows {
        for (i, p) in r.procs.iter().enumerate() {
            // The row's own figures on its first process's line; the others' left blank.
            let [name, conns, conn_ms, events, latency, spread] = match i {
                0 => [
                    format!("{} [{}]", r.name, p.name),
                    format!("{}/{}", r.connected, r.failed),
                    r.connect_ms.to_string(),
                    format!("{}/{}/{}", r.expected, r.received, r.missing),
                    format!(
                        "{:.2}/{:.2}/{:.2} ms",
                        r.latency_ms[0], r.latency_ms[1], r.latency_ms[2]
                    ),
                    format!("{:.2}/{:.2} ms", r.spread_ms[0], r.spread_ms[1]),
                ],
                _ => [
                    format!("  + [{}]", p.name),
                    "".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                ],
            };
            let cpu = r.cpu_us_per_event(p);
            let ratio = if floor_cpu > 0.0 {
                format!("{:.2}×", cpu / floor_cpu)
            } else {
                "-".into()
            };
            let growth = p.rss_growth_kib();
            let _ = writeln!(
                out,
                "{name:<22} {conns:>13} {conn_ms:>9} {events:>22} {latency:>21} {spread:>17} {:>26} {:>12.0} {:>14}",
                format!("{cpu:.2} ({ratio})"),
                p.rss_bytes_per_client(r.connected),
                format!("{:+}/{:+} KiB", growth.0, growth.1)
            );
        }
        notes(&mut out, r, floor, long_poll);
    }
    out
}

/// The lines under a system's: long-poll responses, stalled streams, spread against the
/// floor's.
fn notes(out: &mut String, r: &Row, floor: Option<&Row>, long_poll: bool) {
    if long_poll {
        let _ = writeln!(
            out,
            "{:<22} long-poll responses/s: {:.0}",
            "", r.responses_per_s
        );
    }
    if r.stalled > 0 {
        let _ = writeln!(out, "{:<22} + {} streams that never read", "", r.stalled);
    }
    if let (Some(f), true) = (floor, r.name != "floor") {
        if f.spread_ms[1] > 0.0 {
            let _ = writeln!(
                out,
                "{:<22} spread p99 {:.2}× floor's; dropped streams {}; repeated or out-of-order events {}",
                "",
                r.spread_ms[1] / f.spread_ms[1],
                r.dropped,
                r.disorder
            );
        }
    }
}

/// One JSON line with every figure of a one-symbol run.
pub fn json(rows: &[Row], settings: Value) -> Value {
    let rows: Vec<Value> = rows.iter().map(row_json).collect();
    json!({ "settings": settings, "rows": rows })
}

fn row_json(r: &Row) -> Value {
    let procs: Vec<Value> = r
        .procs
        .iter()
        .map(|p| {
            p.json(
                ("cpu_us_per_event", round(r.cpu_us_per_event(p), 3)),
                r.connected,
            )
        })
        .collect();
    json!({
        "system": r.name,
        "clients": r.clients,
        "stalled": r.stalled,
        "connected": r.connected,
        "failed": r.failed,
        "dropped": r.dropped,
        "disorder": r.disorder,
        "connect_ms": r.connect_ms,
        "published": r.published,
        "expected": r.expected,
        "received": r.received,
        "missing": r.missing,
        "latency_ms": {
            "p50": round(r.latency_ms[0], 3),
            "p99": round(r.latency_ms[1], 3),
            "max": round(r.latency_ms[2], 3),
        },
        "spread_ms": {
            "p50": round(r.spread_ms[0], 3),
            "p99": round(r.spread_ms[1], 3),
        },
        "responses_per_s": round(r.responses_per_s, 1),
        "processes": procs,
    })
}
