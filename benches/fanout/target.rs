//! The servers under test, started and stopped by the bench: tickerd (alone or behind
//! lighttpd from the shipped conf; or several instances sharing a private Redis, behind
//! lighttpd's balancing conf), nginx with nchan, and the floor. Each process is killed
//! when its handle drops, and dies with the bench whatever kills it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::client::{Addr, Proto};
use crate::sys;

pub const TOKEN: &str = "bench-token-0123456789";

/// A child process, killed when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    /// Processes the child forked (nginx's worker), killed with it.
    pub also: Vec<u32>,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> io::Result<Proc> {
        // SAFETY: die_with_parent only calls prctl, which is async-signal-safe.
        unsafe { cmd.pre_exec(sys::die_with_parent) };
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {name}: {e}")))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            also: Vec::new(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited already.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    pub fn stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// The child's stdout, line by line, from a thread of its own.
    pub fn lines(&mut self) -> io::Result<Receiver<String>> {
        let stdout = self
            .child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }

    /// Waits for a stdout line that starts with `prefix`.
    pub fn wait_line(&mut self, prefix: &str, within: Duration) -> io::Result<String> {
        let lines = self.lines()?;
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(_) => {}
                Err(_) => {
                    return Err(io::Error::other(format!(
                        "{}: no {prefix:?} line",
                        self.name
                    )))
                }
            }
        }
    }
}

