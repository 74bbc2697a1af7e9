//! Hostile and heavy clients against the real binary: slowloris, a publish flood beside a
//! reader that never reads, SIGTERM with 10,000 streams open.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn slowloris_connections_are_dropped_at_their_deadline_while_streams_flow() {
    let t = Tickerd::start(&["--tick-ms", "50", "--request-timeout-s", "2"]);
    let mut healthy = http_stream(t.http(), "/ticker", &[]);
    let mut last = healthy.next_event().unwrap().id();
    // 2,000 connections that send half a request and stall, on both listeners.
    let start = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..2000)
        .map(|i| {
            let mut s = TcpStream::connect(if i % 2 == 0 { t.http() } else { t.scgi() }).unwrap();
            let half: &[u8] = if i % 2 == 0 {
                b"GET /ticker HTTP/1.1\r\nHost: x\r\n"
            } else {
                b"70:CONTENT_LENGTH\x000\x00"
            };
            s.write_all(half).unwrap();
            s
        })
        .collect();
    // The healthy stream keeps receiving consecutive events throughout.
    while start.elapsed() < Duration::from_millis(2500) {
        let id = healthy.next_event().expect("healthy stream").id();
        assert_eq!(
            id,
            last + 1,
            "no event skipped while 2,000 connections stall"
        );
        last = id;
    }
    // Each stalled connection is closed, without an answer, by its deadline.
    for s in &mut stalled {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer");
    }
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    let timeouts = t.metrics()["tickerd_connections_closed_total{reason=\"request_timeout\"}"];
    assert_eq!(timeouts, 2000.0);
    let id = healthy.next_event().unwrap().id();
    assert_eq!(id, last + 1);
}

#[test]
fn a_publish_flood_reaches_a_reader_in_order_beside_a_stalled_stream() {
    let t = Tickerd::start(&["--tick-ms", "0", "--heartbeat-s", "0"]);
    let first = t.current_id();
    let mut reader = http_stream(
        t.http(),
        "/ticker",
        &[("Last-Event-ID", &first.to_string())],
    );
    // A stream that never reads: a small window fills, then it must get latest-only.
    let stalled = {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        s.connect(&t.http().into()).unwrap();
        let mut s: TcpStream = s.into();
        s.write_all(b"GET /ticker HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        s
    };
    let reader_thread = std::thread::spawn(move || {
        let mut got = Vec::new();
        while got.len() < 1000 {
            let e = reader.next_event().expect("reader keeps up");
            got.push((e.id(), e.data));
        }
        got
    });
    let start = Instant::now();
    for n in 1..=1000u32 {
        let (status, _) = t.publish(&format!("{n}.00"));
        assert_eq!(status, 200);
    }
    let published_in = start.elapsed();
    let got = reader_thread.join().unwrap();
    // Every price, in order, with consecutive ids.
    for (i, (id, data)) in got.iter().enumerate() {
        assert_eq!(*id, first + 1 + i as u64);
        assert_eq!(data, &format!("{}.00", i + 1));
    }
    eprintln!("1,000 publishes in {published_in:?}");
    // The reader has gone (its thread ended); the stalled stream is still held, not
    // dropped for being slow, and tickerd keeps at most one chunk for it.
    assert!(
        wait_until(Duration::from_secs(2), || t.clients() == 1.0),
        "{:?}",
        t.metrics()
    );
    drop(stalled);
}

#[test]
fn sigterm_with_ten_thousand_streams_exits_zero_within_a_second() {
    let mut t = Tickerd::start(&["--tick-ms", "0", "--heartbeat-s", "0"]);
    let addr = t.http();
    // Four threads open 2,500 streams each.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                (0..2500)
                    .map(|_| {
                        let mut s = TcpStream::connect(addr).unwrap();
                        s.write_all(b"GET /ticker HTTP/1.1\r\nHost: x\r\n\r\n")
                            .unwrap();
                        s
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut streams: Vec<TcpStream> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(
        wait_until(Duration::from_secs(20), || t.metrics()
            ["tickerd_clients{state=\"parked\"}"]
            == 10_000.0),
        "{:?}",
        t.metrics()
    );
    let took = t.terminate_within(Duration::from_secs(1));
    eprintln!("10,000 streams: exited in {took:?}");
    // Every stream ended: a read gives EOF after the head and event already sent.
    let mut buf = vec![0u8; 4096];
    for s in streams.iter_mut().step_by(97) {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) => panic!("stream not ended: {e}"),
            }
        }
    }
}
