//! The many-symbol workload's publishers: threads of each system's own, fed batches by the
//! coordinator through a channel, so that a slow system never holds up the coordinator's
//! clock or another system's publishes (a publish that waits shows as latency instead).
//!
//! - tickerd: one `POST /publish` per batch, `SYM=PRICE` lines, each on a connection of its
//!   own (`Connection: close`), as the workloads have always published; or, for quotes
//!   (`keep_alive`), `SYM bid=… size=…` lines on one kept-alive connection, sent without
//!   waiting for the answers, as a feed handler does. A second thread reads the answers in
//!   order, each the id of the batch's last update. Several instances sharing Redis get the
//!   batches in turn (batch i to instance i mod n).
//! - nchan: a message is one request (a multi-channel publisher location would send the
//!   same body to each channel), so a batch of k prices is k `POST /pub/SYM`, pipelined on
//!   one keep-alive connection; a second thread reads the answers.
//! - the floor: one line on its stdin per batch.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ChildStdin;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::quote;
use crate::target::Publisher;
use crate::workload::{event_data, format_cents, Universe};

/// How long a connect, a write or an answer may take before the publish counts as failed.
/// After one such failure the system is taken as stuck: the publishes still queued fail at
/// once, so that a stuck system cannot hold the bench for a timeout per publish.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Updates published together, all at one price: the publish time.
#[derive(Debug, Clone)]
pub struct Batch {
    pub symbols: Vec<u32>,
    /// The price each update sets; for quotes, the value of every field it sets (`quote`).
    pub cents: u64,
    /// Quotes: the fields each update sets (a mask per symbol); empty for prices.
    pub fields: Vec<u8>,
}

impl Batch {
    /// The fields update `j` sets: a mask over the record (a price's is field 0).
    pub fn mask(&self, j: usize) -> u8 {
        self.fields.get(j).copied().unwrap_or(1)
    }
}

/// What came back.
#[derive(Debug, Default, Clone)]
pub struct Answers {
    /// Requests answered (well or not).
    pub answered: u64,
    pub failed: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// tickerd: per batch, the id of its last update.
    pub ids: Vec<Option<u64>>,
    /// tickerd: for each publish answered 200, ns from its connect (kept alive: from its
    /// write) to the end of its answer (with `--redis`, the answer waits for Redis).
    pub answered_ns: Vec<u64>,
    /// tickerd: updates its answers counted as changing nothing (they take no id, so the
    /// ids of their batch are not consecutive). The bench's never should.
    pub unchanged: u64,
}

impl Answers {
    fn fail(&mut self, why: String) {
        self.answered += 1;
        self.failed += 1;
        self.first_error.get_or_insert(why);
    }
}

pub struct Feeder {
    tx: Option<Sender<Batch>>,
    threads: Vec<JoinHandle<()>>,
    answers: Arc<Mutex<Answers>>,
}

impl Feeder {
    /// Takes over `publisher` (the system's), for `universe`; `keep_alive`: tickerd's
    /// publishes on one kept-alive connection (per instance), not each on its own.
    pub fn start(publisher: Publisher, universe: Universe, keep_alive: bool) -> io::Result<Feeder> {
        let (tx, rx) = mpsc::channel::<Batch>();
        let answers: Arc<Mutex<Answers>> = Arc::default();
        let threads = match publisher {
            Publisher::Floor(stdin) => vec![std::thread::spawn(move || to_floor(stdin, rx))],
            Publisher::Http {
                addr,
                token: Some(token),
                ..
            } => tickerd_threads(vec![addr], token, universe, rx, &answers, keep_alive)?,
            Publisher::RoundRobin { addrs, token } => {
                tickerd_threads(addrs, token, universe, rx, &answers, keep_alive)?
            }
            Publisher::Http {
                addr, token: None, ..
            } => {
                let conn = TcpStream::connect_timeout(&addr, ANSWER_TIMEOUT)?;
                conn.set_nodelay(true)?;
                conn.set_write_timeout(Some(ANSWER_TIMEOUT))?;
                let reading = conn.try_clone()?;
                reading.set_read_timeout(Some(ANSWER_TIMEOUT))?;
                let (sent_tx, sent_rx) = mpsc::channel();
                let a = answers.clone();
                vec![
                    std::thread::spawn(move || to_nchan(conn, universe, rx, sent_tx)),
                    std::thread::spawn(move || nchan_answers(reading, sent_rx, &a)),
                ]
            }
            Publisher::Taken => return Err(io::Error::other("publisher already taken")),
        };
        Ok(Feeder {
            tx: Some(tx),
            threads,
            answers,
        })
    }

