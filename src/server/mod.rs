//! The event loop: one thread, one `mio::Poll`, and only what needs the operating system:
//! polling, accepting (`accept`), signals, the timers of the loop itself (the accept pause,
//! systemd's watchdog, a live upgrade's check), and handing readiness and the time to the
//! core, which decides everything else. `poll → dispatch by token → handler`, nothing more.

use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::StdRng;
use rand::SeedableRng;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
use signal_hook_mio::v1_0::Signals;

mod accept;
mod io_mio;

use self::io_mio::MioIo;
use crate::config::Config;
use crate::core::Core;
use crate::io::Readiness;
use crate::net::{self, Listener};
use crate::protocol::Protocol;
use crate::upgrade::handover::Handover;
use crate::upgrade::{self, Launch, Upgrade};

/// Tokens above every slab key: the signal pipe, then the listeners counting down.
const SIGNAL_TOKEN: Token = Token(usize::MAX);
const LISTENER_TOKEN_BASE: usize = usize::MAX - 1;

/// Descriptors kept back from `--max-clients` by default: listeners, the poller, logs, and
/// room to accept a connection only to tell it 503.
const FD_HEADROOM: u64 = 64;

pub struct Server {
    poll: Poll,
    listeners: Vec<(Listener, Protocol)>,
    signals: Signals,
    core: Core<MioIo>,
    /// When accept last started failing for want of descriptors; `None` while it works.
    out_of_descriptors_since: Option<Instant>,
    /// Accepting waits until then (out of descriptors, or more to accept after others had
    /// their turn).
    accept_paused_until: Option<Instant>,
    /// `WATCHDOG_USEC`: the next keep-alive for systemd, and the period.
    watchdog: Option<(Instant, Duration)>,
    /// How this process was started, for a live upgrade; and where one is.
    launch: Option<Launch>,
    upgrade: Upgrade,
    /// The previous binary's poller after a live upgrade, closed after the first fan-out.
    retired_poller: Option<OwnedFd>,
    /// `--entitlements`: read again on SIGHUP.
    entitlements_path: Option<std::path::PathBuf>,
    /// `--jwt-jwks`: read again on SIGHUP.
    jwks_path: Option<std::path::PathBuf>,
}

