//! Thousands of event streams read at once by a few threads, each event checked as it comes:
//! ids ascending, every update of each of the stream's symbols (in a universe of `step`
//! symbols that all move each tick, a symbol's ids go up by exactly `step`; a stream of the
//! whole universe sees every id), the snapshot first, prices well formed, one `retry:` line,
//! and no end. A sample of streams ("timed") is read the moment data arrives, and the gaps
//! between its events are kept; the others are read in sweeps, which costs far fewer system
//! calls (10,000 streams at 20 ticks/s would otherwise keep a core busy reading).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::super::http::{is_timeout, read_head, Block, Body};
use super::{symbol_and_price, Sock, Via};

/// A stream to open.
#[derive(Clone, Debug)]
pub struct Spec {
    pub via: Via,
    /// `/ticker` or `/ticker?symbols=…`.
    pub path: String,
    /// Its symbols, in any order (for `/ticker`: the default symbol).
    pub symbols: Vec<String>,
    /// Read as data arrives, with its gaps kept.
    pub timed: bool,
}

impl Spec {
    /// `GET /ticker`: the default symbol's plain stream.
    pub fn plain(via: Via, default_symbol: &str) -> Spec {
        Spec {
            via,
            path: "/ticker".into(),
            symbols: vec![default_symbol.into()],
            timed: false,
        }
    }

    /// `GET /ticker?symbols=…`.
    pub fn of(via: Via, symbols: &[&str]) -> Spec {
        Spec {
            via,
            path: format!("/ticker?symbols={}", symbols.join(",")),
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            timed: false,
        }
    }

    pub fn timed(mut self, on: bool) -> Spec {
        self.timed = on;
        self
    }
}

/// What the test sees of one stream.
#[derive(Clone, Debug)]
pub struct Stream {
    /// Its place in the order of opening (from 0).
    pub n: usize,
    /// `via path #n`, for failure messages (which print streams with `{:?}`).
    #[expect(dead_code, reason = "read by the derived Debug only")]
    pub label: String,
    pub timed: bool,
    /// The head was read, with this status (0: not yet, or the open failed).
    pub status: u16,
    pub events: u64,
    /// `retry:` lines seen (one: the stream head, never sent again).
    pub retries: u32,
    pub comments: u64,
    pub last_id: Option<u64>,
    /// When its last event arrived (timed streams: at once; others: at the sweep).
    pub last_at: Option<Instant>,
    /// Gaps between consecutive events at least the fleet's threshold: (end, length).
    pub gaps: Vec<(Instant, Duration)>,
    /// Why it ended (it must not).
    pub ended: Option<String>,
    /// What its events broke (the first few).
    pub errors: Vec<String>,
    symbols: Vec<String>,
    plain: bool,
    last_of: Vec<Option<u64>>,
}

impl Stream {
    fn new(spec: &Spec, n: usize) -> Stream {
        Stream {
            n,
            label: format!("{} {} #{n}", spec.via.name(), spec.path),
            timed: spec.timed,
            status: 0,
            events: 0,
            retries: 0,
            comments: 0,
            last_id: None,
            last_at: None,
            gaps: Vec::new(),
            ended: None,
            errors: Vec::new(),
            plain: !spec.path.contains("symbols="),
            last_of: vec![None; spec.symbols.len()],
            symbols: spec.symbols.clone(),
        }
    }

    fn error(&mut self, e: String) {
        if self.errors.len() < 5 {
            self.errors.push(e);
        }
    }

    /// Whether it is healthy: open with 200, one `retry:`, nothing broken, not ended.
    pub fn healthy(&self) -> bool {
        self.status == 200 && self.retries == 1 && self.errors.is_empty() && self.ended.is_none()
    }

    /// The longest gap that ended in `from..=to`.
    pub fn longest_gap_in(&self, from: Instant, to: Instant) -> Option<Duration> {
        self.gaps
            .iter()
            .filter(|(end, _)| *end >= from && *end <= to)
            .map(|(_, gap)| *gap)
            .max()
    }

