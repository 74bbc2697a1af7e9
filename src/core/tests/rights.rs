//! `--entitlements` in the core: streams and long polls admitted once at their start (401,
//! 403, and 404 only for symbols the caller may see), `/symbols` filtered, the rights' cap,
//! and `REMOTE_USER` taken only from a trusted SCGI front-end.

use super::*;
use crate::rights::Entitlements;

const FILE: &str = r#"
[anonymous]
symbols = ["AAPL"]

[groups.pro]
symbols = ["*"]
max_hz = 2

[users.alice]
groups = ["pro"]

[users.bob]
symbols = ["MSFT", "GHOST"]
"#;

fn harness(trust_remote_user: bool) -> Harness {
    let config = Config {
        entitlements: Some(Entitlements::parse(FILE).unwrap()),
        trust_remote_user,
        ..config(&["AAPL", "MSFT", "IBM", "FUND.NAV"])
    };
    Harness::new(&config)
}

/// A request over SCGI, as a front-end sends it, with `REMOTE_USER` when given.
fn scgi(h: &mut Harness, path: &str, query: &str, user: Option<&str>) -> Client {
    let mut headers = vec![
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", path),
        ("QUERY_STRING", query),
    ];
    if let Some(u) = user {
        headers.push(("REMOTE_USER", u));
    }
    let request = crate::scgi::encode(&headers, b"");
    h.connect_over(Protocol::Scgi, &request)
}

fn status(c: &Client) -> String {
    c.text().lines().next().unwrap_or_default().to_string()
}

#[test]
fn anonymous_streams_its_symbols_and_gets_401_for_the_others() {
    let mut h = harness(true);
    let ok = scgi(&mut h, "/ticker", "symbols=AAPL", None);
    assert!(ok.text().starts_with("Status: 200"), "{}", ok.text());
    let refused = scgi(&mut h, "/ticker", "symbols=AAPL,MSFT", None);
    let t = refused.text();
    assert!(t.starts_with("Status: 401 "), "{t}");
    assert!(t.contains("WWW-Authenticate: Bearer\r\n"), "{t}");
    assert!(t.ends_with("symbols: need an identity: MSFT\n"), "{t}");
    // The default symbol (the first listed, AAPL) is anonymous's: the plain stream starts.
    let plain = scgi(&mut h, "/ticker", "", None);
    assert!(
        status(&plain).starts_with("Status: 200"),
        "{}",
        plain.text()
    );
    assert_eq!(h.core.counters.streams_unauthorized, 1);
}

#[test]
fn an_identified_user_gets_403_naming_the_symbols_it_may_not_see() {
    let mut h = harness(true);
    let c = scgi(
        &mut h,
        "/ticker",
        "symbols=MSFT,IBM,AAPL,FUND.NAV",
        Some("bob"),
    );
    let t = c.text();
    assert!(t.starts_with("Status: 403 "), "{t}");
    assert!(!t.contains("WWW-Authenticate"), "{t}");
    assert!(t.ends_with("symbols: not entitled: IBM, FUND.NAV\n"), "{t}");
    let ok = scgi(&mut h, "/ticker", "symbols=MSFT,AAPL", Some("bob"));
    assert!(status(&ok).starts_with("Status: 200"), "{}", ok.text());
    // A long poll is admitted the same way.
    let mut headers = vec![
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", "/ticker"),
        ("QUERY_STRING", "symbols=IBM"),
        ("HTTP_X_EVENT_SOURCE_SIMULATE", "Long-Polling"),
        ("REMOTE_USER", "bob"),
    ];
    let lp = h.connect_over(Protocol::Scgi, &crate::scgi::encode(&headers, b""));
    assert!(status(&lp).starts_with("Status: 403 "), "{}", lp.text());
    headers.pop();
    let lp = h.connect_over(Protocol::Scgi, &crate::scgi::encode(&headers, b""));
    assert!(status(&lp).starts_with("Status: 401 "), "{}", lp.text());
    assert_eq!(h.core.counters.streams_forbidden, 2);
    assert_eq!(h.core.counters.streams_unauthorized, 1);
}

