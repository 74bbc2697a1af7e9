//! What the tests read off a socket, in one place: a response's head (an HTTP status line or
//! a CGI `Status:`, as tickerd answers over SCGI), a whole response (by Content-Length, by
//! chunks, or to EOF), and an event stream (de-chunked when a front-end chunks it, split into
//! blocks by the WHATWG rules). Every test and client reads responses with [`read_head`] and
//! [`read_response`], and event streams with [`Body`] (under [`SseReader`] and the clients).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response's head: its status, its text (status line and headers, up to and including
/// the blank line), whether the body is chunked, its Content-Length, and the bytes read past
/// the head.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub text: String,
    pub chunked: bool,
    pub length: Option<usize>,
    pub rest: Vec<u8>,
}

/// Reads a response's head from a blocking socket. A read timeout that passes is an error
/// unless `keep_waiting` says to go on (asked at each timeout).
pub fn read_head(
    r: &mut impl Read,
    mut keep_waiting: impl FnMut() -> bool,
) -> Result<Head, String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&raw[..end + 4]).to_string();
            let first = text.lines().next().unwrap_or_default();
            let status = first
                .strip_prefix("Status: ")
                .or_else(|| first.split_once(' ').map(|(_, r)| r))
                .and_then(|r| r.get(..3))
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("no status in {text:?}"))?;
            let chunked = header(&text, "Transfer-Encoding").is_some_and(|v| v.contains("chunked"));
            let length = match header(&text, "Content-Length") {
                Some(v) => Some(v.parse().map_err(|_| format!("bad length in {text:?}"))?),
                None => None,
            };
            return Ok(Head {
                status,
                text,
                chunked,
                length,
                rest: raw[end + 4..].to_vec(),
            });
        }
        match r.read(&mut buf) {
            Ok(0) => {
                return Err(format!(
                    "closed before the head: {:?}",
                    String::from_utf8_lossy(&raw)
                ))
            }
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) && keep_waiting() => {}
            Err(e) => return Err(format!("reading the head: {e}")),
        }
    }
}

/// A header's value in `head`, the name matched without regard to case.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// One whole response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// The status line and headers, up to and including the blank line.
    pub head: String,
    /// De-chunked.
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.head, name)
    }
}

/// Reads one response: the head, then the body by its Content-Length, by its chunks, or to
/// EOF. After a body with a length or chunks the connection is left open for the next one.
/// A reset after the head ends a body that runs to EOF (a server that closes with input
/// unread resets).
pub fn try_read_response(r: &mut impl Read) -> Result<Response, String> {
    let head = read_head(r, || false)?;
    let mut raw = head.rest;
    let mut buf = [0u8; 4096];
    // Whether more bytes came (false at EOF).
    let mut fill = |raw: &mut Vec<u8>| -> io::Result<bool> {
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    };
    let failed = |e: io::Error| format!("reading the body: {e}");
    let closed = |what: &str| format!("closed inside {what}: {}", head.text);
    let bytes = if head.chunked {
        let mut body = Body::new(true);
        loop {
            body.take(&raw)?;
            raw.clear();
            if body.ended {
                break body.bytes().to_vec();
            }
            if !fill(&mut raw).map_err(failed)? {
                return Err(closed("a chunk"));
            }
        }
    } else if let Some(len) = head.length {
        while raw.len() < len {
            if !fill(&mut raw).map_err(failed)? {
                return Err(closed("the body"));
            }
        }
        raw.truncate(len);
        raw
    } else {
        loop {
            match fill(&mut raw) {
                Ok(true) => {}
                Ok(false) => break raw,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break raw,
                Err(e) => return Err(failed(e)),
            }
        }
    };
    Ok(Response {
        status: head.status,
        head: head.text,
        body: String::from_utf8_lossy(&bytes).to_string(),
    })
}

/// Reads `n` responses, each with a Content-Length, one after another off one connection.
/// Pipelined answers may come in one read, the bytes after one being the next one's, which
/// [`try_read_response`] would drop.
pub fn read_responses(r: &mut impl Read, n: usize) -> Result<Vec<Response>, String> {
    let mut raw = Vec::new();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < n {
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            let head = read_head(&mut &raw[..end + 4], || false)?;
            let length = head
                .length
                .ok_or_else(|| format!("no Content-Length: {}", head.text))?;
            let total = end + 4 + length;
            if raw.len() >= total {
                let body = String::from_utf8_lossy(&raw[end + 4..total]).to_string();
                out.push(Response {
                    status: head.status,
                    head: head.text,
                    body,
                });
                raw.drain(..total);
                continue;
            }
        }
        match r.read(&mut buf) {
            Ok(0) => return Err(format!("closed after {} of {n} responses", out.len())),
            Ok(k) => raw.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("after {} of {n} responses: {e}", out.len())),
        }
    }
    Ok(out)
}

