//! Redis for the tests: a private `redis-server` (started from the shipped `conf/redis.conf`,
//! on a Unix socket in a scratch directory, persistence off) that a test kills, stops,
//! freezes and restarts empty; a byte-forwarding [`Proxy`] in front of it that the test cuts,
//! black-holes or stalls; a [`BrokenRedis`] that answers with what is not Redis; and a small
//! blocking RESP client to look at the feed's keys.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{dies_with_its_starter, repo_root, wait_until, which, TempDir};

/// A private redis-server, killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    socket: PathBuf,
    dir: TempDir,
    log: Arc<Mutex<String>>,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a fresh, empty Redis on `<scratch>/redis.sock`.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts Redis with extra `--option value` arguments.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let dir = TempDir::new("redis");
        let socket = dir.join("redis.sock");
        let mut redis = RedisServer {
            child: None,
            socket,
            dir,
            log: Arc::new(Mutex::new(String::new())),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let binary = which("redis-server").expect(
            "redis-server is not installed: `apt-get install -y --no-install-recommends \
             redis-server` (.ci/run does it)",
        );
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = Command::new(binary);
        cmd.arg(repo_root().join("conf/redis.conf"))
            .args(["--port", "0", "--unixsocket"])
            .arg(&self.socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&*self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = dies_with_its_starter(&mut cmd)
            .spawn()
            .expect("start redis-server");
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = self.log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let mut log = sink.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        self.child = Some(child);
        let socket = self.socket.clone();
        let up = wait_until(Duration::from_secs(10), || {
            RespClient::connect(&socket)
                .ok()
                .and_then(|mut c| c.cmd(&["PING"]).ok())
                .is_some_and(|r| r == Reply::Simple("PONG".into()))
        });
        assert!(up, "redis-server did not start: {}", self.log());
    }

    /// `unix:PATH`, for tickerd's `--redis`.
    pub fn addr(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// SIGKILL: Redis is gone at once, with whatever it held (the socket file stays).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: Redis holds every connection and answers nothing.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT.
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Kills Redis and starts a new, empty one on the same socket path (Redis lost its data).
    pub fn restart_empty(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A new client connection.
    pub fn client(&self) -> RespClient {
        RespClient::connect(&self.socket).expect("connect to redis")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on our own child: a frozen Redis must be able to die.
            unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
        }
        self.kill();
    }
}

/// A reply, as the tests look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub fn text(&self) -> String {
        match self {
            Reply::Simple(s) | Reply::Error(s) => s.clone(),
            Reply::Int(n) => n.to_string(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).to_string(),
            other => panic!("not text: {other:?}"),
        }
    }

    pub fn items(&self) -> &[Reply] {
        match self {
            Reply::Array(Some(items)) => items,
            Reply::Array(None) => &[],
            other => panic!("not an array: {other:?}"),
        }
    }
}

/// A blocking RESP2 client, for looking at what tickerd keeps.
pub struct RespClient {
    reader: BufReader<UnixStream>,
}

impl RespClient {
    pub fn connect(path: &Path) -> std::io::Result<RespClient> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(RespClient {
            reader: BufReader::new(s),
        })
    }

    pub fn cmd(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.reader.get_mut().write_all(&out)?;
        read_reply(&mut self.reader)
    }
}

fn read_reply(r: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, line.to_string());
    Ok(match kind {
        "+" => Reply::Simple(rest.into()),
        "-" => Reply::Error(rest.into()),
        ":" => Reply::Int(rest.parse().map_err(|_| bad())?),
        "$" => match rest.parse::<i64>().map_err(|_| bad())? {
            -1 => Reply::Bulk(None),
            n => {
                let mut b = vec![0; n as usize + 2];
                r.read_exact(&mut b)?;
                b.truncate(n as usize);
                Reply::Bulk(Some(b))
            }
        },
        "*" => match rest.parse::<i64>().map_err(|_| bad())? {
            -1 => Reply::Array(None),
            n => Reply::Array(Some(
                (0..n).map(|_| read_reply(r)).collect::<Result<_, _>>()?,
            )),
        },
        _ => return Err(bad()),
    })
}

