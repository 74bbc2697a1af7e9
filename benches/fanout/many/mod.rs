//! The many-symbol run (`--symbols U --subscribe K --zipf S --rate R`): each client streams
//! K of U symbols chosen with Zipf popularity, and publishers send batches of distinct
//! symbols (uniformly chosen) at R updates/s. The floor, tickerd and nchan run side by
//! side as in the one-symbol run, each with its own clients, publishes offset within the
//! period.
//!
//! The floor writes once per delivered update, with no conflation, so at thousands of
//! updates a second it cannot keep up on a small machine: it gets at most `--floor-rate`
//! updates/s (the first of each batch), which leaves its cost per write, the figure the
//! others are compared with, as it is.
//!
//! After the last publish, each system's clients are told the final value of every symbol
//! and asked until none is stale (or `--settle-s` passes); then the workers hand over their
//! summaries (`watch`), which are merged and checked here.
//!
//! `--redis`: instead of one tickerd, tickerd as one process without Redis and, per entry of
//! `--instances`, N instances sharing a private Redis, each system behind lighttpd's
//! balancing conf (`target::tickerd_cluster`); publishes go to the instances in turn, each
//! system takes the batches from its own point of the sequence, and each system's CPU is
//! also summed by role (`cluster`, judged in `redis_report`). Since the clients of one
//! update sit on different instances, an id that differed between instances shows as an
//! update received with two ids, and one that differed from Redis's as an update received
//! under another id than its publish was answered with.

pub mod cluster;
pub mod ids;
pub mod redis_report;
pub mod report;
mod systems;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli::{Many, Options};
use crate::feeder::{Batch, Feeder};
use crate::quote;
use crate::sys;
use crate::target::{self, Via};
use crate::watch::{key_cents, Summary};
use crate::workload::{Batches, Universe, SNAPSHOT_CENTS};
use report::{ManyRow, ManyRun, Written};
use systems::{Kind, ScratchDir, Trial};

/// The publishing plan: updates per publish, and the floor's share of each.
#[derive(Debug, Clone, Copy)]
struct Plan {
    batch: usize,
    floor_batch: usize,
    /// Publishes (batches) in the run.
    batches: usize,
}

impl Plan {
    fn new(opts: &Options, many: &Many) -> Plan {
        let batch = many.batch(opts.rate);
        let floor_batch = ((batch as f64 * (many.floor_rate / opts.rate).min(1.0)).round()
            as usize)
            .clamp(1, batch);
        let batches = ((opts.rate * opts.seconds) / batch as f64).round().max(1.0) as usize;
        Plan {
            batch,
            floor_batch,
            batches,
        }
    }
}

/// The machine's state around the measured time, for the record.
struct Machine {
    load_before: String,
    load_after: String,
    /// Packets the kernel dropped (a CPU's input backlog full) and TCP segments it
    /// retransmitted, machine-wide, while measured.
    drops: u64,
    retransmits: u64,
}

/// One many-symbol configuration: starts the systems, measures them together, prints the
/// table and the JSON line.
pub fn run(opts: &Options, many: &Many) -> io::Result<Vec<ManyRow>> {
    let universe = Universe::new(many.symbols);
    let plan = Plan::new(opts, many);
    announce(opts, many, &plan);
    let load_before = sys::load_average();
    let epoch = sys::now_ns();
    let dir = ScratchDir::new()?;
    let systems = systems::start_systems(opts, many, &universe, &dir)?;
    let mut trials = systems::start_clients(systems, opts, many, universe, epoch)?;
    wait_connected(&mut trials, opts)?;
    // Let the last heads and snapshots settle before measuring.
    std::thread::sleep(Duration::from_millis(300));
    mark(&mut trials)?;
    let losses_before = sys::net_losses();
    let publishing = publish(&mut trials, opts, many, &plan, epoch);
    let last_publish = Instant::now();
    send_finals(&mut trials, &dir, many)?;
    wait_settled(&mut trials, last_publish, many.settle_s)?;
    if many.quote {
        compare_listing(&mut trials);
    }
    let losses = sys::net_losses();
    // Measured before any client leaves (closing streams costs CPU too).
    for t in &mut trials {
        t.procs = t.sampler.figures();
        t.written = match (t.metrics_before, scrape(&t.metrics)) {
            (Some(before), Some(after)) => Some(after.since(before)),
            _ => None,
        };
    }
    // Every system's clients stop before any system does.
    for t in &mut trials {
        for w in &mut t.workers {
            w.say("STOP")?;
        }
    }
    let mut rows = Vec::new();
    for t in trials {
        rows.push(collect(t, many, publishing, epoch)?);
        // Dropping the trial stopped its workers and its system.
    }
    let machine = Machine {
        load_before,
        load_after: sys::load_average(),
        drops: losses.0.saturating_sub(losses_before.0),
        retransmits: losses.1.saturating_sub(losses_before.1),
    };
    print_report(&rows, opts, many, &plan, &machine);
    Ok(rows)
}

