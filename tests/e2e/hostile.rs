//! Hostile and heavy clients against the real binary: slowloris, a publish flood beside a
//! reader that never reads, SIGTERM with 10,000 streams open. Each takes [`heavy`]: they load
//! the machine (thousands of sockets, 200 ticks/s) and some bound how long things take.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn slowloris_connections_are_dropped_at_their_deadline_while_streams_flow() {
    let _heavy = heavy();
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
    let _heavy = heavy();
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
    let _heavy = heavy();
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

/// A stream whose reader never reads, with a small receive window so that it fills fast.
fn never_reading_stream(addr: std::net::SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&addr.into()).unwrap();
    let mut s: TcpStream = s.into();
    s.write_all(b"GET /ticker HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s
}

/// Reads `stream` until `until`, checking every id follows the one before; returns how many
/// events arrived, the longest gap between two of them and the last id.
fn read_consecutive(mut stream: SseReader<TcpStream>, until: Instant) -> (u64, Duration, u64) {
    let mut last = stream.next_event().expect("first event").id();
    let (mut count, mut longest, mut at) = (0, Duration::ZERO, Instant::now());
    while Instant::now() < until {
        let id = stream.next_event().expect("stream keeps flowing").id();
        assert_eq!(id, last + 1, "a reader that keeps up misses nothing");
        longest = longest.max(at.elapsed());
        (last, at, count) = (id, Instant::now(), count + 1);
    }
    (count, longest, last)
}

#[test]
fn a_thousand_readers_that_never_read_cost_no_memory_and_slow_nobody() {
    let _heavy = heavy();
    // 200 ticks/s for 30 s. Each stalled stream holds at most one chunk of shared bytes in
    // tickerd (conflation), so its memory must not grow with time.
    let t = Tickerd::start(&["--tick-ms", "5", "--heartbeat-s", "0"]);
    let stalled: Vec<TcpStream> = (0..1000).map(|_| never_reading_stream(t.http())).collect();
    assert!(
        wait_until(Duration::from_secs(10), || t.clients() == 1000.0),
        "{:?}",
        t.metrics()
    );
    // Let their windows fill (a few hundred events of ~40 bytes each), then take the
    // baseline.
    std::thread::sleep(Duration::from_secs(3));
    let rss_before = t.rss_kib();
    let until = Instant::now() + Duration::from_secs(30);
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let stream = http_stream(t.http(), "/ticker", &[]);
            std::thread::spawn(move || read_consecutive(stream, until))
        })
        .collect();
    let mut peak = rss_before;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        std::thread::sleep(left.min(Duration::from_millis(500)));
        peak = peak.max(t.rss_kib());
    }
    let server_id = t.current_id();
    for r in readers {
        let (count, longest, last) = r.join().unwrap();
        eprintln!(
            "reader: {count} consecutive events, longest gap {longest:?}, {} behind at the end",
            server_id.saturating_sub(last)
        );
        // Every id in order (checked above), and keeping pace with the server: a reader
        // slowed by the stalled streams would end thousands of ids behind. 200 ids is 1 s.
        assert!(count > 3000, "{count} events in 30 s at 200 ticks/s");
        assert!(
            last + 200 >= server_id,
            "reader at {last}, server at {server_id}"
        );
    }
    let rss_after = t.rss_kib();
    eprintln!("tickerd RSS with 1,000 stalled streams: {rss_before} KiB before, {peak} KiB peak, {rss_after} KiB after 30 s");
    // Flat: a byte per stalled stream per tick would be 6 MB by now.
    assert!(
        peak < rss_before + 1024,
        "RSS grew from {rss_before} KiB to {peak} KiB"
    );
    // They are still held, not dropped for being slow (the readers' own streams are going).
    assert!(
        wait_until(Duration::from_secs(5), || t.clients() == 1000.0),
        "{:?}",
        t.metrics()
    );
    drop(stalled);
}

