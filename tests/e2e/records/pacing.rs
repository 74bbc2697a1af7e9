//! `max_hz`: a stream asking for at most N events per second per symbol gets no more while
//! prices move 50 times a second, each event the latest of what it carries, and the last
//! one current; `--max-hz` caps what streams ask. A stream without it, beside them, gets
//! nearly every update: the bound is the pacing's, not the load's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;
use crate::support::clients::Via;

/// Events a stream got after its snapshot, with when each arrived.
pub(super) type Arrivals = Arc<Mutex<Vec<(Instant, SseEvent)>>>;

/// Reads `s` in a thread until `stop`, recording each event's arrival.
pub(super) fn record(mut s: SseReader<Sock>, stop: Arc<AtomicBool>) -> (Arrivals, JoinHandle<()>) {
    let got: Arrivals = Arc::default();
    let sink = got.clone();
    let handle = std::thread::spawn(move || {
        s.socket()
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        while !stop.load(Ordering::Relaxed) {
            if let Some(e) = s.next_event() {
                sink.lock().unwrap().push((Instant::now(), e));
            }
            assert!(!s.eof, "the stream ended");
        }
    });
    (got, handle)
}

/// One field's value in an event, if it carries it.
fn value(e: &SseEvent, symbol: &str, field: &str) -> Option<String> {
    let v: Value = serde_json::from_str(&e.data).unwrap();
    (v["symbol"] == symbol).then(|| v[field].as_str().map(String::from))?
}

/// 50 batches a second for `for_`, each moving A's bid and B's ask to the next cent: the
/// last values. Published over HTTP, each at its time.
fn move_prices(t: &Tickerd, for_: Duration) -> (String, String, Instant) {
    let via = Via::Http(t.http());
    let began = Instant::now();
    let n = (for_.as_millis() / 20) as u64;
    let mut last = (String::new(), String::new());
    for i in 0..n {
        let at = began + Duration::from_millis(20 * i);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        last = (
            format!("{}.{:02}", 10 + i / 100, i % 100),
            format!("{}.{:02}", 20 + i / 100, i % 100),
        );
        let p = publish_ok(
            &via,
            &format!("A bid={}\nB ask={}", last.0, last.1),
            Lines::Text,
        );
        assert_eq!(p.applied, 2);
    }
    (last.0, last.1, Instant::now())
}

/// What a stream got of one symbol's field: arrival times and values.
pub(super) fn series(
    got: &[(Instant, SseEvent)],
    symbol: &str,
    field: &str,
) -> Vec<(Instant, String)> {
    got.iter()
        .filter_map(|(at, e)| Some((*at, value(e, symbol, field)?)))
        .collect()
}

/// At most one event per `gap` (with half a gap, or 150 ms, of slack for scheduling: the
/// reader may get the first event late and the last on time), at least two,
/// values rising (each the latest when it went out, never an older one after a newer), the
/// last `last`, arrived within `gap` and a half of the last publish.
pub(super) fn assert_paced(
    what: &str,
    s: &[(Instant, String)],
    gap: Duration,
    last: &str,
    ended: Instant,
) {
    let n = s.len();
    assert!(n >= 2, "{what}: {n} events");
    let span = s[n - 1].0 - s[0].0;
    let slack = (gap / 2).max(Duration::from_millis(150));
    let most = ((span + slack).as_millis() / gap.as_millis()) as usize + 1;
    assert!(
        n <= most,
        "{what}: {n} events in {span:?}, at most {most} at one per {gap:?}: {:?}",
        s.iter()
            .map(|(at, v)| (*at - s[0].0, v))
            .collect::<Vec<_>>()
    );
    let values: Vec<f64> = s.iter().map(|(_, v)| v.parse().unwrap()).collect();
    assert!(values.windows(2).all(|w| w[0] < w[1]), "{what}: {values:?}");
    assert_eq!(s[n - 1].1, last, "{what}: the last event is current");
    let late = s[n - 1].0.saturating_duration_since(ended);
    assert!(
        late <= gap * 3 / 2,
        "{what}: the last came {late:?} after the last publish"
    );
    eprintln!("{what}: {n} events in {span:?}");
}

/// What streams got while prices moved.
struct Load {
    /// Per stream, its events after the snapshot, with their arrival.
    got: Vec<Vec<(Instant, SseEvent)>>,
    /// A's last bid and B's last ask.
    a: String,
    b: String,
    /// When the last publish was answered.
    ended: Instant,
}

