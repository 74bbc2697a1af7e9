//! A whole connection fed arbitrary bytes in arbitrary chunks over a scripted socket that
//! takes a few bytes per write: parsing, routing, responses, streams, ticks and heartbeats.
//! Never a panic, and never more request bytes held than the cap.
#![no_main]
use std::io::{self, ErrorKind, Read, Write};
use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use tickerd::conn::{Connection, Flow, Input, Kind, RequestRules, Socket, State, Written};
use tickerd::price::{CatchUp, PriceSource};
use tickerd::response::Protocol;
use tickerd::route::Action;
use tickerd::{http, scgi};

#[derive(Default)]
struct Scripted {
    input: Vec<u8>,
    eof: bool,
    take: usize,
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
        Ok(buf.len().min(self.take))
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

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let protocol = if control & 1 == 0 { Protocol::Http } else { Protocol::Scgi };
    let rules = RequestRules {
        scgi: scgi::Limits { max_header: 2048, max_body: 256 },
        http: http::Limits { max_head: 2048, max_body: 256 },
        publish_token: Some("token".into()),
    };
    let limit = 2048 + 256 + 16;
    let socket = Scripted { take: usize::from(control >> 4), ..Scripted::default() };
    let mut conn = Connection::new(socket, protocol, 1, None);
    let head: Rc<[u8]> = Rc::from(&b"head"[..]);
    let beat: Rc<[u8]> = Rc::from(&b":\n"[..]);
    let mut scratch = [0u8; 61];
    let mut written = Written::default();
    let mut prices = PriceSource::new(100, 100);
    // Chunk sizes come from the data itself.
    let chunk = usize::from((control >> 1) & 7) * 13 + 1;
    let mut chunks = rest.chunks(chunk).peekable();
    while let Some(bytes) = chunks.next() {
        conn.socket.input.extend_from_slice(bytes);
        conn.socket.eof = control & 8 != 0 && chunks.peek().is_none();
        let flow = match conn.on_readable(&mut scratch, &rules) {
            Input::Flow(f) => f,
            Input::Request(Action::Stream { last_id }) => {
                conn.start_stream(head.clone(), Kind::Stream, last_id);
                Flow::Open
            }
            Input::Request(Action::LongPoll { last_id }) => {
                conn.start_stream(Rc::from(&[][..]), Kind::LongPoll, last_id);
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
        // Between chunks: zero to three ticks folded into one fan-out, a heartbeat, the
        // socket draining.
        for _ in 0..bytes.first().map_or(1, |b| b % 4) {
            let cents = prices.current().cents + 1;
            prices.set(cents);
        }
        let now = prices.current().clone();
        if let Flow::Close(_) = conn.on_tick(&now, &mut CatchUp::new(&prices), &mut written) {
            return;
        }
        if let Flow::Close(_) = conn.on_heartbeat(&beat, &now, &mut written) {
            return;
        }
        if let Flow::Close(_) = conn.flush(&now, &mut written) {
            return;
        }
    }
});
