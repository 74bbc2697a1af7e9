//! The fan-out bench: many idle event streams, prices published at a fixed rate, and when
//! each client receives each event; with the floor (a bare write loop over the same number
//! of loopback sockets) measured in the same run, so every figure is also a ratio.
//!
//! `cargo bench --bench fanout -- [--via scgi|http|lighttpd] [--unix] [--clients N]
//!     [--rate R] [--seconds S] [--mode stream|longpoll] [--target tickerd|nchan]`
//!
//! `FANOUT_SPREADS=1` also prints each tick's fan-out spread per system; with `--symbols`,
//! `FANOUT_TAIL=1` prints each system's latest updates.
//!
//! `--symbols U` makes it the many-symbol workload instead (`multi`): each client streams
//! `--subscribe K` of U symbols drawn with Zipf popularity (`--zipf S`), and publishers send
//! batches at `--rate` updates/s.
//!
//! `--redis [--instances 1,2,3]` runs that workload on tickerd alone and on clusters of N
//! instances sharing a private Redis (`--redis`), all behind lighttpd's balancing conf, side
//! by side, and judges the three goals of sharing the feed (`report::cluster_table`).
//!
//! Run by `cargo test --all-targets` (no `--bench` argument) it makes a small smoke run and
//! fails on any connection failure or missing event, so it cannot rot.
//!
//! The coordinator (this process) starts the systems and re-executes itself as the client
//! workers (`--role clients`, up to 9,000 streams each, each from its own 127.0.0.x source
//! address) and as the floor (`--role floor`).

mod client;
mod feeder;
mod floor;
mod hist;
mod multi;
mod report;
mod stream;
mod sys;
mod target;
mod watch;
mod workload;

use std::io::{self, Read, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::json;

use client::{Addr, Mode, MultiOptions, Proto, WorkerOptions};
use multi::Many;
use report::{ProcFigures, Row, Run};
use target::{Proc, System, Via};

#[derive(Debug, Clone)]
struct Options {
    via: Via,
    unix: bool,
    clients: usize,
    rate: f64,
    seconds: f64,
    mode: Mode,
    nchan: bool,
    ramp_per_s: u64,
    per_worker: usize,
    /// Extra streams per system that never read.
    stalled: usize,
    /// The many-symbol workload (`--symbols`), instead of one symbol.
    many: Option<Many>,
    /// `--redis`: besides one tickerd without Redis, these clusters sharing a Redis, all
    /// behind lighttpd's balancing conf (the many-symbol workload).
    redis: Option<Vec<multi::Instances>>,
    smoke: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            via: Via::Http,
            unix: false,
            clients: 10_000,
            rate: 1.0,
            // 30 ticks: enough for spread and latency percentiles to mean something.
            seconds: 30.0,
            mode: Mode::Stream,
            nchan: false,
            ramp_per_s: 20_000,
            per_worker: 5_000,
            stalled: 0,
            many: None,
            redis: None,
            smoke: false,
        }
    }
}

/// `--redis` defaults, unless given: a run that fits a 2-core machine with lighttpd in front
/// of each of five systems (the floor, tickerd alone, ×1, ×2, ×3). 3,000 clients of 20 of
/// 10,000 symbols each get about 6 updates a second at 1,000 updates/s, so every system
/// delivers about 6,500 updates a second (26,000 through the four lighttpds), which leaves
/// two shared cores some room; each front-end holds 3,000 streams (6,000 descriptors).
const REDIS_CLIENTS: usize = 3000;
const REDIS_RATE: f64 = 1000.0;
const REDIS_SECONDS: f64 = 20.0;
const REDIS_SYMBOLS: usize = 10_000;
const REDIS_INSTANCES: [usize; 3] = [1, 2, 3];

