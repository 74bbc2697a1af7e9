//! A bare HTTP/2 client over cleartext TCP (h2c by prior knowledge), just enough to open
//! many streams on one connection and see what the server does with each: which got a
//! response, which were reset and why, and the DATA of each. No HPACK decoder: requests are
//! encoded as literals, and only the response's first header byte is kept.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;

const ACK: u8 = 0x1;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;

/// What the server did with one stream.
#[derive(Debug, Default, Clone)]
pub struct StreamSeen {
    /// The first byte of the response's header block: 0x88 is HPACK's static entry
    /// ":status: 200" (RFC 7541, appendix A).
    pub head: Option<u8>,
    pub data: Vec<u8>,
    pub reset: Option<u32>,
}

pub struct H2c {
    socket: TcpStream,
    inbox: Vec<u8>,
    /// The server's SETTINGS, by identifier.
    pub settings: HashMap<u16, u32>,
    pub streams: HashMap<u32, StreamSeen>,
    pub goaway: Option<u32>,
    /// PING acknowledgements received: a server that answers them is reading frames.
    pub ping_acks: usize,
}

impl H2c {
    /// Connects, sends the preface with a large receive window (so that flow control never
    /// holds a stream back during a test) and, unless `ack` is false, waits for the
    /// server's SETTINGS and acknowledges them.
    pub fn connect(addr: SocketAddr, ack: bool) -> H2c {
        let socket = TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut c = H2c {
            socket,
            inbox: Vec::new(),
            settings: HashMap::new(),
            streams: HashMap::new(),
            goaway: None,
            ping_acks: 0,
        };
        c.socket
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .unwrap();
        // SETTINGS_INITIAL_WINDOW_SIZE (0x4) = 2^30, and as much again for the connection.
        let mut settings = Vec::new();
        settings.extend_from_slice(&0x4u16.to_be_bytes());
        settings.extend_from_slice(&(1u32 << 30).to_be_bytes());
        c.send(SETTINGS, 0, 0, &settings);
        c.send(WINDOW_UPDATE, 0, 0, &(1u32 << 30).to_be_bytes());
        if ack {
            let end = Instant::now() + Duration::from_secs(10);
            while c.settings.is_empty() && Instant::now() < end {
                c.pump(Instant::now() + Duration::from_millis(100));
            }
            assert!(!c.settings.is_empty(), "no SETTINGS from the server");
        }
        c
    }

    pub fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len() as u32;
        let mut frame = len.to_be_bytes()[1..].to_vec();
        frame.extend_from_slice(&[kind, flags]);
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        self.socket.write_all(&frame).unwrap();
    }

    /// Opens stream `id` with `GET path` (odd ids, increasing, as RFC 9113 requires).
    pub fn get(&mut self, id: u32, path: &str, headers: &[(&str, &str)]) {
        // HPACK: indexed ":method: GET" (2) and ":scheme: http" (6); ":path" (4) and
        // ":authority" (1) as literals without indexing on an indexed name; other headers as
        // literals with a new name (lower case, as HTTP/2 requires).
        let mut block = vec![0x82, 0x86];
        for (index, value) in [(0x04u8, path), (0x01, "t")] {
            block.push(index);
            literal(&mut block, value);
        }
        for (name, value) in headers {
            block.push(0x00);
            literal(&mut block, &name.to_ascii_lowercase());
            literal(&mut block, value);
        }
        self.send(HEADERS, END_HEADERS | END_STREAM, id, &block);
    }

    /// Cancels stream `id`, as a browser does when a tab closes.
    pub fn cancel(&mut self, id: u32) {
        self.send(RST_STREAM, 0, id, &CANCEL.to_be_bytes());
    }

    pub fn ping(&mut self) {
        self.send(PING, 0, 0, b"tickerd!");
    }

    /// Reads frames until `until`, answering SETTINGS and PING as a client must.
    pub fn pump(&mut self, until: Instant) {
        let mut buf = [0u8; 16384];
        while Instant::now() < until {
            match self.socket.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => self.inbox.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("h2c read: {e}"),
            }
            while let Some((kind, flags, stream, payload)) = self.next_frame() {
                self.take(kind, flags, stream, payload);
            }
        }
    }

    fn next_frame(&mut self) -> Option<(u8, u8, u32, Vec<u8>)> {
        if self.inbox.len() < 9 {
            return None;
        }
        let len = u32::from_be_bytes([0, self.inbox[0], self.inbox[1], self.inbox[2]]) as usize;
        if self.inbox.len() < 9 + len {
            return None;
        }
        let (kind, flags) = (self.inbox[3], self.inbox[4]);
        let stream = u32::from_be_bytes(self.inbox[5..9].try_into().unwrap()) & 0x7fff_ffff;
        let payload = self.inbox[9..9 + len].to_vec();
        self.inbox.drain(..9 + len);
        Some((kind, flags, stream, payload))
    }

    fn take(&mut self, kind: u8, flags: u8, stream: u32, payload: Vec<u8>) {
        match kind {
            SETTINGS if flags & ACK == 0 => {
                for entry in payload.chunks_exact(6) {
                    let id = u16::from_be_bytes([entry[0], entry[1]]);
                    let value = u32::from_be_bytes(entry[2..6].try_into().unwrap());
                    self.settings.insert(id, value);
                }
                self.send(SETTINGS, ACK, 0, &[]);
            }
            PING if flags & ACK == 0 => self.send(PING, ACK, 0, &payload),
            PING => self.ping_acks += 1,
            GOAWAY => self.goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap())),
            HEADERS => {
                self.streams
                    .entry(stream)
                    .or_default()
                    .head
                    .get_or_insert(payload[0]);
            }
            DATA => self
                .streams
                .entry(stream)
                .or_default()
                .data
                .extend_from_slice(&payload),
            RST_STREAM => {
                self.streams.entry(stream).or_default().reset =
                    Some(u32::from_be_bytes(payload[..4].try_into().unwrap()));
            }
            _ => {}
        }
    }

    pub fn stream(&self, id: u32) -> StreamSeen {
        self.streams.get(&id).cloned().unwrap_or_default()
    }
}

/// An HPACK string literal, no Huffman coding; short values only (7-bit length prefix).
fn literal(block: &mut Vec<u8>, s: &str) {
    assert!(s.len() < 127, "long HPACK literal");
    block.push(s.len() as u8);
    block.extend_from_slice(s.as_bytes());
}
