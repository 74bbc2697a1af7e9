//! Accepting connections, and what accept itself can refuse: a pause when out of
//! descriptors (or another error that would recur at once), so that neither a flood nor
//! EMFILE can make the loop spin. The core decides what each accepted connection gets
//! (503 when `--max-clients` are open).

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use super::Server;
use crate::protocol::Protocol;

/// Connections accepted per wake-up at most, so a flood cannot starve the streams.
const ACCEPTS_PER_WAKEUP: usize = 256;
/// How long accepting pauses when descriptors run out.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

impl Server {
    pub(super) fn accept(&mut self, index: usize) {
        if self.accept_paused_until.is_some() {
            return; // resumed by the timer
        }
        for _ in 0..ACCEPTS_PER_WAKEUP {
            let Some((listener, protocol)) = self.listeners.get(index) else {
                return;
            };
            let protocol = *protocol;
            let (socket, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // Retrying now would spin: the connection stays queued in the kernel.
                    let now = Instant::now();
                    if self.out_of_descriptors_since.is_none() {
                        log::warn!(
                            "out of file descriptors with {} connections open: accepting every {ACCEPT_PAUSE:?} until some free up",
                            self.core.connections()
                        );
                        self.out_of_descriptors_since = Some(now);
                    }
                    self.core.counters_mut().refused_no_descriptors += 1;
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ECONNABORTED | libc::EPROTO | libc::EPERM)
                    ) =>
                {
                    // These concern one connection that is already gone, not the listener.
                    log::debug!("accept: {e}");
                    continue;
                }
                Err(e) => {
                    // Anything else (ENOBUFS, ENOMEM…) may well happen again at once:
                    // back off as for EMFILE rather than spin.
                    log::warn!("accept failed: {e}: pausing accepts for {ACCEPT_PAUSE:?}");
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    return;
                }
            };
            if let Some(since) = self.out_of_descriptors_since.take() {
                log::info!(
                    "accepting again after {:?} out of file descriptors",
                    since.elapsed()
                );
            }
            let counters = self.core.counters_mut();
            match protocol {
                Protocol::Scgi => counters.accepted_scgi += 1,
                Protocol::Http => counters.accepted_http += 1,
            }
            self.core.accept(socket, protocol, peer, Instant::now());
        }
        // More may be waiting, and edge-triggered readiness will not say so again: come back
        // after the other ready sockets have had their turn.
        self.accept_paused_until = Some(Instant::now());
    }
}
