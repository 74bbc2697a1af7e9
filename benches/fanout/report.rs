//! Figures from one run of one system: deliveries matched to publishes, latency and fan-out
//! spread percentiles, CPU and memory; printed as a table and one JSON line (serde_json).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

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

/// One measured process of a system under the many-symbol load.
#[derive(Debug, Default, Clone)]
pub struct ManyProc {
    pub name: String,
    /// CPU used from the first publish until every client held the final values.
    pub cpu: Duration,
    /// RSS in KiB: before the clients came, once all were in, halfway through publishing,
    /// at the end.
    pub rss_before: u64,
    pub rss_connected: u64,
    pub rss_mid: u64,
    pub rss_end: u64,
}

/// tickerd behind lighttpd's balancing conf (`--redis`): its instances, and where lighttpd
/// put the streams.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub instances: usize,
    /// Sharing a Redis (else one process on its own: the baseline).
    pub redis: bool,
    /// Streams open on each instance once every client was in.
    pub streams: Vec<u64>,
}

/// A cluster's figures (`--redis`): CPU summed over the processes of each role.
#[derive(Debug, Clone)]
pub struct ClusterRow {
    pub cluster: Cluster,
    /// Every tickerd instance's CPU, summed, per update delivered to a client.
    pub tickerd_cpu_per_delivered_us: f64,
    /// Redis's CPU per update published, and per publish (one script call each).
    pub redis_cpu_per_update_us: Option<f64>,
    pub redis_cpu_per_publish_us: Option<f64>,
    /// lighttpd's CPU per update delivered.
    pub front_cpu_per_delivered_us: f64,
    /// Publishes (batches) made, and updates in them.
    pub publishes: u64,
    pub published: u64,
    /// Every tickerd instance's CPU, summed, in µs.
    pub tickerd_cpu_us: f64,
}

/// What the coordinator gathered about one system's many-symbol run.
#[derive(Debug)]
pub struct ManyRun {
    pub name: String,
    pub clients: usize,
    pub cluster: Option<Cluster>,
    pub connected: u64,
    pub failed: u64,
    pub dropped: u64,
    pub connect_ms: u64,
    /// Updates published to this system, and in how many publishes (batches).
    pub published: u64,
    pub publishes: u64,
    /// From the first publish to the last.
    pub publishing: Duration,
    /// From the last publish until every client held every final value.
    pub settled: Option<Duration>,
    pub publish_failed: u64,
    pub first_publish_error: Option<String>,
    /// tickerd: each publish's time from connect to answer, ns.
    pub publish_answered_ns: Vec<u64>,
    /// tickerd only: the received ids against the ids its publishes were answered.
    pub ids: Option<crate::multi::IdCheck>,
    /// tickerd only: its own count of writes and of events written while measured.
    pub written: Option<(u64, u64)>,
    pub summary: crate::watch::Summary,
    pub procs: Vec<ManyProc>,
}

/// A process's figures: CPU µs per delivered update, RSS growth per connected client
/// (bytes), RSS growth while publishing (KiB: all, second half).
#[derive(Debug, Clone)]
pub struct ManyProcRow {
    pub name: String,
    pub cpu_per_update_us: f64,
    pub rss_per_client: f64,
    pub growth: (i64, i64),
}

#[derive(Debug, Clone)]
pub struct ManyRow {
    pub name: String,
    pub clients: usize,
    pub connected: u64,
    pub failed: u64,
    pub dropped: u64,
    pub connect_ms: u64,
    pub published: u64,
    pub received: u64,
    pub snapshot: u64,
    pub delivered_per_s: f64,
    /// Server writes per client per second, delivered updates per write, and CPU µs per
    /// write of the first process, where the writes are known: tickerd counts them
    /// (`tickerd_writes_total`), the floor makes one per delivered update, nchan does not say.
    pub writes_per_client_s: Option<f64>,
    pub updates_per_write: Option<f64>,
    pub cpu_per_write_us: Option<f64>,
    /// TCP data segments per client per second, on the clients' side: every server alike.
    pub segments_per_client_s: f64,
    pub reads_per_client_s: f64,
    pub latency_ms: [f64; 3],
    /// Latency p90 and p99.9, for the tail's shape.
    pub latency_p90_p999_ms: [f64; 2],
    /// Spread p50 and p99 over delivered updates; p99 over updates, each once.
    pub spread_ms: [f64; 2],
    pub spread_per_update_p99_ms: f64,
    pub settled_ms: Option<f64>,
    pub stale_clients: u64,
    pub stale_symbols: u64,
    /// Every broken rule, summed; `violations` names them.
    pub disorder: u64,
    pub violations: String,
    pub publish_failed: u64,
    pub first_publish_error: Option<String>,
    /// tickerd: a publish's answer time (connect to answer), p50 and p99.
    pub publish_answered_ms: Option<[f64; 2]>,
    pub procs: Vec<ManyProcRow>,
    pub cluster: Option<ClusterRow>,
}

