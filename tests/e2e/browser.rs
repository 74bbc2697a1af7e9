//! The page as a person sees it: the real headless Chromium (through chromedriver) opens it
//! through a real front-end started from its shipped file in `conf/` (lighttpd, and for some
//! tests nginx and Apache too), in front of the real tickerd. Needs `chromium`,
//! `chromium-driver`, `lighttpd`, `nginx` and `apache2` installed (`.ci/run` installs them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::browser::Browser;
use crate::support::fronts;
use crate::support::leftovers::running;
use crate::support::*;
use fantoccini::key::Key;

mod board;
mod quotes;

/// What the page shows, read from its DOM.
#[derive(Debug, Clone)]
struct Seen {
    price: String,
    id: String,
    state: String,
    /// The card's class: `card up`, `card down` or `card`.
    class: String,
    change: String,
    /// Points of the chart's line.
    points: usize,
    transport: String,
    /// Times EventSource gave up for good and the page reconnected by itself.
    fallbacks: u64,
    /// Events the page has taken in (its model's count).
    received: u64,
    /// `one` (a single symbol, large, with its chart) or `many` (a row each).
    view: String,
    /// The watchlist's rows, in order (one, hidden, in the single view).
    rows: Vec<Row>,
    /// The error line, when shown.
    error: String,
    /// The page's `location.search`.
    search: String,
}

/// One row of the watchlist.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    symbol: String,
    price: String,
    /// The id of the symbol's last update.
    id: String,
    /// `up`, `down` or empty.
    class: String,
    change: String,
    /// Points of its sparkline.
    points: usize,
}

impl Seen {
    fn id(&self) -> u64 {
        self.id
            .parse()
            .unwrap_or_else(|_| panic!("event id shown: {self:?}"))
    }

    fn symbols(&self) -> Vec<&str> {
        self.rows.iter().map(|r| r.symbol.as_str()).collect()
    }

    fn row(&self, symbol: &str) -> &Row {
        self.rows
            .iter()
            .find(|r| r.symbol == symbol)
            .unwrap_or_else(|| panic!("no row {symbol}: {self:?}"))
    }

    /// Whether the page shows a price: the large one, or every row's.
    fn prices_shown(&self) -> bool {
        let positive = |p: &str| p.parse::<f64>().is_ok_and(|p| p > 0.0);
        match self.view.as_str() {
            "one" => positive(&self.price),
            _ => !self.rows.is_empty() && self.rows.iter().all(|r| positive(&r.price)),
        }
    }
}

fn look(b: &Browser) -> Seen {
    let v = b.eval(
        "var $ = function (id) { return document.getElementById(id); };
         var pts = document.querySelector('#chart polyline').getAttribute('points').trim();
         return { price: $('price').textContent, id: $('event-id').textContent,
                  state: $('state').textContent, cls: $('card').className,
                  change: $('change').textContent, points: pts ? pts.split(' ').length : 0,
                  transport: $('transport').textContent, fallbacks: window.tickerd.fallbacks,
                  received: window.tickerd.received, view: $('main').className,
                  error: $('error').hidden ? '' : $('error').textContent,
                  search: location.search,
                  rows: [].map.call(document.querySelectorAll('#rows tr'), function (tr) {
                    var p = tr.querySelector('polyline').getAttribute('points').trim();
                    return { symbol: tr.getAttribute('data-symbol'),
                             price: tr.querySelector('.price').textContent,
                             id: tr.getAttribute('data-id') || '', cls: tr.className,
                             change: tr.querySelector('.change').textContent,
                             points: p ? p.split(' ').length : 0 };
                  }) };",
    );
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    Seen {
        price: s("price"),
        id: s("id"),
        state: s("state"),
        class: s("cls"),
        change: s("change"),
        points: v["points"].as_u64().unwrap() as usize,
        transport: s("transport"),
        fallbacks: v["fallbacks"].as_u64().unwrap(),
        received: v["received"].as_u64().unwrap(),
        view: s("view"),
        error: s("error"),
        search: s("search"),
        rows: v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                Row {
                    symbol: s("symbol"),
                    price: s("price"),
                    id: s("id"),
                    class: s("cls"),
                    change: s("change"),
                    points: r["points"].as_u64().unwrap() as usize,
                }
            })
            .collect(),
    }
}

