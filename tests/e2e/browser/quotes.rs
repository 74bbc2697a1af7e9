//! The quote board: the page over records of fields (`--fields`), each field in a column of
//! its own at its symbol's precision, a change lighting its own cell only, and the records
//! kept across a restart of tickerd. Values are published as `SYM field=value` lines, and
//! read from the page's DOM as a person sees them.

use std::time::Duration;

use serde_json::Value;

use super::board::{age_s, fixed, now_ms, wait_board, Board};
use super::{published_id, screenshot_path, url};
use crate::support::browser::Browser;
use crate::support::*;

/// The demo universe's schema: a quote.
const QUOTE: &str = "last:price,bid:price,ask:price,size:qty,volume:qty,time:time";

/// The fields a quote row shows as text (its `time` shows as an age, which grows).
const SHOWN: [&str; 7] = ["bid", "ask", "spread", "last", "size", "volume", "time"];

/// tickerd with the quote schema over `universe` (a symbols file's lines) and `more` flags,
/// logging requests.
fn quotes(dir: &TempDir, universe: &str, more: &[&str]) -> Tickerd {
    let file = dir.join("symbols");
    std::fs::write(&file, universe).unwrap();
    let file = file.to_str().unwrap();
    let args = [&["--fields", QUOTE, "--symbols-file", file], more].concat();
    Tickerd::start_logging_requests(&args)
}

/// Publishes `body`; returns the id of its last change.
fn publish(t: &Tickerd, body: &str) -> String {
    let (status, answer) = t.publish(body);
    assert_eq!(status, 200, "{body}: {answer}");
    published_id(&answer)
}

