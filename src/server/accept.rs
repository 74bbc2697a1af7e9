//! Accepting connections, and refusing them at accept: 503 when full, a pause when out of
//! descriptors, so that neither a flood nor EMFILE can make the loop spin.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::Server;
use crate::conn::Connection;
use crate::metrics::Refusal;
use crate::response::{self, Protocol};

/// Connections accepted per wake-up at most, so a flood cannot starve the streams.
const ACCEPTS_PER_WAKEUP: usize = 256;
/// How long accepting pauses when descriptors run out.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Refusals at `--max-clients` are logged at most this often, each line with the count.
const FULL_LOG_EVERY: Duration = Duration::from_secs(10);
/// What 503 answers tell clients to wait, in seconds.
const RETRY_AFTER: &str = "5";

impl Server {
    pub(super) fn accept(&mut self, index: usize) {
        if self.timers.accept_paused_until.is_some() {
            return; // resumed by the timer
        }
        for _ in 0..ACCEPTS_PER_WAKEUP {
            let Some((listener, protocol)) = self.listeners.get(index) else {
                return;
            };
            let protocol = *protocol;
            let (mut socket, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // Retrying now would spin: the connection stays queued in the kernel.
                    let now = Instant::now();
                    if self.out_of_descriptors_since.is_none() {
                        log::warn!(
                            "out of file descriptors with {} connections open: accepting every {ACCEPT_PAUSE:?} until some free up",
                            self.clients.len()
                        );
                        self.out_of_descriptors_since = Some(now);
                    }
                    self.counters.refused(Refusal::NoDescriptors);
                    self.timers.accept_paused_until = Some(now + ACCEPT_PAUSE);
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
                    self.timers.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    return;
                }
            };
            if let Some(since) = self.out_of_descriptors_since.take() {
                log::info!(
                    "accepting again after {:?} out of file descriptors",
                    since.elapsed()
                );
            }
            match protocol {
                Protocol::Scgi => self.counters.accepted_scgi += 1,
                Protocol::Http => self.counters.accepted_http += 1,
            }
            let key = self.clients.vacant_key();
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut socket, Token(key), Interest::READABLE)
            {
                log::warn!("cannot register a new connection: {e}");
                continue;
            }
            self.next_serial += 1;
            let mut conn = Connection::new(socket, protocol, self.next_serial, peer);
            let now = Instant::now();
            if self.clients.len() >= self.max_clients {
                self.refused_unlogged += 1;
                if self
                    .full_logged_at
                    .is_none_or(|at| now.duration_since(at) >= FULL_LOG_EVERY)
                {
                    log::warn!(
                        "{}: refused (503): --max-clients {} reached; {} refused since the last such line (one every {FULL_LOG_EVERY:?} at most)",
                        conn.describe(),
                        self.max_clients,
                        self.refused_unlogged
                    );
                    self.full_logged_at = Some(now);
                    self.refused_unlogged = 0;
                }
                log::debug!("{}: refused (503): full", conn.describe());
                self.counters.refused(Refusal::Full);
                let answer = response::text(
                    protocol,
                    503,
                    &[("Retry-After", RETRY_AFTER)],
                    "server full\n",
                );
                conn.start_response(answer.into());
                let key = self.clients.insert(conn);
                self.flush(key);
            } else {
                log::debug!("{}: accepted", conn.describe());
                let key = self.clients.insert(conn);
                self.timers.requests.start(now, key, self.next_serial);
            }
        }
        // More may be waiting, and edge-triggered readiness will not say so again: come back
        // after the other ready sockets have had their turn.
        self.timers.accept_paused_until = Some(Instant::now());
    }
}
