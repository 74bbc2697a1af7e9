//! The `--redis` table: each cluster of tickerd instances sharing a Redis side by side with
//! the one process without Redis (the baseline), all behind lighttpd, and the three goals of
//! sharing the feed judged on this run's figures.

use std::fmt::Write as _;

use super::cluster::ClusterRow;
use super::report::ManyRow;
use crate::stats::opt;

/// A system's row and its cluster's figures.
type Pair<'a> = (&'a ManyRow, &'a ClusterRow);

/// `--redis`: the clusters side by side, each against the one-process row without Redis
/// (the baseline), and the three goals judged on this run's figures.
pub fn table(rows: &[ManyRow]) -> String {
    let clusters: Vec<Pair> = rows
        .iter()
        .filter_map(|r| Some((r, r.cluster.as_ref()?)))
        .collect();
    let base = clusters.iter().find(|(_, c)| !c.cluster.redis).copied();
    let mut out = String::new();
    write_rows(&mut out, &clusters, base);
    if let Some(j) = base.and_then(|base| Judged::new(&clusters, base)) {
        goal_latency(&mut out, &j);
        goal_redis_cpu(&mut out, &j);
        goal_tickerd_cpu(&mut out, &j);
    }
    out
}

/// A line per cluster: where the streams went, latency, CPU by role against the baseline.
fn write_rows(out: &mut String, clusters: &[Pair], base: Option<Pair>) {
    let width = clusters
        .iter()
        .map(|(r, _)| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
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
    for (r, c) in clusters {
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
}

/// The rows the goals are judged on.
struct Judged<'a> {
    /// tickerd as one process without Redis.
    base: Pair<'a>,
    /// With Redis, at the baseline's clients (the same deliveries): every goal.
    same: Vec<Pair<'a>>,
    /// With Redis, with clients of their own (`--instances N:CLIENTS`): goal 2 only.
    other: Vec<Pair<'a>>,
}

impl<'a> Judged<'a> {
    /// `None` without a row with Redis.
    fn new(clusters: &[Pair<'a>], base: Pair<'a>) -> Option<Judged<'a>> {
        let (same, other): (Vec<Pair>, Vec<Pair>) = clusters
            .iter()
            .copied()
            .filter(|(_, c)| c.cluster.redis)
            .partition(|(r, _)| r.clients == base.0.clients);
        if same.is_empty() && other.is_empty() {
            return None;
        }
        Some(Judged { base, same, other })
    }

    /// The verdict on the rows at the baseline's clients.
    fn verdict(&self, ok: bool) -> &'static str {
        if self.same.is_empty() {
            "no row with the baseline's clients"
        } else {
            met(ok)
        }
    }

    /// Each row at the baseline's clients, as `f` says it.
    fn list(&self, f: &dyn Fn(&ManyRow, &ClusterRow) -> String) -> String {
        self.same
            .iter()
            .map(|(r, c)| f(r, c))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// Goal 1. Latency: what Redis adds at p99 over the baseline.
fn goal_latency(out: &mut String, j: &Judged) {
    let b = j.base.0;
    let added = |r: &ManyRow| r.latency_ms[1] - b.latency_ms[1];
    let _ = writeln!(
        out,
        "goal 1, Redis adds ≤ 2 ms at p99 (p50 in brackets): {} → {}",
        j.list(&|r, _| format!(
            "{} {:+.2} ms ({:+.2})",
            r.name,
            added(r),
            r.latency_ms[0] - b.latency_ms[0]
        )),
        j.verdict(j.same.iter().all(|(r, _)| added(r) <= 2.0))
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
}

/// Redis's CPU per update published, 0 where there is no Redis.
fn redis_per_update(c: &ClusterRow) -> f64 {
    c.redis_cpu_per_update_us.unwrap_or(0.0)
}

/// Goal 2. Redis's CPU per update: up with instances (at the baseline's clients), flat with
/// clients (a row of its own clients against the row of as many instances).
fn goal_redis_cpu(out: &mut String, j: &Judged) {
    let (b, bc) = j.base;
    let mut by_instances: Vec<(usize, f64)> = j
        .same
        .iter()
        .map(|(_, c)| (c.cluster.instances, redis_per_update(c)))
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
    // Grows: the most instances cost more than the fewest (the middle rows are as noisy as
    // a shared machine makes them).
    let grows = match (by_instances.first(), by_instances.last()) {
        (Some(first), Some(last)) if last.0 > first.0 => {
            format!("grows with instances: {}", met(last.1 > first.1))
        }
        _ => "grows with instances: one instance count, not judged".into(),
    };
    let flat = flat_with_clients(j, &by_instances, &mut notes);
    let _ = writeln!(
        out,
        "goal 2, Redis CPU per update grows with instances, not clients: {} → {grows}; {flat}",
        notes.join("; "),
    );
}

/// The second half of goal 2: each row with clients of its own against the row of as many
/// instances at the baseline's clients (`by_instances`); its notes added to `notes`.
fn flat_with_clients(j: &Judged, by_instances: &[(usize, f64)], notes: &mut Vec<String>) -> String {
    let b = j.base.0;
    let mut pairs = 0;
    let mut flat = true;
    for (r, c) in &j.other {
        let Some(&(_, with_base)) = by_instances.iter().find(|(n, _)| *n == c.cluster.instances)
        else {
            notes.push(format!(
                "{} {:.2} µs (no ×{} row at {} clients to compare with)",
                r.name,
                redis_per_update(c),
                c.cluster.instances,
                b.clients
            ));
            continue;
        };
        pairs += 1;
        // Redis never sees a client: within 10 % (and 0.5 µs, a shared machine's noise).
        flat &= redis_per_update(c) <= with_base * 1.1 + 0.5;
        notes.push(format!(
            "×{} at {} clients {:.2} µs (at {}: {with_base:.2})",
            c.cluster.instances,
            r.clients,
            redis_per_update(c),
            b.clients
        ));
    }
    match pairs {
        0 => "flat with clients: not judged (add a row with --instances N:CLIENTS)".into(),
        _ => format!("flat with clients: {}", met(flat)),
    }
}

/// Goal 3. tickerd's CPU per delivered update, all instances summed, against the baseline.
fn goal_tickerd_cpu(out: &mut String, j: &Judged) {
    let bc = j.base.1;
    let ratio =
        |c: &ClusterRow| c.tickerd_cpu_per_delivered_us / bc.tickerd_cpu_per_delivered_us.max(1e-9);
    let _ = writeln!(
        out,
        "goal 3, tickerd CPU per delivered update within 1.1× of no Redis: {} → {}",
        j.list(&|r, c| format!("{} {:.2}×", r.name, ratio(c))),
        j.verdict(j.same.iter().all(|(_, c)| ratio(c) <= 1.1))
    );
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
