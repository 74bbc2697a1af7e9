//! RESP2, the Redis wire format: commands encoded as arrays of bulk strings, replies decoded
//! from our own buffer. Pure: bytes in, frames out.
//!
//! One parser, ours (not the redis-protocol crate's: it recurses without a depth limit and
//! parses an incomplete frame again from the start on every call). It walks without
//! recursion, within caps: while a reply is incomplete it only measures (no allocation, so
//! a large reply arriving in many reads costs one walk of its headers per read), and once
//! the reply is whole, the same walk builds it. A Redis that sends garbage, or a reply that
//! would take the loop's stack or memory, is an error, never a crash.

use std::fmt;

/// A reply, as tickerd reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SimpleString(Vec<u8>),
    Error(String),
    Integer(i64),
    BulkString(Vec<u8>),
    /// A null bulk string or a null array.
    Null,
    Array(Vec<Frame>),
}

/// Replies tickerd reads are at most arrays of arrays of arrays (XREAD); deeper is not Redis.
pub(crate) const MAX_DEPTH: usize = 8;

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
pub(crate) fn command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// The length of the first whole frame in `buf`: `Ok(None)` while more bytes are needed.
pub(crate) fn frame_len(buf: &[u8], max_len: usize) -> Result<Option<usize>, RespError> {
    Ok(walk(buf, max_len, false)?.map(|(len, _)| len))
}

/// An array being read: elements still expected, and those built so far.
struct Open {
    left: u64,
    items: Vec<Frame>,
}

/// Walks the first frame in `buf` with an explicit stack: its length once whole (`None`
/// before), and the frame itself when `build`. Bulk contents are skipped by their length.
fn walk(buf: &[u8], max_len: usize, build: bool) -> Result<Option<(usize, Frame)>, RespError> {
    let mut open: Vec<Open> = Vec::new();
    let mut pos = 0;
    loop {
        let Some((kind, value, next)) = header(buf, pos)? else {
            return Ok(None);
        };
        pos = next;
        // The element this header completes (a placeholder when only measuring); `None`
        // for an array that opens.
        let element = match kind {
            b'+' => Some(Frame::SimpleString(if build {
                value.to_vec()
            } else {
                Vec::new()
            })),
            b'-' => Some(Frame::Error(if build {
                String::from_utf8_lossy(value).into_owned()
            } else {
                String::new()
            })),
            b':' => Some(Frame::Integer(number(value)?)),
            b'$' => match number(value)? {
                -1 => Some(Frame::Null),
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
                    let bytes = if build {
                        buf[pos..end - 2].to_vec()
                    } else {
                        Vec::new()
                    };
                    pos = end;
                    Some(Frame::BulkString(bytes))
                }
            },
            b'*' => match number(value)? {
                -1 => Some(Frame::Null),
                0 => Some(Frame::Array(Vec::new())),
                n if n < 0 => return Err(RespError::Malformed("negative array length")),
                n => {
                    if open.len() == MAX_DEPTH {
                        return Err(RespError::TooDeep);
                    }
                    // The count is the peer's word: reserve no more than a little for it.
                    let items = Vec::with_capacity(if build { (n as usize).min(64) } else { 0 });
                    open.push(Open {
                        left: n as u64,
                        items,
                    });
                    None
                }
            },
            _ => return Err(RespError::Malformed("unknown type byte")),
        };
        if pos > max_len {
            return Err(RespError::TooLarge(max_len));
        }
        // An element ended: it goes into its array, closing every array it completes.
        let mut done = element;
        while let Some(frame) = done.take() {
            let Some(array) = open.last_mut() else {
                return Ok(Some((pos, frame)));
            };
            if build {
                array.items.push(frame);
            }
            array.left -= 1;
            if array.left == 0 {
                let array = open.pop().expect("an open array");
                done = Some(Frame::Array(array.items));
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
    if frame_len(buf, max_len)?.is_none() {
        return Ok(None);
    }
    let (len, frame) = walk(buf, max_len, true)?.expect("measured whole");
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
    fn every_kind_decodes_to_its_frame_split_anywhere() {
        let reply = b"*7\r\n+OK\r\n-ERR no\r\n:-42\r\n$5\r\nhe\r\no\r\n$-1\r\n*-1\r\n\
                      *2\r\n*0\r\n$0\r\n\r\n";
        let want = Frame::Array(vec![
            Frame::SimpleString(b"OK".to_vec()),
            Frame::Error("ERR no".into()),
            Frame::Integer(-42),
            Frame::BulkString(b"he\r\no".to_vec()),
            Frame::Null,
            Frame::Null,
            Frame::Array(vec![Frame::Array(vec![]), Frame::BulkString(vec![])]),
        ]);
        // Fed in two reads cut anywhere: nothing until whole, then exactly the frame.
        for cut in 0..reply.len() {
            let mut buf = reply[..cut].to_vec();
            assert_eq!(take_reply(&mut buf, CAP), Ok(None), "at {cut}");
            buf.extend_from_slice(&reply[cut..]);
            assert_eq!(
                take_reply(&mut buf, CAP),
                Ok(Some(want.clone())),
                "at {cut}"
            );
            assert!(buf.is_empty());
        }
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
