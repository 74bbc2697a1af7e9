//! tickerd under a service manager, played by the test: listening sockets the test holds and
//! passes as systemd's socket activation does (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`),
//! a plain stop and start on them that refuses nobody, and the notifications tickerd sends to
//! `NOTIFY_SOCKET` (ready, watchdog, reloading around a live upgrade, stopping).

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::clients::eventsource::{EsLog, EventSource};
use crate::support::clients::probe::Prober;
use crate::support::clients::{install, install_bytes, symbol_and_price, wait_log_line, Via};
use crate::support::*;

/// Listening sockets held by the test, as systemd holds a socket unit's: TCP for HTTP, a Unix
/// socket for SCGI.
struct Held {
    http: socket2::Socket,
    http_addr: std::net::SocketAddr,
    scgi: socket2::Socket,
    path: PathBuf,
    _dir: TempDir,
}

fn hold(what: &str) -> Held {
    use socket2::{Domain, SockAddr, Socket, Type};
    let dir = TempDir::new(what);
    let path = dir.join("scgi.sock");
    let scgi = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
    scgi.bind(&SockAddr::unix(&path).unwrap()).unwrap();
    scgi.listen(4096).unwrap();
    let http = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    http.set_reuse_address(true).unwrap();
    http.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    http.listen(4096).unwrap();
    let http_addr = http.local_addr().unwrap().as_socket().unwrap();
    Held {
        http,
        http_addr,
        scgi,
        path,
        _dir: dir,
    }
}

impl Held {
    /// tickerd started as systemd starts a socket-activated service: the listeners as fds 3
    /// and 4 in `order` ("http" or "scgi" each), named with `LISTEN_FDNAMES` or not.
    fn start(&self, order: [&str; 2], named: bool, args: &[&str]) -> Tickerd {
        let fd = |role: &str| match role {
            "http" => self.http.as_raw_fd(),
            _ => self.scgi.as_raw_fd(),
        };
        let mut env = vec![("LISTEN_FDS".to_string(), Some("2".to_string()))];
        env.push((
            "LISTEN_FDNAMES".into(),
            named.then(|| format!("{}:{}", order[0], order[1])),
        ));
        Tickerd::start_as(
            args,
            &Spawn {
                env,
                own_pid_env: vec!["LISTEN_PID"],
                fds: vec![fd(order[0]), fd(order[1])],
                log_filter: Some(LOG_REQUESTS.into()),
                ..Spawn::default()
            },
        )
    }

    /// Says tickerd took both listeners from systemd, in place of the command line's.
    fn check_inherited(&self, t: &Tickerd) {
        let listening = wait_log_line(t, "listening:", 1, Duration::from_secs(5));
        let log = t.log();
        let http = format!(
            "http listener {} inherited from systemd (LISTEN_FDS): it replaces the --http address",
            self.http_addr
        );
        let scgi = format!(
            "scgi listener unix:{} inherited from systemd (LISTEN_FDS): it replaces the --scgi address",
            self.path.display()
        );
        assert!(log.contains(&http), "{http:?} not in {log}");
        assert!(log.contains(&scgi), "{scgi:?} not in {log}");
        assert_eq!(
            listening.matches("127.0.0.1:").count(),
            1,
            "no listener of its own beside the inherited ones: {listening}"
        );
        assert_eq!(t.http, Some(self.http_addr), "{listening}");
    }
}

