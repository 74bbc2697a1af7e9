//! Helpers for the integration tests: start the real tickerd (and lighttpd) on free ports,
//! open streams over real sockets, read /metrics, wait for conditions with deadlines.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-123";

/// The universe of tests that do not choose one: a single symbol.
pub const ONE_SYMBOL: &str = "TICK";

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

    /// Descriptors the process has open, from /proc.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
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
        let req = format!(
            "POST /publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (status, _, body) = http_request(self.http(), &req);
        (status, body)
    }
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

/// Sends a request, reads the whole response (the server closes); returns (status, head, body).
pub fn http_request(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    split_response(&raw)
}

/// Splits a response into (status, head, body), accepting a status line or a CGI `Status:`.
pub fn split_response(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {text:?}"));
    let first = head.lines().next().unwrap_or_default();
    let status = first
        .strip_prefix("Status: ")
        .or_else(|| first.split_once(' ').map(|(_, r)| r))
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_string(), body.to_string())
}

/// An SCGI request as a front-end sends it: CONTENT_LENGTH first, SCGI=1, then `headers`.
pub fn scgi_bytes(headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    tickerd::scgi::encode(headers, body.as_bytes())
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

/// One parsed SSE event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn id(&self) -> u64 {
        self.id.as_deref().unwrap().parse().unwrap()
    }
}

/// Reads an event stream from any socket: the head, then events per the WHATWG rules, with
/// chunked transfer decoding when the head says so (as lighttpd does).
pub struct SseReader<S: Read> {
    socket: S,
    pub head: String,
    pub status: u16,
    chunked: bool,
    /// Decoded body bytes not yet parsed into events.
    body: Vec<u8>,
    /// Raw bytes not yet de-chunked.
    raw: Vec<u8>,
    pub comments: usize,
    pub retry: Option<u64>,
    pub eof: bool,
}