/// What the feed in Redis holds, read with the client: (counter, hash symbol → (cents, id),
/// stream length, the `first` of the stream's oldest entry).
pub struct FeedInRedis {
    pub counter: u64,
    pub prices: std::collections::BTreeMap<String, (u64, u64)>,
    pub stream_len: u64,
    pub oldest_first: Option<u64>,
}

pub fn feed_in_redis(redis: &RedisServer, prefix: &str) -> FeedInRedis {
    let mut c = redis.client();
    let counter = match c.cmd(&["GET", &format!("{prefix}:id")]).unwrap() {
        Reply::Bulk(None) => 0,
        r => r.text().parse().unwrap(),
    };
    // Each symbol's record, `price=1.23@ID` (the tests' universes have one price field).
    let hash = c.cmd(&["HGETALL", &format!("{prefix}:records")]).unwrap();
    let prices = hash
        .items()
        .chunks(2)
        .map(|p| {
            let v = p[1].text();
            let (value, id) = v.strip_prefix("price=").unwrap().split_once('@').unwrap();
            let (whole, cents) = value.split_once('.').unwrap();
            let cents = whole.parse::<u64>().unwrap() * 100 + cents.parse::<u64>().unwrap();
            (p[0].text(), (cents, id.parse().unwrap()))
        })
        .collect();
    let updates = format!("{prefix}:updates");
    let stream_len = match c.cmd(&["XLEN", &updates]).unwrap() {
        Reply::Int(n) => n as u64,
        r => panic!("XLEN: {r:?}"),
    };
    let oldest = c
        .cmd(&["XRANGE", &updates, "-", "+", "COUNT", "1"])
        .unwrap();
    // An entry's `u`: `ID SYM name=value` lines; its first id is the first line's.
    let oldest_first = oldest.items().first().map(|entry| {
        let fields = entry.items()[1].items();
        let at = fields.iter().position(|f| f.text() == "u").unwrap();
        let lines = fields[at + 1].text();
        lines.split(' ').next().unwrap().parse().unwrap()
    });
    FeedInRedis {
        counter,
        prices,
        stream_len,
        oldest_first,
    }
}

/// What a [`Proxy`] does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes go both ways.
    Forward,
    /// New connections are reset as soon as they are accepted (tickerd's connect succeeds,
    /// its first read fails): the network says no.
    Refuse,
    /// New connections are accepted and held: whatever they send is read and dropped, and
    /// nothing ever comes back (a host that vanished).
    BlackHole,
}

struct ProxyState {
    mode: Mode,
    /// Live forwarded connections (both ends), to cut.
    pairs: Vec<(TcpStream, UnixStream)>,
    /// Black-holed connections.
    held: Vec<TcpStream>,
    /// Forwarding holds bytes instead of passing them on, without closing anything.
    stalled: bool,
}

