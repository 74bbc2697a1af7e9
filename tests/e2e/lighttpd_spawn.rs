//! lighttpd started from the shipped `conf/lighttpd-spawn.conf` starts tickerd itself
//! (mod_scgi's `bin-path`): it listens on the socket and hands it to tickerd as fd 0. tickerd
//! takes it as its SCGI listener, opens no HTTP listener, serves the page and streams through
//! lighttpd, upgrades in place without lighttpd noticing, and stops when lighttpd stops.
//! Needs lighttpd installed (`.ci/run` installs it).

use std::path::Path;
use std::time::Duration;

use crate::support::clients::{install, symbol_and_price};
use crate::support::leftovers::running;
use crate::support::*;

/// The tickerd lighttpd spawned; killed when dropped if it is still there (lighttpd killed
/// with SIGKILL does not stop it).
struct Spawned {
    pid: i32,
    dir: String,
}

impl Spawned {
    /// The child of `parent` running the binary in `dir`.
    fn find(parent: i32, dir: &Path) -> Spawned {
        let dir = dir.display().to_string();
        let mut found = None;
        let up = wait_until(Duration::from_secs(10), || {
            found = children(parent).into_iter().find(|&pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&dir))
            });
            found.is_some()
        });
        assert!(up, "lighttpd (pid {parent}) started no tickerd");
        Spawned {
            pid: found.unwrap(),
            dir,
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let ours = std::fs::read(format!("/proc/{}/cmdline", self.pid))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&self.dir));
        if ours && running(self.pid) {
            // SAFETY: kill(2) on the tickerd this test had lighttpd start.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// The processes whose parent is `parent`, from /proc.
fn children(parent: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().map_while(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid …"
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].split(' ').nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

/// The socket inodes a process has open, by descriptor.
fn socket_inodes(pid: i32) -> Vec<(i32, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map_while(Result::ok)
    {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.display().to_string();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|i| i.parse().ok())
        {
            found.push((fd, inode));
        }
    }
    found
}

/// Inodes of listening TCP sockets (IPv4 and IPv6), from /proc/net.
fn tcp_listening_inodes() -> Vec<u64> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() > 9 && f[3] == "0A" {
                found.extend(f[9].parse::<u64>().ok());
            }
        }
    }
    found
}

/// The path of a listening Unix socket with this inode, from /proc/net/unix (flags
/// 00010000: accepting connections).
fn unix_listening_path(inode: u64) -> Option<String> {
    let text = std::fs::read_to_string("/proc/net/unix").unwrap();
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Num RefCount Protocol Flags Type St Inode Path
        (f.len() > 7 && f[6].parse() == Ok(inode) && f[3] == "00010000").then(|| f[7].to_string())
    })
}

/// Fd 0 a listening Unix socket at `path`, and no TCP listener at all.
fn check_listeners(pid: i32, path: &str) {
    let sockets = socket_inodes(pid);
    let fd0 = sockets.iter().find(|(fd, _)| *fd == 0);
    let fd0 = fd0
        .unwrap_or_else(|| panic!("fd 0 is no socket: {sockets:?}"))
        .1;
    assert_eq!(
        unix_listening_path(fd0).as_deref(),
        Some(path),
        "fd 0 is the listening socket lighttpd made"
    );
    let tcp = tcp_listening_inodes();
    let listening: Vec<_> = sockets.iter().filter(|(_, i)| tcp.contains(i)).collect();
    assert!(listening.is_empty(), "a TCP listener: {listening:?}");
}