impl Server {
    /// Registers the `listeners` and prepares everything; `run` starts serving.
    pub fn new(config: &Config, listeners: Vec<(Listener, Protocol)>) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut registered = Vec::new();
        for (mut listener, protocol) in listeners {
            let token = Token(LISTENER_TOKEN_BASE - registered.len());
            poll.registry()
                .register(&mut listener, token, Interest::READABLE)?;
            registered.push((listener, protocol));
        }
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR2])?;
        poll.registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;
        let fd_limit = net::raise_open_file_limit();
        let max_clients = config
            .max_clients
            .unwrap_or_else(|| fd_limit.saturating_sub(FD_HEADROOM).max(1) as usize);
        let io = MioIo {
            registry: poll.registry().try_clone()?,
        };
        let now = Instant::now();
        Ok(Server {
            core: Core::new(config, io, max_clients, StdRng::from_entropy(), now),
            poll,
            listeners: registered,
            signals,
            out_of_descriptors_since: None,
            accept_paused_until: None,
            watchdog: crate::notify::watchdog_period().map(|p| (now, p)),
            launch: None,
            upgrade: Upgrade::Idle,
            retired_poller: None,
            entitlements_path: config.entitlements_path.clone(),
            jwks_path: config.jwt_jwks_path.clone(),
        })
    }

    /// Where each listener is, for the start-up log line.
    pub fn listening_on(&self) -> Vec<String> {
        self.listeners
            .iter()
            .map(|(l, p)| format!("{} {}", p.name(), l.local_addr()))
            .collect()
    }

    pub fn max_clients(&self) -> usize {
        self.core.max_clients()
    }

    /// The universe's size and default symbol, for the start-up log line.
    pub fn universe(&self) -> (usize, String) {
        self.core.universe()
    }

    /// How this process was started: SIGUSR2 runs that binary again, in place.
    pub fn set_launch(&mut self, launch: Launch) {
        self.launch = Some(launch);
    }

    /// After a live upgrade: every connection of the previous binary's record, which goes on
    /// where it was; its `poller` is closed after the first fan-out.
    pub fn take_over(&mut self, record: Handover, poller: Option<OwnedFd>) {
        upgrade::take_over(&mut self.core, record, Instant::now());
        self.retired_poller = poller;
    }

    /// Serves until SIGTERM or SIGINT, then closes everything and returns.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let timeout = [
                self.core.next_deadline(),
                self.upgrade.next_deadline(),
                self.accept_paused_until,
                self.watchdog.map(|(at, _)| at),
            ]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                let now = Instant::now();
                match event.token() {
                    SIGNAL_TOKEN => {
                        if self.on_signals() {
                            self.shut_down();
                            return Ok(());
                        }
                    }
                    Token(t) if t > LISTENER_TOKEN_BASE - self.listeners.len() => {
                        self.accept(LISTENER_TOKEN_BASE - t)
                    }
                    Token(t) if self.core.is_link(t) => self.core.on_link(t, readiness(event), now),
                    Token(key) => self.core.on_socket(key, readiness(event), now),
                }
            }
            self.on_timers(Instant::now());
            self.core.advance(Instant::now());
            self.retired_poller = None;
        }
    }

    /// The loop's own timers (the core's fire in `Core::advance`).
    fn on_timers(&mut self, now: Instant) {
        if self.upgrade.check_passed(now) {
            self.hand_over();
        }
        if let Some((at, period)) = self.watchdog {
            if at <= now {
                crate::notify::watchdog();
                self.watchdog = Some((now + period, period));
            }
        }
        if self.accept_paused_until.is_some_and(|at| at <= now) {
            self.accept_paused_until = None;
            for index in 0..self.listeners.len() {
                self.accept(index);
            }
        }
    }

    /// True when asked to stop.
    fn on_signals(&mut self) -> bool {
        let mut stop = false;
        for signal in self.signals.pending() {
            match signal {
                SIGHUP => self.reload(),
                SIGUSR2 => self.upgrade.start(self.launch.as_ref(), Instant::now()),
                _ => stop = true,
            }
        }
        stop
    }

    /// SIGHUP: the key set and the entitlements file read again. One that does not read
    /// changes nothing (the other is still reloaded).
    fn reload(&mut self) {
        if self.entitlements_path.is_none() && self.jwks_path.is_none() {
            return log::info!(
                "SIGHUP ignored: no --entitlements to reload and no --jwt-jwks (SIGUSR2 upgrades)"
            );
        }
        if let Some(path) = self.jwks_path.clone() {
            match crate::jwt::KeySet::load(&path) {
                Ok(keys) => {
                    let n = keys.len();
                    self.core.reload_keys(keys);
                    log::info!("SIGHUP: keys reloaded from {}: {n} keys", path.display());
                }
                Err(why) => log::warn!(
                    "SIGHUP: keys not reloaded, nothing changed: {}: {why}",
                    path.display()
                ),
            }
        }
        let Some(path) = self.entitlements_path.clone() else {
            return;
        };
        match crate::config::load_entitlements(&path) {
            Ok(e) => {
                let (ended, kept) = self.core.reload_entitlements(e);
                log::info!(
                    "SIGHUP: entitlements reloaded from {}: {ended} streams revoked, {kept} go on",
                    path.display()
                );
            }
            Err(why) => log::warn!("SIGHUP: entitlements not reloaded, nothing changed: {why}"),
        }
    }

    /// The check passed: hand over to the new binary. Returns only when that failed.
    fn hand_over(&mut self) {
        let Some(launch) = self.launch.clone() else {
            return self.upgrade.refused("this process's binary is unknown");
        };
        let listeners: Vec<(RawFd, Protocol)> = self
            .listeners
            .iter()
            .map(|(l, p)| (l.as_raw_fd(), *p))
            .collect();
        let poller = self.poll.as_raw_fd();
        let caught = self.signals.pending();
        let e = upgrade::hand_over(&mut self.core, &launch, &listeners, poller, caught);
        self.upgrade.refused(&format!("the handover failed: {e}"));
    }

    fn shut_down(&mut self) {
        crate::notify::stopping();
        // Dropping the listeners stops accepting (and removes a Unix socket file); dropping a
        // connection closes it, which ends its stream for the front-end or browser.
        self.listeners.clear();
        self.core.shut_down();
    }
}

/// What a readiness event says, as the core takes it.
fn readiness(event: &Event) -> Readiness {
    Readiness {
        input: event.is_readable() || event.is_read_closed() || event.is_error(),
        gone: event.is_error() || event.is_write_closed(),
    }
}
