//! Reading a response as it arrives: the head (an HTTP status line, or a CGI `Status:`
//! header over SCGI) with httparse, chunked transfer decoding when the head says so, and the
//! event stream per the WHATWG rules. Incremental: feed bytes, take events.

/// One dispatched event: its own `id` field (events without one have `None`: the last
/// event id a browser keeps is the client's business) and its `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: Option<String>,
    pub data: String,
}

impl Event {
    /// The publish sequence number the bench put in `data` (`<seq>.00`).
    pub fn seq(&self) -> Option<u32> {
        self.data.split('.').next()?.parse().ok()
    }
}

#[derive(Debug)]
enum Phase {
    Head,
    Body,
}

#[derive(Debug)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// This many data bytes to go.
    Data(usize),
    /// The CRLF after a chunk's data: this many bytes of it to go.
    DataEnd(usize),
    Done,
}

#[derive(Debug)]
pub struct ResponseReader {
    phase: Phase,
    raw: Vec<u8>,
    pub status: Option<u16>,
    pub content_length: Option<usize>,
    chunked: Option<Chunk>,
    /// Decoded body bytes not yet parsed into events.
    body: Vec<u8>,
    body_seen: usize,
    /// The `id` field of the event being built, if it has one, and its data.
    id: Option<Vec<u8>>,
    data: Vec<u8>,
    /// A `data` field came since the last dispatch.
    data_pending: bool,
}

