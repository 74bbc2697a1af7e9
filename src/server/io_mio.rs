//! The core's [`Io`] over mio's poller and real sockets.

use std::io;

use mio::{Interest, Registry, Token};

use crate::config::ListenAddr;
use crate::io::Io;
use crate::net::Socket;

pub(super) struct MioIo {
    pub(super) registry: Registry,
}

fn interest(writable: bool) -> Interest {
    match writable {
        true => Interest::READABLE | Interest::WRITABLE,
        false => Interest::READABLE,
    }
}

impl Io for MioIo {
    type Socket = Socket;

    fn register(&mut self, socket: &mut Socket, token: usize, writable: bool) -> io::Result<()> {
        self.registry
            .register(socket, Token(token), interest(writable))
    }

    fn reregister(&mut self, socket: &mut Socket, token: usize, writable: bool) -> io::Result<()> {
        self.registry
            .reregister(socket, Token(token), interest(writable))
    }

    fn connect(&mut self, addr: &ListenAddr) -> io::Result<Socket> {
        Socket::connect(addr)
    }

    fn connect_result(&mut self, socket: &Socket) -> Option<io::Result<()>> {
        socket.connect_result()
    }
}
