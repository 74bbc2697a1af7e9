//! Live upgrade (SIGUSR2): the binary at the path tickerd was started from checks itself
//! (`--check`) while the old one serves, then replaces it in place (same pid) and takes over
//! every connection. Under thousands of streams over HTTP, SCGI and lighttpd, long polls,
//! half-sent requests and connection attempts every few ms: same process, same connections,
//! every event in sequence, everything answered. A failing or hanging check changes nothing;
//! a record the new binary cannot read ends the streams cleanly and browsers resume. And the
//! pause in delivery an upgrade costs, measured.
//!
//! The measurement at 10,000 streams (the default run uses 2,000):
//!
//! ```sh
//! TICKERD_UPGRADE_STREAMS=10000 cargo test --release --test e2e -- upgrade::pause --nocapture
//! ```
//!
//! (`TICKERD_UPGRADE_ROUNDS=N` for more upgrades than 3.)

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::clients::eventsource::EventSource;
use crate::support::clients::fleet::{Fleet, Spec, Stream};
use crate::support::clients::probe::{LongPoller, Prober};
use crate::support::clients::{accepted, install, install_bytes, log_count, wait_log_line, Via};
use crate::support::*;

/// A copy of tickerd in a scratch directory: what the process under test was started from,
/// and so what a live upgrade runs again.
struct Binary {
    path: PathBuf,
    _dir: TempDir,
}

impl Binary {
    fn new(what: &str) -> Binary {
        let dir = TempDir::new(what);
        let path = dir.join("tickerd");
        install(Path::new(env!("CARGO_BIN_EXE_tickerd")), &path);
        Binary { path, _dir: dir }
    }

    fn inode(&self) -> u64 {
        std::fs::metadata(&self.path).unwrap().ino()
    }

    /// Puts `contents` at the path by rename, as a package upgrade does (the running
    /// binary's file is left to the process that runs it).
    fn replace(&self, contents: &[u8]) -> u64 {
        install_bytes(contents, &self.path);
        self.inode()
    }

    /// A rebuilt binary: cargo's, with a few bytes appended so that the file differs.
    fn replace_with_rebuilt(&self) -> u64 {
        let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_tickerd")).unwrap();
        bytes.extend_from_slice(b"\0rebuilt for the upgrade test\0");
        self.replace(&bytes)
    }

    fn spawn(&self) -> Spawn {
        Spawn {
            exe: Some(self.path.clone()),
            ..Spawn::default()
        }
    }
}

/// The inode of the file a process runs (its `/proc/PID/exe`, even when the path now names
/// another file).
fn exe_inode(pid: i32) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/exe")).unwrap().ino()
}

/// What the new binary said when it took over.
#[derive(Debug)]
struct TookOver {
    connections: usize,
    lost: usize,
    /// How long taking over took, as logged.
    took: String,
    /// Wall-clock ms from the old binary's record to the end of taking over.
    since_ms: f64,
    /// When the test saw the line.
    seen: Instant,
    line: String,
}

/// Sends SIGUSR2 and waits for the `n`th "took over" line.
fn upgrade(t: &Tickerd, n: usize) -> TookOver {
    let pid = t.pid();
    t.signal(libc::SIGUSR2);
    let line = wait_log_line(t, "upgrade: took over", n, Duration::from_secs(60));
    let seen = Instant::now();
    assert_eq!(t.pid(), pid);
    assert!(
        crate::support::leftovers::running(pid),
        "the same process runs on"
    );
    // "upgrade: took over N connections (K lost) in D; X ms since the previous binary …"
    let rest = line.split("upgrade: took over ").nth(1).unwrap();
    let (connections, rest) = rest.split_once(" connections (").unwrap();
    let (lost, rest) = rest.split_once(" lost) in ").unwrap();
    let (took, rest) = rest.split_once("; ").unwrap();
    let since = rest.split_once(" ms since").unwrap().0;
    TookOver {
        connections: connections.parse().unwrap(),
        lost: lost.parse().unwrap(),
        took: took.to_string(),
        since_ms: since.parse().unwrap(),
        seen,
        line: line.clone(),
    }
}

/// The `n`th "handing … over" line's state size and gathering time.
fn handing(t: &Tickerd, n: usize) -> String {
    let line = wait_log_line(t, "upgrade: handing", n, Duration::from_secs(5));
    line.split_once(" over to ")
        .and_then(|(_, r)| r.split_once(" ("))
        .map(|(_, r)| r.trim_end_matches(')').to_string())
        .unwrap_or(line)
}

