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

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::client::{Mode, MultiOptions};
use crate::feeder::{Answers, Batch, Feeder};
use crate::report::{self, ManyRow};
use crate::target::{self, Publisher, System};
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

/// A system under the many-symbol load.
struct Trial {
    name: &'static str,
    /// Held for its `Drop`, which stops the system's processes.
    _system: System,
    feeder: Option<Feeder>,
    workers: Vec<Worker>,
    measured: Vec<(String, u32)>,
    rss_before: Vec<u64>,
    rss_connected: Vec<u64>,
    rss_mid: Vec<u64>,
    cpu_before: Vec<Duration>,
    /// tickerd's `/metrics`, and its (writes, events written) when measuring started.
    metrics: Option<SocketAddr>,
    metrics_before: Option<(u64, u64)>,
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
        match opts.via {
            target::Via::Http => "http",
            target::Via::Scgi => "scgi",
            target::Via::Lighttpd => "lighttpd → scgi",
        },
        if opts.unix { " (unix socket)" } else { "" },
    );
    let epoch = sys::now_ns();
    let dir = ScratchDir::new()?;
    let mut systems: Vec<(&'static str, System)> =
        vec![("floor", target::floor(Some(many.symbols))?)];
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
    systems.push(("tickerd", target::tickerd_with(opts.via, opts.unix, &args)?));
    if opts.nchan {
        let mut nchan = target::nchan()?;
        nchan.path = "/multi".into();
        systems.push(("nchan", nchan));
    }

    let per_system = opts.clients.div_ceil(opts.per_worker);
    let mut trials = Vec::new();
    for (n, (name, mut sys)) in systems.into_iter().enumerate() {
        let metrics = match (&sys.publisher, name) {
            (Publisher::Http { addr, .. }, "tickerd") => Some(*addr),
            _ => None,
        };
        let feeder = Feeder::start(sys.publisher.take(), universe)?;
        if name == "nchan" {
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
        let mut workers = Vec::new();
        for i in 0..per_system {
            let share = opts.clients / per_system + usize::from(i < opts.clients % per_system);
            let m = MultiOptions {
                symbols: many.symbols,
                subscribe: many.subscribe,
                zipf: many.zipf,
                worker: i as u64,
                epoch,
            };
            workers.push(spawn_worker(
                &sys,
                opts,
                Mode::Stream,
                n * per_system + i,
                share,
                Some(m),
            )?);
        }
        trials.push(Trial {
            name,
            _system: sys,
            feeder: Some(feeder),
            workers,
            measured,
            rss_before,
            rss_connected: Vec::new(),
            rss_mid: Vec::new(),
            cpu_before: Vec::new(),
            metrics,
            metrics_before: None,
            connected: 0,
            failed: 0,
            connect_ms: 0,
            sent: Vec::new(),
            settled: None,
        });
    }
    let ramp_time =
        Duration::from_secs_f64(opts.clients as f64 * trials.len() as f64 / opts.ramp_per_s as f64);
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
        t.metrics_before = t.metrics.and_then(scrape);
    }

    // Publishing: batch b to system i at (b + i/n) periods.
    let batches = ((opts.rate * opts.seconds) / batch as f64).round().max(1.0) as usize;
    let period = batch as f64 / opts.rate;
    let n = trials.len() as f64;
    let mut draw = Batches::new(many.symbols, 0xba7c4);
    let start = Instant::now();
    for b in 0..batches {
        if b == batches / 2 {
            for t in &mut trials {
                t.rss_mid = rss(&t.measured);
            }
        }
        let symbols = draw.next(batch);
        for (i, t) in trials.iter_mut().enumerate() {
            let due = start + Duration::from_secs_f64((b as f64 + i as f64 / n) * period);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            // The price is the publish time, in µs from the epoch; each batch its own.
            let last = t.sent.last().map_or(SNAPSHOT_CENTS, |b| b.cents);
            let cents = ((sys::now_ns() - epoch) / 1000).max(last + 1);
            let take = if t.name == "floor" {
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
        let finals = if t.name == "tickerd" {
            // tickerd's order is its ids' (publishes on separate connections could be
            // applied out of order): its answers say which update of a symbol came last.
            let a = t.feeder.take().map(Feeder::finish).unwrap_or_default();
            let f = finals(&t.sent, Some(&a.ids), many.symbols);
            answers[i] = Some(a);
            f
        } else {
            finals(&t.sent, None, many.symbols)
        };
        let path = dir.0.join(format!("finals-{}.bin", t.name));
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
        let written = match (t.metrics_before, t.metrics.and_then(scrape)) {
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
        // Only now: the floor ends with its stdin, which would drop its streams.
        let answers = match answers[i].take() {
            Some(a) => a,
            None => t.feeder.take().map(Feeder::finish).unwrap_or_default(),
        };
        let published: u64 = t.sent.iter().map(|b| b.symbols.len() as u64).sum();
        let requests = match t.name {
            "nchan" => published + many.symbols as u64,
            "tickerd" => t.sent.len() as u64,
            _ => 0,
        };
        let check = (t.name == "tickerd").then(|| check_ids(&t.sent, &answers.ids, &summary));
        rows.push(report::many_row(report::ManyRun {
            name: t.name.to_string(),
            clients: opts.clients,
            connected: t.connected,
            failed: t.failed,
            dropped,
            connect_ms: t.connect_ms,
            published,
            publishing,
            settled: t.settled,
            publish_failed: answers.failed + requests.saturating_sub(answers.answered),
            first_publish_error: answers.first_error,
            ids: check,
            written,
            summary,
            procs,
        }));
        // Dropping the trial stops its workers and its system.
    }
    println!("{}", report::many_table(&rows));
    let settings = format!(
        "{{\"clients\":{},\"symbols\":{},\"subscribe\":{},\"zipf\":{},\"rate\":{},\"batch\":{batch},\"floor_batch\":{floor_batch},\"seconds\":{},\"coalesce_ms\":{},\"cores\":{}}}",
        opts.clients,
        many.symbols,
        many.subscribe,
        many.zipf,
        opts.rate,
        opts.seconds,
        many.coalesce_ms.map_or("null".into(), |m| m.to_string()),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{}", report::many_json(&rows, &settings));
    Ok(rows)
}

/// tickerd's counters of writes and events written, from its `/metrics`.
fn scrape(addr: SocketAddr) -> Option<(u64, u64)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let value = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((
        value("tickerd_writes_total")?,
        value("tickerd_events_written_total")?,
    ))
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
    /// Batches whose ids do not follow the previous batch's (other updates between, or a
    /// publish applied out of order).
    pub gaps: u64,
    /// Whether publishes were applied out of sending order (a symbol's value may then go
    /// back, rightly).
    pub reordered: bool,
}

/// Checks each received update's id against what its publish was answered: a publish of k
/// prices takes k consecutive ids, the last one answered.
fn check_ids(sent: &[Batch], ids: &[Option<u64>], summary: &Summary) -> IdCheck {
    let mut expected = crate::watch::FastMap::default();
    let mut check = IdCheck::default();
    let mut previous: Option<u64> = None;
    for (b, batch) in sent.iter().enumerate() {
        let Some(last) = ids.get(b).copied().flatten() else {
            continue;
        };
        let k = batch.symbols.len() as u64;
        for (j, &s) in batch.symbols.iter().enumerate() {
            expected.insert(update_key(s, batch.cents), last + 1 + j as u64 - k);
        }
        if let Some(p) = previous {
            check.reordered |= last < p;
            check.gaps += u64::from(last != p + k);
        }
        previous = Some(last);
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