fn unix_stream(path: &Path, request: &[u8]) -> SseReader<UnixStream> {
    use std::io::Write;
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    SseReader::new(s)
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[test]
fn socket_activated_listeners_serve_both_protocols_and_the_socket_file_outlives_tickerd() {
    let held = hold("activation");
    // Named, in the order opposite to the unnamed rule's (SCGI first).
    let mut t = held.start(["http", "scgi"], true, &["--tick-ms", "50"]);
    held.check_inherited(&t);

    let mut http = http_stream(held.http_addr, "/ticker", &[]);
    let mut scgi = unix_stream(&held.path, &scgi_get("/ticker", &[]));
    for s in [&mut http as &mut dyn Events, &mut scgi] {
        let first = s.next().id();
        for k in 1..5 {
            assert_eq!(s.next().id(), first + k, "consecutive ids");
        }
    }
    let json = {
        let mut s = unix_stream(
            &held.path,
            &scgi_get("/ticker", &[("QUERY_STRING", "symbols=TICK")]),
        );
        s.next_event().unwrap().data
    };
    assert_eq!(symbol_and_price(&json).unwrap().0, Some("TICK"), "{json}");

    t.terminate_within(Duration::from_secs(5));
    assert!(
        is_socket(&held.path),
        "tickerd must not remove a socket file systemd made"
    );
    // Still listening (the test holds it): a connection waits in the backlog.
    UnixStream::connect(&held.path).expect("the held socket still takes connections");
    std::net::TcpStream::connect(held.http_addr).expect("so does the held TCP listener");
}

/// Reading the next event of either kind of stream.
trait Events {
    fn next(&mut self) -> SseEvent;
}

impl<S: std::io::Read> Events for SseReader<S> {
    fn next(&mut self) -> SseEvent {
        self.next_event().expect("an event")
    }
}

#[test]
fn a_stop_and_start_on_held_sockets_refuses_nobody_and_browsers_miss_nothing() {
    let held = hold("restart");
    let args = [
        "--tick-ms",
        "0",
        "--retry-ms",
        "100",
        "--symbols",
        "TICK=10.00,AAA=20.00",
    ];
    // Unnamed: the first is SCGI, the second HTTP.
    let mut a = held.start(["scgi", "http"], false, &args);
    held.check_inherited(&a);
    let http = Via::Http(held.http_addr);
    let unix = Via::ScgiUnix(held.path.clone());
    let browsers = [
        EventSource::start(http.clone(), "/ticker"),
        EventSource::start(http.clone(), "/ticker?symbols=TICK,AAA"),
        EventSource::start(unix.clone(), "/ticker?symbols=AAA,TICK"),
        EventSource::start(unix.clone(), "/ticker?symbols=AAA"),
    ];
    let (status, body) = a.publish("TICK=11.11&AAA=21.21");
    assert_eq!(status, 200, "{body}");
    let first_batch: u64 = body.lines().next().unwrap().parse().unwrap();
    for b in &browsers {
        assert!(
            b.wait(Duration::from_secs(10), |l| l.last_id()
                == Some(first_batch)
                || (b.path == "/ticker"
                    && l.last_id() == Some(first_batch - 1))),
            "{} {}: {:?}",
            b.via.name(),
            b.path,
            b.log()
        );
    }

    // Connections every 3 ms to both listeners, through the restart.
    let prober = Prober::start(
        vec![
            (http.clone(), "/symbols?limit=1".into()),
            (unix.clone(), "/symbols?limit=1".into()),
        ],
        Duration::from_millis(3),
    );
    assert!(wait_until(Duration::from_secs(10), || prober
        .report()
        .ok
        .iter()
        .all(|&n| n >= 10)));

    // Stop; nobody accepts for a while; a publish is sent meanwhile; start again.
    a.terminate_within(Duration::from_secs(5));
    let stopped = Instant::now();
    assert!(is_socket(&held.path), "the socket file stays");
    let gap_publish = {
        let addr = held.http_addr;
        std::thread::spawn(move || {
            let req = format!(
                "POST /publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Length: 10\r\n\r\nTICK=12.12"
            );
            http_request(addr, &req)
        })
    };
    std::thread::sleep(Duration::from_millis(400));
    let waiting = prober.report();
    let b = held.start(["scgi", "http"], false, &args);
    let restarted = stopped.elapsed();
    held.check_inherited(&b);
    let (status, _, body) = gap_publish.join().unwrap();
    assert_eq!(status, 200, "the publish sent while no tickerd ran: {body}");
    let gap_id: u64 = body.lines().next().unwrap().parse().unwrap();
    assert!(gap_id > first_batch, "the new run's ids are above the old");
    let (status, body) = b.publish("AAA=22.22");
    assert_eq!(status, 200, "{body}");
    let last_batch: u64 = body.lines().next().unwrap().parse().unwrap();

    // Every browser came back once, with its last id, and got what it lacked.
    for br in &browsers {
        let wants_aaa = br.path.contains("AAA");
        let done = |l: &EsLog| match wants_aaa {
            true => l.last_id() == Some(last_batch),
            false => l.last_id() == Some(gap_id),
        };
        assert!(
            br.wait(Duration::from_secs(10), done),
            "{} {}: {:?}",
            br.via.name(),
            br.path,
            br.log()
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let report = prober.finish();
    for br in browsers {
        let (via, path) = (br.via.name(), br.path.clone());
        let l = br.stop();
        assert_eq!(l.connections(), 2, "{via} {path}: one reconnection: {l:?}");
        assert_eq!(l.ends[0], "EOF", "{via} {path}: the stream ended cleanly");
        assert!(
            l.refused.is_empty() && l.failed.is_empty(),
            "{via} {path}: {l:?}"
        );
        let before = l.of(0).last().unwrap().id;
        assert_eq!(
            l.sent[1],
            Some(before),
            "{via} {path}: resumed from its last id"
        );
        for w in l.events.windows(2) {
            assert!(w[0].id < w[1].id, "{via} {path}: ascending: {l:?}");
        }
        let after: Vec<(u64, &str)> = l.of(1).iter().map(|g| (g.id, g.data.as_str())).collect();
        if path != "/ticker?symbols=AAA" {
            assert!(
                after
                    .iter()
                    .any(|(id, data)| *id == gap_id && data.contains("12.12")),
                "{via} {path}: the update published while nobody accepted: {after:?}"
            );
        }
        if path.contains("AAA") {
            assert!(
                after
                    .iter()
                    .any(|(id, data)| *id == last_batch && data.contains("22.22")),
                "{via} {path}: {after:?}"
            );
        }
    }
    assert!(report.refused.is_empty(), "refused: {:?}", report.refused);
    assert!(report.failed.is_empty(), "not 200: {:?}", report.failed);
    assert_eq!(report.answered(), report.opened_total());
    let waited = waiting.opened_total() - waiting.answered();
    eprintln!(
        "restart: nobody accepted for {restarted:?}; {} connections during the run, {} of them \
         waiting in the backlog when the new tickerd started, all answered 200; the slowest \
         waited {:?}",
        report.opened_total(),
        waited,
        report.slowest
    );
    assert!(
        waited >= 20 && report.slowest >= Duration::from_millis(300),
        "connections did wait in the backlog: {waited}, {:?}",
        report.slowest
    );
    let logged = b.requests_logged();
    assert!(
        logged
            .iter()
            .filter(|(kind, id)| kind == "Stream" && id.is_some())
            .count()
            >= 4,
        "the new run saw the browsers' Last-Event-IDs: {logged:?}"
    );
}

/// Datagrams sent to a Unix socket of the test's, as systemd's notify socket gets them.
struct Notifications {
    got: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
}

impl Notifications {
    fn listen(socket: UnixDatagram) -> Notifications {
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    g.lock().unwrap().push((Instant::now(), text));
                }
            }
        });
        Notifications { got, stop }
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.got.lock().unwrap().clone()
    }

    /// Messages other than the watchdog's, in order.
    fn states(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .map(|(_, m)| m)
            .filter(|m| m != "WATCHDOG=1\n")
            .collect()
    }

    fn watchdogs(&self) -> Vec<Instant> {
        self.all()
            .into_iter()
            .filter(|(_, m)| m == "WATCHDOG=1\n")
            .map(|(at, _)| at)
            .collect()
    }

    fn wait_states(&self, n: usize, within: Duration) -> Vec<String> {
        wait_until(within, || self.states().len() >= n);
        self.states()
    }
}