fn announce(opts: &Options, many: &Many, plan: &Plan) {
    eprintln!(
        "fanout{}: {} clients × {} of {} symbols (Zipf {}), {} updates/s in batches of {} for {} s, via {}{}",
        if opts.smoke { " (smoke run)" } else { "" },
        opts.clients,
        many.subscribe,
        many.symbols,
        many.zipf,
        opts.rate,
        plan.batch,
        opts.seconds,
        match (opts.via, &opts.redis) {
            (_, Some(_)) => "lighttpd (conf/lighttpd-balance.conf) → scgi",
            (Via::Http, _) => "http",
            (Via::Scgi, _) => "scgi",
            (Via::Lighttpd, _) => "lighttpd → scgi",
        },
        if opts.unix { " (unix socket)" } else { "" },
    );
}

/// Waits for every worker's streams to be in (or failed), at the ramp's pace.
fn wait_connected(trials: &mut [Trial], opts: &Options) -> io::Result<()> {
    let all_clients: usize = trials.iter().map(|t| t.clients).sum();
    let ramp_time = Duration::from_secs_f64(all_clients as f64 / opts.ramp_per_s as f64);
    for t in trials {
        for w in &t.workers {
            let ready = w.ready(ramp_time + Duration::from_secs(60))?;
            t.connected += ready.connected;
            t.failed += ready.failed;
            t.connect_ms = t.connect_ms.max(ready.connect_ms);
        }
    }
    Ok(())
}

/// Measuring starts: the clients count TCP segments from here (`MARK`), CPU counts from
/// here, tickerd's counters are read, and a cluster's streams per instance counted.
fn mark(trials: &mut [Trial]) -> io::Result<()> {
    for t in trials {
        for w in &mut t.workers {
            w.say("MARK")?;
        }
        t.sampler.connected();
        t.metrics_before = scrape(&t.metrics);
        if let Some(c) = &mut t.cluster {
            // Where lighttpd put the streams.
            c.count_streams(&t.metrics);
        }
    }
    Ok(())
}

/// Publishes every batch to every system, batch b to system i at (b + i/n) periods; memory
/// is sampled halfway. Returns the time from the first publish to the last.
fn publish(trials: &mut [Trial], opts: &Options, many: &Many, plan: &Plan, epoch: u64) -> Duration {
    let period = plan.batch as f64 / opts.rate;
    let n = trials.len() as f64;
    let mut draw = Batches::new(many.symbols, 0xba7c4);
    // Quotes: the fields each update sets, drawn once for every system.
    let mut masks = quote::Masks::new(0xf1e1d5);
    let drawn: Vec<(Vec<u32>, Vec<u8>)> = (0..plan.batches)
        .map(|_| {
            let symbols = draw.next(plan.batch);
            let fields = match many.quote {
                true => symbols.iter().map(|_| masks.next()).collect(),
                false => Vec::new(),
            };
            (symbols, fields)
        })
        .collect();
    // With --redis, system i takes the same batches starting at the (i/n)th: each gets every
    // batch once, but the few updates of the most popular symbols (a Zipf universe's top
    // symbol is in two thirds of the subscriptions) come at different times in each system,
    // so that no system's largest fan-out lands on the others' and inflates their tails.
    let (batches, systems) = (plan.batches, trials.len());
    let rotate = |i: usize, b: usize| match opts.redis {
        Some(_) => (b + i * batches / systems) % batches,
        None => b,
    };
    let start = Instant::now();
    for b in 0..batches {
        if b == batches / 2 {
            for t in trials.iter_mut() {
                t.sampler.halfway();
            }
        }
        for (i, t) in trials.iter_mut().enumerate() {
            let due = start + Duration::from_secs_f64((b as f64 + i as f64 / n) * period);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let take = match t.kind {
                Kind::Floor => plan.floor_batch,
                _ => plan.batch,
            };
            let (symbols, fields) = &drawn[rotate(i, b)];
            send(
                t,
                &symbols[..take],
                &fields[..take.min(fields.len())],
                epoch,
            );
        }
    }
    start.elapsed()
}

