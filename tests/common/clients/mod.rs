//! Clients for the tests of listeners that outlive a process and of live upgrades: one way to
//! reach tickerd ([`Via`]: its HTTP listener, its SCGI listener over TCP or a Unix socket, or
//! a front-end), an event-stream body reader that also decodes chunks ([`Body`]), and on top
//! of them many streams read at once ([`fleet`]), connection attempts every few ms
//! ([`probe`]) and browsers that reconnect with their Last-Event-ID ([`eventsource`]).

pub mod eventsource;
pub mod fleet;
pub mod probe;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{scgi_bytes, Tickerd};

/// How a client reaches tickerd.
#[derive(Clone, Debug)]
pub enum Via {
    /// tickerd's own HTTP listener.
    Http(SocketAddr),
    /// tickerd's SCGI listener over TCP, spoken to as a front-end would.
    Scgi(SocketAddr),
    /// tickerd's SCGI listener on a Unix socket.
    ScgiUnix(PathBuf),
    /// A front-end's HTTP listener (its responses may be chunked).
    Front(SocketAddr),
}

impl Via {
    pub fn connect(&self) -> io::Result<Sock> {
        match self {
            Via::Http(a) | Via::Scgi(a) | Via::Front(a) => {
                let s = TcpStream::connect(a)?;
                s.set_nodelay(true)?;
                Ok(Sock::Tcp(s))
            }
            Via::ScgiUnix(path) => UnixStream::connect(path).map(Sock::Unix),
        }
    }

    /// A GET of `path` (with its query) carrying `headers`, as this way speaks it: an HTTP
    /// request that asks for the connection to close after the answer, or an SCGI netstring
    /// with the headers as `HTTP_*` variables.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
        match self {
            Via::Http(_) | Via::Front(_) => {
                let mut req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
                for (name, value) in headers {
                    req.push_str(&format!("{name}: {value}\r\n"));
                }
                req.push_str("\r\n");
                req.into_bytes()
            }
            Via::Scgi(_) | Via::ScgiUnix(_) => {
                let (path, query) = path.split_once('?').unwrap_or((path, ""));
                let names: Vec<String> = headers
                    .iter()
                    .map(|(n, _)| format!("HTTP_{}", n.to_ascii_uppercase().replace('-', "_")))
                    .collect();
                let mut vars = vec![
                    ("REQUEST_METHOD", "GET"),
                    ("SCRIPT_NAME", ""),
                    ("PATH_INFO", path),
                    ("QUERY_STRING", query),
                    ("REQUEST_URI", path),
                    ("SERVER_PROTOCOL", "HTTP/1.1"),
                ];
                for (name, (_, value)) in names.iter().zip(headers) {
                    vars.push((name.as_str(), value));
                }
                scgi_bytes(&vars, "")
            }
        }
    }

    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Via::Http(_) => "http",
            Via::Scgi(_) => "scgi",
            Via::ScgiUnix(_) => "scgi-unix",
            Via::Front(_) => "front",
        }
    }

    /// The tickerd listener a connection this way is accepted on (a front-end opens one SCGI
    /// connection per request).
    pub fn listener(&self) -> &'static str {
        match self {
            Via::Http(_) => "http",
            _ => "scgi",
        }
    }
}

/// A client's socket, TCP or Unix.
pub enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Sock {
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.set_read_timeout(d),
            Sock::Unix(s) => s.set_read_timeout(d),
        }
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.set_nonblocking(on),
            Sock::Unix(s) => s.set_nonblocking(on),
        }
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsRawFd for Sock {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Sock::Tcp(s) => s.as_raw_fd(),
            Sock::Unix(s) => s.as_raw_fd(),
        }
    }
}

/// A response's head: the status (a status line or a CGI `Status:`), whether the body is
/// chunked, and the bytes read past the head.
pub struct Head {
    pub status: u16,
    pub text: String,
    pub chunked: bool,
    pub rest: Vec<u8>,
}

