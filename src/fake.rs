//! A fake socket for unit tests: scripted input, recorded output, and a peer that can take
//! a few bytes per write, stall, or be gone. Clones share one pipe, so a test keeps a handle
//! on a socket the code under test owns.

use std::cell::{RefCell, RefMut};
use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use crate::io::Socket;

/// Both directions of a fake connection.
#[derive(Default)]
pub(crate) struct Pipe {
    /// What the peer sent, not yet read.
    pub(crate) input: Vec<u8>,
    /// After the input: EOF (true) or WouldBlock (false).
    pub(crate) eof: bool,
    /// What was written to the peer.
    pub(crate) output: Vec<u8>,
    /// write/writev calls that took bytes.
    pub(crate) writes: usize,
    /// Bytes taken per write at most; 0: all.
    pub(crate) take: usize,
    /// Takes nothing (WouldBlock) while set: a reader that stalled.
    pub(crate) blocked: bool,
    /// Each write fails with EPIPE: the peer is gone.
    pub(crate) broken: bool,
    /// Our write side was shut.
    pub(crate) shut: bool,
}

#[derive(Clone, Default)]
pub(crate) struct FakeSocket {
    pipe: Rc<RefCell<Pipe>>,
    fd: RawFd,
}

impl FakeSocket {
    /// A socket whose (fake) descriptor is `fd`, with `input` waiting, then EOF or not.
    pub(crate) fn new(fd: RawFd, input: &[u8], eof: bool) -> FakeSocket {
        let socket = FakeSocket {
            pipe: Rc::default(),
            fd,
        };
        socket.pipe().input = input.to_vec();
        socket.pipe().eof = eof;
        socket
    }

    pub(crate) fn pipe(&self) -> RefMut<'_, Pipe> {
        self.pipe.borrow_mut()
    }

    /// Everything written to the peer so far, as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.pipe().output.clone()).unwrap()
    }
}

impl Read for FakeSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut p = self.pipe();
        if p.input.is_empty() {
            return match p.eof {
                true => Ok(0),
                false => Err(ErrorKind::WouldBlock.into()),
            };
        }
        let n = buf.len().min(p.input.len());
        buf[..n].copy_from_slice(&p.input[..n]);
        p.input.drain(..n);
        Ok(n)
    }
}

impl Write for FakeSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut p = self.pipe();
        if p.broken {
            return Err(ErrorKind::BrokenPipe.into());
        }
        if p.blocked {
            return Err(ErrorKind::WouldBlock.into());
        }
        let room = if p.take == 0 { usize::MAX } else { p.take };
        let mut n = 0;
        for b in bufs {
            let k = b.len().min(room - n);
            p.output.extend_from_slice(&b[..k]);
            n += k;
            if n == room {
                break;
            }
        }
        p.writes += 1;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Socket for FakeSocket {
    fn shutdown_write(&self) -> io::Result<()> {
        self.pipe().shut = true;
        Ok(())
    }
}

impl AsRawFd for FakeSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}
