//! lighttpd from the shipped `conf/lighttpd.conf` (or another file of `conf/`), which takes
//! its port and tickerd's address from the environment. It runs in the foreground as one
//! process and writes no pid file, so it is not a [`super::Front`]: it counts as up once it
//! accepts and has not exited (a lighttpd that lost its port to another test exits within
//! milliseconds), and it can be started again on the same port (a browser's page keeps its
//! origin).

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::super::h2::{tool, TestCert};
use super::super::{
    collect_stderr, dies_with_its_starter, free_port, repo_root, wait_until, which, TempDir,
};
use super::Front;

/// A running lighttpd started from the shipped `conf/lighttpd.conf`, killed when dropped.
pub struct Lighttpd {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    env: Vec<(String, String)>,
}

impl Lighttpd {
    /// Starts lighttpd in front of tickerd's SCGI listener at `scgi`.
    pub fn start(scgi: SocketAddr) -> Lighttpd {
        Self::start_with(&[
            ("TICKERD_SCGI_HOST", scgi.ip().to_string()),
            ("TICKERD_SCGI_PORT", scgi.port().to_string()),
        ])
    }

    pub fn start_with(env: &[(&str, String)]) -> Lighttpd {
        Self::start_from("lighttpd.conf", env)
    }

    /// Starts lighttpd from another file of `conf/` (`lighttpd-spawn.conf`); `restart` would
    /// start it from `conf/lighttpd.conf`.
    pub fn start_from(conf: &'static str, env: &[(&str, String)]) -> Lighttpd {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        for attempt in 0..5 {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            match Self::spawn_from(conf, addr, &env) {
                Ok((child, log)) => {
                    return Lighttpd {
                        child,
                        addr,
                        log,
                        env,
                    }
                }
                Err(log) => eprintln!("lighttpd attempt {attempt} failed: {log}"),
            }
        }
        panic!("lighttpd did not start from conf/{conf}");
    }

    /// Starts lighttpd from the shipped conf in front of tickerd's SCGI listener at `scgi`,
    /// with its TLS listener on (TICKERD_TLS_PORT/PEM/KEY). Returns it and the TLS address;
    /// `addr` is the cleartext port (HTTP/1.1 and h2c). Both ports are free ones, taken
    /// again when one was taken meanwhile.
    pub fn start_tls(scgi: SocketAddr, cert: &TestCert) -> (Lighttpd, SocketAddr) {
        tool("lighttpd", "lighttpd lighttpd-mod-openssl");
        assert!(
            std::path::Path::new("/usr/lib/lighttpd/mod_openssl.so").exists(),
            "lighttpd's TLS module is missing: `apt-get install -y lighttpd-mod-openssl`"
        );
        for attempt in 0..5 {
            let (port, tls_port) = (free_port(), free_port());
            if port == tls_port {
                continue;
            }
            let env: Vec<(String, String)> = [
                ("TICKERD_SCGI_HOST", scgi.ip().to_string()),
                ("TICKERD_SCGI_PORT", scgi.port().to_string()),
                ("TICKERD_TLS_PORT", tls_port.to_string()),
                ("TICKERD_TLS_PEM", cert.cert.display().to_string()),
                ("TICKERD_TLS_KEY", cert.key.display().to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let tls: SocketAddr = ([127, 0, 0, 1], tls_port).into();
            match Lighttpd::spawn(addr, &env) {
                Ok((child, log)) => {
                    let front = Lighttpd {
                        child,
                        addr,
                        log,
                        env,
                    };
                    // Both ports are bound before lighttpd serves either.
                    if TcpStream::connect(tls).is_ok() {
                        return (front, tls);
                    }
                    eprintln!("lighttpd attempt {attempt}: no TLS port: {}", front.log());
                }
                Err(log) => eprintln!("lighttpd attempt {attempt} failed: {log}"),
            }
        }
        panic!("lighttpd with TLS did not start from conf/lighttpd.conf");
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Starts lighttpd from `conf/lighttpd.conf` on `addr`; its log if it did not come up.
    fn spawn(
        addr: SocketAddr,
        env: &[(String, String)],
    ) -> Result<(Child, Arc<Mutex<String>>), String> {
        Self::spawn_from("lighttpd.conf", addr, env)
    }

    fn spawn_from(
        conf: &str,
        addr: SocketAddr,
        env: &[(String, String)],
    ) -> Result<(Child, Arc<Mutex<String>>), String> {
        let binary = which("lighttpd")
            .expect("lighttpd is not installed: `apt-get install -y lighttpd` (.ci/run does it)");
        let mut cmd = Command::new(&binary);
        cmd.arg("-D")
            .arg("-f")
            .arg(repo_root().join("conf").join(conf))
            .current_dir(repo_root())
            .env("TICKERD_FRONT_PORT", addr.port().to_string())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = dies_with_its_starter(&mut cmd)
            .spawn()
            .expect("start lighttpd");
        let log = collect_stderr(&mut child);
        let up = wait_until(Duration::from_secs(5), || {
            child.try_wait().unwrap().is_none() && TcpStream::connect(addr).is_ok()
        });
        // A listener of another test on the same port would also accept the connect; lighttpd
        // that lost the port exits within milliseconds of starting.
        if up
            && !wait_until(Duration::from_millis(200), || {
                child.try_wait().unwrap().is_some()
            })
        {
            return Ok((child, log));
        }
        let _ = child.kill();
        let _ = child.wait();
        let log = log.lock().unwrap().clone();
        Err(log)
    }

    /// Kills lighttpd and starts it again on the same port (a browser's page keeps its
    /// origin), retrying while the port is not free yet.
    pub fn restart(&mut self) {
        self.kill();
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            match Self::spawn(self.addr, &self.env) {
                Ok((child, log)) => {
                    (self.child, self.log) = (child, log);
                    return;
                }
                Err(log) if Instant::now() > end => {
                    panic!("lighttpd did not start again on {}: {log}", self.addr)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Lighttpd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Debian's lighttpd.conf as it is, but on a free loopback port with its files in a
/// scratch directory, and the packaged snippet in place of conf-enabled/*.conf.
pub fn with_the_packaged_snippet() -> Front {
    let snippet = Path::new("/etc/lighttpd/conf-available/20-tickerd.conf");
    assert!(
        snippet.exists(),
        "{} (needs root and the Debian package installed: .ci/run)",
        snippet.display()
    );
    let debian = std::fs::read_to_string("/etc/lighttpd/lighttpd.conf")
        .expect("Debian's /etc/lighttpd/lighttpd.conf (apt-get install lighttpd)");
    let dir = TempDir::new("package-lighttpd");
    let (root, pid_file) = (dir.to_path_buf(), dir.join("lighttpd.pid"));
    let binary = which("lighttpd").expect("lighttpd (.ci/run installs it)");
    Front::start("lighttpd", dir, &pid_file, |port| {
        let mut conf = format!(
            "server.bind = \"127.0.0.1\"\nserver.port = {port}\n\
             server.document-root = \"{d}\"\nserver.upload-dirs = ( \"{d}\" )\n\
             server.pid-file = \"{d}/lighttpd.pid\"\n",
            d = root.display()
        );
        let mut included = false;
        for line in debian.lines() {
            let l = line.trim_start();
            if [
                "server.document-root",
                "server.upload-dirs",
                "server.errorlog",
                "server.pid-file",
                "server.port",
                "include_shell \"/usr/share/lighttpd/use-ipv6.pl",
            ]
            .iter()
            .any(|p| l.starts_with(p))
            {
                continue;
            }
            if l.starts_with("include \"/etc/lighttpd/conf-enabled/*.conf\"") {
                conf.push_str(&format!("include \"{}\"\n", snippet.display()));
                included = true;
                continue;
            }
            conf.push_str(line);
            conf.push('\n');
        }
        assert!(
            included,
            "Debian's lighttpd.conf no longer includes conf-enabled"
        );
        let path = root.join("lighttpd.conf");
        std::fs::write(&path, conf).unwrap();
        let mut cmd = Command::new(&binary);
        cmd.arg("-D").arg("-f").arg(&path);
        cmd
    })
}
