//! What the end-to-end tests share: start the real tickerd on free ports ([`Tickerd`]), talk
//! to it over real sockets (SCGI requests here, responses and event streams in [`http`]),
//! read /metrics, wait for conditions with deadlines, and keep the heavy tests apart
//! ([`heavy`]). The front-ends are in [`fronts`], HTTP/2 in [`h2`], Redis in [`redis`],
//! Chromium in [`browser`], the upgrade tests' clients in [`clients`].

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-123";

/// The universe of tests that do not choose one: a single symbol.
pub const ONE_SYMBOL: &str = "TICK";

/// Taken first by the tests that load the machine: thousands of sockets, hundreds of ticks a
/// second, a pause or a rate they measure. All tests of the crate run as threads of one
/// process (`cargo test` runs 2 at a time here), sharing two cores and one limit of open
/// files (20,000 here); these run one at a time, beside light tests only, so that they do not
/// slow each other down, and the sockets open in this process stay near 10,000 at most (the
/// heaviest: SIGTERM under 10,000 streams). A test that opens 1,000 sockets or more, or that
/// drives tickerd flat out, takes it.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    // A heavy test that failed poisons the lock; the next one runs all the same.
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Polls `cond` until it holds or `within` passes; returns whether it held.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running tickerd, killed when dropped.
pub struct Tickerd {
    child: Child,
    pub http: Option<SocketAddr>,
    pub scgi: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
}

impl Tickerd {
    /// Starts tickerd with these flags plus `--http 127.0.0.1:0 --scgi 127.0.0.1:0` unless
    /// the flags name their own, and a publish token in the environment. Unless the flags
    /// give a universe, it is one symbol ([`ONE_SYMBOL`]): the single-price service, whose
    /// ids are consecutive.
    pub fn start(args: &[&str]) -> Tickerd {
        Self::start_with_token(args, Some(TOKEN))
    }

    /// Starts tickerd with `TICKERD_PUBLISH_TOKEN` set to `token`, or unset.
    pub fn start_with_token(args: &[&str], token: Option<&str>) -> Tickerd {
        Self::spawn(args, token, None, &Spawn::default())
    }

    /// Starts tickerd with at most `fds` open files (soft and hard limit).
    pub fn start_with_fd_limit(args: &[&str], fds: u64) -> Tickerd {
        Self::spawn(args, Some(TOKEN), Some(fds), &Spawn::default())
    }

    /// Starts tickerd logging each request it serves, with its `Last-Event-ID`
    /// (see [`Tickerd::requests_logged`]).
    pub fn start_logging_requests(args: &[&str]) -> Tickerd {
        let how = Spawn {
            log_filter: Some(LOG_REQUESTS.into()),
            ..Spawn::default()
        };
        Self::spawn(args, Some(TOKEN), None, &how)
    }

    /// Starts tickerd as [`Tickerd::start`] does, and also as `how` says (another binary,
    /// more environment, descriptors of the test's, its own pid in variables).
    pub fn start_as(args: &[&str], how: &Spawn) -> Tickerd {
        Self::spawn(args, Some(TOKEN), None, how)
    }

    fn spawn(args: &[&str], token: Option<&str>, fd_limit: Option<u64>, how: &Spawn) -> Tickerd {
        leftovers::end_what_dead_runs_left_once();
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if !args.contains(&"--http") {
            all.extend(["--http".into(), "127.0.0.1:0".into()]);
        }
        if !args.contains(&"--scgi") {
            all.extend(["--scgi".into(), "127.0.0.1:0".into()]);
        }
        if !args.contains(&"--symbols") && !args.contains(&"--symbols-file") {
            all.extend(["--symbols".into(), ONE_SYMBOL.into()]);
        }
        let exe = how
            .exe
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tickerd")));
        let mut cmd = match how.own_pid_env.is_empty() {
            true => Command::new(&exe),
            // The shell sets the variables to its own pid, which `exec` hands to tickerd.
            false => {
                let mut cmd = Command::new("/bin/sh");
                let set: Vec<String> = how.own_pid_env.iter().map(|v| format!("{v}=$$")).collect();
                cmd.arg("-c")
                    .arg(format!("export {}; exec \"$0\" \"$@\"", set.join(" ")))
                    .arg(&exe);
                cmd
            }
        };
        match token {
            Some(token) => cmd.env("TICKERD_PUBLISH_TOKEN", token),
            None => cmd.env_remove("TICKERD_PUBLISH_TOKEN"),
        };
        if let Some(fds) = fd_limit {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: fds,
                rlim_max: fds,
            };
            // SAFETY: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        if !how.fds.is_empty() {
            pass_fds(&mut cmd, how.fds.clone());
        }
        for (name, value) in &how.env {
            match value {
                Some(value) => cmd.env(name, value),
                None => cmd.env_remove(name),
            };
        }
        let mut child = dies_with_its_starter(&mut cmd)
            .args(&all)
            .env("RUST_LOG", how.log_filter.as_deref().unwrap_or("info"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tickerd");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Into the log first: a test may read it as soon as `start` returns.
                {
                    let mut log = sink.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
                if line.contains("listening:") {
                    let _ = tx.send(line.clone());
                }
            }
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) else {
            // Not left running behind a failed test.
            let _ = child.kill();
            let _ = child.wait();
            panic!("tickerd did not start: {}", log.lock().unwrap());
        };
        let find = |proto: &str| -> Option<SocketAddr> {
            let rest = line.split(&format!("{proto} ")).nth(1)?;
            rest.split([',', ';']).next()?.trim().parse().ok()
        };
        Tickerd {
            http: find("http"),
            scgi: find("scgi"),
            child,
            log,
        }
    }

