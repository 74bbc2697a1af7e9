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
//! also summed by role (`report::cluster_table`). Since the clients of one update sit on
//! different instances, an id that differed between instances shows as an update received
//! with two ids, and one that differed from Redis's as an update received under another id
//! than its publish was answered with.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{Mode, MultiOptions};
use crate::feeder::{Answers, Batch, Feeder};
use crate::report::{self, ManyRow};
use crate::target::{self, System};
use crate::watch::{key_cents, key_symbol, update_key, Summary};
use crate::workload::{Batches, Universe, SNAPSHOT_CENTS};
use crate::{spawn_worker, sys, wait_for, Options, Worker};

/// The many-symbol workload's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Many {
    pub symbols: usize,
    pub subscribe: usize,
    pub zipf: f64,
    /// Updates per publish; 0: as many as make 100 publishes a second.
    pub batch: usize,
    /// The most updates per second the floor gets.
    pub floor_rate: f64,
    /// tickerd's `--coalesce-ms`, if given.
    pub coalesce_ms: Option<u64>,
    /// How long to wait after the last publish for every client to hold the final values.
    pub settle_s: f64,
}

impl Default for Many {
    fn default() -> Self {
        Many {
            symbols: 1000,
            subscribe: 20,
            zipf: 1.0,
            batch: 0,
            floor_rate: 100.0,
            coalesce_ms: None,
            settle_s: 10.0,
        }
    }
}

impl Many {
    pub fn batch(&self, rate: f64) -> usize {
        match self.batch {
            0 => (rate / 100.0).ceil().max(1.0) as usize,
            n => n,
        }
    }
}

/// What a system is, for the checks and figures that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Floor,
    Tickerd,
    Nchan,
}

/// One row of `--redis`: this many tickerd instances sharing a Redis behind lighttpd, with
/// the run's clients or `clients` of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instances {
    pub count: usize,
    pub clients: Option<usize>,
}

impl std::str::FromStr for Instances {
    type Err = String;
    /// `N` or `N:CLIENTS`.
    fn from_str(s: &str) -> Result<Instances, String> {
        let (count, clients) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c.parse().map_err(|e| format!("{s}: {e}"))?)),
            None => (s, None),
        };
        let count = count.parse().map_err(|e| format!("{s}: {e}"))?;
        if count == 0 || count > 16 || clients == Some(0) {
            return Err(format!("{s}: 1 to 16 instances, clients > 0"));
        }
        Ok(Instances { count, clients })
    }
}

/// A system under the many-symbol load.
struct Trial {
    name: String,
    kind: Kind,
    clients: usize,
    /// Held for its `Drop`, which stops the system's processes.
    _system: System,
    feeder: Option<Feeder>,
    workers: Vec<Worker>,
    measured: Vec<(String, u32)>,
    rss_before: Vec<u64>,
    rss_connected: Vec<u64>,
    rss_mid: Vec<u64>,
    cpu_before: Vec<Duration>,
    /// tickerd's `/metrics` (one per instance), and their summed (writes, events written)
    /// when measuring started.
    metrics: Vec<SocketAddr>,
    metrics_before: Option<(u64, u64)>,
    /// Several instances (or one, the baseline of `--redis`) behind lighttpd's balancing.
    cluster: Option<report::Cluster>,
    connected: u64,
    failed: u64,
    connect_ms: u64,
    /// Each batch as sent to this system.
    sent: Vec<Batch>,
    /// When the last client held every final value, after the last publish.
    settled: Option<Duration>,
}