/// Reads a response's head from a blocking socket. A read timeout that passes is an error
/// unless `keep_waiting` says to go on (checked at each timeout).
pub fn read_head(sock: &mut Sock, mut keep_waiting: impl FnMut() -> bool) -> Result<Head, String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&raw[..end]).to_string();
            let first = text.lines().next().unwrap_or_default();
            let status = first
                .strip_prefix("Status: ")
                .or_else(|| first.split_once(' ').map(|(_, r)| r))
                .and_then(|r| r.get(..3))
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("no status in {text:?}"))?;
            let chunked = text
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked");
            return Ok(Head {
                status,
                text,
                chunked,
                rest: raw[end + 4..].to_vec(),
            });
        }
        match sock.read(&mut buf) {
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

/// A whole response from a blocking socket (the server closes after it): status and body,
/// de-chunked.
pub fn read_response(sock: &mut Sock) -> Result<(u16, Vec<u8>), String> {
    let head = read_head(sock, || false)?;
    let mut raw = head.rest;
    sock.read_to_end(&mut raw)
        .map_err(|e| format!("reading the body: {e}"))?;
    let mut body = Body::new(head.chunked);
    body.take(&raw)?;
    Ok((head.status, body.bytes().to_vec()))
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
    /// A `retry:` line was in it.
    pub retry: Option<u64>,
    pub comments: usize,
}

/// An event-stream body as it arrives, with chunked decoding (what a front-end does to a
/// response without a length); split into blocks.
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
                "data" => {
                    let data = block.data.get_or_insert_with(String::new);
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value);
                }
                "retry" => block.retry = value.parse().ok().or(Some(0)),
                _ => {}
            }
        }
        self.at += end + 2;
        Some(block)
    }
}

/// The symbol and price of an event's data: `{"symbol":"AAPL","price":"189.20"}`, or a bare
/// price (the default symbol's stream).
pub fn symbol_and_price(data: &str) -> Option<(Option<&str>, &str)> {
    let price = |p: &str| {
        let (units, cents) = p.split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (digits(units) && cents.len() == 2 && digits(cents)).then_some(())
    };
    match data.strip_prefix("{\"symbol\":\"") {
        Some(rest) => {
            let (symbol, rest) = rest.split_once("\",\"price\":\"")?;
            let p = rest.strip_suffix("\"}")?;
            price(p)?;
            Some((Some(symbol), p))
        }
        None => {
            price(data)?;
            Some((None, data))
        }
    }
}

/// How many lines of tickerd's log contain `needle`.
pub fn log_count(t: &Tickerd, needle: &str) -> usize {
    t.log().lines().filter(|l| l.contains(needle)).count()
}

/// The `n`th (from 1) line of tickerd's log containing `needle`, waiting up to `within` for
/// it; panics with the log if it does not come.
pub fn wait_log_line(t: &Tickerd, needle: &str, n: usize, within: Duration) -> String {
    let end = Instant::now() + within;
    loop {
        if let Some(line) = t.log().lines().filter(|l| l.contains(needle)).nth(n - 1) {
            return line.to_string();
        }
        assert!(
            Instant::now() < end,
            "no line {n} with {needle:?} in tickerd's log after {within:?}:\n{}",
            t.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `tickerd_connections_accepted_total` of both listeners, from one scrape (which counts
/// itself, on the HTTP listener).
pub fn accepted(t: &Tickerd) -> (u64, u64) {
    let m = t.metrics();
    let get =
        |l: &str| m[&format!("tickerd_connections_accepted_total{{listener=\"{l}\"}}")] as u64;
    (get("http"), get("scgi"))
}

/// Puts a copy of the executable `from` at `to`, by rename (as a package upgrade does: a
/// process running the old file keeps it). The copy is written by `cp`, never opened for
/// writing in this process: a child that another test thread forks meanwhile would hold
/// such a descriptor until its exec, and executing the file then fails with ETXTBSY.
pub fn install(from: &std::path::Path, to: &std::path::Path) {
    let staged = to.with_extension("staged");
    let status = std::process::Command::new("cp")
        .arg(from)
        .arg(&staged)
        .status()
        .expect("run cp");
    assert!(status.success(), "cp {from:?} {staged:?}: {status}");
    let status = std::process::Command::new("chmod")
        .arg("755")
        .arg(&staged)
        .status()
        .expect("run chmod");
    assert!(status.success());
    std::fs::rename(&staged, to).unwrap();
}

/// [`install`] of `contents` (a script, a binary with bytes appended).
pub fn install_bytes(contents: &[u8], to: &std::path::Path) {
    let written = to.with_extension("written");
    std::fs::write(&written, contents).unwrap();
    install(&written, to);
    std::fs::remove_file(&written).unwrap();
}
