//! HTTP/2 through lighttpd: a test certificate made at test time, lighttpd started from the
//! shipped conf with its optional TLS listener, the external clients (curl, nghttp, openssl)
//! and counting connections the server holds.

pub mod frames;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{wait_until, which, TempDir, Tickerd};

/// The path of an external program, or a failure saying which package brings it.
pub fn tool(name: &str, package: &str) -> PathBuf {
    which(name).unwrap_or_else(|| {
        panic!("{name} is not installed: `apt-get install -y --no-install-recommends {package}`")
    })
}

/// A directory of its own (pid + counter) holding a self-signed certificate for 127.0.0.1
/// and its key, made now with the openssl CLI; removed when dropped. No key is ever kept.
pub struct TestCert {
    pub dir: TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCert {
    pub fn new() -> TestCert {
        let dir = TempDir::new("h2");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let out = Command::new(tool("openssl", "openssl"))
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestCert { dir, cert, key }
    }
}

/// TCP connections in ESTABLISHED state whose local address is `addr`, from /proc/net/tcp:
/// on a server's address, the clients it holds at this moment. (The address, not the port
/// alone: another process's client bound to 127.0.0.x may have the same local port.)
pub fn established_on(addr: SocketAddr) -> usize {
    let SocketAddr::V4(addr) = addr else {
        panic!("{addr}: /proc/net/tcp lists IPv4 only")
    };
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // "0100007F:1F90": the address as the kernel holds it (network order), the port.
            let Some((ip, port)) = fields[1].split_once(':') else {
                return false;
            };
            let ip =
                u32::from_str_radix(ip, 16).map(|ip| std::net::Ipv4Addr::from(ip.to_ne_bytes()));
            ip == Ok(*addr.ip())
                && u16::from_str_radix(port, 16) == Ok(addr.port())
                && fields[3] == "01"
        })
        .count()
}

/// The `id:` values of an event stream's text, in order.
pub fn sse_ids(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.trim().parse().expect("numeric id"))
        .collect()
}

/// Asserts each id is the one before plus one.
pub fn assert_consecutive(ids: &[u64], what: &str) {
    for pair in ids.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "{what}: {ids:?}");
    }
}

/// A running curl whose stdout lines are timed as they arrive.
pub struct Curl {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Curl {
    /// `curl -sS ARGS`; output goes to stdout unless ARGS say otherwise.
    pub fn spawn(args: &[&str]) -> Curl {
        let mut child = Command::new(tool("curl", "curl"))
            .arg("-sS")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start curl");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        Curl {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// Waits for curl to exit (its own --max-time bounds it; killed after `within`), then
    /// returns its exit code, stdout lines with their arrival times, and stderr.
    pub fn finish(mut self, within: Duration) -> (Option<i32>, Vec<(Instant, String)>, String) {
        let end = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.reader.take().unwrap().join().unwrap();
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        let lines = std::mem::take(&mut *self.lines.lock().unwrap());
        (status.and_then(|s| s.code()), lines, stderr)
    }
}

impl Drop for Curl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` event streams over one TLS connection with `curl --http2 --parallel`, for `seconds`:
/// tickerd holds `n` streams while the front-end's TLS port has one connection, curl makes
/// one connect in all, every stream gets at least `min_events` consecutive ids, and the
/// closed connection frees every backend slot.
pub fn streams_share_one_tls_connection(
    t: &Tickerd,
    cert: &TestCert,
    tls: SocketAddr,
    n: usize,
    seconds: u64,
    min_events: usize,
) {
    let out = cert.dir.join("s#1");
    let url = format!("https://127.0.0.1:{}/ticker?n=[1-{n}]", tls.port());
    let ca = cert.cert.display().to_string();
    let (parallel, max_time) = (n.to_string(), seconds.to_string());
    // --parallel waits for the first connection and multiplexes onto it (curl's default).
    let curl = Curl::spawn(&[
        "--http2",
        "--cacert",
        &ca,
        "--parallel",
        "--parallel-max",
        &parallel,
        "--max-time",
        &max_time,
        "-o",
        &out.display().to_string(),
        "-w",
        "connects=%{num_connects} version=%{http_version}\n",
        &url,
    ]);
    assert!(
        wait_until(Duration::from_secs(seconds + 5), || t.clients() == n as f64),
        "{:?}",
        t.metrics()
    );
    // n SCGI streams on tickerd's side, one client connection on the TLS port.
    assert_eq!(established_on(tls), 1);
    let (code, lines, stderr) = curl.finish(Duration::from_secs(seconds + 15));
    assert_eq!(code, Some(28), "{stderr}"); // 28: --max-time ended the endless streams
    let stats: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(stats.len(), n, "{stats:?}");
    assert!(stats.iter().all(|l| l.ends_with("version=2")), "{stats:?}");
    let connects: u32 = stats
        .iter()
        .map(|l| {
            l["connects=".len()..]
                .split(' ')
                .next()
                .unwrap()
                .parse::<u32>()
                .unwrap()
        })
        .sum();
    assert_eq!(connects, 1, "{stats:?}");
    // curl gone, connection closed: the front-end frees every backend slot.
    assert!(
        wait_until(Duration::from_secs(10), || t.clients() == 0.0),
        "{:?}",
        t.metrics()
    );
    for i in 1..=n {
        let body = std::fs::read_to_string(cert.dir.join(format!("s{i}"))).unwrap();
        let ids = sse_ids(&body);
        assert!(ids.len() >= min_events, "stream {i}: {ids:?}");
        assert_consecutive(&ids, &format!("stream {i}"));
    }
}
