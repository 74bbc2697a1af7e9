//! The many-symbol workload's figures for one system: what its clients got (delivered
//! updates, latency, spread, stale clients, every broken rule), what it cost (CPU per
//! delivered update and per write, memory per client), printed as a table and one JSON
//! line. A `--redis` system's row also carries its `ClusterRow`.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use super::cluster::{Cluster, ClusterRow};
use super::ids::IdCheck;
use crate::procs::ProcFigures;
use crate::stats::{ms, opt, percentile, round, weighted_percentile};
use crate::watch::Summary;

/// tickerd's own counters (summed over its instances), or their growth while measured.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    /// `tickerd_writes_total`, `tickerd_events_written_total`, `tickerd_event_bytes_total`.
    pub writes: u64,
    pub events: u64,
    pub event_bytes: u64,
}

impl Written {
    /// The growth from `before`.
    pub fn since(self, before: Written) -> Written {
        Written {
            writes: self.writes.saturating_sub(before.writes),
            events: self.events.saturating_sub(before.events),
            event_bytes: self.event_bytes.saturating_sub(before.event_bytes),
        }
    }
}

/// What the coordinator gathered about one system's many-symbol run.
#[derive(Debug)]
pub struct ManyRun {
    pub name: String,
    /// Quotes (`--quote`), and the `max_hz` its clients asked for.
    pub quote: bool,
    pub max_hz: Option<f64>,
    /// Quotes, tickerd: how many fields of its `GET /symbols` differ from what was published.
    pub listing_differs: Option<Result<u64, String>>,
    /// tickerd: updates its answers counted as changing nothing.
    pub unchanged: u64,
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
    pub ids: Option<IdCheck>,
    /// tickerd only: its own count of writes, events written and their bytes while measured.
    pub written: Option<Written>,
    pub summary: Summary,
    pub procs: Vec<ProcFigures>,
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
    pub procs: Vec<ProcFigures>,
    pub cluster: Option<ClusterRow>,
    /// Quotes: bytes per delivered update, against whole records.
    pub bytes: Option<Bytes>,
    /// `max_hz`: the gaps between two events of a symbol to a client.
    pub pace: Option<PaceRow>,
    /// Quotes, tickerd: fields of its `GET /symbols` that differ from what was published.
    pub listing_differs: Option<Result<u64, String>>,
}

/// Quotes: bytes per delivered update, as received (deltas) and as whole records would
/// have been (what a server without deltas sends), of the data and of the whole event.
#[derive(Debug, Clone, Copy)]
pub struct Bytes {
    pub data: f64,
    pub whole_data: f64,
    pub event: f64,
    pub whole_event: f64,
}

impl Bytes {
    pub fn data_ratio(&self) -> f64 {
        self.data / self.whole_data.max(1e-9)
    }

    pub fn event_ratio(&self) -> f64 {
        self.event / self.whole_event.max(1e-9)
    }
}

/// `max_hz`: what the clients asked and the gaps they measured between two events of one
/// symbol (the snapshot aside).
#[derive(Debug, Clone, Copy)]
pub struct PaceRow {
    pub max_hz: f64,
    pub gaps: u64,
    /// Gaps under 1 / max_hz.
    pub short_gaps: u64,
    pub min_gap_ms: Option<f64>,
    /// The most events of one symbol to one client, and the most `max_hz` allows over the
    /// publishing time (the first update at once, then one per 1 / max_hz, one more after
    /// the last publish, and one for the clients' reading late).
    pub most: u64,
    pub allowed_most: u64,
}

impl PaceRow {
    /// No two events of a symbol closer than 1 / max_hz, but for `tolerance` (a fraction of
    /// it) of lateness in the first one's reading, and no more events than the rate allows.
    pub fn held(&self, tolerance: f64) -> bool {
        let gap_ms = 1e3 / self.max_hz;
        self.min_gap_ms
            .is_none_or(|m| m >= gap_ms * (1.0 - tolerance))
            && self.most <= self.allowed_most
    }
}

/// How late the first of two events may be read for their gap still to count as kept: the
/// clients stamp an event when they read it, a few ms after tickerd wrote it on a loaded
/// machine.
pub const PACE_TOLERANCE: f64 = 0.05;

impl ManyRow {
    /// A process's CPU µs per update delivered to a client.
    pub fn cpu_us_per_update(&self, p: &ProcFigures) -> f64 {
        p.cpu_us_per(self.received)
    }
}

