//! The systems under the many-symbol load: which to start (the floor; tickerd, or with
//! `--redis` tickerd alone and each cluster; nchan), and each started with its publisher
//! and its client workers (`Trial`).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::cluster::Cluster;
use super::report::Written;
use crate::cli::{Instances, Many, Options};
use crate::client::{Mode, MultiOptions};
use crate::feeder::{Answers, Batch, Feeder};
use crate::procs::{ProcFigures, Sampler};
use crate::quote;
use crate::target::{self, System};
use crate::workers::Worker;
use crate::workload::{Universe, SNAPSHOT_CENTS};

/// The run's files (tickerd's symbol list, the final values), removed with it.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new() -> io::Result<ScratchDir> {
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

/// What a system is, for the checks and figures that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Floor,
    Tickerd,
    Nchan,
}

/// A system started, before its clients: its name, kind, clients and, for `--redis`, its
/// instances.
pub struct Planned {
    name: String,
    kind: Kind,
    clients: usize,
    cluster: Option<Cluster>,
    system: System,
}

/// A system under the many-symbol load.
pub struct Trial {
    pub name: String,
    pub kind: Kind,
    pub clients: usize,
    /// Held for its `Drop`, which stops the system's processes.
    _system: System,
    pub feeder: Option<Feeder>,
    pub workers: Vec<Worker>,
    pub sampler: Sampler,
    /// tickerd's `/metrics` (one per instance), and their summed counters when measuring
    /// started.
    pub metrics: Vec<SocketAddr>,
    pub metrics_before: Option<Written>,
    /// Several instances (or one, the baseline of `--redis`) behind lighttpd's balancing.
    pub cluster: Option<Cluster>,
    pub connected: u64,
    pub failed: u64,
    pub connect_ms: u64,
    /// Each batch as sent to this system.
    pub sent: Vec<Batch>,
    /// When the last client held every final value, after the last publish.
    pub settled: Option<Duration>,
    /// What its publishes were answered, once its feeder is finished.
    pub answers: Option<Answers>,
    /// Its processes' figures and tickerd's writes and events written, at the end of the
    /// measured time.
    pub procs: Vec<ProcFigures>,
    pub written: Option<Written>,
    /// Each symbol's final record, as sent to its clients.
    pub finals: Vec<u64>,
    /// Quotes: how many fields of tickerd's `GET /symbols` differ from `finals`.
    pub listing_differs: Option<Result<u64, String>>,
}

/// Starts the systems to compare: the floor, tickerd (or `--redis`'s baseline and
/// clusters), and nchan with `--target nchan`.
pub fn start_systems(
    opts: &Options,
    many: &Many,
    universe: &Universe,
    dir: &ScratchDir,
) -> io::Result<Vec<Planned>> {
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
        target::floor(Some(many.symbols), many.quote)?,
    )];
    let args = tickerd_args(many, universe, dir)?;
    match &opts.redis {
        None => systems.push(plain(
            "tickerd",
            Kind::Tickerd,
            target::tickerd_with(opts.via, opts.unix, &args)?,
        )),
        Some(rows) => systems.extend(start_clusters(opts, rows, &args)?),
    }
    if opts.nchan {
        let mut nchan = target::nchan()?;
        nchan.path = "/multi".into();
        systems.push(plain("nchan", Kind::Nchan, nchan));
    }
    Ok(systems)
}

/// tickerd's arguments: the universe (written to `dir`; quotes: with their fields, each
/// symbol's precision and first values), room for each client's symbols, `--coalesce-ms`
/// if given.
fn tickerd_args(many: &Many, universe: &Universe, dir: &ScratchDir) -> io::Result<Vec<String>> {
    let listing = dir.0.join("symbols.txt");
    let mut args = Vec::new();
    if many.quote {
        std::fs::write(&listing, quote::listing(universe))?;
        args.extend(["--fields".into(), quote::fields_flag()]);
    } else {
        std::fs::write(&listing, universe.listing())?;
    }
    args.extend([
        "--symbols-file".to_string(),
        listing.display().to_string(),
        "--max-symbols-per-client".into(),
        many.subscribe.max(64).to_string(),
    ]);
    if let Some(ms) = many.coalesce_ms {
        args.extend(["--coalesce-ms".into(), ms.to_string()]);
    }
    Ok(args)
}