const USAGE: &str = "fanout [--via scgi|http|lighttpd] [--unix] [--clients N] [--rate R] \
[--seconds S] [--mode stream|longpoll] [--target tickerd|nchan] [--stalled N] [--ramp N/s] [--per-worker N]
  many symbols: --symbols U [--subscribe K] [--zipf S] [--batch N] [--floor-rate R] [--coalesce-ms N] [--settle-s S]
  (--rate is then updates/s; defaults: K 20, S 1.0, N = rate/100 (100 publishes/s), floor 100 updates/s)
  Redis: --redis [--instances 1,2,3] (each N, or N:CLIENTS for a row with clients of its own):
  the many-symbol workload on tickerd without Redis and on N instances sharing a private Redis,
  all behind lighttpd (conf/lighttpd-balance.conf); defaults --clients 3000 --rate 1000
  --seconds 20 --symbols 10000";

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        // `cargo bench` passes --bench; `cargo test` does not: then make a smoke run.
        smoke: !args.iter().any(|a| a == "--bench"),
        ..Options::default()
    };
    if o.smoke {
        o.clients = 200;
        o.rate = 5.0;
        o.seconds = 2.0;
    }
    let mut many = Many::default();
    let mut many_flags = Vec::new();
    // Flags given, for the defaults of --redis.
    let mut given = Vec::new();
    let mut instances: Option<Vec<multi::Instances>> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or(format!("{a} needs a value; usage: {USAGE}"))
        };
        given.push(a.clone());
        match a.as_str() {
            "--bench" => {}
            "--redis" => o.redis = Some(Vec::new()),
            "--instances" => {
                let v = val()?;
                instances = Some(
                    v.split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("--instances: {e}"))?,
                );
            }
            "--via" => {
                o.via = match val()?.as_str() {
                    "scgi" => Via::Scgi,
                    "http" => Via::Http,
                    "lighttpd" => Via::Lighttpd,
                    v => return Err(format!("--via {v}: scgi, http or lighttpd")),
                }
            }
            "--unix" => o.unix = true,
            "--clients" => o.clients = val()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--rate" => o.rate = val()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--seconds" => o.seconds = val()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--ramp" => o.ramp_per_s = val()?.parse().map_err(|e| format!("--ramp: {e}"))?,
            "--stalled" => o.stalled = val()?.parse().map_err(|e| format!("--stalled: {e}"))?,
            "--per-worker" => {
                o.per_worker = val()?.parse().map_err(|e| format!("--per-worker: {e}"))?
            }
            "--mode" => {
                o.mode = match val()?.as_str() {
                    "stream" => Mode::Stream,
                    "longpoll" => Mode::LongPoll,
                    v => return Err(format!("--mode {v}: stream or longpoll")),
                }
            }
            "--target" => {
                o.nchan = match val()?.as_str() {
                    "nchan" => true,
                    "tickerd" => false,
                    v => return Err(format!("--target {v}: tickerd or nchan")),
                }
            }
            "--symbols" | "--subscribe" | "--zipf" | "--batch" | "--floor-rate"
            | "--coalesce-ms" | "--settle-s" => {
                let v = val()?;
                let bad = |e: &dyn std::fmt::Display| format!("{a} {v}: {e}");
                match a.as_str() {
                    "--symbols" => many.symbols = v.parse().map_err(|e| bad(&e))?,
                    "--subscribe" => many.subscribe = v.parse().map_err(|e| bad(&e))?,
                    "--zipf" => many.zipf = v.parse().map_err(|e| bad(&e))?,
                    "--batch" => many.batch = v.parse().map_err(|e| bad(&e))?,
                    "--floor-rate" => many.floor_rate = v.parse().map_err(|e| bad(&e))?,
                    "--coalesce-ms" => many.coalesce_ms = Some(v.parse().map_err(|e| bad(&e))?),
                    _ => many.settle_s = v.parse().map_err(|e| bad(&e))?,
                }
                many_flags.push(a.clone());
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            // Under `cargo test`, libtest's own arguments (--nocapture, a filter…) may come.
            _ if o.smoke => {}
            other => return Err(format!("unknown argument {other}; usage: {USAGE}")),
        }
    }
    let has = |flag: &str| given.iter().any(|g| g == flag);
    match (&mut o.redis, instances) {
        (None, Some(_)) => return Err("--instances needs --redis".into()),
        (None, None) => {}
        (Some(rows), list) => {
            *rows = list.unwrap_or_else(|| {
                REDIS_INSTANCES
                    .iter()
                    .map(|&count| multi::Instances {
                        count,
                        clients: None,
                    })
                    .collect()
            });
            if has("--via") && o.via != Via::Lighttpd {
                return Err("--redis: the systems are behind lighttpd (no --via)".into());
            }
            o.via = Via::Lighttpd;
            if !o.smoke {
                if !has("--clients") {
                    o.clients = REDIS_CLIENTS;
                }
                if !has("--rate") {
                    o.rate = REDIS_RATE;
                }
                if !has("--seconds") {
                    o.seconds = REDIS_SECONDS;
                }
                if !has("--symbols") {
                    many.symbols = REDIS_SYMBOLS;
                    many_flags.push("--symbols".into());
                }
            }
        }
    }
    if !(o.rate > 0.0 && o.seconds > 0.0 && o.clients > 0 && o.per_worker > 0) {
        return Err("--rate, --seconds, --clients and --per-worker must be positive".into());
    }
    if o.unix && o.via == Via::Http {
        o.via = Via::Scgi; // a Unix socket is an SCGI listener
    }
    if o.redis.is_some() && many_flags.is_empty() {
        many_flags.push("--symbols".into());
    }
    if !many_flags.is_empty() {
        if !many_flags.iter().any(|f| f == "--symbols") {
            return Err(format!("{} needs --symbols U", many_flags[0]));
        }
        if o.mode != Mode::Stream || o.stalled > 0 {
            return Err("--symbols: streams only (no --mode longpoll, no --stalled)".into());
        }
        if !(many.symbols > 0
            && (1..=255).contains(&many.subscribe)
            && many.subscribe <= many.symbols
            && many.batch <= many.symbols
            && many.zipf >= 0.0
            && many.floor_rate > 0.0
            && many.settle_s > 0.0)
        {
            return Err(
                "--symbols U > 0, 1 <= --subscribe K <= min(U, 255) (nchan's multiplexing limit), --batch <= U, --zipf >= 0, --floor-rate and --settle-s > 0".into(),
            );
        }
        o.many = Some(many);
    }
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--role") {
        let result = match args.get(1).map(String::as_str) {
            Some("floor") => match args.iter().position(|a| a == "--symbols") {
                Some(i) => args
                    .get(i + 1)
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| io::Error::other("--symbols N"))
                    .and_then(floor::run_multi),
                None => floor::run(),
            },
            Some("clients") => worker_options(&args[2..]).and_then(client::run),
            _ => Err(io::Error::other("unknown role")),
        };
        if let Err(e) = result {
            eprintln!("fanout worker: {e}");
            std::process::exit(1);
        }
        return;
    }
    let opts = match parse_options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match coordinate(&opts) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("fanout: {e}");
            std::process::exit(1);
        }
    }
}