/// The figures of what was gathered.
pub fn row(run: ManyRun) -> ManyRow {
    let s = &run.summary;
    let c = s.counts;
    let cluster = run.cluster.clone().map(|cluster| {
        ClusterRow::new(
            cluster,
            &run.procs,
            c.received,
            run.published,
            run.publishes,
        )
    });
    let publish_answered_ms = (!run.publish_answered_ns.is_empty()).then(|| {
        let mut a = run.publish_answered_ns.clone();
        a.sort_unstable();
        [ms(percentile(&a, 0.5)), ms(percentile(&a, 0.99))]
    });
    let publishing = run.publishing.as_secs_f64().max(1e-9);
    let spreads = spreads(s);
    let (disorder, violations) = disorder(&run);
    let connected = run.connected.max(1) as f64;
    let writes = match (run.name.as_str(), run.written) {
        ("floor", _) => Some(c.received),
        (_, Some(w)) => Some(w.writes),
        _ => None,
    };
    let received = c.received.max(1) as f64;
    let bytes = run.quote.then(|| Bytes {
        data: c.data_bytes as f64 / received,
        whole_data: c.whole_data_bytes as f64 / received,
        event: c.event_bytes as f64 / received,
        whole_event: c.whole_event_bytes as f64 / received,
    });
    let pace = run.max_hz.map(|max_hz| PaceRow {
        max_hz,
        gaps: c.gaps,
        short_gaps: c.short_gaps,
        min_gap_ms: (s.extremes.min_gap_ns != u64::MAX).then(|| ms(s.extremes.min_gap_ns)),
        most: s.extremes.most,
        allowed_most: (publishing * max_hz).ceil() as u64 + 2,
    });
    let server_cpu_us = server_cpu_us(&run);
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
        cpu_per_write_us: writes.map(|w| server_cpu_us / w.max(1) as f64),
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
        spread_per_update_p99_ms: ms(percentile(
            &spreads.iter().map(|v| v.0).collect::<Vec<_>>(),
            0.99,
        )),
        settled_ms: run.settled.map(|d| d.as_secs_f64() * 1e3),
        stale_clients: c.stale_clients,
        stale_symbols: c.stale_symbols,
        disorder,
        violations,
        publish_failed: run.publish_failed,
        first_publish_error: run.first_publish_error,
        publish_answered_ms,
        procs: run.procs,
        cluster,
        bytes,
        pace,
        listing_differs: run.listing_differs,
    }
}

/// Each update's spread (its last arrival minus its first) with the clients it reached,
/// sorted. Percentiles are taken over delivered updates (an update that reached 9,000
/// clients weighs 9,000 times one that reached one), as latency's are: the fan-out time a
/// client's update was part of. Over updates, each once, the tail would be a few popular
/// symbols' updates, whichever the draw made.
fn spreads(s: &Summary) -> Vec<(u64, u64)> {
    let mut spreads: Vec<(u64, u64)> = s
        .updates
        .values()
        .map(|a| (a.last - a.first, a.clients))
        .collect();
    spreads.sort_unstable();
    spreads
}

/// Every broken rule summed, and the rules named with their counts.
fn disorder(run: &ManyRun) -> (u64, String) {
    let c = run.summary.counts;
    let ids = run.ids.unwrap_or_default();
    // A symbol's value going back is a fault unless tickerd applied publishes out of
    // sending order (then its ids say which came last, and the values follow them).
    let went_back = if ids.reordered { 0 } else { c.went_back };
    // tickerd's own count of events written must be what its clients received, and for
    // quotes (whose clients count them) their bytes too.
    let unreceived = run.written.map_or(0, |w| w.events.abs_diff(c.received));
    let bytes_unreceived = match (run.quote, run.written) {
        (true, Some(w)) => w.event_bytes.abs_diff(c.event_bytes),
        _ => 0,
    };
    let (listing_differs, listing_unread) = match &run.listing_differs {
        Some(Ok(n)) => (*n, 0),
        Some(Err(_)) => (0, 1),
        None => (0, 0),
    };
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
        ("event_bytes_written_but_not_received", bytes_unreceived),
        ("publishes_changing_nothing", run.unchanged),
        ("symbols_listing_fields_differ", listing_differs),
        ("symbols_listing_unread", listing_unread),
    ];
    let violations = parts
        .iter()
        .filter(|p| p.1 > 0)
        .map(|(n, v)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    (parts.iter().map(|p| p.1).sum(), violations)
}

