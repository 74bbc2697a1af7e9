//! The command line end to end: the real binary configured by `TICKERD_*` variables alone
//! (no argument) serving over real sockets; `TICKERD_HTTP` opening the HTTP listener of a
//! tickerd spawned with its SCGI listener on fd 0 (lighttpd's bin-path), as `--http` does;
//! `--check` reading the same variables; an argument winning over its variable; a bad
//! variable named in the one-line error. Started here rather than with `Tickerd::start`,
//! which passes listener flags: these tests give tickerd no argument at all.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::net::UnixListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{http_request, TempDir};

const TOKEN: &str = "cli-test-token";

/// The binary, with none of the `TICKERD_` variables of whoever runs the tests.
fn tickerd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickerd"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TICKERD_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("RUST_LOG", "info");
    cmd
}

/// Writes `text` to `name` in `dir`; its path.
fn file(dir: &TempDir, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A running tickerd, stopped (SIGTERM, then killed) when dropped.
struct Running {
    child: Child,
    /// Its log up to the "listening:" line.
    log: String,
}

impl Running {
    /// Starts `cmd` and waits (5 s at most) for the line saying what it listens on.
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tickerd");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut log = String::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(line) => {
                    log.push_str(&line);
                    log.push('\n');
                    if line.contains(" listening: ") {
                        return Running { child, log };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("tickerd did not say it listens:\n{log}");
                }
            }
        }
    }

    /// The HTTP listener's address, from the "listening:" line.
    fn http(&self) -> Option<SocketAddr> {
        let line = self.log.lines().find(|l| l.contains(" listening: "))?;
        let after = line.split(" listening: ").nth(1)?;
        after
            .split([',', ';'])
            .map(str::trim)
            .find_map(|l| l.strip_prefix("http "))
            .map(|a| a.parse().unwrap())
    }

    /// SIGTERM, then the exit status (5 s at most).
    fn stop(&mut self) -> Option<i32> {
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        for _ in 0..250 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request: the status and the body.
fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let (status, _, body) = http_request(addr, request);
    (status, body)
}

