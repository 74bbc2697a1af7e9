//! RESP2, the Redis wire format: commands encoded by us (arrays of bulk strings), replies
//! decoded by the `redis-protocol` crate from our own buffer. Pure: bytes in, frames out.
//!
//! The crate decodes a frame recursively and has no limit of its own on nesting or size,
//! and it re-parses an incomplete frame from the start on every call. So a frame is first
//! measured here, without recursion and within caps ([`frame_len`]); only a whole frame,
//! nested at most [`MAX_DEPTH`] deep, is handed to the crate. A Redis that sends garbage, or
//! a frame that would take the loop's stack or memory, is an error, never a crash.

use std::fmt;

pub use redis_protocol::resp2::types::OwnedFrame as Frame;

/// Replies tickerd reads are at most arrays of arrays of arrays (XREAD); deeper is not Redis.
pub const MAX_DEPTH: usize = 8;

/// Why bytes from Redis are not a reply tickerd can take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespError {
    /// Not RESP2: an unknown type byte, a length that is not a number, a missing CRLF.
    Malformed(&'static str),
    /// Arrays nested deeper than `MAX_DEPTH`.
    TooDeep,
    /// A reply larger than the cap the caller gave.
    TooLarge(usize),
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::Malformed(why) => write!(f, "malformed reply: {why}"),
            RespError::TooDeep => write!(f, "reply nested deeper than {MAX_DEPTH} arrays"),
            RespError::TooLarge(cap) => write!(f, "reply over the {cap}-byte cap"),
        }
    }
}

/// Appends a command: an array of bulk strings.
pub fn command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// The length of the first whole frame in `buf`: `Ok(None)` while more bytes are needed.
/// Walks headers only (bulk contents are skipped by their length), with an explicit stack.
pub fn frame_len(buf: &[u8], max_len: usize) -> Result<Option<usize>, RespError> {
    // Elements still expected by each open array, innermost last.
    let mut open: Vec<u64> = Vec::new();
    let mut pos = 0;
    loop {
        let Some((kind, value, next)) = header(buf, pos)? else {
            return Ok(None);
        };
        pos = next;
        let mut done = true;
        match kind {
            b'+' | b'-' => {}
            b':' => {
                number(value)?;
            }
            b'$' => match number(value)? {
                -1 => {}
                n if n < 0 => return Err(RespError::Malformed("negative bulk length")),
                n => {
                    let end = pos.saturating_add(n as usize).saturating_add(2);
                    if end > max_len {
                        return Err(RespError::TooLarge(max_len));
                    }
                    if buf.len() < end {
                        return Ok(None);
                    }
                    if &buf[end - 2..end] != b"\r\n" {
                        return Err(RespError::Malformed("bulk string not ended by CRLF"));
                    }
                    pos = end;
                }
            },
            b'*' => match number(value)? {
                -1 | 0 => {}
                n if n < 0 => return Err(RespError::Malformed("negative array length")),
                n => {
                    if open.len() == MAX_DEPTH {
                        return Err(RespError::TooDeep);
                    }
                    open.push(n as u64);
                    done = false;
                }
            },
            _ => return Err(RespError::Malformed("unknown type byte")),
        }
        if pos > max_len {
            return Err(RespError::TooLarge(max_len));
        }
        // An element ended: close every array it completes.
        while done {
            match open.last_mut() {
                None => return Ok(Some(pos)),
                Some(left) => {
                    *left -= 1;
                    if *left == 0 {
                        open.pop();
                    } else {
                        done = false;
                    }
                }
            }
        }
    }
}

/// A header line: its type byte, the rest of the line, and where the next element starts.
type Header<'a> = (u8, &'a [u8], usize);

/// The header line at `pos`; `None` if it is not whole yet.
fn header(buf: &[u8], pos: usize) -> Result<Option<Header<'_>>, RespError> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    // Simple strings and errors may be long; every other header is a number.
    let limit = if matches!(kind, b'+' | b'-') {
        64 * 1024
    } else {
        24
    };
    let rest = &buf[pos + 1..buf.len().min(pos + 1 + limit + 2)];
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Ok(Some((kind, &rest[..end], pos + 1 + end + 2))),
        None if rest.len() >= limit + 2 => Err(RespError::Malformed("header line too long")),
        None => Ok(None),
    }
}

fn number(text: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(RespError::Malformed("not a number"))
}

/// Takes the first whole reply off the front of `buf`, if there is one.
pub fn take_reply(buf: &mut Vec<u8>, max_len: usize) -> Result<Option<Frame>, RespError> {
    let Some(len) = frame_len(buf, max_len)? else {
        return Ok(None);
    };
    let frame = match redis_protocol::resp2::decode::decode(&buf[..len]) {
        Ok(Some((frame, n))) if n == len => frame,
        // Measured whole, so anything else is a frame the two parsers disagree on.
        _ => return Err(RespError::Malformed("undecodable frame")),
    };
    buf.drain(..len);
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: usize = 1 << 20;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        command(&mut out, &["XREAD", "BLOCK", "1000"]);
        assert_eq!(out, b"*3\r\n$5\r\nXREAD\r\n$5\r\nBLOCK\r\n$4\r\n1000\r\n");
    }

    #[test]
    fn whole_frames_are_measured_and_taken() {
        let replies: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR no\r\n",
            b":42\r\n",
            b"$5\r\nhello\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n*2\r\n$1\r\na\r\n:1\r\n$0\r\n\r\n",
        ];
        for &reply in replies {
            assert_eq!(frame_len(reply, CAP), Ok(Some(reply.len())), "{reply:?}");
            for cut in 0..reply.len() {
                assert_eq!(
                    frame_len(&reply[..cut], CAP),
                    Ok(None),
                    "{reply:?} at {cut}"
                );
            }
            let mut buf = reply.to_vec();
            buf.extend_from_slice(b":7\r\n");
            assert!(take_reply(&mut buf, CAP).unwrap().is_some());
            assert_eq!(buf, b":7\r\n", "only the first frame is taken");
        }
        let mut buf = b"*2\r\n$1\r\na\r\n:-3\r\n".to_vec();
        assert_eq!(
            take_reply(&mut buf, CAP).unwrap(),
            Some(Frame::Array(vec![
                Frame::BulkString(b"a".to_vec()),
                Frame::Integer(-3)
            ]))
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        for (bytes, want) in [
            (&b"?what\r\n"[..], RespError::Malformed("unknown type byte")),
            (b":x\r\n", RespError::Malformed("not a number")),
            (
                b"$3\r\nabcd\r\n",
                RespError::Malformed("bulk string not ended by CRLF"),
            ),
            (b"$-2\r\n", RespError::Malformed("negative bulk length")),
            (b"$99999999999\r\n", RespError::TooLarge(CAP)),
            (
                b":1111111111111111111111111111111",
                RespError::Malformed("header line too long"),
            ),
        ] {
            assert_eq!(frame_len(bytes, CAP), Err(want), "{bytes:?}");
        }
        // Nesting that would overflow a recursive decoder's stack.
        let deep = b"*1\r\n".repeat(100_000);
        assert_eq!(frame_len(&deep, CAP), Err(RespError::TooDeep));
        let mut ok = b"*1\r\n".repeat(MAX_DEPTH);
        ok.extend_from_slice(b":1\r\n");
        assert_eq!(frame_len(&ok, CAP), Ok(Some(ok.len())));
    }
}