fn worker_options(args: &[String]) -> io::Result<WorkerOptions> {
    let get = |name: &str| -> io::Result<&str> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
            .ok_or_else(|| io::Error::other(format!("worker needs {name}")))
    };
    let num = |name: &str| -> io::Result<u64> { get(name)?.parse().map_err(io::Error::other) };
    Ok(WorkerOptions {
        addr: get("--addr")?.parse().map_err(io::Error::other)?,
        proto: if get("--proto")? == "scgi" {
            Proto::Scgi
        } else {
            Proto::Http
        },
        path: get("--path")?.to_string(),
        count: num("--count")? as usize,
        threads: num("--threads")? as usize,
        source: get("--source").ok().and_then(|s| s.parse().ok()),
        ramp_per_s: num("--ramp")?,
        mode: match get("--mode")? {
            "longpoll" => Mode::LongPoll,
            "stalled" => Mode::Stalled,
            _ => Mode::Stream,
        },
        out: get("--out")?.into(),
        multi: match get("--symbols") {
            Err(_) => None,
            Ok(_) => Some(MultiOptions {
                symbols: num("--symbols")? as usize,
                subscribe: num("--subscribe")? as usize,
                zipf: get("--zipf")?.parse().map_err(io::Error::other)?,
                worker: num("--worker")?,
                epoch: num("--epoch")?,
            }),
        },
    })
}

/// A worker process and its stdout lines.
struct Worker {
    proc: Proc,
    lines: Receiver<String>,
    out: std::path::PathBuf,
    /// Its stdin, once taken (`Worker::say`).
    stdin: Option<ChildStdin>,
}

