//! What the core and the Redis links ask of the operating system, as traits: the loop in
//! `server` implements them over mio and real sockets, unit tests and the fuzz target over
//! fakes that record what was asked.

use std::io::{self, Read, Write};

use crate::config::ListenAddr;

/// A connected socket: bytes both ways, and a write side that can be shut while the read
/// side stays open.
pub trait Socket: Read + Write {
    fn shutdown_write(&self) -> io::Result<()>;
}

/// What the core asks of the operating system. The loop's implementation registers with
/// mio's poller; tests record what was asked and hand out fake sockets.
pub trait Io {
    type Socket: Socket;
    /// Registers a new socket under `token`: readable, and writable when `writable`.
    fn register(
        &mut self,
        socket: &mut Self::Socket,
        token: usize,
        writable: bool,
    ) -> io::Result<()>;
    /// Changes a registered socket's interest.
    fn reregister(
        &mut self,
        socket: &mut Self::Socket,
        token: usize,
        writable: bool,
    ) -> io::Result<()>;
    /// Starts a non-blocking connect (a link to Redis); it is done when the socket is
    /// writable and [`Io::connect_result`] says so.
    fn connect(&mut self, addr: &ListenAddr) -> io::Result<Self::Socket>;
    /// `None` while a connect is still under way.
    fn connect_result(&mut self, socket: &Self::Socket) -> Option<io::Result<()>>;
}

/// What a readiness event says of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// Input, end of input or an error is waiting to be read.
    pub input: bool,
    /// Both directions are gone (EPOLLERR or EPOLLHUP: a reset, or the peer's close after
    /// ours): nothing more can reach the peer.
    pub gone: bool,
}
