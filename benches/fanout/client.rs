//! A client worker process: opens its share of event streams (or long polls) from a few
//! threads, each with its own mio loop, ramped; records when each event arrives; reports.
//!
//! Talks to the coordinator by lines: prints `READY <connected> <failed> <ms>` once every
//! connection has its answer's head (or failed), then waits for `STOP` on stdin, writes its
//! arrivals to the `--out` file (little-endian u32 seq, u64 ns records) and prints
//! `DONE <connected> <failed> <dropped> <responses> <disorder>`.
//!
//! Many-symbol streams (`--symbols`): each client asks for its own symbols (`workload`),
//! and each event is checked and summed up as it comes (`watch`); the `--out` file holds the
//! summary instead of one record per event. Before `STOP`, the coordinator sends
//! `FINAL <file>` (each symbol's final value, u64 cents) and then asks `STALE?` until the
//! answer `STALE <n>` (clients not at every final value; `-` while not yet counted) is 0.
//! `MARK` (sent when measuring starts) notes how many TCP segments each client has received,
//! so that the summary counts those that came after.

use std::io::{self, BufRead, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use mio::net::{TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::stream::{Event, ResponseReader};
use crate::sys::now_ns;
use crate::watch::{Record, Summary, Watch};
use crate::workload::{self, Universe, Zipf};

#[derive(Debug, Clone)]
pub enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::str::FromStr for Addr {
    type Err = String;
    fn from_str(s: &str) -> Result<Addr, String> {
        match s.strip_prefix("unix:") {
            Some(path) => Ok(Addr::Unix(path.into())),
            None => s.parse().map(Addr::Tcp).map_err(|e| format!("{s}: {e}")),
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "{a}"),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Http,
    Scgi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Stream,
    LongPoll,
    /// Streams that send their request and never read a byte: the slowest reader there is.
    Stalled,
}

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub addr: Addr,
    pub proto: Proto,
    pub path: String,
    pub count: usize,
    pub threads: usize,
    pub source: Option<IpAddr>,
    /// New connections per second, for the whole worker.
    pub ramp_per_s: u64,
    pub mode: Mode,
    pub out: PathBuf,
    pub multi: Option<MultiOptions>,
}

/// A many-symbol stream's workload, as the worker draws it.
#[derive(Debug, Clone, Copy)]
pub struct MultiOptions {
    /// Symbols in the universe.
    pub symbols: usize,
    /// Symbols per client.
    pub subscribe: usize,
    pub zipf: f64,
    /// The worker's index within its system: the same subscriptions in every system.
    pub worker: u64,
    /// The CLOCK_MONOTONIC ns that a price of 0.00 stands for.
    pub epoch: u64,
    /// Quotes (`--quote`) instead of prices.
    pub quote: bool,
    /// `max_hz=N` in each request.
    pub max_hz: Option<f64>,
}

/// Not yet counted (no final values yet).
const UNCOUNTED: u64 = u64::MAX;

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    connected: u64,
    failed: u64,
    /// Streams that ended after their head (the server or front-end closed them).
    dropped: u64,
    /// Whole responses (long polls).
    responses: u64,
    /// Events a stream got again, or after a later one.
    disorder: u64,
}

/// What a client thread hands back when it stops: its tally, its arrivals (one symbol:
/// (seq, ns) per event) and its summary (many symbols).
type ThreadResult = (Tally, Vec<(u32, u64)>, Summary);

/// The worker's main: runs until `STOP`, then reports.
pub fn run(opts: WorkerOptions) -> io::Result<()> {
    // Thousands of streams: the soft limit may be 1024 where the hard one allows more.
    tickerd::net::raise_open_file_limit();
    let stop = Arc::new(AtomicBool::new(false));
    let mark = Arc::new(AtomicBool::new(false));
    let finals: Arc<OnceLock<Vec<u64>>> = Arc::default();
    let (ready_tx, ready_rx) = mpsc::channel();
    let started = now_ns();
    let mut threads = Vec::new();
    let mut stale = Vec::new();
    let mut first = 0;
    for i in 0..opts.threads {
        let share = opts.count / opts.threads + usize::from(i < opts.count % opts.threads);
        let shared = Shared {
            stop: stop.clone(),
            mark: mark.clone(),
            finals: finals.clone(),
            stale: Arc::new(AtomicU64::new(UNCOUNTED)),
            first,
        };
        first += share as u64;
        stale.push(shared.stale.clone());
        let (opts, ready_tx) = (opts.clone(), ready_tx.clone());
        threads.push(std::thread::spawn(move || {
            client_thread(&opts, share, &shared, ready_tx)
        }));
    }
    drop(ready_tx);
    let mut total = Tally::default();
    for _ in 0..opts.threads {
        if let Ok(t) = ready_rx.recv() {
            total.connected += t.connected;
            total.failed += t.failed;
        }
    }
    let ms = (now_ns() - started) / 1_000_000;
    println!("READY {} {} {ms}", total.connected, total.failed);
    io::stdout().flush()?;
    follow_coordinator(&mark, &finals, &stale)?;
    stop.store(true, Ordering::Relaxed);
    hand_over(&opts, threads, total)
}

/// Takes the coordinator's lines on stdin (`MARK`, `FINAL <file>`, `STALE?`) until `STOP`.
fn follow_coordinator(
    mark: &AtomicBool,
    finals: &OnceLock<Vec<u64>>,
    stale: &[Arc<AtomicU64>],
) -> io::Result<()> {
    for line in io::stdin().lock().lines() {
        let line = line?;
        let mut words = line.split_whitespace();
        match words.next() {
            Some("STOP") => break,
            Some("MARK") => mark.store(true, Ordering::Relaxed),
            Some("FINAL") => {
                let path = words
                    .next()
                    .ok_or_else(|| io::Error::other("FINAL <file>"))?;
                let bytes = std::fs::read(path)?;
                let values = bytes
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                let _ = finals.set(values);
            }
            Some("STALE?") => {
                let counts: Vec<u64> = stale.iter().map(|s| s.load(Ordering::Relaxed)).collect();
                if counts.contains(&UNCOUNTED) {
                    println!("STALE -");
                } else {
                    println!("STALE {}", counts.iter().sum::<u64>());
                }
                io::stdout().flush()?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Once the threads stop: their arrivals (or summaries) to the `--out` file, then `DONE`.
fn hand_over(
    opts: &WorkerOptions,
    threads: Vec<std::thread::JoinHandle<ThreadResult>>,
    total: Tally,
) -> io::Result<()> {
    let mut file = io::BufWriter::new(std::fs::File::create(&opts.out)?);
    let mut sum = Tally::default();
    let mut summary = Summary::default();
    for t in threads {
        let (tally, arrivals, thread_summary) = t.join().expect("client thread");
        sum.dropped += tally.dropped;
        sum.responses += tally.responses;
        sum.disorder += tally.disorder;
        for (seq, ns) in arrivals {
            file.write_all(&seq.to_le_bytes())?;
            file.write_all(&ns.to_le_bytes())?;
        }
        summary.merge(&thread_summary);
    }
    if opts.multi.is_some() {
        summary.write_to(&mut file)?;
    }
    file.flush()?;
    println!(
        "DONE {} {} {} {} {}",
        total.connected, total.failed, sum.dropped, sum.responses, sum.disorder
    );
    io::stdout().flush()
}

enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Sock {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Sock::Tcp(s) => s,
            Sock::Unix(s) => s,
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        }
    }
    /// TCP data segments received so far (`tcpi_data_segs_in` of `TCP_INFO`, Linux 4.6+).
    fn data_segments_in(&self) -> u64 {
        use std::os::fd::AsRawFd;
        let Sock::Tcp(s) = self else { return 0 };
        // struct tcp_info: 8 bytes of u8 fields, 24 u32, 4 u64, then segs_out, segs_in,
        // notsent_bytes, min_rtt, data_segs_in (at byte 152).
        const AT: usize = 152;
        let mut info = [0u8; 256];
        let mut len = info.len() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `info` and updates `len`.
        let r = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if r != 0 || (len as usize) < AT + 4 {
            return 0;
        }
        u64::from(u32::from_ne_bytes(info[AT..AT + 4].try_into().unwrap()))
    }

    fn connect_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Sock::Tcp(s) => s.take_error(),
            Sock::Unix(s) => s.take_error(),
        }
    }
}

enum Phase {
    /// Connect under way; the request goes out once the socket is writable.
    Connecting,
    Reading,
}

struct Client {
    sock: Sock,
    phase: Phase,
    reader: ResponseReader,
    /// A many-symbol stream's symbols and what it has of each.
    watch: Option<Watch>,
    /// The request's path and query.
    path: String,
    /// Counted as connected (head of a 200 seen) yet?
    counted: bool,
    last_id: Option<String>,
    /// The last sequence number this stream received, to catch repeats and disorder.
    last_seq: u32,
}

fn open(opts: &WorkerOptions) -> io::Result<Sock> {
    match &opts.addr {
        Addr::Unix(path) => UnixStream::connect(path).map(Sock::Unix),
        Addr::Tcp(addr) => {
            use socket2::{Domain, Socket, Type};
            let s = Socket::new(Domain::for_address(*addr), Type::STREAM, None)?;
            s.set_nonblocking(true)?;
            s.set_nodelay(true)?;
            if opts.mode == Mode::Stalled {
                // A small window, so the server's send buffer fills within seconds and it
                // must decide what a reader that never reads gets.
                s.set_recv_buffer_size(4096)?;
            }
            if let Some(ip) = opts.source {
                // Our own source address: its own 28,000 ephemeral ports.
                s.bind(&SocketAddr::new(ip, 0).into())?;
            }
            match s.connect(&(*addr).into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(e),
            }
            Ok(Sock::Tcp(TcpStream::from_std(s.into())))
        }
    }
}

fn request(opts: &WorkerOptions, target: &str, last_id: Option<&str>) -> Vec<u8> {
    let long_poll = opts.mode == Mode::LongPoll;
    match opts.proto {
        Proto::Http => {
            let mut r =
                format!("GET {target} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n");
            if long_poll {
                r.push_str("X-Event-Source-Simulate: Long-Polling\r\n");
            }
            if let Some(id) = last_id {
                r.push_str(&format!("Last-Event-ID: {id}\r\n"));
            }
            r.push_str("\r\n");
            r.into_bytes()
        }
        Proto::Scgi => {
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let mut headers = vec![
                ("REQUEST_METHOD", "GET"),
                ("SCRIPT_NAME", ""),
                ("PATH_INFO", path),
                ("QUERY_STRING", query),
                ("REQUEST_URI", target),
            ];
            if long_poll {
                headers.push(("HTTP_X_EVENT_SOURCE_SIMULATE", "Long-Polling"));
            }
            if let Some(id) = last_id {
                headers.push(("HTTP_LAST_EVENT_ID", id));
            }
            tickerd::scgi::encode(&headers, b"")
        }
    }
}

/// What a client thread shares with the worker's main thread.
struct Shared {
    stop: Arc<AtomicBool>,
    /// Measuring has started: note each client's segments received so far.
    mark: Arc<AtomicBool>,
    /// Each symbol's final value, once the coordinator has sent them.
    finals: Arc<OnceLock<Vec<u64>>>,
    /// This thread's clients not at every final value (`UNCOUNTED` before the finals).
    stale: Arc<AtomicU64>,
    /// The worker-wide number of this thread's first client (for its seed).
    first: u64,
}

/// How often a thread counts its stale clients once the finals are known.
const STALE_EVERY_NS: u64 = 50_000_000;

/// The symbols client number `n` of this worker asks for, and its request target.
fn choose(opts: &WorkerOptions, zipf: Option<&Zipf>, n: u64) -> (Option<Watch>, String) {
    match (opts.multi, zipf) {
        (Some(m), Some(zipf)) => {
            let symbols =
                workload::subscription(zipf, m.subscribe, workload::client_seed(m.worker, n));
            let mut target = format!(
                "{}?symbols={}",
                opts.path,
                Universe::new(m.symbols).query(&symbols)
            );
            if let Some(hz) = m.max_hz {
                target.push_str(&format!("&max_hz={hz}"));
            }
            let record = match m.quote {
                true => Record::Quote,
                false => Record::Price,
            };
            (Some(Watch::new(symbols, record, m.max_hz)), target)
        }
        _ => (None, opts.path.clone()),
    }
}

/// TCP data segments the many-symbol clients have received so far.
fn segments(clients: &Slab<Client>) -> u64 {
    clients
        .iter()
        .filter(|(_, c)| c.watch.is_some())
        .map(|(_, c)| c.sock.data_segments_in())
        .sum()
}

/// Counts the clients (and symbols) not at their final value.
fn count_stale(clients: &Slab<Client>, finals: &[u64]) -> (u64, u64) {
    clients
        .iter()
        .filter_map(|(_, c)| c.watch.as_ref())
        .map(|w| w.stale(finals))
        .filter(|&s| s > 0)
        .fold((0, 0), |(c, s), n| (c + 1, s + n))
}

/// A client thread: its clients in one mio loop, opened at the ramp's pace, each event
/// recorded as it comes; until `stop`.
fn client_thread(
    opts: &WorkerOptions,
    share: usize,
    shared: &Shared,
    ready: mpsc::Sender<Tally>,
) -> ThreadResult {
    let mut t = ClientThread::new(opts, share, shared);
    let mut events = Events::with_capacity(1024);
    let start = now_ns();
    let mut ready_sent = false;
    while !shared.stop.load(Ordering::Relaxed) {
        t.open_due(start);
        if !ready_sent && t.opened == share && t.tally.connected + t.tally.failed == share as u64 {
            let _ = ready.send(t.tally);
            ready_sent = true;
        }
        t.mark_and_count_stale();
        if t.poll
            .poll(&mut events, Some(Duration::from_millis(5)))
            .is_err()
        {
            continue;
        }
        for ev in events.iter() {
            t.on_event(ev.token().0);
        }
    }
    if !ready_sent {
        let _ = ready.send(t.tally);
    }
    t.finish()
}

/// A client thread's state.
struct ClientThread<'a> {
    opts: &'a WorkerOptions,
    shared: &'a Shared,
    /// Its clients' share of the worker's.
    share: usize,
    /// Opened so far (or failed to open).
    opened: usize,
    per_thread_rate: u64,
    zipf: Option<Zipf>,
    epoch: u64,
    poll: Poll,
    clients: Slab<Client>,
    tally: Tally,
    /// One symbol: each event's (seq, ns).
    arrivals: Vec<(u32, u64)>,
    /// Many symbols: every event checked and summed up.
    summary: Summary,
    /// Events of the latest read (one symbol).
    got: Vec<Event>,
    buf: Vec<u8>,
    stale_counted_at: u64,
    /// Segments received before `MARK`, once it came.
    marked: Option<u64>,
}

