//! A whole connection fed arbitrary bytes in arbitrary chunks over a scripted socket that
//! takes a few bytes per write: parsing, routing (`symbols` lists too), publish batches
//! checked against a small universe, streams and long polls of chosen symbols, updates,
//! fan-outs and heartbeats between chunks. Never a panic, never more request bytes held
//! than the cap, and what a stream is sent always goes in ascending id order.
#![no_main]
use std::io::{self, ErrorKind, Read, Write};
use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use tickerd::conn::{Connection, Flow, Input, Kind, RequestRules, Socket, State, Written};
use tickerd::feed::{resume_point, Feed};
use tickerd::publish::parse_batch;
use tickerd::response::Protocol;
use tickerd::route::{self, Action, Choice};
use tickerd::symbol::Symbol;
use tickerd::universe::{Format, Universe, DEFAULT_SYMBOL};
use tickerd::{http, scgi};

#[derive(Default)]
struct Scripted {
    input: Vec<u8>,
    eof: bool,
    take: usize,
    output: Vec<u8>,
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return if self.eof { Ok(0) } else { Err(ErrorKind::WouldBlock.into()) };
        }
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input.drain(..n);
        Ok(n)
    }
}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.take == 0 {
            return Err(ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.take);
        self.output.extend_from_slice(&buf[..n]);
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

const KEY: usize = 0;

/// What the server does with a waiting client: hand it what is due, write, repeat.
fn serve(conn: &mut Connection<Scripted>, feed: &mut Feed, w: &mut Written, head: Option<Rc<[u8]>>) -> Flow {
    let mut head = head;
    loop {
        if let Some(waiter) = conn.waiting() {
            match feed.delivery(KEY, waiter, conn.protocol, head.take()) {
                Some(d) => conn.deliver(d.out, d.last_id, d.events, w),
                None => return Flow::Open,
            }
        }
        match conn.flush(w) {
            Flow::Open if conn.waiting().is_some() => continue,
            flow => return flow,
        }
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
    let rules = RequestRules {
        scgi: scgi::Limits { max_header: 2048, max_body: 256 },
        http: http::Limits { max_head: 2048, max_body: 256 },
        route: route::Rules { publish_token: Some("token".into()), max_symbols: 4 },
    };
    let limit = 2048 + 256 + 16;
    let listing: Vec<(Symbol, u64)> = ["A", "B", "C", "D", "E"]
        .iter()
        .map(|n| (Symbol::parse(n.as_bytes()).unwrap(), 100))
        .collect();
    let mut feed = Feed::new(Universe::new(&listing, 100));
    let socket = Scripted { take: usize::from(control >> 4), ..Scripted::default() };
    let mut conn = Connection::new(socket, protocol, 1, None);
    let head: Rc<[u8]> = Rc::from(&b"head"[..]);
    let beat: Rc<[u8]> = Rc::from(&b":\n"[..]);
    let mut scratch = [0u8; 61];
    let mut w = Written::default();
    let mut woken = Vec::new();
    // Chunk sizes come from the data itself.
    let chunk = usize::from((control >> 1) & 7) * 13 + 1;
    let mut chunks = rest.chunks(chunk).peekable();
    while let Some(bytes) = chunks.next() {
        conn.socket.input.extend_from_slice(bytes);
        conn.socket.eof = control & 8 != 0 && chunks.peek().is_none();
        let flow = match conn.on_readable(&mut scratch, &rules) {
            Input::Flow(f) => f,
            Input::Request(action @ (Action::Stream { .. } | Action::LongPoll { .. })) => {
                let (kind, last_id, symbols) = match action {
                    Action::Stream { last_id, symbols } => (Kind::Stream, last_id, symbols),
                    Action::LongPoll { last_id, symbols } => (Kind::LongPoll, last_id, symbols),
                    _ => unreachable!(),
                };
                let (ids, format) = match &symbols {
                    Choice::Default => (vec![DEFAULT_SYMBOL], Format::Plain),
                    Choice::Named(names) => (names.iter().filter_map(|s| feed.universe.find(s)).collect(), Format::Json),
                };
                feed.subscribe(KEY, &ids, format);
                conn.start_stream(kind, resume_point(last_id, feed.universe.last_id()));
                serve(&mut conn, &mut feed, &mut w, (kind == Kind::Stream).then(|| head.clone()))
            }
            Input::Request(Action::Publish(body)) => {
                let universe = &feed.universe;
                if let Ok(batch) = parse_batch(&body, DEFAULT_SYMBOL, |s| universe.find(s)) {
                    feed.apply(&batch);
                }
                conn.start_response(Rc::from(&b"answer"[..]));
                Flow::Open
            }
            Input::Request(_) => {
                conn.start_response(Rc::from(&b"answer"[..]));
                Flow::Open
            }
        };
        if let State::Reading { buf, .. } = &conn.state {
            assert!(buf.len() <= limit);
        }
        if let Flow::Close(_) = flow {
            return;
        }
        // Between chunks: zero to three updates folded into one fan-out, a heartbeat, the
        // socket draining.
        for n in 0..bytes.first().map_or(1, |b| b % 4) {
            let symbol = u32::from(bytes[usize::from(n) % bytes.len()]) % 5;
            feed.apply(&[(symbol, 100 + u64::from(n))]);
        }
        feed.take_woken(&mut woken);
        if let Flow::Close(_) = serve(&mut conn, &mut feed, &mut w, None) {
            return;
        }
        if let Flow::Close(_) = conn.on_heartbeat(&beat, &mut w) {
            return;
        }
        if let Flow::Close(_) = serve(&mut conn, &mut feed, &mut w, None) {
            return;
        }
        ids_ascend(&conn.socket.output);
    }
});
