//! Records across a live upgrade (SIGUSR2): streams of a quote schema with `fields=` and
//! `max_hz=`, over HTTP and SCGI, are the same connections after it; each still carries
//! only its fields (an update of a field it does not carry sends it nothing, one of a field
//! it carries sends that field alone) and is still paced, and a round that `max_hz` held
//! back when the upgrade came is sent after it; the records, every field's value and id,
//! are what they were; a browser resuming from an id of the old binary gets exactly the
//! fields it missed.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::model::{Expected, Model, Update};
use super::pacing::{assert_paced, record, series};
use super::*;
use crate::support::clients::{install, wait_log_line, Via};

const QUOTE: &str = "last:price,bid:price,ask:price,size:qty,volume:qty,time:time";
const UNIVERSE: &str = "\
AAPL    189.20  bid=189.19  ask=189.21  size=100     volume=0
EURUSD  1.08345 bid=1.08344 ask=1.08346 size=1000000 volume=0 time=1765100000123
USDJPY  151.235 bid=151.233 ask=151.237 size=1000000
";

/// A stream, what it carries, and the id the server resumes it from next.
struct Watched {
    s: SseReader<Sock>,
    chosen: Vec<String>,
    view: Vec<usize>,
    at: u64,
    what: String,
}

impl Watched {
    fn open(via: &Via, model: &Model, symbols: &str, fields: Option<&str>, extra: &str) -> Watched {
        let mut path = format!("/ticker?symbols={symbols}{extra}");
        let view = match fields {
            Some(names) => {
                path.push_str(&format!("&fields={names}"));
                names.split(',').map(|n| model.field(n)).collect()
            }
            None => (0..model.fields.len()).collect(),
        };
        Watched {
            s: open(via, &path, None),
            chosen: symbols.split(',').map(String::from).collect(),
            view,
            at: 0,
            what: format!("{path} over {}", via.name()),
        }
    }

    /// Reads what the model says is due now (nothing: checks that nothing comes).
    fn catch_up(&mut self, model: &Model, what: &str) {
        let due: Vec<Expected> = model.due(&self.chosen, &self.view, self.at);
        if due.is_empty() {
            return assert_quiet(
                &mut self.s,
                Duration::from_millis(400),
                &format!("{}: {what}", self.what),
            );
        }
        for (i, want) in due.iter().enumerate() {
            let e = next(&mut self.s, &self.what);
            want.check(&e, &format!("{}: {what}: event {i} of {due:?}", self.what));
        }
        self.at = due.last().unwrap().id.unwrap();
    }
}

/// Publishes `line` (text) and keeps the model.
fn publish(t: &Tickerd, model: &mut Model, symbol: &str, values: &[(&str, &str)]) {
    let update = Update {
        symbol: symbol.to_string(),
        values: values
            .iter()
            .map(|(f, v)| {
                let f = model.field(f);
                let v = match model.fields[f].ty.as_str() {
                    "int" | "time" => serde_json::Value::from(v.parse::<i64>().unwrap()),
                    _ => serde_json::Value::String(v.to_string()),
                };
                (f, v)
            })
            .collect(),
    };
    let batch = [update];
    let body = model.body(&batch, Lines::Text);
    let p = publish_ok(&Via::Http(t.http()), &body, Lines::Text);
    model.apply(&batch, &p);
}

