//! The event loop: one thread, one `mio::Poll`. It accepts, hands each socket event to its
//! connection, fans ticks out, and fires deadlines from the poll timeout. It knows nothing
//! of netstrings or HTTP: connections parse, the router decides, the loop carries out.

use std::io::{self, ErrorKind};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use mio::event::Event as IoEvent;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::StdRng;
use rand::SeedableRng;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::clients::Clients;
use crate::config::Config;
use crate::conn::{CloseReason, Connection, Flow, Input, Kind, RequestRules, State, Written};
use crate::deadlines::DeadlineQueue;
use crate::feed::{self, Feed};
use crate::metrics::{self, Counters, FeedGauges, Refusal};
use crate::net::{self, Listener, Socket};
use crate::publish::{self, PublishError};
use crate::response::{self, Protocol};
use crate::route::{self, Action, Choice};
use crate::universe::{Format, SymbolId, Universe, DEFAULT_SYMBOL};
use crate::{http, price, scgi, sse};

/// The page, embedded in the binary.
pub const PAGE: &str = include_str!("page.html");
/// The page's client logic, also served on its own for other pages to embed.
pub const SCRIPT: &str = include_str!("tickerd.js");

/// Tokens above every slab key: the signal pipe, then the listeners counting down.
const SIGNAL_TOKEN: Token = Token(usize::MAX);
const LISTENER_TOKEN_BASE: usize = usize::MAX - 1;

/// Descriptors kept back from `--max-clients` by default: listeners, the poller, logs, and
/// room to accept a connection only to tell it 503.
const FD_HEADROOM: u64 = 64;
/// Connections accepted per wake-up at most, so a flood cannot starve the streams.
const ACCEPTS_PER_WAKEUP: usize = 256;
/// How long accepting pauses when descriptors run out.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Refusals at `--max-clients` are logged at most this often, each line with the count.
const FULL_LOG_EVERY: Duration = Duration::from_secs(10);
/// How long a finished connection may take to close its side.
const LINGER: Duration = Duration::from_secs(2);
const MAX_HTTP_HEAD: usize = 8 * 1024;
/// What 503 answers tell clients to wait, in seconds.
const RETRY_AFTER: &str = "5";

/// Bytes made once per protocol and shared by every connection that writes them.
struct PerProtocol([Rc<[u8]>; 2]);

impl PerProtocol {
    fn new(make: impl Fn(Protocol) -> Vec<u8>) -> PerProtocol {
        PerProtocol([make(Protocol::Http).into(), make(Protocol::Scgi).into()])
    }

    fn get(&self, p: Protocol) -> Rc<[u8]> {
        self.0[p as usize].clone()
    }
}

struct Shared {
    stream_start: PerProtocol,
    page: PerProtocol,
    script: PerProtocol,
    heartbeat: Rc<[u8]>,
}

impl Shared {
    fn new(retry_ms: u64) -> Shared {
        let file = |content_type: &'static str, body: &'static str| {
            PerProtocol::new(move |p| {
                let extra = [("Cache-Control", "no-cache")];
                response::full(p, 200, content_type, &extra, body.as_bytes())
            })
        };
        Shared {
            stream_start: PerProtocol::new(|p| response::stream_start(p, retry_ms)),
            page: file("text/html; charset=utf-8", PAGE),
            script: file("text/javascript; charset=utf-8", SCRIPT),
            heartbeat: Rc::from(sse::HEARTBEAT),
        }
    }
}

/// Timers taken from the poll timeout.
struct Timers {
    tick: Option<(Instant, Duration)>,
    heartbeat: Option<(Instant, Duration)>,
    accept_paused_until: Option<Instant>,
    /// `--coalesce-ms`: the next fan-out may not come before this; `None` without it.
    coalesce: Option<(Instant, Duration)>,
    requests: DeadlineQueue,
    lingering: DeadlineQueue,
    long_polls: DeadlineQueue,
}