/// The longest gaps between consecutive events of the timed streams that ended in
/// `from..=to`: (max, p99, p50, how many streams).
fn gaps(streams: &[Stream], from: Instant, to: Instant) -> (Duration, Duration, Duration, usize) {
    let mut longest: Vec<Duration> = streams
        .iter()
        .filter(|s| s.timed)
        .map(|s| s.longest_gap_in(from, to).unwrap_or_default())
        .collect();
    longest.sort();
    let at = |q: f64| longest[((longest.len() - 1) as f64 * q) as usize];
    (at(1.0), at(0.99), at(0.5), longest.len())
}

fn assert_healthy(fleet: &Fleet, what: &str) {
    let streams = fleet.streams();
    let sick: Vec<&Stream> = streams.iter().filter(|s| !s.healthy()).collect();
    assert!(
        sick.is_empty(),
        "{what}: {} of {} streams broke; the first: {:?}",
        sick.len(),
        streams.len(),
        sick.first()
    );
}

/// Waits until every stream has had an event since `before` (by [`Stream::n`]).
fn wait_all_moved(fleet: &Fleet, before: &[u64], what: &str) -> Duration {
    fleet
        .wait_all(Duration::from_secs(30), what, |s| s.events > before[s.n])
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn five_upgrades_in_a_row_under_2000_streams_keep_every_connection_and_every_event() {
    // Thousands of streams, sharing two cores with tickerd.
    let _heavy = heavy();
    let began = Instant::now();
    let bin = Binary::new("upgrade");
    // Three symbols that all move each tick (20 ticks/s): a symbol's ids go up by 3.
    let t = Tickerd::start_as(
        &[
            "--tick-ms",
            "50",
            "--symbols",
            "TICK,AAA,BBB",
            "--request-timeout-s",
            "120",
        ],
        &bin.spawn(),
    );
    let pid = t.pid();
    let front = Lighttpd::start(t.scgi());
    let (http, scgi, lt) = (
        Via::Http(t.http()),
        Via::Scgi(t.scgi()),
        Via::Front(front.addr),
    );

    // 2,000 streams: 1,000 over HTTP, 800 over SCGI, 200 through lighttpd; plain ones of the
    // default symbol, the whole universe, and parts of it; every 8th read as data arrives.
    let mut fleet = Fleet::start(3, 4, Duration::from_millis(250), Duration::from_millis(60));
    let kinds: [&[&str]; 5] = [&[], &[], &["TICK", "AAA", "BBB"], &["BBB", "AAA"], &["AAA"]];
    let specs: Vec<Spec> = (0..2000)
        .map(|i| {
            let via = match i % 10 {
                0 => lt.clone(),
                1..=5 => http.clone(),
                _ => scgi.clone(),
            };
            let spec = match kinds[(i / 10) % kinds.len()] {
                [] => Spec::plain(via, "TICK"),
                symbols => Spec::of(via, symbols),
            };
            spec.timed(i % 8 == 0)
        })
        .collect();
    let n = specs.len();
    fleet.open(specs);
    let opened = fleet
        .wait_all(Duration::from_secs(90), "streaming", |s| {
            s.status == 200 && s.events >= 4
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_healthy(&fleet, "before any upgrade");

    // Two requests sent in part: the rest comes between upgrades and after the last.
    let mut half_http = TcpStream::connect(t.http()).unwrap();
    half_http
        .write_all(b"GET /ticker?symbols=TICK,AAA,BBB HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let scgi_req = scgi_get("/ticker", &[("QUERY_STRING", "symbols=AAA")]);
    let mut half_scgi = TcpStream::connect(t.scgi()).unwrap();
    half_scgi.write_all(&scgi_req[..10]).unwrap();
    assert!(wait_until(Duration::from_secs(10), || t.metrics()
        ["tickerd_clients{state=\"reading_request\"}"]
        == 2.0));

    // From here on every connection to tickerd is counted: the scrape's own, the probes',
    // the long polls' (a front-end opens one SCGI connection per request).
    let (http0, scgi0) = accepted(&t);
    let prober = Prober::start(
        vec![
            (http.clone(), "/symbols?limit=1".into()),
            (scgi.clone(), "/symbols?limit=1".into()),
            (lt.clone(), "/symbols?limit=1".into()),
        ],
        Duration::from_millis(5),
    );
    let pollers = [
        LongPoller::start(http.clone(), "/ticker?symbols=AAA"),
        LongPoller::start(scgi.clone(), "/ticker"),
        LongPoller::start(lt.clone(), "/ticker?symbols=TICK,BBB"),
    ];
    assert!(wait_until(Duration::from_secs(10), || {
        prober.report().ok.iter().all(|&k| k >= 5)
            && pollers.iter().all(|p| p.report().answered >= 3)
    }));

    let mut inode = exe_inode(pid);
    assert_eq!(inode, bin.inode());
    let mut report = Vec::new();
    for k in 1..=5 {
        if k == 2 {
            half_http
                .write_all(b"Accept: text/event-stream\r\n")
                .unwrap();
            half_scgi.write_all(&scgi_req[10..20]).unwrap();
        }
        let rebuilt = (k == 3).then(|| bin.replace_with_rebuilt());
        let before = fleet.events();
        let sent = Instant::now();
        let took = upgrade(&t, k);
        let signal_to_took = took.seen - sent;
        assert_eq!(took.lost, 0, "{}", took.line);
        // The streams, the half-sent requests, and whatever probes were in flight.
        assert!(took.connections >= n + 2, "{}", took.line);
        let now_inode = exe_inode(pid);
        match rebuilt {
            Some(new) => {
                assert_ne!(new, inode);
                assert_eq!(now_inode, new, "the process runs the file now at the path");
            }
            None => assert_eq!(now_inode, inode, "the same file as before"),
        }
        inode = now_inode;
        let resumed = wait_all_moved(&fleet, &before, &format!("upgrade {k}"));
        std::thread::sleep(Duration::from_millis(300));
        let (max, p99, p50, timed) = gaps(&fleet.streams(), sent, Instant::now());
        report.push(format!(
            "upgrade {k}{}: signal to \"took over\" {signal_to_took:.0?}, record of {}, taken over in \
             {}, {:.1} ms since handed over; every stream had an event {resumed:.0?} after the \
             line; longest gap between events (ticks every 50 ms) over {timed} streams: max \
             {max:.0?}, p99 {p99:.0?}, p50 {p50:.0?}",
            if rebuilt.is_some() { " (rebuilt binary)" } else { "" },
            handing(&t, k),
            took.took,
            took.since_ms,
        ));
    }
    assert_healthy(&fleet, "after five upgrades");

    // The half-sent requests, finished now, are answered as any other.
    half_http.write_all(b"\r\n").unwrap();
    half_http
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut r = SseReader::new(half_http);
    assert_eq!(r.status, 200, "{}", r.head);
    let first = r.next_event().unwrap().id();
    let ids: Vec<u64> = (0..8).map(|_| r.next_event().unwrap().id()).collect();
    assert_eq!(
        ids[2],
        first + 3,
        "the snapshot of three, then every id: {ids:?}"
    );
    for w in ids.windows(2).skip(2) {
        assert_eq!(w[1], w[0] + 1, "{ids:?}");
    }
    half_scgi.write_all(&scgi_req[20..]).unwrap();
    half_scgi
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut r = SseReader::new(half_scgi);
    assert_eq!(r.status, 200, "{}", r.head);
    let ids: Vec<u64> = (0..4).map(|_| r.next_event().unwrap().id()).collect();
    assert!(r.next_event().unwrap().data.contains("\"AAA\""));
    for w in ids.windows(2).skip(1) {
        assert_eq!(w[1], w[0] + 3, "AAA's every update: {ids:?}");
    }

    // Every attempt answered 200, every long poll answered, and no connection accepted
    // beyond those: no stream reconnected.
    let polls: Vec<_> = pollers
        .into_iter()
        .map(|p| (p.via.clone(), p.finish()))
        .collect();
    let probes = prober.finish();
    assert!(probes.refused.is_empty(), "refused: {:?}", probes.refused);
    assert!(probes.failed.is_empty(), "not 200: {:?}", probes.failed);
    for (via, p) in &polls {
        assert!(p.failed.is_empty(), "{}: {:?}", via.name(), p.failed);
        assert!(p.answered >= 10, "{}: {p:?}", via.name());
    }
    let (http1, scgi1) = accepted(&t);
    let polled = |l: &str| -> usize {
        polls
            .iter()
            .filter(|(v, _)| v.listener() == l)
            .map(|(_, p)| p.opened)
            .sum()
    };
    assert_eq!(
        http1 - http0,
        (probes.opened[0] + polled("http") + 1) as u64,
        "HTTP connections accepted: the probes', the long polls', the last scrape"
    );
    assert_eq!(
        scgi1 - scgi0,
        (probes.opened[1] + probes.opened[2] + polled("scgi")) as u64,
        "SCGI connections accepted: the probes' and long polls' (also through lighttpd)"
    );
    assert_healthy(&fleet, "at the end");
    let streams = fleet.streams();
    let events: u64 = streams.iter().map(|s| s.events).sum();
    let log = t.log();
    assert!(
        !log.contains("panicked") && !log.contains("upgrade refused"),
        "{log}"
    );
    assert!(!front.log().contains("gw_backend"), "{}", front.log());
    eprintln!(
        "{n} streams ({} through lighttpd) open and streaming in {opened:.1?}; {}\n\
         {} connection attempts during the upgrades, all answered 200 (slowest {:.0?}); \
         long polls answered: {:?}; {events} events checked; no stream reconnected; total {:.1?}",
        n / 10,
        report.join("\n"),
        probes.opened_total(),
        probes.slowest,
        polls
            .iter()
            .map(|(v, p)| format!("{} {} (slowest {:.0?})", v.name(), p.answered, p.slowest))
            .collect::<Vec<_>>(),
        began.elapsed()
    );
}

#[test]
fn long_polls_and_half_sent_requests_wait_across_an_upgrade() {
    // No ticks: long polls with nothing due stay parked through the upgrade, and are answered
    // by the new binary when a price comes.
    let bin = Binary::new("upgrade-polls");
    let t = Tickerd::start_as(
        &["--tick-ms", "0", "--symbols", "TICK=1.00,AAA=2.00"],
        &bin.spawn(),
    );
    let (status, body) = t.publish("TICK=1.50&AAA=2.50");
    assert_eq!(status, 200, "{body}");
    let current: u64 = body.lines().next().unwrap().parse().unwrap();
    let lei = current.to_string();
    let poll = |via: &Via, path: &str| {
        let mut s = via.connect().unwrap();
        s.write_all(&via.get(
            path,
            &[
                ("X-Event-Source-Simulate", "Long-Polling"),
                ("Last-Event-ID", &lei),
            ],
        ))
        .unwrap();
        s
    };
    let (http, scgi) = (Via::Http(t.http()), Via::Scgi(t.scgi()));
    let mut polls = vec![
        poll(&http, "/ticker?symbols=TICK,AAA"),
        poll(&scgi, "/ticker?symbols=AAA"),
        poll(&http, "/ticker"),
    ];
    let mut half = TcpStream::connect(t.http()).unwrap();
    half.write_all(b"GET /ticker?symbols=AAA HTTP/1.1\r\n")
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        let m = t.metrics();
        m["tickerd_clients{state=\"parked\"}"] == 3.0
            && m["tickerd_clients{state=\"reading_request\"}"] == 1.0
    }));
    let took = upgrade(&t, 1);
    // The polls and the half-sent request (and perhaps a scrape still lingering).
    assert!(took.connections >= 4 && took.lost == 0, "{}", took.line);
    let m = t.metrics();
    assert_eq!(m["tickerd_clients{state=\"parked\"}"], 3.0, "still waiting");
    half.write_all(b"Host: t\r\n\r\n").unwrap();
    half.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut stream = SseReader::new(half);
    assert_eq!(stream.status, 200);
    assert_eq!(stream.next_event().unwrap().id(), current, "AAA's snapshot");

    let (status, body) = t.publish("TICK=1.75&AAA=2.75");
    assert_eq!(status, 200, "{body}");
    let last: u64 = body.lines().next().unwrap().parse().unwrap();
    let mut answers = Vec::new();
    for s in &mut polls {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let r = read_response(s);
        answers.push((r.status, r.body));
    }
    let expect = [
        format!(
            "id: {}\ndata: {{\"symbol\":\"TICK\",\"price\":\"1.75\"}}\n\nid: {last}\ndata: {{\"symbol\":\"AAA\",\"price\":\"2.75\"}}\n\n",
            last - 1
        ),
        format!("id: {last}\ndata: {{\"symbol\":\"AAA\",\"price\":\"2.75\"}}\n\n"),
        format!("id: {}\ndata: 1.75\n\n", last - 1),
    ];
    for ((status, body), want) in answers.iter().zip(&expect) {
        assert_eq!(*status, 200);
        assert!(body.ends_with(want.as_str()), "{body:?} ends with {want:?}");
    }
    let e = stream.next_event().unwrap();
    assert_eq!(
        (e.id(), e.data.as_str()),
        (last, "{\"symbol\":\"AAA\",\"price\":\"2.75\"}")
    );
}

#[test]
fn a_failing_check_leaves_the_old_process_serving() {
    let bin = Binary::new("upgrade-refused");
    let t = Tickerd::start_as(&["--tick-ms", "50"], &bin.spawn());
    let pid = t.pid();
    let original = exe_inode(pid);
    let mut fleet = Fleet::start(1, 1, Duration::from_millis(100), Duration::from_millis(120));
    fleet.open(
        (0..40)
            .map(|i| match i % 2 {
                0 => Spec::plain(Via::Http(t.http()), "TICK").timed(true),
                _ => Spec::of(Via::Scgi(t.scgi()), &["TICK"]).timed(true),
            })
            .collect(),
    );
    fleet
        .wait_all(Duration::from_secs(20), "streaming", |s| s.events >= 3)
        .unwrap();

    // A "new binary" that fails its check.
    bin.replace(b"#!/bin/sh\necho 'tickerd: this build is broken' >&2\nexit 1\n");
    let before = fleet.events();
    let (http0, scgi0) = accepted(&t);
    t.signal(libc::SIGUSR2);
    let line = wait_log_line(&t, "upgrade refused", 1, Duration::from_secs(15));
    assert!(
        line.contains("--check failed (exit status: 1): tickerd: this build is broken; this process goes on serving, unchanged"),
        "{line}"
    );
    assert_eq!(
        exe_inode(pid),
        original,
        "the same process, the same binary"
    );
    wait_all_moved(&fleet, &before, "after the refusal");
    assert_healthy(&fleet, "after the refusal");
    assert_eq!(log_count(&t, "took over"), 0);

    // A check that never ends is given up after 10 s; the process serves meanwhile.
    bin.replace(b"#!/bin/sh\nexec sleep 60\n");
    let before = fleet.events();
    let sent = Instant::now();
    t.signal(libc::SIGUSR2);
    std::thread::sleep(Duration::from_secs(1));
    wait_all_moved(&fleet, &before, "while the check hangs");
    let line = wait_log_line(&t, "upgrade refused", 2, Duration::from_secs(20));
    let waited = sent.elapsed();
    assert!(line.contains("--check did not finish in 10 s"), "{line}");
    assert!(waited >= Duration::from_secs(10), "{waited:?}");
    let sleepers: Vec<_> = crate::support::leftovers::live_processes()
        .into_iter()
        .filter(|(p, _, _)| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                s.split(") ").nth(1).and_then(|r| r.split(' ').nth(1)) == Some(&pid.to_string())
            })
        })
        .collect();
    assert!(sleepers.is_empty(), "the hung check is gone: {sleepers:?}");

    // A good binary again: the process that refused twice upgrades.
    let good = bin.replace_with_rebuilt();
    let before = fleet.events();
    let took = upgrade(&t, 1);
    assert_eq!(took.lost, 0);
    assert_eq!(exe_inode(pid), good);
    wait_all_moved(&fleet, &before, "after the upgrade");
    assert_healthy(&fleet, "at the end");
    let (http1, scgi1) = accepted(&t);
    assert_eq!(
        (http1 - http0, scgi1 - scgi0),
        (1, 0),
        "no stream reconnected"
    );
    eprintln!("refused, refused after {waited:.1?}, then: {}", took.line);
}