    pub fn http(&self) -> SocketAddr {
        self.http.expect("http listener")
    }

    pub fn scgi(&self) -> SocketAddr {
        self.scgi.expect("scgi listener")
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The event requests tickerd has logged, in order: `("Stream" or "LongPoll",
    /// Last-Event-ID)`. Needs [`Tickerd::start_logging_requests`].
    pub fn requests_logged(&self) -> Vec<(String, Option<u64>)> {
        self.log()
            .lines()
            .filter_map(|line| {
                let (head, id) = line.split_once(", Last-Event-ID ")?;
                let kind = head.rsplit(": ").next()?.to_string();
                let id = match id.trim() {
                    "None" => None,
                    some => Some(
                        some.strip_prefix("Some(")?
                            .strip_suffix(')')?
                            .parse()
                            .ok()?,
                    ),
                };
                Some((kind, id))
            })
            .collect()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// CPU time (user + system) the process has used, from /proc.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// Resident memory of the process in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Sends SIGTERM and checks tickerd exits 0 within `within`; returns how long it took.
    pub fn terminate_within(&mut self, within: Duration) -> Duration {
        let start = Instant::now();
        self.signal(libc::SIGTERM);
        let status = self.wait_exit(within).expect("exited in time");
        assert!(status.success(), "{status:?}");
        start.elapsed()
    }

    /// Waits for exit, up to `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `/metrics` as name{labels} → value.
    pub fn metrics(&self) -> HashMap<String, f64> {
        let (status, _, body) =
            http_request(self.http(), "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(status, 200);
        parse_metrics(&body)
    }

    /// The number of open connections in states that hold a client (not closing).
    pub fn clients(&self) -> f64 {
        let m = self.metrics();
        ["reading_request", "parked", "writing"]
            .iter()
            .map(|s| m[&format!("tickerd_clients{{state=\"{s}\"}}")])
            .sum()
    }

    pub fn current_id(&self) -> u64 {
        self.metrics()["tickerd_event_id"] as u64
    }

    /// Publishes a price over HTTP; returns (status, body).
    pub fn publish(&self, body: &str) -> (u16, String) {
        let (status, _, body) = http_request(self.http(), &publish_request("/publish", body));
        (status, body)
    }
}

/// A `POST` of `body` to `path` with the publish token, the connection left open.
pub fn publish_request(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// `/metrics` as name{labels} → value, asked on `conn`, a kept-alive connection (to tickerd
/// or a front-end), which stays open for more.
pub fn metrics_on(conn: &mut TcpStream) -> HashMap<String, f64> {
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(conn);
    assert_eq!(r.status, 200, "{r:?}");
    parse_metrics(&r.body)
}

/// The log filter of [`Tickerd::start_logging_requests`].
pub const LOG_REQUESTS: &str = "info,tickerd::core=debug";

/// How [`Tickerd::start_as`] starts tickerd beyond its flags; the default is [`Tickerd::start`].
#[derive(Clone, Debug, Default)]
pub struct Spawn {
    /// The binary (default: the one cargo built), e.g. a copy that a live upgrade replaces.
    pub exe: Option<PathBuf>,
    /// More environment: a value sets the variable, `None` removes it.
    pub env: Vec<(String, Option<String>)>,
    /// Variables set to tickerd's own pid (`LISTEN_PID`, `WATCHDOG_PID`): it is started
    /// through `/bin/sh -c 'export V=$$; exec …'`, whose `exec` keeps the pid.
    pub own_pid_env: Vec<&'static str>,
    /// Descriptors of the test's that tickerd gets as 3, 4, … (what systemd passes with
    /// `LISTEN_FDS`); the test keeps its own.
    pub fds: Vec<std::os::fd::RawFd>,
    /// `RUST_LOG` (default `info`).
    pub log_filter: Option<String>,
}

/// Has `cmd`'s process get `fds` as descriptors 3, 4, … (not close-on-exec).
fn pass_fds(cmd: &mut Command, fds: Vec<std::os::fd::RawFd>) {
    use std::os::unix::process::CommandExt;
    assert!(fds.len() <= 16, "at most 16 descriptors");
    let first = 3;
    // SAFETY: fcntl(2), dup2(2) and close(2) are async-signal-safe and touch only the child;
    // nothing is allocated after the fork.
    unsafe {
        cmd.pre_exec(move || {
            let n = fds.len() as i32;
            // First out of the way of 3..3+n, so that no source is overwritten before it is
            // copied; then into place (dup2 clears close-on-exec on the copy).
            let mut moved = [0; 16];
            for (i, &fd) in fds.iter().enumerate() {
                moved[i] = libc::fcntl(fd, libc::F_DUPFD, first + n);
                if moved[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, &fd) in moved[..fds.len()].iter().enumerate() {
                if libc::dup2(fd, first + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
            }
            Ok(())
        });
    }
}

impl Drop for Tickerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// An SCGI request as a front-end sends it: a netstring of NUL-terminated names and values,
/// CONTENT_LENGTH first, then SCGI=1, then `headers`; then the body.
pub fn scgi_bytes(headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let length = body.len().to_string();
    let mut block = Vec::new();
    for (name, value) in [("CONTENT_LENGTH", length.as_str()), ("SCGI", "1")]
        .iter()
        .chain(headers)
    {
        for part in [name, value] {
            block.extend_from_slice(part.as_bytes());
            block.push(0);
        }
    }
    let mut out = format!("{}:", block.len()).into_bytes();
    out.extend_from_slice(&block);
    out.push(b',');
    out.extend_from_slice(body.as_bytes());
    out
}

/// The SCGI variables of a GET for `path` at the root mount.
pub fn scgi_get(path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut headers = vec![
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", path),
        ("REQUEST_URI", path),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
    ];
    headers.extend_from_slice(extra);
    scgi_bytes(&headers, "")
}

pub fn set_timeout(s: &TcpStream, d: Duration) {
    s.set_read_timeout(Some(d)).unwrap();
}

/// Closes a socket with a reset (SO_LINGER 0), as a crashed browser would.
pub fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as u32,
        );
    }
    drop(s);
}

pub fn half_close(s: &TcpStream) {
    s.shutdown(Shutdown::Write).unwrap();
}

/// A port free right now (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port held for a backend that is not running yet: bound but not listening,
/// so connections to it are refused (the backend is "down") and no kernel-chosen port lands
/// on it, until `release` hands it to the backend. (`at` sets SO_REUSEADDR, as it must to
/// take back a port with connections in TIME_WAIT; a socket binding that very port with
/// SO_REUSEADDR too could still share it.)
pub struct ReservedPort {
    socket: socket2::Socket,
    pub addr: SocketAddr,
}

impl ReservedPort {
    pub fn new() -> ReservedPort {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        ReservedPort { socket, addr }
    }

    /// Holds `addr` (a port a backend just closed) until released, so that nothing else can
    /// take it meanwhile; retries for up to 5 s while something briefly holds it.
    pub fn at(addr: SocketAddr) -> ReservedPort {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            // Like the backend's listener: connections left in TIME_WAIT do not block it.
            socket.set_reuse_address(true).unwrap();
            match socket.bind(&addr.into()) {
                Ok(()) => return ReservedPort { socket, addr },
                Err(e) if Instant::now() >= end => panic!("cannot hold {addr} again: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Frees the port, for the backend to bind at once.
    pub fn release(self) -> SocketAddr {
        drop(self.socket);
        self.addr
    }
}

/// How every scratch directory's name starts.
pub const SCRATCH: &str = "tickerd-";

/// A directory of its own under the temp dir (pid + counter), removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// What every `what` directory's path starts with; the test process's pid follows.
    pub fn prefix(what: &str) -> PathBuf {
        std::env::temp_dir().join(format!("{SCRATCH}{what}-"))
    }

    pub fn new(what: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Before this test process makes its own.
        leftovers::end_what_dead_runs_left_once();
        let mut dir = Self::prefix(what).into_os_string();
        dir.push(format!("{}-{n}", std::process::id()));
        let dir = PathBuf::from(dir);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Collects a child's stderr, line by line, into a string the test can read at any time
/// (a front-end's log, for the failure message).
pub fn collect_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let stderr = child.stderr.take().expect("stderr piped");
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    log
}

/// The repository root, where `conf/` is.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| Path::new(p).is_file())
}

/// Reading responses and event streams, the one way every test does.
pub mod http;
pub use http::*;

/// HTTP/2: a test certificate, the external clients, frames on the wire (`http2`,
/// `nginx_http2`).
pub mod h2;

/// The front-ends, each started from its shipped file: lighttpd, nginx, Apache; and what
/// every one of them must do in front of tickerd.
pub mod fronts;
pub use fronts::lighttpd::Lighttpd;

/// Headless Chromium over WebDriver, for the browser tests.
pub mod browser;

/// What a killed test run leaves behind, and ending it.
pub mod leftovers;
pub use leftovers::dies_with_its_starter;

/// Redis for the tests: a private server, a proxy to cut, a broken stand-in (`redis`, `balance`).
pub mod redis;

/// Many streams, connection attempts every few ms, browsers that reconnect (`upgrade`,
/// `systemd`).
pub mod clients;
