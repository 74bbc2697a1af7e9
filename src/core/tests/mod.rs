//! The core driven over fake sockets and a fake clock: what each client receives, when, and
//! in how many writes; which interest the poller is told; what deadlines do. No network,
//! no sleeping.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

mod delivery;
mod keep_alive;
mod redis;
mod rights;
mod timers;
mod tokens;

use super::Core;
use crate::config::{Config, ListenAddr};
use crate::decimal::Decimal;
use crate::fake::{FakeSocket, Pipe};
use crate::io::{Io, Readiness};
use crate::protocol::Protocol;
use crate::schema::{Schema, Value};
use crate::symbol::Symbol;
use crate::universe::Listed;

/// What the core asked of the operating system: each token's interest (writable or not),
/// and the sockets it connected (to Redis).
#[derive(Default)]
struct Registry {
    writable: HashMap<usize, bool>,
    /// Fake descriptor → the token it was registered under.
    token_of: HashMap<RawFd, usize>,
    /// Connects succeed (`Some`: with a socket the test keeps) or are refused (`None`).
    accept_connects: bool,
    connected: Vec<FakeSocket>,
}

struct FakeIo(Rc<RefCell<Registry>>);

impl Io for FakeIo {
    type Socket = FakeSocket;
    fn register(&mut self, s: &mut FakeSocket, token: usize, writable: bool) -> io::Result<()> {
        let mut r = self.0.borrow_mut();
        r.writable.insert(token, writable);
        r.token_of.insert(std::os::fd::AsRawFd::as_raw_fd(s), token);
        Ok(())
    }
    fn reregister(&mut self, _: &mut FakeSocket, token: usize, writable: bool) -> io::Result<()> {
        self.0.borrow_mut().writable.insert(token, writable);
        Ok(())
    }
    fn connect(&mut self, _: &ListenAddr) -> io::Result<FakeSocket> {
        let mut r = self.0.borrow_mut();
        if !r.accept_connects {
            return Err(io::Error::from(ErrorKind::ConnectionRefused));
        }
        let socket = FakeSocket::new(1000 + r.connected.len() as RawFd, b"", false);
        r.connected.push(socket.clone());
        Ok(socket)
    }
    fn connect_result(&mut self, _: &FakeSocket) -> Option<io::Result<()>> {
        Some(Ok(()))
    }
}

/// A client as the test sees it.
struct Client {
    socket: FakeSocket,
    key: usize,
}

impl Client {
    fn pipe(&self) -> std::cell::RefMut<'_, Pipe> {
        self.socket.pipe()
    }

    /// Everything written to it so far.
    fn text(&self) -> String {
        self.socket.text()
    }

    /// The events written to it: (id, data).
    /// Each event's id (0: it has no `id:` line) and data.
    fn events(&self) -> Vec<(u64, String)> {
        let text = self.text();
        text.split("\n\n")
            .filter_map(|block| {
                let id = block.lines().find_map(|l| l.strip_prefix("id: "));
                let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
                Some((id.map_or(0, |id| id.parse().unwrap()), data.to_string()))
            })
            .collect()
    }

    fn writes(&self) -> usize {
        self.pipe().writes
    }
}

const TOKEN: &str = "t";

struct Harness {
    core: Core<FakeIo>,
    registry: Rc<RefCell<Registry>>,
    now: Instant,
    next_fd: RawFd,
}

/// A config for `symbols`, each at 100.00, without the random walk.
fn config(symbols: &[&str]) -> Config {
    Config {
        tick: None,
        schema: Schema::single_price(),
        universe: symbols
            .iter()
            .map(|s| Listed {
                symbol: Symbol::parse(s.as_bytes()).unwrap(),
                decimals: 2,
                values: vec![(0, Value::Decimal(Decimal::new(10_000, 2)))],
            })
            .collect(),
        publish_token: Some(TOKEN.into()),
        ..Config::defaults()
    }
}

impl Harness {
    fn new(config: &Config) -> Harness {
        Harness::with_max_clients(config, 100)
    }

    fn with_max_clients(config: &Config, max_clients: usize) -> Harness {
        let registry = Rc::new(RefCell::new(Registry::default()));
        let now = Instant::now();
        let io = FakeIo(registry.clone());
        let rng = StdRng::seed_from_u64(7);
        Harness {
            core: Core::new(config, io, max_clients, rng, now),
            registry,
            now,
            next_fd: 100,
        }
    }

    /// A connection accepted on the HTTP listener that sends `request` (left open).
    fn connect(&mut self, request: &str) -> Client {
        self.connect_over(Protocol::Http, request.as_bytes())
    }

    fn connect_over(&mut self, protocol: Protocol, request: &[u8]) -> Client {
        self.next_fd += 1;
        let socket = FakeSocket::new(self.next_fd, b"", false);
        self.core.accept(socket.clone(), protocol, None, self.now);
        let key = self.registry.borrow().token_of[&self.next_fd];
        let client = Client { socket, key };
        self.send(&client, request);
        client
    }

    /// The client sends `bytes`; the core reads them.
    fn send(&mut self, c: &Client, bytes: &[u8]) {
        c.pipe().input.extend_from_slice(bytes);
        self.ready(
            c,
            Readiness {
                input: true,
                gone: false,
            },
        );
    }

    fn ready(&mut self, c: &Client, readiness: Readiness) {
        self.core.on_socket(c.key, readiness, self.now);
    }

    /// A stream of `symbols` (`None`: the default symbol's plain stream).
    fn stream(&mut self, symbols: Option<&str>, last_id: Option<u64>) -> Client {
        let target = match symbols {
            Some(s) => format!("/ticker?symbols={s}"),
            None => "/ticker".into(),
        };
        let resume = last_id.map_or(String::new(), |g| format!("Last-Event-ID: {g}\r\n"));
        self.connect(&format!("GET {target} HTTP/1.1\r\n{resume}\r\n"))
    }

    /// A publish of `body`: the answer's text.
    fn publish(&mut self, body: &str) -> String {
        let c = self.connect(&format!(
            "POST /publish HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        c.text()
    }

    /// The end of a loop turn: timers due, then the fan-out.
    fn turn(&mut self) {
        self.core.advance(self.now);
    }

    fn later(&mut self, d: Duration) {
        self.now += d;
        self.turn();
    }

    fn writable(&self, c: &Client) -> bool {
        self.registry.borrow().writable[&c.key]
    }

    fn last_id(&self) -> u64 {
        self.core.feed.universe.last_id()
    }
}

fn ids(events: &[(u64, String)]) -> Vec<u64> {
    events.iter().map(|(id, _)| *id).collect()
}

fn price_of(data: &str) -> &str {
    data.rsplit('"').nth(1).unwrap()
}
