//! The soak: churn against the real tickerd at 20 ticks/s. Readers keep up and must miss
//! nothing; other clients join and leave (politely or with a reset), long-poll, or send
//! garbage. At the end tickerd's RSS and open descriptors must be back at their baseline,
//! with no panic.
//!
//! `cargo bench --bench soak -- [--seconds N] [--readers N] [--churners N]` (default 600 s).
//! Under `cargo test --all-targets` (no `--bench` argument) it runs for 60 s.

// The end-to-end tests' helpers; the soak uses a few of them.
#[allow(dead_code, unused_imports)]
#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{http_stream, reset, scgi_get, wait_until, Tickerd};

/// Descriptors tickerd has open, from /proc (the leak check).
fn open_fds(t: &Tickerd) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", t.pid())).map_or(0, |d| d.count())
}

/// A tiny xorshift: the soak needs variety, not quality.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let num = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seconds = num("--seconds", if smoke { 60 } else { 600 });
    let readers = num("--readers", 200) as usize;
    let churners = num("--churners", 16) as usize;

    let t = Tickerd::start(&[
        "--tick-ms",
        "50",
        "--heartbeat-s",
        "2",
        "--long-poll-s",
        "2",
    ]);
    let (http, scgi) = (t.http(), t.scgi());
    std::thread::sleep(Duration::from_millis(300));
    let (rss0, fds0) = (t.rss_kib(), open_fds(&t));
    eprintln!("soak: {seconds} s, {readers} readers, {churners} churners; tickerd baseline {rss0} KiB RSS, {fds0} fds");

    let stop = Arc::new(AtomicBool::new(false));
    let missed = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let churned = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();

    // Readers: one stream each, every id after the first exactly once and in order.
    for _ in 0..readers {
        let (stop, missed, delivered) = (stop.clone(), missed.clone(), delivered.clone());
        threads.push(std::thread::spawn(move || {
            let mut s = http_stream(http, "/ticker", &[]);
            let mut last = s.next_event().map(|e| e.id());
            while !stop.load(Ordering::Relaxed) {
                let Some(e) = s.next_event() else {
                    missed.fetch_add(1_000_000, Ordering::Relaxed); // a reader lost its stream
                    return;
                };
                if let Some(prev) = last {
                    missed.fetch_add(e.id().saturating_sub(prev + 1), Ordering::Relaxed);
                }
                last = Some(e.id());
                delivered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // Churners: streams over either listener that stay a while and leave, politely or with
    // a reset; long polls; garbage.
    for n in 0..churners {
        let (stop, churned) = (stop.clone(), churned.clone());
        threads.push(std::thread::spawn(move || {
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (n as u64 + 1);
            while !stop.load(Ordering::Relaxed) {
                match next(&mut rng) % 5 {
                    0 | 1 => {
                        let over_scgi = next(&mut rng).is_multiple_of(2);
                        let mut s = TcpStream::connect(if over_scgi { scgi } else { http }).unwrap();
                        if over_scgi {
                            s.write_all(&scgi_get("/ticker", &[])).unwrap();
                        } else {
                            s.write_all(b"GET /ticker HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                        }
                        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                        let mut buf = [0u8; 4096];
                        let stay = Instant::now() + Duration::from_millis(next(&mut rng) % 1500);
                        while Instant::now() < stay && s.read(&mut buf).is_ok_and(|n| n > 0) {}
                        if next(&mut rng).is_multiple_of(2) {
                            reset(s);
                        }
                    }
                    2 => {
                        let mut s = TcpStream::connect(http).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        s.write_all(b"GET /ticker HTTP/1.1\r\nX-Event-Source-Simulate: long-polling\r\n\r\n").unwrap();
                        let mut answer = Vec::new();
                        let _ = s.read_to_end(&mut answer);
                    }
                    3 => {
                        let mut s = TcpStream::connect(scgi).unwrap();
                        let garbage: Vec<u8> = (0..next(&mut rng) % 300).map(|_| next(&mut rng) as u8).collect();
                        let _ = s.write_all(&garbage);
                        if next(&mut rng).is_multiple_of(2) {
                            reset(s);
                        }
                    }
                    _ => {
                        let mut s = TcpStream::connect(http).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
                        let mut answer = Vec::new();
                        let _ = s.read_to_end(&mut answer);
                    }
                }
                churned.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let start = Instant::now();
    let mut peak_rss = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        peak_rss = peak_rss.max(t.rss_kib());
    }
    stop.store(true, Ordering::Relaxed);
    for th in threads {
        let _ = th.join();
    }
    // Everything closed: tickerd must come back to where it started.
    let settled = wait_until(Duration::from_secs(15), || {
        t.clients() == 0.0 && open_fds(&t) == fds0
    });
    std::thread::sleep(Duration::from_millis(500));
    let (rss1, fds1) = (t.rss_kib(), open_fds(&t));
    let log = t.log();
    let panics = log.matches("panicked").count();
    let m = t.metrics();
    println!(
        "soak {seconds} s: {} connections churned, {} events to {readers} readers, missed {}; \
         tickerd RSS {rss0} → peak {peak_rss} → {rss1} KiB, fds {fds0} → {fds1}, panics {panics}; \
         accepted {}",
        churned.load(Ordering::Relaxed),
        delivered.load(Ordering::Relaxed),
        missed.load(Ordering::Relaxed),
        m["tickerd_connections_accepted_total{listener=\"http\"}"]
            + m["tickerd_connections_accepted_total{listener=\"scgi\"}"],
    );
    // RSS: back near the baseline (allocator pages may stay; growth with the churn may not).
    let checks = [
        (
            "readers missed nothing",
            missed.load(Ordering::Relaxed) == 0,
        ),
        (
            "clients and descriptors back to baseline",
            settled && fds1 == fds0,
        ),
        ("RSS within 2 MiB of baseline", rss1 <= rss0 + 2048),
        ("no panic", panics == 0),
        (
            "tickerd still running",
            t.metrics().contains_key("tickerd_event_id"),
        ),
    ];
    let failed: Vec<_> = checks
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| *name)
        .collect();
    println!(
        "{} passed, {} failed",
        checks.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        eprintln!("soak failed: {failed:?}");
        std::process::exit(1);
    }
}
