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

// --- Through the shipped front-ends with HTTP Basic authentication -------------------------

/// `user:password` as HTTP Basic sends it (RFC 7617: base64 of the pair).
fn basic(user: &str, password: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// An htpasswd file for alice and bob, made with `openssl passwd -apr1` as an operator would.
fn htpasswd() -> String {
    let mut text = String::new();
    for (user, password) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
        let out = std::process::Command::new("openssl")
            .args(["passwd", "-apr1", password])
            .output()
            .expect("openssl");
        assert!(out.status.success());
        text.push_str(&format!(
            "{user}:{}",
            String::from_utf8(out.stdout).unwrap()
        ));
    }
    text
}

/// What every authenticating front-end must do in front of tickerd with --trust-remote-user:
/// a user streams its symbols, gets 403 naming the others and sees only its own in
/// `/symbols`; no login or a wrong password is 401.
fn users_through(front: SocketAddr, name: &str) {
    let bob = basic("bob", "bob-pw");
    let alice = basic("alice", "alice-pw");
    let with = |auth: &str| format!("Authorization: {auth}\r\n");
    // Entitled: the stream starts and its snapshot comes.
    for (auth, symbols) in [(&bob, "MSFT,AAPL"), (&alice, "IBM,FUND.NAV")] {
        let path = format!("/ticker?symbols={symbols}");
        let mut s = http_stream(front, &path, &[("Authorization", auth)]);
        assert_eq!(s.status, 200, "{name}: {}", s.head);
        assert!(
            s.next_event().is_some(),
            "{name}: no snapshot for {symbols}"
        );
    }
    // Not entitled: tickerd's 403, naming the symbol, through the front-end.
    let r = request(front, "GET", "/ticker?symbols=MSFT,IBM", &with(&bob), "");
    assert_eq!(r.status, 403, "{name}: {r:?}");
    assert!(r.body.contains("not entitled: IBM"), "{name}: {r:?}");
    // No login, or a wrong password: 401 (from the front-end, which asks for a login).
    let r = get(front, "/ticker?symbols=AAPL");
    assert_eq!(r.status, 401, "{name}: {r:?}");
    let r = request(
        front,
        "GET",
        "/ticker?symbols=AAPL",
        &with(&basic("bob", "nope")),
        "",
    );
    assert_eq!(r.status, 401, "{name}: {r:?}");
    // The listing: only bob's.
    let r = request(front, "GET", "/symbols", &with(&bob), "");
    assert_eq!(r.status, 200, "{name}: {r:?}");
    assert!(
        r.body.contains("\"MSFT\"") && !r.body.contains("IBM"),
        "{name}: {r:?}"
    );
}

#[test]
fn lighttpd_mod_auth_passes_its_user() {
    let dir = TempDir::new("auth-lighttpd");
    let t = start(&dir, &["--trust-remote-user"]);
    let file = dir.join("htpasswd");
    std::fs::write(&file, htpasswd()).unwrap();
    let front = Lighttpd::start_from(
        "lighttpd-auth.conf",
        &[
            ("TICKERD_SCGI_HOST", t.scgi().ip().to_string()),
            ("TICKERD_SCGI_PORT", t.scgi().port().to_string()),
            ("TICKERD_HTPASSWD", file.display().to_string()),
        ],
    );
    users_through(front.addr, "lighttpd");
    assert!(t.log().contains("refused (403): user bob"), "{}", t.log());
}

#[test]
fn nginx_auth_basic_passes_its_user() {
    let dir = TempDir::new("auth-nginx");
    let t = start(&dir, &["--trust-remote-user"]);
    let upstream = format!("upstream tickerd {{ server {}; }}\n", t.scgi());
    let front = crate::support::fronts::nginx::start_from(
        "nginx-auth.conf",
        &upstream,
        &[("nginx-htpasswd", &htpasswd())],
    );
    users_through(front.addr, "nginx");
}

