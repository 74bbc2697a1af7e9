//! Connection attempts every few ms while a server restarts or upgrades ([`Prober`]): each
//! must connect (nothing refused) and be answered 200, however long it waits in the backlog.
//! And long-poll clients that poll again as soon as they are answered ([`LongPoller`]).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::super::http::{try_read_response, Body};
use super::{symbol_and_price, Via};

/// What the attempts met.
#[derive(Clone, Debug, Default)]
pub struct ProbeReport {
    /// Per target: connections opened (each one accepted by the server eventually).
    pub opened: Vec<usize>,
    /// Per target: answered 200.
    pub ok: Vec<usize>,
    /// Connects that failed (refused, reset).
    pub refused: Vec<String>,
    /// Answers other than 200, and connections that broke or got no answer.
    pub failed: Vec<String>,
    /// The longest time from connect to the whole answer.
    pub slowest: Duration,
}

impl ProbeReport {
    pub fn answered(&self) -> usize {
        self.ok.iter().sum::<usize>() + self.failed.len()
    }

    pub fn opened_total(&self) -> usize {
        self.opened.iter().sum()
    }
}

/// Opens a connection every `every`, to each target in turn, and collects the answers.
pub struct Prober {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<ProbeReport>>,
    opener: Option<JoinHandle<()>>,
    collector: Option<JoinHandle<()>>,
}

impl Prober {
    /// `targets`: where, and the path to GET.
    pub fn start(targets: Vec<(Via, String)>, every: Duration) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(ProbeReport {
            opened: vec![0; targets.len()],
            ok: vec![0; targets.len()],
            ..ProbeReport::default()
        }));
        let (tx, rx) = channel::<(usize, super::Sock, Instant)>();
        let (stop2, report2) = (stop.clone(), report.clone());
        let names: Vec<String> = targets
            .iter()
            .map(|(v, p)| format!("{} {p}", v.name()))
            .collect();
        let opener = std::thread::spawn(move || {
            let mut n = 0;
            while !stop2.load(Ordering::Relaxed) {
                let k = n % targets.len();
                n += 1;
                let (via, path) = &targets[k];
                let started = Instant::now();
                match via.connect() {
                    Ok(mut sock) => {
                        report2.lock().unwrap().opened[k] += 1;
                        match sock.write_all(&via.get(path, &[])) {
                            Ok(()) => tx.send((k, sock, started)).unwrap(),
                            Err(e) => report2
                                .lock()
                                .unwrap()
                                .failed
                                .push(format!("{} {path}: writing the request: {e}", via.name())),
                        }
                    }
                    Err(e) => report2
                        .lock()
                        .unwrap()
                        .refused
                        .push(format!("{} {path}: {e}", via.name())),
                }
                std::thread::sleep(every);
            }
        });
        let report3 = report.clone();
        let collector = std::thread::spawn(move || {
            for (k, mut sock, started) in rx {
                sock.set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                let answer = try_read_response(&mut sock);
                let took = started.elapsed();
                let mut r = report3.lock().unwrap();
                r.slowest = r.slowest.max(took);
                match answer {
                    Ok(a) if a.status == 200 => r.ok[k] += 1,
                    Ok(a) => r
                        .failed
                        .push(format!("{}: {} {:?}", names[k], a.status, a.body)),
                    Err(e) => r.failed.push(format!("{}: {e}", names[k])),
                }
            }
        });
        Prober {
            stop,
            report,
            opener: Some(opener),
            collector: Some(collector),
        }
    }

    pub fn report(&self) -> ProbeReport {
        self.report.lock().unwrap().clone()
    }

    /// Stops opening, waits for every answer, and reports.
    pub fn finish(mut self) -> ProbeReport {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.opener.take() {
            h.join().unwrap();
        }
        if let Some(h) = self.collector.take() {
            h.join().unwrap();
        }
        self.report()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a long-poll client saw.
#[derive(Clone, Debug, Default)]
pub struct PollReport {
    /// Polls answered 200 with at least one event, ids ascending and above the last.
    pub answered: usize,
    /// Connections opened (one per poll).
    pub opened: usize,
    pub failed: Vec<String>,
    pub last_id: Option<u64>,
    pub slowest: Duration,
}

/// A client that long-polls again with its last id as soon as it is answered.
pub struct LongPoller {
    pub via: Via,
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<PollReport>>,
    handle: Option<JoinHandle<()>>,
}

impl LongPoller {
    pub fn start(via: Via, path: &str) -> LongPoller {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(PollReport::default()));
        let (stop2, report2, via2, path) =
            (stop.clone(), report.clone(), via.clone(), path.to_string());
        let handle = std::thread::spawn(move || {
            let mut last: Option<u64> = None;
            while !stop2.load(Ordering::Relaxed) {
                let id = last.map(|l| l.to_string());
                let mut headers = vec![("X-Event-Source-Simulate", "Long-Polling")];
                if let Some(id) = &id {
                    headers.push(("Last-Event-ID", id.as_str()));
                }
                let started = Instant::now();
                let outcome = (|| -> Result<u64, String> {
                    let mut sock = via2.connect().map_err(|e| format!("connect: {e}"))?;
                    report2.lock().unwrap().opened += 1;
                    sock.set_read_timeout(Some(Duration::from_secs(60)))
                        .unwrap();
                    sock.write_all(&via2.get(&path, &headers))
                        .map_err(|e| format!("write: {e}"))?;
                    let answer = try_read_response(&mut sock)?;
                    if answer.status != 200 {
                        return Err(format!("status {}", answer.status));
                    }
                    let mut b = Body::new(false);
                    b.take(answer.body.as_bytes())?;
                    let mut newest = last;
                    let mut n = 0;
                    while let Some(block) = b.next_block() {
                        let Some(data) = block.data else { continue };
                        let id: u64 = block
                            .id
                            .as_deref()
                            .and_then(|i| i.parse().ok())
                            .ok_or("an event without an id")?;
                        symbol_and_price(&data).ok_or_else(|| format!("bad data {data:?}"))?;
                        if newest.is_some_and(|l| id <= l) {
                            return Err(format!("id {id} after {newest:?}"));
                        }
                        newest = Some(id);
                        n += 1;
                    }
                    if n == 0 {
                        return Err("answered with no event".into());
                    }
                    last = newest;
                    Ok(n)
                })();
                let mut r = report2.lock().unwrap();
                r.slowest = r.slowest.max(started.elapsed());
                match outcome {
                    Ok(_) => {
                        r.answered += 1;
                        r.last_id = last;
                    }
                    Err(e) => {
                        r.failed.push(format!("{}: {e}", via2.name()));
                        drop(r);
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        });
        LongPoller {
            via,
            stop,
            report,
            handle: Some(handle),
        }
    }

    pub fn report(&self) -> PollReport {
        self.report.lock().unwrap().clone()
    }

    /// Stops after the poll under way is answered, and reports.
    pub fn finish(mut self) -> PollReport {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        self.report()
    }
}

impl Drop for LongPoller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