impl<'a> ClientThread<'a> {
    fn new(opts: &'a WorkerOptions, share: usize, shared: &'a Shared) -> ClientThread<'a> {
        ClientThread {
            opts,
            shared,
            share,
            opened: 0,
            per_thread_rate: (opts.ramp_per_s / opts.threads.max(1) as u64).max(1),
            zipf: opts.multi.map(|m| Zipf::new(m.symbols, m.zipf)),
            epoch: opts.multi.map_or(0, |m| m.epoch),
            poll: Poll::new().expect("poll"),
            clients: Slab::with_capacity(share),
            tally: Tally::default(),
            arrivals: Vec::with_capacity(if opts.multi.is_some() { 0 } else { share * 16 }),
            summary: Summary::default(),
            got: Vec::new(),
            buf: vec![0u8; 64 * 1024],
            stale_counted_at: 0,
            marked: None,
        }
    }

    /// Ramp: opens what the rate allows by now (since `start`).
    fn open_due(&mut self, start: u64) {
        let due = (((now_ns() - start) as u128 * self.per_thread_rate as u128 / 1_000_000_000)
            as usize
            + 1)
        .min(self.share);
        while self.opened < due {
            let n = self.shared.first + self.opened as u64;
            let (watch, target) = choose(self.opts, self.zipf.as_ref(), n);
            match add_client(
                &self.poll,
                &mut self.clients,
                self.opts,
                false,
                None,
                watch,
                target,
            ) {
                Ok(()) => self.opened += 1,
                // A Unix listener's backlog is full: try again on the next round.
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.tally.failed += 1;
                    self.opened += 1;
                }
            }
        }
    }

    /// Notes the segments received so far once `MARK` came; counts the stale clients
    /// every `STALE_EVERY_NS` once the finals are known.
    fn mark_and_count_stale(&mut self) {
        if self.marked.is_none() && self.shared.mark.load(Ordering::Relaxed) {
            self.marked = Some(segments(&self.clients));
        }
        if let Some(finals) = self.shared.finals.get() {
            let now = now_ns();
            if now - self.stale_counted_at >= STALE_EVERY_NS {
                self.stale_counted_at = now;
                let (stale_clients, _) = count_stale(&self.clients, finals);
                self.shared.stale.store(stale_clients, Ordering::Relaxed);
            }
        }
    }

    /// Serves a readiness event of client `key`, and records what it received.
    fn on_event(&mut self, key: usize) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        let outcome = serve(
            c,
            self.opts,
            &mut self.buf,
            &mut self.got,
            &mut self.tally,
            (&mut self.summary, self.epoch),
        );
        let now = now_ns();
        for e in self.got.drain(..) {
            if let Some(seq) = e.seq() {
                self.arrivals.push((seq, now));
                // Streams must see each of ours once, in order (0: the event current at
                // connect, not one of ours).
                if seq != 0 && seq <= c.last_seq {
                    self.tally.disorder += 1;
                }
                c.last_seq = c.last_seq.max(seq);
            }
            if e.id.is_some() {
                c.last_id = e.id;
            }
        }
        match outcome {
            Outcome::Open => {}
            Outcome::Close => {
                let mut c = self.clients.remove(key);
                let _ = self.poll.registry().deregister(c.sock.source());
            }
            Outcome::Again => self.poll_again(key),
        }
    }

    /// A long poll answered: the next one, carrying the last id.
    fn poll_again(&mut self, key: usize) {
        let mut old = self.clients.remove(key);
        let _ = self.poll.registry().deregister(old.sock.source());
        let (last, watch, path) = (
            old.last_id.take(),
            old.watch.take(),
            std::mem::take(&mut old.path),
        );
        drop(old);
        // A poll that cannot reconnect is lost, as a browser's would be.
        let _ = add_client(
            &self.poll,
            &mut self.clients,
            self.opts,
            true,
            last,
            watch,
            path,
        );
    }

    /// The thread's results, with its clients' staleness and segments at the end.
    fn finish(mut self) -> ThreadResult {
        if let Some(finals) = self.shared.finals.get() {
            let (stale_clients, stale_symbols) = count_stale(&self.clients, finals);
            self.summary.counts.stale_clients = stale_clients;
            self.summary.counts.stale_symbols = stale_symbols;
        }
        if let Some(before) = self.marked {
            self.summary.counts.segments = segments(&self.clients).saturating_sub(before);
        }
        (self.tally, self.arrivals, self.summary)
    }
}