#[test]
fn apache_auth_basic_passes_its_user() {
    let dir = TempDir::new("auth-apache");
    let t = start(&dir, &["--trust-remote-user"]);
    let file = dir.join("htpasswd");
    std::fs::write(&file, htpasswd()).unwrap();
    let front = crate::support::fronts::apache::start_from(
        "apache-auth.conf",
        vec![
            ("TICKERD_SCGI_HOST", t.scgi().ip().to_string()),
            ("TICKERD_SCGI_PORT", t.scgi().port().to_string()),
            ("TICKERD_HTPASSWD", file.display().to_string()),
        ],
    );
    users_through(front.addr, "apache");
}

/// The nginx and Apache auth files are their plain files plus the lines marked as auth's:
/// a change to one that the other misses fails here. (lighttpd's includes its plain file.)
#[test]
fn the_auth_confs_are_the_plain_ones_plus_their_auth_lines() {
    let body = |name: &str, strip_auth: bool| {
        let text = std::fs::read_to_string(repo_root().join("conf").join(name)).unwrap();
        let mut out = Vec::new();
        let mut in_auth = false;
        // The leading comment (what the file is, how to run it) differs.
        let lines = text
            .lines()
            .skip_while(|l| l.starts_with('#') || l.is_empty());
        for line in lines {
            match line.trim() {
                "# >>> auth" if strip_auth => in_auth = true,
                "# <<< auth" if strip_auth => in_auth = false,
                _ if in_auth => {}
                _ => out.push(line.to_string()),
            }
        }
        // A marked block is followed by one blank line of its own.
        out.dedup_by(|a, b| a.is_empty() && b.is_empty());
        while out.last().is_some_and(|l| l.is_empty()) {
            out.pop();
        }
        out
    };
    for (plain, auth) in [
        ("nginx.conf", "nginx-auth.conf"),
        ("apache.conf", "apache-auth.conf"),
    ] {
        assert_eq!(
            body(auth, true),
            body(plain, false),
            "{auth} drifted from {plain}"
        );
    }
    let lighttpd = std::fs::read_to_string(repo_root().join("conf/lighttpd-auth.conf")).unwrap();
    assert!(lighttpd.contains("include \"lighttpd.conf\""));
}

// --- SIGHUP: the file read again ---------------------------------------------------------

fn scgi_open(t: &Tickerd, query: &str, user: Option<&str>) -> SseReader<TcpStream> {
    let mut extra = vec![("QUERY_STRING", query)];
    extra.extend(user.map(|u| ("REMOTE_USER", u)));
    let mut s = scgi_stream(t.scgi(), &scgi_get("/ticker", &extra));
    assert_eq!(s.status, 200, "{}", s.head);
    set_timeout(s.socket(), Duration::from_secs(5));
    // The snapshot: one event per symbol.
    for _ in query.split(',') {
        s.next_event().expect("the snapshot");
    }
    s
}

#[test]
fn sighup_reloads_the_file_and_ends_only_the_revoked_streams() {
    let dir = TempDir::new("auth-hup");
    let t = start(&dir, &["--trust-remote-user"]);
    let path = dir.join("entitlements.toml");
    let mut bob = scgi_open(&t, "symbols=MSFT", Some("bob"));
    let mut bob_aapl = scgi_open(&t, "symbols=AAPL", Some("bob"));
    let mut alice = scgi_open(&t, "symbols=MSFT,IBM", Some("alice"));
    // A file that does not read: logged with its line, nothing changes.
    std::fs::write(
        &path,
        "[users.bob]\nsymbols = [\"MSFT\"]\ntier = \"soon\"\n",
    )
    .unwrap();
    t.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(5), || t
            .log()
            .contains("SIGHUP: entitlements not reloaded, nothing changed")),
        "{}",
        t.log()
    );
    assert!(t.log().contains("line 3"), "{}", t.log());
    assert_eq!(t.publish("MSFT=1.25").0, 200);
    assert!(bob.next_event().unwrap().data.contains("1.25"));
    assert!(alice.next_event().unwrap().data.contains("1.25"));
    // bob loses MSFT: his MSFT stream ends with `event: reauth` (no id), the others go on.
    std::fs::write(
        &path,
        RIGHTS.replace(r#"["MSFT", "GHOST"]"#, r#"["GHOST"]"#),
    )
    .unwrap();
    t.signal(libc::SIGHUP);
    let reauth = bob.next_event().expect("event: reauth");
    assert_eq!(
        (reauth.id.as_deref(), reauth.data.as_str()),
        (None, "revoked")
    );
    assert!(bob.read_to_end().is_empty() && bob.eof, "the stream ends");
    assert!(wait_until(Duration::from_secs(5), || t
        .log()
        .contains("1 streams revoked, 2 go on")));
    assert_eq!(t.publish("MSFT=1.50\nAAPL=2.50").0, 200);
    assert!(alice.next_event().unwrap().data.contains("1.50"));
    assert!(bob_aapl.next_event().unwrap().data.contains("2.50"));
    // And a new stream is refused.
    let r = scgi_answer(t.scgi(), "/ticker", "symbols=MSFT", Some("bob"));
    assert!(r.starts_with("Status: 403 "), "{r}");
}

