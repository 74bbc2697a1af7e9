//! A browser's `EventSource`, in a thread: it streams, and when the stream ends (or cannot
//! connect) it waits the `retry:` time the server gave and comes back with the id of the last
//! event it got as `Last-Event-ID`. Everything is recorded for the test to check.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::super::http::{is_timeout, read_head, Body};
use super::Via;

/// One event as it was dispatched.
#[derive(Clone, Debug, PartialEq)]
pub struct Got {
    pub id: u64,
    pub data: String,
    /// Which connection (from 0) brought it.
    pub connection: usize,
}

#[derive(Clone, Debug, Default)]
pub struct EsLog {
    pub events: Vec<Got>,
    /// The `Last-Event-ID` each connection that was answered 200 sent.
    pub sent: Vec<Option<u64>>,
    /// Why each connection ended.
    pub ends: Vec<String>,
    /// Connects that failed.
    pub refused: Vec<String>,
    /// Answers other than 200 (and heads that never came).
    pub failed: Vec<String>,
    /// `retry:` lines, over all connections.
    pub retries: usize,
}

impl EsLog {
    pub fn connections(&self) -> usize {
        self.sent.len()
    }

    /// The events of one connection.
    pub fn of(&self, connection: usize) -> Vec<&Got> {
        self.events
            .iter()
            .filter(|g| g.connection == connection)
            .collect()
    }

    pub fn last_id(&self) -> Option<u64> {
        self.events.last().map(|g| g.id)
    }
}

pub struct EventSource {
    pub via: Via,
    pub path: String,
    log: Arc<Mutex<EsLog>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl EventSource {
    /// Starts streaming `path`. Before the first `retry:` it waits 100 ms to reconnect.
    pub fn start(via: Via, path: &str) -> EventSource {
        let log = Arc::new(Mutex::new(EsLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2, via2, path2) = (log.clone(), stop.clone(), via.clone(), path.to_string());
        let handle = std::thread::spawn(move || run(&via2, &path2, &log2, &stop2));
        EventSource {
            via,
            path: path.to_string(),
            log,
            stop,
            handle: Some(handle),
        }
    }

    pub fn log(&self) -> EsLog {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `cond` holds of the log; false after `within`.
    pub fn wait(&self, within: Duration, mut cond: impl FnMut(&EsLog) -> bool) -> bool {
        super::super::wait_until(within, || cond(&self.log.lock().unwrap()))
    }

    /// Stops (closing the connection) and returns the log.
    pub fn stop(mut self) -> EsLog {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        self.log()
    }
}

impl Drop for EventSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(via: &Via, path: &str, log: &Mutex<EsLog>, stop: &AtomicBool) {
    let mut retry = Duration::from_millis(100);
    let mut last: Option<u64> = None;
    let pause = |d: Duration| {
        let end = Instant::now() + d;
        while Instant::now() < end && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let mut sock = match via.connect() {
            Ok(s) => s,
            Err(e) => {
                log.lock().unwrap().refused.push(e.to_string());
                pause(retry);
                continue;
            }
        };
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let id = last.map(|l| l.to_string());
        let mut headers = vec![("Accept", "text/event-stream")];
        if let Some(id) = &id {
            headers.push(("Last-Event-ID", id.as_str()));
        }
        if let Err(e) = sock.write_all(&via.get(path, &headers)) {
            log.lock().unwrap().failed.push(format!("write: {e}"));
            pause(retry);
            continue;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let head = match read_head(&mut sock, || {
            Instant::now() < deadline && !stop.load(Ordering::Relaxed)
        }) {
            Ok(h) => h,
            Err(e) => {
                if !stop.load(Ordering::Relaxed) {
                    log.lock().unwrap().failed.push(e);
                }
                pause(retry);
                continue;
            }
        };
        if head.status != 200 {
            log.lock()
                .unwrap()
                .failed
                .push(format!("status {}: {}", head.status, head.text));
            pause(retry);
            continue;
        }
        let connection = {
            let mut l = log.lock().unwrap();
            l.sent.push(last);
            l.sent.len() - 1
        };
        let mut body = Body::new(head.chunked);
        let mut bytes = head.rest;
        let mut buf = [0u8; 4096];
        let why = loop {
            if let Err(e) = body.take(&bytes) {
                break e;
            }
            while let Some(block) = body.next_block() {
                let mut l = log.lock().unwrap();
                if let Some(ms) = block.retry {
                    retry = Duration::from_millis(ms);
                    l.retries += 1;
                }
                // The last event id is set by an `id:` field, and the event dispatched with
                // its data (an id that does not parse is kept as it was, here).
                if let (Some(data), Some(id)) = (block.data, block.id) {
                    if let Ok(id) = id.parse() {
                        last = Some(id);
                        l.events.push(Got {
                            id,
                            data,
                            connection,
                        });
                    }
                }
            }
            if body.ended {
                break "the last chunk".into();
            }
            if stop.load(Ordering::Relaxed) {
                break "stopped".into();
            }
            bytes.clear();
            match sock.read(&mut buf) {
                Ok(0) => break "EOF".into(),
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) || e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break format!("read: {e}"),
            }
        };
        log.lock().unwrap().ends.push(why);
        drop(sock);
        pause(retry);
    }
}
