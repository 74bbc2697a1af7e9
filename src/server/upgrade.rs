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

use std::ffi::OsString;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use mio::{Interest, Token};

use super::Server;
use crate::conn::{Connection, Kind, State};
use crate::handover::{self, Carried, CarriedState, Handover};
use crate::inherit::Role;
use crate::net::Socket;
use crate::outbox::Outbox;
use crate::response::{self, Protocol};
use crate::symbol::Symbol;
use crate::universe::SymbolId;

/// How long `--check` may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a running check is looked at.
const CHECK_POLL: Duration = Duration::from_millis(10);
/// Makes the record another version (tests of a binary that cannot read it).
const TEST_VERSION_ENV: &str = "TICKERD_TEST_HANDOVER_VERSION";

/// How this process was started: what a live upgrade runs again.
#[derive(Debug, Clone)]
pub struct Launch {
    pub exe: PathBuf,
    pub args: Vec<OsString>,
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
pub(super) enum Upgrade {
    Idle,
    /// `--check` is running.
    Checking {
        child: Child,
        deadline: Instant,
        next_look: Instant,
    },
}

impl Upgrade {
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        match self {
            Upgrade::Idle => None,
            Upgrade::Checking { next_look, .. } => Some(*next_look),
        }
    }
}

impl Server {
    /// SIGUSR2: check the binary at our path, then hand over to it.
    pub(super) fn on_upgrade_signal(&mut self) {
        if !matches!(self.upgrade, Upgrade::Idle) {
            log::info!("SIGUSR2: an upgrade is already under way");
            return;
        }
        let Some(launch) = self.launch.clone() else {
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
                let now = Instant::now();
                self.upgrade = Upgrade::Checking {
                    child,
                    deadline: now + CHECK_TIMEOUT,
                    next_look: now + CHECK_POLL,
                };
            }
            Err(e) => self.upgrade_refused(&format!("cannot run {}: {e}", launch.exe.display())),
        }
    }

    fn upgrade_refused(&mut self, why: &str) {
        log::warn!("upgrade refused: {why}; this process goes on serving, unchanged");
        self.upgrade = Upgrade::Idle;
        crate::notify::ready("upgrade refused; serving");
    }

    /// Looks at a running check; hands over when it passed.
    pub(super) fn upgrade_timers(&mut self, now: Instant) {
        let Upgrade::Checking {
            child,
            deadline,
            next_look,
        } = &mut self.upgrade
        else {
            return;
        };
        if *next_look > now {
            return;
        }
        *next_look = now + CHECK_POLL;
        let status = match child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) if now < *deadline => return,
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return self.upgrade_refused("--check did not finish in 10 s");
            }
            Err(e) => return self.upgrade_refused(&format!("--check: {e}")),
        };
        let mut said = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut said);
        }
        if !status.success() {
            let said = said.lines().last().unwrap_or("").trim().to_string();
            return self.upgrade_refused(&format!("--check failed ({status}): {said}"));
        }
        self.upgrade = Upgrade::Idle;
        let e = self.hand_over();
        self.upgrade_refused(&format!("the handover failed: {e}"));
    }

    /// Writes the record and re-executes the binary with every descriptor it needs. Returns
    /// only when that fails (this process then goes on serving).
    fn hand_over(&mut self) -> io::Error {
        let started = Instant::now();
        // From here on, signals wait: blocked, they stay pending across the exec (the mask
        // is inherited, pending signals kept) and the next binary takes them once its
        // handlers are in place (`unblock_held_signals`); SIGUSR2's and SIGHUP's default
        // would kill it meanwhile. Those the handler caught already are raised again, so
        // that they wait too: a stop asked during an upgrade stops the next binary.
        held_signals(libc::SIG_BLOCK);
        for signal in self.signals.pending() {
            if signal != libc::SIGUSR2 {
                // SAFETY: raise sends a signal to this thread; it stays pending (blocked).
                unsafe {
                    libc::raise(signal);
                }
            }
        }
        // Publishes waiting for Redis: their answer would be lost with the link.
        let awaiting: Vec<(usize, u64)> = self
            .clients
            .iter_mut()
            .filter(|(_, c)| matches!(c.state, State::Awaiting))
            .map(|(key, c)| (key, c.serial))
            .collect();
        for (key, serial) in awaiting {
            if let Some(conn) = self.clients.get_serial(key, serial) {
                let answer = response::text(
                    conn.protocol,
                    503,
                    &[("Retry-After", "1")],
                    "tickerd is upgrading: try again\n",
                );
                conn.start_response(answer.into());
                self.flush(key);
            }
        }
        let record = self.record();
        let version = std::env::var(TEST_VERSION_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(handover::VERSION);
        let bytes = handover::encode_as(&record, version);
        let memfd = match memfd(&bytes) {
            Ok(f) => f,
            Err(e) => return e,
        };
        let mut kept: Vec<RawFd> = record.connections.iter().map(|c| c.fd).collect();
        let listeners: Vec<(RawFd, Role)> = self
            .listeners
            .iter()
            .map(|(l, p)| {
                let role = match p {
                    Protocol::Scgi => Role::Scgi,
                    Protocol::Http => Role::Http,
                };
                (l.as_raw_fd(), role)
            })
            .collect();
        kept.extend(listeners.iter().map(|&(fd, _)| fd));
        kept.push(memfd.as_raw_fd());
        // The poller goes along too, for the next binary to close off its critical path:
        // closed by the exec, its teardown (every registration removed) would lengthen the
        // pause by about 2 µs per connection.
        kept.push(self.poll.as_raw_fd());
        for &fd in &kept {
            set_cloexec(fd, false);
        }
        let Some(launch) = self.launch.clone() else {
            return io::Error::other("this process's binary is unknown");
        };
        log::info!(
            "upgrade: handing {} connections and {} listeners over to {} ({} KiB of state, gathered in {:?})",
            record.connections.len(),
            listeners.len(),
            launch.exe.display(),
            bytes.len() / 1024,
            started.elapsed()
        );
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| {
                ![
                    "LISTEN_FDS",
                    "LISTEN_PID",
                    "LISTEN_FDNAMES",
                    TEST_VERSION_ENV,
                    handover::STATE_ENV,
                    handover::LISTENERS_ENV,
                    handover::POLLER_ENV,
                ]
                .iter()
                .any(|name| k == name)
            })
            .collect();
        for (k, v) in [
            (handover::STATE_ENV, memfd.as_raw_fd().to_string()),
            (handover::LISTENERS_ENV, handover::listeners_env(&listeners)),
            (handover::POLLER_ENV, self.poll.as_raw_fd().to_string()),
        ] {
            env.push((k.into(), v.into()));
        }
        // execve itself, not std's Command: std empties the signal mask before it execs,
        // which would deliver the held signals to this binary's handlers and lose them.
        let e = execve(&launch.exe, &launch.args, &env);
        // Still here: the exec failed; nothing was handed over. The held signals come now.
        held_signals(libc::SIG_UNBLOCK);
        for &fd in &kept {
            set_cloexec(fd, true);
        }
        e
    }

    /// Everything the next binary takes over.
    fn record(&mut self) -> Handover {
        let u = &self.feed.universe;
        let prices = (0..u.len() as SymbolId)
            .map(|s| (u.symbol(s).to_string(), u.cents(s), u.updated_at(s)))
            .collect();
        let mut connections = Vec::with_capacity(self.clients.len());
        for (key, conn) in self.clients.iter_mut() {
            let state = match &conn.state {
                State::Reading { buf, input_closed } => CarriedState::Reading {
                    buf: buf.clone(),
                    input_closed: *input_closed,
                },
                State::Parked(w) => CarriedState::Parked(*w),
                State::Writing { out, then } => CarriedState::Writing {
                    bytes: out.unwritten(),
                    then: *then,
                },
                State::Lingering => CarriedState::Lingering,
                // Answered above; one that could not be is dropped.
                State::Awaiting => continue,
            };
            let symbols = self.feed.symbols_of(key).map(|(format, symbols)| {
                let names = symbols.map(|s| u.symbol(s).to_string()).collect();
                (format, names)
            });
            connections.push(Carried {
                fd: conn.socket.as_raw_fd(),
                protocol: conn.protocol,
                serial: conn.serial,
                peer: conn.peer,
                state,
                symbols,
            });
        }
        Handover {
            prices,
            last_id: u.last_id(),
            updates: self.feed.updates,
            counters: self.counters.clone(),
            next_serial: self.next_serial,
            redis_loaded: self.redis.as_ref().is_some_and(|r| r.loaded()),
            handed_at_us: wall_us(),
            connections,
        }
    }

    /// The new binary's side: take over what the record says, then serve.
    pub fn take_over(&mut self, record: Handover, poller: Option<OwnedFd>) {
        let started = Instant::now();
        let u = &mut self.feed.universe;
        let mut dropped_symbols = 0;
        for (name, cents, id) in &record.prices {
            match Symbol::parse(name.as_bytes()).ok().and_then(|s| u.find(&s)) {
                Some(s) => u.restore(s, *cents, *id),
                None => dropped_symbols += 1,
            }
        }
        u.restore_last_id(record.last_id);
        if dropped_symbols > 0 {
            log::warn!("upgrade: {dropped_symbols} symbols of the previous binary are not in this one's universe: their subscribers lose them");
        }
        self.feed.updates = record.updates;
        self.counters = record.counters;
        self.next_serial = record.next_serial;
        if record.redis_loaded {
            if let Some(redis) = &mut self.redis {
                redis.set_loaded_before();
            }
        }
        let count = record.connections.len();
        let mut lost = 0;
        let mut keys = Vec::with_capacity(count);
        for carried in record.connections {
            match self.adopt(carried) {
                Ok(key) => keys.push(key),
                Err(e) => {
                    lost += 1;
                    log::warn!("upgrade: a handed-over connection could not be taken: {e}");
                }
            }
        }
        // Streams in the middle of a write go on; parked ones get anything due.
        for key in keys {
            self.flush(key);
        }
        // The handover interrupted the beat: the next tick is due now, not a period after
        // this process started.
        if let Some((_, period)) = self.timers.tick {
            self.timers.tick = Some((Instant::now(), period));
        }
        // Closing it removes every registration the previous binary had (about 2 µs each):
        // the loop does it after its first fan-out, so that delivery resumes first.
        self.retired_poller = poller;
        let paused = wall_us().saturating_sub(record.handed_at_us);
        log::info!(
            "upgrade: took over {} connections ({lost} lost) in {:?}; {:.1} ms since the previous binary handed them over",
            count - lost,
            started.elapsed(),
            paused as f64 / 1000.0
        );
    }

    fn adopt(&mut self, c: Carried) -> io::Result<usize> {
        let mut socket = Socket::from_handed_over(c.fd, c.peer.is_some())?;
        let key = self.clients.vacant_key();
        let now = Instant::now();
        let state = match c.state {
            CarriedState::Reading { buf, input_closed } => {
                self.timers.requests.start(now, key, c.serial);
                State::Reading { buf, input_closed }
            }
            CarriedState::Parked(w) => {
                if w.kind == Kind::LongPoll {
                    self.timers.long_polls.start(now, key, c.serial);
                }
                State::Parked(w)
            }
            CarriedState::Writing { bytes, then } => {
                if then.is_some_and(|w| w.kind == Kind::LongPoll) {
                    self.timers.long_polls.start(now, key, c.serial);
                }
                State::Writing {
                    out: Outbox::one(bytes.into()),
                    then,
                }
            }
            CarriedState::Lingering => {
                self.timers.lingering.start(now, key, c.serial);
                State::Lingering
            }
        };
        let writable = matches!(state, State::Writing { .. });
        let interest = match writable {
            true => Interest::READABLE | Interest::WRITABLE,
            false => Interest::READABLE,
        };
        self.poll
            .registry()
            .register(&mut socket, Token(key), interest)?;
        let mut conn = Connection::new(socket, c.protocol, c.serial, c.peer);
        conn.state = state;
        conn.registered_writable = writable;
        self.clients.insert(conn);
        if let Some((format, names)) = c.symbols {
            let u = &self.feed.universe;
            let ids: Vec<SymbolId> = names
                .iter()
                .filter_map(|n| u.find(&Symbol::parse(n.as_bytes()).ok()?))
                .collect();
            self.feed.subscribe(key, &ids, format);
        }
        Ok(key)
    }
}

