//! Server-Sent Events encoding (WHATWG HTML, "Server-sent events", event stream format).

/// One event: `id:` (when given) then one `data:` line per line of `data`, then the blank
/// line that dispatches it. An event without `id:` leaves the browser's last event id as it
/// was (WHATWG: the last event ID buffer is kept across events).
pub fn event(id: Option<u64>, data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + data.len());
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.to_string().as_bytes());
        out.push(b'\n');
    }
    // A bare CR, LF or CRLF all end a line in the stream format; split on each so that a
    // value can never inject a field of its own.
    for line in data.split(['\n', '\r']) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// The first bytes of every stream: the reconnection time the browser should use.
pub fn retry(ms: u64) -> Vec<u8> {
    format!("retry: {ms}\n\n").into_bytes()
}

/// A comment line: ignored by the browser, but it makes front-ends and the kernel notice a
/// peer that has gone, and keeps idle timeouts along the way from firing.
pub const HEARTBEAT: &[u8] = b": heartbeat\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_event() {
        assert_eq!(event(Some(7), "101.25"), b"id: 7\ndata: 101.25\n\n");
    }

    #[test]
    fn without_an_id() {
        assert_eq!(event(None, "1"), b"data: 1\n\n");
    }

    #[test]
    fn multi_line_data_cannot_inject_fields() {
        assert_eq!(
            event(Some(1), "a\nid: 99\rb"),
            b"id: 1\ndata: a\ndata: id: 99\ndata: b\n\n".to_vec()
        );
    }

    #[test]
    fn retry_and_heartbeat() {
        assert_eq!(retry(3000), b"retry: 3000\n\n");
        assert!(HEARTBEAT.starts_with(b":"));
        assert!(HEARTBEAT.ends_with(b"\n"));
    }
}