#[test]
fn sighup_without_entitlements_is_ignored() {
    let t = Tickerd::start(&["--tick-ms", "0"]);
    t.signal(libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(5), || t
        .log()
        .contains("SIGHUP ignored: no --entitlements to reload")));
}

// --- Tokens (JWT) over the built-in HTTP listener --------------------------------------------

const JWKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/jwt/testdata/jwks.json");
const ES_PEM: &[u8] = include_bytes!("../../src/jwt/testdata/es256.pem");

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An ES256 token (kid `es` of the test key set) with these claims.
fn es256(claims: serde_json::Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("es".into());
    let key = jsonwebtoken::EncodingKey::from_ec_pem(ES_PEM).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[test]
fn tokens_identify_streams_over_http() {
    let dir = TempDir::new("auth-jwt");
    let t = start(&dir, &["--jwt-jwks", JWKS, "--auth-cookie", "tk"]);
    let alice = es256(serde_json::json!({ "sub": "alice", "exp": unix_now() + 60 }));
    let carol = es256(serde_json::json!({
        "sub": "carol", "exp": unix_now() + 60, "symbols": ["MSFT"],
    }));
    let expired = es256(serde_json::json!({ "sub": "alice", "exp": unix_now() - 60 }));
    // alice's group grants everything; carol has anonymous's AAPL and her token's MSFT.
    let bearer = format!("Bearer {alice}");
    let mut s = http_stream(
        t.http(),
        "/ticker?symbols=IBM,FUND.NAV",
        &[("Authorization", &bearer)],
    );
    assert_eq!(s.status, 200, "{}", s.head);
    assert!(s.next_event().is_some());
    let cookie = format!("tk={carol}");
    let mut s = http_stream(
        t.http(),
        "/ticker?symbols=MSFT,AAPL",
        &[("Cookie", &cookie)],
    );
    assert_eq!(s.status, 200, "{}", s.head);
    assert!(s.next_event().is_some());
    let mut s = http_stream(
        t.http(),
        &format!("/ticker?symbols=MSFT&access_token={carol}"),
        &[],
    );
    assert_eq!(s.status, 200, "{}", s.head);
    assert!(s.next_event().is_some());
    let r = request(
        t.http(),
        "GET",
        &format!("/ticker?symbols=IBM&access_token={carol}"),
        "",
        "",
    );
    assert_eq!(r.status, 403, "{r:?}");
    // Invalid in any way: 401, even for anonymous's AAPL.
    let r = request(
        t.http(),
        "GET",
        &format!("/ticker?symbols=AAPL&access_token={expired}"),
        "",
        "",
    );
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.head.contains("WWW-Authenticate: Bearer\r\n"), "{r:?}");
    assert_eq!(r.body, "token: expired\n");
    let r = get(t.http(), &format!("/symbols?access_token={carol}"));
    assert!(
        r.body.contains("\"MSFT\"") && !r.body.contains("IBM"),
        "{r:?}"
    );
    // Logged once with the reason, never a token.
    assert!(wait_until(Duration::from_secs(5), || t
        .log()
        .contains("refused (401): user anonymous: token: expired")));
    assert!(wait_until(Duration::from_secs(5), || t.log().contains(
        "refused (403): user carol: symbols: not entitled: IBM"
    )));
    let log = t.log();
    for token in [&alice, &carol, &expired] {
        let signature = token.rsplit_once('.').unwrap().1;
        assert!(!log.contains(signature), "{log}");
    }
}