#[test]
fn quote_board_lights_only_the_field_that_changed() {
    let dir = TempDir::new("quotes");
    let time = now_ms() - 42_000;
    let t = quotes(
        &dir,
        &format!(
            "AAPL 189.20 bid=189.19 ask=189.21 size=100 volume=5000 time={time}\n\
             MSFT 415.30 bid=415.28 ask=415.32 size=200 volume=7000 time={time}\n"
        ),
        &["--tick-ms", "0"],
    );
    let front = Lighttpd::start(t.scgi());
    let b = Browser::start();
    b.goto(&url(front.addr, "/?symbols=AAPL,MSFT"));
    let first = wait_board(&b, Duration::from_secs(30), "both quotes, live", |s| {
        s.state == "live" && s.rows.len() == 2 && s.text("MSFT", "volume") == "7000"
    });
    assert_eq!(
        first.head,
        ["", "bid", "ask", "spread", "last", "change", "size", "volume", "age", "", ""]
    );
    for (symbol, want) in [
        (
            "AAPL",
            ["189.19", "189.21", "0.02", "189.20", "100", "5000"],
        ),
        (
            "MSFT",
            ["415.28", "415.32", "0.04", "415.30", "200", "7000"],
        ),
    ] {
        for (col, text) in SHOWN.iter().zip(want) {
            assert_eq!(first.text(symbol, col), text, "{symbol} {col}: {first:#?}");
        }
        // The quote's age, from its time, 42 s ago (and a little more on a busy machine).
        let age = age_s(first.text(symbol, "time"));
        assert!((42.0..90.0).contains(&age), "{symbol}: {first:#?}");
    }
    // The snapshot is no change: nothing lit, nothing counted.
    assert_eq!(first.lit(), Vec::<String>::new(), "{first:#?}");
    assert!(first
        .rows
        .iter()
        .all(|r| r.cells.values().all(|c| c.changes == 0)));

    // One field of one symbol: its cell changes and lights, the spread follows, and every
    // other cell keeps its value, unlit.
    let id = publish(&t, "AAPL bid=189.17");
    let seen = wait_board(&b, Duration::from_secs(30), "AAPL's new bid", |s| {
        s.text("AAPL", "bid") == "189.17"
    });
    assert_eq!(seen.id, id, "{seen:#?}");
    assert_eq!(seen.lit(), ["AAPL bid"], "{seen:#?}");
    assert_eq!(seen.cell("AAPL", "bid").class, "field changed fall");
    assert_eq!(seen.cell("AAPL", "bid").changes, 1);
    assert_eq!(seen.text("AAPL", "spread"), "0.04");
    assert_eq!(
        fixed(&seen, "AAPL", &["bid", "spread"]),
        fixed(&first, "AAPL", &["bid", "spread"])
    );
    // Briefly.
    let dark = wait_board(&b, Duration::from_secs(5), "the light going out", |s| {
        s.lit().is_empty()
    });
    assert_eq!(dark.text("AAPL", "bid"), "189.17");

    // The headline: its change and arrow; the others stay as they are.
    publish(&t, "AAPL=190.00");
    let seen = wait_board(&b, Duration::from_secs(30), "AAPL's new last", |s| {
        s.text("AAPL", "last") == "190.00"
    });
    assert_eq!(seen.lit(), ["AAPL last"], "{seen:#?}");
    assert_eq!(seen.cell("AAPL", "last").class, "price changed rise");
    let aapl = seen.row("AAPL");
    assert_eq!(
        (aapl.class.as_str(), aapl.change.as_str()),
        ("up", "▲ +0.80 (0.42%)")
    );
    assert_eq!(seen.row("MSFT").change, "", "{seen:#?}");
    assert_eq!(
        fixed(&seen, "AAPL", &["last"]),
        fixed(&dark, "AAPL", &["last"])
    );

    // A trade: size, volume and time together; the age starts again.
    wait_board(&b, Duration::from_secs(5), "the light going out", |s| {
        s.lit().is_empty()
    });
    let time = now_ms();
    publish(&t, &format!("AAPL size=300 volume=5300 time={time}"));
    let seen = wait_board(&b, Duration::from_secs(30), "AAPL's trade", |s| {
        s.text("AAPL", "volume") == "5300"
    });
    assert_eq!(
        seen.lit(),
        ["AAPL size", "AAPL time", "AAPL volume"],
        "{seen:#?}"
    );
    assert!(age_s(seen.text("AAPL", "time")) < 30.0, "{seen:#?}");
    assert!(age_s(seen.text("MSFT", "time")) >= 42.0, "{seen:#?}");
    assert_eq!(
        (seen.text("AAPL", "last"), seen.text("AAPL", "bid")),
        ("190.00", "189.17")
    );
    b.screenshot(&screenshot_path("quotes-lit.png"));

    // One symbol: the headline large, its chart, the other fields in boxes, lit alike.
    b.click("#rows tr[data-symbol='MSFT'] button.remove");
    let one = wait_board(&b, Duration::from_secs(30), "AAPL alone", |s| {
        s.view == "one" && s.price.text == "190.00" && s.boxes.values().all(|c| !c.lit())
    });
    let boxes: Vec<(&str, &str)> = SHOWN
        .iter()
        .filter(|c| **c != "last" && **c != "time")
        .map(|c| (*c, one.boxes[*c].text.as_str()))
        .collect();
    assert_eq!(
        boxes,
        [
            ("bid", "189.17"),
            ("ask", "189.21"),
            ("spread", "0.04"),
            ("size", "300"),
            ("volume", "5300")
        ],
        "{one:#?}"
    );
    assert!(age_s(&one.boxes["time"].text) < 30.0, "{one:#?}");
    assert_eq!(one.change, "▲ +0.80 (0.42%)");
    assert_eq!(one.points, 2, "189.20 and 190.00: {one:#?}");
    // The chart is the headline's: 20 more lasts, 22 points.
    let mut last = String::new();
    for i in 1..=20 {
        last = format!(
            "{:.2}",
            190.0 + 0.6 * (i as f64 / 3.0).sin() + 0.02 * i as f64
        );
        publish(&t, &format!("AAPL last={last}"));
    }
    let seen = wait_board(&b, Duration::from_secs(30), "the last of 20 lasts", |s| {
        s.price.text == last && !s.price.lit()
    });
    assert_eq!(seen.points, 22, "{seen:#?}");
    // Faded out, too, for the picture.
    let background =
        || b.eval("return getComputedStyle(document.getElementById('price')).backgroundColor;");
    assert!(
        wait_until(Duration::from_secs(5), || background()
            == "rgba(0, 0, 0, 0)"),
        "{}",
        background()
    );
    publish(&t, "AAPL ask=189.25");
    let seen = wait_board(&b, Duration::from_secs(30), "AAPL's new ask, large", |s| {
        s.boxes["ask"].text == "189.25"
    });
    assert_eq!(seen.boxes["ask"].class, "changed rise", "{seen:#?}");
    assert_eq!(seen.boxes["spread"].text, "0.08");
    let lit: Vec<&String> = seen
        .boxes
        .iter()
        .filter(|(_, c)| c.lit())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(lit, ["ask"], "{seen:#?}");
    assert!(!seen.price.lit(), "{seen:#?}");
    assert_eq!((seen.price.text.as_str(), seen.points), (last.as_str(), 22));
    b.screenshot(&screenshot_path("quote.png"));
}