impl<S: Read> SseReader<S> {
    /// Reads until the head is complete.
    pub fn new(mut socket: S) -> SseReader<S> {
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = find(&raw, b"\r\n\r\n") {
                break i + 4;
            }
            let n = socket.read(&mut buf).expect("read the head");
            assert!(
                n > 0,
                "closed before the head: {:?}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
        let (status, _, _) = split_response(&raw[..head_end]);
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let mut reader = SseReader {
            socket,
            head,
            status,
            chunked,
            body: Vec::new(),
            raw: Vec::new(),
            comments: 0,
            retry: None,
            eof: false,
        };
        reader.take_raw(&raw[head_end..]);
        reader
    }

    fn take_raw(&mut self, bytes: &[u8]) {
        if !self.chunked {
            self.body.extend_from_slice(bytes);
            return;
        }
        self.raw.extend_from_slice(bytes);
        loop {
            let Some(eol) = find(&self.raw, b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..eol]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
            if size == 0 {
                self.eof = true;
                self.raw.clear();
                return;
            }
            if self.raw.len() < eol + 2 + size + 2 {
                return;
            }
            let chunk = self.raw[eol + 2..eol + 2 + size].to_vec();
            self.body.extend_from_slice(&chunk);
            self.raw.drain(..eol + 2 + size + 2);
        }
    }

    /// Parses one complete event out of `body`, if there is one.
    fn parse_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = find(&self.body, b"\n\n")?;
            let block = String::from_utf8_lossy(&self.body[..end]).to_string();
            self.body.drain(..end + 2);
            let mut event = SseEvent {
                id: None,
                data: String::new(),
            };
            let mut has_data = false;
            for line in block.split('\n') {
                if line.starts_with(':') {
                    self.comments += 1;
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => event.id = Some(value.to_string()),
                    "data" => {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(value);
                        has_data = true;
                    }
                    "retry" => self.retry = value.parse().ok(),
                    _ => {}
                }
            }
            if has_data {
                return Some(event);
            }
        }
    }

    /// The next event; `None` at EOF or when the socket's read timeout passes.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(e) = self.parse_event() {
                return Some(e);
            }
            if self.eof {
                return None;
            }
            match self.socket.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    return None;
                }
                Ok(n) => self.take_raw(&buf[..n]),
                Err(_) => return None,
            }
        }
    }

    /// Reads until EOF (or the read timeout), counting what arrives.
    pub fn read_to_end(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(e) = self.next_event() {
            events.push(e);
        }
        events
    }

    pub fn socket(&mut self) -> &mut S {
        &mut self.socket
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Opens an SSE stream over HTTP with extra header lines.
pub fn http_stream(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    SseReader::new(s)
}

/// Opens an SSE stream over SCGI.
pub fn scgi_stream(addr: SocketAddr, request: &[u8]) -> SseReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    SseReader::new(s)
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

/// A running lighttpd started from the shipped `conf/lighttpd.conf`, killed when dropped.
pub struct Lighttpd {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    env: Vec<(String, String)>,
}

impl Lighttpd {
    /// Starts lighttpd in front of tickerd's SCGI listener at `scgi`.
    pub fn start(scgi: SocketAddr) -> Lighttpd {
        Self::start_with(&[
            ("TICKERD_SCGI_HOST", scgi.ip().to_string()),
            ("TICKERD_SCGI_PORT", scgi.port().to_string()),
        ])
    }

    pub fn start_with(env: &[(&str, String)]) -> Lighttpd {
        Self::start_from("lighttpd.conf", env)
    }

    /// Starts lighttpd from another file of `conf/` (`lighttpd-spawn.conf`); `restart` would
    /// start it from `conf/lighttpd.conf`.
    pub fn start_from(conf: &'static str, env: &[(&str, String)]) -> Lighttpd {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        for attempt in 0..5 {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            match Self::spawn_from(conf, addr, &env) {
                Ok((child, log)) => {
                    return Lighttpd {
                        child,
                        addr,
                        log,
                        env,
                    }
                }
                Err(log) => eprintln!("lighttpd attempt {attempt} failed: {log}"),
            }
        }
        panic!("lighttpd did not start from conf/{conf}");
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Starts lighttpd from `conf/lighttpd.conf` on `addr`; its log if it did not come up.
    fn spawn(
        addr: SocketAddr,
        env: &[(String, String)],
    ) -> Result<(Child, Arc<Mutex<String>>), String> {
        Self::spawn_from("lighttpd.conf", addr, env)
    }

    fn spawn_from(
        conf: &str,
        addr: SocketAddr,
        env: &[(String, String)],
    ) -> Result<(Child, Arc<Mutex<String>>), String> {
        let binary = which("lighttpd")
            .expect("lighttpd is not installed: `apt-get install -y lighttpd` (.ci/run does it)");
        let mut cmd = Command::new(&binary);
        cmd.arg("-D")
            .arg("-f")
            .arg(repo_root().join("conf").join(conf))
            .current_dir(repo_root())
            .env("TICKERD_FRONT_PORT", addr.port().to_string())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = dies_with_its_starter(&mut cmd)
            .spawn()
            .expect("start lighttpd");
        let log = collect_stderr(&mut child);
        let up = wait_until(Duration::from_secs(5), || {
            child.try_wait().unwrap().is_none() && TcpStream::connect(addr).is_ok()
        });
        // A listener of another test on the same port would also accept the connect; lighttpd
        // that lost the port exits within milliseconds of starting.
        if up
            && !wait_until(Duration::from_millis(200), || {
                child.try_wait().unwrap().is_some()
            })
        {
            return Ok((child, log));
        }
        let _ = child.kill();
        let _ = child.wait();
        let log = log.lock().unwrap().clone();
        Err(log)
    }

    /// Kills lighttpd and starts it again on the same port (a browser's page keeps its
    /// origin), retrying while the port is not free yet.
    pub fn restart(&mut self) {
        self.kill();
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            match Self::spawn(self.addr, &self.env) {
                Ok((child, log)) => {
                    (self.child, self.log) = (child, log);
                    return;
                }
                Err(log) if Instant::now() > end => {
                    panic!("lighttpd did not start again on {}: {log}", self.addr)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Lighttpd {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| Path::new(p).is_file())
}

/// HTTP/2 through lighttpd (tests/http2.rs).
pub mod h2;

/// nginx and Apache in front of tickerd (tests/nginx.rs, tests/apache.rs).
pub mod fronts;

/// Headless Chromium over WebDriver, for the browser tests.
pub mod browser;

/// What a killed test run leaves behind, and ending it.
pub mod leftovers;
pub use leftovers::dies_with_its_starter;

/// nginx with its HTTP/2 listeners (tests/nginx_http2.rs).
pub mod nginx_h2;

/// Redis for the tests: a private server, a proxy to cut, a broken stand-in (tests/redis.rs).
pub mod redis;

/// Many streams, connection attempts every few ms, browsers that reconnect (tests/upgrade.rs,
/// tests/systemd.rs).
pub mod clients;