/// A cluster's CPU by role: tickerd's instances summed per delivered update, Redis's per
/// published update and per publish, lighttpd's per delivered update.
fn cluster_row(run: &ManyRun) -> Option<ClusterRow> {
    let cluster = run.cluster.clone()?;
    let cpu_of = |role: &dyn Fn(&str) -> bool| -> Option<f64> {
        let found: Vec<f64> = run
            .procs
            .iter()
            .filter(|p| role(&p.name))
            .map(|p| p.cpu.as_nanos() as f64 / 1e3)
            .collect();
        (!found.is_empty()).then(|| found.iter().sum())
    };
    let delivered = run.summary.counts.received.max(1) as f64;
    let redis = cpu_of(&|n| n == "redis");
    Some(ClusterRow {
        tickerd_cpu_per_delivered_us: cpu_of(&|n| n.starts_with("tickerd")).unwrap_or(0.0)
            / delivered,
        redis_cpu_per_update_us: redis.map(|us| us / run.published.max(1) as f64),
        redis_cpu_per_publish_us: redis.map(|us| us / run.publishes.max(1) as f64),
        front_cpu_per_delivered_us: cpu_of(&|n| n == "lighttpd").unwrap_or(0.0) / delivered,
        publishes: run.publishes,
        published: run.published,
        tickerd_cpu_us: cpu_of(&|n| n.starts_with("tickerd")).unwrap_or(0.0),
        cluster,
    })
}