#[test]
fn streams_of_records_keep_their_fields_and_max_hz_across_an_upgrade() {
    let dir = TempDir::new("records-upgrade");
    let exe = dir.join("tickerd");
    install(Path::new(env!("CARGO_BIN_EXE_tickerd")), &exe);
    let file = dir.join("symbols");
    std::fs::write(&file, UNIVERSE).unwrap();
    let how = Spawn {
        exe: Some(exe.clone()),
        ..Spawn::default()
    };
    let t = Tickerd::start_as(
        &[
            "--tick-ms",
            "0",
            "--heartbeat-s",
            "0",
            "--fields",
            QUOTE,
            "--symbols-file",
            file.to_str().unwrap(),
        ],
        &how,
    );
    let mut model = Model::load(t.http());
    // Fields changed at different ids, so that resuming is per field.
    publish(
        &t,
        &mut model,
        "EURUSD",
        &[("bid", "1.08345"), ("size", "250")],
    );
    publish(
        &t,
        &mut model,
        "USDJPY",
        &[("volume", "12.5"), ("time", "1765100000999")],
    );
    publish(&t, &mut model, "EURUSD", &[("ask", "1.08351")]);
    let before_upgrade = model.last_id;
    publish(
        &t,
        &mut model,
        "AAPL",
        &[("last", "189.25"), ("bid", "189.24")],
    );
    assert_eq!(symbols_text(t.http()), model.listing());
    let (http, scgi) = (Via::Http(t.http()), Via::Scgi(t.scgi()));
    let mut streams = [
        Watched::open(&http, &model, "EURUSD,AAPL", Some("bid,ask"), "&max_hz=5"),
        Watched::open(&scgi, &model, "EURUSD", Some("last,size"), ""),
        Watched::open(&http, &model, "EURUSD,USDJPY", None, "&max_hz=2"),
        Watched::open(
            &scgi,
            &model,
            "USDJPY,EURUSD",
            Some("time,volume"),
            "&max_hz=10",
        ),
    ];
    for s in &mut streams {
        s.catch_up(&model, "the snapshot");
    }
    // A stream whose next round max_hz holds back (4 s) when the upgrade comes.
    let mut held = Watched::open(&scgi, &model, "USDJPY", Some("ask"), "&max_hz=0.25");
    held.catch_up(&model, "the snapshot");
    publish(&t, &mut model, "USDJPY", &[("ask", "151.240")]);
    held.catch_up(&model, "its first round, at once");
    let first_round = Instant::now();
    for s in &mut streams {
        s.catch_up(&model, "before the upgrade");
    }
    publish(&t, &mut model, "USDJPY", &[("ask", "151.241")]);
    for s in &mut streams {
        s.catch_up(&model, "before the upgrade");
    }
    let listing = symbols_text(t.http());
    let fields = get(t.http(), "/fields").body;

    let pid = t.pid();
    t.signal(libc::SIGUSR2);
    wait_log_line(&t, "upgrade: handing", 1, Duration::from_secs(30));
    let handed = first_round.elapsed();
    let line = wait_log_line(&t, "upgrade: took over", 1, Duration::from_secs(60));
    assert_eq!(t.pid(), pid);
    let rest = line.split("upgrade: took over ").nth(1).unwrap();
    let (n, rest) = rest.split_once(" connections (").unwrap();
    let lost = rest.split_once(" lost)").unwrap().0;
    // The five streams (and perhaps a scrape still lingering).
    assert!(n.parse::<usize>().unwrap() >= 5 && lost == "0", "{line}");
    assert_eq!(symbols_text(t.http()), listing, "the records, ids and all");
    assert_eq!(get(t.http(), "/fields").body, fields);
    // The held round comes after the upgrade, on the same connection (the old binary had
    // not sent it: it handed over before the 4 s were up).
    assert!(
        handed < Duration::from_millis(3500),
        "handed over after {handed:?}"
    );
    held.catch_up(&model, "the round held across the upgrade");
    drop(held);

    // Each stream still carries its fields only, on the same connection.
    for (symbol, values) in [
        ("EURUSD", &[("volume", "5")][..]),
        ("EURUSD", &[("bid", "1.08350")]),
        ("EURUSD", &[("last", "1.08349"), ("size", "7")]),
        ("AAPL", &[("size", "101"), ("ask", "189.30")]),
        ("USDJPY", &[("time", "1765100001000")]),
        ("EURUSD", &[("ask", "1.08360"), ("volume", "6")]),
    ] {
        publish(&t, &mut model, symbol, values);
        for s in &mut streams {
            s.catch_up(&model, &format!("after the upgrade, {symbol} {values:?}"));
        }
    }
    // A browser resuming from an id of the old binary gets exactly the fields it missed.
    let chosen: Vec<String> = ["EURUSD", "USDJPY", "AAPL"].map(String::from).to_vec();
    let view: Vec<usize> = ["bid", "size", "time"].map(|f| model.field(f)).to_vec();
    let mut s = open(
        &scgi,
        "/ticker?symbols=EURUSD,USDJPY,AAPL&fields=bid,size,time",
        Some(before_upgrade),
    );
    let due = model.due(&chosen, &view, before_upgrade);
    assert!(due.len() >= 2, "{due:?}");
    for (i, want) in due.iter().enumerate() {
        want.check(
            &next(&mut s, "resumed"),
            &format!("resumed after {before_upgrade}: event {i}"),
        );
    }
    assert_quiet(&mut s, Duration::from_millis(300), "resumed");

    // max_hz still paces: 50 updates a second of EURUSD's bid for 2 s.
    let stop = Arc::new(AtomicBool::new(false));
    let [fast, _, slow, _] = streams;
    let (got_fast, fast_reader) = record(fast.s, stop.clone());
    let (got_slow, slow_reader) = record(slow.s, stop.clone());
    let via = Via::Http(t.http());
    let began = Instant::now();
    let mut last = String::new();
    for i in 0..100u64 {
        let at = began + Duration::from_millis(20 * i);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        last = format!("1.1{i:04}");
        assert_eq!(
            publish_ok(&via, &format!("EURUSD bid={last}"), Lines::Text).applied,
            1
        );
    }
    let ended = Instant::now();
    let current = |got: &Arrivals| {
        series(&got.lock().unwrap(), "EURUSD", "bid")
            .last()
            .map(|(_, v)| v.clone())
    };
    assert!(
        wait_until(Duration::from_secs(3), || current(&got_fast)
            == Some(last.clone())
            && current(&got_slow) == Some(last.clone())),
        "the paced streams' last events are not current"
    );
    std::thread::sleep(Duration::from_millis(600));
    stop.store(true, Ordering::Relaxed);
    fast_reader.join().unwrap();
    slow_reader.join().unwrap();
    let fast = series(&got_fast.lock().unwrap(), "EURUSD", "bid");
    let slow = series(&got_slow.lock().unwrap(), "EURUSD", "bid");
    assert_paced(
        "max_hz=5 after the upgrade",
        &fast,
        Duration::from_millis(200),
        &last,
        ended,
    );
    assert_paced(
        "max_hz=2 after the upgrade",
        &slow,
        Duration::from_millis(500),
        &last,
        ended,
    );
}

type Arrivals = super::pacing::Arrivals;