/// The server's CPU, µs: the first process's, or every tickerd instance's for a cluster,
/// since its writes are summed over them.
fn server_cpu_us(run: &ManyRun) -> f64 {
    match &run.cluster {
        Some(_) => run
            .procs
            .iter()
            .filter(|p| p.name.starts_with("tickerd"))
            .map(ProcFigures::cpu_us)
            .sum(),
        None => run.procs.first().map_or(0.0, ProcFigures::cpu_us),
    }
}

/// The many-symbol table: CPU per delivered update also as a ratio to the floor's CPU per
/// write, and p99 latency as a ratio to the floor's p99 fan-out spread.
pub fn table(rows: &[ManyRow]) -> String {
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
            let _ = writeln!(out, "{}", process_line(r, i, p, floor_write, w));
        }
        let _ = writeln!(out, "{:<w$} {}", "", notes(r, floor).join("; "));
    }
    out
}

/// The table's line for a system's `i`th process: the system's own figures on its first
/// process's line, left blank on the others'.
fn process_line(r: &ManyRow, i: usize, p: &ProcFigures, floor_write: f64, w: usize) -> String {
    let cpu = r.cpu_us_per_update(p);
    let ratio = if floor_write > 0.0 {
        format!("{:.2}×", cpu / floor_write)
    } else {
        "-".into()
    };
    let cpu = format!("{cpu:.3} ({ratio})");
    let rss = format!("{:.0}", p.rss_bytes_per_client(r.connected));
    let growth = p.rss_growth_kib();
    let growth = format!("{:+}/{:+} KiB", growth.0, growth.1);
    let (name, [conns, updates, delivered, latency, spread, writes, segments, per_write], stale) =
        match i {
            0 => (
                format!("{} [{}]", r.name, p.name),
                [
                    format!("{}/{}", r.connected, r.failed),
                    format!("{}/{}", r.published, r.received),
                    format!("{:.0}", r.delivered_per_s),
                    format!(
                        "{:.1}/{:.1}/{:.1} ms",
                        r.latency_ms[0], r.latency_ms[1], r.latency_ms[2]
                    ),
                    format!("{:.1}/{:.1} ms", r.spread_ms[0], r.spread_ms[1]),
                    opt(r.writes_per_client_s, 1),
                    format!("{:.1}", r.segments_per_client_s),
                    opt(r.updates_per_write, 2),
                ],
                format!(" {:>6}", r.stale_clients),
            ),
            _ => (
                format!("  + [{}]", p.name),
                Default::default(),
                String::new(),
            ),
        };
    format!(
        "{name:<w$} {conns:>13} {updates:>22} {delivered:>11} {latency:>22} {spread:>15} {cpu:>23} {writes:>11} {segments:>9} {per_write:>9} {rss:>8} {growth:>14}{stale}"
    )
}