    pub fn send(&self, batch: Batch) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(batch);
        }
    }

    /// Waits until `n` requests are answered (or `within` passes); returns the answers.
    pub fn wait_answered(&self, n: u64, within: Duration) -> Answers {
        let end = Instant::now() + within;
        loop {
            let a = self.answers.lock().unwrap().clone();
            if a.answered >= n || Instant::now() >= end {
                return a;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends nothing more, lets every answer come (each within `ANSWER_TIMEOUT`), and
    /// returns them.
    pub fn finish(mut self) -> Answers {
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.answers.lock().unwrap().clone()
    }
}

fn to_floor(mut stdin: ChildStdin, rx: Receiver<Batch>) {
    for batch in rx {
        // `<cents> <symbol>…`, or for quotes `<value> <symbol>:<fields>…`.
        let mut line = batch.cents.to_string();
        for (j, s) in batch.symbols.iter().enumerate() {
            line.push(' ');
            line.push_str(&s.to_string());
            if !batch.fields.is_empty() {
                line.push_str(&format!(":{}", batch.mask(j)));
            }
        }
        line.push('\n');
        if stdin.write_all(line.as_bytes()).is_err() {
            return;
        }
    }
}

/// The two threads of a tickerd feeder (publishing to `addrs` in turn); with `keep_alive`,
/// each instance's connection is opened here, once.
fn tickerd_threads(
    addrs: Vec<SocketAddr>,
    token: String,
    universe: Universe,
    rx: Receiver<Batch>,
    answers: &Arc<Mutex<Answers>>,
    keep_alive: bool,
) -> io::Result<Vec<JoinHandle<()>>> {
    let (mut kept, mut readers) = (Vec::new(), Vec::new());
    if keep_alive {
        for addr in &addrs {
            let conn = TcpStream::connect_timeout(addr, ANSWER_TIMEOUT)?;
            conn.set_nodelay(true)?;
            conn.set_write_timeout(Some(ANSWER_TIMEOUT))?;
            let reading = conn.try_clone()?;
            reading.set_read_timeout(Some(ANSWER_TIMEOUT))?;
            kept.push(conn);
            readers.push(BufReader::new(reading));
        }
    }
    let (sent_tx, sent_rx) = mpsc::channel();
    let a = answers.clone();
    Ok(vec![
        std::thread::spawn(move || to_tickerd(&addrs, kept, &token, universe, rx, sent_tx)),
        std::thread::spawn(move || tickerd_answers(sent_rx, readers, &a)),
    ])
}

/// Batch `i` goes to `addrs[i % n]`: on `kept[i % n]` when kept alive, else on a connection
/// of its own.
fn to_tickerd(
    addrs: &[SocketAddr],
    mut kept: Vec<TcpStream>,
    token: &str,
    universe: Universe,
    rx: Receiver<Batch>,
    sent: Sender<Sent>,
) {
    let mut broken: Option<String> = None;
    for (i, batch) in rx.into_iter().enumerate() {
        if let Some(why) = &broken {
            if sent
                .send((i, Err(io::Error::other(why.clone())), 0))
                .is_err()
            {
                return;
            }
            continue;
        }
        let body = body(&batch, universe);
        let n = i % addrs.len();
        let started = crate::sys::now_ns();
        let request = |close: bool| {
            format!(
                "POST /publish HTTP/1.1\r\nHost: bench\r\n{}Authorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
                if close { "Connection: close\r\n" } else { "" },
                body.len()
            )
        };
        let conn = match kept.get_mut(n) {
            Some(s) => s
                .write_all(request(false).as_bytes())
                .map(|()| Conn::Kept(n)),
            None => TcpStream::connect_timeout(&addrs[n], ANSWER_TIMEOUT).and_then(|mut s| {
                s.set_write_timeout(Some(ANSWER_TIMEOUT))?;
                s.write_all(request(true).as_bytes())?;
                Ok(Conn::Own(s))
            }),
        };
        if let Err(e) = &conn {
            broken = Some(format!("an earlier publish failed: {e}"));
        }
        if sent.send((i, conn, started)).is_err() {
            return;
        }
    }
}

/// A publish's body: `SYM=PRICE` lines, or for quotes `SYM field=value …` lines.
fn body(batch: &Batch, universe: Universe) -> String {
    let mut body = String::new();
    let price = format_cents(batch.cents);
    for (j, &s) in batch.symbols.iter().enumerate() {
        if j > 0 {
            body.push('\n');
        }
        let name = universe.name(s);
        match batch.fields.is_empty() {
            true => body.push_str(&format!("{name}={price}")),
            false => quote::update_line(&mut body, &name, s, batch.mask(j), batch.cents),
        }
    }
    body
}

/// Where a publish's answer comes: its own connection, read to tickerd's close, or the
/// kept-alive connection to instance `n`, read by its Content-Length.
enum Conn {
    Own(TcpStream),
    Kept(usize),
}

/// A publish sent to tickerd: its number, its connection, when it started (ns).
type Sent = (usize, io::Result<Conn>, u64);

/// Reads each publish's answer in order (`kept`: the kept-alive connections' reading side).
fn tickerd_answers(
    sent: Receiver<Sent>,
    mut kept: Vec<BufReader<TcpStream>>,
    answers: &Mutex<Answers>,
) {
    let mut broken: Option<String> = None;
    for (i, conn, started) in sent {
        let outcome = match &broken {
            Some(why) => Err(io::Error::other(why.clone())),
            None => conn.and_then(|conn| match conn {
                Conn::Own(mut s) => {
                    s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
                    let mut answer = Vec::new();
                    s.read_to_end(&mut answer)?;
                    Ok(answer)
                }
                Conn::Kept(n) => read_whole_answer(&mut kept[n]),
            }),
        };
        let done = crate::sys::now_ns();
        if let Err(e) = &outcome {
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                broken = Some(format!("tickerd stopped answering: {e}"));
            }
        }
        let mut a = answers.lock().unwrap();
        if a.ids.len() <= i {
            a.ids.resize(i + 1, None);
        }
        match outcome {
            Ok(answer) if answer.starts_with(b"HTTP/1.1 200") => {
                let text = String::from_utf8_lossy(&answer);
                let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
                let id = body.lines().next().and_then(|l| l.parse().ok());
                // The counts follow the id: `applied N`, `unchanged M`.
                a.unchanged += body
                    .lines()
                    .find_map(|l| l.strip_prefix("unchanged "))
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                a.ids[i] = id;
                a.answered_ns.push(done.saturating_sub(started));
                match id {
                    Some(_) => a.answered += 1,
                    None => a.fail(format!("publish {i}: no id in {text:?}")),
                }
            }
            Ok(answer) => {
                let line = String::from_utf8_lossy(&answer);
                a.fail(format!(
                    "publish {i}: {}",
                    line.lines().next().unwrap_or("no answer")
                ));
            }
            Err(e) => a.fail(format!("publish {i}: {e}")),
        }
    }
}

fn to_nchan(mut conn: TcpStream, universe: Universe, rx: Receiver<Batch>, sent: Sender<usize>) {
    for batch in rx {
        let mut requests = Vec::new();
        for &s in &batch.symbols {
            let name = universe.name(s);
            let body = event_data(&name, batch.cents);
            let _ = write!(
                requests,
                "POST /pub/{name} HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
        if conn.write_all(&requests).is_err() || sent.send(batch.symbols.len()).is_err() {
            return;
        }
    }
}

/// Reads one HTTP answer's status and skips its body (by its Content-Length).
pub fn read_answer(r: &mut impl BufRead) -> io::Result<u16> {
    let answer = read_whole_answer(r)?;
    let line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            let line = String::from_utf8_lossy(line);
            io::Error::other(format!("bad status line {line:?}"))
        })
}

/// Reads one HTTP answer whole, head and body (by its Content-Length), from a connection
/// that stays open.
fn read_whole_answer(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut answer = Vec::new();
    let mut length = 0;
    loop {
        let start = answer.len();
        if r.read_until(b'\n', &mut answer)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = String::from_utf8_lossy(&answer[start..]);
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    r.take(length).read_to_end(&mut answer)?;
    Ok(answer)
}

fn nchan_answers(conn: TcpStream, sent: Receiver<usize>, answers: &Mutex<Answers>) {
    let mut r = BufReader::new(conn);
    let mut broken: Option<String> = None;
    for n in sent {
        for _ in 0..n {
            let outcome = match &broken {
                Some(why) => Err(why.clone()),
                None => read_answer(&mut r).map_err(|e| e.to_string()),
            };
            let mut a = answers.lock().unwrap();
            match outcome {
                // 201: delivered to subscribers; 202: queued, none at the moment.
                Ok(201 | 202) => a.answered += 1,
                Ok(status) => a.fail(format!("nchan publish: {status}")),
                Err(why) => {
                    a.fail(format!("nchan publish: {why}"));
                    broken = Some(why);
                }
            }
        }
    }
}
