//! Several tickerd instances sharing one feed through Redis, behind a balancing front-end
//! started from its shipped file: lighttpd (`conf/lighttpd-balance.conf`) over three
//! instances under 2,000 streams, nginx (`conf/nginx-balance.conf` as its backend file) and
//! Apache (`conf/apache-balance.conf`) over two. One instance is killed (SIGKILL); its
//! browsers come back through the front-end with their Last-Event-ID, each is sent exactly
//! what it lacks, and after more publishes every browser ends with the latest value of every
//! symbol it chose, as its stream data shows.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::support::fronts::Front;
use crate::support::redis::*;
use crate::support::*;

/// A socket that remembers whether a read failed (a reset is an end too).
struct Watched {
    s: TcpStream,
    failed: bool,
}

impl Read for Watched {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let r = self.s.read(buf);
        if let Err(e) = &r {
            if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) {
                self.failed = true;
            }
        }
        r
    }
}

/// A browser: its symbols, its current connection, the events of each connection.
struct Browser {
    symbols: Vec<String>,
    reader: SseReader<Watched>,
    connections: Vec<Vec<Update>>,
    /// What the current connection was due at once when it resumed (None: a first one).
    due_on_resume: Option<Vec<Update>>,
}

impl Browser {
    fn open(front: SocketAddr, symbols: &[String], last_id: Option<u64>) -> SseReader<Watched> {
        let s = TcpStream::connect(front).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut req = format!(
            "GET /ticker?symbols={} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n",
            symbols.join(",")
        );
        if let Some(id) = last_id {
            req.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        req.push_str("\r\n");
        (&s).write_all(req.as_bytes()).unwrap();
        let mut reader = SseReader::new(Watched { s, failed: false });
        assert_eq!(reader.status, 200, "{}", reader.head);
        reader.socket().s.set_nonblocking(true).unwrap();
        reader
    }

    fn new(front: SocketAddr, symbols: Vec<String>) -> Browser {
        Browser {
            reader: Self::open(front, &symbols, None),
            symbols,
            connections: vec![Vec::new()],
            due_on_resume: None,
        }
    }

    /// Reads what has arrived; whether anything did.
    fn pump(&mut self) -> bool {
        let mut any = false;
        while let Some(e) = self.reader.next_event() {
            self.connections.last_mut().unwrap().push(update(&e));
            any = true;
        }
        any
    }

    fn ended(&mut self) -> bool {
        self.reader.eof || self.reader.socket().failed
    }

    /// The id of the last event it got (what it sends as Last-Event-ID).
    fn last_id(&self) -> Option<u64> {
        self.connections.iter().flatten().last().map(|u| u.id)
    }

    fn current(&self) -> &[Update] {
        self.connections.last().unwrap()
    }

    /// It comes back through `front` with its last id; `due` is what it must get at once.
    fn reconnect(&mut self, front: SocketAddr, due: Vec<Update>) {
        self.reader = Self::open(front, &self.symbols, self.last_id());
        self.connections.push(Vec::new());
        self.due_on_resume = Some(due);
    }

    /// Each of its symbols at `latest`'s value.
    fn is_level(&self, latest: &BTreeMap<String, (u64, String)>) -> bool {
        let mut have = BTreeMap::new();
        for u in self.connections.iter().flatten() {
            have.insert(&u.symbol, (u.id, &u.price));
        }
        self.symbols.iter().all(|s| {
            have.get(s).map(|(id, p)| (*id, p.as_str()))
                == latest.get(s).map(|(id, p)| (*id, p.as_str()))
        })
    }
}

/// Pumps every browser until `done` holds for each, or panics after `within`.
fn pump_until(
    browsers: &mut [Browser],
    within: Duration,
    what: &str,
    done: impl Fn(&Browser) -> bool,
) {
    let end = Instant::now() + within;
    let mut waiting: Vec<usize> = (0..browsers.len()).collect();
    loop {
        let mut progress = false;
        waiting.retain(|&i| {
            progress |= browsers[i].pump();
            !done(&browsers[i])
        });
        if waiting.is_empty() {
            return;
        }
        if Instant::now() > end {
            let b = &browsers[waiting[0]];
            panic!(
                "{what}: {} browsers of {} not there after {within:?}; the first: symbols {:?}, connections {:?}",
                waiting.len(),
                browsers.len(),
                b.symbols,
                b.connections
            );
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// `n` symbols `S00`… priced 10.00 up.
fn universe(n: usize) -> (String, Vec<String>) {
    let names: Vec<String> = (0..n).map(|i| format!("S{i:02}")).collect();
    let list = names
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{s}={}.00", 10 + i))
        .collect::<Vec<_>>()
        .join(",");
    (list, names)
}

/// Publishes `count` batches of three random symbols through the front-end, recording each
/// in `history`; a 502/503 (the front-end found a dead instance) is tried again. Returns
/// how many were tried again.
fn publish_batches(
    front: SocketAddr,
    names: &[String],
    count: usize,
    rng: &mut StdRng,
    history: &mut History,
) -> usize {
    let mut retried = 0;
    for _ in 0..count {
        let chosen: Vec<&String> = names.choose_multiple(rng, 3).collect();
        let body = chosen
            .iter()
            .map(|s| {
                format!(
                    "{s}={}.{:02}",
                    rng.gen_range(1..1000),
                    rng.gen_range(0..100)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let mut tries = 0;
        let answer = loop {
            let answer = publish_to(front, &body);
            if matches!(answer.status, 502 | 503) && tries < 20 {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            break answer;
        };
        retried += tries;
        history.record(&pairs(&body), answer.id());
    }
    retried
}

fn parked(t: &Tickerd) -> f64 {
    t.metrics()["tickerd_clients{state=\"parked\"}"]
}

fn wait_up(t: &Tickerd) {
    assert!(
        wait_until(Duration::from_secs(10), || t
            .metrics()
            .get("tickerd_redis_up")
            == Some(&1.0)),
        "not up with Redis: {}",
        t.log()
    );
}

/// The whole scenario: `instances` sharing one Redis behind the front-end `front` starts
/// over their SCGI addresses; `n` browsers of random subsets of `symbols` symbols; instance
/// `victim` killed. Returns the timings, for the report.
fn kill_one_behind_a_front<F>(instances: usize, symbols: usize, n: usize, start_front: F) -> String
where
    F: FnOnce(&[SocketAddr]) -> (SocketAddr, Box<dyn Fn() -> String>),
{
    let began = Instant::now();
    let mut rng = StdRng::seed_from_u64(20_261_204);
    let redis = RedisServer::start();
    let (list, names) = universe(symbols);
    let ts: Vec<Option<Tickerd>> = (0..instances)
        .map(|_| {
            Some(Tickerd::start(&[
                "--redis",
                &redis.addr(),
                "--tick-ms",
                "0",
                "--heartbeat-s",
                "5",
                "--symbols",
                &list,
            ]))
        })
        .collect();
    for t in ts.iter().flatten() {
        wait_up(t);
    }
    let mut history = History::from_symbols(ts[0].as_ref().unwrap().http());
    let scgi: Vec<SocketAddr> = ts.iter().flatten().map(|t| t.scgi()).collect();
    let (front, front_log) = start_front(&scgi);
    let mut timings = format!(
        "{instances} instances and the front-end up: {:?}",
        began.elapsed()
    );

    // The browsers, each with its own symbols; the snapshot first.
    let t0 = Instant::now();
    let mut browsers: Vec<Browser> = (0..n)
        .map(|_| {
            let k = rng.gen_range(1..=6);
            let mut chosen: Vec<String> = names.choose_multiple(&mut rng, k).cloned().collect();
            chosen.sort();
            Browser::new(front, chosen)
        })
        .collect();
    pump_until(&mut browsers, Duration::from_secs(20), "snapshot", |b| {
        b.current().len() >= b.symbols.len()
    });
    timings += &format!("; {n} streams open with their snapshot: {:?}", t0.elapsed());
    for b in &browsers {
        let names: Vec<&str> = b.symbols.iter().map(String::as_str).collect();
        assert_eq!(b.current(), history.due_after(&names, 0), "the snapshot");
    }
    let spread: Vec<f64> = ts.iter().flatten().map(parked).collect();
    assert_eq!(spread.iter().sum::<f64>(), n as f64, "{spread:?}");
    for s in &spread {
        assert!(
            *s >= (n / instances / 2) as f64,
            "streams spread evenly: {spread:?}"
        );
    }

    // Publishes through the front-end, on every instance: every browser gets there.
    publish_batches(front, &names, 10, &mut rng, &mut history);
    let latest = history.latest();
    pump_until(
        &mut browsers,
        Duration::from_secs(20),
        "first publishes",
        |b| b.is_level(&latest),
    );

    // One instance dies; lighttpd ends its streams.
    let victim = 1 % instances;
    let on_victim = parked(ts[victim].as_ref().unwrap()) as usize;
    ts[victim].as_ref().unwrap().signal(libc::SIGKILL);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(15);
    let ended = loop {
        for b in browsers.iter_mut() {
            b.pump();
        }
        let ended: Vec<usize> = (0..n).filter(|&i| browsers[i].ended()).collect();
        if ended.len() >= on_victim {
            break ended;
        }
        assert!(
            Instant::now() < end,
            "{} of {on_victim} streams ended: {}",
            ended.len(),
            front_log()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        ended.len(),
        on_victim,
        "only the dead instance's streams end"
    );
    timings += &format!(
        "; {on_victim} streams of the killed instance ended after {:?}",
        t0.elapsed()
    );
    // While they are away: more publishes, through the front-end (to the survivors).
    let retried = publish_batches(front, &names, 10, &mut rng, &mut history);
    let last = history.last_id();
    for t in ts
        .iter()
        .flatten()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, t)| t)
    {
        assert!(wait_until(Duration::from_secs(10), || t.current_id() >= last));
    }
    // They come back through the front-end with their last id: exactly what they lack.
    let t0 = Instant::now();
    for &i in &ended {
        let b = &mut browsers[i];
        let names: Vec<&str> = b.symbols.iter().map(String::as_str).collect();
        let due = history.due_after(&names, b.last_id().unwrap());
        b.reconnect(front, due);
    }
    pump_until(&mut browsers, Duration::from_secs(20), "resumed", |b| {
        b.due_on_resume
            .as_ref()
            .is_none_or(|due| b.current().len() >= due.len())
    });
    timings += &format!("; they reconnected and resumed in {:?}", t0.elapsed());
    let spread: Vec<f64> = ts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, t)| parked(t.as_ref().unwrap()))
        .collect();
    assert_eq!(
        spread.iter().sum::<f64>(),
        n as f64,
        "every browser back: {spread:?}"
    );

    // More publishes: every browser ends with the latest of every symbol it chose.
    publish_batches(front, &names, 10, &mut rng, &mut history);
    let latest = history.latest();
    let t0 = Instant::now();
    pump_until(
        &mut browsers,
        Duration::from_secs(20),
        "last publishes",
        |b| b.is_level(&latest),
    );
    timings += &format!("; level after the last publishes in {:?}", t0.elapsed());
    let mut resumed_with_something = 0;
    for b in browsers.iter_mut() {
        for (c, events) in b.connections.iter().enumerate() {
            for w in events.windows(2) {
                assert!(w[0].id < w[1].id, "connection {c}: ascending: {events:?}");
            }
            for u in events {
                assert!(history.knows(u), "{u:?} is no update the feed gave");
            }
        }
        if let Some(due) = &b.due_on_resume {
            assert_eq!(&b.current()[..due.len()], due.as_slice(), "resumed exactly");
            resumed_with_something += usize::from(!due.is_empty());
        }
        assert!(!b.ended(), "a stream of a live instance ended");
    }
    assert!(
        resumed_with_something > on_victim / 4,
        "{resumed_with_something}"
    );
    let log = front_log();
    drop(front_log);
    drop(ts);
    timings + &format!(
        "; {resumed_with_something} resumed with updates; publishes tried again: {retried}; total {:?}\n{log}",
        began.elapsed()
    )
}

/// lighttpd from `conf/lighttpd-balance.conf` over `backends`.
fn start_lighttpd(backends: &[SocketAddr]) -> Lighttpd {
    let list = backends
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    Lighttpd::start_from("lighttpd-balance.conf", &[("TICKERD_SCGI_BACKENDS", list)])
}

#[test]
fn lighttpd_over_three_instances_one_killed_under_2000_streams_every_browser_ends_level() {
    let _heavy = heavy(); // 2,000 streams
    let report = kill_one_behind_a_front(3, 20, 2000, |backends| {
        let front = start_lighttpd(backends);
        (front.addr, Box::new(move || front.log()))
    });
    eprintln!("lighttpd: {report}");
}

#[test]
fn nginx_over_two_instances_one_killed_every_browser_ends_level() {
    let report = kill_one_behind_a_front(2, 10, 100, |backends| {
        // The shipped upstream with these instances' addresses, in its order, one server
        // line each (the file's third is dropped).
        let shipped = std::fs::read_to_string(repo_root().join("conf/nginx-balance.conf")).unwrap();
        let mut addrs = backends.iter();
        let upstream: String = shipped
            .lines()
            .filter_map(
                |l| match l.trim_start().strip_prefix("server 127.0.0.1:900") {
                    Some(rest) => addrs
                        .next()
                        .map(|a| format!("    server {a}{}\n", &rest[1..])),
                    None => Some(format!("{l}\n")),
                },
            )
            .collect();
        assert!(upstream.contains("least_conn;"), "{upstream}");
        let front = crate::support::fronts::nginx::start_with_upstream(&upstream);
        (front.addr, Box::new(move || front.log()))
    });
    eprintln!("nginx: {report}");
}

#[test]
fn apache_over_two_instances_one_killed_every_browser_ends_level() {
    let report = kill_one_behind_a_front(2, 10, 100, |backends| {
        let binary = which("apache2").expect("apache2 is not installed (.ci/run installs it)");
        let dir = TempDir::new("apache");
        let (root, pid_file) = (dir.to_path_buf(), dir.join("apache.pid"));
        let (one, two) = (backends[0], backends[1]);
        let front = Front::start("apache", dir, &pid_file, |port| {
            let mut cmd = Command::new(&binary);
            cmd.arg("-d")
                .arg(&root)
                .arg("-f")
                .arg(repo_root().join("conf/apache-balance.conf"))
                .arg("-DFOREGROUND")
                .env("TICKERD_FRONT_PORT", port.to_string())
                .env("TICKERD_SCGI_HOST", one.ip().to_string())
                .env("TICKERD_SCGI_PORT_1", one.port().to_string())
                .env("TICKERD_SCGI_PORT_2", two.port().to_string())
                .env("TICKERD_SCGI_PORT_3", "off");
            cmd
        });
        (front.addr, Box::new(move || front.log()))
    });
    eprintln!("apache: {report}");
}