/// Sends `symbols` to a system at one price: the publish time, in µs from the epoch (each
/// batch its own, above the last). Quotes: `fields`, each update's, all set to that value.
fn send(t: &mut Trial, symbols: &[u32], fields: &[u8], epoch: u64) {
    let last = t.sent.last().map_or(SNAPSHOT_CENTS, |b| b.cents);
    let cents = ((sys::now_ns() - epoch) / 1000).max(last + 1);
    let sent = Batch {
        symbols: symbols.to_vec(),
        cents,
        fields: fields.to_vec(),
    };
    if let Some(f) = &t.feeder {
        f.send(sent.clone());
    }
    t.sent.push(sent);
}

/// Tells each system's clients the final record of every symbol (`FINAL <file>`).
fn send_finals(trials: &mut [Trial], dir: &ScratchDir, many: &Many) -> io::Result<()> {
    let width = match many.quote {
        true => quote::WIDTH,
        false => 1,
    };
    for (i, t) in trials.iter_mut().enumerate() {
        let finals = if t.kind == Kind::Tickerd {
            // tickerd's order is its ids' (publishes on separate connections could be
            // applied out of order): its answers say which update of a symbol came last.
            let a = t.feeder.take().map(Feeder::finish).unwrap_or_default();
            let f = ids::finals(&t.sent, Some(&a.ids), many.symbols, width);
            t.answers = Some(a);
            f
        } else {
            ids::finals(&t.sent, None, many.symbols, width)
        };
        let path = dir.0.join(format!("finals-{i}.bin"));
        let bytes: Vec<u8> = finals.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&path, bytes)?;
        for w in &mut t.workers {
            w.say(&format!("FINAL {}", path.display()))?;
        }
        t.finals = finals;
    }
    Ok(())
}

/// Quotes: tickerd's own record of every symbol (`GET /symbols`), field by field, against
/// the bench's record of what it published, once settled.
fn compare_listing(trials: &mut [Trial]) {
    for t in trials.iter_mut().filter(|t| t.kind == Kind::Tickerd) {
        let listing = t
            .metrics
            .first()
            .and_then(|&addr| target::get(addr, "/symbols"));
        t.listing_differs = Some(match listing {
            Some(body) => quote::listing_differs(&body, &t.finals),
            None => Err("no answer to GET /symbols".into()),
        });
    }
}

/// Asks each system's clients until every one holds every final value, or `settle_s` after
/// the last publish.
fn wait_settled(trials: &mut [Trial], last_publish: Instant, settle_s: f64) -> io::Result<()> {
    let settle_by = last_publish + Duration::from_secs_f64(settle_s);
    while trials.iter().any(|t| t.settled.is_none()) && Instant::now() < settle_by {
        std::thread::sleep(Duration::from_millis(20));
        for t in trials.iter_mut().filter(|t| t.settled.is_none()) {
            let mut all = true;
            for w in &mut t.workers {
                // Every worker is asked (and answers) each round, settled or not.
                all &= w.settled()?;
            }
            if all {
                t.settled = Some(last_publish.elapsed());
            }
        }
    }
    Ok(())
}

