//! The event loop: one thread, one `mio::Poll`. It hands each socket event to its
//! connection, writes to the clients the feed names after each wake-up, and fires timers
//! from the poll timeout. It knows nothing of netstrings, HTTP or symbol lists: connections
//! parse, the router decides, the feed says who is due what, the loop carries out.
//! Accepting (`accept`), carrying out requests (`requests`) and timers (`timers`) are
//! in modules of their own.

use std::io::{self, ErrorKind};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use mio::event::Event as IoEvent;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::StdRng;
use rand::SeedableRng;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
use signal_hook_mio::v1_0::Signals;

mod accept;
mod redis;
mod requests;
mod timers;
pub mod upgrade;

use redis::Redis;
use requests::Shared;
pub use requests::{PAGE, SCRIPT};
use timers::Timers;
use upgrade::{Launch, Upgrade};

use crate::clients::Clients;
use crate::config::Config;
use crate::conn::{CloseReason, Connection, Flow, Input, RequestRules, State, Written};
use crate::deadlines::DeadlineQueue;
use crate::feed::Feed;
use crate::inherit::{self, Inherited};
use crate::metrics::Counters;
use crate::net::{self, Listener, Socket};
use crate::response::Protocol;
use crate::route;
use crate::universe::{Universe, DEFAULT_SYMBOL};
use crate::{http, price, scgi};

/// Tokens above every slab key: the signal pipe, then the listeners counting down.
const SIGNAL_TOKEN: Token = Token(usize::MAX);
const LISTENER_TOKEN_BASE: usize = usize::MAX - 1;

/// Descriptors kept back from `--max-clients` by default: listeners, the poller, logs, and
/// room to accept a connection only to tell it 503.
const FD_HEADROOM: u64 = 64;
/// How long a finished connection may take to close its side.
const LINGER: Duration = Duration::from_secs(2);
const MAX_HTTP_HEAD: usize = 8 * 1024;

pub struct Server {
    poll: Poll,
    listeners: Vec<(Listener, Protocol)>,
    signals: Signals,
    clients: Clients<Socket>,
    max_clients: usize,
    feed: Feed,
    rng: StdRng,
    rules: RequestRules,
    shared: Shared,
    counters: Counters,
    timers: Timers,
    next_serial: u64,
    /// When accept last started failing for want of descriptors; `None` while it works.
    out_of_descriptors_since: Option<Instant>,
    /// Refusals at `--max-clients`: when the last one was logged, and how many came after
    /// it. A flood, or a server that stays full while clients churn, must not fill the log.
    full_logged_at: Option<Instant>,
    refused_unlogged: u64,
    /// One read buffer for every socket: data is copied out of it at once.
    scratch: Box<[u8]>,
    /// Reused list of connections to settle after a heartbeat round.
    settle_later: Vec<(usize, Flow)>,
    /// Reused list of the clients a fan-out writes to.
    woken: Vec<usize>,
    /// `--redis`: the feed is shared through Redis.
    redis: Option<Redis>,
    /// How this process was started, for a live upgrade; and where one is.
    launch: Option<Launch>,
    upgrade: Upgrade,
    /// The previous binary's poller after a live upgrade, closed after the first fan-out.
    retired_poller: Option<std::os::fd::OwnedFd>,
}

