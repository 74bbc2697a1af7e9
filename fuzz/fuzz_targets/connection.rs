//! The real core, fed arbitrary bytes in arbitrary chunks on one connection over a scripted
//! socket that takes a few bytes per write: parsing, routing (`symbols` lists too), answers,
//! streams and long polls of chosen symbols; between chunks, publishes on other connections,
//! time passing (heartbeats, long polls held, request and linger deadlines) and the socket
//! draining. Never a panic, and what a stream is sent always goes in ascending id order.
#![no_main]
use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tickerd::config::{Config, ListenAddr};
use tickerd::core::Core;
use tickerd::io::{Io, Readiness, Socket};
use tickerd::protocol::Protocol;
use tickerd::decimal::Decimal;
use tickerd::schema::{Schema, Value};
use tickerd::symbol::Symbol;
use tickerd::listing::Listed;

#[derive(Default)]
struct Pipe {
    input: Vec<u8>,
    eof: bool,
    /// Bytes taken per write; 0: WouldBlock.
    take: usize,
    output: Vec<u8>,
}

#[derive(Clone, Default)]
struct Scripted(Rc<RefCell<Pipe>>);

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut p = self.0.borrow_mut();
        if p.input.is_empty() {
            return if p.eof { Ok(0) } else { Err(ErrorKind::WouldBlock.into()) };
        }
        let n = buf.len().min(p.input.len());
        buf[..n].copy_from_slice(&p.input[..n]);
        p.input.drain(..n);
        Ok(n)
    }
}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut p = self.0.borrow_mut();
        if p.take == 0 {
            return Err(ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for b in bufs {
            let k = b.len().min(p.take - n);
            p.output.extend_from_slice(&b[..k]);
            n += k;
            if n == p.take {
                break;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Socket for Scripted {
    fn shutdown_write(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Notes the last token registered; there is no Redis to connect to.
struct FuzzIo(Rc<Cell<usize>>);

impl Io for FuzzIo {
    type Socket = Scripted;
    fn register(&mut self, _: &mut Scripted, token: usize, _: bool) -> io::Result<()> {
        self.0.set(token);
        Ok(())
    }
    fn reregister(&mut self, _: &mut Scripted, _: usize, _: bool) -> io::Result<()> {
        Ok(())
    }
    fn connect(&mut self, _: &ListenAddr) -> io::Result<Scripted> {
        Err(ErrorKind::ConnectionRefused.into())
    }
    fn connect_result(&mut self, _: &Scripted) -> Option<io::Result<()>> {
        None
    }
}

/// Every `id:` line written so far is above the one before it.
fn ids_ascend(output: &[u8]) {
    let mut last = 0u64;
    for line in output.split(|&b| b == b'\n') {
        if let Some(id) = line.strip_prefix(b"id: ") {
            let id: u64 = std::str::from_utf8(id).unwrap().parse().unwrap();
            assert!(id > last, "id {id} after {last}");
            last = id;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let protocol = if control & 1 == 0 { Protocol::Http } else { Protocol::Scgi };
    let config = Config {
        tick: None,
        heartbeat: Some(Duration::from_millis(700)),
        long_poll_hold: Duration::from_millis(1500),
        request_timeout: Duration::from_secs(3),
        max_scgi_header: 2048,
        max_publish_bytes: 256,
        max_symbols_per_client: 4,
        coalesce: (control & 0x40 != 0).then(|| Duration::from_millis(50)),
        publish_token: Some("token".into()),
        // Records of three fields, so that streams (and `fields=` in the input) get deltas.
        schema: Schema::parse("price:price,bid:price,n:int").unwrap(),
        universe: ["A", "B", "C", "D", "E"]
            .iter()
            .map(|n| Listed {
                symbol: Symbol::parse(n.as_bytes()).unwrap(),
                decimals: 2,
                values: vec![(0, Value::Decimal(Decimal::new(100, 2)))],
            })
            .collect(),
        ..Config::defaults()
    };
    let mut now = Instant::now();
    let registered = Rc::new(Cell::new(0));
    let io = FuzzIo(registered.clone());
    let mut core = Core::new(&config, io, 16, StdRng::seed_from_u64(1), now);
    let socket = Scripted::default();
    socket.0.borrow_mut().take = usize::from(control >> 4);
    core.accept(socket.clone(), protocol, None, now);
    let key = registered.get();
    // Chunk sizes come from the data itself.
    let chunk = usize::from((control >> 1) & 7) * 13 + 1;
    let mut chunks = rest.chunks(chunk).peekable();
    while let Some(bytes) = chunks.next() {
        {
            let mut p = socket.0.borrow_mut();
            p.input.extend_from_slice(bytes);
            p.eof = control & 8 != 0 && chunks.peek().is_none();
        }
        // (Once it is closed, a publisher may take its key: more input, still no panic.)
        core.on_socket(key, Readiness { input: true, gone: false }, now);
        // Between chunks: zero to three updates in one publish, on a connection of its own.
        let updates = bytes.first().map_or(1, |b| b % 4);
        if updates > 0 {
            let body: Vec<String> = (0..updates)
                .map(|n| {
                    let symbol = ["A", "B", "C", "D", "E"][usize::from(bytes[usize::from(n) % bytes.len()]) % 5];
                    // A headline, or fields of the record (some updates change nothing).
                    match n {
                        1 => format!("{symbol}={}.{:02}", 100 + n, bytes.len() % 100),
                        2 => format!("{symbol} bid={}.{:02} n={}", 100 + n, bytes.len() % 7, bytes.len() % 3),
                        _ => format!("{symbol} n={}", bytes.len() % 5),
                    }
                })
                .collect();
            let body = body.join("\n");
            let publisher = Scripted::default();
            {
                let mut p = publisher.0.borrow_mut();
                p.take = usize::MAX;
                p.eof = true;
                p.input = format!(
                    "POST /publish HTTP/1.1\r\nAuthorization: Bearer token\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes();
            }
            core.accept(publisher, Protocol::Http, None, now);
            core.on_socket(registered.get(), Readiness { input: true, gone: false }, now);
        }
        // Time passes (up to 1.3 s: heartbeats, held long polls, deadlines), the loop's
        // turn ends, and the socket drains.
        now += Duration::from_millis(u64::from(bytes[bytes.len() - 1]) * 5);
        core.advance(now);
        core.on_socket(key, Readiness::default(), now);
        ids_ascend(&socket.0.borrow().output);
    }
});