#[test]
fn with_keys_and_no_file_a_token_is_needed() {
    let t = Tickerd::start(&[
        "--tick-ms",
        "0",
        "--heartbeat-s",
        "0",
        "--symbols",
        UNIVERSE,
        "--jwt-jwks",
        JWKS,
    ]);
    let r = request(t.http(), "GET", "/ticker?symbols=AAPL", "", "");
    assert_eq!(r.status, 401, "{r:?}");
    let token = es256(serde_json::json!({ "sub": "x", "exp": unix_now() + 60, "symbols": ["*"] }));
    let mut s = http_stream(
        t.http(),
        &format!("/ticker?symbols=IBM,AAPL&access_token={token}"),
        &[],
    );
    assert_eq!(s.status, 200, "{}", s.head);
    assert!(s.next_event().is_some());
}

#[test]
fn a_bad_key_set_exits_2_naming_it() {
    let dir = TempDir::new("auth-jwks");
    let path = dir.join("jwks.json");
    std::fs::write(&path, "{\"keys\": [{\"kty\": \"oct\", \"kid\": \"a\"}]}").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tickerd"))
        .args(["--check", "--jwt-jwks", path.to_str().unwrap()])
        .env_remove("TICKERD_JWT_JWKS")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--jwt-jwks") && err.contains("key 0"), "{err}");
}

#[test]
fn a_stream_ends_with_reauth_when_its_token_expires() {
    let dir = TempDir::new("auth-jwt-exp");
    let t = start(&dir, &["--jwt-jwks", JWKS]);
    let exp = unix_now() + 2;
    let token = es256(serde_json::json!({ "sub": "alice", "exp": exp }));
    let mut s = http_stream(
        t.http(),
        &format!("/ticker?symbols=IBM&access_token={token}"),
        &[],
    );
    assert_eq!(s.status, 200, "{}", s.head);
    let first = s.next_event().expect("the snapshot");
    assert!(first.id.is_some());
    // Then nothing (no tick) until the token expires: the reauth event, without an id.
    let last = s.next_event().expect("event: reauth");
    let ended = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert_eq!(last.data, "expired");
    assert_eq!(last.id, None);
    assert!(ended >= exp as f64, "ended at {ended}, before exp {exp}");
    assert!(ended <= exp as f64 + 5.5, "ended at {ended}, exp {exp}");
    assert!(s.next_event().is_none(), "closed after it");
    assert!(wait_until(Duration::from_secs(5), || t
        .log()
        .contains("stream ended (reauth: expired): user alice")));
}

#[test]
fn sighup_reloads_the_keys() {
    let dir = TempDir::new("auth-jwks-reload");
    let jwks = dir.join("jwks.json");
    std::fs::copy(JWKS, &jwks).unwrap();
    let t = Tickerd::start(&[
        "--tick-ms",
        "0",
        "--heartbeat-s",
        "0",
        "--symbols",
        UNIVERSE,
        "--jwt-jwks",
        jwks.to_str().unwrap(),
    ]);
    let token = es256(serde_json::json!({ "sub": "x", "exp": unix_now() + 60, "symbols": ["*"] }));
    let path = format!("/ticker?symbols=IBM&access_token={token}");
    let mut open = http_stream(t.http(), &path, &[]);
    assert_eq!(open.status, 200, "{}", open.head);
    assert!(open.next_event().is_some());
    // A file that does not read changes nothing.
    std::fs::write(&jwks, "{").unwrap();
    t.signal(libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(5), || t
        .log()
        .contains("SIGHUP: keys not reloaded, nothing changed")));
    let s = http_stream(t.http(), &path, &[]);
    assert_eq!(s.status, 200, "{}", s.head);
    // Without the ES256 key, its token is refused; the open stream goes on.
    let set: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(JWKS).unwrap()).unwrap();
    let only_hs = serde_json::json!({ "keys": [set["keys"][0].clone()] });
    std::fs::write(&jwks, only_hs.to_string()).unwrap();
    t.signal(libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(5), || t
        .log()
        .contains("SIGHUP: keys reloaded from")));
    let r = request(t.http(), "GET", &path, "", "");
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.body, "token: unknown kid\n");
    assert!(!t.log().contains("reauth"));
}