/// A TCP listener on loopback that forwards each connection to Redis's Unix socket, under
/// the test's control. tickerd reaches Redis through it with `--redis 127.0.0.1:PORT`.
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<(Mutex<ProxyState>, Condvar)>,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    /// A proxy to the Redis on `socket`.
    pub fn start(socket: &Path) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new((
            Mutex::new(ProxyState {
                mode: Mode::Forward,
                pairs: Vec::new(),
                held: Vec::new(),
                stalled: false,
            }),
            Condvar::new(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (st, stp, acc, upstream) = (
            state.clone(),
            stop.clone(),
            accepted.clone(),
            socket.to_path_buf(),
        );
        std::thread::spawn(move || {
            while !stp.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                };
                acc.fetch_add(1, Ordering::Relaxed);
                client.set_nonblocking(false).unwrap();
                let mode = st.0.lock().unwrap().mode;
                match mode {
                    Mode::Refuse => super::reset(client),
                    Mode::BlackHole => {
                        let mut sink = client.try_clone().unwrap();
                        st.0.lock().unwrap().held.push(client);
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 4096];
                            while matches!(sink.read(&mut buf), Ok(n) if n > 0) {}
                        });
                    }
                    Mode::Forward => {
                        let Ok(server) = UnixStream::connect(&upstream) else {
                            super::reset(client);
                            continue;
                        };
                        let pair = (client.try_clone().unwrap(), server.try_clone().unwrap());
                        st.0.lock().unwrap().pairs.push(pair);
                        let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                        let st2 = st.clone();
                        std::thread::spawn(move || pump(client, server, &st2));
                        let st3 = st.clone();
                        std::thread::spawn(move || pump(s2, c2, &st3));
                    }
                }
            }
        });
        Proxy {
            addr,
            state,
            stop,
            accepted,
        }
    }

    /// For tickerd's `--redis`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Drops every connection (a reset each side) and treats new ones as `mode` says.
    pub fn cut(&self, mode: Mode) {
        let mut st = self.state.0.lock().unwrap();
        st.mode = mode;
        st.stalled = false;
        for (c, s) in st.pairs.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
            abort(c);
        }
        for c in st.held.drain(..) {
            abort(c);
        }
        self.state.1.notify_all();
    }

    /// Forwards again (held connections are dropped; tickerd gives up on them anyway).
    pub fn restore(&self) {
        let mut st = self.state.0.lock().unwrap();
        st.mode = Mode::Forward;
        for c in st.held.drain(..) {
            abort(c);
        }
        st.stalled = false;
        self.state.1.notify_all();
    }

    /// Holds every byte in flight, both ways, keeping the connections open.
    pub fn stall(&self) {
        self.state.0.lock().unwrap().stalled = true;
    }

    /// Passes on what was held, and forwards again.
    pub fn unstall(&self) {
        self.state.0.lock().unwrap().stalled = false;
        self.state.1.notify_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut(Mode::Refuse);
    }
}

/// Resets a connection whose other clones (a pump's) may still be open: no linger, then
/// both ways shut, so the pumps end and the last close sends the reset.
fn abort(c: TcpStream) {
    if let Ok(clone) = c.try_clone() {
        super::reset(clone);
    }
    let _ = c.shutdown(Shutdown::Both);
}