/// The listeners to serve: the inherited ones in place of the command line's addresses
/// (logged); a bin-path spawn adds an HTTP listener only when `--http` was given.
fn listeners_for(
    config: &Config,
    inherited: Option<Inherited>,
) -> io::Result<Vec<(Listener, Protocol)>> {
    let mut out = Vec::new();
    let mut bind = |addr: &crate::config::ListenAddr, protocol| -> io::Result<()> {
        let listener = Listener::bind(addr, config.socket_mode)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        out.push((listener, protocol));
        Ok(())
    };
    let Some((source, fds)) = inherited else {
        if let Some(addr) = &config.scgi {
            bind(addr, Protocol::Scgi)?;
        }
        if let Some(addr) = &config.http {
            bind(addr, Protocol::Http)?;
        }
        return Ok(out);
    };
    if source == inherit::Source::BinPath && config.http_given {
        if let Some(addr) = &config.http {
            bind(addr, Protocol::Http)?;
        }
    }
    for (fd, role) in fds {
        let listener = Listener::from_fd(fd)
            .map_err(|e| io::Error::new(e.kind(), format!("inherited descriptor {fd}: {e}")))?;
        let protocol = match role {
            inherit::Role::Scgi => Protocol::Scgi,
            inherit::Role::Http => Protocol::Http,
        };
        log::info!(
            "{} listener {} inherited from {}: it replaces the --{} address",
            role.name(),
            listener.local_addr(),
            match source {
                inherit::Source::Systemd => "systemd (LISTEN_FDS)",
                inherit::Source::BinPath => "the spawning front-end (fd 0)",
                inherit::Source::Upgrade => "the binary before the upgrade",
            },
            role.name(),
        );
        out.push((listener, protocol));
    }
    Ok(out)
}