/// Starts a client worker for `sys`: `count` clients, from source address `index`;
/// `multi`: many-symbol streams.
fn spawn_worker(
    sys: &System,
    opts: &Options,
    mode: Mode,
    index: usize,
    count: usize,
    multi: Option<MultiOptions>,
) -> io::Result<Worker> {
    assert!(index < 240, "out of 127.0.0.x source addresses");
    let out =
        std::env::temp_dir().join(format!("tickerd-fanout-{}-{index}.bin", std::process::id()));
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["--role", "clients", "--addr", &sys.addr.to_string()])
        .args([
            "--proto",
            if sys.proto == Proto::Scgi {
                "scgi"
            } else {
                "http"
            },
        ])
        .args([
            "--path",
            &sys.path,
            "--count",
            &count.to_string(),
            "--threads",
            "1",
        ])
        .args([
            "--ramp",
            &(opts.ramp_per_s / ((opts.clients / opts.per_worker).max(1) as u64))
                .max(1)
                .to_string(),
        ])
        .args([
            "--mode",
            match mode {
                Mode::LongPoll => "longpoll",
                Mode::Stream => "stream",
                Mode::Stalled => "stalled",
            },
        ])
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if let Some(m) = multi {
        cmd.args(["--symbols", &m.symbols.to_string()])
            .args(["--subscribe", &m.subscribe.to_string()])
            .args(["--zipf", &m.zipf.to_string()])
            .args(["--worker", &m.worker.to_string()])
            .args(["--epoch", &m.epoch.to_string()]);
    }
    if matches!(sys.addr, Addr::Tcp(_)) {
        // Each worker its own source address: its own ephemeral ports.
        cmd.args(["--source", &format!("127.0.0.{}", 10 + index)]);
    }
    let mut proc = Proc::spawn(&format!("clients-{index}"), &mut cmd)?;
    let lines = proc.lines()?;
    Ok(Worker {
        proc,
        lines,
        out,
        stdin: None,
    })
}

fn wait_for(lines: &Receiver<String>, prefix: &str, within: Duration) -> io::Result<Vec<u64>> {
    let end = Instant::now() + within;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).map_err(|_| {
            io::Error::other(format!("no {prefix} line from a worker in {within:?}"))
        })?;
        if let Some(rest) = line.strip_prefix(prefix) {
            return Ok(rest
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect());
        }
    }
}

/// A system under load, its clients, and what was measured around it.
struct Trial {
    sys: System,
    workers: Vec<Worker>,
    /// Workers whose streams never read (`--stalled`).
    stalled: Vec<Worker>,
    measured: Vec<(String, u32)>,
    rss_before: Vec<u64>,
    rss_after: Vec<u64>,
    cpu_before: Vec<Duration>,
    rss_mid: Vec<u64>,
    run: Run,
}

