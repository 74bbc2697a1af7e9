//! Resuming records exactly: a browser that merges records is cut off mid-stream again and
//! again (after k events, mid-write, right after an event without an `id:` line, after
//! live events), comes back with the last id it saw while batches of partial updates go on,
//! long-polls with its fields and last id, and ends with the server's records, field by
//! field. Over tickerd's HTTP and SCGI listeners, and through lighttpd, nginx and Apache
//! from the shipped conf/ files (Last-Event-ID passing through each).

use super::journey::{Journey, Stop};
use super::model::Model;
use super::*;
use crate::support::clients::Via;
use crate::support::fronts::{apache, nginx};

/// Five symbols at four precisions, each a record of three fields.
pub const UNIVERSE: &str =
    "EURUSD=1.08345,USDJPY=151.235,AAPL=189.20,BTC-USD=97250.50,ETH-BTC=0.05123456";
pub const FIELDS: &str = "bid:price,ask:price,size:qty";
/// The browser's symbols: all but BTC-USD, whose updates it must never get.
pub const CHOSEN: [&str; 4] = ["EURUSD", "USDJPY", "ETH-BTC", "AAPL"];

fn start() -> Tickerd {
    Tickerd::start(&[
        "--tick-ms",
        "0",
        "--heartbeat-s",
        "1",
        "--fields",
        FIELDS,
        "--symbols",
        UNIVERSE,
    ])
}

/// A journey of 20 connections and two long polls, connection `r` to `stops[r % len]`
/// (the browser moves between them), each batch published to one of `stops` at random.
pub fn travel(j: &mut Journey, stops: &[&Stop]) {
    for r in 0..16 {
        let on = stops[r % stops.len()];
        if r % 8 == 2 {
            j.stagger(stops[(r + 1) % stops.len()]);
        }
        // Now and then it reads all it is sent, live events too.
        let k = if r % 4 == 3 { usize::MAX } else { r % 5 };
        j.round(on, stops, k);
    }
    let (first, last) = (stops[0], stops[stops.len() - 1]);
    j.long_polls(last, &[first]);
    for r in 0..4 {
        j.round(stops[r % stops.len()], stops, r + 1);
    }
}

/// The hard cases came up: cuts mid-write and right after an event without an id, events
/// without an id, live events.
pub fn assert_met_the_hard_cases(j: &Journey, what: &str) {
    let s = &j.stats;
    eprintln!(
        "{what}: {s:?}, {} events without an id",
        j.browser.without_id
    );
    assert!(s.cut_mid_write >= 3, "{what}: {s:?}");
    assert!(s.cut_after_no_id >= 2, "{what}: {s:?}");
    assert!(j.browser.without_id >= 2, "{what}: {s:?}");
    assert!(s.live_events >= 3, "{what}: {s:?}");
    assert_eq!(s.long_polls, 2, "{what}: {s:?}");
}

/// Two journeys to tickerd `t` by `stream` (published to by `publish`): every field, then
/// bid and size only; under `prefix`.
fn two_journeys(t: &Tickerd, stream: Via, publish: Via, prefixes: [&str; 2], seed: u64) {
    let on = Stop { stream, publish, t };
    let mut all = Journey::new(Model::load(t.http()), &CHOSEN, None, prefixes[0], seed);
    travel(&mut all, &[&on]);
    all.finish(&on, t.http());
    assert_met_the_hard_cases(&all, &format!("every field, {}", on.stream.name()));
    let model = all.model.clone();
    let fields: &[&str] = &["size", "bid"];
    let mut some = Journey::new(model, &CHOSEN, Some(fields), prefixes[1], seed + 1);
    travel(&mut some, &[&on]);
    some.finish(&on, t.http());
    assert_met_the_hard_cases(&some, &format!("size and bid, {}", on.stream.name()));
}

#[test]
fn a_browser_cut_anywhere_resumes_its_records_exactly_over_http() {
    let t = start();
    let http = Via::Http(t.http());
    two_journeys(&t, http.clone(), http, ["", ""], 1);
}

#[test]
fn a_browser_cut_anywhere_resumes_its_records_exactly_over_scgi() {
    let t = start();
    let scgi = Via::Scgi(t.scgi());
    two_journeys(&t, scgi.clone(), scgi, ["", ""], 2);
}

#[test]
fn a_browser_cut_anywhere_resumes_its_records_exactly_through_lighttpd() {
    let t = start();
    let front = Lighttpd::start(t.scgi());
    let (stream, publish) = (Via::Front(front.addr), Via::Http(t.http()));
    two_journeys(&t, stream, publish, ["/prices", ""], 3);
}

#[test]
fn a_browser_cut_anywhere_resumes_its_records_exactly_through_nginx() {
    let t = start();
    let front = nginx::start(t.scgi());
    let (stream, publish) = (Via::Front(front.addr), Via::Front(front.addr));
    two_journeys(&t, stream, publish, ["", "/prices"], 4);
}

#[test]
fn a_browser_cut_anywhere_resumes_its_records_exactly_through_apache() {
    let t = start();
    let front = apache::start(t.scgi());
    let (stream, publish) = (Via::Front(front.addr), Via::Http(t.http()));
    two_journeys(&t, stream, publish, ["/prices", ""], 5);
}