/// Copies `from` to `to` until either end closes, holding bytes while stalled.
fn pump(
    mut from: impl Read + ShutBoth,
    mut to: impl Write + ShutBoth,
    state: &(Mutex<ProxyState>, Condvar),
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let (lock, wake) = state;
            let mut st = lock.lock().unwrap();
            while st.stalled {
                st = wake.wait(st).unwrap();
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    from.shut();
    to.shut();
}

trait ShutBoth {
    fn shut(&self);
}

impl ShutBoth for TcpStream {
    fn shut(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl ShutBoth for UnixStream {
    fn shut(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

/// What a [`BrokenRedis`] sends.
#[derive(Debug, Clone)]
pub enum Broken {
    /// `bytes` in answer to whatever arrives first on each connection, then nothing.
    Answer(&'static [u8]),
    /// `bytes` as soon as a connection is accepted, before anything is asked.
    Greet(&'static [u8]),
    /// Closes each connection as soon as something arrives.
    Close,
}

/// A stand-in on a Unix socket that is not Redis: it accepts connections and answers with
/// what [`Broken`] says.
pub struct BrokenRedis {
    socket: PathBuf,
    _dir: TempDir,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
}

impl BrokenRedis {
    pub fn start(behaviour: Broken) -> BrokenRedis {
        let dir = TempDir::new("broken-redis");
        let socket = dir.join("redis.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (stp, acc) = (stop.clone(), accepted.clone());
        std::thread::spawn(move || {
            while !stp.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                acc.fetch_add(1, Ordering::Relaxed);
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                let behaviour = behaviour.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    match behaviour {
                        Broken::Greet(bytes) => {
                            let _ = conn.write_all(bytes);
                        }
                        Broken::Answer(bytes) => {
                            if matches!(conn.read(&mut buf), Ok(n) if n > 0) {
                                let _ = conn.write_all(bytes);
                            }
                        }
                        Broken::Close => {
                            let _ = conn.read(&mut buf);
                            return;
                        }
                    }
                    // Held open; what else arrives is read and dropped.
                    while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                });
            }
        });
        BrokenRedis {
            socket,
            _dir: dir,
            stop,
            accepted,
        }
    }

    pub fn addr(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// Connections accepted so far (tickerd opens two per attempt).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for BrokenRedis {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One event of a stream of named symbols.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Update {
    pub id: u64,
    pub symbol: String,
    pub price: String,
}

pub fn update(e: &super::SseEvent) -> Update {
    let v: serde_json::Value =
        serde_json::from_str(&e.data).unwrap_or_else(|_| panic!("not JSON: {e:?}"));
    Update {
        id: e.id(),
        symbol: v["symbol"].as_str().unwrap().to_string(),
        price: v["price"].as_str().unwrap().to_string(),
    }
}

/// Every update of the feed the test knows of, by id: the seed (from `/symbols`) and each
/// accepted publish, with the ids its answer gave.
#[derive(Debug, Default, Clone)]
pub struct History {
    pub by_id: std::collections::BTreeMap<u64, (String, String)>,
}

impl History {
    /// The current prices and ids an instance lists at `/symbols`.
    pub fn from_symbols(http: SocketAddr) -> History {
        let (status, _, body) =
            super::http_request(http, "GET /symbols HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut h = History::default();
        for s in v.as_array().unwrap() {
            h.by_id.insert(
                s["id"].as_u64().unwrap(),
                (
                    s["symbol"].as_str().unwrap().to_string(),
                    s["price"].as_str().unwrap().to_string(),
                ),
            );
        }
        h
    }

    /// Records an accepted batch of `pairs` whose last update took `last`.
    pub fn record(&mut self, pairs: &[(String, String)], last: u64) {
        let first = last + 1 - pairs.len() as u64;
        for (i, (s, p)) in pairs.iter().enumerate() {
            let old = self.by_id.insert(first + i as u64, (s.clone(), p.clone()));
            assert!(old.is_none(), "id {} given twice", first + i as u64);
        }
    }

    pub fn last_id(&self) -> u64 {
        self.by_id.keys().next_back().copied().unwrap_or(0)
    }

    /// Each symbol's latest update.
    pub fn latest(&self) -> std::collections::BTreeMap<String, (u64, String)> {
        let mut out = std::collections::BTreeMap::new();
        for (id, (s, p)) in &self.by_id {
            out.insert(s.clone(), (*id, p.clone()));
        }
        out
    }

    /// What a stream of `symbols` resuming after `after` is due: the latest update of each
    /// symbol above it, ascending.
    pub fn due_after(&self, symbols: &[&str], after: u64) -> Vec<Update> {
        let mut due: Vec<Update> = self
            .latest()
            .into_iter()
            .filter(|(s, (id, _))| *id > after && symbols.contains(&s.as_str()))
            .map(|(symbol, (id, price))| Update { id, symbol, price })
            .collect();
        due.sort();
        due
    }

    /// Whether `u` is the update the feed gave that id.
    pub fn knows(&self, u: &Update) -> bool {
        self.by_id.get(&u.id) == Some(&(u.symbol.clone(), u.price.clone()))
    }
}

/// `SYM=PRICE&…` pairs.
pub fn pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .map(|p| {
            let (s, v) = p.split_once('=').unwrap();
            (s.to_string(), v.to_string())
        })
        .collect()
}

/// A publish's answer, with its head and how long it took.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
    pub took: Duration,
}

/// POST /publish over HTTP to `http` (tickerd, or a front-end: the request asks to close).
pub fn publish_to(http: SocketAddr, body: &str) -> Answer {
    let req = format!(
        "POST /publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        super::TOKEN,
        body.len()
    );
    let start = Instant::now();
    let (status, head, body) = super::http_request(http, &req);
    Answer {
        status,
        head,
        body,
        took: start.elapsed(),
    }
}

impl Answer {
    /// The id of an accepted publish.
    pub fn id(&self) -> u64 {
        assert_eq!(self.status, 200, "{self:?}");
        self.body.lines().next().unwrap().parse().unwrap()
    }

    /// A 503 that tells the publisher to come back in 2 s.
    pub fn assert_unavailable(&self) {
        assert_eq!(self.status, 503, "{self:?}");
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("retry-after: 2\r\n"),
            "{self:?}"
        );
    }
}