/// A system's figures, once its clients stopped: their summaries merged, its publishes'
/// answers, the ids checked.
fn collect(mut t: Trial, many: &Many, publishing: Duration, epoch: u64) -> io::Result<ManyRow> {
    let mut summary = Summary::default();
    let mut dropped = 0;
    for w in &t.workers {
        dropped += w.done(Duration::from_secs(30))?.dropped;
        let mut file = io::BufReader::new(std::fs::File::open(&w.out)?);
        summary.merge(&Summary::read_from(&mut file)?);
        let _ = std::fs::remove_file(&w.out);
    }
    if std::env::var_os("FANOUT_TAIL").is_some() {
        print_tail(&t.name, &summary, epoch);
    }
    // Only now: the floor ends with its stdin, which would drop its streams.
    let answers = match t.answers.take() {
        Some(a) => a,
        None => t.feeder.take().map(Feeder::finish).unwrap_or_default(),
    };
    let published: u64 = t.sent.iter().map(|b| b.symbols.len() as u64).sum();
    let requests = match t.kind {
        Kind::Nchan => published + many.symbols as u64,
        Kind::Tickerd => t.sent.len() as u64,
        Kind::Floor => 0,
    };
    let checked =
        (t.kind == Kind::Tickerd).then(|| ids::check_ids(&t.sent, &answers.ids, &summary));
    Ok(report::row(ManyRun {
        quote: many.quote,
        max_hz: many.max_hz,
        listing_differs: t.listing_differs.take(),
        unchanged: answers.unchanged,
        name: t.name.clone(),
        clients: t.clients,
        cluster: t.cluster.take(),
        connected: t.connected,
        failed: t.failed,
        dropped,
        connect_ms: t.connect_ms,
        published,
        publishing,
        publishes: t.sent.len() as u64,
        settled: t.settled,
        publish_failed: answers.failed + requests.saturating_sub(answers.answered),
        first_publish_error: answers.first_error,
        publish_answered_ns: answers.answered_ns,
        ids: checked,
        written: t.written,
        summary,
        procs: std::mem::take(&mut t.procs),
    }))
}

fn print_report(rows: &[ManyRow], opts: &Options, many: &Many, plan: &Plan, machine: &Machine) {
    println!("{}", report::table(rows));
    if opts.redis.is_some() {
        println!("{}", redis_report::table(rows));
    }
    if many.quote {
        println!("{}", report::quote_targets(rows));
    }
    let Machine {
        load_before,
        load_after,
        drops,
        retransmits,
    } = machine;
    eprintln!(
        "machine load (1, 5, 15 min): {load_before} at the start, {load_after} at the end; while measured, the kernel (machine-wide) dropped {drops} packets (a CPU's input backlog full) and retransmitted {retransmits} TCP segments, each ≥ 200 ms late"
    );
    // Each `--redis` row with its clients.
    let redis: Option<Vec<Value>> = opts.redis.as_ref().map(|rows| {
        rows.iter()
            .map(|r| json!({ "instances": r.count, "clients": r.clients.unwrap_or(opts.clients) }))
            .collect()
    });
    let settings = json!({
        "clients": opts.clients,
        "symbols": many.symbols,
        "subscribe": many.subscribe,
        "zipf": many.zipf,
        "rate": opts.rate,
        "batch": plan.batch,
        "floor_batch": plan.floor_batch,
        "seconds": opts.seconds,
        "coalesce_ms": many.coalesce_ms,
        "quote": many.quote,
        "max_hz": many.max_hz,
        "redis": redis,
        "unix": opts.unix,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "load_before": load_before,
        "load_after": load_after,
        "backlog_drops": drops,
        "tcp_retransmits": retransmits,
    });
    println!("{}", report::json(rows, settings));
}

/// `FANOUT_TAIL=1`: a system's 20 latest updates (the last client's latency, when it was
/// published in the run, to how many clients), to tell a tail made of a few large fan-outs
/// from one spread over the run.
fn print_tail(name: &str, summary: &Summary, epoch: u64) {
    let mut late: Vec<(u64, u64, u64)> = summary
        .updates
        .iter()
        .map(|(&k, a)| {
            let published = epoch + key_cents(k) * 1000;
            (
                a.last.saturating_sub(published),
                published - epoch,
                a.clients,
            )
        })
        .collect();
    late.sort_unstable_by(|x, y| y.cmp(x));
    let shown: Vec<String> = late
        .iter()
        .take(20)
        .map(|(l, p, c)| {
            format!(
                "{:.1} ms (at {:.2} s, ×{c})",
                *l as f64 / 1e6,
                *p as f64 / 1e9
            )
        })
        .collect();
    eprintln!("latest updates of {name}: {}", shown.join(", "));
}

/// tickerd's counters of writes, events written and their bytes, from its `/metrics`,
/// summed over its instances; `None` for a system that is not tickerd, or if any instance
/// did not answer.
fn scrape(instances: &[SocketAddr]) -> Option<Written> {
    if instances.is_empty() {
        return None;
    }
    let mut sum = Written::default();
    for &addr in instances {
        let m = target::metrics(addr)?;
        sum.writes += target::metric(&m, "tickerd_writes_total")? as u64;
        sum.events += target::metric(&m, "tickerd_events_written_total")? as u64;
        sum.event_bytes += target::metric(&m, "tickerd_event_bytes_total")? as u64;
    }
    Some(sum)
}
