//! The coordinator's side of a client worker process (`client.rs` is the worker's): starting
//! one with its command line, and the lines it speaks. Both ends of that command line are
//! here (`args` writes it, `parse_args` reads it), so they cannot drift apart.
//!
//! A worker prints `READY <connected> <failed> <ms>` once its streams are in, takes `MARK`,
//! `FINAL <file>`, `STALE?` and `STOP` on its stdin, and prints `DONE <connected> <failed>
//! <dropped> <responses> <disorder>` once its `--out` file is written.

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::client::{Addr, Mode, MultiOptions, Proto, WorkerOptions};
use crate::target::{Proc, System};

/// A worker process and its stdout lines.
pub struct Worker {
    proc: Proc,
    lines: Receiver<String>,
    /// Where it writes its arrivals (or its summary) after `STOP`.
    pub out: PathBuf,
    /// Its stdin, once taken (`Worker::say`).
    stdin: Option<ChildStdin>,
}

/// A worker's `READY` line: its streams are all in, or failed.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub connected: u64,
    pub failed: u64,
    /// From its start to its last stream's answer.
    pub connect_ms: u64,
}

/// A worker's `DONE` line: its `--out` file is written.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    /// Streams that ended after their head.
    pub dropped: u64,
    /// Whole responses (long polls).
    pub responses: u64,
    /// Events a stream got again, or after a later one.
    pub disorder: u64,
}

impl Worker {
    /// Starts a client worker for `sys`: `count` clients in `mode`, ramped at `ramp_per_s`,
    /// from source address `index` (each worker of a run its own, so its own ephemeral
    /// ports); `multi`: many-symbol streams.
    pub fn spawn(
        sys: &System,
        index: usize,
        count: usize,
        mode: Mode,
        ramp_per_s: u64,
        multi: Option<MultiOptions>,
    ) -> io::Result<Worker> {
        assert!(index < 240, "out of 127.0.0.x source addresses");
        let out =
            std::env::temp_dir().join(format!("tickerd-fanout-{}-{index}.bin", std::process::id()));
        let opts = WorkerOptions {
            addr: sys.addr.clone(),
            proto: sys.proto,
            path: sys.path.clone(),
            count,
            threads: 1,
            source: matches!(sys.addr, Addr::Tcp(_))
                .then(|| IpAddr::from([127, 0, 0, 10 + index as u8])),
            ramp_per_s,
            mode,
            out: out.clone(),
            multi,
        };
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["--role", "clients"])
            .args(args(&opts))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut proc = Proc::spawn(&format!("clients-{index}"), &mut cmd)?;
        let lines = proc.lines()?;
        Ok(Worker {
            proc,
            lines,
            out,
            stdin: None,
        })
    }

    /// Sends the worker a line.
    pub fn say(&mut self, line: &str) -> io::Result<()> {
        let stdin = match &mut self.stdin {
            Some(s) => s,
            None => {
                let s = self
                    .proc
                    .stdin()
                    .ok_or_else(|| io::Error::other("worker stdin"))?;
                self.stdin.insert(s)
            }
        };
        writeln!(stdin, "{line}")?;
        stdin.flush()
    }

    /// Waits for its `READY` line.
    pub fn ready(&self, within: Duration) -> io::Result<Ready> {
        let n = self.numbers("READY ", within)?;
        let at = |i: usize| n.get(i).copied().unwrap_or(0);
        Ok(Ready {
            connected: at(0),
            failed: at(1),
            connect_ms: at(2),
        })
    }

    /// Waits for its `DONE` line, after `STOP`.
    pub fn done(&self, within: Duration) -> io::Result<Done> {
        let n = self.numbers("DONE ", within)?;
        let at = |i: usize| n.get(i).copied().unwrap_or(0);
        Ok(Done {
            dropped: at(2),
            responses: at(3),
            disorder: at(4),
        })
    }

    /// Asks `STALE?`: whether every one of its clients holds every final value (`STALE 0`).
    pub fn settled(&mut self) -> io::Result<bool> {
        self.say("STALE?")?;
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| io::Error::other("no STALE answer from a worker"))?;
        Ok(line.trim() == "STALE 0")
    }

    /// The numbers on its next line that starts with `prefix`; other lines are skipped.
    fn numbers(&self, prefix: &str, within: Duration) -> io::Result<Vec<u64>> {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).map_err(|_| {
                io::Error::other(format!("no {prefix} line from a worker in {within:?}"))
            })?;
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest
                    .split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect());
            }
        }
    }
}

