//! Telling the service manager what tickerd is doing (`sd_notify(3)`): ready, reloading (a
//! live upgrade), stopping, and the watchdog's keep-alive. Nothing is sent when
//! `NOTIFY_SOCKET` is unset, as when run by hand or under lighttpd.

use std::ffi::OsStr;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

/// Whether the last notification failed (logged once, until one goes through again: the
/// watchdog's would otherwise log every half period).
static FAILING: AtomicBool = AtomicBool::new(false);

fn send(states: &[NotifyState]) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let message: String = states.iter().map(|s| format!("{s}\n")).collect();
    match send_to(&socket, message.as_bytes()) {
        Ok(()) => {
            if FAILING.swap(false, Ordering::Relaxed) {
                log::info!("sd_notify: {socket:?} takes notifications again");
            }
        }
        Err(e) => {
            if !FAILING.swap(true, Ordering::Relaxed) {
                log::warn!(
                    "sd_notify to {socket:?}: {e} (not logged again until one goes through)"
                );
            }
        }
    }
}

/// One datagram to `NOTIFY_SOCKET`: an absolute path, or `@name` in the abstract namespace
/// (sd_notify(3); the sd-notify crate takes `@` as part of a path).
fn send_to(socket: &OsStr, message: &[u8]) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let addr = match socket.as_bytes() {
        [b'@', name @ ..] => SocketAddr::from_abstract_name(name)?,
        [b'/', ..] => SocketAddr::from_pathname(socket)?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "neither an absolute path nor @name",
            ))
        }
    };
    UnixDatagram::unbound()?.send_to_addr(message, &addr)?;
    Ok(())
}

/// Serving: listeners bound (or inherited) and the loop about to run.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A live upgrade starts (systemd 253's `Type=notify-reload` wants the monotonic time too).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to send `WATCHDOG=1`: half the period `WATCHDOG_USEC` asks for (and only when
/// `WATCHDOG_PID`, if set, is ours), as `sd_watchdog_enabled(3)` advises.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|p| !p.is_zero())
        .map(|p| p / 2)
}