/// The run's files (tickerd's symbol list, the final values), removed with it.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new() -> io::Result<ScratchDir> {
        let dir = std::env::temp_dir().join(format!("tickerd-fanout-many-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rss(measured: &[(String, u32)]) -> Vec<u64> {
    measured.iter().map(|(_, pid)| sys::rss_kib(*pid)).collect()
}

/// A system to start: its name, kind, clients and, for `--redis`, its instances.
struct Planned {
    name: String,
    kind: Kind,
    clients: usize,
    cluster: Option<report::Cluster>,
    system: System,
}

/// One many-symbol configuration: starts the systems, measures them together, prints the
/// table and the JSON line.
pub fn run_one(opts: &Options, many: &Many) -> io::Result<Vec<ManyRow>> {
    let universe = Universe::new(many.symbols);
    let batch = many.batch(opts.rate);
    let floor_batch =
        ((batch as f64 * (many.floor_rate / opts.rate).min(1.0)).round() as usize).clamp(1, batch);
    eprintln!(
        "fanout{}: {} clients × {} of {} symbols (Zipf {}), {} updates/s in batches of {} for {} s, via {}{}",
        if opts.smoke { " (smoke run)" } else { "" },
        opts.clients,
        many.subscribe,
        many.symbols,
        many.zipf,
        opts.rate,
        batch,
        opts.seconds,
        match (opts.via, &opts.redis) {
            (_, Some(_)) => "lighttpd (conf/lighttpd-balance.conf) → scgi",
            (target::Via::Http, _) => "http",
            (target::Via::Scgi, _) => "scgi",
            (target::Via::Lighttpd, _) => "lighttpd → scgi",
        },
        if opts.unix { " (unix socket)" } else { "" },
    );
    let load_before = sys::load_average();
    let epoch = sys::now_ns();
    let dir = ScratchDir::new()?;
    let plain = |name: &str, kind, system| Planned {
        name: name.to_string(),
        kind,
        clients: opts.clients,
        cluster: None,
        system,
    };
    let mut systems = vec![plain(
        "floor",
        Kind::Floor,
        target::floor(Some(many.symbols))?,
    )];
    let listing = dir.0.join("symbols.txt");
    std::fs::write(&listing, universe.listing())?;
    let mut args = vec![
        "--symbols-file".to_string(),
        listing.display().to_string(),
        "--max-symbols-per-client".into(),
        many.subscribe.max(64).to_string(),
    ];
    if let Some(ms) = many.coalesce_ms {
        args.extend(["--coalesce-ms".into(), ms.to_string()]);
    }
    match &opts.redis {
        None => systems.push(plain(
            "tickerd",
            Kind::Tickerd,
            target::tickerd_with(opts.via, opts.unix, &args)?,
        )),
        Some(rows) => {
            // The baseline first: one process, no Redis, behind the same lighttpd conf.
            let baseline = Instances {
                count: 1,
                clients: None,
            };
            let all = std::iter::once((false, baseline)).chain(rows.iter().map(|r| (true, *r)));
            for (redis, r) in all {
                let clients = r.clients.unwrap_or(opts.clients);
                let mut name = match redis {
                    false => "tickerd ×1 (no Redis)".to_string(),
                    true => format!("tickerd+Redis ×{}", r.count),
                };
                if clients != opts.clients {
                    name += &format!(", {clients} clients");
                }
                let system = target::tickerd_cluster(r.count, redis, opts.unix, &args)?;
                systems.push(Planned {
                    name,
                    kind: Kind::Tickerd,
                    clients,
                    cluster: Some(report::Cluster {
                        instances: r.count,
                        redis,
                        streams: Vec::new(),
                    }),
                    system,
                });
            }
        }
    }
    if opts.nchan {
        let mut nchan = target::nchan()?;
        nchan.path = "/multi".into();
        systems.push(plain("nchan", Kind::Nchan, nchan));
    }

    let mut trials = Vec::new();
    // Each worker its own 127.0.0.x source address, across systems.
    let mut source = 0;
    for planned in systems {
        let Planned {
            name,
            kind,
            clients,
            cluster,
            system: mut sys,
        } = planned;
        let feeder = Feeder::start(sys.publisher.take(), universe)?;
        if kind == Kind::Nchan {
            // nchan has no prices until published: every channel gets its first message,
            // so that a subscriber's snapshot is complete as tickerd's is.
            let all: Vec<u32> = (0..many.symbols as u32).collect();
            feeder.send(Batch {
                symbols: all,
                cents: SNAPSHOT_CENTS,
            });
            let a = feeder.wait_answered(many.symbols as u64, Duration::from_secs(30));
            if a.answered < many.symbols as u64 || a.failed > 0 {
                return Err(io::Error::other(format!(
                    "nchan: first prices: {} of {} answered, {} failed ({:?})",
                    a.answered, many.symbols, a.failed, a.first_error
                )));
            }
        }
        let measured = sys.measured();
        let rss_before = rss(&measured);
        let per_system = clients.div_ceil(opts.per_worker);
        let mut workers = Vec::new();
        for i in 0..per_system {
            let share = clients / per_system + usize::from(i < clients % per_system);
            let m = MultiOptions {
                symbols: many.symbols,
                subscribe: many.subscribe,
                zipf: many.zipf,
                worker: i as u64,
                epoch,
            };
            let o = Options {
                clients,
                ..opts.clone()
            };
            workers.push(spawn_worker(
                &sys,
                &o,
                Mode::Stream,
                source,
                share,
                Some(m),
            )?);
            source += 1;
        }
        trials.push(Trial {
            name,
            kind,
            clients,
            metrics: sys.tickerd_http.clone(),
            _system: sys,
            feeder: Some(feeder),
            workers,
            measured,
            rss_before,
            rss_connected: Vec::new(),
            rss_mid: Vec::new(),
            cpu_before: Vec::new(),
            metrics_before: None,
            cluster,
            connected: 0,
            failed: 0,
            connect_ms: 0,
            sent: Vec::new(),
            settled: None,
        });
    }
    let all_clients: usize = trials.iter().map(|t| t.clients).sum();
    let ramp_time = Duration::from_secs_f64(all_clients as f64 / opts.ramp_per_s as f64);
    for t in &mut trials {
        for w in &t.workers {
            let ready = wait_for(&w.lines, "READY ", ramp_time + Duration::from_secs(60))?;
            t.connected += ready.first().copied().unwrap_or(0);
            t.failed += ready.get(1).copied().unwrap_or(0);
            t.connect_ms = t.connect_ms.max(ready.get(2).copied().unwrap_or(0));
        }
    }
    // Let the last heads and snapshots settle before measuring.
    std::thread::sleep(Duration::from_millis(300));
    for t in &mut trials {
        for w in &mut t.workers {
            w.say("MARK")?;
        }
        t.rss_connected = rss(&t.measured);
        t.cpu_before = t
            .measured
            .iter()
            .map(|(_, pid)| sys::cpu_time(*pid))
            .collect();
        t.metrics_before = scrape(&t.metrics);
        if let Some(c) = &mut t.cluster {
            // Where lighttpd put the streams: each instance's open ones.
            c.streams = t
                .metrics
                .iter()
                .map(|&a| {
                    let m = target::metrics(a).unwrap_or_default();
                    ["parked", "writing"]
                        .iter()
                        .filter_map(|s| {
                            target::metric(&m, &format!("tickerd_clients{{state=\"{s}\"}}"))
                        })
                        .sum::<f64>() as u64
                })
                .collect();
        }
    }

    // Publishing: batch b to system i at (b + i/n) periods.
    let batches = ((opts.rate * opts.seconds) / batch as f64).round().max(1.0) as usize;
    let period = batch as f64 / opts.rate;
    let n = trials.len() as f64;
    let mut draw = Batches::new(many.symbols, 0xba7c4);
    let drawn: Vec<Vec<u32>> = (0..batches).map(|_| draw.next(batch)).collect();
    // With --redis, system i takes the same batches starting at the (i/n)th: each gets every
    // batch once, but the few updates of the most popular symbols (a Zipf universe's top
    // symbol is in two thirds of the subscriptions) come at different times in each system,
    // so that no system's largest fan-out lands on the others' and inflates their tails.
    let systems = trials.len();
    let rotate = |i: usize, b: usize| match opts.redis {
        Some(_) => (b + i * batches / systems) % batches,
        None => b,
    };
    let losses_before = sys::net_losses();
    let start = Instant::now();
    for b in 0..batches {
        if b == batches / 2 {
            for t in &mut trials {
                t.rss_mid = rss(&t.measured);
            }
        }
        for (i, t) in trials.iter_mut().enumerate() {
            let symbols = &drawn[rotate(i, b)];
            let due = start + Duration::from_secs_f64((b as f64 + i as f64 / n) * period);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            // The price is the publish time, in µs from the epoch; each batch its own.
            let last = t.sent.last().map_or(SNAPSHOT_CENTS, |b| b.cents);
            let cents = ((sys::now_ns() - epoch) / 1000).max(last + 1);
            let take = if t.kind == Kind::Floor {
                floor_batch
            } else {
                batch
            };
            let sent = Batch {
                symbols: symbols[..take].to_vec(),
                cents,
            };
            if let Some(f) = &t.feeder {
                f.send(sent.clone());
            }
            t.sent.push(sent);
        }
    }
    let publishing = start.elapsed();
    let last_publish = Instant::now();

    // The final values, then wait for every client to hold them.
    let mut answers: Vec<Option<Answers>> = vec![None; trials.len()];
    for (i, t) in trials.iter_mut().enumerate() {
        let finals = if t.kind == Kind::Tickerd {
            // tickerd's order is its ids' (publishes on separate connections could be
            // applied out of order): its answers say which update of a symbol came last.
            let a = t.feeder.take().map(Feeder::finish).unwrap_or_default();
            let f = finals(&t.sent, Some(&a.ids), many.symbols);
            answers[i] = Some(a);
            f
        } else {
            finals(&t.sent, None, many.symbols)
        };
        let path = dir.0.join(format!("finals-{i}.bin"));
        let bytes: Vec<u8> = finals.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&path, bytes)?;
        for w in &mut t.workers {
            w.say(&format!("FINAL {}", path.display()))?;
        }
    }
    let settle_by = last_publish + Duration::from_secs_f64(many.settle_s);
    while trials.iter().any(|t| t.settled.is_none()) && Instant::now() < settle_by {
        std::thread::sleep(Duration::from_millis(20));
        for t in trials.iter_mut().filter(|t| t.settled.is_none()) {
            let mut all = true;
            for w in &mut t.workers {
                w.say("STALE?")?;
                let line = w
                    .lines
                    .recv_timeout(Duration::from_secs(10))
                    .map_err(|_| io::Error::other("no STALE answer from a worker"))?;
                all &= line.trim() == "STALE 0";
            }
            if all {
                t.settled = Some(last_publish.elapsed());
            }
        }
    }
    let losses = sys::net_losses();
    let (drops, retransmits) = (
        losses.0.saturating_sub(losses_before.0),
        losses.1.saturating_sub(losses_before.1),
    );
    // Measured before any client leaves (closing streams costs CPU too).
    let mut measured = Vec::new();
    for t in &trials {
        let procs: Vec<report::ManyProc> = t
            .measured
            .iter()
            .enumerate()
            .map(|(j, (name, pid))| report::ManyProc {
                name: name.clone(),
                cpu: sys::cpu_time(*pid).saturating_sub(t.cpu_before[j]),
                rss_before: t.rss_before[j],
                rss_connected: t.rss_connected[j],
                rss_mid: t.rss_mid.get(j).copied().unwrap_or(t.rss_connected[j]),
                rss_end: sys::rss_kib(*pid),
            })
            .collect();
        let written = match (t.metrics_before, scrape(&t.metrics)) {
            (Some((w0, e0)), Some((w1, e1))) => Some((w1 - w0, e1 - e0)),
            _ => None,
        };
        measured.push((procs, written));
    }
    // Every system's clients stop before any system does.
    for t in &mut trials {
        for w in &mut t.workers {
            w.say("STOP")?;
        }
    }

    let mut rows = Vec::new();
    for ((i, mut t), (procs, written)) in trials.into_iter().enumerate().zip(measured) {
        let mut summary = Summary::default();
        let mut dropped = 0;
        for w in &t.workers {
            let done = wait_for(&w.lines, "DONE ", Duration::from_secs(30))?;
            dropped += done.get(2).copied().unwrap_or(0);
            let mut file = io::BufReader::new(std::fs::File::open(&w.out)?);
            summary.merge(&Summary::read_from(&mut file)?);
            let _ = std::fs::remove_file(&w.out);
        }
        if std::env::var_os("FANOUT_TAIL").is_some() {
            print_tail(&t.name, &summary, epoch);
        }
        // Only now: the floor ends with its stdin, which would drop its streams.
        let answers = match answers[i].take() {
            Some(a) => a,
            None => t.feeder.take().map(Feeder::finish).unwrap_or_default(),
        };
        let published: u64 = t.sent.iter().map(|b| b.symbols.len() as u64).sum();
        let requests = match t.kind {
            Kind::Nchan => published + many.symbols as u64,
            Kind::Tickerd => t.sent.len() as u64,
            Kind::Floor => 0,
        };
        let check = (t.kind == Kind::Tickerd).then(|| check_ids(&t.sent, &answers.ids, &summary));
        rows.push(report::many_row(report::ManyRun {
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
            ids: check,
            written,
            summary,
            procs,
        }));
        // Dropping the trial stops its workers and its system.
    }
    println!("{}", report::many_table(&rows));
    if opts.redis.is_some() {
        println!("{}", report::cluster_table(&rows));
    }
    let load_after = sys::load_average();
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
        "batch": batch,
        "floor_batch": floor_batch,
        "seconds": opts.seconds,
        "coalesce_ms": many.coalesce_ms,
        "redis": redis,
        "unix": opts.unix,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "load_before": load_before,
        "load_after": load_after,
        "backlog_drops": drops,
        "tcp_retransmits": retransmits,
    });
    println!("{}", report::many_json(&rows, settings));
    Ok(rows)
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