/// `--redis`: the baseline first (one process, no Redis, behind the same lighttpd conf),
/// then a cluster sharing a Redis per row of `--instances`.
fn start_clusters(opts: &Options, rows: &[Instances], args: &[String]) -> io::Result<Vec<Planned>> {
    let baseline = Instances {
        count: 1,
        clients: None,
    };
    let all = std::iter::once((false, baseline)).chain(rows.iter().map(|r| (true, *r)));
    let mut systems = Vec::new();
    for (redis, r) in all {
        let clients = r.clients.unwrap_or(opts.clients);
        let mut name = match redis {
            false => "tickerd ×1 (no Redis)".to_string(),
            true => format!("tickerd+Redis ×{}", r.count),
        };
        if clients != opts.clients {
            name += &format!(", {clients} clients");
        }
        let system = target::tickerd_cluster(r.count, redis, opts.unix, args)?;
        systems.push(Planned {
            name,
            kind: Kind::Tickerd,
            clients,
            cluster: Some(Cluster {
                instances: r.count,
                redis,
                streams: Vec::new(),
            }),
            system,
        });
    }
    Ok(systems)
}

/// Each system's publisher and client workers (each worker its own 127.0.0.x source
/// address, across systems), once its memory before them is sampled.
pub fn start_clients(
    systems: Vec<Planned>,
    opts: &Options,
    many: &Many,
    universe: Universe,
    epoch: u64,
) -> io::Result<Vec<Trial>> {
    let mut trials = Vec::new();
    let mut source = 0;
    for planned in systems {
        let Planned {
            name,
            kind,
            clients,
            cluster,
            system: mut sys,
        } = planned;
        // Quotes are published on one kept-alive connection; prices as they always were, one
        // connection each (their figures stay comparable).
        let feeder = Feeder::start(sys.publisher.take(), universe, many.quote)?;
        if kind == Kind::Nchan {
            first_prices(&feeder, many.symbols)?;
        }
        let sampler = Sampler::before(sys.measured());
        let workers_needed = clients.div_ceil(opts.per_worker);
        let mut workers = Vec::new();
        for i in 0..workers_needed {
            let share = clients / workers_needed + usize::from(i < clients % workers_needed);
            let multi = MultiOptions {
                symbols: many.symbols,
                subscribe: many.subscribe,
                zipf: many.zipf,
                worker: i as u64,
                epoch,
                quote: many.quote,
                max_hz: many.max_hz,
            };
            let ramp = opts.worker_ramp(clients);
            workers.push(Worker::spawn(
                &sys,
                source,
                share,
                Mode::Stream,
                ramp,
                Some(multi),
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
            sampler,
            metrics_before: None,
            cluster,
            connected: 0,
            failed: 0,
            connect_ms: 0,
            sent: Vec::new(),
            settled: None,
            answers: None,
            procs: Vec::new(),
            written: None,
            finals: Vec::new(),
            listing_differs: None,
        });
    }
    Ok(trials)
}

/// nchan has no prices until published: every channel gets its first message, so that a
/// subscriber's snapshot is complete as tickerd's is.
fn first_prices(feeder: &Feeder, symbols: usize) -> io::Result<()> {
    let all: Vec<u32> = (0..symbols as u32).collect();
    feeder.send(Batch {
        symbols: all,
        cents: SNAPSHOT_CENTS,
        fields: Vec::new(),
    });
    let a = feeder.wait_answered(symbols as u64, Duration::from_secs(30));
    if a.answered < symbols as u64 || a.failed > 0 {
        return Err(io::Error::other(format!(
            "nchan: first prices: {} of {} answered, {} failed ({:?})",
            a.answered, symbols, a.failed, a.first_error
        )));
    }
    Ok(())
}
