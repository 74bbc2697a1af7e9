//! Telling the service manager what tickerd is doing (`sd_notify(3)`): ready, reloading (a
//! live upgrade), stopping, and the watchdog's keep-alive. Nothing is sent when
//! `NOTIFY_SOCKET` is unset, as when run by hand or under lighttpd.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        log::warn!("sd_notify: {e}");
    }
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
