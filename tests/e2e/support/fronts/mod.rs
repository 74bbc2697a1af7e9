//! The front-ends, each started from its shipped file in `conf/` (or, for the package tests,
//! from the packaged one): [`lighttpd`], [`nginx`], [`apache`]; and [`checks`], what every
//! one of them must do in front of tickerd.
//!
//! [`Front`] is a front-end web server run by a test (nginx, Apache httpd, or the package
//! tests' lighttpd): on a free port, in a scratch directory of its own, stopped with its whole
//! process group when dropped (its workers are its children). The shipped lighttpd conf
//! writes no pid file, so that one is a [`lighttpd::Lighttpd`].

pub mod apache;
pub mod checks;
pub mod lighttpd;
pub mod nginx;

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{collect_stderr, dies_with_its_starter, free_port, wait_until, TempDir};

/// A running front-end.
pub struct Front {
    pub name: &'static str,
    pub addr: SocketAddr,
    child: Child,
    log: Arc<Mutex<String>>,
    /// Its scratch directory (pid file, temp files), removed after the server stops.
    dir: Option<TempDir>,
    /// Once the master is reaped its pid (our process group's id) may be reused, so no
    /// signal goes to the group after that.
    reaped: bool,
}

impl Front {
    /// Starts `command(port)` until one comes up: listening on `port` and `pid_file` written
    /// (both servers write it only once their listeners are bound, so a port another process
    /// took meanwhile is not mistaken for ours). Retries on a fresh port, as ports are only
    /// free until somebody binds them.
    pub fn start(
        name: &'static str,
        dir: TempDir,
        pid_file: &Path,
        mut command: impl FnMut(u16) -> Command,
    ) -> Front {
        // The scratch directory serves every attempt; the server that comes up owns it.
        let mut dir = Some(dir);
        for attempt in 0..5 {
            let port = free_port();
            let _ = std::fs::remove_file(pid_file);
            let mut cmd = command(port);
            dies_with_its_starter(&mut cmd)
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
            let log = collect_stderr(&mut child);
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            // Stop waiting as soon as it exits (a port taken meanwhile): try the next port.
            let up = wait_until(Duration::from_secs(10), || {
                exited(&child) || (pid_file.exists() && TcpStream::connect(addr).is_ok())
            }) && !exited(&child);
            let mut front = Front {
                name,
                addr,
                child,
                log,
                dir: None,
                reaped: false,
            };
            if up {
                front.dir = dir.take();
                return front;
            }
            front.stop();
            eprintln!("{name} attempt {attempt} failed: {}", front.log());
        }
        panic!("{name} did not start");
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Kills the server and its workers at once, as a crash would.
    pub fn kill(&mut self) {
        if !self.reaped {
            self.signal_group(libc::SIGKILL);
            let _ = self.child.wait();
            self.reaped = true;
        }
    }

    /// SIGTERM, then SIGKILL after a short wait: Apache's stop can wait many seconds on a
    /// worker that reads a quiet stream. The SIGKILL also reaches workers that a master
    /// which has already exited left behind.
    pub fn stop(&mut self) {
        if !self.reaped && !exited(&self.child) {
            self.signal_group(libc::SIGTERM);
            let _ = wait_until(Duration::from_secs(2), || exited(&self.child));
        }
        self.kill();
    }

    fn signal_group(&self, sig: i32) {
        // SAFETY: kill(2) on the process group we created for this child (process_group(0)),
        // whose leader is not reaped yet, so the id is still ours.
        unsafe {
            libc::kill(-(self.child.id() as i32), sig);
        }
    }
}

/// Whether the child has exited, without reaping it (a zombie keeps its pid reserved).
fn exited(child: &Child) -> bool {
    // SAFETY: waitid with WNOWAIT only reads our own child's state into a zeroed siginfo_t.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        libc::waitid(libc::P_PID, child.id(), &mut info, flags) == 0 && info.si_pid() != 0
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop(); // then `dir` goes
    }
}