impl Server {
    /// Binds the listeners (or takes the `inherited` ones) and prepares everything; `run`
    /// starts serving.
    pub fn bind(config: &Config, inherited: Option<Inherited>) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listeners = Vec::new();
        for (listener, protocol) in listeners_for(config, inherited)? {
            let mut listener = listener;
            let token = Token(LISTENER_TOKEN_BASE - listeners.len());
            poll.registry()
                .register(&mut listener, token, Interest::READABLE)?;
            listeners.push((listener, protocol));
        }
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR2])?;
        poll.registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;

        let fd_limit = net::raise_open_file_limit();
        let max_clients = config
            .max_clients
            .unwrap_or_else(|| fd_limit.saturating_sub(FD_HEADROOM).max(1) as usize);
        let now = Instant::now();
        // With Redis the ids are the feed's, loaded at once: until then the universe's are
        // provisional, below any of the feed's.
        let first_id = match config.redis {
            Some(_) => 1,
            None => price::first_event_id(SystemTime::now()),
        };
        let max_body = config.max_publish_bytes;
        Ok(Server {
            poll,
            listeners,
            signals,
            clients: Clients::with_capacity(max_clients.min(1 << 16)),
            max_clients,
            feed: Feed::new(Universe::new(&config.universe, first_id)),
            rng: StdRng::from_entropy(),
            rules: RequestRules {
                scgi: scgi::Limits {
                    max_header: config.max_scgi_header,
                    max_body,
                },
                http: http::Limits {
                    max_head: MAX_HTTP_HEAD,
                    max_body,
                },
                route: route::Rules {
                    publish_token: config.publish_token.clone(),
                    max_symbols: config.max_symbols_per_client,
                },
            },
            shared: Shared::new(config.retry_ms),
            counters: Counters::default(),
            timers: Timers {
                tick: config.tick.map(|p| (now + p, p)),
                heartbeat: config.heartbeat.map(|p| (now + p, p)),
                accept_paused_until: None,
                watchdog: crate::notify::watchdog_period().map(|p| (now, p)),
                coalesce: config.coalesce.map(|p| (now, p)),
                requests: DeadlineQueue::new(config.request_timeout),
                lingering: DeadlineQueue::new(LINGER),
                long_polls: DeadlineQueue::new(config.long_poll_hold),
                ahead: DeadlineQueue::new(redis::AHEAD_HOLD),
            },
            next_serial: 0,
            out_of_descriptors_since: None,
            full_logged_at: None,
            refused_unlogged: 0,
            scratch: vec![0; 64 * 1024].into_boxed_slice(),
            settle_later: Vec::new(),
            woken: Vec::new(),
            redis: config
                .redis
                .clone()
                .map(|addr| Redis::new(addr, &config.redis_key, config.redis_maxlen, now)),
            launch: None,
            upgrade: Upgrade::Idle,
            retired_poller: None,
        })
    }

    /// Where each listener is, for the start-up log line.
    pub fn listening_on(&self) -> Vec<String> {
        self.listeners
            .iter()
            .map(|(l, p)| {
                format!(
                    "{} {}",
                    if *p == Protocol::Scgi { "scgi" } else { "http" },
                    l.local_addr()
                )
            })
            .collect()
    }

    pub fn max_clients(&self) -> usize {
        self.max_clients
    }

    /// How this process was started: SIGUSR2 runs that binary again, in place.
    pub fn set_launch(&mut self, launch: Launch) {
        self.launch = Some(launch);
    }

    /// The universe's size and default symbol, for the start-up log line.
    pub fn universe(&self) -> (usize, String) {
        let u = &self.feed.universe;
        (u.len(), u.symbol(DEFAULT_SYMBOL).to_string())
    }

    /// Serves until SIGTERM or SIGINT, then closes everything and returns.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let redis = self.redis.as_ref().and_then(Redis::next_deadline);
            let upgrade = self.upgrade.next_deadline();
            let timeout = [self.timers.next(self.feed.has_woken()), redis, upgrade]
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
                    token @ (redis::COMMANDS_TOKEN | redis::TAIL_TOKEN) => {
                        self.on_redis_event(token, event)
                    }
                    Token(key) => self.on_socket_event(key, event),
                }
            }
            self.on_timers(Instant::now());
            self.fan_out(Instant::now());
            self.retired_poller = None;
        }
    }

    /// True when asked to stop.
    fn on_signals(&mut self) -> bool {
        let mut stop = false;
        for signal in self.signals.pending() {
            match signal {
                SIGHUP => log::info!("SIGHUP ignored: tickerd has no files to reopen or re-read"),
                SIGUSR2 => self.on_upgrade_signal(),
                _ => stop = true,
            }
        }
        stop
    }

    fn shut_down(&mut self) {
        crate::notify::stopping();
        log::info!("stopping: closing {} connections", self.clients.len());
        // Dropping the listeners stops accepting (and removes a Unix socket file); dropping a
        // connection closes it, which ends its stream for the front-end or browser.
        self.listeners.clear();
        self.clients.drain().for_each(drop);
    }

    fn on_socket_event(&mut self, key: usize, event: &IoEvent) {
        let Some(conn) = self.clients.get_mut(key) else {
            return; // a late event for a connection already closed
        };
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            // Input first, even on a hang-up: a request may have come with the close.
            match conn.on_readable(&mut self.scratch, &self.rules) {
                Input::Flow(Flow::Open) => {}
                Input::Flow(flow) => return self.settle(key, flow),
                Input::Request(action) => self.carry_out(key, action),
            }
        }
        if event.is_error() || event.is_write_closed() {
            // EPOLLERR or EPOLLHUP: both directions are gone (a reset, or the peer's close
            // after ours), so nothing more can reach this peer. A read would not say so:
            // after a FIN, read returns 0 before it reports the reset.
            if let Some(conn) = self.clients.get_mut(key) {
                let reason = match conn.state {
                    State::Lingering => CloseReason::Done,
                    _ => CloseReason::Hangup,
                };
                return self.close(key, reason);
            }
        }
        self.flush(key);
    }

    /// Writes what a connection has pending and settles the outcome. A stream whose write
    /// completes gets what changed meanwhile in one more write (with `--coalesce-ms`, at the
    /// next fan-out instead).
    fn flush(&mut self, key: usize) {
        loop {
            let Some(conn) = self.clients.get_mut(key) else {
                return;
            };
            let flow = conn.flush(&mut self.counters.written);
            if flow != Flow::Open {
                return self.settle(key, flow);
            }
            let Some(waiter) = conn.waiting() else { break };
            if self.timers.coalesce.is_some() {
                if self.feed.has_due(key, waiter.last_id) {
                    self.feed.wake_client(key);
                }
                break;
            }
            if !self.send_due(key, None) {
                break;
            }
        }
        self.settle(key, Flow::Open);
    }

    /// A parked client starts writing what is due to it (`Feed::delivery`). Returns
    /// whether a write started: false when nothing is due or the client is not parked.
    fn send_due(&mut self, key: usize, head: Option<Rc<[u8]>>) -> bool {
        let Some(conn) = self.clients.get_mut(key) else {
            return false;
        };
        let Some(waiter) = conn.waiting() else {
            return false;
        };
        match self.feed.delivery(key, waiter, conn.protocol, head) {
            Some(d) => {
                conn.deliver(d.out, d.last_id, d.events, &mut self.counters.written);
                true
            }
            None => false,
        }
    }

    /// Acts on a handler's outcome: close, start lingering, or fix the interest.
    fn settle(&mut self, key: usize, flow: Flow) {
        let Some(conn) = self.clients.get_mut(key) else {
            return;
        };
        match flow {
            Flow::Close(reason) => return self.close(key, reason),
            Flow::Linger => self
                .timers
                .lingering
                .start(Instant::now(), key, conn.serial),
            Flow::Open => {}
        }
        // Interest follows state: WRITABLE only while output waits for the socket to drain,
        // so a client that keeps up costs no epoll_ctl call per tick.
        let wants_write = conn.wants_write();
        if wants_write != conn.registered_writable {
            let interest = if wants_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            match self
                .poll
                .registry()
                .reregister(&mut conn.socket, Token(key), interest)
            {
                Ok(()) => conn.registered_writable = wants_write,
                Err(_) => self.close(key, CloseReason::IoError),
            }
        }
    }

    fn close(&mut self, key: usize, reason: CloseReason) {
        // Before the key can be reused: its subscription goes with it.
        self.feed.unsubscribe(key);
        if let Some(conn) = self.clients.remove(key) {
            self.counters.closed(reason);
            log::debug!("{}: closed ({})", conn.describe(), reason.label());
            // Dropping the socket closes it, which also takes it out of the poller.
        }
    }

    /// The clients with updates since the last fan-out each start writing what is due to
    /// them, in one write each. Updates that arrived during a long fan-out fold into the
    /// next one: a client never holds more than its latest value per symbol.
    fn fan_out(&mut self, now: Instant) {
        if !self.feed.has_woken() {
            return;
        }
        if let Some((at, period)) = &mut self.timers.coalesce {
            if now < *at {
                return;
            }
            *at = now + *period;
        }
        let mut woken = std::mem::take(&mut self.woken);
        self.feed.take_woken(&mut woken);
        for &key in &woken {
            if self.send_due(key, None) {
                self.flush(key);
            }
        }
        self.woken = woken;
    }

    fn heartbeat(&mut self) {
        // Updates not yet fanned out go first: a heartbeat must not hold up a parked stream.
        self.fan_out(Instant::now());
        let beat = &self.shared.heartbeat;
        visit_all(
            &mut self.clients,
            &mut self.counters.written,
            &mut self.settle_later,
            |conn, written| conn.on_heartbeat(beat, written),
        );
        self.settle_all();
    }

    fn settle_all(&mut self) {
        let mut pending = std::mem::take(&mut self.settle_later);
        for (key, flow) in pending.drain(..) {
            self.settle(key, flow);
        }
        self.settle_later = pending;
    }
}

/// Runs `visit` on every connection and notes, for settling after, those that must close,
/// linger, or change interest. (A free function: `visit` borrows other parts of the server.)
fn visit_all(
    clients: &mut Clients<Socket>,
    written: &mut Written,
    settle_later: &mut Vec<(usize, Flow)>,
    mut visit: impl FnMut(&mut Connection<Socket>, &mut Written) -> Flow,
) {
    for (key, conn) in clients.iter_mut() {
        let flow = visit(conn, written);
        if flow != Flow::Open || conn.wants_write() != conn.registered_writable {
            settle_later.push((key, flow));
        }
    }
}