/// tickerd's counters of writes and of events written, from its `/metrics`, summed over
/// its instances; `None` for a system that is not tickerd, or if any instance did not answer.
fn scrape(instances: &[SocketAddr]) -> Option<(u64, u64)> {
    if instances.is_empty() {
        return None;
    }
    let mut sum = (0, 0);
    for &addr in instances {
        let m = target::metrics(addr)?;
        sum.0 += target::metric(&m, "tickerd_writes_total")? as u64;
        sum.1 += target::metric(&m, "tickerd_events_written_total")? as u64;
    }
    Some(sum)
}

/// Each symbol's final value: the last update sent, or, given the ids each batch's last
/// update took, the update with the highest id. `SNAPSHOT_CENTS` for symbols never sent.
fn finals(sent: &[Batch], ids: Option<&[Option<u64>]>, symbols: usize) -> Vec<u64> {
    let mut finals = vec![(0u64, SNAPSHOT_CENTS); symbols];
    for (b, batch) in sent.iter().enumerate() {
        let last_id = ids.and_then(|ids| ids.get(b).copied().flatten());
        for (j, &s) in batch.symbols.iter().enumerate() {
            // Without ids, sending order; with them, the id this update took.
            let order = match (ids, last_id) {
                (None, _) => (b * 1_000_000 + j) as u64 + 1,
                (Some(_), Some(last)) => last + 1 + j as u64 - batch.symbols.len() as u64,
                // Not answered: unknown; sending order as a guess below any real id.
                (Some(_), None) => 0,
            };
            let f = &mut finals[s as usize];
            if order >= f.0 {
                *f = (order, batch.cents);
            }
        }
    }
    finals.into_iter().map(|(_, c)| c).collect()
}