pub fn many_row(run: ManyRun) -> ManyRow {
    let cluster = cluster_row(&run);
    let publish_answered_ms = (!run.publish_answered_ns.is_empty()).then(|| {
        let mut a = run.publish_answered_ns.clone();
        a.sort_unstable();
        [ms(percentile(&a, 0.5)), ms(percentile(&a, 0.99))]
    });
    let s = &run.summary;
    let c = s.counts;
    let publishing = run.publishing.as_secs_f64().max(1e-9);
    // Spread: an update's last arrival minus its first. Percentiles over delivered updates
    // (an update that reached 9,000 clients weighs 9,000 times one that reached one), as
    // latency's are: the fan-out time a client's update was part of. Over updates, each
    // once, the tail would be a few popular symbols' updates, whichever the draw made.
    let mut spreads: Vec<(u64, u64)> = s
        .updates
        .values()
        .map(|a| (a.last - a.first, a.clients))
        .collect();
    spreads.sort_unstable();

    let ids = run.ids.unwrap_or_default();
    // A symbol's value going back is a fault unless tickerd applied publishes out of
    // sending order (then its ids say which came last, and the values follow them).
    let went_back = if ids.reordered { 0 } else { c.went_back };
    // tickerd's own count of events written must be what its clients received.
    let unreceived = run
        .written
        .map_or(0, |(_, events)| events.abs_diff(c.received));
    let parts = [
        ("bad", c.bad),
        ("foreign", c.foreign),
        ("id_not_increasing", c.id_not_increasing),
        ("repeated", c.repeated),
        ("went_back", went_back),
        ("id_conflicts", c.id_conflicts),
        ("id_mismatched", ids.mismatched),
        ("id_gaps", ids.gaps),
        ("events_written_but_not_received", unreceived),
    ];
    let disorder = parts.iter().map(|p| p.1).sum();
    let violations = parts
        .iter()
        .filter(|p| p.1 > 0)
        .map(|(n, v)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let connected = run.connected.max(1) as f64;
    let writes = match (run.name.as_str(), run.written) {
        ("floor", _) => Some(c.received),
        (_, Some((w, _))) => Some(w),
        _ => None,
    };
    // The server's CPU: the first process's, or every tickerd instance's, since the writes
    // are summed over them.
    let first_cpu_us = match &run.cluster {
        Some(_) => run
            .procs
            .iter()
            .filter(|p| p.name.starts_with("tickerd"))
            .map(|p| p.cpu.as_nanos() as f64 / 1e3)
            .sum(),
        None => run
            .procs
            .first()
            .map_or(0.0, |p| p.cpu.as_nanos() as f64 / 1e3),
    };
    let procs = run
        .procs
        .iter()
        .map(|p| ManyProcRow {
            name: p.name.clone(),
            cpu_per_update_us: p.cpu.as_nanos() as f64 / 1e3 / c.received.max(1) as f64,
            rss_per_client: (p.rss_connected.saturating_sub(p.rss_before) * 1024) as f64
                / connected,
            growth: (
                p.rss_end as i64 - p.rss_connected as i64,
                p.rss_end as i64 - p.rss_mid as i64,
            ),
        })
        .collect();
    ManyRow {
        name: run.name,
        clients: run.clients,
        connected: run.connected,
        failed: run.failed,
        dropped: run.dropped,
        connect_ms: run.connect_ms,
        published: run.published,
        received: c.received,
        snapshot: c.snapshot,
        delivered_per_s: c.received as f64 / publishing,
        writes_per_client_s: writes.map(|w| w as f64 / connected / publishing),
        updates_per_write: writes.map(|w| c.received as f64 / w.max(1) as f64),
        cpu_per_write_us: writes.map(|w| first_cpu_us / w.max(1) as f64),
        segments_per_client_s: c.segments as f64 / connected / publishing,
        reads_per_client_s: c.reads as f64 / connected / publishing,
        latency_ms: [
            s.latency.percentile(0.5) as f64 / 1e3,
            s.latency.percentile(0.99) as f64 / 1e3,
            s.latency.max as f64 / 1e3,
        ],
        latency_p90_p999_ms: [
            s.latency.percentile(0.9) as f64 / 1e3,
            s.latency.percentile(0.999) as f64 / 1e3,
        ],
        spread_ms: [
            ms(weighted_percentile(&spreads, 0.5)),
            ms(weighted_percentile(&spreads, 0.99)),
        ],
        spread_per_update_p99_ms: ms(percentile(&per_update_sorted(&spreads), 0.99)),
        settled_ms: run.settled.map(|d| d.as_secs_f64() * 1e3),
        stale_clients: c.stale_clients,
        stale_symbols: c.stale_symbols,
        disorder,
        violations,
        publish_failed: run.publish_failed,
        first_publish_error: run.first_publish_error,
        publish_answered_ms,
        procs,
        cluster,
    }
}

/// The value at quantile `p` of sorted (value, weight) pairs, each value counted `weight`
/// times (rank round((n-1)·p), as `percentile`).
fn weighted_percentile(sorted: &[(u64, u64)], p: f64) -> u64 {
    let total: u64 = sorted.iter().map(|v| v.1).sum();
    if total == 0 {
        return 0;
    }
    let rank = ((total - 1) as f64 * p).round() as u64;
    let mut seen = 0;
    for &(v, w) in sorted {
        seen += w;
        if seen > rank {
            return v;
        }
    }
    sorted.last().map_or(0, |v| v.0)
}

fn per_update_sorted(sorted: &[(u64, u64)]) -> Vec<u64> {
    sorted.iter().map(|v| v.0).collect()
}

fn opt(v: Option<f64>, precision: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.precision$}"))
}