#[test]
fn a_record_the_new_binary_cannot_read_ends_streams_cleanly_and_browsers_resume() {
    let bin = Binary::new("upgrade-version");
    let mut how = bin.spawn();
    how.env
        .push(("TICKERD_TEST_HANDOVER_VERSION".into(), Some("999".into())));
    how.log_filter = Some(LOG_REQUESTS.into());
    let t = Tickerd::start_as(&["--tick-ms", "50", "--retry-ms", "200"], &how);
    let pid = t.pid();
    let front = Lighttpd::start(t.scgi());
    let browsers: Vec<EventSource> = [
        Via::Http(t.http()),
        Via::Http(t.http()),
        Via::Scgi(t.scgi()),
        Via::Scgi(t.scgi()),
        Via::Front(front.addr),
        Via::Front(front.addr),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, via)| EventSource::start(via, ["/ticker", "/ticker?symbols=TICK"][i % 2]))
    .collect();
    for b in &browsers {
        assert!(b.wait(Duration::from_secs(10), |l| l.events.len() >= 5));
    }

    t.signal(libc::SIGUSR2);
    let line = wait_log_line(
        &t,
        "upgrade: cannot read what the previous binary handed over",
        1,
        Duration::from_secs(30),
    );
    assert!(line.contains("a record of version 999"), "{line}");
    assert_eq!(exe_inode(pid), bin.inode());
    for b in &browsers {
        assert!(
            b.wait(Duration::from_secs(15), |l| l.connections() == 2
                && l.of(1).len() >= 5),
            "{} {}: {:?}",
            b.via.name(),
            b.path,
            b.log()
        );
    }
    // The next upgrade writes this binary's own version: nothing ends.
    let took = upgrade(&t, 1);
    assert_eq!((took.connections, took.lost), (6, 0), "{}", took.line);
    let counts: Vec<usize> = browsers.iter().map(|b| b.log().events.len()).collect();
    for (b, n) in browsers.iter().zip(&counts) {
        assert!(b.wait(Duration::from_secs(10), |l| l.events.len() >= n + 5));
    }
    let logged = t.requests_logged();
    for b in browsers {
        let (via, path) = (b.via.name(), b.path.clone());
        let l = b.stop();
        assert_eq!(l.connections(), 2, "{via} {path}: {l:?}");
        let cut = l.of(0).last().unwrap().id;
        // Through lighttpd the end is its last chunk; direct, the connection's close.
        let clean = match via {
            "front" => "the last chunk",
            _ => "EOF",
        };
        assert_eq!(l.ends[0], clean, "{via} {path}: ended cleanly");
        assert_eq!(
            l.sent[1],
            Some(cut),
            "{via} {path}: came back with its last id"
        );
        assert!(
            l.refused.is_empty() && l.failed.is_empty(),
            "{via} {path}: {l:?}"
        );
        assert_eq!(l.retries, 2, "one stream head per connection");
        for c in 0..2 {
            let ids: Vec<u64> = l.of(c).iter().map(|g| g.id).collect();
            for w in ids.windows(2) {
                assert_eq!(w[1], w[0] + 1, "{via} {path}: connection {c}: {ids:?}");
            }
        }
        assert!(
            l.of(1)[0].id > cut,
            "{via} {path}: the new binary's ids start above the old ones"
        );
        assert!(
            logged.contains(&("Stream".to_string(), Some(cut))),
            "{via} {path}: tickerd saw Last-Event-ID {cut}: {logged:?}"
        );
    }
}