/// A worker's command line (after `--role clients`).
fn args(o: &WorkerOptions) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--addr".into(),
        o.addr.to_string(),
        "--proto".into(),
        match o.proto {
            Proto::Scgi => "scgi",
            Proto::Http => "http",
        }
        .into(),
        "--path".into(),
        o.path.clone(),
        "--count".into(),
        o.count.to_string(),
        "--threads".into(),
        o.threads.to_string(),
        "--ramp".into(),
        o.ramp_per_s.to_string(),
        "--mode".into(),
        match o.mode {
            Mode::LongPoll => "longpoll",
            Mode::Stream => "stream",
            Mode::Stalled => "stalled",
        }
        .into(),
        "--out".into(),
        o.out.display().to_string(),
    ];
    if let Some(m) = &o.multi {
        for (flag, value) in [
            ("--symbols", m.symbols.to_string()),
            ("--subscribe", m.subscribe.to_string()),
            ("--zipf", m.zipf.to_string()),
            ("--worker", m.worker.to_string()),
            ("--epoch", m.epoch.to_string()),
        ] {
            a.extend([flag.to_string(), value]);
        }
        if m.quote {
            a.push("--quote".into());
        }
        if let Some(hz) = m.max_hz {
            a.extend(["--max-hz".to_string(), hz.to_string()]);
        }
    }
    if let Some(source) = o.source {
        a.extend(["--source".to_string(), source.to_string()]);
    }
    a
}

/// Reads what `args` wrote: the worker's side.
pub fn parse_args(args: &[String]) -> io::Result<WorkerOptions> {
    let get = |name: &str| -> io::Result<&str> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
            .ok_or_else(|| io::Error::other(format!("worker needs {name}")))
    };
    let num = |name: &str| -> io::Result<u64> { get(name)?.parse().map_err(io::Error::other) };
    Ok(WorkerOptions {
        addr: get("--addr")?.parse().map_err(io::Error::other)?,
        proto: if get("--proto")? == "scgi" {
            Proto::Scgi
        } else {
            Proto::Http
        },
        path: get("--path")?.to_string(),
        count: num("--count")? as usize,
        threads: num("--threads")? as usize,
        source: get("--source").ok().and_then(|s| s.parse().ok()),
        ramp_per_s: num("--ramp")?,
        mode: match get("--mode")? {
            "longpoll" => Mode::LongPoll,
            "stalled" => Mode::Stalled,
            _ => Mode::Stream,
        },
        out: get("--out")?.into(),
        multi: match get("--symbols") {
            Err(_) => None,
            Ok(_) => Some(MultiOptions {
                symbols: num("--symbols")? as usize,
                subscribe: num("--subscribe")? as usize,
                zipf: get("--zipf")?.parse().map_err(io::Error::other)?,
                worker: num("--worker")?,
                epoch: num("--epoch")?,
                quote: args.iter().any(|a| a == "--quote"),
                max_hz: match get("--max-hz") {
                    Ok(hz) => Some(hz.parse().map_err(io::Error::other)?),
                    Err(_) => None,
                },
            }),
        },
    })
}

/// The worker's command line reads back as written, run by the smoke run.
pub fn self_check() {
    let multi = MultiOptions {
        symbols: 1000,
        subscribe: 20,
        zipf: 0.9,
        worker: 3,
        epoch: 123_456_789,
        quote: true,
        max_hz: Some(2.5),
    };
    let cases = [
        WorkerOptions {
            addr: "127.0.0.1:8080".parse().unwrap(),
            proto: Proto::Http,
            path: "/ticker".into(),
            count: 5000,
            threads: 1,
            source: Some(IpAddr::from([127, 0, 0, 12])),
            ramp_per_s: 10_000,
            mode: Mode::Stalled,
            out: "/tmp/out.bin".into(),
            multi: None,
        },
        WorkerOptions {
            addr: "unix:/tmp/tickerd.sock".parse().unwrap(),
            proto: Proto::Scgi,
            path: "/multi".into(),
            count: 7,
            threads: 2,
            source: None,
            ramp_per_s: 1,
            mode: Mode::Stream,
            out: "/tmp/other.bin".into(),
            multi: Some(multi),
        },
    ];
    for o in cases {
        let back = parse_args(&args(&o)).expect("a worker's command line");
        assert_eq!(format!("{back:?}"), format!("{o:?}"));
    }
}