#[test]
fn lighttpd_spawns_tickerd_which_takes_fd_0_as_its_scgi_listener_and_upgrades_in_place() {
    let dir = TempDir::new("spawn");
    let exe = dir.join("tickerd");
    install(Path::new(env!("CARGO_BIN_EXE_tickerd")), &exe);
    let socket = dir.join("scgi.sock");
    let front = Lighttpd::start_from(
        "lighttpd-spawn.conf",
        &[
            ("TICKERD_BIN", exe.display().to_string()),
            (
                "TICKERD_ARGS",
                "--tick-ms 50 --symbols TICK,AAA --heartbeat-s 5".into(),
            ),
            ("TICKERD_SPAWN_SOCKET", socket.display().to_string()),
            ("TICKERD_PUBLISH_TOKEN", TOKEN.into()),
            ("RUST_LOG", "info".into()),
        ],
    );
    let tickerd = Spawned::find(front.pid(), &dir);
    // lighttpd appends the process number to the socket's path.
    let path = format!("{}-0", socket.display());
    let wait_log = |needle: &str, n: usize| {
        let end = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = front.log();
            if let Some(line) = log.lines().filter(|l| l.contains(needle)).nth(n - 1) {
                return line.to_string();
            }
            assert!(
                std::time::Instant::now() < end,
                "no {needle:?} in lighttpd's log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_log(
        &format!(
            "scgi listener unix:{path} inherited from the spawning front-end (fd 0): it replaces the --scgi address"
        ),
        1,
    );
    let listening = wait_log("listening:", 1);
    assert!(
        listening.contains(&format!("listening: scgi unix:{path}; max clients")),
        "only the SCGI listener: {listening}"
    );
    check_listeners(tickerd.pid, &path);

    // The page at both mounts, and publishing (the token came through lighttpd's environment).
    for at in ["/", "/prices/"] {
        let (status, _, body) = http_request(
            front.addr,
            &format!("GET {at} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status, 200, "{at}");
        assert!(body.contains("EventSource"), "{at}");
    }
    let req = format!(
        "POST /publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: 9\r\n\r\nAAA=12.34"
    );
    let (status, _, body) = http_request(front.addr, &req);
    assert_eq!(status, 200, "{body}");
    // (Before the streams: a publish of one symbol shifts which ids the default symbol gets.)
    let mut plain = http_stream(front.addr, "/ticker", &[]);
    let mut both = http_stream(front.addr, "/prices/ticker?symbols=TICK,AAA", &[]);
    assert!(plain.head.contains("chunked"), "{}", plain.head);
    let expect = |s: &mut SseReader<std::net::TcpStream>, step: u64, n: u64, first: Option<u64>| {
        let mut last = first;
        for _ in 0..n {
            let e = s.next_event().expect("an event");
            assert!(symbol_and_price(&e.data).is_some(), "{e:?}");
            if let Some(last) = last {
                assert_eq!(e.id(), last + step, "{e:?}");
            }
            last = Some(e.id());
        }
        last.unwrap()
    };
    // Plain: the default symbol of a two-symbol universe, every other id; both: every id
    // (after the snapshot, whose ids may be older than the publish).
    plain.next_event().unwrap();
    let mut plain_last = expect(&mut plain, 2, 5, None);
    both.next_event().unwrap();
    let mut both_last = expect(&mut both, 1, 5, None);
    assert_eq!(plain.retry, Some(3000));
    let (status, _, metrics) = http_request(
        front.addr,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    let m = parse_metrics(&metrics);
    assert_eq!(
        m["tickerd_connections_accepted_total{listener=\"http\"}"],
        0.0
    );
    assert!(m["tickerd_connections_accepted_total{listener=\"scgi\"}"] >= 6.0);

    // A live upgrade: same pid, same socket; lighttpd notices nothing, streams go on.
    // SAFETY: kill(2) on the tickerd lighttpd started for this test.
    unsafe { libc::kill(tickerd.pid, libc::SIGUSR2) };
    let took = wait_log("upgrade: took over", 1);
    assert!(took.contains("(0 lost)"), "{took}");
    wait_log(
        &format!("scgi listener unix:{path} inherited from the binary before the upgrade"),
        1,
    );
    let listening = wait_log("listening:", 2);
    assert!(
        listening.contains(&format!("listening: scgi unix:{path}; max clients")),
        "still only the SCGI listener: {listening}"
    );
    check_listeners(tickerd.pid, &path);
    plain_last = expect(&mut plain, 2, 5, Some(plain_last));
    both_last = expect(&mut both, 1, 5, Some(both_last));
    assert_eq!(plain.retry, Some(3000), "no second stream head");
    assert!(!front.log().contains("child exited"), "{}", front.log());
    assert_eq!(
        children(front.pid()),
        vec![tickerd.pid],
        "lighttpd started no other tickerd"
    );
    let _ = (plain_last, both_last);

    // lighttpd stops: it stops tickerd (SIGTERM), and the streams end.
    // SAFETY: kill(2) on our own lighttpd.
    unsafe { libc::kill(front.pid(), libc::SIGTERM) };
    assert!(
        wait_until(Duration::from_secs(10), || !running(tickerd.pid)),
        "tickerd still runs after lighttpd stopped:\n{}",
        front.log()
    );
    wait_log("stopping: closing", 1);
}