#[test]
fn quote_board_shows_fx_and_crypto_at_their_precision() {
    let dir = TempDir::new("quotes");
    let time = now_ms() - 7_000;
    let t = quotes(
        &dir,
        &format!(
            "EURUSD 1.08345 bid=1.08344 ask=1.08346 size=1000000 volume=1000000 time={time}\n\
             USDJPY 151.234 bid=151.230 ask=151.238 size=500000 volume=500000 time={time}\n\
             BTC-USD 97249.73 bid=97249.23 ask=97250.23 size=0.500 volume=0.500 time={time}\n\
             ETH-BTC 0.05101868 bid=0.05101862 ask=0.05101874 size=1.5 volume=1.5 time={time}\n"
        ),
        &["--tick-ms", "0"],
    );
    let front = Lighttpd::start(t.scgi());
    let b = Browser::start();
    b.goto(&url(
        front.addr,
        "/prices/?symbols=EURUSD,USDJPY,BTC-USD,ETH-BTC",
    ));
    let first = wait_board(&b, Duration::from_secs(30), "four quotes, live", |s| {
        s.state == "live" && s.rows.len() == 4 && s.rows.iter().all(|r| r.cells["last"].text != "—")
    });
    let shown = |s: &Board, symbol: &str| -> Vec<String> {
        ["bid", "ask", "spread", "last"]
            .iter()
            .map(|c| s.text(symbol, c).to_string())
            .collect()
    };
    for (symbol, want) in [
        ("EURUSD", ["1.08344", "1.08346", "0.00002", "1.08345"]),
        ("USDJPY", ["151.230", "151.238", "0.008", "151.234"]),
        ("BTC-USD", ["97249.23", "97250.23", "1.00", "97249.73"]),
        (
            "ETH-BTC",
            ["0.05101862", "0.05101874", "0.00000012", "0.05101868"],
        ),
    ] {
        assert_eq!(shown(&first, symbol), want, "{symbol}: {first:#?}");
    }
    assert_eq!(first.text("BTC-USD", "size"), "0.500");

    // Moves at each one's precision: the changes are exact, at the same precision.
    publish(
        &t,
        "EURUSD last=1.08351 bid=1.08350 ask=1.08353\n\
         USDJPY last=151.229 bid=151.225 ask=151.240\n\
         BTC-USD last=97250.10 bid=97249.90 ask=97250.15\n\
         ETH-BTC last=0.05101860 bid=0.05101855 ask=0.05101870\n",
    );
    let seen = wait_board(&b, Duration::from_secs(30), "the four moved", |s| {
        s.text("ETH-BTC", "last") == "0.05101860"
    });
    for (symbol, want, change) in [
        (
            "EURUSD",
            ["1.08350", "1.08353", "0.00003", "1.08351"],
            "▲ +0.00006 (0.01%)",
        ),
        (
            "USDJPY",
            ["151.225", "151.240", "0.015", "151.229"],
            "▼ −0.005 (0.00%)",
        ),
        (
            "BTC-USD",
            ["97249.90", "97250.15", "0.25", "97250.10"],
            "▲ +0.37 (0.00%)",
        ),
        (
            "ETH-BTC",
            ["0.05101855", "0.05101870", "0.00000015", "0.05101860"],
            "▼ −0.00000008 (0.00%)",
        ),
    ] {
        assert_eq!(shown(&seen, symbol), want, "{symbol}: {seen:#?}");
        assert_eq!(seen.row(symbol).change, change, "{symbol}: {seen:#?}");
    }
    // Each price as tickerd has it, with as many decimals as its symbol.
    let (status, _, body) = http_request(t.http(), "GET /symbols HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 200, "{body}");
    let listing: Value = serde_json::from_str(&body).unwrap();
    for entry in listing.as_array().unwrap() {
        let symbol = entry["symbol"].as_str().unwrap();
        let decimals = entry["decimals"].as_u64().unwrap() as usize;
        for field in ["last", "bid", "ask"] {
            let text = seen.text(symbol, field);
            assert_eq!(text, entry[field].as_str().unwrap(), "{symbol} {field}");
            assert_eq!(
                text.split('.').nth(1).map_or(0, str::len),
                decimals,
                "{symbol} {field}"
            );
        }
    }
    b.screenshot(&screenshot_path("quotes.png"));
}

#[test]
fn quote_board_keeps_its_records_and_gets_what_changed_after_tickerd_restarts() {
    let dir = TempDir::new("quotes");
    let time = now_ms();
    let flags = ["--tick-ms", "0", "--retry-ms", "300"];
    let mut first = quotes(
        &dir,
        &format!(
            "AAPL 189.20 bid=189.19 ask=189.21 size=100 volume=5000 time={time}\n\
             EURUSD 1.08345 bid=1.08344 ask=1.08346 size=1000000 volume=1000000 time={time}\n"
        ),
        &flags,
    );
    let front = Lighttpd::start(first.scgi());
    let b = Browser::start();
    b.goto(&url(front.addr, "/?symbols=AAPL,EURUSD"));
    wait_board(&b, Duration::from_secs(30), "both quotes, live", |s| {
        s.state == "live" && s.rows.len() == 2 && s.text("EURUSD", "volume") == "1000000"
    });
    let id = publish(&first, "AAPL last=190.00");
    let before = wait_board(&b, Duration::from_secs(30), "AAPL's last", |s| {
        s.text("AAPL", "last") == "190.00" && s.lit().is_empty()
    });
    assert_eq!(before.id, id);

    // tickerd goes; the page keeps what it has.
    first.terminate_within(Duration::from_secs(5));
    let port = ReservedPort::at(first.scgi());
    drop(first);
    let down = wait_board(&b, Duration::from_secs(30), "EventSource giving up", |s| {
        s.state == "reconnecting" && s.fallbacks >= 1
    });
    assert_eq!(fixed(&down, "", &[]), fixed(&before, "", &[]), "{down:#?}");

    // It comes back with AAPL's bid and ask and EURUSD's volume moved meanwhile (kept
    // elsewhere, say): the page gets those, lit, and keeps the rest as they were.
    let scgi = port.release().to_string();
    let second = quotes(
        &dir,
        &format!(
            "AAPL 190.00 bid=189.99 ask=190.01 size=100 volume=5000 time={time}\n\
             EURUSD 1.08345 bid=1.08344 ask=1.08346 size=1000000 volume=1250000 time={time}\n"
        ),
        &[&flags[..], &["--scgi", &scgi]].concat(),
    );
    let back = wait_board(
        &b,
        Duration::from_secs(30),
        "the moves made meanwhile",
        |s| {
            s.state == "live"
                && s.text("EURUSD", "volume") == "1250000"
                && s.text("AAPL", "ask") == "190.01"
        },
    );
    assert_eq!(
        back.lit(),
        ["AAPL ask", "AAPL bid", "EURUSD volume"],
        "{back:#?}"
    );
    assert_eq!(
        (back.text("AAPL", "bid"), back.text("AAPL", "spread")),
        ("189.99", "0.02")
    );
    assert_eq!(
        fixed(&back, "AAPL", &["bid", "ask", "spread"])
            .into_iter()
            .filter(|(k, _)| k != "EURUSD volume")
            .collect::<Vec<_>>(),
        fixed(&before, "AAPL", &["bid", "ask", "spread"])
            .into_iter()
            .filter(|(k, _)| k != "EURUSD volume")
            .collect::<Vec<_>>(),
    );
    // It asked from the last id it had, with one long poll, then streamed.
    let requests = second.requests_logged();
    assert_eq!(
        requests.first(),
        Some(&("LongPoll".to_string(), Some(id.parse().unwrap()))),
        "requests to the new tickerd: {requests:?}"
    );
    assert!(
        requests.iter().any(|(kind, _)| kind == "Stream"),
        "{requests:?}"
    );

    // And it is live: the next move is one cell.
    let next = publish(&second, "AAPL last=190.25");
    let seen = wait_board(&b, Duration::from_secs(30), "AAPL's next last", |s| {
        s.text("AAPL", "last") == "190.25" && s.id == next
    });
    assert_eq!(seen.row("AAPL").change, "▲ +0.25 (0.13%)");
    assert!(seen.cell("AAPL", "last").lit(), "{seen:#?}");
    assert_eq!(seen.cell("AAPL", "last").changes, 2, "{seen:#?}");
}