/// Streams on `t` read while prices move for 2 s, until every stream has the last values
/// of what it carries (3 s at most) and half a second more.
fn under_load(t: &Tickerd, paths: &[(&Via, String)]) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for (via, path) in paths {
        let mut s = open(via, path, None);
        // The snapshot first (max_hz does not count it): A's bid and B's.
        next(&mut s, path);
        next(&mut s, path);
        readers.push(record(s, stop.clone()));
    }
    let (a, b, ended) = move_prices(t, Duration::from_secs(2));
    let done = wait_until(Duration::from_secs(3), || {
        readers.iter().zip(paths).all(|((got, _), (_, path))| {
            let got = got.lock().unwrap();
            let current = |symbol: &str, field: &str, want: &str| {
                series(&got, symbol, field).last().map(|(_, v)| v.as_str()) == Some(want)
            };
            current("A", "bid", &a) && (path.contains("fields=bid") || current("B", "ask", &b))
        })
    });
    // A round due after the last could still come: half a second more, then stop.
    std::thread::sleep(Duration::from_millis(600));
    stop.store(true, Ordering::Relaxed);
    let got: Vec<_> = readers
        .into_iter()
        .map(|(got, h)| {
            h.join().unwrap();
            Arc::try_unwrap(got).unwrap().into_inner().unwrap()
        })
        .collect();
    assert!(done, "not every stream got the last values: {got:?}");
    Load { got, a, b, ended }
}

#[test]
fn max_hz_gives_at_most_n_events_a_second_per_symbol_and_the_last_is_current() {
    let _heavy = heavy();
    let t = Tickerd::start(&[
        "--tick-ms",
        "0",
        "--heartbeat-s",
        "0",
        "--fields",
        "bid:price,ask:price",
        "--symbols",
        "A=1.00,B=2.00",
    ]);
    let (http, scgi) = (Via::Http(t.http()), Via::Scgi(t.scgi()));
    let paths = [
        (&http, "/ticker?symbols=A,B&max_hz=2".to_string()),
        (&scgi, "/ticker?symbols=A,B&fields=bid&max_hz=2".to_string()),
        (&http, "/ticker?symbols=A,B&max_hz=4".to_string()),
        (&scgi, "/ticker?symbols=A,B".to_string()),
    ];
    let Load { got, a, b, ended } = under_load(&t, &paths);
    let half = Duration::from_millis(500);
    assert_paced("max_hz=2, A", &series(&got[0], "A", "bid"), half, &a, ended);
    assert_paced("max_hz=2, B", &series(&got[0], "B", "ask"), half, &b, ended);
    assert_paced(
        "max_hz=2 fields=bid, A",
        &series(&got[1], "A", "bid"),
        half,
        &a,
        ended,
    );
    assert!(
        got[1]
            .iter()
            .all(|(_, e)| value(e, "A", "bid").is_some() && !e.data.contains("ask")),
        "a bid stream carries A's bid only: {:?}",
        got[1]
    );
    let quarter = Duration::from_millis(250);
    assert_paced(
        "max_hz=4, A",
        &series(&got[2], "A", "bid"),
        quarter,
        &a,
        ended,
    );
    assert_paced(
        "max_hz=4, B",
        &series(&got[2], "B", "ask"),
        quarter,
        &b,
        ended,
    );
    // Without max_hz: nearly every one of the 100 updates of each.
    for (symbol, field) in [("A", "bid"), ("B", "ask")] {
        let n = series(&got[3], symbol, field).len();
        assert!(n >= 40, "unpaced, {symbol}: only {n} events");
    }
}

#[test]
fn the_max_hz_flag_caps_what_streams_ask() {
    let _heavy = heavy();
    let t = Tickerd::start(&[
        "--tick-ms",
        "0",
        "--heartbeat-s",
        "0",
        "--max-hz",
        "2",
        "--fields",
        "bid:price,ask:price",
        "--symbols",
        "A=1.00,B=2.00",
    ]);
    let (http, scgi) = (Via::Http(t.http()), Via::Scgi(t.scgi()));
    let paths = [
        (&http, "/ticker?symbols=A,B".to_string()),
        (&scgi, "/ticker?symbols=A,B&max_hz=1000".to_string()),
        (&http, "/ticker?symbols=A,B&max_hz=1".to_string()),
    ];
    let Load { got, a, b, ended } = under_load(&t, &paths);
    let half = Duration::from_millis(500);
    for (i, what) in [(0, "no max_hz"), (1, "max_hz=1000")] {
        assert_paced(
            &format!("{what} under --max-hz 2, A"),
            &series(&got[i], "A", "bid"),
            half,
            &a,
            ended,
        );
        assert_paced(
            &format!("{what} under --max-hz 2, B"),
            &series(&got[i], "B", "ask"),
            half,
            &b,
            ended,
        );
    }
    let second = Duration::from_secs(1);
    assert_paced(
        "max_hz=1, A",
        &series(&got[2], "A", "bid"),
        second,
        &a,
        ended,
    );
    assert_paced(
        "max_hz=1, B",
        &series(&got[2], "B", "ask"),
        second,
        &b,
        ended,
    );
}
