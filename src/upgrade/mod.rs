//! A live upgrade (SIGUSR2). The binary at the path this process was started from (so a
//! replaced file is picked up) first checks the configuration with `--check`, in a child,
//! while this process goes on serving; if that fails, nothing changes. Then this process
//! re-executes that binary in place (same pid: neither systemd nor lighttpd notices),
//! passing the listeners and every connection: their descriptors stay open across the
//! exec, and a record (`handover`) in a memfd says what each one is. The new process
//! registers them all and goes on writing: no stream is closed, none reconnects.
//!
//! Connections still reading their request, long polls, streams in the middle of a write
//! and lingering ones are all carried. A publish waiting for Redis is answered 503 first.

pub mod handover;
mod os;

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use self::os::release_signals;

use self::handover::Handover;
use crate::core::Core;
use crate::io::Io;
use crate::listeners;
use crate::net::Socket;
use crate::protocol::Protocol;

/// How long `--check` may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a running check is looked at.
const CHECK_POLL: Duration = Duration::from_millis(10);
/// Makes the record another version (tests of a binary that cannot read it).
const TEST_VERSION_ENV: &str = "TICKERD_TEST_HANDOVER_VERSION";

/// How this process was started: what a live upgrade runs again.
#[derive(Debug, Clone)]
pub struct Launch {
    exe: PathBuf,
    args: Vec<OsString>,
}

impl Launch {
    /// This process's binary (its path as started) and arguments.
    pub fn current() -> io::Result<Launch> {
        Ok(Launch {
            exe: std::env::current_exe()?,
            args: std::env::args_os().skip(1).collect(),
        })
    }
}

/// Where an upgrade is.
pub enum Upgrade {
    Idle,
    /// `--check` is running.
    Checking {
        child: Child,
        deadline: Instant,
        next_look: Instant,
    },
}

impl Upgrade {
    pub fn next_deadline(&self) -> Option<Instant> {
        match self {
            Upgrade::Idle => None,
            Upgrade::Checking { next_look, .. } => Some(*next_look),
        }
    }

    /// SIGUSR2: check the binary at our path with `--check`, in a child, while this process
    /// goes on serving.
    pub fn start(&mut self, launch: Option<&Launch>, now: Instant) {
        if !matches!(self, Upgrade::Idle) {
            log::info!("SIGUSR2: an upgrade is already under way");
            return;
        }
        let Some(launch) = launch else {
            log::warn!("SIGUSR2: cannot upgrade: this process's binary is unknown");
            return;
        };
        crate::notify::reloading();
        log::info!("SIGUSR2: checking {} --check", launch.exe.display());
        let started = Command::new(&launch.exe)
            .arg("--check")
            .args(&launch.args)
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        match started {
            Ok(child) => {
                *self = Upgrade::Checking {
                    child,
                    deadline: now + CHECK_TIMEOUT,
                    next_look: now + CHECK_POLL,
                };
            }
            Err(e) => self.refused(&format!("cannot run {}: {e}", launch.exe.display())),
        }
    }

    /// Looks at a running check: true when it passed, and the handover is to begin.
    pub fn check_passed(&mut self, now: Instant) -> bool {
        let Upgrade::Checking {
            child,
            deadline,
            next_look,
        } = self
        else {
            return false;
        };
        if *next_look > now {
            return false;
        }
        *next_look = now + CHECK_POLL;
        let status = match child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) if now < *deadline => return false,
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                self.refused("--check did not finish in 10 s");
                return false;
            }
            Err(e) => {
                self.refused(&format!("--check: {e}"));
                return false;
            }
        };
        let mut said = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut said);
        }
        if !status.success() {
            let said = said.lines().last().unwrap_or("").trim().to_string();
            self.refused(&format!("--check failed ({status}): {said}"));
            return false;
        }
        *self = Upgrade::Idle;
        true
    }

    /// The upgrade cannot go on: this process serves on, unchanged.
    pub fn refused(&mut self, why: &str) {
        log::warn!("upgrade refused: {why}; this process goes on serving, unchanged");
        *self = Upgrade::Idle;
        crate::notify::ready("upgrade refused; serving");
    }
}

