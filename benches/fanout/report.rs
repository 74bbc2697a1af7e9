//! Figures from one run of one system: deliveries matched to publishes, latency and fan-out
//! spread percentiles, CPU and memory; printed as a table and one JSON line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

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

/// One measured process of a system.
#[derive(Debug, Default, Clone)]
pub struct ProcFigures {
    pub name: String,
    /// CPU used while publishing.
    pub cpu: Duration,
    /// RSS in KiB: before the clients came, once all were in, at the end of publishing.
    pub rss_before: u64,
    pub rss_connected: u64,
    /// Halfway through publishing: growth after it is growth that does not level off.
    pub rss_mid: u64,
    pub rss_end: u64,
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
    /// (process, CPU µs per delivered event, RSS growth bytes per connected client, RSS
    /// growth KiB while publishing: over the whole window, over its second half).
    pub procs: Vec<(String, f64, f64, (i64, i64))>,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
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
    let procs = run
        .procs
        .iter()
        .map(|p| {
            let per_event = if received > 0 {
                p.cpu.as_nanos() as f64 / 1e3 / received as f64
            } else {
                0.0
            };
            let per_client = (p.rss_connected.saturating_sub(p.rss_before) * 1024) as f64
                / run.connected.max(1) as f64;
            let growth = (
                p.rss_end as i64 - p.rss_connected as i64,
                p.rss_end as i64 - p.rss_mid as i64,
            );
            (p.name.clone(), per_event, per_client, growth)
        })
        .collect();
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
        procs,
    }
}

/// The table, with CPU per event and spread also as ratios to the floor's row.
pub fn table(rows: &[Row], long_poll: bool) -> String {
    let floor = rows.iter().find(|r| r.name == "floor");
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
        let floor_cpu = floor
            .and_then(|f| f.procs.first())
            .map(|p| p.1)
            .unwrap_or(0.0);
        for (i, (proc_name, cpu, rss, growth)) in r.procs.iter().enumerate() {
            let ratio = if floor_cpu > 0.0 {
                format!("{:.2}×", cpu / floor_cpu)
            } else {
                "-".into()
            };
            if i == 0 {
                let _ = writeln!(
                    out,
                    "{:<22} {:>13} {:>9} {:>22} {:>21} {:>17} {:>26} {:>12.0} {:>14}",
                    format!("{} [{proc_name}]", r.name),
                    format!("{}/{}", r.connected, r.failed),
                    r.connect_ms,
                    format!("{}/{}/{}", r.expected, r.received, r.missing),
                    format!(
                        "{:.2}/{:.2}/{:.2} ms",
                        r.latency_ms[0], r.latency_ms[1], r.latency_ms[2]
                    ),
                    format!("{:.2}/{:.2} ms", r.spread_ms[0], r.spread_ms[1]),
                    format!("{cpu:.2} ({ratio})"),
                    rss,
                    format!("{:+}/{:+} KiB", growth.0, growth.1)
                );
            } else {
                let _ = writeln!(
                    out,
                    "{:<22} {:>13} {:>9} {:>22} {:>21} {:>17} {:>26} {:>12.0} {:>14}",
                    format!("  + [{proc_name}]"),
                    "",
                    "",
                    "",
                    "",
                    "",
                    format!("{cpu:.2} ({ratio})"),
                    rss,
                    format!("{:+}/{:+} KiB", growth.0, growth.1)
                );
            }
        }
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
    out
}

/// One JSON line with every figure (hand-written: a handful of numbers and names).
pub fn json(rows: &[Row], settings: &str) -> String {
    let mut out = format!("{{\"settings\":{settings},\"rows\":[");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let procs: Vec<String> = r
            .procs
            .iter()
            .map(|(n, cpu, rss, growth)| {
                format!(
                    "{{\"process\":\"{n}\",\"cpu_us_per_event\":{cpu:.3},\"rss_bytes_per_client\":{rss:.1},\"rss_growth_kib_while_publishing\":{},\"rss_growth_kib_second_half\":{}}}", growth.0, growth.1
                )
            })
            .collect();
        let _ = write!(
            out,
            "{{\"system\":\"{}\",\"clients\":{},\"stalled\":{},\"connected\":{},\"failed\":{},\"dropped\":{},\"disorder\":{},\"connect_ms\":{},\
             \"published\":{},\"expected\":{},\"received\":{},\"missing\":{},\
             \"latency_ms\":{{\"p50\":{:.3},\"p99\":{:.3},\"max\":{:.3}}},\"spread_ms\":{{\"p50\":{:.3},\"p99\":{:.3}}},\
             \"responses_per_s\":{:.1},\"processes\":[{}]}}",
            r.name, r.clients, r.stalled, r.connected, r.failed, r.dropped, r.disorder, r.connect_ms, r.published, r.expected, r.received,
            r.missing, r.latency_ms[0], r.latency_ms[1], r.latency_ms[2], r.spread_ms[0], r.spread_ms[1],
            r.responses_per_s, procs.join(",")
        );
    }
    out.push_str("]}");
    out
}
