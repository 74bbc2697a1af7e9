//! Who may see what (issue 18), with the real binary: `--entitlements` and
//! `--trust-remote-user`, the identity sent as a front-end would (SCGI `REMOTE_USER`), and
//! the built-in HTTP listener, where no header is an identity.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::*;

const UNIVERSE: &str = "AAPL=189.20,MSFT=415.30,IBM=170,FUND.NAV=101.5";

const RIGHTS: &str = r#"
[anonymous]
symbols = ["AAPL"]

[groups.pro]
symbols = ["*"]

[users.alice]
groups = ["pro"]

[users.bob]
symbols = ["MSFT", "GHOST"]
"#;

/// tickerd with the entitlements above (the file kept in `dir`).
fn start(dir: &TempDir, extra: &[&str]) -> Tickerd {
    let path = dir.join("entitlements.toml");
    std::fs::write(&path, RIGHTS).unwrap();
    let path = path.to_str().unwrap().to_string();
    let mut args = vec![
        "--tick-ms",
        "0",
        "--heartbeat-s",
        "0",
        "--symbols",
        UNIVERSE,
        "--entitlements",
        &path,
    ];
    args.extend_from_slice(extra);
    Tickerd::start(&args)
}

/// An SCGI GET as a front-end sends it, `REMOTE_USER` when given; the whole answer (the
/// connection ends after a refusal or a listing).
fn scgi_answer(addr: SocketAddr, path: &str, query: &str, user: Option<&str>) -> String {
    let mut extra = vec![("QUERY_STRING", query)];
    extra.extend(user.map(|u| ("REMOTE_USER", u)));
    let mut s = TcpStream::connect(addr).unwrap();
    set_timeout(&s, Duration::from_secs(5));
    s.write_all(&scgi_get(path, &extra)).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// An SCGI stream's first event, the stream being admitted (200).
fn scgi_first_event(addr: SocketAddr, query: &str, user: Option<&str>) -> SseEvent {
    let mut extra = vec![("QUERY_STRING", query)];
    extra.extend(user.map(|u| ("REMOTE_USER", u)));
    let mut s = scgi_stream(addr, &scgi_get("/ticker", &extra));
    assert_eq!(s.status, 200, "{}", s.head);
    s.next_event().expect("the snapshot")
}

#[test]
fn over_scgi_each_user_streams_its_symbols_and_is_refused_the_others() {
    let dir = TempDir::new("auth-scgi");
    let t = start(&dir, &["--trust-remote-user"]);
    let a = t.scgi();
    // Entitled: the snapshot comes.
    let e = scgi_first_event(a, "symbols=IBM,FUND.NAV", Some("alice"));
    assert!(
        e.data.contains("IBM") || e.data.contains("FUND.NAV"),
        "{e:?}"
    );
    scgi_first_event(a, "symbols=MSFT,AAPL", Some("bob"));
    scgi_first_event(a, "symbols=AAPL", None);
    // The default symbol (AAPL) is anonymous's.
    scgi_first_event(a, "", None);
    // Anonymous lacking a symbol: 401 with WWW-Authenticate.
    let r = scgi_answer(a, "/ticker", "symbols=AAPL,IBM", None);
    assert!(r.starts_with("Status: 401 "), "{r}");
    assert!(r.contains("WWW-Authenticate: Bearer\r\n"), "{r}");
    // Identified and lacking: 403 naming the symbols; one that does not exist answers the
    // same as one that does (IBM / NOP), while an entitled unknown one is 404.
    let ibm = scgi_answer(a, "/ticker", "symbols=MSFT,IBM", Some("bob"));
    assert!(
        ibm.starts_with("Status: 403 ") && ibm.ends_with("not entitled: IBM\n"),
        "{ibm}"
    );
    let nop = scgi_answer(a, "/ticker", "symbols=MSFT,NOP", Some("bob"));
    assert_eq!(nop.replace("NOP", "IBM"), ibm);
    let ghost = scgi_answer(a, "/ticker", "symbols=GHOST", Some("bob"));
    assert!(ghost.starts_with("Status: 404 "), "{ghost}");
    // A long poll is refused the same way.
    let mut s = TcpStream::connect(a).unwrap();
    set_timeout(&s, Duration::from_secs(5));
    let lp = scgi_get(
        "/ticker",
        &[
            ("QUERY_STRING", "symbols=IBM"),
            ("HTTP_X_EVENT_SOURCE_SIMULATE", "Long-Polling"),
            ("REMOTE_USER", "bob"),
        ],
    );
    s.write_all(&lp).unwrap();
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    assert!(r.starts_with("Status: 403 "), "{r}");
    // /symbols lists what the caller may see.
    let listing = scgi_answer(a, "/symbols", "", Some("bob"));
    assert!(
        listing.contains("\"MSFT\"") && listing.contains("\"AAPL\""),
        "{listing}"
    );
    assert!(
        !listing.contains("IBM") && !listing.contains("FUND.NAV"),
        "{listing}"
    );
    // Each refusal logged once, with the user, at info.
    let log = t.log();
    assert!(wait_until(Duration::from_secs(5), || t.log().contains(
        "refused (403): user bob: symbols: not entitled: IBM"
    )));
    assert!(
        log.contains("refused (401): user anonymous: symbols: need an identity: IBM"),
        "{log}"
    );
    let m = t.metrics();
    assert_eq!(
        m.get("tickerd_ticker_refused_total{status=\"401\"}"),
        Some(&1.0),
        "{m:?}"
    );
    assert_eq!(
        m.get("tickerd_ticker_refused_total{status=\"403\"}"),
        Some(&3.0),
        "{m:?}"
    );
}

#[test]
fn remote_user_counts_only_from_a_trusted_front_end() {
    let dir = TempDir::new("auth-untrusted");
    // Trusted, but over HTTP: no header makes an identity.
    let t = start(&dir, &["--trust-remote-user"]);
    let r = request(
        t.http(),
        "GET",
        "/ticker?symbols=MSFT",
        "Remote-User: bob\r\nREMOTE_USER: bob\r\nX-Remote-User: bob\r\n",
        "",
    );
    assert_eq!(r.status, 401, "{r:?}");
    let r = get(t.http(), "/symbols");
    assert!(!r.body.contains("MSFT"), "{r:?}");
    drop(t);
    // Over SCGI without --trust-remote-user: REMOTE_USER is ignored.
    let t = start(&dir, &[]);
    let r = scgi_answer(t.scgi(), "/ticker", "symbols=MSFT", Some("bob"));
    assert!(r.starts_with("Status: 401 "), "{r}");
}

#[test]
fn a_bad_or_delayed_entitlements_file_exits_2_naming_it() {
    let dir = TempDir::new("auth-bad");
    let run = |text: &str| {
        let path = dir.join("e.toml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tickerd"))
            .args(["--check", "--entitlements", path.to_str().unwrap()])
            .env_remove("TICKERD_ENTITLEMENTS")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run("[anonymous]\nsymbols = [\"AAPL\"]\ntier = \"15 min\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("line 3"), "{err}");
    let (code, err) = run("[anonymous]\nsymbols = [\"AAPL\"]\ntier = \"15m\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("delayed tiers are not served yet"), "{err}");
    let (code, err) = run(RIGHTS);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn without_entitlements_nothing_changes() {
    let t = Tickerd::start(&["--tick-ms", "0", "--symbols", UNIVERSE]);
    let r = get(t.http(), "/symbols");
    assert!(
        r.body.contains("IBM") && r.body.contains("FUND.NAV"),
        "{r:?}"
    );
    let mut s = http_stream(t.http(), "/ticker?symbols=IBM,FUND.NAV", &[]);
    assert_eq!(s.status, 200, "{}", s.head);
    assert!(s.next_event().is_some());
}