/// The systems under the same load at the same time, each with its own clients. Publishes
/// to system `i` of `n` are offset by `i/n` of the period, so their fan-outs do not overlap,
/// while drift on a shared machine (other load, caches, the kernel's tables) hits them all
/// alike: that is what makes the ratios to the floor trustworthy.
fn measure_together(systems: Vec<(&str, System)>, opts: &Options) -> io::Result<Vec<Row>> {
    let mut trials = Vec::new();
    let workers_needed = opts.clients.div_ceil(opts.per_worker);
    for (name, sys) in systems {
        let measured = sys.measured();
        let rss_before = measured.iter().map(|(_, pid)| sys::rss_kib(*pid)).collect();
        // Source addresses differ per system and worker.
        let stalled_workers = opts.stalled.div_ceil(opts.per_worker);
        let first = trials.len() * (workers_needed + stalled_workers);
        let mut workers = Vec::new();
        for i in 0..workers_needed {
            let share =
                opts.clients / workers_needed + usize::from(i < opts.clients % workers_needed);
            workers.push(spawn_worker(&sys, opts, opts.mode, first + i, share, None)?);
        }
        let mut stalled = Vec::new();
        for i in 0..stalled_workers {
            let share =
                opts.stalled / stalled_workers + usize::from(i < opts.stalled % stalled_workers);
            let index = first + workers_needed + i;
            stalled.push(spawn_worker(&sys, opts, Mode::Stalled, index, share, None)?);
        }
        let run = Run {
            name: name.to_string(),
            clients: opts.clients,
            ..Run::default()
        };
        trials.push(Trial {
            sys,
            workers,
            stalled,
            measured,
            rss_before,
            rss_after: Vec::new(),
            cpu_before: Vec::new(),
            rss_mid: Vec::new(),
            run,
        });
    }
    let ramp_time = Duration::from_secs_f64(
        (opts.clients + opts.stalled) as f64 * trials.len() as f64 / opts.ramp_per_s as f64,
    );
    for t in &mut trials {
        for w in &t.stalled {
            let ready = wait_for(&w.lines, "READY ", ramp_time + Duration::from_secs(60))?;
            t.run.stalled += ready.first().copied().unwrap_or(0);
        }
        for w in &t.workers {
            let ready = wait_for(&w.lines, "READY ", ramp_time + Duration::from_secs(60))?;
            t.run.connected += ready.first().copied().unwrap_or(0);
            t.run.failed += ready.get(1).copied().unwrap_or(0);
            t.run.connect_ms = t.run.connect_ms.max(ready.get(2).copied().unwrap_or(0));
        }
    }
    // Let the last heads and current events settle before measuring.
    std::thread::sleep(Duration::from_millis(300));
    for t in &mut trials {
        t.rss_after = t
            .measured
            .iter()
            .map(|(_, pid)| sys::rss_kib(*pid))
            .collect();
        t.cpu_before = t
            .measured
            .iter()
            .map(|(_, pid)| sys::cpu_time(*pid))
            .collect();
    }
    let count = (opts.rate * opts.seconds).round().max(1.0) as u64;
    let n = trials.len() as f64;
    let start = Instant::now();
    for seq in 1..=count {
        if seq == count / 2 + 1 {
            for t in &mut trials {
                t.rss_mid = t
                    .measured
                    .iter()
                    .map(|(_, pid)| sys::rss_kib(*pid))
                    .collect();
            }
        }
        for (i, t) in trials.iter_mut().enumerate() {
            let due =
                start + Duration::from_secs_f64(((seq - 1) as f64 + i as f64 / n) / opts.rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            t.run.published.push(sys::now_ns());
            t.sys.publisher.publish(seq)?;
        }
    }
    // Time for the last event to reach everyone.
    std::thread::sleep(Duration::from_secs_f64((2.0 / opts.rate).clamp(0.5, 2.0)));
    for t in &mut trials {
        t.sys.publisher.finish()?;
    }
    let window = start.elapsed();
    let mut rows = Vec::new();
    for mut t in trials {
        t.run.window = window;
        for (i, (name, pid)) in t.measured.iter().enumerate() {
            t.run.procs.push(ProcFigures {
                name: name.clone(),
                cpu: sys::cpu_time(*pid).saturating_sub(t.cpu_before[i]),
                rss_before: t.rss_before[i],
                rss_connected: t.rss_after[i],
                rss_mid: t.rss_mid[i],
                rss_end: sys::rss_kib(*pid),
            });
        }
        for w in &mut t.workers {
            if let Some(mut stdin) = w.proc.stdin() {
                let _ = writeln!(stdin, "STOP");
            }
        }
        let mut arrivals = Vec::new();
        for w in &t.workers {
            let done = wait_for(&w.lines, "DONE ", Duration::from_secs(30))?;
            t.run.dropped += done.get(2).copied().unwrap_or(0);
            t.run.responses += done.get(3).copied().unwrap_or(0);
            t.run.disorder += done.get(4).copied().unwrap_or(0);
            let mut bytes = Vec::new();
            std::fs::File::open(&w.out)?.read_to_end(&mut bytes)?;
            let _ = std::fs::remove_file(&w.out);
            for rec in bytes.chunks_exact(12) {
                let seq = u32::from_le_bytes(rec[..4].try_into().unwrap());
                let ns = u64::from_le_bytes(rec[4..].try_into().unwrap());
                arrivals.push((seq, ns));
            }
        }
        rows.push(report::summarize(
            &t.run,
            &arrivals,
            opts.mode == Mode::Stream,
        ));
        // Dropping the trial stops its workers and its system.
    }
    Ok(rows)
}

fn coordinate(opts: &Options) -> io::Result<bool> {
    if !opts.smoke {
        match &opts.many {
            Some(many) => {
                multi::run_one(opts, many)?;
            }
            None => {
                run_one(opts)?;
            }
        }
        return Ok(true);
    }
    workload::self_check();
    hist::self_check();
    multi::self_check();
    // The smoke run: each path of the bench once, small, and checked, so none can rot.
    let variants = [
        Options {
            nchan: true,
            stalled: 20,
            ..opts.clone()
        },
        Options {
            via: Via::Lighttpd,
            ..opts.clone()
        },
        Options {
            via: Via::Scgi,
            unix: true,
            mode: Mode::LongPoll,
            ..opts.clone()
        },
    ];
    let (mut passed, mut failed) = (0, 0);
    for v in &variants {
        for r in run_one(v)? {
            let all_in = r.connected == v.clients as u64 && r.failed == 0 && r.dropped == 0;
            let measured = r.procs.iter().all(|p| p.1 > 0.0);
            let in_order = r.disorder == 0;
            let delivered = match v.mode {
                Mode::LongPoll => r.responses_per_s > 0.0 && r.received > 0,
                _ => r.missing == 0 && r.received > 0 && r.stalled == v.stalled as u64,
            };
            if all_in && delivered && measured && in_order {
                passed += 1;
            } else {
                eprintln!("smoke run failed for {}: {r:?}", r.name);
                failed += 1;
            }
        }
    }
    // Many symbols: with nchan over HTTP, and over SCGI on a Unix socket with
    // `--coalesce-ms` (its path through tickerd's loop differs).
    let small = Many {
        symbols: 50,
        subscribe: 5,
        ..Many::default()
    };
    let many_variants = [
        (
            Options {
                nchan: true,
                rate: 500.0,
                ..opts.clone()
            },
            small,
        ),
        (
            Options {
                via: Via::Scgi,
                unix: true,
                rate: 500.0,
                ..opts.clone()
            },
            Many {
                coalesce_ms: Some(50),
                ..small
            },
        ),
        // --redis: one tickerd without Redis and two sharing one, behind lighttpd. The
        // clients of each update are spread over both instances, so an id that differed
        // between them would show (id_conflicts), as would one that differs from what its
        // publish was answered (id_mismatched, the publishes going to both in turn).
        (
            Options {
                via: Via::Lighttpd,
                rate: 500.0,
                redis: Some(vec![multi::Instances {
                    count: 2,
                    clients: None,
                }]),
                ..opts.clone()
            },
            small,
        ),
    ];
    for (v, many) in &many_variants {
        for r in multi::run_one(v, many)? {
            let all_in = r.connected == r.clients as u64 && r.failed == 0 && r.dropped == 0;
            let measured = r.procs.iter().all(|p| p.cpu_per_update_us > 0.0);
            let snapshot = r.snapshot == r.connected * many.subscribe as u64;
            let delivered = r.received > 0 && r.publish_failed == 0;
            let fresh = r.stale_clients == 0 && r.settled_ms.is_some();
            // Every instance of a cluster had streams (else the ids were compared on one).
            let spread = r.cluster.as_ref().is_none_or(|c| {
                c.cluster.streams.len() == c.cluster.instances
                    && c.cluster.streams.iter().all(|&n| n > 0)
            });
            if all_in && measured && snapshot && delivered && fresh && spread && r.disorder == 0 {
                passed += 1;
            } else {
                eprintln!("smoke run failed for {} (many symbols): {r:?}", r.name);
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}

/// One configuration: starts the systems, measures them together, prints the table and
/// the JSON line.
fn run_one(opts: &Options) -> io::Result<Vec<Row>> {
    let via = match (opts.via, opts.unix) {
        (Via::Scgi, true) => "scgi (unix socket)",
        (Via::Scgi, false) => "scgi",
        (Via::Http, _) => "http",
        (Via::Lighttpd, true) => "lighttpd → scgi (unix socket)",
        (Via::Lighttpd, false) => "lighttpd → scgi",
    };
    let mode = match opts.mode {
        Mode::LongPoll => "longpoll",
        _ => "stream",
    };
    eprintln!(
        "fanout{}: {} clients{}, {} ticks/s for {} s, via {via}, {mode}",
        if opts.smoke { " (smoke run)" } else { "" },
        opts.clients,
        if opts.stalled > 0 {
            format!(" (+{} that never read)", opts.stalled)
        } else {
            String::new()
        },
        opts.rate,
        opts.seconds
    );
    // The floor writes a stream; it has no long-poll form, nor has nchan.
    let mut systems = Vec::new();
    if opts.mode != Mode::LongPoll {
        systems.push(("floor", target::floor(None)?));
    }
    systems.push(("tickerd", target::tickerd(opts.via, opts.unix)?));
    if opts.nchan && opts.mode != Mode::LongPoll {
        systems.push(("nchan", target::nchan()?));
    }
    let rows = measure_together(systems, opts)?;
    println!("{}", report::table(&rows, opts.mode == Mode::LongPoll));
    let settings = json!({
        "clients": opts.clients,
        "stalled": opts.stalled,
        "rate": opts.rate,
        "seconds": opts.seconds,
        "via": via,
        "mode": mode,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
    });
    println!("{}", report::json(&rows, settings));
    Ok(rows)
}