    fn on_block(&mut self, block: Block, now: Instant, rules: &Rules) {
        if block.retry.is_some() {
            self.retries += 1;
        }
        self.comments += block.comments as u64;
        let Some(data) = block.data else { return };
        let Some(id) = block.id.as_deref().and_then(|i| i.parse::<u64>().ok()) else {
            return self.error(format!("event without a numeric id: {:?}", block.id));
        };
        self.events += 1;
        if let Some(last) = self.last_id {
            if id <= last {
                self.error(format!("id {id} after {last}"));
            } else if self.symbols.len() as u64 == rules.step && id != last + 1 {
                self.error(format!(
                    "id {id} after {last}: the whole universe skipped ids"
                ));
            }
        }
        let symbol = match symbol_and_price(&data) {
            Some((Some(s), _)) if !self.plain => s.to_string(),
            Some((None, _)) if self.plain => self.symbols[0].clone(),
            _ => return self.error(format!("id {id}: bad data {data:?}")),
        };
        let Some(k) = self.symbols.iter().position(|s| *s == symbol) else {
            return self.error(format!(
                "id {id}: {symbol} is not one of {:?}",
                self.symbols
            ));
        };
        match self.last_of[k] {
            Some(prev) if id != prev + rules.step => self.error(format!(
                "{symbol}: id {id} after {prev}, not +{} (an update missed or repeated)",
                rules.step
            )),
            None if self.events > self.symbols.len() as u64 => self.error(format!(
                "{symbol}: first seen at id {id}, after the snapshot"
            )),
            _ => {}
        }
        self.last_of[k] = Some(id);
        self.last_id = Some(id);
        if self.timed {
            if let Some(at) = self.last_at {
                let gap = now - at;
                if gap >= rules.gap_over {
                    self.gaps.push((now, gap));
                }
            }
        }
        self.last_at = Some(now);
    }
}

#[derive(Clone, Copy)]
struct Rules {
    step: u64,
    gap_over: Duration,
}

struct Worker {
    tx: Option<Sender<(usize, Spec)>>,
    streams: Arc<Mutex<Vec<Stream>>>,
    handle: Option<JoinHandle<()>>,
}

/// Streams spread over a few reader threads.
pub struct Fleet {
    workers: Vec<Worker>,
    stop: Arc<AtomicBool>,
    opened: usize,
}

impl Fleet {
    /// `step`: the universe's size (every symbol moves each tick); `threads` readers; the
    /// untimed streams are read every `sweep`; gaps of at least `gap_over` are kept.
    pub fn start(step: u64, threads: usize, sweep: Duration, gap_over: Duration) -> Fleet {
        let stop = Arc::new(AtomicBool::new(false));
        let rules = Rules { step, gap_over };
        let workers = (0..threads)
            .map(|_| {
                let (tx, rx) = channel();
                let streams = Arc::new(Mutex::new(Vec::new()));
                let (s, stop) = (streams.clone(), stop.clone());
                let handle = std::thread::spawn(move || run(rx, s, stop, rules, sweep));
                Worker {
                    tx: Some(tx),
                    streams,
                    handle: Some(handle),
                }
            })
            .collect();
        Fleet {
            workers,
            stop,
            opened: 0,
        }
    }

    /// Opens these streams (spread over the readers, which open them in parallel).
    pub fn open(&mut self, specs: Vec<Spec>) {
        for spec in specs {
            let w = &self.workers[self.opened % self.workers.len()];
            w.tx.as_ref().unwrap().send((self.opened, spec)).unwrap();
            self.opened += 1;
        }
    }

    /// Every stream as it is now.
    pub fn streams(&self) -> Vec<Stream> {
        let mut all = Vec::with_capacity(self.opened);
        for w in &self.workers {
            all.extend(w.streams.lock().unwrap().iter().cloned());
        }
        all
    }