/// [`try_read_response`], failing the test on an error.
pub fn read_response(r: &mut impl Read) -> Response {
    try_read_response(r).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends `request` as it is on a fresh connection and reads the response; returns (status,
/// head, body).
pub fn http_request(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let r = read_response(&mut s);
    (r.status, r.head, r.body)
}

/// Bytes already read (a whole response, or only its start) as (status, head, the bytes
/// after the head as they are).
pub fn split_response(raw: &[u8]) -> (u16, String, String) {
    let head = read_head(&mut &raw[..], || false).unwrap_or_else(|e| panic!("{e}"));
    let rest = String::from_utf8_lossy(&head.rest).to_string();
    (head.status, head.text, rest)
}

/// One request on a fresh connection, which the request asks to close; `extra` is header
/// lines (each ending in CRLF), and a POST gets a Content-Length for `body`.
pub fn request(addr: SocketAddr, method: &str, path: &str, extra: &str, body: &str) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let length = if method == "POST" {
        format!("Content-Length: {}\r\n", body.len())
    } else {
        String::new()
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{extra}{length}\r\n{body}"
    );
    s.write_all(req.as_bytes()).unwrap();
    read_response(&mut s)
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, "", "")
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One block of an event stream (the lines up to a blank line).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Block {
    pub id: Option<String>,
    pub data: Option<String>,
    /// A `retry:` line was in it (0 when its value is not a number).
    pub retry: Option<u64>,
    pub comments: usize,
}

/// An event-stream body as it arrives, de-chunked when it is chunked (what a front-end does
/// to a response without a length), split into blocks.
pub struct Body {
    chunked: bool,
    /// Raw bytes not yet de-chunked.
    raw: Vec<u8>,
    body: Vec<u8>,
    /// Where the unparsed part of `body` starts.
    at: usize,
    /// The last chunk (size 0) came: the response is over.
    pub ended: bool,
}

impl Body {
    pub fn new(chunked: bool) -> Body {
        Body {
            chunked,
            raw: Vec::new(),
            body: Vec::new(),
            at: 0,
            ended: false,
        }
    }

    /// Bytes off the wire.
    pub fn take(&mut self, bytes: &[u8]) -> Result<(), String> {
        if self.at > 0 && self.at * 2 > self.body.len() {
            self.body.drain(..self.at);
            self.at = 0;
        }
        if !self.chunked {
            self.body.extend_from_slice(bytes);
            return Ok(());
        }
        self.raw.extend_from_slice(bytes);
        let mut pos = 0;
        while !self.ended {
            let Some(eol) = find(&self.raw[pos..], b"\r\n") else {
                break;
            };
            let text = String::from_utf8_lossy(&self.raw[pos..pos + eol]).to_string();
            let size = usize::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size {text:?}"))?;
            if size == 0 {
                self.ended = true;
                break;
            }
            let start = pos + eol + 2;
            if self.raw.len() < start + size + 2 {
                break;
            }
            self.body.extend_from_slice(&self.raw[start..start + size]);
            pos = start + size + 2;
        }
        self.raw.drain(..pos);
        Ok(())
    }

    /// The de-chunked bytes not yet taken as blocks.
    pub fn bytes(&self) -> &[u8] {
        &self.body[self.at..]
    }

    /// The next whole block, if one has arrived.
    pub fn next_block(&mut self) -> Option<Block> {
        let rest = &self.body[self.at..];
        let end = find(rest, b"\n\n")?;
        let mut block = Block::default();
        for line in rest[..end].split(|&b| b == b'\n') {
            if line.first() == Some(&b':') {
                block.comments += 1;
                continue;
            }
            let line = String::from_utf8_lossy(line);
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => block.id = Some(value.to_string()),
                "data" => match &mut block.data {
                    // WHATWG: each further data line adds a newline and itself.
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => block.data = Some(value.to_string()),
                },
                "retry" => block.retry = value.parse().ok().or(Some(0)),
                _ => {}
            }
        }
        self.at += end + 2;
        Some(block)
    }
}

/// One event of a stream: a block with data.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn id(&self) -> u64 {
        self.id.as_deref().unwrap().parse().unwrap()
    }
}

/// Reads an event stream from any socket: the head (at once), then events as they come.
pub struct SseReader<S: Read> {
    socket: S,
    pub head: String,
    pub status: u16,
    body: Body,
    /// Comment lines (heartbeats) in the blocks read so far.
    pub comments: usize,
    /// The last `retry:` field.
    pub retry: Option<u64>,
    /// The stream ended (EOF, or the last chunk).
    pub eof: bool,
}

impl<S: Read> SseReader<S> {
    /// Reads until the head is complete.
    pub fn new(mut socket: S) -> SseReader<S> {
        let head = read_head(&mut socket, || false).unwrap_or_else(|e| panic!("{e}"));
        let mut body = Body::new(head.chunked);
        body.take(&head.rest).unwrap_or_else(|e| panic!("{e}"));
        SseReader {
            socket,
            head: head.text,
            status: head.status,
            body,
            comments: 0,
            retry: None,
            eof: false,
        }
    }

    /// The next event; `None` at EOF or when the socket's read timeout passes.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        let mut buf = [0u8; 4096];
        loop {
            while let Some(block) = self.body.next_block() {
                self.comments += block.comments;
                if block.retry.is_some() {
                    self.retry = block.retry;
                }
                if let Some(data) = block.data {
                    return Some(SseEvent { id: block.id, data });
                }
            }
            if self.eof || self.body.ended {
                self.eof = true;
                return None;
            }
            match self.socket.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    return None;
                }
                Ok(n) => self.body.take(&buf[..n]).unwrap_or_else(|e| panic!("{e}")),
                Err(_) => return None,
            }
        }
    }

    /// Reads until EOF (or the read timeout), counting what arrives.
    pub fn read_to_end(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(e) = self.next_event() {
            events.push(e);
        }
        events
    }

    pub fn socket(&mut self) -> &mut S {
        &mut self.socket
    }
}

/// Opens an event stream over HTTP with extra header lines.
pub fn http_stream(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    SseReader::new(s)
}

/// Opens an event stream over SCGI.
pub fn scgi_stream(addr: SocketAddr, request: &[u8]) -> SseReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    SseReader::new(s)
}