/// The line under a system's: CPU per write, reads, spread over updates, settling, latency
/// against the floor's spread, and every fault.
fn notes(r: &ManyRow, floor: Option<&ManyRow>) -> Vec<String> {
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
    if let Some(b) = &r.bytes {
        notes.push(format!(
            "bytes per update {:.1} on the wire, {:.1} data (whole records: {:.1}, {:.1}; {:.2}×, {:.2}×)",
            b.event,
            b.data,
            b.whole_event,
            b.whole_data,
            b.event_ratio(),
            b.data_ratio()
        ));
    }
    if let Some(p) = &r.pace {
        notes.push(format!(
            "max_hz={}: shortest gap {} of {} ({} under {:.0} ms), at most {} events of a symbol to a client (allowed {})",
            p.max_hz,
            p.min_gap_ms.map_or("-".into(), |m| format!("{m:.1} ms")),
            p.gaps,
            p.short_gaps,
            1e3 / p.max_hz,
            p.most,
            p.allowed_most
        ));
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
    notes
}

/// One JSON line with every many-symbol figure.
pub fn json(rows: &[ManyRow], settings: Value) -> Value {
    let rows: Vec<Value> = rows.iter().map(row_json).collect();
    json!({ "settings": settings, "rows": rows })
}

fn row_json(r: &ManyRow) -> Value {
    let procs: Vec<Value> = r
        .procs
        .iter()
        .map(|p| {
            p.json(
                ("cpu_us_per_update", round(r.cpu_us_per_update(p), 4)),
                r.connected,
            )
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
        "cluster": r.cluster.as_ref().map(ClusterRow::json),
        "bytes_per_update": r.bytes.map(|b| json!({
            "event": round(b.event, 2),
            "data": round(b.data, 2),
            "whole_record_event": round(b.whole_event, 2),
            "whole_record_data": round(b.whole_data, 2),
            "event_ratio": round(b.event_ratio(), 4),
            "data_ratio": round(b.data_ratio(), 4),
        })),
        "max_hz": r.pace.map(|p| json!({
            "asked": p.max_hz,
            "gaps": p.gaps,
            "short_gaps": p.short_gaps,
            "min_gap_ms": p.min_gap_ms.map(|m| round(m, 3)),
            "most_events_of_a_symbol": p.most,
            "allowed_most": p.allowed_most,
        })),
        "symbols_listing_fields_differ": match &r.listing_differs {
            Some(Ok(n)) => json!(n),
            Some(Err(e)) => json!(e),
            None => Value::Null,
        },
    })
}

/// Quotes: the workload's targets, judged on this run's figures (tickerd's row against the
/// floor's). With `max_hz`: the rate each client asked held, and every client current.
pub fn quote_targets(rows: &[ManyRow]) -> String {
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let mut out = String::new();
    let floor = rows.iter().find(|r| r.name == "floor");
    for r in rows.iter().filter(|r| r.name != "floor") {
        let fresh = r.stale_clients == 0 && r.settled_ms.is_some();
        let listing = match &r.listing_differs {
            Some(Ok(n)) => format!("{n} fields of GET /symbols differ from what was published"),
            Some(Err(e)) => format!("GET /symbols unread: {e}"),
            None => "GET /symbols not compared".into(),
        };
        let listed = matches!(r.listing_differs, Some(Ok(0)));
        let stale = format!(
            "{} clients ({} symbols) stale after the last publish; {listing}",
            r.stale_clients, r.stale_symbols
        );
        if let Some(p) = &r.pace {
            let _ = writeln!(
                out,
                "{}, max_hz={}: at most {} event(s) a second per symbol to each client: shortest gap {} over {} gaps ({} under {:.0} ms; {:.0}% lateness allowed), at most {} events of a symbol to a client (allowed {}) → {}",
                r.name,
                p.max_hz,
                p.max_hz,
                p.min_gap_ms.map_or("-".into(), |m| format!("{m:.1} ms")),
                p.gaps,
                p.short_gaps,
                1e3 / p.max_hz,
                PACE_TOLERANCE * 100.0,
                p.most,
                p.allowed_most,
                verdict(p.held(PACE_TOLERANCE) && p.gaps > 0)
            );
            let _ = writeln!(
                out,
                "{}, current at the end: {stale} → {}",
                r.name,
                verdict(fresh && listed && r.disorder == 0)
            );
            continue;
        }
        let floor_write = floor.and_then(|f| f.cpu_per_write_us).unwrap_or(0.0);
        let cpu = r.procs.first().map_or(0.0, |p| r.cpu_us_per_update(p));
        let ratio = cpu / floor_write.max(1e-9);
        let _ = writeln!(
            out,
            "{}, CPU per delivered update ≤ 0.15× the floor's per write: {cpu:.3} µs against {floor_write:.2} µs, {ratio:.3}× → {}",
            r.name,
            verdict(floor_write > 0.0 && ratio <= 0.15)
        );
        let rss = r
            .procs
            .first()
            .map_or(0.0, |p| p.rss_bytes_per_client(r.connected));
        let _ = writeln!(
            out,
            "{}, user space per client ≤ 1 KiB: {rss:.0} B → {}",
            r.name,
            verdict(rss <= 1024.0)
        );
        let _ = writeln!(
            out,
            "{}, 0 stale, field by field: {stale} → {}",
            r.name,
            verdict(fresh && listed && r.disorder == 0)
        );
        if let Some(b) = &r.bytes {
            // The data, as the issue measures it; the whole event (its `id:` line, which a
            // delta may go without, and the framing both have) beside it.
            let _ = writeln!(
                out,
                "{}, bytes per delivered update ≤ 0.5× whole records: data {:.1} B against {:.1} B, {:.3}× → {}; whole events (id and data lines) {:.1} B against {:.1} B, {:.3}× → {}",
                r.name,
                b.data,
                b.whole_data,
                b.data_ratio(),
                verdict(b.data_ratio() <= 0.5),
                b.event,
                b.whole_event,
                b.event_ratio(),
                verdict(b.event_ratio() <= 0.5)
            );
        }
    }
    out
}