#[test]
fn an_unknown_symbol_is_404_only_if_the_caller_may_see_it() {
    let mut h = harness(true);
    // bob may see GHOST, which the universe lacks: 404.
    let c = scgi(&mut h, "/ticker", "symbols=MSFT,GHOST", Some("bob"));
    assert!(c.text().starts_with("Status: 404 "), "{}", c.text());
    // NOP is outside bob's rights: 403, exactly as IBM (which exists) is.
    let nope = scgi(&mut h, "/ticker", "symbols=NOP", Some("bob"));
    let ibm = scgi(&mut h, "/ticker", "symbols=IBM", Some("bob"));
    assert_eq!(
        nope.text().replace("NOP", "X"),
        ibm.text().replace("IBM", "X")
    );
    assert!(nope.text().starts_with("Status: 403 "), "{}", nope.text());
    // Anonymous: 401 whether the symbol exists or not.
    let nope = scgi(&mut h, "/ticker", "symbols=NOP", None);
    let ibm = scgi(&mut h, "/ticker", "symbols=IBM", None);
    assert_eq!(
        nope.text().replace("NOP", "X"),
        ibm.text().replace("IBM", "X")
    );
    // alice may see everything: an unknown symbol is 404 for her.
    let c = scgi(&mut h, "/ticker", "symbols=NOPE", Some("alice"));
    assert!(c.text().starts_with("Status: 404 "), "{}", c.text());
}