/// Opens a connection and adds it to this thread's loop. `counted`: already counted as
/// connected (a long poll's next request); `last_id`: the id it has seen.
fn add_client(
    poll: &Poll,
    clients: &mut Slab<Client>,
    opts: &WorkerOptions,
    counted: bool,
    last_id: Option<String>,
    watch: Option<Watch>,
    path: String,
) -> io::Result<()> {
    let mut sock = open(opts)?;
    let entry = clients.vacant_entry();
    poll.registry().register(
        sock.source(),
        Token(entry.key()),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    entry.insert(Client {
        sock,
        phase: Phase::Connecting,
        reader: ResponseReader::default(),
        watch,
        path,
        counted,
        last_id,
        last_seq: 0,
    });
    Ok(())
}

enum Outcome {
    Open,
    Close,
    /// A long poll's answer is complete: poll again.
    Again,
}

/// Serves one readiness event. Events go to `got` (one symbol), or for a many-symbol
/// stream straight into `multi`'s summary (with the epoch), stamped at the read.
fn serve(
    c: &mut Client,
    opts: &WorkerOptions,
    buf: &mut [u8],
    got: &mut Vec<Event>,
    tally: &mut Tally,
    multi: (&mut Summary, u64),
) -> Outcome {
    let (summary, epoch) = multi;
    if let Phase::Connecting = c.phase {
        if let Some(outcome) = send_request(c, opts, tally) {
            return outcome;
        }
    }
    if opts.mode == Mode::Stalled {
        if !c.counted {
            c.counted = true;
            tally.connected += 1;
        }
        return Outcome::Open;
    }
    loop {
        match c.sock.read(buf) {
            Ok(0) => return ended(c, opts, tally),
            Ok(n) => {
                if let Some(outcome) = take(c, opts, &buf[..n], got, tally, (summary, epoch)) {
                    return outcome;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Outcome::Open,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return ended(c, opts, tally),
        }
    }
}

/// A connecting client's socket is writable: sends its request. `None` once it is sent.
fn send_request(c: &mut Client, opts: &WorkerOptions, tally: &mut Tally) -> Option<Outcome> {
    match c.sock.connect_error() {
        Ok(None) => {}
        _ => {
            tally.failed += 1;
            return Some(Outcome::Close);
        }
    }
    let req = request(opts, &c.path, c.last_id.as_deref());
    match c.sock.write(&req) {
        Ok(n) if n == req.len() => {
            c.phase = Phase::Reading;
            None
        }
        // Not connected yet (a spurious wake-up): wait for the next event.
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::NotConnected => {
            Some(Outcome::Open)
        }
        _ => {
            tally.failed += 1;
            Some(Outcome::Close)
        }
    }
}

/// The connection ended (closed or failed): before its head it failed; a stream that had
/// its head was dropped.
fn ended(c: &Client, opts: &WorkerOptions, tally: &mut Tally) -> Outcome {
    if !c.counted {
        tally.failed += 1;
    } else if opts.mode == Mode::Stream {
        tally.dropped += 1;
    }
    Outcome::Close
}

/// Takes the bytes of one read: the response's head and events. `None` while the
/// connection stays open and there may be more to read.
fn take(
    c: &mut Client,
    opts: &WorkerOptions,
    bytes: &[u8],
    got: &mut Vec<Event>,
    tally: &mut Tally,
    multi: (&mut Summary, u64),
) -> Option<Outcome> {
    let (summary, epoch) = multi;
    let fed = match &mut c.watch {
        Some(watch) => {
            summary.counts.reads += 1;
            let now = now_ns();
            c.reader.feed_with(bytes, &mut |id, data| {
                summary.on_event(watch, now, epoch, id, data)
            })
        }
        None => c.reader.feed(bytes, got),
    };
    if fed.is_err() {
        tally.failed += u64::from(!c.counted);
        return Some(Outcome::Close);
    }
    match c.reader.status {
        Some(200) if !c.counted => {
            c.counted = true;
            tally.connected += 1;
        }
        Some(200) | None => {}
        Some(_) => {
            tally.failed += u64::from(!c.counted);
            return Some(Outcome::Close);
        }
    }
    if opts.mode == Mode::LongPoll && c.reader.complete() {
        tally.responses += 1;
        return Some(Outcome::Again);
    }
    None
}
