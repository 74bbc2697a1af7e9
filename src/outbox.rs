//! Output under way on one connection: a list of shared byte pieces (a head, then each
//! update's event bytes, made once and shared by every client that sends them) and how far
//! they are written. All of it goes out in one `writev` when the socket takes it, so a batch
//! of updates costs one system call, not one per update and not a per-client copy.

use std::io::{self, ErrorKind, IoSlice, Write};
use std::rc::Rc;

/// Pieces handed to one `writev` at most (Linux allows 1024).
const SLICES_PER_CALL: usize = 64;

#[derive(Debug)]
pub struct Outbox {
    pieces: Vec<Rc<[u8]>>,
    /// The first piece not wholly written, and how much of it is. (u32: every stream holds
    /// one while it writes, and neither comes near 4 G.)
    at: u32,
    offset: u32,
}

/// How far a write got.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    Done,
    /// The socket would block; the rest waits for it to drain.
    Blocked,
}

impl Outbox {
    pub fn new(pieces: Vec<Rc<[u8]>>) -> Outbox {
        Outbox {
            pieces,
            at: 0,
            offset: 0,
        }
    }

    pub fn one(bytes: Rc<[u8]>) -> Outbox {
        Outbox::new(vec![bytes])
    }

    /// `bytes` to be written after everything already there.
    pub fn push(&mut self, bytes: Rc<[u8]>) {
        self.pieces.push(bytes);
    }

    fn position(&self) -> (usize, usize) {
        (self.at as usize, self.offset as usize)
    }

    /// Bytes not yet written.
    pub fn remaining(&self) -> usize {
        let (at, offset) = self.position();
        let all: usize = self.pieces[at.min(self.pieces.len())..]
            .iter()
            .map(|p| p.len())
            .sum();
        all - offset
    }

    /// The bytes not yet written, in one piece (for a live upgrade's record).
    pub fn unwritten(&self) -> Vec<u8> {
        let (at, offset) = self.position();
        let mut out = Vec::with_capacity(self.remaining());
        for (i, piece) in self.pieces.iter().enumerate().skip(at) {
            let from = if i == at { offset } else { 0 };
            out.extend_from_slice(&piece[from.min(piece.len())..]);
        }
        out
    }

    /// Writes until everything is out or the socket would block. `bytes` counts what went,
    /// `calls` the system calls that sent some.
    pub fn write_to<W: Write>(
        &mut self,
        socket: &mut W,
        bytes: &mut u64,
        calls: &mut u64,
    ) -> io::Result<Progress> {
        loop {
            let (mut at, mut offset) = self.position();
            // Skip what is written (and empty pieces).
            while at < self.pieces.len() && offset >= self.pieces[at].len() {
                at += 1;
                offset = 0;
            }
            self.at = at as u32;
            self.offset = offset as u32;
            if at == self.pieces.len() {
                return Ok(Progress::Done);
            }
            let result = if at + 1 == self.pieces.len() {
                socket.write(&self.pieces[at][offset..])
            } else {
                let mut slices: [IoSlice; SLICES_PER_CALL] = [IoSlice::new(&[]); SLICES_PER_CALL];
                let rest = &self.pieces[at..];
                let n = rest.len().min(SLICES_PER_CALL);
                slices[0] = IoSlice::new(&rest[0][offset..]);
                for (slice, piece) in slices[1..n].iter_mut().zip(&rest[1..n]) {
                    *slice = IoSlice::new(piece);
                }
                socket.write_vectored(&slices[..n])
            };
            match result {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    *bytes += n as u64;
                    *calls += 1;
                    self.advance(n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Progress::Blocked),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn advance(&mut self, mut n: usize) {
        let (mut at, mut offset) = self.position();
        while n > 0 {
            let left = self.pieces[at].len() - offset;
            if n < left {
                offset += n;
                break;
            }
            n -= left;
            at += 1;
            offset = 0;
        }
        self.at = at as u32;
        self.offset = offset as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `take` bytes per call, across slices as writev does; blocks after
    /// `calls` calls.
    struct Sink {
        out: Vec<u8>,
        take: usize,
        calls: usize,
        vectored: usize,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.calls == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            self.calls -= 1;
            if bufs.len() > 1 {
                self.vectored += 1;
            }
            let mut left = self.take;
            for b in bufs {
                let n = b.len().min(left);
                self.out.extend_from_slice(&b[..n]);
                left -= n;
            }
            Ok(self.take - left)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn pieces(parts: &[&str]) -> Vec<Rc<[u8]>> {
        parts.iter().map(|p| Rc::from(p.as_bytes())).collect()
    }

    #[test]
    fn many_pieces_go_in_one_call() {
        let mut out = Outbox::new(pieces(&["head|", "", "a;", "bb;", "ccc;"]));
        let mut sink = Sink {
            out: Vec::new(),
            take: usize::MAX / 2,
            calls: 1,
            vectored: 0,
        };
        let (mut bytes, mut calls) = (0, 0);
        assert_eq!(
            out.write_to(&mut sink, &mut bytes, &mut calls).unwrap(),
            Progress::Done
        );
        assert_eq!(
            (sink.out.as_slice(), bytes, calls, sink.vectored),
            (&b"head|a;bb;ccc;"[..], 14, 1, 1)
        );
    }

    #[test]
    fn partial_writes_resume_at_every_byte() {
        let all = "head|a;bb;ccc;";
        for take in 1..=all.len() {
            let mut out = Outbox::new(pieces(&["head|", "a;", "bb;", "ccc;"]));
            let mut sink = Sink {
                out: Vec::new(),
                take,
                calls: 1,
                vectored: 0,
            };
            let mut bytes = 0;
            loop {
                match out.write_to(&mut sink, &mut bytes, &mut 0).unwrap() {
                    Progress::Done => break,
                    Progress::Blocked => {
                        assert_eq!(out.remaining(), all.len() - sink.out.len());
                        sink.calls = 1;
                    }
                }
            }
            assert_eq!(sink.out, all.as_bytes(), "take {take}");
            assert_eq!(bytes as usize, all.len());
        }
    }

    #[test]
    fn what_is_left_to_write() {
        let mut out = Outbox::new(pieces(&["head|", "a;", "bb;"]));
        let mut sink = Sink {
            out: Vec::new(),
            take: 6,
            calls: 1,
            vectored: 0,
        };
        assert_eq!(
            out.write_to(&mut sink, &mut 0, &mut 0).unwrap(),
            Progress::Blocked
        );
        assert_eq!(out.unwritten(), b";bb;");
    }

    #[test]
    fn more_pieces_than_one_call_takes() {
        let parts: Vec<String> = (0..200).map(|i| format!("{i};")).collect();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let mut out = Outbox::new(pieces(&refs));
        let mut sink = Sink {
            out: Vec::new(),
            take: usize::MAX / 2,
            calls: 10,
            vectored: 0,
        };
        assert_eq!(
            out.write_to(&mut sink, &mut 0, &mut 0).unwrap(),
            Progress::Done
        );
        assert_eq!(String::from_utf8(sink.out).unwrap(), parts.concat());
        assert_eq!(sink.vectored, 4, "200 pieces, 64 per call");
    }
}