impl Default for ResponseReader {
    fn default() -> Self {
        ResponseReader {
            phase: Phase::Head,
            raw: Vec::new(),
            status: None,
            content_length: None,
            chunked: None,
            body: Vec::new(),
            body_seen: 0,
            id: None,
            data: Vec::new(),
            data_pending: false,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct BadResponse(pub String);

/// Where dispatched events go: (the event's own id, if it has an `id` field; the data).
pub type EventSink<'a> = dyn FnMut(Option<&[u8]>, &[u8]) + 'a;

impl ResponseReader {
    /// Feeds received bytes; dispatched events are appended to `events`.
    pub fn feed(&mut self, bytes: &[u8], events: &mut Vec<Event>) -> Result<(), BadResponse> {
        self.feed_with(bytes, &mut |id, data| {
            events.push(Event {
                id: id.map(|i| String::from_utf8_lossy(i).into_owned()),
                data: String::from_utf8_lossy(data).into_owned(),
            })
        })
    }

    /// Feeds received bytes; each dispatched event goes to `sink` as (its id, its data),
    /// borrowed: nothing is allocated per event, for workers that take a million a second.
    pub fn feed_with(&mut self, bytes: &[u8], sink: &mut EventSink) -> Result<(), BadResponse> {
        match self.phase {
            Phase::Head => {
                self.raw.extend_from_slice(bytes);
                let Some(end) = find(&self.raw, b"\r\n\r\n") else {
                    if self.raw.len() > 16 * 1024 {
                        return Err(BadResponse("head over 16 KiB".into()));
                    }
                    return Ok(());
                };
                let head = self.raw[..end + 4].to_vec();
                let rest = self.raw.split_off(end + 4);
                self.raw.clear();
                self.parse_head(&head)?;
                self.phase = Phase::Body;
                self.take_body(&rest, sink)
            }
            Phase::Body => self.take_body(bytes, sink),
        }
    }

    fn parse_head(&mut self, head: &[u8]) -> Result<(), BadResponse> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let (status, headers) = if head.starts_with(b"HTTP/") {
            let mut res = httparse::Response::new(&mut headers);
            res.parse(head).map_err(|e| BadResponse(e.to_string()))?;
            (res.code, res.headers.to_vec())
        } else {
            // A CGI response head: headers only, the status in `Status:`.
            let (_, parsed) = match httparse::parse_headers(head, &mut headers) {
                Ok(httparse::Status::Complete(c)) => c,
                _ => return Err(BadResponse("malformed CGI head".into())),
            };
            let status = parsed
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("status"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.get(..3)?.parse().ok());
            (status, parsed.to_vec())
        };
        self.status = status;
        for h in headers {
            let value = String::from_utf8_lossy(h.value);
            if h.name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
                self.chunked = Some(Chunk::Size);
            } else if h.name.eq_ignore_ascii_case("content-length") {
                self.content_length = value.trim().parse().ok();
            }
        }
        Ok(())
    }

    fn take_body(&mut self, mut bytes: &[u8], sink: &mut EventSink) -> Result<(), BadResponse> {
        let Some(chunk) = &mut self.chunked else {
            self.body_seen += bytes.len();
            self.body.extend_from_slice(bytes);
            self.parse_events(sink);
            return Ok(());
        };
        while !bytes.is_empty() {
            match chunk {
                Chunk::Size => {
                    let Some(eol) = bytes.iter().position(|&b| b == b'\n') else {
                        self.raw.extend_from_slice(bytes);
                        return Ok(());
                    };
                    self.raw.extend_from_slice(&bytes[..eol]);
                    bytes = &bytes[eol + 1..];
                    let line = String::from_utf8_lossy(&self.raw).to_string();
                    self.raw.clear();
                    let size =
                        usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                            .map_err(|_| BadResponse(format!("bad chunk size {line:?}")))?;
                    *chunk = if size == 0 {
                        Chunk::Done
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(left) => {
                    let n = (*left).min(bytes.len());
                    self.body.extend_from_slice(&bytes[..n]);
                    self.body_seen += n;
                    bytes = &bytes[n..];
                    *left -= n;
                    if *left == 0 {
                        *chunk = Chunk::DataEnd(2);
                    }
                }
                Chunk::DataEnd(left) => {
                    let n = (*left).min(bytes.len());
                    bytes = &bytes[n..];
                    *left -= n;
                    if *left == 0 {
                        *chunk = Chunk::Size;
                    }
                }
                Chunk::Done => return Ok(()),
            }
        }
        self.parse_events(sink);
        Ok(())
    }

    /// WHATWG event stream: lines end at LF (CR handling omitted: no server here sends CR),
    /// a blank line dispatches, `:` starts a comment.
    fn parse_events(&mut self, sink: &mut EventSink) {
        let mut start = 0;
        while let Some(eol) = self.body[start..].iter().position(|&b| b == b'\n') {
            let line = &self.body[start..start + eol];
            start += eol + 1;
            if line.is_empty() {
                if self.data_pending {
                    sink(self.id.as_deref(), &self.data);
                    self.data.clear();
                    self.data_pending = false;
                }
                // Events without an `id:` line are sent on purpose (tickerd's quotes): the
                // next event's id is its own or none.
                self.id = None;
                continue;
            }
            if line[0] == b':' {
                continue;
            }
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(c) => (
                    &line[..c],
                    line[c + 1..].strip_prefix(b" ").unwrap_or(&line[c + 1..]),
                ),
                None => (line, &b""[..]),
            };
            match field {
                b"id" => {
                    let id = self.id.get_or_insert_with(Vec::new);
                    id.clear();
                    id.extend_from_slice(value);
                }
                b"data" => {
                    if self.data_pending {
                        self.data.push(b'\n');
                    }
                    self.data.extend_from_slice(value);
                    self.data_pending = true;
                }
                _ => {}
            }
        }
        self.body.drain(..start);
    }

    /// Whether a response with a length (or a last chunk) is complete.
    pub fn complete(&self) -> bool {
        match (&self.chunked, self.content_length) {
            (Some(Chunk::Done), _) => true,
            (None, Some(len)) => self.body_seen >= len,
            _ => false,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The reader's own checks, run by the smoke run: an event without an `id:` line has none,
/// whatever the one before it had.
pub fn self_check() {
    let mut r = ResponseReader::default();
    let mut got = Vec::new();
    let body = "id: 7\ndata: a\n\ndata: b\n\nid: 9\ndata: c\ndata: d\n\n";
    let response = format!("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n{body}");
    for byte in response.as_bytes().chunks(1) {
        r.feed(byte, &mut got).expect("a valid stream");
    }
    let ids: Vec<Option<&str>> = got.iter().map(|e| e.id.as_deref()).collect();
    let data: Vec<&str> = got.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(ids, [Some("7"), None, Some("9")]);
    assert_eq!(data, ["a", "b", "c\nd"]);
}