    /// Waits until every opened stream satisfies `cond`; on timeout, says how many do not
    /// and shows the first.
    pub fn wait_all(
        &self,
        within: Duration,
        what: &str,
        mut cond: impl FnMut(&Stream) -> bool,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            let mut total = 0;
            let mut first_bad = None;
            let mut bad = 0;
            for w in &self.workers {
                let streams = w.streams.lock().unwrap();
                total += streams.len();
                for s in streams.iter() {
                    if !cond(s) {
                        bad += 1;
                        if first_bad.is_none() {
                            first_bad = Some(format!("{s:?}"));
                        }
                    }
                }
            }
            if total == self.opened && bad == 0 {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                return Err(format!(
                    "{what}: after {within:?}, {} of {} streams open, {bad} not there; the first: {}",
                    total,
                    self.opened,
                    first_bad.unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Events per stream, by [`Stream::n`] (0 for one not open yet).
    pub fn events(&self) -> Vec<u64> {
        let mut all = vec![0; self.opened];
        for w in &self.workers {
            for s in w.streams.lock().unwrap().iter() {
                all[s.n] = s.events;
            }
        }
        all
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in &mut self.workers {
            w.tx.take();
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}

/// One reader thread: opens what it is sent, reads the timed streams as data arrives and
/// the others every `sweep`.
fn run(
    rx: Receiver<(usize, Spec)>,
    shared: Arc<Mutex<Vec<Stream>>>,
    stop: Arc<AtomicBool>,
    rules: Rules,
    sweep: Duration,
) {
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(1024);
    // Parallel to `shared`: the socket and body of each stream still open.
    let mut socks: Vec<Option<(Sock, Body)>> = Vec::new();
    let mut untimed: Vec<usize> = Vec::new();
    let mut next_sweep = Instant::now() + sweep;
    let mut buf = vec![0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        // What was sent to open, in batches: every connection of a batch is made and its
        // request sent before any head is read, so tickerd accepts them together (one at a
        // time, each open would wait for a loop turn that a big fan-out makes long).
        let mut batch = Vec::new();
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let sent: Vec<_> = batch
            .into_iter()
            .map(|(n, spec)| {
                let sock = connect(&spec);
                (n, spec, sock)
            })
            .collect();
        for (n, spec, sock) in sent {
            let mut stream = Stream::new(&spec, n);
            let i = socks.len();
            let mut rest = Vec::new();
            match sock.and_then(|sock| read_stream_head(sock, &stop)) {
                Ok((sock, status, body, after_head)) if status == 200 => {
                    stream.status = status;
                    if spec.timed {
                        poll.registry()
                            .register(
                                &mut SourceFd(&sock.as_raw_fd()),
                                Token(i),
                                Interest::READABLE,
                            )
                            .unwrap();
                    } else {
                        untimed.push(i);
                    }
                    socks.push(Some((sock, body)));
                    rest = after_head;
                }
                Ok((_, status, _, _)) => {
                    stream.status = status;
                    stream.ended = Some(format!("status {status}"));
                    socks.push(None);
                }
                Err(e) => {
                    stream.ended = Some(format!("open: {e}"));
                    socks.push(None);
                }
            }
            let mut streams = shared.lock().unwrap();
            streams.push(stream);
            if !rest.is_empty() {
                take(
                    &mut socks,
                    &mut streams,
                    &poll,
                    i,
                    &rest,
                    Instant::now(),
                    rules,
                );
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
        }
        let now = Instant::now();
        let wait = next_sweep
            .saturating_duration_since(now)
            .min(Duration::from_millis(20));
        if let Err(e) = poll.poll(&mut events, Some(wait)) {
            assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "{e}");
        }
        let now = Instant::now();
        let mut streams = shared.lock().unwrap();
        for event in events.iter() {
            read_all(
                &mut socks,
                &mut streams,
                &poll,
                event.token().0,
                &mut buf,
                now,
                rules,
            );
        }
        if now >= next_sweep {
            for &i in &untimed {
                read_all(&mut socks, &mut streams, &poll, i, &mut buf, now, rules);
            }
            next_sweep = now + sweep;
        }
    }
}

/// Connects and sends the request.
fn connect(spec: &Spec) -> Result<Sock, String> {
    use std::io::Write;
    let mut sock = spec.via.connect().map_err(|e| format!("connect: {e}"))?;
    sock.write_all(&spec.via.get(&spec.path, &[("Accept", "text/event-stream")]))
        .map_err(|e| format!("write: {e}"))?;
    Ok(sock)
}

/// Reads the head (blocking); then the socket is made non-blocking.
fn read_stream_head(
    mut sock: Sock,
    stop: &AtomicBool,
) -> Result<(Sock, u16, Body, Vec<u8>), String> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    let head = read_head(&mut sock, || {
        Instant::now() < end && !stop.load(Ordering::Relaxed)
    })?;
    sock.set_nonblocking(true).unwrap();
    Ok((sock, head.status, Body::new(head.chunked), head.rest))
}

fn read_all(
    socks: &mut [Option<(Sock, Body)>],
    streams: &mut [Stream],
    poll: &Poll,
    i: usize,
    buf: &mut [u8],
    now: Instant,
    rules: Rules,
) {
    use std::io::Read;
    loop {
        let Some((sock, _)) = socks[i].as_mut() else {
            return;
        };
        match sock.read(buf) {
            Ok(0) => return end(socks, streams, poll, i, "EOF".into()),
            Ok(n) => {
                let bytes = buf[..n].to_vec();
                take(socks, streams, poll, i, &bytes, now, rules);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return,
            Err(e) => return end(socks, streams, poll, i, format!("read: {e}")),
        }
    }
}

fn take(
    socks: &mut [Option<(Sock, Body)>],
    streams: &mut [Stream],
    poll: &Poll,
    i: usize,
    bytes: &[u8],
    now: Instant,
    rules: Rules,
) {
    let Some((_, body)) = socks[i].as_mut() else {
        return;
    };
    if let Err(e) = body.take(bytes) {
        streams[i].error(e);
    }
    while let Some(block) = body.next_block() {
        streams[i].on_block(block, now, &rules);
    }
    if body.ended {
        end(socks, streams, poll, i, "the last chunk".into());
    }
}

fn end(
    socks: &mut [Option<(Sock, Body)>],
    streams: &mut [Stream],
    poll: &Poll,
    i: usize,
    why: String,
) {
    if let Some((sock, _)) = socks[i].take() {
        if streams[i].timed {
            let _ = poll.registry().deregister(&mut SourceFd(&sock.as_raw_fd()));
        }
    }
    streams[i].ended.get_or_insert(why);
}