/// Signals that come while the new binary starts (between the exec and its handlers) must not
/// kill it: SIGHUP's and SIGUSR2's default action is to terminate, with every connection.
#[test]
fn signals_while_the_new_binary_starts_do_not_kill_it() {
    let bin = Binary::new("upgrade-signals");
    let t = Tickerd::start_as(&["--tick-ms", "20"], &bin.spawn());
    let pid = t.pid();
    let mut s = http_stream(t.http(), "/ticker", &[]);
    set_timeout(s.socket(), Duration::from_secs(10));
    let mut last = s.next_event().unwrap().id();
    for (round, sig) in [(1, libc::SIGHUP), (2, libc::SIGUSR2), (3, libc::SIGTERM)] {
        let took = log_count(&t, "upgrade: took over");
        t.signal(libc::SIGUSR2);
        // A burst of signals until the new binary says it took over: some land while it
        // starts. (SIGTERM only in the last round, and only once the old binary has handed
        // over: it would rightly stop the old one.)
        if sig == libc::SIGTERM {
            wait_log_line(&t, "upgrade: handing", round, Duration::from_secs(30));
        }
        let end = Instant::now() + Duration::from_secs(30);
        // At least one, even when the new binary was quicker than this loop.
        loop {
            assert!(Instant::now() < end, "{}", t.log());
            t.signal(sig);
            std::thread::sleep(Duration::from_micros(300));
            if log_count(&t, "upgrade: took over") != took
                || !crate::support::leftovers::running(pid)
            {
                break;
            }
        }
        if sig == libc::SIGTERM {
            // Held across the exec, it is taken by the new binary: a clean stop.
            let mut t = t;
            let status = t.wait_exit(Duration::from_secs(10));
            assert_eq!(status.map(|s| s.code()), Some(Some(0)), "{}", t.log());
            // (The log is read by a thread of the harness: it may lag the exit.)
            assert!(
                wait_until(Duration::from_secs(5), || t
                    .log()
                    .contains("stopping: closing 1 connections")),
                "{}",
                t.log()
            );
            // Every tick up to the stop, in sequence, then the end of the stream.
            for e in s.read_to_end() {
                assert_eq!(e.id(), last + 1);
                last = e.id();
            }
            assert!(s.eof, "the stream ended");
            return;
        }
        // Let any upgrade the burst asked for finish.
        let quiet = |log: &str| {
            log.matches("SIGUSR2: checking").count()
                == log.matches("upgrade: took over").count()
                    + log.matches("upgrade refused").count()
        };
        assert!(
            wait_until(
                Duration::from_secs(30),
                || !crate::support::leftovers::running(pid) || quiet(&t.log())
            ),
            "{}",
            t.log()
        );
        assert!(
            crate::support::leftovers::running(pid),
            "round {round}: signal {sig} while the new binary started killed tickerd:\n{}",
            t.log()
        );
        for _ in 0..5 {
            let id = s.next_event().expect("the stream goes on").id();
            assert_eq!(id, last + 1);
            last = id;
        }
    }
    unreachable!("the last round stops tickerd");
}

