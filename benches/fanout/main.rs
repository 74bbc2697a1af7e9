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
//! After the one-symbol workload, `--publishes N` (default 2,000; 0: none) measures publishes
//! sent one at a time on one kept-alive connection against each on a connection of its own,
//! in the same run (`publishes`), and prints their ratio.
//!
//! `--symbols U` makes it the many-symbol workload instead (`many`): each client streams
//! `--subscribe K` of U symbols drawn with Zipf popularity (`--zipf S`), and publishers send
//! batches at `--rate` updates/s.
//!
//! `--redis [--instances 1,2,3]` runs that workload on tickerd alone and on clusters of N
//! instances sharing a private Redis (`--redis`), all behind lighttpd's balancing conf, side
//! by side, and judges the three goals of sharing the feed (`many::redis_report`).
//!
//! Run by `cargo test --all-targets` (no `--bench` argument) it makes a small smoke run
//! (`smoke`) and fails on any connection failure or missing event, so it cannot rot.
//!
//! The coordinator (this process) starts the systems and re-executes itself as the client
//! workers (`--role clients`, up to 9,000 streams each, each from its own 127.0.0.x source
//! address) and as the floor (`--role floor`).
//!
//! The modules, each using only modules listed after it:
//! - `smoke`: the smoke run, over both workloads;
//! - `single` (one symbol) and `many` (many symbols, and `--redis`'s clusters): the
//!   workloads, each run phase by phase, with its report beside it;
//! - `cli`: the coordinator's command line;
//! - `workers`: the client worker processes, as the coordinator starts and talks to them;
//! - `publishes`: publishes one at a time, kept alive or a connection each;
//! - `feeder`: the many-symbol publishers; `target`: the systems under test;
//! - `client` (with `stream` and `watch`) and `floor`: the worker processes' own code;
//! - `procs`, `workload`, `hist`, `stats`, `sys`: what everything measures with.

mod cli;
mod client;
mod feeder;
mod floor;
mod hist;
mod many;
mod procs;
mod publishes;
mod quote;
mod single;
mod smoke;
mod stats;
mod stream;
mod sys;
mod target;
mod watch;
mod workers;
mod workload;

use std::io;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--role") {
        if let Err(e) = run_role(&args) {
            eprintln!("fanout worker: {e}");
            std::process::exit(1);
        }
        return;
    }
    let opts = match cli::parse(&args) {
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

/// This process re-executed by the coordinator as a client worker or as the floor.
fn run_role(args: &[String]) -> io::Result<()> {
    match args.get(1).map(String::as_str) {
        Some("floor") => match args.iter().position(|a| a == "--symbols") {
            Some(i) => args
                .get(i + 1)
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| io::Error::other("--symbols N"))
                .and_then(|n| floor::run_multi(n, args.iter().any(|a| a == "--quote"))),
            None => floor::run(),
        },
        Some("clients") => workers::parse_args(&args[2..]).and_then(client::run),
        _ => Err(io::Error::other("unknown role")),
    }
}

/// The workload the options name, or the smoke run; whether it passed.
fn coordinate(opts: &cli::Options) -> io::Result<bool> {
    if opts.smoke {
        return smoke::run(opts);
    }
    match &opts.many {
        Some(many) => many::run(opts, many).map(drop)?,
        None => {
            single::run(opts)?;
            if opts.publishes > 0 {
                publishes::print(&publishes::run(opts.publishes)?);
            }
        }
    }
    Ok(true)
}