fn symbols(addr: SocketAddr) -> String {
    let (status, body) = http(addr, "GET /symbols HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 200, "{body}");
    body
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn configured_by_variables_alone() {
    let dir = TempDir::new("cli");
    let token = file(&dir, "token", &format!("{TOKEN}\n"));
    let mut cmd = tickerd();
    cmd.stdin(Stdio::null())
        .env("TICKERD_SCGI", "off")
        .env("TICKERD_HTTP", "127.0.0.1:0")
        .env("TICKERD_SYMBOLS", "CLI=12.50,ENV")
        .env("TICKERD_INITIAL_PRICE", "3")
        .env("TICKERD_TICK_MS", "0")
        .env("TICKERD_PUBLISH_TOKEN_FILE", &token);
    let mut t = Running::start(cmd);
    assert!(
        t.log
            .contains("universe: 2 symbols from TICKERD_SYMBOLS (2 symbols)"),
        "{}",
        t.log
    );
    assert!(t.log.contains("publishing on"), "{}", t.log);
    assert!(!t.log.contains("scgi "), "TICKERD_SCGI=off: {}", t.log);
    let addr = t.http().expect("an HTTP listener");
    // The universe and its prices (no tick moves them), then a publish with the file's token.
    let listed = symbols(addr);
    assert!(
        listed.contains(r#""symbol":"CLI","decimals":2,"#)
            && listed.contains(r#""price":"12.50""#)
            && listed.contains(r#""symbol":"ENV","decimals":2,"#)
            && listed.contains(r#""price":"3.00""#),
        "{listed}"
    );
    let body = "ENV=4.25";
    let (status, answer) = http(
        addr,
        &format!(
            "POST /publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(symbols(addr).contains(r#""price":"4.25""#));
    assert_eq!(t.stop(), Some(0));
}

/// lighttpd's bin-path hands tickerd its SCGI listener on fd 0; tickerd then opens its HTTP
/// listener only when asked: `--http`, or `TICKERD_HTTP`.
#[test]
fn tickerd_http_opens_the_http_listener_of_a_spawned_tickerd() {
    let dir = TempDir::new("cli");
    for (variable, wanted) in [(None, false), (Some("127.0.0.1:0"), true)] {
        let socket = dir.join("scgi.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).unwrap();
        let mut cmd = tickerd();
        cmd.stdin(Stdio::from(std::os::fd::OwnedFd::from(listener)))
            .env("TICKERD_TICK_MS", "0");
        if let Some(addr) = variable {
            cmd.env("TICKERD_HTTP", addr);
        }
        let mut t = Running::start(cmd);
        assert!(
            t.log
                .contains("inherited from the spawning front-end (fd 0)"),
            "{}",
            t.log
        );
        assert_eq!(
            t.http().is_some(),
            wanted,
            "TICKERD_HTTP={variable:?}: {}",
            t.log
        );
        if let Some(addr) = t.http() {
            symbols(addr);
        }
        assert_eq!(t.stop(), Some(0));
    }
}

#[test]
fn check_reads_the_same_variables_and_an_argument_wins() {
    let version = env!("CARGO_PKG_VERSION");
    let out = run(tickerd().arg("--check").env("TICKERD_SYMBOLS", "A,B,C"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("tickerd {version}: the configuration is valid (3 symbols)\n")
    );
    let out = run(tickerd()
        .args(["--check", "--symbols", "X"])
        .env("TICKERD_SYMBOLS", "A,B,C"));
    assert_eq!(
        stdout(&out),
        format!("tickerd {version}: the configuration is valid (1 symbols)\n")
    );
    // A bad variable that an argument overrides is never read.
    let out = run(tickerd()
        .args(["--check", "--tick-ms", "5"])
        .env("TICKERD_TICK_MS", "soon"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_bad_variable_exits_2_naming_it_in_one_line() {
    let dir = TempDir::new("cli");
    let empty = file(&dir, "empty", "\n");
    for (vars, says) in [
        (
            &[("TICKERD_TICK_MS", "soon")][..],
            "tickerd: TICKERD_TICK_MS: invalid value 'soon' for '--tick-ms <MS>'",
        ),
        (
            &[("TICKERD_MAX_SCGI_HEADER", "63")][..],
            "tickerd: TICKERD_MAX_SCGI_HEADER: invalid value '63'",
        ),
        (
            &[("TICKERD_SYMBOLS", "A,MS FT")][..],
            "tickerd: TICKERD_SYMBOLS: entry 2: \"MS FT\"",
        ),
        (
            &[("TICKERD_SCGI", "off"), ("TICKERD_HTTP", "off")][..],
            "tickerd: TICKERD_SCGI and TICKERD_HTTP are both off",
        ),
        (
            &[("TICKERD_PUBLISH_TOKEN_FILE", empty.as_str())][..],
            "tickerd: TICKERD_PUBLISH_TOKEN_FILE: ",
        ),
        (
            &[("TICKERD_PUBLISH_TOKEN", "")][..],
            "tickerd: TICKERD_PUBLISH_TOKEN is empty",
        ),
    ] {
        for check in [true, false] {
            let mut cmd = tickerd();
            if check {
                cmd.arg("--check");
            }
            cmd.envs(vars.iter().copied());
            let out = run(&mut cmd);
            assert_eq!(out.status.code(), Some(2), "{vars:?}");
            let err = stderr(&out);
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.starts_with(says), "{vars:?}: {err}");
        }
    }
}

#[test]
fn the_help_shows_each_variable() {
    for flag in ["-h", "--help"] {
        let out = run(tickerd().arg(flag));
        assert_eq!(out.status.code(), Some(0));
        let help = stdout(&out)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for (flag, variable) in [
            ("--scgi <ADDR>", "TICKERD_SCGI"),
            ("--http <ADDR>", "TICKERD_HTTP"),
            ("--symbols-file <PATH>", "TICKERD_SYMBOLS_FILE"),
            ("--tick-ms <MS>", "TICKERD_TICK_MS"),
            ("--publish-token-file <PATH>", "TICKERD_PUBLISH_TOKEN_FILE"),
            ("--redis-maxlen <N>", "TICKERD_REDIS_MAXLEN"),
        ] {
            assert!(help.contains(flag), "{flag}: {help}");
            assert!(
                help.contains(&format!("[env: {variable}]")),
                "{variable}: {help}"
            );
        }
    }
}