impl Drop for Notifications {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct passed.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// A copy of tickerd in `dir`, which a live upgrade runs again (and a test may replace).
fn copy_of_tickerd(dir: &Path) -> PathBuf {
    let exe = dir.join("tickerd");
    install(Path::new(env!("CARGO_BIN_EXE_tickerd")), &exe);
    exe
}

#[test]
fn notifications_ready_watchdog_reloading_around_an_upgrade_and_stopping() {
    let dir = TempDir::new("notify");
    let socket_path = dir.join("notify.sock");
    let notes = Notifications::listen(UnixDatagram::bind(&socket_path).unwrap());
    let exe = copy_of_tickerd(&dir);
    let mut t = Tickerd::start_as(
        &["--tick-ms", "50"],
        &Spawn {
            exe: Some(exe.clone()),
            env: vec![
                (
                    "NOTIFY_SOCKET".into(),
                    Some(socket_path.display().to_string()),
                ),
                ("WATCHDOG_USEC".into(), Some("200000".into())),
                ("WATCHDOG_PID".into(), None),
            ],
            ..Spawn::default()
        },
    );
    let states = notes.wait_states(1, Duration::from_secs(5));
    assert_eq!(states[0], "READY=1\nSTATUS=serving 1 symbols\n");

    // The watchdog, every half of WATCHDOG_USEC.
    assert!(
        wait_until(Duration::from_secs(5), || notes.watchdogs().len() >= 8),
        "WATCHDOG=1 repeatedly: {:?}",
        notes.all()
    );
    let pings = notes.watchdogs();
    let mut gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    eprintln!("watchdog gaps (WATCHDOG_USEC 200 ms): {gaps:?}");
    let median = gaps[gaps.len() / 2];
    assert!(
        median >= Duration::from_millis(70) && median <= Duration::from_millis(150),
        "about every 100 ms: {gaps:?}"
    );

    // A live upgrade: RELOADING=1 with the monotonic clock, then READY=1 from the new binary.
    let before = monotonic_us();
    t.signal(libc::SIGUSR2);
    wait_log_line(&t, "upgrade: took over", 1, Duration::from_secs(30));
    let states = notes.wait_states(3, Duration::from_secs(5));
    let after = monotonic_us();
    let reloading = &states[1];
    let usec: u64 = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|r| r.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{reloading:?}"))
        .parse()
        .unwrap();
    assert!(
        (before..=after).contains(&usec),
        "MONOTONIC_USEC {usec} is the time of the signal ({before}..{after})"
    );
    assert_eq!(states[2], "READY=1\nSTATUS=serving 1 symbols\n");
    let pings = notes.watchdogs().len();
    assert!(
        wait_until(Duration::from_secs(5), || notes.watchdogs().len()
            >= pings + 3),
        "the new binary goes on with the watchdog"
    );

    // A refused upgrade: RELOADING=1, then READY=1 again, from the same process.
    install_bytes(b"#!/bin/sh\necho 'not this one' >&2\nexit 1\n", &exe);
    t.signal(libc::SIGUSR2);
    wait_log_line(&t, "upgrade refused", 1, Duration::from_secs(15));
    let states = notes.wait_states(5, Duration::from_secs(5));
    assert!(states[3].starts_with("RELOADING=1\n"), "{states:?}");
    assert_eq!(states[4], "READY=1\nSTATUS=upgrade refused; serving\n");

    t.terminate_within(Duration::from_secs(5));
    let states = notes.wait_states(6, Duration::from_secs(5));
    assert_eq!(states[5], "STOPPING=1\n");
    assert_eq!(states.len(), 6, "{states:?}");
    assert!(!t.log().contains("sd_notify"), "{}", t.log());
}

#[test]
fn the_watchdog_pings_only_for_the_pid_it_names() {
    for (own, expect_pings) in [(true, true), (false, false)] {
        let dir = TempDir::new("watchdog");
        let socket_path = dir.join("notify.sock");
        let notes = Notifications::listen(UnixDatagram::bind(&socket_path).unwrap());
        let mut env = vec![
            (
                "NOTIFY_SOCKET".into(),
                Some(socket_path.display().to_string()),
            ),
            ("WATCHDOG_USEC".into(), Some("100000".into())),
        ];
        if !own {
            env.push(("WATCHDOG_PID".into(), Some("1".into())));
        }
        let mut t = Tickerd::start_as(
            &["--tick-ms", "0"],
            &Spawn {
                env,
                own_pid_env: if own { vec!["WATCHDOG_PID"] } else { vec![] },
                ..Spawn::default()
            },
        );
        notes.wait_states(1, Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(600));
        let pings = notes.watchdogs().len();
        match expect_pings {
            true => assert!(pings >= 4, "WATCHDOG_PID is ours: {pings} pings"),
            false => assert_eq!(pings, 0, "WATCHDOG_PID is another process's"),
        }
        assert_eq!(notes.states()[0], "READY=1\nSTATUS=serving 1 symbols\n");
        t.terminate_within(Duration::from_secs(5));
    }
}

#[test]
fn an_abstract_notify_socket_gets_the_notifications() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("tickerd-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let notes = Notifications::listen(UnixDatagram::bind_addr(&addr).unwrap());
    let mut t = Tickerd::start_as(
        &["--tick-ms", "0"],
        &Spawn {
            env: vec![
                ("NOTIFY_SOCKET".into(), Some(format!("@{name}"))),
                ("WATCHDOG_USEC".into(), Some("100000".into())),
            ],
            ..Spawn::default()
        },
    );
    let states = notes.wait_states(1, Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(500));
    let warnings = t.log().matches("sd_notify:").count();
    t.terminate_within(Duration::from_secs(5));
    assert_eq!(
        states.first().map(String::as_str),
        Some("READY=1\nSTATUS=serving 1 symbols\n"),
        "NOTIFY_SOCKET=@{name} (an abstract socket, sd_notify(3)) got nothing; tickerd logged \
         {warnings} sd_notify warnings in 0.5 s:\n{}",
        t.log()
    );
}

#[test]
fn without_notify_socket_nothing_breaks() {
    let dir = TempDir::new("no-notify");
    let exe = copy_of_tickerd(&dir);
    let mut t = Tickerd::start_as(
        &["--tick-ms", "50"],
        &Spawn {
            exe: Some(exe),
            env: vec![
                ("NOTIFY_SOCKET".into(), None),
                ("WATCHDOG_USEC".into(), Some("100000".into())),
            ],
            ..Spawn::default()
        },
    );
    let mut s = http_stream(t.http(), "/ticker", &[]);
    let first = s.next_event().unwrap().id();
    t.signal(libc::SIGUSR2);
    wait_log_line(
        &t,
        "upgrade: took over 1 connections (0 lost)",
        1,
        Duration::from_secs(30),
    );
    for k in 1..10 {
        assert_eq!(s.next_event().unwrap().id(), first + k);
    }
    t.terminate_within(Duration::from_secs(5));
    assert!(!t.log().contains("sd_notify"), "{}", t.log());
}

#[test]
fn a_notify_socket_that_is_not_there_is_warned_about_once_not_at_every_watchdog_ping() {
    let dir = TempDir::new("notify-gone");
    let mut t = Tickerd::start_as(
        &["--tick-ms", "0"],
        &Spawn {
            env: vec![
                (
                    "NOTIFY_SOCKET".into(),
                    Some(dir.join("nobody.sock").display().to_string()),
                ),
                ("WATCHDOG_USEC".into(), Some("100000".into())),
            ],
            ..Spawn::default()
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    let mut s = http_stream(t.http(), "/ticker", &[]);
    assert!(s.next_event().is_some(), "serving");
    t.terminate_within(Duration::from_secs(5));
    let log = t.log();
    let warnings = log.lines().filter(|l| l.contains("sd_notify")).count();
    assert!(
        (1..=2).contains(&warnings),
        "one warning (and perhaps one for STOPPING), not one every 50 ms: {warnings}\n{log}"
    );
}
