//! The one-symbol workload (the default): every client streams (or long-polls) the one
//! price, published at `--rate` ticks/s, on the floor, tickerd and, with `--target nchan`,
//! nchan side by side.
//!
//! The systems run under the same load at the same time, each with its own clients.
//! Publishes to system `i` of `n` are offset by `i/n` of the period, so their fan-outs do
//! not overlap, while drift on a shared machine (other load, caches, the kernel's tables)
//! hits them all alike: that is what makes the ratios to the floor trustworthy.

pub mod report;

use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::Options;
use crate::client::Mode;
use crate::procs::Sampler;
use crate::sys;
use crate::target::{self, System};
use crate::workers::Worker;
use report::{Row, Run};

/// A system under load, its clients, and what was measured around it.
struct Trial {
    sys: System,
    workers: Vec<Worker>,
    /// Workers whose streams never read (`--stalled`).
    stalled: Vec<Worker>,
    sampler: Sampler,
    run: Run,
}

/// One configuration: starts the systems, measures them together, prints the table and
/// the JSON line.
pub fn run(opts: &Options) -> io::Result<Vec<Row>> {
    announce(opts);
    let mut trials = start_clients(start_systems(opts)?, opts)?;
    wait_connected(&mut trials, opts)?;
    // Let the last heads and current events settle before measuring.
    std::thread::sleep(Duration::from_millis(300));
    for t in &mut trials {
        t.sampler.connected();
    }
    let start = Instant::now();
    publish_ticks(&mut trials, opts, start)?;
    // Time for the last event to reach everyone.
    std::thread::sleep(Duration::from_secs_f64((2.0 / opts.rate).clamp(0.5, 2.0)));
    for t in &mut trials {
        t.sys.publisher.finish()?;
    }
    let window = start.elapsed();
    let mut rows = Vec::new();
    for t in trials {
        rows.push(collect(t, window, opts)?);
        // Dropping the trial stopped its workers and its system.
    }
    print_report(&rows, opts);
    Ok(rows)
}

fn announce(opts: &Options) {
    eprintln!(
        "fanout{}: {} clients{}, {} ticks/s for {} s, via {}, {}",
        if opts.smoke { " (smoke run)" } else { "" },
        opts.clients,
        if opts.stalled > 0 {
            format!(" (+{} that never read)", opts.stalled)
        } else {
            String::new()
        },
        opts.rate,
        opts.seconds,
        opts.via_name(),
        opts.mode_name(),
    );
}

/// The systems to compare. The floor writes a stream; it has no long-poll form, nor has
/// nchan.
fn start_systems(opts: &Options) -> io::Result<Vec<(&'static str, System)>> {
    let mut systems = Vec::new();
    if opts.mode != Mode::LongPoll {
        systems.push(("floor", target::floor(None, false)?));
    }
    systems.push(("tickerd", target::tickerd(opts.via, opts.unix)?));
    if opts.nchan && opts.mode != Mode::LongPoll {
        systems.push(("nchan", target::nchan()?));
    }
    Ok(systems)
}

/// Starts each system's client workers (and `--stalled` ones), each from a source address
/// of its own, once the system's memory before them is sampled.
fn start_clients(systems: Vec<(&str, System)>, opts: &Options) -> io::Result<Vec<Trial>> {
    let workers_needed = opts.clients.div_ceil(opts.per_worker);
    let stalled_workers = opts.stalled.div_ceil(opts.per_worker);
    let ramp = opts.worker_ramp(opts.clients);
    let mut trials = Vec::new();
    for (name, sys) in systems {
        let sampler = Sampler::before(sys.measured());
        let first = trials.len() * (workers_needed + stalled_workers);
        let mut workers = Vec::new();
        for i in 0..workers_needed {
            let share = share(opts.clients, workers_needed, i);
            workers.push(Worker::spawn(
                &sys,
                first + i,
                share,
                opts.mode,
                ramp,
                None,
            )?);
        }
        let mut stalled = Vec::new();
        for i in 0..stalled_workers {
            let share = share(opts.stalled, stalled_workers, i);
            let index = first + workers_needed + i;
            stalled.push(Worker::spawn(
                &sys,
                index,
                share,
                Mode::Stalled,
                ramp,
                None,
            )?);
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
            sampler,
            run,
        });
    }
    Ok(trials)
}

/// Worker `i`'s share of `total` clients over `workers`.
fn share(total: usize, workers: usize, i: usize) -> usize {
    total / workers + usize::from(i < total % workers)
}

/// Waits for every worker's streams to be in (or failed), at the ramp's pace.
fn wait_connected(trials: &mut [Trial], opts: &Options) -> io::Result<()> {
    let ramp_time = Duration::from_secs_f64(
        (opts.clients + opts.stalled) as f64 * trials.len() as f64 / opts.ramp_per_s as f64,
    );
    let within = ramp_time + Duration::from_secs(60);
    for t in trials {
        for w in &t.stalled {
            t.run.stalled += w.ready(within)?.connected;
        }
        for w in &t.workers {
            let ready = w.ready(within)?;
            t.run.connected += ready.connected;
            t.run.failed += ready.failed;
            t.run.connect_ms = t.run.connect_ms.max(ready.connect_ms);
        }
    }
    Ok(())
}

/// Publishes ticks 1, 2, … at `--rate` for `--seconds` to every system, each offset
/// within the period; memory is sampled halfway.
fn publish_ticks(trials: &mut [Trial], opts: &Options, start: Instant) -> io::Result<()> {
    let count = (opts.rate * opts.seconds).round().max(1.0) as u64;
    let n = trials.len() as f64;
    for seq in 1..=count {
        if seq == count / 2 + 1 {
            for t in trials.iter_mut() {
                t.sampler.halfway();
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
    Ok(())
}

/// A system's figures: its processes' now, then its clients' once they stop.
fn collect(mut t: Trial, window: Duration, opts: &Options) -> io::Result<Row> {
    t.run.window = window;
    t.run.procs = t.sampler.figures();
    for w in &mut t.workers {
        let _ = w.say("STOP");
    }
    let mut arrivals = Vec::new();
    for w in &t.workers {
        let done = w.done(Duration::from_secs(30))?;
        t.run.dropped += done.dropped;
        t.run.responses += done.responses;
        t.run.disorder += done.disorder;
        arrivals.extend(read_arrivals(&w.out)?);
    }
    Ok(report::summarize(
        &t.run,
        &arrivals,
        opts.mode == Mode::Stream,
    ))
}

/// A worker's `--out` file, (seq: u32, ns: u64) little-endian records; removed once read.
fn read_arrivals(path: &Path) -> io::Result<Vec<(u32, u64)>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    let _ = std::fs::remove_file(path);
    Ok(bytes
        .chunks_exact(12)
        .map(|rec| {
            let seq = u32::from_le_bytes(rec[..4].try_into().unwrap());
            let ns = u64::from_le_bytes(rec[4..].try_into().unwrap());
            (seq, ns)
        })
        .collect())
}

fn print_report(rows: &[Row], opts: &Options) {
    println!("{}", report::table(rows, opts.mode == Mode::LongPoll));
    let settings = json!({
        "clients": opts.clients,
        "stalled": opts.stalled,
        "rate": opts.rate,
        "seconds": opts.seconds,
        "via": opts.via_name(),
        "mode": opts.mode_name(),
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
    });
    println!("{}", report::json(rows, settings));
}