impl Drop for Proc {
    /// SIGTERM first, so that a master process stops its workers; SIGKILL if it lingers.
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on our own child and the processes it forked.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for &pid in &self.also {
            // SAFETY: as above; a pid already gone is harmless here, reused within
            // microseconds is not a real risk.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// How the bench publishes one price.
pub enum Publisher {
    /// tickerd's `POST /publish`, or nchan's publisher location.
    Http {
        addr: SocketAddr,
        path: String,
        token: Option<String>,
        /// Publishes sent whose answers are read at the end: waiting for each answer would
        /// throttle the rate to the server's pace and hide an overload.
        pending: Vec<(u64, TcpStream)>,
    },
    /// Several tickerd instances sharing one feed (`--redis`): the many-symbol workload's
    /// publishes go to them in turn, each to an instance's `POST /publish`.
    RoundRobin {
        addrs: Vec<SocketAddr>,
        token: String,
    },
    /// The floor reads sequence numbers on its stdin.
    Floor(ChildStdin),
    /// Handed over (`take`) to the many-symbol workload's feeder.
    Taken,
}

impl Publisher {
    /// Hands this publisher over, leaving `Taken`.
    pub fn take(&mut self) -> Publisher {
        std::mem::replace(self, Publisher::Taken)
    }

    pub fn publish(&mut self, seq: u64) -> io::Result<()> {
        match self {
            Publisher::Taken => Err(io::Error::other("publisher handed over")),
            Publisher::RoundRobin { .. } => Err(io::Error::other(
                "several instances: the many-symbol workload only",
            )),
            Publisher::Floor(stdin) => writeln!(stdin, "{seq}"),
            Publisher::Http {
                addr,
                path,
                token,
                pending,
            } => {
                let body = format!("{seq}.00");
                let auth = token
                    .as_ref()
                    .map(|t| format!("Authorization: Bearer {t}\r\n"))
                    .unwrap_or_default();
                let mut s = TcpStream::connect(*addr)?;
                write!(
                    s,
                    "POST {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
                    body.len()
                )?;
                pending.push((seq, s));
                Ok(())
            }
        }
    }

    /// Reads the answers to every publish sent; an error names the first that failed.
    pub fn finish(&mut self) -> io::Result<()> {
        let Publisher::Http { pending, .. } = self else {
            return Ok(());
        };
        for (seq, mut s) in pending.drain(..) {
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut answer = Vec::new();
            let _ = s.read_to_end(&mut answer);
            let ok = [&b"HTTP/1.1 200"[..], b"HTTP/1.1 201", b"HTTP/1.1 202"]
                .iter()
                .any(|p| answer.starts_with(p));
            if !ok {
                return Err(io::Error::other(format!(
                    "publish {seq}: {}",
                    String::from_utf8_lossy(&answer)
                        .lines()
                        .next()
                        .unwrap_or("no answer")
                )));
            }
        }
        Ok(())
    }
}

/// A running system under test.
pub struct System {
    /// Where clients connect, and how they speak.
    pub addr: Addr,
    pub proto: Proto,
    pub path: String,
    pub publisher: Publisher,
    /// The processes whose CPU and memory are reported (server first, then a front-end).
    pub procs: Vec<Proc>,
    /// tickerd's HTTP listeners (one per instance), for `/metrics`; empty for the others.
    pub tickerd_http: Vec<SocketAddr>,
    /// Removed once the processes are stopped.
    pub temp_dir: Option<PathBuf>,
}

impl Drop for System {
    fn drop(&mut self) {
        self.procs.clear();
        if let Some(dir) = &self.temp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_port(addr: SocketAddr, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if TcpStream::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The floor; `symbols`: of the many-symbol workload, with that many symbols (and
/// `quote`, records of six fields).
pub fn floor(symbols: Option<usize>, quote: bool) -> io::Result<System> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["--role", "floor"]);
    if let Some(n) = symbols {
        cmd.args(["--symbols", &n.to_string()]);
    }
    if quote {
        cmd.arg("--quote");
    }
    let mut p = Proc::spawn("floor", cmd.stdin(Stdio::piped()).stdout(Stdio::piped()))?;
    let line = p.wait_line("LISTEN ", Duration::from_secs(10))?;
    let addr: SocketAddr = line["LISTEN ".len()..]
        .trim()
        .parse()
        .map_err(io::Error::other)?;
    let stdin = p.stdin().ok_or_else(|| io::Error::other("floor stdin"))?;
    Ok(System {
        addr: Addr::Tcp(addr),
        proto: Proto::Http,
        path: "/ticker".into(),
        publisher: Publisher::Floor(stdin),
        procs: vec![p],
        tickerd_http: Vec::new(),
        temp_dir: None,
    })
}

/// The three ways in: tickerd's SCGI listener, its HTTP listener, or lighttpd in front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Scgi,
    Http,
    Lighttpd,
}

/// tickerd carrying one symbol, as the one-symbol workload has always run it.
pub fn tickerd(via: Via, unix: bool) -> io::Result<System> {
    tickerd_with(via, unix, &["--symbols".into(), "TICK".into()])
}

/// tickerd with `args` (its universe, at least) besides the bench's usual ones.
pub fn tickerd_with(via: Via, unix: bool, args: &[String]) -> io::Result<System> {
    let socket_path =
        std::env::temp_dir().join(format!("tickerd-bench-{}.sock", std::process::id()));
    let scgi_arg = if unix {
        format!("unix:{}", socket_path.display())
    } else {
        "127.0.0.1:0".to_string()
    };
    let (p, http, scgi) = start_tickerd("tickerd", args, &scgi_arg)?;
    let publisher = Publisher::Http {
        addr: http,
        path: "/publish".into(),
        token: Some(TOKEN.into()),
        pending: Vec::new(),
    };
    let mut procs = vec![p];
    let (addr, proto) = match via {
        Via::Http => (Addr::Tcp(http), Proto::Http),
        Via::Scgi => (scgi, Proto::Scgi),
        Via::Lighttpd => {
            let port = free_port()?;
            let mut cmd = Command::new("lighttpd");
            cmd.args(["-D", "-f"])
                .arg(repo().join("conf/lighttpd.conf"))
                .current_dir(repo())
                .env("TICKERD_FRONT_PORT", port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            match &scgi {
                Addr::Tcp(a) => cmd
                    .env("TICKERD_SCGI_HOST", a.ip().to_string())
                    .env("TICKERD_SCGI_PORT", a.port().to_string()),
                Addr::Unix(path) => cmd.env("TICKERD_SCGI_SOCKET", path),
            };
            procs.push(Proc::spawn("lighttpd", &mut cmd)?);
            let front: SocketAddr = ([127, 0, 0, 1], port).into();
            if !wait_port(front, Duration::from_secs(10)) {
                return Err(io::Error::other("lighttpd did not start"));
            }
            (Addr::Tcp(front), Proto::Http)
        }
    };
    Ok(System {
        addr,
        proto,
        path: "/ticker".into(),
        publisher,
        procs,
        tickerd_http: vec![http],
        temp_dir: None,
    })
}

/// Starts one tickerd with `args` besides the bench's usual ones, its SCGI listener on
/// `scgi_arg`; returns it with its HTTP and SCGI addresses (from its listening line).
fn start_tickerd(
    name: &str,
    args: &[String],
    scgi_arg: &str,
) -> io::Result<(Proc, SocketAddr, Addr)> {
    let mut p = Proc::spawn(
        name,
        Command::new(env!("CARGO_BIN_EXE_tickerd"))
            .args([
                "--tick-ms",
                "0",
                "--heartbeat-s",
                "0",
                "--initial-price",
                "0.01",
            ])
            .args(args)
            .args(["--http", "127.0.0.1:0", "--scgi", scgi_arg])
            .env("TICKERD_PUBLISH_TOKEN", TOKEN)
            .env("RUST_LOG", "warn,tickerd=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )?;
    // The listening line is on stderr; keep draining it after.
    let stderr = p.child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let label = name.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening:") {
                let _ = tx.send(line);
            } else if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("  {label}: {line}");
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| io::Error::other(format!("{name} did not start")))?;
    let find = |proto: &str| -> Option<String> {
        let rest = line.split(&format!("{proto} ")).nth(1)?;
        Some(rest.split([',', ';']).next()?.trim().to_string())
    };
    let http: SocketAddr = find("http")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| io::Error::other("no http address"))?;
    let scgi: Addr = find("scgi")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| io::Error::other("no scgi address"))?;
    Ok((p, http, scgi))
}

/// A private redis-server as tests/e2e/support/redis.rs starts one: from the shipped
/// `conf/redis.conf`, on a Unix socket in `dir`, persistence off. Returns it with its
/// `--redis` address once it answers PING.
pub fn redis_server(dir: &Path) -> io::Result<(Proc, String)> {
    let socket = dir.join("redis.sock");
    let log = std::fs::File::create(dir.join("redis.log"))?;
    let mut p = Proc::spawn(
        "redis",
        Command::new("redis-server")
            .arg(repo().join("conf/redis.conf"))
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log),
    )
    .map_err(|e| {
        io::Error::other(format!(
            "{e} (apt-get install -y --no-install-recommends redis-server)"
        ))
    })?;
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if redis_ping(&socket).is_ok() {
            return Ok((p, format!("unix:{}", socket.display())));
        }
        if Instant::now() > end || p.exited() {
            let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
            return Err(io::Error::other(format!(
                "redis-server did not start: {log}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn redis_ping(socket: &Path) -> io::Result<()> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"PING\r\n")?;
    let mut answer = [0u8; 7];
    s.read_exact(&mut answer)?;
    if &answer == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(io::Error::other("not PONG"))
    }
}

/// lighttpd from `conf/lighttpd-balance.conf` over `backends`; a port taken meanwhile by
/// someone else is tried again with another.
fn lighttpd_balance(backends: &[Addr]) -> io::Result<(Proc, SocketAddr)> {
    let list = backends
        .iter()
        .map(|b| match b {
            Addr::Tcp(a) => a.to_string(),
            Addr::Unix(p) => p.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    for _ in 0..5 {
        let port = free_port()?;
        let mut p = Proc::spawn(
            "lighttpd",
            Command::new("lighttpd")
                .args(["-D", "-f"])
                .arg(repo().join("conf/lighttpd-balance.conf"))
                .current_dir(repo())
                .env("TICKERD_FRONT_PORT", port.to_string())
                .env("TICKERD_SCGI_BACKENDS", &list)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        let front: SocketAddr = ([127, 0, 0, 1], port).into();
        if wait_port(front, Duration::from_secs(10)) && !p.exited() {
            return Ok((p, front));
        }
    }
    Err(io::Error::other(
        "lighttpd did not start from conf/lighttpd-balance.conf",
    ))
}

/// The body of tickerd's answer to `GET path`, if it is a 200.
pub fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// Reads tickerd's `/metrics`: each sample line's name (with labels) and value.
pub fn metrics(addr: SocketAddr) -> Option<Vec<(String, f64)>> {
    let body = get(addr, "/metrics")?;
    Some(
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect(),
    )
}

/// One metric's value from [`metrics`]' answer.
pub fn metric(samples: &[(String, f64)], name: &str) -> Option<f64> {
    samples.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

/// `instances` tickerd processes behind lighttpd (`conf/lighttpd-balance.conf`, which
/// spreads new streams over them, fewest open first), each with `args`; with `redis`, all
/// sharing one private Redis (`--redis`, each instance its two links), else one process on
/// its own (`instances` must then be 1). Publishes go to the instances in turn.
pub fn tickerd_cluster(
    instances: usize,
    redis: bool,
    unix: bool,
    args: &[String],
) -> io::Result<System> {
    assert!(
        redis || instances == 1,
        "several instances share a feed through Redis"
    );
    static CLUSTERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("tickerd-bench-cluster-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // Removed with the system (or here, if it does not start).
    let mut sys = System {
        addr: Addr::Tcp(([127, 0, 0, 1], 0).into()),
        proto: Proto::Http,
        path: "/ticker".into(),
        publisher: Publisher::Taken,
        procs: Vec::new(),
        tickerd_http: Vec::new(),
        temp_dir: Some(dir.clone()),
    };
    let mut args = args.to_vec();
    let mut redis_proc = None;
    if redis {
        let (p, addr) = redis_server(&dir)?;
        redis_proc = Some(p);
        args.extend(["--redis".into(), addr, "--redis-key".into(), "bench".into()]);
    }
    let mut backends = Vec::new();
    for i in 1..=instances {
        let scgi_arg = if unix {
            format!("unix:{}", dir.join(format!("scgi-{i}.sock")).display())
        } else {
            "127.0.0.1:0".to_string()
        };
        let name = if instances > 1 {
            format!("tickerd#{i}")
        } else {
            "tickerd".to_string()
        };
        let (p, http, scgi) = start_tickerd(&name, &args, &scgi_arg)?;
        sys.procs.push(p);
        sys.tickerd_http.push(http);
        backends.push(scgi);
    }
    if redis {
        // Each instance loads (or seeds) the feed before it may take publishes.
        let end = Instant::now() + Duration::from_secs(15);
        for (i, &http) in sys.tickerd_http.iter().enumerate() {
            while metrics(http).and_then(|m| metric(&m, "tickerd_redis_up")) != Some(1.0) {
                if Instant::now() > end {
                    return Err(io::Error::other(format!(
                        "tickerd instance {} did not load the feed from Redis",
                        i + 1
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    sys.procs.extend(redis_proc);
    let (front_proc, front) = lighttpd_balance(&backends)?;
    sys.procs.push(front_proc);
    sys.addr = Addr::Tcp(front);
    sys.publisher = Publisher::RoundRobin {
        addrs: sys.tickerd_http.clone(),
        token: TOKEN.into(),
    };
    Ok(sys)
}

/// nginx with nchan from `benches/nchan.conf` (Debian's nginx-light and
/// libnginx-mod-nchan).
pub fn nchan() -> io::Result<System> {
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("tickerd-bench-nchan-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // nginx reads no environment: the port goes into a copy of the file.
    let conf = std::fs::read_to_string(repo().join("benches/nchan.conf"))?
        .replace("__PORT__", &port.to_string());
    let conf_path = dir.join("nchan.conf");
    std::fs::write(&conf_path, conf)?;
    let p = Proc::spawn(
        "nginx+nchan",
        Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .args(["-e", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    if !wait_port(addr, Duration::from_secs(10)) {
        return Err(io::Error::other("nginx with nchan did not start"));
    }
    // The master forks one worker: measure the worker, which does the work.
    let worker = find_child(p.pid()).unwrap_or(p.pid());
    let mut p = p;
    if worker != p.pid() {
        p.also.push(worker);
    }
    let mut procs = vec![p];
    procs[0].name = format!("nchan[{worker}]");
    Ok(System {
        addr: Addr::Tcp(addr),
        proto: Proto::Http,
        path: "/sub".into(),
        publisher: Publisher::Http {
            addr,
            path: "/pub".into(),
            token: None,
            pending: Vec::new(),
        },
        procs,
        tickerd_http: Vec::new(),
        temp_dir: Some(dir),
    })
}

/// The first child process of `pid`, from /proc.
fn find_child(pid: u32) -> Option<u32> {
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(c) = children
            .split_whitespace()
            .next()
            .and_then(|c| c.parse().ok())
        {
            return Some(c);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

impl System {
    /// The pid to measure for each reported process.
    pub fn measured(&self) -> Vec<(String, u32)> {
        self.procs
            .iter()
            .map(|p| match p.name.strip_prefix("nchan[") {
                Some(rest) => (
                    "nchan".to_string(),
                    rest.trim_end_matches(']').parse().unwrap_or(p.pid()),
                ),
                None => (p.name.clone(), p.pid()),
            })
            .collect()
    }
}