#[test]
fn the_symbols_listing_shows_only_what_the_caller_may_see() {
    let mut h = harness(true);
    let names = |c: &Client| {
        let t = c.text();
        let body = &t[t.find("\r\n\r\n").unwrap() + 4..];
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["symbol"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let anonymous = scgi(&mut h, "/symbols", "", None);
    assert_eq!(names(&anonymous), ["AAPL"]);
    let bob = scgi(&mut h, "/symbols", "", Some("bob"));
    assert_eq!(names(&bob), ["AAPL", "MSFT"]);
    let alice = scgi(&mut h, "/symbols", "limit=3", Some("alice"));
    assert_eq!(names(&alice), ["AAPL", "MSFT", "IBM"]);
    // The limit counts only visible symbols.
    let bob = scgi(&mut h, "/symbols", "limit=1&prefix=M", Some("bob"));
    assert_eq!(names(&bob), ["MSFT"]);
}

#[test]
fn remote_user_is_ignored_unless_trusted_and_never_taken_from_http() {
    // Over HTTP, a Remote-User header (or anything like it) is no identity.
    let mut h = harness(true);
    let c = h.connect(
        "GET /ticker?symbols=MSFT HTTP/1.1\r\nRemote-User: bob\r\nREMOTE_USER: bob\r\n\r\n",
    );
    assert!(c.text().starts_with("HTTP/1.1 401 "), "{}", c.text());
    // Over SCGI without --trust-remote-user, REMOTE_USER is no identity either.
    let mut h = harness(false);
    let c = scgi(&mut h, "/ticker", "symbols=MSFT", Some("bob"));
    assert!(c.text().starts_with("Status: 401 "), "{}", c.text());
    let c = scgi(&mut h, "/symbols", "", Some("alice"));
    assert!(!c.text().contains("MSFT"), "{}", c.text());
}

#[test]
fn the_rights_cap_joins_max_hz_the_strictest_wins() {
    let mut h = harness(true);
    let gap = |h: &Harness, c: &Client| h.core.rates.get(c.key).map(|r| r.gap);
    // alice's pro group: 2 Hz.
    let c = scgi(&mut h, "/ticker", "symbols=IBM", Some("alice"));
    assert_eq!(gap(&h, &c), Some(Duration::from_millis(500)));
    let c = scgi(&mut h, "/ticker", "symbols=IBM&max_hz=10", Some("alice"));
    assert_eq!(gap(&h, &c), Some(Duration::from_millis(500)));
    let c = scgi(&mut h, "/ticker", "symbols=IBM&max_hz=1", Some("alice"));
    assert_eq!(gap(&h, &c), Some(Duration::from_secs(1)));
    // bob's MSFT is uncapped.
    let c = scgi(&mut h, "/ticker", "symbols=MSFT", Some("bob"));
    assert_eq!(gap(&h, &c), None);
}

#[test]
fn without_entitlements_everyone_sees_everything() {
    let mut h = Harness::new(&config(&["AAPL", "MSFT"]));
    let c = h.connect("GET /ticker?symbols=AAPL,MSFT HTTP/1.1\r\n\r\n");
    assert!(c.text().starts_with("HTTP/1.1 200 "), "{}", c.text());
    let c = h.connect("GET /ticker?symbols=NOPE HTTP/1.1\r\n\r\n");
    assert!(c.text().starts_with("HTTP/1.1 404 "), "{}", c.text());
}

#[test]
fn a_delayed_tier_is_never_served_in_real_time() {
    // The file's check at start refuses delays; should one reach the core, it refuses.
    let file = "[anonymous]\nsymbols = [\"AAPL\"]\ntier = \"15m\"\n";
    let config = Config {
        entitlements: Some(Entitlements::parse(file).unwrap()),
        ..config(&["AAPL"])
    };
    let mut h = Harness::new(&config);
    let c = h.connect("GET /ticker?symbols=AAPL HTTP/1.1\r\n\r\n");
    let t = c.text();
    assert!(
        t.starts_with("HTTP/1.1 403 ") && t.contains("not served yet"),
        "{t}"
    );
}

#[test]
fn a_reload_ends_the_streams_no_longer_entitled_and_only_those() {
    let mut h = harness(true);
    let revoked = scgi(&mut h, "/ticker", "symbols=MSFT", Some("bob"));
    let bob_aapl = scgi(&mut h, "/ticker", "symbols=AAPL", Some("bob"));
    let alice = scgi(&mut h, "/ticker", "symbols=IBM,MSFT", Some("alice"));
    let plain = scgi(&mut h, "/ticker", "", None); // the default symbol, AAPL
    let mut headers = vec![
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", "/ticker"),
        ("QUERY_STRING", "symbols=MSFT"),
        ("HTTP_X_EVENT_SOURCE_SIMULATE", "Long-Polling"),
        ("REMOTE_USER", "bob"),
    ];
    // A long poll that waits: it resumes from the newest id.
    let newest = h.last_id().to_string();
    headers.push(("HTTP_LAST_EVENT_ID", &newest));
    let poll = h.connect_over(Protocol::Scgi, &crate::scgi::encode(&headers, b""));
    assert_eq!(poll.text(), "", "the long poll waits");
    for c in [&revoked, &bob_aapl, &alice, &plain] {
        assert!(c.text().starts_with("Status: 200"), "{}", c.text());
    }
    let before: Vec<String> = [&bob_aapl, &alice, &plain]
        .iter()
        .map(|c| c.text())
        .collect();
    // bob loses MSFT.
    let file = FILE.replace(r#"symbols = ["MSFT", "GHOST"]"#, r#"symbols = ["GHOST"]"#);
    let (ended, kept) = h
        .core
        .reload_entitlements(Entitlements::parse(&file).unwrap());
    assert_eq!((ended, kept), (2, 3));
    let t = revoked.text();
    assert!(t.ends_with("\n\nevent: reauth\ndata: revoked\n\n"), "{t}");
    assert!(revoked.pipe().shut, "the revoked stream ends");
    assert!(poll.text().starts_with("Status: 403 "), "{}", poll.text());
    // The others: untouched, and still served.
    let after: Vec<String> = [&bob_aapl, &alice, &plain]
        .iter()
        .map(|c| c.text())
        .collect();
    assert_eq!(before, after);
    h.publish("MSFT=1.50\nAAPL=2.50");
    h.turn();
    assert!(alice.text().contains("1.50"), "{}", alice.text());
    assert!(bob_aapl.text().contains("2.50"), "{}", bob_aapl.text());
    assert!(!revoked.text().contains("1.50"));
    // New streams start with the new file.
    let c = scgi(&mut h, "/ticker", "symbols=MSFT", Some("bob"));
    assert!(c.text().starts_with("Status: 403 "), "{}", c.text());
    assert_eq!(h.core.stream_users.len(), 3, "one entry per open stream");
}

#[test]
fn a_reload_after_a_live_upgrade_still_checks_the_streams_taken_over() {
    let mut old = harness(true);
    let bob = scgi(&mut old, "/ticker", "symbols=MSFT", Some("bob"));
    let anonymous = scgi(&mut old, "/ticker", "symbols=AAPL", None);
    assert!(bob.text().starts_with("Status: 200"), "{}", bob.text());
    let record = old.core.record();
    // The new binary takes every connection over on the same sockets.
    let mut new = harness(true);
    let sockets = [bob.socket.clone(), anonymous.socket.clone()];
    let taken = new.core.take_over(
        record,
        |fd, _| {
            sockets
                .iter()
                .find(|s| std::os::fd::AsRawFd::as_raw_fd(*s) == fd)
                .cloned()
                .ok_or_else(|| io::Error::other("no such socket"))
        },
        new.now,
    );
    assert_eq!((taken.connections, taken.lost), (2, 0));
    // bob loses MSFT: his stream, carried over with his name, ends; anonymous's goes on.
    let file = FILE.replace(r#"symbols = ["MSFT", "GHOST"]"#, r#"symbols = ["GHOST"]"#);
    let (ended, kept) = new
        .core
        .reload_entitlements(Entitlements::parse(&file).unwrap());
    assert_eq!((ended, kept), (1, 1));
    assert!(
        bob.text().ends_with("\n\nevent: reauth\ndata: revoked\n\n"),
        "{}",
        bob.text()
    );
    assert!(!anonymous.pipe().shut);
}
