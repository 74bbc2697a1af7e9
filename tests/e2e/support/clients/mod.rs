//! Clients for the tests of listeners that outlive a process and of live upgrades: one way to
//! reach tickerd ([`Via`]: its HTTP listener, its SCGI listener over TCP or a Unix socket, or
//! a front-end), and on top of it many streams read at once ([`fleet`]), connection attempts
//! every few ms ([`probe`]) and browsers that reconnect with their Last-Event-ID
//! ([`eventsource`]). They read what comes back with [`super::http`].

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