/// What the ids tickerd answered say about the events the clients got.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdCheck {
    /// Updates received with an id other than the one tickerd gave their publish.
    pub mismatched: u64,
    /// Batches whose ids, in id order, do not follow the previous batch's (other updates
    /// took ids between, or two batches overlap).
    pub gaps: u64,
    /// Whether publishes were applied out of sending order (a symbol's value may then go
    /// back, rightly).
    pub reordered: bool,
}

/// Checks each received update's id against what its publish was answered: a publish of k
/// prices takes k consecutive ids, the last one answered. Taken in id order, each batch's
/// ids must follow the previous batch's (nothing else took ids between), whatever order
/// they were applied in (publishes on separate connections, or to several instances).
fn check_ids(sent: &[Batch], ids: &[Option<u64>], summary: &Summary) -> IdCheck {
    let mut expected = crate::watch::FastMap::default();
    let mut check = IdCheck::default();
    let mut previous: Option<u64> = None;
    let mut ranges = Vec::new();
    for (b, batch) in sent.iter().enumerate() {
        let Some(last) = ids.get(b).copied().flatten() else {
            continue;
        };
        let k = batch.symbols.len() as u64;
        for (j, &s) in batch.symbols.iter().enumerate() {
            expected.insert(update_key(s, batch.cents), last + 1 + j as u64 - k);
        }
        check.reordered |= previous.is_some_and(|p| last < p);
        previous = Some(last);
        ranges.push((last + 1 - k, last));
    }
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        check.gaps += u64::from(w[1].0 != w[0].1 + 1);
    }
    for (key, a) in &summary.updates {
        if expected.get(key) != Some(&a.id) {
            check.mismatched += 1;
            if check.mismatched <= 3 {
                eprintln!(
                    "  tickerd: update S{} at {} arrived with id {}, its publish says {:?}",
                    key_symbol(*key),
                    key_cents(*key),
                    a.id,
                    expected.get(key)
                );
            }
        }
    }
    check
}