#[test]
fn a_flood_beyond_max_clients_gets_503s_and_the_streams_never_notice() {
    let _heavy = heavy();
    let t = Tickerd::start(&["--tick-ms", "20", "--max-clients", "1000"]);
    let mut healthy = http_stream(t.http(), "/ticker", &[]);
    let held: Vec<TcpStream> = (0..998)
        .map(|i| {
            let mut s = TcpStream::connect(if i % 2 == 0 { t.http() } else { t.scgi() }).unwrap();
            if i % 2 == 0 {
                s.write_all(b"GET /ticker HTTP/1.1\r\nHost: x\r\n\r\n")
            } else {
                s.write_all(&scgi_get("/ticker", &[]))
            }
            .unwrap();
            s
        })
        .collect();
    // 999 streams and nothing else (a closing or idle /metrics connection holds a slot
    // too), then the last one: full with streams only, so that no slot frees during the
    // flood.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let m = t.metrics();
            t.clients() == 999.0
                && m["tickerd_clients{state=\"closing\"}"] == 0.0
                && m["tickerd_clients{state=\"idle\"}"] == 0.0
        }),
        "{:?}",
        t.metrics()
    );
    let mut last_in = http_stream(t.http(), "/ticker", &[]);
    assert_eq!(last_in.status, 200);
    assert!(last_in.next_event().is_some());
    // 4 threads for 3 s (at most 10,000 connections each), on both listeners: every one is
    // refused with 503 and Retry-After.
    let (http, scgi) = (t.http(), t.scgi());
    let flood_start = Instant::now();
    let flood_until = flood_start + Duration::from_secs(3);
    let flooders: Vec<_> = (0..4)
        .map(|n| {
            std::thread::spawn(move || {
                let mut waits = Vec::new();
                for i in 0..10_000 {
                    if Instant::now() > flood_until {
                        break;
                    }
                    let asked = Instant::now();
                    let mut s =
                        TcpStream::connect(if (n + i) % 2 == 0 { http } else { scgi }).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    if (n + i) % 2 == 0 {
                        s.write_all(b"GET /ticker HTTP/1.1\r\nHost: x\r\n\r\n")
                    } else {
                        s.write_all(&scgi_get("/ticker", &[]))
                    }
                    .unwrap();
                    let mut raw = Vec::new();
                    s.read_to_end(&mut raw).expect("refused, not held");
                    let (status, head, _) = split_response(&raw);
                    assert_eq!(status, 503, "{head}");
                    assert!(head.contains("Retry-After: "), "{head}");
                    waits.push(asked.elapsed());
                }
                waits
            })
        })
        .collect();
    // Meanwhile the healthy stream gets every tick.
    let mut last = healthy.next_event().unwrap().id();
    while flooders.iter().any(|f| !f.is_finished()) {
        let id = healthy.next_event().expect("healthy stream").id();
        assert_eq!(id, last + 1, "no tick skipped during the flood");
        last = id;
    }
    let flood_took = flood_start.elapsed();
    let mut waits: Vec<Duration> = flooders
        .into_iter()
        .flat_map(|f| f.join().unwrap())
        .collect();
    waits.sort();
    eprintln!(
        "{} refusals in {flood_took:?}: median {:?}, p99 {:?}, max {:?}",
        waits.len(),
        waits[waits.len() / 2],
        waits[waits.len() * 99 / 100],
        waits[waits.len() - 1]
    );
    // A real flood, and one log line for it (they are at least 10 s apart), with the count.
    assert!(waits.len() >= 5000, "only {} refusals", waits.len());
    let log = t.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("reached")).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("1 refused since the last such line"));
    // Recovery: once the held streams go, new ones are served.
    drop(held);
    drop(last_in);
    assert!(wait_until(Duration::from_secs(5), || {
        http_request(t.http(), "GET /metrics HTTP/1.1\r\n\r\n").0 == 200 && t.clients() == 1.0
    }));
    let refused = t.metrics()["tickerd_connections_refused_total{reason=\"full\"}"];
    assert_eq!(refused, waits.len() as f64);
    let mut again = http_stream(t.http(), "/ticker", &[]);
    assert_eq!(again.status, 200);
    assert!(again.next_event().is_some());
    let id = healthy.next_event().unwrap().id();
    assert!(id > last);
}

#[test]
fn out_of_descriptors_with_streams_open_they_flow_and_accept_waits_near_idle() {
    let _heavy = heavy();
    // 600 descriptors and 500 streams: then a flood of 500 more connections finds no
    // descriptor left. --max-clients is above the limit so that accept itself fails.
    let t = Tickerd::start_with_fd_limit(
        &[
            "--tick-ms",
            "50",
            "--max-clients",
            "5000",
            "--heartbeat-s",
            "0",
        ],
        600,
    );
    let mut healthy = http_stream(t.http(), "/ticker", &[]);
    let mut open: Vec<SseReader<TcpStream>> = (0..499)
        .map(|_| http_stream(t.http(), "/ticker", &[]))
        .collect();
    let waiting: Vec<TcpStream> = (0..500)
        .map(|_| {
            let mut s = TcpStream::connect(t.http()).unwrap();
            s.write_all(b"GET /ticker HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(10), || t
            .log()
            .contains("out of file descriptors")),
        "{}",
        t.log()
    );
    // While out of descriptors: the open streams keep receiving every tick, and the loop
    // wakes for ticks and back-off retries only.
    let cpu_before = t.cpu_time();
    let start = Instant::now();
    let mut last = healthy.next_event().unwrap().id();
    while start.elapsed() < Duration::from_secs(3) {
        let id = healthy.next_event().expect("healthy stream").id();
        assert_eq!(id, last + 1, "streams flow while accept backs off");
        last = id;
    }
    let used = t.cpu_time() - cpu_before;
    let share = used.as_secs_f64() / start.elapsed().as_secs_f64();
    eprintln!(
        "out of descriptors with 500 streams at 20 ticks/s: {used:?} CPU in {:?} ({:.1} %)",
        start.elapsed(),
        share * 100.0
    );
    // A spinning loop would be ~100 %; 500 streams at 20 ticks/s cost a few %.
    assert!(share < 0.25, "{:.1} % CPU", share * 100.0);
    // Free 400 descriptors: the waiting connections are served.
    open.truncate(99);
    let mut served = 0;
    for mut s in waiting {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = [0u8; 12];
        if s.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200" {
            served += 1;
        }
        if served == 300 {
            break;
        }
    }
    assert_eq!(
        served, 300,
        "waiting connections served once descriptors free up"
    );
    // One line when it starts and one when it ends, not one per retry.
    assert!(wait_until(Duration::from_secs(2), || t
        .log()
        .contains("accepting again")));
    assert_eq!(t.log().matches("out of file descriptors with").count(), 1);
    let m = t.metrics();
    assert!(m["tickerd_connections_refused_total{reason=\"no_descriptors\"}"] >= 1.0);
    let id = healthy.next_event().unwrap().id();
    assert!(id > last);
}