/// The many-symbol table: CPU per delivered update also as a ratio to the floor's CPU per
/// write, and p99 latency as a ratio to the floor's p99 fan-out spread.
pub fn many_table(rows: &[ManyRow]) -> String {
    let floor = rows.iter().find(|r| r.name == "floor");
    let floor_write = floor.and_then(|f| f.cpu_per_write_us).unwrap_or(0.0);
    // The first column fits the longest "name [process]".
    let w = rows
        .iter()
        .flat_map(|r| {
            r.procs
                .iter()
                .map(move |p| r.name.chars().count() + p.name.chars().count() + 3)
        })
        .max()
        .unwrap_or(0)
        .max(18);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<w$} {:>13} {:>22} {:>11} {:>22} {:>15} {:>23} {:>11} {:>9} {:>9} {:>8} {:>14} {:>6}",
        "system",
        "conns ok/fail",
        "updates pub/delivered",
        "delivered/s",
        "latency p50/p99/max",
        "spread p50/p99",
        "CPU µs/update (×floor)",
        "writes/cl/s",
        "seg/cl/s",
        "upd/write",
        "RSS B/cl",
        "RSS Δ all/2nd",
        "stale"
    );
    for r in rows {
        for (i, p) in r.procs.iter().enumerate() {
            let ratio = if floor_write > 0.0 {
                format!("{:.2}×", p.cpu_per_update_us / floor_write)
            } else {
                "-".into()
            };
            let cpu = format!("{:.3} ({ratio})", p.cpu_per_update_us);
            let rss = format!("{:.0}", p.rss_per_client);
            let growth = format!("{:+}/{:+} KiB", p.growth.0, p.growth.1);
            if i > 0 {
                let _ = writeln!(
                    out,
                    "{:<w$} {:>13} {:>22} {:>11} {:>22} {:>15} {cpu:>23} {:>11} {:>9} {:>9} {rss:>8} {growth:>14}",
                    format!("  + [{}]", p.name), "", "", "", "", "", "", "", ""
                );
                continue;
            }
            let _ = writeln!(
                out,
                "{:<w$} {:>13} {:>22} {:>11.0} {:>22} {:>15} {cpu:>23} {:>11} {:>9.1} {:>9} {rss:>8} {growth:>14} {:>6}",
                format!("{} [{}]", r.name, p.name),
                format!("{}/{}", r.connected, r.failed),
                format!("{}/{}", r.published, r.received),
                r.delivered_per_s,
                format!(
                    "{:.1}/{:.1}/{:.1} ms",
                    r.latency_ms[0], r.latency_ms[1], r.latency_ms[2]
                ),
                format!("{:.1}/{:.1} ms", r.spread_ms[0], r.spread_ms[1]),
                opt(r.writes_per_client_s, 1),
                r.segments_per_client_s,
                opt(r.updates_per_write, 2),
                r.stale_clients,
            );
        }
        let mut notes = Vec::new();
        if let Some(us) = r.cpu_per_write_us {
            notes.push(format!("CPU per write {us:.2} µs"));
        }
        notes.push(format!("reads/client/s {:.1}", r.reads_per_client_s));
        notes.push(format!(
            "spread p99 over updates {:.1} ms",
            r.spread_per_update_p99_ms
        ));
        notes.push(match r.settled_ms {
            Some(ms) => format!("final values everywhere {ms:.0} ms after the last publish"),
            None => format!(
                "NOT SETTLED: {} clients ({} symbols) stale",
                r.stale_clients, r.stale_symbols
            ),
        });
        if let (Some(f), true) = (floor, r.name != "floor") {
            if f.spread_ms[1] > 0.0 {
                notes.push(format!(
                    "latency p99 {:.2}× floor's spread p99",
                    r.latency_ms[1] / f.spread_ms[1]
                ));
            }
        }
        if r.disorder > 0 {
            notes.push(format!("DISORDER: {}", r.violations));
        }
        if r.dropped > 0 {
            notes.push(format!("DROPPED streams {}", r.dropped));
        }
        if r.publish_failed > 0 {
            notes.push(format!(
                "PUBLISHES FAILED {} (first: {})",
                r.publish_failed,
                r.first_publish_error.as_deref().unwrap_or("unanswered")
            ));
        }
        let _ = writeln!(out, "{:<w$} {}", "", notes.join("; "));
    }
    out
}