/// The record, in a memfd that stays open across the exec (no close-on-exec).
fn memfd(bytes: &[u8]) -> io::Result<std::fs::File> {
    // SAFETY: memfd_create with a NUL-terminated name; the descriptor is owned by the File.
    let fd = unsafe { libc::memfd_create(c"tickerd-handover".as_ptr(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(bytes)?;
    file.rewind()?;
    Ok(file)
}

/// Replaces this process with `exe`, with `args` and exactly `env`; returns only on failure.
fn execve(exe: &std::path::Path, args: &[OsString], env: &[(OsString, OsString)]) -> io::Error {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |b: &[u8]| CString::new(b).map_err(|_| io::Error::other("a NUL in an argument"));
    let prepared = (|| -> io::Result<(CString, Vec<CString>, Vec<CString>)> {
        let path = c(exe.as_os_str().as_bytes())?;
        let mut argv = vec![path.clone()];
        for a in args {
            argv.push(c(a.as_bytes())?);
        }
        let mut envp = Vec::with_capacity(env.len());
        for (k, v) in env {
            envp.push(c(&[k.as_bytes(), b"=", v.as_bytes()].concat())?);
        }
        Ok((path, argv, envp))
    })();
    let (path, argv, envp) = match prepared {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: NUL-terminated strings and NULL-terminated arrays that outlive the call.
    unsafe {
        libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
    }
    io::Error::last_os_error()
}

/// Blocks or unblocks the signals tickerd handles.
fn held_signals(how: libc::c_int) {
    // SAFETY: sigemptyset/sigaddset fill a local set; pthread_sigmask changes this thread's
    // mask only (tickerd serves from one thread).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGUSR2, libc::SIGHUP, libc::SIGTERM, libc::SIGINT] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// After a live upgrade, once the handlers are in place: the signals the previous binary
/// held blocked across the exec are taken now (a no-op at an ordinary start).
pub fn unblock_held_signals() {
    held_signals(libc::SIG_UNBLOCK);
}

fn set_cloexec(fd: RawFd, on: bool) {
    // SAFETY: ioctl on a descriptor this process owns; only its close-on-exec flag changes.
    unsafe {
        libc::ioctl(fd, if on { libc::FIOCLEX } else { libc::FIONCLEX });
    }
}

fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What a live upgrade hands the new binary: the listeners, and the record or why it cannot
/// be read.
pub type HandedOver = (
    Vec<(RawFd, Role)>,
    Result<(Handover, Option<OwnedFd>), String>,
);

/// What the previous binary handed over, read from the environment (then removed from it):
/// the listeners, and the record or why it cannot be read. A record this binary cannot
/// read (another version) leaves its connections to be ended cleanly: every descriptor but
/// the listeners is closed, so that streams end and browsers reconnect with Last-Event-ID.
pub fn handed_over() -> Option<HandedOver> {
    let state = std::env::var(handover::STATE_ENV).ok()?;
    let listeners = std::env::var(handover::LISTENERS_ENV).unwrap_or_default();
    let poller = std::env::var(handover::POLLER_ENV).ok();
    // SAFETY: single-threaded at start-up, before anything reads the environment.
    unsafe {
        std::env::remove_var(handover::STATE_ENV);
        std::env::remove_var(handover::LISTENERS_ENV);
        std::env::remove_var(handover::POLLER_ENV);
    }
    let listeners = match handover::parse_listeners_env(&listeners) {
        Ok(l) => l,
        Err(e) => return Some((Vec::new(), Err(e))),
    };
    let record = read_record(&state);
    if record.is_err() {
        // (The previous poller goes with the connections.)
        end_all_but(&listeners);
        return Some((listeners, record.map(|r| (r, None))));
    }
    // SAFETY: the previous binary's poller, left open for this process to close.
    let poller = poller
        .and_then(|p| p.parse::<RawFd>().ok())
        .filter(|&fd| fd > 2)
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    Some((listeners, record.map(|r| (r, poller))))
}

fn read_record(fd: &str) -> Result<Handover, String> {
    let fd: RawFd = fd
        .parse()
        .map_err(|_| format!("{}: {fd:?} is not a descriptor", handover::STATE_ENV))?;
    // SAFETY: the previous binary left this memfd open for us to own.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("reading the record: {e}"))?;
    handover::decode(&bytes).map_err(|e| e.to_string())
}

/// Closes every descriptor above stderr but the listeners (the connections of a record that
/// cannot be read): their streams end, and browsers come back with their Last-Event-ID.
fn end_all_but(listeners: &[(RawFd, Role)]) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2 && !listeners.iter().any(|&(l, _)| l == fd))
        .collect();
    for &fd in &fds {
        // SAFETY: closing descriptors inherited across the exec, which nothing here owns
        // yet (the directory's own descriptor closes once more, harmlessly).
        unsafe {
            libc::close(fd);
        }
    }
    fds.len()
}
