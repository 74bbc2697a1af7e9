//! The smoke run, made by `cargo test --all-targets` (no `--bench` argument): the bench's
//! own checks (a `harness = false` bench target gets no `#[test]`s), then each path of the
//! bench once, small, with every system's row checked, so that none can rot: the quote
//! workload with its checks too (every client's merged records at the final ones, field by
//! field, and tickerd's own; the bytes its clients counted are what tickerd wrote; with
//! `max_hz`, the rate each client asked kept); and the publishes one at a time, each way.

use std::io;

use crate::cli::{self, Instances, Many, Options};
use crate::client::Mode;
use crate::many::report::{ManyRow, PACE_TOLERANCE};
use crate::many::{self, ids};
use crate::publishes;
use crate::single::{self, report::Row};
use crate::target::Via;
use crate::{hist, quote, stream, workers, workload};

/// Runs it all; whether every row passed.
pub fn run(opts: &Options) -> io::Result<bool> {
    workload::self_check();
    hist::self_check();
    ids::self_check();
    cli::self_check();
    workers::self_check();
    quote::self_check();
    stream::self_check();
    let (mut passed, mut failed) = (0, 0);
    for v in &single_symbol_variants(opts) {
        for r in single::run(v)? {
            if single_row_passes(&r, v) {
                passed += 1;
            } else {
                eprintln!("smoke run failed for {}: {r:?}", r.name);
                failed += 1;
            }
        }
    }
    for (v, many) in &many_symbol_variants(opts) {
        for r in many::run(v, many)? {
            if many_row_passes(&r, many) {
                passed += 1;
            } else {
                eprintln!("smoke run failed for {} (many symbols): {r:?}", r.name);
                failed += 1;
            }
        }
    }
    let figures = publishes::run(opts.publishes)?;
    publishes::print(&figures);
    if figures.passes() {
        passed += 1;
    } else {
        eprintln!("smoke run failed for the publishes one at a time: {figures:?}");
        failed += 1;
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}

/// HTTP with nchan and stalled readers; lighttpd; SCGI over a Unix socket with long polls.
fn single_symbol_variants(opts: &Options) -> [Options; 3] {
    [
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
    ]
}

/// Every client in and none dropped, each process measured, nothing repeated or out of
/// order, and every event delivered (or, long polling, answers coming).
fn single_row_passes(r: &Row, v: &Options) -> bool {
    let all_in = r.connected == v.clients as u64 && r.failed == 0 && r.dropped == 0;
    let measured = r.procs.iter().all(|p| r.cpu_us_per_event(p) > 0.0);
    let in_order = r.disorder == 0;
    let delivered = match v.mode {
        Mode::LongPoll => r.responses_per_s > 0.0 && r.received > 0,
        _ => r.missing == 0 && r.received > 0 && r.stalled == v.stalled as u64,
    };
    all_in && delivered && measured && in_order
}

/// Many symbols: with nchan over HTTP; over SCGI on a Unix socket with `--coalesce-ms` (its
/// path through tickerd's loop differs); `--redis`; quotes over HTTP; and quotes at
/// `max_hz=4` on symbols updated 50 times a second.
fn many_symbol_variants(opts: &Options) -> [(Options, Many); 5] {
    let small = Many {
        symbols: 50,
        subscribe: 5,
        ..Many::default()
    };
    [
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
                redis: Some(vec![Instances {
                    count: 2,
                    clients: None,
                }]),
                ..opts.clone()
            },
            small,
        ),
        (
            Options {
                rate: 500.0,
                ..opts.clone()
            },
            Many {
                quote: true,
                ..small
            },
        ),
        // Every symbol in every batch, 50 batches a second.
        (
            Options {
                clients: 100,
                rate: 500.0,
                ..opts.clone()
            },
            Many {
                symbols: 10,
                batch: 10,
                quote: true,
                max_hz: Some(4.0),
                ..small
            },
        ),
    ]
}

/// Every client in with its full snapshot, each process measured, every publish answered,
/// updates delivered, every client at the final values, no broken rule, and in a cluster
/// streams on every instance.
fn many_row_passes(r: &ManyRow, many: &Many) -> bool {
    let all_in = r.connected == r.clients as u64 && r.failed == 0 && r.dropped == 0;
    let measured = r.procs.iter().all(|p| r.cpu_us_per_update(p) > 0.0);
    let snapshot = r.snapshot == r.connected * many.subscribe as u64;
    let delivered = r.received > 0 && r.publish_failed == 0;
    let fresh = r.stale_clients == 0 && r.settled_ms.is_some();
    // Every instance of a cluster had streams (else the ids were compared on one).
    let spread = r.cluster.as_ref().is_none_or(|c| {
        c.cluster.streams.len() == c.cluster.instances && c.cluster.streams.iter().all(|&n| n > 0)
    });
    // Quotes: tickerd's clients got deltas (fewer bytes than whole records), and its own
    // records are what was published.
    let tickerd = r.name != "floor";
    let quote = !many.quote
        || !tickerd
        || (r.bytes.is_some_and(|b| b.event_ratio() < 1.0)
            && matches!(r.listing_differs, Some(Ok(0))));
    // max_hz: tickerd kept the rate each client asked (the floor does not know of it).
    let paced = !tickerd || r.pace.is_none_or(|p| p.gaps > 0 && p.held(PACE_TOLERANCE));
    all_in
        && measured
        && snapshot
        && delivered
        && fresh
        && spread
        && r.disorder == 0
        && quote
        && paced
}