impl Worker {
    /// Sends the worker a line.
    pub fn say(&mut self, line: &str) -> io::Result<()> {
        let stdin = match &mut self.stdin {
            Some(s) => s,
            None => {
                let s = self
                    .proc
                    .stdin()
                    .ok_or_else(|| io::Error::other("worker stdin"))?;
                self.stdin.insert(s)
            }
        };
        writeln!(stdin, "{line}")?;
        stdin.flush()
    }
}

/// The checks of the id checks, run by the smoke run (a `harness = false` bench target gets
/// no `#[test]`s): what `--redis` relies on to catch instances that disagree.
pub fn self_check() {
    use crate::watch::Arrivals;
    let batch = |symbols: &[u32], cents| Batch {
        symbols: symbols.to_vec(),
        cents,
    };
    // Two publishes of two updates each, ids 11-12 and 13-14; the second applied first.
    let sent = [batch(&[1, 2], 100), batch(&[3, 4], 200)];
    let got = |ids: [u64; 4]| {
        let mut s = Summary::default();
        for ((symbol, cents), id) in [(1, 100), (2, 100), (3, 200), (4, 200)]
            .into_iter()
            .zip(ids)
        {
            let a = Arrivals {
                first: 1,
                last: 1,
                id,
                clients: 1,
            };
            s.updates.insert(update_key(symbol, cents), a);
        }
        s
    };
    let c = check_ids(&sent, &[Some(14), Some(12)], &got([13, 14, 11, 12]));
    assert_eq!((c.mismatched, c.gaps, c.reordered), (0, 0, true), "{c:?}");
    let c = check_ids(&sent, &[Some(12), Some(14)], &got([11, 12, 13, 14]));
    assert_eq!((c.mismatched, c.gaps, c.reordered), (0, 0, false), "{c:?}");
    // Something else took id 13: a gap; an update delivered under another id: a mismatch.
    let c = check_ids(&sent, &[Some(12), Some(15)], &got([11, 12, 14, 15]));
    assert_eq!((c.mismatched, c.gaps), (0, 1), "{c:?}");
    let c = check_ids(&sent, &[Some(12), Some(14)], &got([11, 12, 13, 99]));
    assert_eq!(c.mismatched, 1, "{c:?}");
    // The same update with two ids in two workers' clients (two instances disagreeing).
    let mut a = got([11, 12, 13, 14]);
    a.merge(&got([11, 12, 13, 15]));
    assert_eq!(a.counts.id_conflicts, 1);
    // `--instances`.
    assert_eq!(
        "3:6000".parse::<Instances>(),
        Ok(Instances {
            count: 3,
            clients: Some(6000)
        })
    );
    assert!("0".parse::<Instances>().is_err() && "2:x".parse::<Instances>().is_err());
}
