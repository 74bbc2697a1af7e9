//! A client worker process: opens its share of event streams (or long polls) from a few
//! threads, each with its own mio loop, ramped; records when each event arrives; reports.
//!
//! Talks to the coordinator by lines: prints `READY <connected> <failed> <ms>` once every
//! connection has its answer's head (or failed), then waits for `STOP` on stdin, writes its
//! arrivals to the `--out` file (little-endian u32 seq, u64 ns records) and prints
//! `DONE <connected> <failed> <dropped> <responses>`.

use std::io::{self, BufRead, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use mio::net::{TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::stream::{Event, ResponseReader};
use crate::sys::now_ns;

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
}

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

/// The worker's main: runs until `STOP`, then reports.
pub fn run(opts: WorkerOptions) -> io::Result<()> {
    // Thousands of streams: the soft limit may be 1024 where the hard one allows more.
    tickerd::net::raise_open_file_limit();
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let started = now_ns();
    let mut threads = Vec::new();
    for i in 0..opts.threads {
        let share = opts.count / opts.threads + usize::from(i < opts.count % opts.threads);
        let (opts, stop, ready_tx) = (opts.clone(), stop.clone(), ready_tx.clone());
        threads.push(std::thread::spawn(move || {
            client_thread(&opts, share, &stop, ready_tx)
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
    // Wait for the coordinator.
    for line in io::stdin().lock().lines() {
        if line?.trim() == "STOP" {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut file = io::BufWriter::new(std::fs::File::create(&opts.out)?);
    let mut sum = Tally::default();
    for t in threads {
        let (tally, arrivals) = t.join().expect("client thread");
        sum.dropped += tally.dropped;
        sum.responses += tally.responses;
        sum.disorder += tally.disorder;
        for (seq, ns) in arrivals {
            file.write_all(&seq.to_le_bytes())?;
            file.write_all(&ns.to_le_bytes())?;
        }
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

fn request(opts: &WorkerOptions, last_id: Option<&str>) -> Vec<u8> {
    let long_poll = opts.mode == Mode::LongPoll;
    match opts.proto {
        Proto::Http => {
            let mut r = format!(
                "GET {} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n",
                opts.path
            );
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
            let mut headers = vec![
                ("REQUEST_METHOD", "GET"),
                ("SCRIPT_NAME", ""),
                ("PATH_INFO", opts.path.as_str()),
                ("REQUEST_URI", opts.path.as_str()),
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

fn client_thread(
    opts: &WorkerOptions,
    share: usize,
    stop: &AtomicBool,
    ready: mpsc::Sender<Tally>,
) -> (Tally, Vec<(u32, u64)>) {
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(1024);
    let mut clients: Slab<Client> = Slab::with_capacity(share);
    let mut tally = Tally::default();
    let mut arrivals: Vec<(u32, u64)> = Vec::with_capacity(share * 16);
    let mut got: Vec<Event> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let per_thread_rate = (opts.ramp_per_s / opts.threads.max(1) as u64).max(1);
    let start = now_ns();
    let mut opened = 0usize;
    let mut ready_sent = false;
    while !stop.load(Ordering::Relaxed) {
        // Ramp: open what the rate allows by now.
        let due = (((now_ns() - start) as u128 * per_thread_rate as u128 / 1_000_000_000) as usize
            + 1)
        .min(share);
        while opened < due {
            match add_client(&poll, &mut clients, opts, false, None) {
                Ok(()) => opened += 1,
                // A Unix listener's backlog is full: try again on the next round.
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    tally.failed += 1;
                    opened += 1;
                }
            }
        }
        if !ready_sent && opened == share && tally.connected + tally.failed == share as u64 {
            let _ = ready.send(tally);
            ready_sent = true;
        }
        if poll
            .poll(&mut events, Some(Duration::from_millis(5)))
            .is_err()
        {
            continue;
        }
        for ev in events.iter() {
            let key = ev.token().0;
            let Some(c) = clients.get_mut(key) else {
                continue;
            };
            let outcome = serve(c, opts, &mut buf, &mut got, &mut tally);
            let now = now_ns();
            for e in got.drain(..) {
                if let Some(seq) = e.seq() {
                    arrivals.push((seq, now));
                    // Streams must see each of ours once, in order (0: the event current
                    // at connect, not one of ours).
                    if seq != 0 && seq <= c.last_seq {
                        tally.disorder += 1;
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
                    let mut c = clients.remove(key);
                    let _ = poll.registry().deregister(c.sock.source());
                }
                Outcome::Again => {
                    // A long poll answered: the next one, carrying the last id.
                    let last = c.last_id.clone();
                    let mut old = clients.remove(key);
                    let _ = poll.registry().deregister(old.sock.source());
                    drop(old);
                    // A poll that cannot reconnect is lost, as a browser's would be.
                    let _ = add_client(&poll, &mut clients, opts, true, last);
                }
            }
        }
    }
    if !ready_sent {
        let _ = ready.send(tally);
    }
    (tally, arrivals)
}

/// Opens a connection and adds it to this thread's loop. `counted`: already counted as
/// connected (a long poll's next request); `last_id`: the id it has seen.
fn add_client(
    poll: &Poll,
    clients: &mut Slab<Client>,
    opts: &WorkerOptions,
    counted: bool,
    last_id: Option<String>,
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

fn serve(
    c: &mut Client,
    opts: &WorkerOptions,
    buf: &mut [u8],
    got: &mut Vec<Event>,
    tally: &mut Tally,
) -> Outcome {
    if let Phase::Connecting = c.phase {
        match c.sock.connect_error() {
            Ok(None) => {}
            _ => {
                tally.failed += 1;
                return Outcome::Close;
            }
        }
        let req = request(opts, c.last_id.as_deref());
        match c.sock.write(&req) {
            Ok(n) if n == req.len() => c.phase = Phase::Reading,
            // Not connected yet (a spurious wake-up): wait for the next event.
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::NotConnected => {
                return Outcome::Open
            }
            _ => {
                tally.failed += 1;
                return Outcome::Close;
            }
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
            Ok(0) => {
                if !c.counted {
                    tally.failed += 1;
                } else if opts.mode == Mode::Stream {
                    tally.dropped += 1;
                }
                return Outcome::Close;
            }
            Ok(n) => {
                if c.reader.feed(&buf[..n], got).is_err() {
                    tally.failed += u64::from(!c.counted);
                    return Outcome::Close;
                }
                match c.reader.status {
                    Some(200) if !c.counted => {
                        c.counted = true;
                        tally.connected += 1;
                    }
                    Some(200) | None => {}
                    Some(_) => {
                        tally.failed += u64::from(!c.counted);
                        return Outcome::Close;
                    }
                }
                if opts.mode == Mode::LongPoll && c.reader.complete() {
                    tally.responses += 1;
                    return Outcome::Again;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Outcome::Open,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                if !c.counted {
                    tally.failed += 1;
                } else if opts.mode == Mode::Stream {
                    tally.dropped += 1;
                }
                return Outcome::Close;
            }
        }
    }
}