/// The least-squares slope of (x, y) points, if there are two distinct x.
fn slope(points: &[(usize, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0 as f64).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 as f64 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 as f64 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// tickerd's CPU beyond the baseline's, in µs per update published: with the same clients
/// both deliver the same updates to the same subscriptions, so the difference of their CPU
/// over the updates published is what sharing the feed costs.
fn extra_per_update(r: &ManyRow, c: &ClusterRow, bc: &ClusterRow) -> f64 {
    (c.tickerd_cpu_us - bc.tickerd_cpu_us) / r.published.max(1) as f64
}

/// `--redis`: the clusters side by side, each against the one-process row without Redis
/// (the baseline), and the three goals judged on this run's figures.
pub fn cluster_table(rows: &[ManyRow]) -> String {
    let clusters: Vec<(&ManyRow, &ClusterRow)> = rows
        .iter()
        .filter_map(|r| Some((r, r.cluster.as_ref()?)))
        .collect();
    let base = clusters.iter().find(|(_, c)| !c.cluster.redis).copied();
    let width = clusters
        .iter()
        .map(|(r, _)| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$} {:>18} {:>27} {:>11} {:>25} {:>16} {:>13} {:>13} {:>18} {:>19} {:>5} {:>8}",
        "system",
        "streams/instance",
        "latency p50/p90/p99/p99.9",
        "p99 − base",
        "tickerd µs/deliv. (×base)",
        "tickerd +µs/upd.",
        "Redis µs/upd.",
        "Redis µs/pub.",
        "lighttpd µs/deliv.",
        "pub. answer p50/p99",
        "stale",
        "disorder",
    );
    for (r, c) in &clusters {
        let streams = c
            .cluster
            .streams
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("/");
        let (dp99, ratio, extra) = match base {
            Some((b, bc)) if c.cluster.redis => (
                format!("{:+.2} ms", r.latency_ms[1] - b.latency_ms[1]),
                format!(
                    "{:.2}×",
                    c.tickerd_cpu_per_delivered_us / bc.tickerd_cpu_per_delivered_us.max(1e-9)
                ),
                // The same updates to the same subscriptions: what the instances spent
                // beyond the baseline is what sharing the feed costs, per update published
                // (scaled to the baseline's deliveries, should a row have other clients).
                match r.clients == b.clients {
                    true => format!("{:+.2}", extra_per_update(r, c, bc)),
                    false => "-".into(),
                },
            ),
            _ => ("-".into(), "1.00×".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "{:<width$} {:>18} {:>27} {:>11} {:>25} {:>16} {:>13} {:>13} {:>18.3} {:>19} {:>5} {:>8}",
            r.name,
            streams,
            format!(
                "{:.1}/{:.1}/{:.1}/{:.1} ms",
                r.latency_ms[0],
                r.latency_p90_p999_ms[0],
                r.latency_ms[1],
                r.latency_p90_p999_ms[1]
            ),
            dp99,
            format!("{:.3} ({ratio})", c.tickerd_cpu_per_delivered_us),
            extra,
            opt(c.redis_cpu_per_update_us, 2),
            opt(c.redis_cpu_per_publish_us, 1),
            c.front_cpu_per_delivered_us,
            r.publish_answered_ms
                .map_or("-".into(), |[p50, p99]| format!("{p50:.2}/{p99:.2} ms")),
            r.stale_clients,
            r.disorder,
        );
    }
    let Some((b, bc)) = base else {
        return out;
    };
    // Judged: the rows with the baseline's clients (the same deliveries); a row with clients
    // of its own (`--instances N:CLIENTS`) is there for goal 2 only.
    let with_redis: Vec<(&ManyRow, &ClusterRow)> = clusters
        .iter()
        .filter(|(_, c)| c.cluster.redis)
        .copied()
        .collect();
    let (same, other): (Vec<_>, Vec<_>) =
        with_redis.iter().partition(|(r, _)| r.clients == b.clients);
    if with_redis.is_empty() {
        return out;
    }
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    let judged = |ok: bool| {
        if same.is_empty() {
            "no row with the baseline's clients"
        } else {
            met(ok)
        }
    };
    let list = |f: &dyn Fn(&ManyRow, &ClusterRow) -> String| {
        same.iter()
            .map(|(r, c)| f(r, c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // 1. Latency: what Redis adds at p99 over the baseline.
    let added = |r: &ManyRow| r.latency_ms[1] - b.latency_ms[1];
    let _ = writeln!(
        out,
        "goal 1, Redis adds ≤ 2 ms at p99 (p50 in brackets): {} → {}",
        list(&|r, _| format!(
            "{} {:+.2} ms ({:+.2})",
            r.name,
            added(r),
            r.latency_ms[0] - b.latency_ms[0]
        )),
        judged(same.iter().all(|(r, _)| added(r) <= 2.0))
    );
    if b.latency_ms[1] > 10.0 {
        let _ = writeln!(
            out,
            "        (the baseline's own p99 is {:.1} ms: a tail that long comes from the largest fan-outs \
             (the most popular symbol's clients) and the machine's load, and moves by more than 2 ms \
             from run to run; Redis's own share shows when the machine has room: on a quiet machine, \
             a lighter run such as --zipf 0 --clients 1000)",
            b.latency_ms[1]
        );
    }
    // 2. Redis's CPU per update: up with instances (at the baseline's clients), flat with
    // clients (a row of its own clients against the row of as many instances).
    let per_update = |c: &ClusterRow| c.redis_cpu_per_update_us.unwrap_or(0.0);
    let mut by_instances: Vec<(usize, f64)> = same
        .iter()
        .map(|(_, c)| (c.cluster.instances, per_update(c)))
        .collect();
    by_instances.sort_by_key(|a| a.0);
    let mut notes = vec![format!(
        "at {} clients: {}{}",
        b.clients,
        by_instances
            .iter()
            .map(|(n, us)| format!("×{n} {us:.2} µs"))
            .collect::<Vec<_>>()
            .join(", "),
        slope(&by_instances).map_or(String::new(), |s| format!(
            " (least squares: {s:+.2} µs per update, {:+.1} µs per publish, per instance)",
            s * bc.updates_per_publish()
        ))
    )];
    let mut verdicts = Vec::new();
    // Grows: the most instances cost more than the fewest (the middle rows are as noisy as
    // a shared machine makes them).
    match (by_instances.first(), by_instances.last()) {
        (Some(first), Some(last)) if last.0 > first.0 => {
            verdicts.push(format!("grows with instances: {}", met(last.1 > first.1)))
        }
        _ => verdicts.push("grows with instances: one instance count, not judged".into()),
    }
    let mut pairs = 0;
    let mut flat = true;
    for (r, c) in &other {
        let Some(&(_, with_base)) = by_instances.iter().find(|(n, _)| *n == c.cluster.instances)
        else {
            notes.push(format!(
                "{} {:.2} µs (no ×{} row at {} clients to compare with)",
                r.name,
                per_update(c),
                c.cluster.instances,
                b.clients
            ));
            continue;
        };
        pairs += 1;
        // Redis never sees a client: within 10 % (and 0.5 µs, a shared machine's noise).
        flat &= per_update(c) <= with_base * 1.1 + 0.5;
        notes.push(format!(
            "×{} at {} clients {:.2} µs (at {}: {with_base:.2})",
            c.cluster.instances,
            r.clients,
            per_update(c),
            b.clients
        ));
    }
    verdicts.push(match pairs {
        0 => "flat with clients: not judged (add a row with --instances N:CLIENTS)".into(),
        _ => format!("flat with clients: {}", met(flat)),
    });
    let _ = writeln!(
        out,
        "goal 2, Redis CPU per update grows with instances, not clients: {} → {}",
        notes.join("; "),
        verdicts.join("; ")
    );
    // 3. tickerd's CPU per delivered update, all instances summed, against the baseline.
    let ratio =
        |c: &ClusterRow| c.tickerd_cpu_per_delivered_us / bc.tickerd_cpu_per_delivered_us.max(1e-9);
    let _ = writeln!(
        out,
        "goal 3, tickerd CPU per delivered update within 1.1× of no Redis: {} → {}",
        list(&|r, c| format!("{} {:.2}×", r.name, ratio(c))),
        judged(same.iter().all(|(_, c)| ratio(c) <= 1.1))
    );
    out
}

impl ClusterRow {
    fn updates_per_publish(&self) -> f64 {
        self.published as f64 / self.publishes.max(1) as f64
    }
}

/// `x` rounded to `places` decimals, as the JSON line carries it: the figure, not the
/// float's noise.
fn round(x: f64, places: i32) -> f64 {
    let p = 10f64.powi(places);
    (x * p).round() / p
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
        .map(|(name, cpu, rss, growth)| {
            json!({
                "process": name,
                "cpu_us_per_event": round(*cpu, 3),
                "rss_bytes_per_client": round(*rss, 1),
                "rss_growth_kib_while_publishing": growth.0,
                "rss_growth_kib_second_half": growth.1,
            })
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

/// One JSON line with every many-symbol figure.
pub fn many_json(rows: &[ManyRow], settings: Value) -> Value {
    let rows: Vec<Value> = rows.iter().map(many_row_json).collect();
    json!({ "settings": settings, "rows": rows })
}

fn many_row_json(r: &ManyRow) -> Value {
    let procs: Vec<Value> = r
        .procs
        .iter()
        .map(|p| {
            json!({
                "process": p.name,
                "cpu_us_per_update": round(p.cpu_per_update_us, 4),
                "rss_bytes_per_client": round(p.rss_per_client, 1),
                "rss_growth_kib_while_publishing": p.growth.0,
                "rss_growth_kib_second_half": p.growth.1,
            })
        })
        .collect();
    let round4 = |v: Option<f64>| v.map(|v| round(v, 4));
    json!({
        "system": r.name,
        "clients": r.clients,
        "connected": r.connected,
        "failed": r.failed,
        "dropped": r.dropped,
        "connect_ms": r.connect_ms,
        "published": r.published,
        "received": r.received,
        "snapshot": r.snapshot,
        "delivered_per_s": round(r.delivered_per_s, 0),
        "writes_per_client_per_s": round4(r.writes_per_client_s),
        "updates_per_write": round4(r.updates_per_write),
        "cpu_us_per_write": round4(r.cpu_per_write_us),
        "segments_per_client_per_s": round(r.segments_per_client_s, 2),
        "reads_per_client_per_s": round(r.reads_per_client_s, 2),
        "latency_ms": {
            "p50": round(r.latency_ms[0], 3),
            "p90": round(r.latency_p90_p999_ms[0], 3),
            "p99": round(r.latency_ms[1], 3),
            "p999": round(r.latency_p90_p999_ms[1], 3),
            "max": round(r.latency_ms[2], 3),
        },
        "spread_ms": {
            "p50": round(r.spread_ms[0], 3),
            "p99": round(r.spread_ms[1], 3),
            "p99_per_update": round(r.spread_per_update_p99_ms, 3),
        },
        "publish_answered_ms": r.publish_answered_ms.map(|[p50, p99]| json!({
            "p50": round(p50, 3),
            "p99": round(p99, 3),
        })),
        "settled_ms": r.settled_ms.map(|m| round(m, 1)),
        "stale_clients": r.stale_clients,
        "stale_symbols": r.stale_symbols,
        "disorder": r.disorder,
        "violations": r.violations,
        "publish_failed": r.publish_failed,
        "processes": procs,
        "cluster": r.cluster.as_ref().map(cluster_json),
    })
}

fn cluster_json(c: &ClusterRow) -> Value {
    json!({
        "instances": c.cluster.instances,
        "redis": c.cluster.redis,
        "streams_per_instance": c.cluster.streams,
        "publishes": c.publishes,
        "tickerd_cpu_us_per_delivered_update": round(c.tickerd_cpu_per_delivered_us, 4),
        "redis_cpu_us_per_update": c.redis_cpu_per_update_us.map(|v| round(v, 4)),
        "redis_cpu_us_per_publish": c.redis_cpu_per_publish_us.map(|v| round(v, 4)),
        "lighttpd_cpu_us_per_delivered_update": round(c.front_cpu_per_delivered_us, 4),
    })
}