/// Looks at the page until `cond` holds; panics with what it showed last after `within`.
fn wait_for(b: &Browser, within: Duration, what: &str, cond: impl Fn(&Seen) -> bool) -> Seen {
    let end = Instant::now() + within;
    loop {
        let seen = look(b);
        if cond(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < end,
            "the page did not show {what} in {within:?}; it shows {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for `n` successive new event ids on the page; checks each is larger than the last.
fn watch_ticks(b: &Browser, n: usize, state: &str) -> Vec<Seen> {
    let mut seen = vec![wait_for(b, Duration::from_secs(30), state, |s| {
        s.state == state && s.id.parse::<u64>().is_ok()
    })];
    while seen.len() <= n {
        let last = seen.last().unwrap().id();
        let next = wait_for(b, Duration::from_secs(30), "a new event id", |s| {
            s.id.parse::<u64>().is_ok_and(|id| id != last)
        });
        assert!(
            next.id() > last,
            "ids must increase: {seen:?} then {next:?}"
        );
        assert_eq!(next.state, state, "{next:?}");
        assert!(next.prices_shown(), "{next:?}");
        seen.push(next);
    }
    seen
}

/// The id a publish answer gives: its first line (the counts follow).
fn published_id(answer: &str) -> String {
    answer.lines().next().unwrap_or_default().trim().to_string()
}

fn url(front: SocketAddr, path: &str) -> String {
    format!("http://{front}{path}")
}

/// Where the run leaves its screenshots: `target/screenshots/`.
fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots")
        .join(name)
}

#[test]
fn page_shows_each_published_price_with_its_colour_at_the_root_and_under_the_prefix() {
    let t = Tickerd::start(&["--tick-ms", "0"]);
    let front = Lighttpd::start(t.scgi());
    let b = Browser::start();
    // Not 100.00, the price TICK starts at: a publish that changes nothing is no event.
    for (path, base) in [("/", 101.0), ("/prices/", 200.0)] {
        b.goto(&url(front.addr, path));
        let current = t.current_id().to_string();
        let first = wait_for(&b, Duration::from_secs(30), "live", |s| {
            s.state == "live" && s.id == current
        });
        let mut last_id = first.id();
        let mut last_points = first.points;
        let mut last_price = None;
        for step in [0.0, 1.5, 0.25, -2.0, -0.5, 3.0] {
            let price = format!("{:.2}", base + step);
            let (status, answer) = t.publish(&price);
            assert_eq!(status, 200, "{answer}");
            let id = published_id(&answer);
            let seen = wait_for(&b, Duration::from_secs(30), &price, |s| {
                s.price == price && s.id == id
            });
            assert!(seen.id() > last_id, "{path}: {seen:?} after id {last_id}");
            assert!(seen.points > last_points, "{path}: chart: {seen:?}");
            let now: f64 = price.parse().unwrap();
            if let Some(before) = last_price {
                let (class, arrow) = if now > before {
                    ("card up", '▲')
                } else {
                    ("card down", '▼')
                };
                assert_eq!(seen.class, class, "{path}: {before} → {now}: {seen:?}");
                assert!(seen.change.starts_with(arrow), "{path}: {seen:?}");
            }
            (last_id, last_points, last_price) = (seen.id(), seen.points, Some(now));
        }
    }
    // Faster than the screen refreshes: the page may paint some of these together, but it
    // ends on the last one, and every event it took in is on the chart, up to the 120 it
    // keeps. Bursts of 40 until the chart has overflowed.
    let before = look(&b);
    let mut burst = 0;
    let seen = loop {
        burst += 1;
        let mut last = (String::new(), String::new());
        for i in 0..40 {
            let price = format!("{:.2}", 200.0 + 3.0 * ((burst * 40 + i) as f64 / 4.0).sin());
            let (status, answer) = t.publish(&price);
            assert_eq!(status, 200);
            last = (price, published_id(&answer));
        }
        let seen = wait_for(&b, Duration::from_secs(30), "the last of a burst", |s| {
            s.price == last.0 && s.id == last.1
        });
        let taken = (seen.received - before.received) as usize;
        assert_eq!(
            seen.points,
            (before.points + taken).min(120),
            "{before:?} then {seen:?}"
        );
        if before.points + taken > 120 || burst == 10 {
            break seen;
        }
    };
    assert_eq!(seen.points, 120, "the chart keeps the last 120: {seen:?}");
}

#[test]
fn page_follows_the_ticks_through_lighttpd_and_is_screenshotted() {
    let t = Tickerd::start(&["--tick-ms", "100"]);
    let front = Lighttpd::start(t.scgi());
    let b = Browser::start();
    b.goto(&url(front.addr, "/prices/"));
    let seen = watch_ticks(&b, 5, "live");
    let last = seen.last().unwrap();
    assert!(last.points >= 5, "chart: {last:?}");
    // The colour follows the arrow of the change shown.
    let expected = match last.change.chars().next() {
        Some('▲') => "card up",
        Some('▼') => "card down",
        _ => "card",
    };
    assert_eq!(last.class, expected, "{last:?}");
    assert_eq!(last.transport, "EventSource");
    // Let the chart fill a little for the picture.
    wait_for(&b, Duration::from_secs(60), "a fuller chart", |s| {
        s.points >= 80
    });
    b.screenshot(&screenshot_path("page.png"));
}

/// A short retry makes EventSource's own reconnect hit the front-end's error answer quickly,
/// so the page must take over (EventSource never retries after an error status).
const RESTART_ARGS: [&str; 4] = ["--tick-ms", "200", "--retry-ms", "300"];

#[test]
fn page_reconnects_by_itself_when_tickerd_restarts_on_the_same_port() {
    let first = Tickerd::start(&RESTART_ARGS);
    let front = Lighttpd::start(first.scgi());
    let shot = Some("page-reconnecting.png");
    reconnects_by_itself(first, front.addr, 503, shot, "/", &[]);
}

#[test]
fn page_reconnects_by_itself_behind_nginx() {
    let first = Tickerd::start(&RESTART_ARGS);
    let front = fronts::nginx::start(first.scgi());
    reconnects_by_itself(first, front.addr, 502, None, "/", &[]);
}

#[test]
fn page_reconnects_by_itself_behind_apache() {
    let first = Tickerd::start(&RESTART_ARGS);
    let front = fronts::apache::start(first.scgi());
    reconnects_by_itself(first, front.addr, 503, None, "/", &[]);
}

/// The page at `page`, open at `front` in front of `first` (started with `RESTART_ARGS`
/// and `more_args`): stop `first` (the front-end answers `down_status` meanwhile), start a
/// new tickerd with the same flags on the same SCGI port; the page shows `reconnecting`,
/// then comes back `live` by itself with ids still increasing, and its first request to
/// the new instance carried the last id it showed. Returns the page's look when it left,
/// and the new tickerd with the browser, for more checks.
fn reconnects_by_itself(
    mut first: Tickerd,
    front: SocketAddr,
    down_status: u16,
    screenshot: Option<&str>,
    page: &str,
    more_args: &[&str],
) -> (Seen, Tickerd, Browser) {
    let b = Browser::start();
    b.goto(&url(front, page));
    let before = watch_ticks(&b, 2, "live");
    first.terminate_within(Duration::from_secs(5));
    // Hold the port while tickerd is away, so that no other test's socket takes it.
    let port = ReservedPort::at(first.scgi());
    drop(first);

    let down = wait_for(&b, Duration::from_secs(30), "EventSource giving up", |s| {
        s.state == "reconnecting" && s.fallbacks >= 1
    });
    let last_id = before.last().unwrap().id();
    assert!(down.id() >= last_id, "{down:?}");
    assert!(down.prices_shown(), "{down:?}");
    if let Some(name) = screenshot {
        b.screenshot(&screenshot_path(name));
    }
    // What the page was answered meanwhile.
    let answer = get(front, "/ticker");
    assert_eq!(answer.status, down_status, "{answer:?}");

    let scgi = port.release().to_string();
    let args = [&RESTART_ARGS[..], more_args, &["--scgi", &scgi]].concat();
    let second = Tickerd::start_logging_requests(&args);
    let back = watch_ticks(&b, 3, "live");
    assert!(back[0].id() > down.id(), "{down:?} then {back:?}");
    // The page caught up with one long poll carrying the last id it showed, then streamed.
    let requests = second.requests_logged();
    assert_eq!(
        requests.first(),
        Some(&("LongPoll".to_string(), Some(down.id()))),
        "requests to the new tickerd: {requests:?}"
    );
    assert!(
        requests.iter().any(|(kind, _)| kind == "Stream"),
        "requests to the new tickerd: {requests:?}"
    );
    (down, second, b)
}

#[test]
fn page_streams_and_long_polls_behind_nginx() {
    streams_and_long_polls(fronts::nginx::start);
}

#[test]
fn page_streams_and_long_polls_behind_apache() {
    streams_and_long_polls(fronts::apache::start);
}

/// Under `/prices/` behind `start`'s front-end: the page streams, and with `?longpoll` it
/// long-polls, each poll carrying the last id it showed.
fn streams_and_long_polls(start: fronts::checks::Start) {
    let t = Tickerd::start_logging_requests(&["--tick-ms", "200"]);
    let front = start(t.scgi());
    let b = Browser::start();
    b.goto(&url(front.addr, "/prices/"));
    let seen = watch_ticks(&b, 3, "live");
    assert_eq!(seen.last().unwrap().transport, "EventSource");
    drop(b);
    let streamed = t.requests_logged().len();
    let b = Browser::start();
    b.goto(&url(front.addr, "/prices/?longpoll"));
    let polled = watch_ticks(&b, 3, "long-polling");
    assert_eq!(polled.last().unwrap().transport, "long polling (?longpoll)");
    assert_long_polled(&t.requests_logged()[streamed..], &polled);
}

#[test]
fn page_long_polls_when_asked_with_longpoll() {
    let t = Tickerd::start_logging_requests(&["--tick-ms", "250"]);
    let front = Lighttpd::start(t.scgi());
    let b = Browser::start();
    b.goto(&url(front.addr, "/prices/?longpoll"));
    let seen = watch_ticks(&b, 4, "long-polling");
    let last = seen.last().unwrap();
    assert_eq!(last.transport, "long polling (?longpoll)");
    assert!(last.points >= 4, "{last:?}");
    b.screenshot(&screenshot_path("page-longpoll.png"));
    assert_long_polled(&t.requests_logged(), &seen);
}

#[test]
fn page_long_polls_where_the_browser_has_no_event_source() {
    let t = Tickerd::start_logging_requests(&["--tick-ms", "250"]);
    let front = Lighttpd::start(t.scgi());
    let b = Browser::start();
    // Before any of the page's scripts, as in a browser that never had EventSource.
    b.cdp(
        "Page.addScriptToEvaluateOnNewDocument",
        serde_json::json!({ "source": "delete window.EventSource;" }),
    );
    b.goto(&url(front.addr, "/"));
    assert_eq!(b.eval("return typeof window.EventSource;"), "undefined");
    let seen = watch_ticks(&b, 4, "long-polling");
    assert_eq!(
        seen.last().unwrap().transport,
        "long polling (no EventSource)"
    );
    assert_long_polled(&t.requests_logged(), &seen);
}

/// The page's requests were all long polls (tickerd counts one only when it carries
/// `X-Event-Source-Simulate`), and every id the page showed went back to tickerd as the
/// next poll's `Last-Event-ID`.
fn assert_long_polled(requests: &[(String, Option<u64>)], seen: &[Seen]) {
    assert!(
        requests.iter().all(|(kind, _)| kind == "LongPoll"),
        "{requests:?}"
    );
    // The last id shown may not have been sent yet.
    for shown in &seen[..seen.len() - 1] {
        assert!(
            requests.contains(&("LongPoll".to_string(), Some(shown.id()))),
            "id {} shown, never sent back: {requests:?}",
            shown.id()
        );
    }
}

#[test]
fn browser_processes_end_with_the_test() {
    let b = Browser::start();
    b.goto("about:blank");
    let running = b.processes();
    for name in ["chromedriver", "chromium"] {
        assert!(
            running.iter().any(|(_, n)| n == name),
            "{name} among the browser's processes: {running:?}"
        );
    }
    let find = b.process_finder();
    drop(b);
    let gone = wait_until(Duration::from_secs(10), || find().is_empty());
    assert!(gone, "left behind: {:?}", find());
}

#[test]
fn what_a_killed_run_left_is_ended_by_the_next_run() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    // A run killed before its Drops (SIGKILL, Ctrl-C) leaves Chromium's processes naming
    // its profile, nginx's workers naming nothing (the pid of their group's leader, the
    // master, is in the scratch dir's nginx.pid), and the scratch dirs. Stand-ins for each,
    // named after a test process that is gone:
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let scratch = |what: &str| {
        let mut name = TempDir::prefix(what).into_os_string();
        name.push(format!("{dead}-0"));
        let dir = PathBuf::from(name);
        std::fs::create_dir_all(dir.join("Default")).unwrap();
        dir
    };
    let profile = scratch("chromium");
    let chromium = stand_in(&profile.join("Default/missing"));
    let nginx_dir = scratch("nginx");
    let me = std::process::id();
    let mut master = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tail --pid={me} -F /nonexistent >/dev/null 2>&1 & echo $!; wait"
        ))
        .process_group(0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(master.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let worker: u32 = line.trim().parse().unwrap();
    std::fs::write(nginx_dir.join("nginx.pid"), format!("{}\n", master.id())).unwrap();
    master.kill().unwrap();
    master.wait().unwrap();
    // And what this live run uses, which must be spared.
    let ours = TempDir::new("chromium");
    let live = stand_in(&ours.join("missing"));

    crate::support::leftovers::end_what_dead_runs_left();
    for (what, pid) in [("Chromium", chromium.id()), ("nginx worker", worker)] {
        let ended = wait_until(Duration::from_secs(5), || !running(pid as i32));
        assert!(ended, "a dead run's {what} was left running");
    }
    assert!(
        !profile.exists() && !nginx_dir.exists(),
        "a dead run's scratch dirs were left"
    );
    assert!(running(live.id() as i32), "a live run's process was ended");
    assert!(ours.exists());
    for mut child in [chromium, live] {
        let _ = child.kill();
        child.wait().unwrap();
    }
}

/// A process whose command line names `path`; it ends with this test process at the latest.
fn stand_in(path: &Path) -> std::process::Child {
    std::process::Command::new("tail")
        .arg(format!("--pid={}", std::process::id()))
        .arg("-F")
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn an_up_to_date_page_streams_again_at_once_after_a_refusal() {
    // The page's reconnect is refused (tickerd full: 503), so EventSource gives up; once a
    // slot frees, the page's catch-up poll is held by tickerd, because the page already has
    // the current event and no tick comes. The page must stream again at once, not after
    // the long poll's 60 s.
    let t = Tickerd::start(&[
        "--tick-ms",
        "0",
        "--retry-ms",
        "300",
        "--max-clients",
        "6",
        "--long-poll-s",
        "60",
        "--heartbeat-s",
        "0",
    ]);
    let mut front = Lighttpd::start(t.scgi());
    let b = Browser::start();
    b.goto(&url(front.addr, "/"));
    wait_for(&b, Duration::from_secs(30), "live", |s| s.state == "live");
    let (status, id) = t.publish("123.45");
    assert_eq!(status, 200);
    let id = published_id(&id);
    wait_for(&b, Duration::from_secs(30), "the published price", |s| {
        s.price == "123.45" && s.id == id
    });
    // lighttpd dies: the stream breaks, its slot frees, and EventSource retries against a
    // closed port. Fill tickerd (no /metrics from here on: it would be refused too).
    front.kill();
    assert!(wait_until(Duration::from_secs(5), || t.clients() == 0.0));
    let mut fillers = Vec::new();
    loop {
        let filler = http_stream(t.http(), "/ticker", &[]);
        if filler.status == 503 {
            break;
        }
        assert_eq!(filler.status, 200);
        fillers.push(filler);
        assert!(fillers.len() <= 6, "never full");
    }
    front.restart();
    let refused = wait_for(&b, Duration::from_secs(30), "refused, given up", |s| {
        s.fallbacks >= 1 && s.state == "reconnecting"
    });
    // Two slots: one for the held catch-up poll, one for the new stream.
    fillers.truncate(fillers.len() - 2);
    let seen = wait_for(&b, Duration::from_secs(25), "live again", |s| {
        s.state == "live" && s.transport == "EventSource"
    });
    assert_eq!(
        (seen.price.as_str(), seen.id.as_str()),
        ("123.45", id.as_str())
    );
    assert!(seen.fallbacks >= refused.fallbacks);
    // And it is a live stream: the next price arrives.
    drop(fillers);
    let mut next = String::new();
    assert!(wait_until(Duration::from_secs(5), || {
        let (status, answer) = t.publish("124.00");
        next = published_id(&answer);
        status == 200 // 503 until tickerd has seen the fillers go
    }));
    wait_for(&b, Duration::from_secs(30), "the next price", |s| {
        s.price == "124.00" && s.id == next && s.state == "live"
    });
}

#[test]
fn a_page_refused_by_a_full_tickerd_asks_again_only_after_its_retry_after() {
    // tickerd full answers 503 with `Retry-After: 5`. Without it the page would come back
    // after its own backoff: 0.5–1.5 s, then 1–3 s.
    let t = Tickerd::start_logging_requests(&[
        "--tick-ms",
        "0",
        "--max-clients",
        "2",
        "--heartbeat-s",
        "0",
        "--long-poll-s",
        "1",
    ]);
    let front = Lighttpd::start(t.scgi());
    let b = Browser::start();
    b.goto(&url(front.addr, "/?longpoll"));
    wait_for(&b, Duration::from_secs(30), "long-polling", |s| {
        s.state == "long-polling"
    });
    // The page's poll is held 1 s at a time (no ticks) and then asked again at once. Take
    // both slots from it over the HTTP listener, so its next poll (over SCGI, through
    // lighttpd) is refused.
    let scgi_refusals = || {
        t.log()
            .lines()
            .filter(|l| l.contains(": refused (503): full") && l.contains("scgi#"))
            .count()
    };
    let mut held = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while held.len() < 2 {
        assert!(Instant::now() < end, "never took both slots from the page");
        let s = http_stream(t.http(), "/ticker", &[]);
        if s.status == 200 {
            held.push(s);
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // When each of the page's polls was refused, as tickerd's log shows them.
    let mut times = Vec::new();
    let end = Instant::now() + Duration::from_secs(40);
    while times.len() < 3 && Instant::now() < end {
        let new = scgi_refusals() - times.len();
        times.extend(std::iter::repeat_n(Instant::now(), new));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        times.len(),
        3,
        "the page's refused polls in 40 s: {}",
        t.log()
    );
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        // At least 5 s, less the log's way to the test on a busy machine; without
        // Retry-After the first gap is at most 1.5 s.
        assert!(gap >= Duration::from_secs(4), "asked again after {gap:?}");
    }
    assert_eq!(look(&b).state, "reconnecting");
    // Slots free: the page is served at its next poll.
    drop(held);
    let mut id = String::new();
    assert!(wait_until(Duration::from_secs(5), || {
        let (status, answer) = t.publish("99.50");
        id = published_id(&answer);
        status == 200
    }));
    wait_for(&b, Duration::from_secs(30), "the price, long-polled", |s| {
        s.price == "99.50" && s.id == id && s.state == "long-polling"
    });
}

/// A universe of five, with their first prices.
const FIVE: &str = "AAPL=189.20,MSFT=415.30,NVDA=121.70,AMZN=178.20,TSLA=242.10";

/// Each symbol's price and last update id, from tickerd's `/symbols`.
fn listing(t: &Tickerd) -> std::collections::HashMap<String, (String, String)> {
    let (status, _, body) = http_request(t.http(), "GET /symbols HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["symbol"].as_str().unwrap().to_string();
            let price = e["price"].as_str().unwrap().to_string();
            (name, (price, e["id"].as_u64().unwrap().to_string()))
        })
        .collect()
}

/// Publishes `body` (`SYM=PRICE` lines); returns each symbol's (price, id) afterwards.
fn publish(t: &Tickerd, body: &str) -> std::collections::HashMap<String, (String, String)> {
    let (status, answer) = t.publish(body);
    assert_eq!(status, 200, "{answer}");
    listing(t)
}

/// Whether the page shows each of `symbols` with the price and id tickerd has for it.
fn shows(
    s: &Seen,
    want: &std::collections::HashMap<String, (String, String)>,
    symbols: &[&str],
) -> bool {
    symbols.iter().all(|sym| {
        let (price, id) = &want[*sym];
        s.rows
            .iter()
            .any(|r| r.symbol == *sym && &r.price == price && &r.id == id)
    })
}

/// Stream requests for `n` symbols that tickerd has logged.
fn streams_of(t: &Tickerd, kind: &str, n: usize) -> usize {
    let needle = format!("[{n} symbols]: {kind},");
    t.log().lines().filter(|l| l.contains(&needle)).count()
}

#[test]
fn watchlist_adds_and_removes_symbols_and_the_url_follows() {
    let t = Tickerd::start_logging_requests(&["--tick-ms", "0", "--symbols", FIVE]);
    let front = Lighttpd::start(t.scgi());
    let b = Browser::start();
    // Under the prefix, lower case, with a parameter of somebody else's that must stay.
    b.goto(&url(front.addr, "/prices/?symbols=aapl,msft&keep=1"));
    let now = listing(&t);
    let seen = wait_for(&b, Duration::from_secs(30), "AAPL and MSFT, live", |s| {
        s.state == "live" && s.symbols() == ["AAPL", "MSFT"] && shows(s, &now, &["AAPL", "MSFT"])
    });
    assert_eq!(seen.view, "many", "{seen:?}");
    assert_eq!(streams_of(&t, "Stream", 2), 1, "{}", t.log());

    // Add NVDA as a person would: the first letters, a completion from /symbols, Enter.
    b.type_into("#add-symbol", "n");
    let options = || {
        b.eval("return [].map.call(document.querySelectorAll('#symbol-options option'), function (o) { return o.value; });")
    };
    assert!(
        wait_until(Duration::from_secs(10), || options()
            == serde_json::json!(["NVDA"])),
        "completions for \"n\": {}",
        options()
    );
    b.type_into("#add-symbol", &format!("vda{}", &*Key::Enter));
    let seen = wait_for(&b, Duration::from_secs(30), "NVDA added", |s| {
        s.symbols() == ["AAPL", "MSFT", "NVDA"] && shows(s, &now, &["AAPL", "MSFT", "NVDA"])
    });
    assert_eq!(seen.search, "?symbols=AAPL,MSFT,NVDA&keep=1", "{seen:?}");
    assert_eq!(
        b.eval("return document.getElementById('add-symbol').value;"),
        ""
    );
    assert!(wait_until(Duration::from_secs(10), || streams_of(
        &t, "Stream", 3
    ) == 1));

    // Updates for the three show, each with its id; AMZN and TSLA are not streamed to the
    // page at all (tickerd streams it three symbols), and MSFT's update, published last,
    // shows that nothing else came before it (events come in id order).
    let before = wait_for(&b, Duration::from_secs(30), "live", |s| s.state == "live");
    publish(&t, "AAPL=190.00\nNVDA=120.00\nAMZN=180.00\nTSLA=250.00");
    let now = publish(&t, "MSFT=416.00");
    let seen = wait_for(
        &b,
        Duration::from_secs(30),
        "AAPL, NVDA and MSFT updated",
        |s| shows(s, &now, &["AAPL", "MSFT", "NVDA"]),
    );
    assert_eq!(
        seen.received - before.received,
        3,
        "{before:?} then {seen:?}"
    );
    assert_eq!(seen.symbols(), ["AAPL", "MSFT", "NVDA"]);
    let (aapl, nvda) = (seen.row("AAPL"), seen.row("NVDA"));
    assert_eq!(
        (aapl.class.as_str(), nvda.class.as_str()),
        ("up", "down"),
        "{seen:?}"
    );
    assert!(
        aapl.change.starts_with('▲') && nvda.change.starts_with('▼'),
        "{seen:?}"
    );
    assert!(aapl.points >= 2 && nvda.points >= 2, "sparklines: {seen:?}");
    assert_eq!(seen.id, now["MSFT"].1, "the newest id: {seen:?}");

    // An unknown name and a malformed one: said on the page, and nothing else changes.
    b.type_into("#add-symbol", &format!("zzzz{}", &*Key::Enter));
    let seen = wait_for(&b, Duration::from_secs(10), "the unknown symbol", |s| {
        s.error.contains("ZZZZ")
    });
    assert_eq!(seen.error, "Unknown symbol: ZZZZ");
    assert_eq!(seen.search, "?symbols=AAPL,MSFT,NVDA&keep=1");
    b.clear("#add-symbol");
    b.type_into("#add-symbol", &format!("b@d{}", &*Key::Enter));
    let seen = wait_for(&b, Duration::from_secs(10), "the bad name", |s| {
        s.error.starts_with("Not a symbol: B@D")
    });
    assert_eq!(seen.symbols(), ["AAPL", "MSFT", "NVDA"]);
    let now = publish(&t, "AAPL=191.00");
    wait_for(&b, Duration::from_secs(30), "AAPL still updating", |s| {
        s.state == "live" && shows(s, &now, &["AAPL"])
    });
    assert_eq!(streams_of(&t, "Stream", 3), 1, "{}", t.log());

    // Remove MSFT: the stream is reopened for two, MSFT stops, the URL follows.
    b.click("#rows tr[data-symbol='MSFT'] button.remove");
    let seen = wait_for(&b, Duration::from_secs(10), "MSFT removed", |s| {
        s.symbols() == ["AAPL", "NVDA"]
    });
    assert_eq!(seen.search, "?symbols=AAPL,NVDA&keep=1");
    assert!(wait_until(Duration::from_secs(10), || streams_of(
        &t, "Stream", 2
    ) == 2));
    let before = wait_for(&b, Duration::from_secs(30), "live", |s| s.state == "live");
    publish(&t, "MSFT=420.00");
    let now = publish(&t, "NVDA=121.00");
    let seen = wait_for(&b, Duration::from_secs(30), "NVDA updated", |s| {
        shows(s, &now, &["NVDA", "AAPL"])
    });
    assert_eq!(seen.received - before.received, 1, "only NVDA: {seen:?}");
    assert_eq!(seen.symbols(), ["AAPL", "NVDA"]);

    // Down to one: the large view, with its chart.
    b.click("#rows tr[data-symbol='AAPL'] button.remove");
    let now = publish(&t, "NVDA=122.50");
    let seen = wait_for(&b, Duration::from_secs(30), "NVDA alone, large", |s| {
        s.view == "one" && s.price == "122.50" && s.id == now["NVDA"].1
    });
    assert_eq!(seen.search, "?symbols=NVDA&keep=1");
    assert_eq!(seen.class, "card up", "{seen:?}");
    assert!(seen.change.starts_with('▲'), "{seen:?}");
    assert!(seen.points >= 2, "the chart keeps NVDA's ticks: {seen:?}");
    let symbol = b.eval("return document.getElementById('symbol').textContent;");
    assert_eq!(symbol, "NVDA");
}

#[test]
fn watchlist_drops_unknown_symbols_named_in_its_url() {
    let t = Tickerd::start(&["--tick-ms", "0", "--symbols", FIVE]);
    let front = Lighttpd::start(t.scgi());
    let b = Browser::start();
    // tickerd refuses the whole list (404, naming NOPE): the page says so, drops it, and
    // streams the rest.
    b.goto(&url(front.addr, "/?symbols=TSLA,NOPE,AMZN"));
    let now = listing(&t);
    let seen = wait_for(&b, Duration::from_secs(30), "TSLA and AMZN, live", |s| {
        s.state == "live" && s.symbols() == ["TSLA", "AMZN"] && shows(s, &now, &["TSLA", "AMZN"])
    });
    assert_eq!(seen.error, "Unknown symbol: NOPE");
    assert_eq!(seen.search, "?symbols=TSLA,AMZN");
    assert!(
        seen.fallbacks >= 1,
        "EventSource gave up on the 404: {seen:?}"
    );
}

#[test]
fn watchlist_shows_the_first_sixteen_of_the_universe_and_is_screenshotted() {
    let universe = "AAPL=189.20,MSFT=415.30,NVDA=121.70,AMZN=178.20,GOOGL=164.90,META=502.10,\
                    TSLA=242.10,BRK.B=412.80,JPM=198.40,V=276.30,XOM=118.20,KO=62.10,PEP=171.40,\
                    WMT=68.30,DIS=112.90,NFLX=688.20,INTC=31.40,IBM=204.60";
    let t = Tickerd::start(&["--tick-ms", "100", "--symbols", universe]);
    let front = Lighttpd::start(t.scgi());
    let b = Browser::start();
    b.goto(&url(front.addr, "/"));
    let sixteen = [
        "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "BRK.B", "JPM", "V", "XOM", "KO",
        "PEP", "WMT", "DIS", "NFLX",
    ];
    let seen = wait_for(
        &b,
        Duration::from_secs(60),
        "sixteen rows with sparklines",
        |s| s.state == "live" && s.symbols() == sixteen && s.rows.iter().all(|r| r.points >= 60),
    );
    assert_eq!(seen.view, "many");
    assert_eq!(seen.search, "", "the URL changes only when the list does");
    for row in &seen.rows {
        // The colour follows the arrow of the change shown.
        let class = match row.change.chars().next() {
            Some('▲') => "up",
            Some('▼') => "down",
            _ => "",
        };
        assert_eq!(row.class, class, "{row:?}");
        assert!(row.price.parse::<f64>().unwrap() > 0.0, "{row:?}");
    }
    b.screenshot(&screenshot_path("watchlist.png"));
}

#[test]
fn watchlist_resumes_from_its_last_id_after_tickerd_restarts() {
    let universe = ["--symbols", "AAPL,MSFT,NVDA"];
    let first = Tickerd::start(&[&RESTART_ARGS[..], &universe].concat());
    let front = Lighttpd::start(first.scgi());
    let page = "/?symbols=AAPL,NVDA";
    let (down, second, b) = reconnects_by_itself(first, front.addr, 503, None, page, &universe);
    assert_eq!(down.symbols(), ["AAPL", "NVDA"]);
    // The catch-up poll asked for the page's two symbols after the newest id it showed,
    // which is the id of one of them.
    let catch_up = format!("[2 symbols]: LongPoll, Last-Event-ID Some({})", down.id);
    assert!(second.log().contains(&catch_up), "{}", second.log());
    assert!(down.rows.iter().any(|r| r.id == down.id), "{down:?}");
    // Both rows move on, with ids from the new tickerd.
    let seen = wait_for(&b, Duration::from_secs(30), "both symbols updated", |s| {
        s.rows
            .iter()
            .all(|r| r.id.parse::<u64>().is_ok_and(|id| id > down.id()))
    });
    assert_eq!(seen.symbols(), ["AAPL", "NVDA"]);
    assert_eq!(seen.state, "live");
}

#[test]
fn watchlist_long_polls_with_symbols() {
    let t = Tickerd::start_logging_requests(&["--tick-ms", "250", "--symbols", "AAPL,MSFT,NVDA"]);
    let front = Lighttpd::start(t.scgi());
    let b = Browser::start();
    b.goto(&url(front.addr, "/prices/?symbols=MSFT,NVDA&longpoll"));
    let seen = watch_ticks(&b, 4, "long-polling");
    let last = seen.last().unwrap();
    assert_eq!(last.transport, "long polling (?longpoll)");
    assert_eq!(last.symbols(), ["MSFT", "NVDA"]);
    // Each answer carries both symbols' moves (a tick moves every symbol).
    assert!(last.rows.iter().all(|r| r.points >= 4), "{last:?}");
    let requests = t.requests_logged();
    assert_long_polled(&requests, &seen);
    assert_eq!(streams_of(&t, "LongPoll", 2), requests.len(), "{}", t.log());

    // A symbol added while long-polling: its price comes in the next answer (a poll
    // without Last-Event-ID: the snapshot), then polls carry ids again.
    let before = t.requests_logged().len();
    b.type_into("#add-symbol", &format!("aapl{}", &*Key::Enter));
    let added = wait_for(&b, Duration::from_secs(30), "AAPL added", |s| {
        s.symbols() == ["MSFT", "NVDA", "AAPL"] && s.prices_shown()
    });
    assert_eq!(added.search, "?symbols=MSFT,NVDA,AAPL&longpoll");
    let seen = watch_ticks(&b, 3, "long-polling");
    let requests = t.requests_logged()[before..].to_vec();
    assert_eq!(
        requests.first(),
        Some(&("LongPoll".to_string(), None)),
        "{requests:?}"
    );
    assert_long_polled(&requests, &seen);
    assert!(streams_of(&t, "LongPoll", 3) >= 3, "{}", t.log());
}

/// The example page the README shows, as it stands there.
/// The example page of the README (its first `html` block), as a user would copy it.
fn readme_example() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find("```html\n")
        .expect("an html block in the README")
        + 8;
    let len = readme[start..].find("```").unwrap();
    readme[start..start + len].to_string()
}

#[test]
fn the_readme_example_page_shows_a_live_quote_board() {
    let dir = TempDir::new("readme");
    let file = dir.join("symbols");
    std::fs::write(
        &file,
        "AAPL 189.20 bid=189.19 ask=189.21\n\
         EURUSD 1.08345 bid=1.08344 ask=1.08346\n\
         USDJPY 151.234 bid=151.230 ask=151.238\n\
         ETH-BTC 0.05101868 bid=0.05101862 ask=0.05101874\n",
    )
    .unwrap();
    let t = Tickerd::start(&[
        "--tick-ms",
        "0",
        "--fields",
        "last:price,bid:price,ask:price",
        "--symbols-file",
        file.to_str().unwrap(),
    ]);
    let front = Lighttpd::start(t.scgi());
    let b = Browser::start();
    // tickerd serves only its own page: the example is written into a document of the
    // same origin, under the prefix, so that its relative URLs reach tickerd.
    b.goto(&url(front.addr, "/prices/example.html"));
    let write = format!(
        "document.open(); document.write({}); document.close(); return true;",
        serde_json::to_string(&readme_example()).unwrap()
    );
    b.eval(&write);
    let rows = || {
        b.eval("return [].map.call(document.querySelectorAll('#quotes tr'), function (tr) { return [].map.call(tr.cells, function (td) { return td.textContent; }); });")
    };
    let shown = |want: serde_json::Value| wait_until(Duration::from_secs(30), || rows() == want);
    // Symbol, bid, ask and the spread, each at its symbol's precision.
    assert!(
        shown(serde_json::json!([
            ["EURUSD", "1.08344", "1.08346", "0.00002"],
            ["USDJPY", "151.230", "151.238", "0.008"],
            ["ETH-BTC", "0.05101862", "0.05101874", "0.00000012"]
        ])),
        "{}",
        rows()
    );
    // A new last is not among its fields; a bid, an ask are.
    let (status, answer) = t.publish(
        "EURUSD last=1.08349\nUSDJPY bid=151.229\nAAPL bid=189.00\nETH-BTC ask=0.05101880",
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        shown(serde_json::json!([
            ["EURUSD", "1.08344", "1.08346", "0.00002"],
            ["USDJPY", "151.229", "151.238", "0.009"],
            ["ETH-BTC", "0.05101862", "0.05101880", "0.00000018"]
        ])),
        "{}",
        rows()
    );
}