impl Timers {
    fn next(&self, woken: bool) -> Option<Instant> {
        [
            self.tick.map(|(at, _)| at),
            self.heartbeat.map(|(at, _)| at),
            self.accept_paused_until,
            self.coalesce.filter(|_| woken).map(|(at, _)| at),
            self.requests.next(),
            self.lingering.next(),
            self.long_polls.next(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

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
}

impl Server {
    /// Binds the listeners and prepares everything; `run` starts serving.
    pub fn bind(config: &Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listeners = Vec::new();
        for (addr, protocol) in [
            (&config.scgi, Protocol::Scgi),
            (&config.http, Protocol::Http),
        ] {
            let Some(addr) = addr else { continue };
            let mut listener = Listener::bind(addr, config.socket_mode)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            let token = Token(LISTENER_TOKEN_BASE - listeners.len());
            poll.registry()
                .register(&mut listener, token, Interest::READABLE)?;
            listeners.push((listener, protocol));
        }
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        poll.registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;

        let fd_limit = net::raise_open_file_limit();
        let max_clients = config
            .max_clients
            .unwrap_or_else(|| fd_limit.saturating_sub(FD_HEADROOM).max(1) as usize);
        let now = Instant::now();
        let first_id = price::first_event_id(SystemTime::now());
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
                coalesce: config.coalesce.map(|p| (now, p)),
                requests: DeadlineQueue::new(config.request_timeout),
                lingering: DeadlineQueue::new(LINGER),
                long_polls: DeadlineQueue::new(config.long_poll_hold),
            },
            next_serial: 0,
            out_of_descriptors_since: None,
            full_logged_at: None,
            refused_unlogged: 0,
            scratch: vec![0; 64 * 1024].into_boxed_slice(),
            settle_later: Vec::new(),
            woken: Vec::new(),
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
            let timeout = self
                .timers
                .next(self.feed.has_woken())
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
                    Token(key) => self.on_socket_event(key, event),
                }
            }
            self.on_timers(Instant::now());
            self.fan_out(Instant::now());
        }
    }

    /// True when asked to stop.
    fn on_signals(&mut self) -> bool {
        let mut stop = false;
        for signal in self.signals.pending() {
            match signal {
                SIGHUP => log::info!("SIGHUP ignored: tickerd has no files to reopen or re-read"),
                _ => stop = true,
            }
        }
        stop
    }

    fn shut_down(&mut self) {
        log::info!("stopping: closing {} connections", self.clients.len());
        // Dropping the listeners stops accepting (and removes a Unix socket file); dropping a
        // connection closes it, which ends its stream for the front-end or browser.
        self.listeners.clear();
        self.clients.drain().for_each(drop);
    }

    fn accept(&mut self, index: usize) {
        if self.timers.accept_paused_until.is_some() {
            return; // resumed by the timer
        }
        for _ in 0..ACCEPTS_PER_WAKEUP {
            let Some((listener, protocol)) = self.listeners.get(index) else {
                return;
            };
            let protocol = *protocol;
            let (mut socket, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // Retrying now would spin: the connection stays queued in the kernel.
                    let now = Instant::now();
                    if self.out_of_descriptors_since.is_none() {
                        log::warn!(
                            "out of file descriptors with {} connections open: accepting every {ACCEPT_PAUSE:?} until some free up",
                            self.clients.len()
                        );
                        self.out_of_descriptors_since = Some(now);
                    }
                    self.counters.refused(Refusal::NoDescriptors);
                    self.timers.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ECONNABORTED | libc::EPROTO | libc::EPERM)
                    ) =>
                {
                    // These concern one connection that is already gone, not the listener.
                    log::debug!("accept: {e}");
                    continue;
                }
                Err(e) => {
                    // Anything else (ENOBUFS, ENOMEM…) may well happen again at once:
                    // back off as for EMFILE rather than spin.
                    log::warn!("accept failed: {e}: pausing accepts for {ACCEPT_PAUSE:?}");
                    self.timers.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    return;
                }
            };
            if let Some(since) = self.out_of_descriptors_since.take() {
                log::info!(
                    "accepting again after {:?} out of file descriptors",
                    since.elapsed()
                );
            }
            match protocol {
                Protocol::Scgi => self.counters.accepted_scgi += 1,
                Protocol::Http => self.counters.accepted_http += 1,
            }
            let key = self.clients.vacant_key();
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut socket, Token(key), Interest::READABLE)
            {
                log::warn!("cannot register a new connection: {e}");
                continue;
            }
            self.next_serial += 1;
            let mut conn = Connection::new(socket, protocol, self.next_serial, peer);
            let now = Instant::now();
            if self.clients.len() >= self.max_clients {
                self.refused_unlogged += 1;
                if self
                    .full_logged_at
                    .is_none_or(|at| now.duration_since(at) >= FULL_LOG_EVERY)
                {
                    log::warn!(
                        "{}: refused (503): --max-clients {} reached; {} refused since the last such line (one every {FULL_LOG_EVERY:?} at most)",
                        conn.describe(),
                        self.max_clients,
                        self.refused_unlogged
                    );
                    self.full_logged_at = Some(now);
                    self.refused_unlogged = 0;
                }
                log::debug!("{}: refused (503): full", conn.describe());
                self.counters.refused(Refusal::Full);
                let answer = response::text(
                    protocol,
                    503,
                    &[("Retry-After", RETRY_AFTER)],
                    "server full\n",
                );
                conn.start_response(answer.into());
                let key = self.clients.insert(conn);
                self.flush(key);
            } else {
                log::debug!("{}: accepted", conn.describe());
                let key = self.clients.insert(conn);
                self.timers.requests.start(now, key, self.next_serial);
            }
        }
        // More may be waiting, and edge-triggered readiness will not say so again: come back
        // after the other ready sockets have had their turn.
        self.timers.accept_paused_until = Some(Instant::now());
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

    /// Carries out a routed request on connection `key`.
    fn carry_out(&mut self, key: usize, action: Action) {
        let Some(conn) = self.clients.get(key) else {
            return;
        };
        let p = conn.protocol;
        let text = |status, extra: &[(&str, &str)], body: &str| -> Rc<[u8]> {
            response::text(p, status, extra, body).into()
        };
        let answer = match action {
            Action::Stream { last_id, symbols } => {
                return self.start_stream(key, Kind::Stream, last_id, symbols)
            }
            Action::LongPoll { last_id, symbols } => {
                return self.start_stream(key, Kind::LongPoll, last_id, symbols)
            }
            Action::Page => self.shared.page.get(p),
            Action::Script => self.shared.script.get(p),
            Action::Symbols { prefix, limit } => {
                let body = self.feed.universe.listing_json(&prefix, limit);
                let extra = [("Cache-Control", "no-cache")];
                response::full(p, 200, "application/json", &extra, body.as_bytes()).into()
            }
            Action::Metrics => {
                let counts = self.clients.counts(Some(key));
                let u = &self.feed.universe;
                let gauges = FeedGauges {
                    symbols: u.len(),
                    subscriptions: self.feed.subscriptions(),
                    updates: self.feed.updates,
                    last_id: u.last_id(),
                    default_cents: u.cents(DEFAULT_SYMBOL),
                };
                let body = metrics::render(&self.counters, &counts, self.max_clients, &gauges);
                response::full(p, 200, "text/plain; version=0.0.4", &[], body.as_bytes()).into()
            }
            Action::Publish(body) => {
                let universe = &self.feed.universe;
                match publish::parse_batch(&body, DEFAULT_SYMBOL, |s| universe.find(s)) {
                    Ok(batch) => {
                        // Applied now; the fan-out follows once the loop has handled every
                        // ready event, so publishes that arrive together fold into one.
                        let id = self.feed.apply(&batch);
                        self.counters.published += 1;
                        self.counters.ticks += 1;
                        text(200, &[], &format!("{id}\n"))
                    }
                    Err(why) => {
                        self.counters.publish_refused += 1;
                        self.log_refusal(key, 400, &format!("publish refused: {why}"));
                        text(400, &[], &format!("{why}\n"))
                    }
                }
            }
            Action::PublishRefused(why) => match why {
                PublishError::Disabled => text(404, &[], "publishing is disabled\n"),
                PublishError::Unauthorized => {
                    self.counters.publish_refused += 1;
                    self.log_refusal(key, 401, "publish refused: missing or wrong token");
                    text(
                        401,
                        &[("WWW-Authenticate", "Bearer")],
                        "missing or wrong token\n",
                    )
                }
            },
            Action::Refuse(status, why) => {
                self.log_refusal(key, status, &why);
                text(status, &[], &format!("{why}\n"))
            }
            Action::NotFound => text(404, &[], "not found\n"),
            Action::MethodNotAllowed { allow } => {
                text(405, &[("Allow", allow)], "method not allowed\n")
            }
        };
        if let Some(conn) = self.clients.get_mut(key) {
            conn.start_response(answer);
        }
    }

    fn log_refusal(&self, key: usize, status: u16, why: &str) {
        if let Some(conn) = self.clients.get(key) {
            log::warn!("{}: refused ({status}): {why}", conn.describe());
        }
    }

    /// A stream or long poll of `symbols`, resuming after `last_id`: subscribed, then sent
    /// what is due at once (a stream's head with it). Unknown symbols: 404, nothing started.
    fn start_stream(&mut self, key: usize, kind: Kind, last_id: Option<u64>, symbols: Choice) {
        let (ids, format) = match self.resolve(&symbols) {
            Ok(chosen) => chosen,
            Err(why) => {
                self.log_refusal(key, 404, &why);
                if let Some(conn) = self.clients.get_mut(key) {
                    let answer = response::text(conn.protocol, 404, &[], &format!("{why}\n"));
                    conn.start_response(answer.into());
                }
                return;
            }
        };
        let Some(conn) = self.clients.get_mut(key) else {
            return;
        };
        match kind {
            Kind::Stream => self.counters.streams_started += 1,
            Kind::LongPoll => self.counters.long_polls_started += 1,
        }
        if last_id.is_some() {
            self.counters.requests_with_last_event_id += 1;
        }
        log::debug!(
            "{} [{} symbols]: {kind:?}, Last-Event-ID {last_id:?}",
            conn.describe(),
            ids.len()
        );
        let after = feed::resume_point(last_id, self.feed.universe.last_id());
        conn.start_stream(kind, after);
        let head = (kind == Kind::Stream).then(|| self.shared.stream_start.get(conn.protocol));
        if kind == Kind::LongPoll {
            let serial = conn.serial;
            self.timers.long_polls.start(Instant::now(), key, serial);
        }
        self.feed.subscribe(key, &ids, format);
        self.send_due(key, head);
    }

    /// The universe's ids of a stream's symbols, and the format its events take; the
    /// 404 reason when some are unknown.
    fn resolve(&self, symbols: &Choice) -> Result<(Vec<SymbolId>, Format), String> {
        let universe = &self.feed.universe;
        match symbols {
            Choice::Default => Ok((vec![DEFAULT_SYMBOL], Format::Plain)),
            Choice::Named(names) => {
                let (known, unknown): (Vec<_>, Vec<_>) = names
                    .iter()
                    .map(|s| universe.find(s).ok_or(s))
                    .partition(Result::is_ok);
                if unknown.is_empty() {
                    return Ok((known.into_iter().flatten().collect(), Format::Json));
                }
                let unknown: Vec<String> = unknown
                    .iter()
                    .filter_map(|u| u.err())
                    .map(|s| s.to_string())
                    .collect();
                let shown = unknown
                    .iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                let more = match unknown.len() {
                    n if n > 10 => format!(" and {} more", n - 10),
                    _ => String::new(),
                };
                Err(format!("symbols: unknown: {shown}{more}"))
            }
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

    /// Deadline entries outlive their connections (a closed one is skipped when its entry
    /// expires). When a queue holds many more entries than there are connections, drop the
    /// dead ones, so memory follows live connections, not the churn of the last 30 s.
    fn compact_deadlines(&mut self) {
        let live = self.clients.len();
        let clients = &mut self.clients;
        for queue in [
            &mut self.timers.requests,
            &mut self.timers.lingering,
            &mut self.timers.long_polls,
        ] {
            if queue.len() > 2 * live + 1024 {
                queue.retain(|key, serial| clients.get_serial(key, serial).is_some());
                queue.shrink();
            }
        }
    }

    fn settle_all(&mut self) {
        let mut pending = std::mem::take(&mut self.settle_later);
        for (key, flow) in pending.drain(..) {
            self.settle(key, flow);
        }
        self.settle_later = pending;
    }

    fn on_timers(&mut self, now: Instant) {
        self.compact_deadlines();
        if let Some((at, period)) = self.timers.tick {
            if at <= now {
                // Keep the beat; after a stall, skip ahead rather than tick in a burst.
                let next = if at + period > now {
                    at + period
                } else {
                    now + period
                };
                self.timers.tick = Some((next, period));
                self.feed.walk(&mut self.rng);
                self.counters.ticks += 1;
            }
        }
        if let Some((at, period)) = self.timers.heartbeat {
            if at <= now {
                self.timers.heartbeat = Some((now + period, period));
                self.heartbeat();
            }
        }
        if self.timers.accept_paused_until.is_some_and(|at| at <= now) {
            self.timers.accept_paused_until = None;
            for index in 0..self.listeners.len() {
                self.accept(index);
            }
        }
        while let Some((key, serial)) = self.timers.requests.pop_expired(now) {
            if let Some(conn) = self.clients.get_serial(key, serial) {
                if matches!(conn.state, State::Reading { .. }) {
                    log::warn!("{}: closed: request not complete in time", conn.describe());
                    self.close(key, CloseReason::RequestTimeout);
                }
            }
        }
        while let Some((key, serial)) = self.timers.long_polls.pop_expired(now) {
            // Held too long (front-ends and browsers give up on silent requests): answered
            // with what it has, its symbols' current values; the client simply polls again.
            if let Some(conn) = self.clients.get_serial(key, serial) {
                if conn.rewind_long_poll() {
                    self.send_due(key, None);
                    self.flush(key);
                }
            }
        }
        while let Some((key, serial)) = self.timers.lingering.pop_expired(now) {
            if let Some(conn) = self.clients.get_serial(key, serial) {
                if matches!(conn.state, State::Lingering) {
                    self.close(key, CloseReason::LingerTimeout);
                }
            }
        }
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