/// Hands everything over to the binary at `launch`'s path: the signals held, publishes
/// waiting for Redis answered, the record written, and this process replaced by that binary
/// with every descriptor it needs (`listeners`, each connection, the record, the `poller`).
/// Returns only when that fails (this process then goes on serving). `caught`: the signals
/// this process's handler took but did not act on yet.
pub fn hand_over<I: Io>(
    core: &mut Core<I>,
    launch: &Launch,
    listeners: &[(RawFd, Protocol)],
    poller: RawFd,
    caught: impl Iterator<Item = libc::c_int>,
) -> io::Error
where
    I::Socket: AsRawFd,
{
    let started = Instant::now();
    // From here on, signals wait for the next binary: SIGUSR2's and SIGHUP's default would
    // kill it before its handlers are in place.
    os::hold_signals(caught);
    core.answer_awaiting();
    let mut record = core.record();
    record.handed_at_us = os::wall_us();
    let version = std::env::var(TEST_VERSION_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(handover::VERSION);
    let bytes = handover::encode_as(&record, version);
    let memfd = match os::memfd(&bytes) {
        Ok(f) => f,
        Err(e) => {
            release_signals();
            return e;
        }
    };
    let mut kept: Vec<RawFd> = record.connections.iter().map(|c| c.fd).collect();
    kept.extend(listeners.iter().map(|&(fd, _)| fd));
    kept.push(memfd.as_raw_fd());
    // The poller goes along too, for the next binary to close off its critical path:
    // closed by the exec, its teardown (every registration removed) would lengthen the
    // pause by about 2 µs per connection.
    kept.push(poller);
    for &fd in &kept {
        os::set_cloexec(fd, false);
    }
    log::info!(
        "upgrade: handing {} connections and {} listeners over to {} ({} KiB of state, gathered in {:?})",
        record.connections.len(),
        listeners.len(),
        launch.exe.display(),
        bytes.len() / 1024,
        started.elapsed()
    );
    let passed = [
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        TEST_VERSION_ENV,
        handover::STATE_ENV,
        listeners::HANDOVER_ENV,
        handover::POLLER_ENV,
    ];
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| !passed.iter().any(|name| k == name))
        .collect();
    for (k, v) in [
        (handover::STATE_ENV, memfd.as_raw_fd().to_string()),
        (listeners::HANDOVER_ENV, listeners::handover_env(listeners)),
        (handover::POLLER_ENV, poller.to_string()),
    ] {
        env.push((k.into(), v.into()));
    }
    let e = os::execve(&launch.exe, &launch.args, &env);
    // Still here: the exec failed; nothing was handed over. The held signals come now.
    release_signals();
    for &fd in &kept {
        os::set_cloexec(fd, true);
    }
    e
}

/// What a live upgrade hands the new binary: the listeners, and the record with the
/// previous binary's poller, or why the record cannot be read.
pub struct HandedOver {
    pub listeners: Vec<(RawFd, Protocol)>,
    pub record: Result<(Handover, Option<OwnedFd>), String>,
}

/// What the previous binary handed over, read from the environment (then removed from it).
/// A record this binary cannot read (another version) leaves its connections to be ended
/// cleanly: every descriptor but the listeners is closed, so that streams end and browsers
/// reconnect with Last-Event-ID.
pub fn handed_over() -> Option<HandedOver> {
    let state = std::env::var(handover::STATE_ENV).ok()?;
    let listeners = std::env::var(listeners::HANDOVER_ENV).unwrap_or_default();
    let poller = std::env::var(handover::POLLER_ENV).ok();
    // SAFETY: single-threaded at start-up, before anything reads the environment.
    unsafe {
        std::env::remove_var(handover::STATE_ENV);
        std::env::remove_var(listeners::HANDOVER_ENV);
        std::env::remove_var(handover::POLLER_ENV);
    }
    let listeners = match listeners::parse_handover_env(&listeners) {
        Ok(l) => l,
        Err(e) => {
            return Some(HandedOver {
                listeners: Vec::new(),
                record: Err(e),
            })
        }
    };
    let record = read_record(&state);
    if record.is_err() {
        // (The previous poller goes with the connections.)
        let keep: Vec<RawFd> = listeners.iter().map(|&(fd, _)| fd).collect();
        os::close_all_but(&keep);
        return Some(HandedOver {
            listeners,
            record: record.map(|r| (r, None)),
        });
    }
    // SAFETY: the previous binary's poller, left open for this process to close.
    let poller = poller
        .and_then(|p| p.parse::<RawFd>().ok())
        .filter(|&fd| fd > 2)
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    Some(HandedOver {
        listeners,
        record: record.map(|r| (r, poller)),
    })
}

fn read_record(fd: &str) -> Result<Handover, String> {
    let fd: RawFd = fd
        .parse()
        .map_err(|_| format!("{}: {fd:?} is not a descriptor", handover::STATE_ENV))?;
    let bytes = os::read_memfd(fd).map_err(|e| format!("reading the record: {e}"))?;
    handover::decode(&bytes).map_err(|e| e.to_string())
}

/// The new binary's side: the core takes over every connection of the record.
pub fn take_over<I: Io<Socket = Socket>>(core: &mut Core<I>, record: Handover, now: Instant) {
    let started = Instant::now();
    let handed_at_us = record.handed_at_us;
    let taken = core.take_over(record, Socket::from_handed_over, now);
    let paused = os::wall_us().saturating_sub(handed_at_us);
    log::info!(
        "upgrade: took over {} connections ({} lost) in {:?}; {:.1} ms since the previous binary handed them over",
        taken.connections - taken.lost,
        taken.lost,
        started.elapsed(),
        paused as f64 / 1000.0
    );
}