#[test]
fn pause_in_delivery_during_an_upgrade() {
    let n: usize = std::env::var("TICKERD_UPGRADE_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rounds: usize = std::env::var("TICKERD_UPGRADE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // Thousands of streams, and the pause it measures must be tickerd's.
    let _heavy = heavy();
    let began = Instant::now();
    let bin = Binary::new("upgrade-pause");
    let t = Tickerd::start_as(&["--tick-ms", "50"], &bin.spawn());
    // About 500 streams timed to the event; the rest read in sweeps.
    let every = (n / 500).max(1);
    let mut fleet = Fleet::start(1, 4, Duration::from_millis(500), Duration::from_millis(60));
    fleet.open(
        (0..n)
            .map(|i| {
                let via = match i % 2 {
                    0 => Via::Http(t.http()),
                    _ => Via::Scgi(t.scgi()),
                };
                Spec::plain(via, "TICK").timed(i % every == 0)
            })
            .collect(),
    );
    let opened = fleet
        .wait_all(Duration::from_secs(180), "streaming", |s| {
            s.status == 200 && s.events >= 2
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let mut lines = vec![format!(
        "{n} streams (HTTP and SCGI, one symbol, 20 ticks/s) open and streaming in {opened:.1?}"
    )];
    for k in 1..=rounds {
        std::thread::sleep(Duration::from_secs(1));
        let before = fleet.events();
        let sent = Instant::now();
        let took = upgrade(&t, k);
        assert_eq!((took.connections, took.lost), (n, 0), "{}", took.line);
        let resumed = wait_all_moved(&fleet, &before, &format!("upgrade {k}"));
        std::thread::sleep(Duration::from_millis(500));
        let (max, p99, p50, timed) = gaps(&fleet.streams(), sent, Instant::now());
        lines.push(format!(
            "upgrade {k}: signal to \"took over\" {:.0?}; tickerd: record of {}, taken over in {}, \
             {:.1} ms from the old binary's record to the new one serving; all {n} streams had \
             an event {resumed:.0?} after the line; longest gap between consecutive events \
             (normally 50 ms) on {timed} streams: max {max:.0?}, p99 {p99:.0?}, p50 {p50:.0?}",
            took.seen - sent,
            handing(&t, k),
            took.took,
            took.since_ms,
        ));
    }
    assert_healthy(&fleet, "after the upgrades");
    eprintln!(
        "pause in delivery during an upgrade:\n{}\ntotal {:.1?}",
        lines.join("\n"),
        began.elapsed()
    );
}
