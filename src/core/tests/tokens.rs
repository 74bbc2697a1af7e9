//! `--jwt-jwks` in the core: a stream's or long poll's token (bearer, cookie, `access_token`)
//! verified against the wall clock at its start; an invalid one is 401; a valid one's `sub`
//! is the user (a trusted `REMOTE_USER` wins) and its claims grant with the file's. Tokens
//! are signed here with the JWT module's test keys (`src/jwt/testdata`).

use std::sync::{Arc, Mutex, Once};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;
use crate::jwt::KeySet;
use crate::rights::Entitlements;

const JWKS: &str = include_str!("../../jwt/testdata/jwks.json");
const ES_PEM: &[u8] = include_bytes!("../../jwt/testdata/es256.pem");
const RS_PEM: &[u8] = include_bytes!("../../jwt/testdata/rs256.pem");

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs_secret() -> Vec<u8> {
    use base64::Engine;
    let set: Value = serde_json::from_str(JWKS).unwrap();
    let k = set["keys"][0]["k"].as_str().unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(k)
        .unwrap()
}

fn sign_with(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    encode(&header, claims, key).unwrap()
}

/// An ES256 token (kid `es`) with these claims.
fn es(claims: Value) -> String {
    sign_with(
        Algorithm::ES256,
        "es",
        &EncodingKey::from_ec_pem(ES_PEM).unwrap(),
        &claims,
    )
}

/// A token for `sub`, granting `symbols`, valid for a minute.
fn token(sub: &str, symbols: &[&str]) -> String {
    es(json!({ "sub": sub, "exp": now_s() + 60, "symbols": symbols }))
}

const FILE: &str = r#"
[anonymous]
symbols = ["AAPL"]

[groups.pro]
symbols = ["*"]

[users.alice]
groups = ["pro"]
"#;

/// A core with the test keys, and the entitlements file when given.
fn harness(file: Option<&str>, cookie: Option<&str>) -> Harness {
    let config = Config {
        entitlements: file.map(|f| Entitlements::parse(f).unwrap()),
        jwt_keys: Some(Arc::new(KeySet::parse(JWKS).unwrap())),
        auth_cookie: cookie.map(String::from),
        trust_remote_user: true,
        ..config(&["AAPL", "MSFT", "IBM"])
    };
    Harness::new(&config)
}

fn get(h: &mut Harness, target: &str, headers: &str) -> Client {
    h.connect(&format!("GET {target} HTTP/1.1\r\n{headers}\r\n"))
}

fn bearer(h: &mut Harness, symbols: &str, token: &str) -> Client {
    let auth = format!("Authorization: Bearer {token}\r\n");
    get(h, &format!("/ticker?symbols={symbols}"), &auth)
}

fn status(c: &Client) -> String {
    c.text().lines().next().unwrap_or_default().to_string()
}

#[test]
fn without_a_file_a_token_grants_its_symbols_and_anonymous_has_none() {
    let mut h = harness(None, None);
    let ok = bearer(&mut h, "AAPL,MSFT", &token("carol", &["AAPL", "MSFT"]));
    assert_eq!(status(&ok), "HTTP/1.1 200 OK", "{}", ok.text());
    assert_eq!(
        ok.events().len(),
        2,
        "each symbol's state at once: {}",
        ok.text()
    );
    // Identified by the token: a symbol outside its claim is 403, naming it.
    let more = bearer(&mut h, "AAPL,IBM", &token("carol", &["AAPL", "MSFT"]));
    assert!(status(&more).contains(" 403 "), "{}", more.text());
    assert!(more.text().ends_with("symbols: not entitled: IBM\n"));
    // No token: no rights at all.
    let anonymous = get(&mut h, "/ticker?symbols=AAPL", "");
    let t = anonymous.text();
    assert!(status(&anonymous).contains(" 401 "), "{t}");
    assert!(t.contains("WWW-Authenticate: Bearer\r\n"), "{t}");
    // A token without sub is an identity too.
    let nameless = es(json!({ "exp": now_s() + 60, "symbols": ["FX.*"] }));
    let c = bearer(&mut h, "AAPL", &nameless);
    assert!(status(&c).contains(" 403 "), "{}", c.text());
}

#[test]
fn an_invalid_token_is_401_whatever_its_rights() {
    let mut h = harness(Some(FILE), None);
    let exp = now_s() + 60;
    let alice = json!({ "sub": "alice", "exp": exp });
    let es_key = EncodingKey::from_ec_pem(ES_PEM).unwrap();
    let rs_key = EncodingKey::from_rsa_pem(RS_PEM).unwrap();
    let hs_key = EncodingKey::from_secret(&hs_secret()).unwrap();
    let good = sign_with(Algorithm::ES256, "es", &es_key, &alice);
    let (head, _) = good.rsplit_once('.').unwrap();
    let other = sign_with(
        Algorithm::ES256,
        "es",
        &es_key,
        &json!({ "sub": "x", "exp": exp }),
    );
    let bad_signature = format!("{head}.{}", other.rsplit_once('.').unwrap().1);
    let cases = [
        (
            es(json!({ "sub": "alice", "exp": now_s() - 60 })),
            "expired",
        ),
        (bad_signature, "bad signature"),
        (
            sign_with(Algorithm::ES256, "nope", &es_key, &alice),
            "unknown kid",
        ),
        // An RSA key's token under the EC key's kid, and HS256 under the RSA key's kid.
        (
            sign_with(Algorithm::RS256, "es", &rs_key, &alice),
            "wrong algorithm",
        ),
        (
            sign_with(Algorithm::HS256, "rs", &hs_key, &alice),
            "wrong algorithm",
        ),
        (
            es(json!({ "sub": "alice", "exp": exp, "tier": "soon" })),
            "claims: ",
        ),
        ("not.a.token".to_string(), "malformed token"),
    ];
    for (token, why) in cases {
        // AAPL is anonymous's: an invalid token is refused all the same.
        let c = bearer(&mut h, "AAPL", &token);
        let t = c.text();
        assert!(t.starts_with("HTTP/1.1 401 "), "{why}: {t}");
        assert!(t.contains("WWW-Authenticate: Bearer\r\n"), "{why}: {t}");
        assert!(t.contains(&format!("token: {why}")), "{why}: {t}");
        assert!(!t.contains(&token), "{why}: the answer shows the token");
    }
    // The good one streams everything alice's group grants.
    let c = bearer(&mut h, "IBM", &good);
    assert_eq!(status(&c), "HTTP/1.1 200 OK", "{}", c.text());
    // HS256 with its own key is as good.
    let hs = sign_with(Algorithm::HS256, "hs", &hs_key, &alice);
    let c = bearer(&mut h, "IBM", &hs);
    assert_eq!(status(&c), "HTTP/1.1 200 OK", "{}", c.text());
}

#[test]
fn a_long_poll_with_an_expired_token_is_401() {
    let mut h = harness(Some(FILE), None);
    let expired = es(json!({ "sub": "alice", "exp": now_s() - 60 }));
    let c = get(
        &mut h,
        "/ticker?symbols=AAPL",
        &format!("X-Event-Source-Simulate: Long-Polling\r\nAuthorization: Bearer {expired}\r\n"),
    );
    assert!(c.text().starts_with("HTTP/1.1 401 "), "{}", c.text());
}

#[test]
fn the_token_comes_from_the_cookie_or_the_query() {
    let mut h = harness(None, Some("tk"));
    let t = token("carol", &["MSFT"]);
    let by_cookie = get(
        &mut h,
        "/ticker?symbols=MSFT",
        &format!("Cookie: a=1; tk={t}\r\n"),
    );
    assert_eq!(
        status(&by_cookie),
        "HTTP/1.1 200 OK",
        "{}",
        by_cookie.text()
    );
    let by_query = get(
        &mut h,
        &format!("/ticker?symbols=MSFT&access_token={t}"),
        "",
    );
    assert_eq!(status(&by_query), "HTTP/1.1 200 OK", "{}", by_query.text());
    // Another cookie's name is not looked at.
    let other = get(
        &mut h,
        "/ticker?symbols=MSFT",
        &format!("Cookie: x={t}\r\n"),
    );
    assert!(status(&other).contains(" 401 "), "{}", other.text());
    // /symbols lists what the token may see, and refuses a bad one.
    let listing = get(&mut h, &format!("/symbols?access_token={t}"), "");
    let body = listing.text();
    assert!(
        body.contains("\"symbol\":\"MSFT\"") && !body.contains("AAPL"),
        "{body}"
    );
    let refused = get(&mut h, "/symbols?access_token=x.y.z", "");
    assert!(refused.text().starts_with("HTTP/1.1 401 "));
}

#[test]
fn a_trusted_remote_user_wins_over_the_sub_and_the_claims_add_to_it() {
    let mut h = harness(Some(FILE), None);
    // bob (REMOTE_USER) has anonymous's AAPL and the token's MSFT, not alice's group.
    let t = token("alice", &["MSFT"]);
    let headers = [
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", "/ticker"),
        ("QUERY_STRING", "symbols=AAPL,MSFT"),
        ("REMOTE_USER", "bob"),
    ];
    let auth = format!("Bearer {t}");
    let mut with_token = headers.to_vec();
    with_token.push(("HTTP_AUTHORIZATION", &auth));
    let c = h.connect_over(Protocol::Scgi, &crate::scgi::encode(&with_token, b""));
    assert!(c.text().starts_with("Status: 200"), "{}", c.text());
    let mut ibm = with_token.clone();
    ibm[2] = ("QUERY_STRING", "symbols=IBM");
    let c = h.connect_over(Protocol::Scgi, &crate::scgi::encode(&ibm, b""));
    assert!(c.text().starts_with("Status: 403"), "{}", c.text());
}

#[test]
fn a_reload_judges_a_token_stream_with_its_claims() {
    let mut h = harness(Some(FILE), None);
    let c = bearer(&mut h, "MSFT", &token("carol", &["MSFT"]));
    assert_eq!(status(&c), "HTTP/1.1 200 OK");
    let (ended, kept) = h
        .core
        .reload_entitlements(Entitlements::parse("[anonymous]\nsymbols = []\n").unwrap());
    assert_eq!((ended, kept), (0, 1), "the token's MSFT still holds");
    assert!(!c.text().contains("reauth"));
}

/// Log lines, from every test running (only what none may show is asserted).
static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = record.args().to_string();
        LOGGED.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
    fn flush(&self) {}
}

#[test]
fn no_log_line_shows_a_token() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if log::set_logger(&Capture).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    });
    let mut h = harness(Some(FILE), None);
    let expired = es(json!({ "sub": "dave", "exp": now_s() - 60 }));
    let good = token("dave", &["MSFT"]);
    let (_, signature) = expired.rsplit_once('.').unwrap();
    let (_, good_signature) = good.rsplit_once('.').unwrap();
    for t in [&expired, &good] {
        get(
            &mut h,
            &format!("/ticker?symbols=MSFT&access_token={t}"),
            "",
        );
        bearer(&mut h, "IBM", t);
    }
    let lines = LOGGED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("refused (401): user anonymous: token: expired")),
        "the refusal is logged: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("refused (403): user dave: symbols: not entitled: IBM")),
        "{lines:#?}"
    );
    for line in &lines {
        assert!(
            !line.contains(signature) && !line.contains(good_signature),
            "{line}"
        );
    }
}

/// The core's wall clock at the harness's `now`, in ms (as the core computes it).
fn wall_ms_at(h: &Harness) -> u128 {
    let (at, wall) = h.core.wall_at_start;
    (wall + h.now.saturating_duration_since(at))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[test]
fn a_stream_ends_when_its_token_expires_spread_over_the_seconds_after() {
    let mut h = harness(Some(FILE), None);
    let exp = now_s() + 2;
    let t = es(json!({ "sub": "alice", "exp": exp }));
    let streams: Vec<Client> = (0..8).map(|_| bearer(&mut h, "IBM", &t)).collect();
    let mut ended_at = vec![None; streams.len()];
    while ended_at.iter().any(Option::is_none) {
        assert!(
            wall_ms_at(&h) <= u128::from(exp) * 1000 + 5000,
            "not ended by exp + 5 s"
        );
        for (c, end) in streams.iter().zip(&mut ended_at) {
            if end.is_none() && c.text().contains("event: reauth") {
                *end = Some(wall_ms_at(&h));
            }
        }
        h.later(Duration::from_millis(50));
    }
    // Closed after their linger at the latest.
    h.later(Duration::from_secs(3));
    for (c, end) in streams.iter().zip(&ended_at) {
        let end = end.unwrap();
        assert!(end >= u128::from(exp) * 1000, "ended before exp: {end}");
        assert!(
            c.text().ends_with("event: reauth\ndata: expired\n\n"),
            "{}",
            c.text()
        );
        assert_eq!(c.events().last(), Some(&(0, "expired".to_string())));
        assert!(h.core.clients.get(c.key).is_none(), "closed");
    }
    let mut distinct = ended_at.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() > 4, "spread: {ended_at:?}");
    assert!(h.core.stream_users.is_empty() && h.core.stream_claims.is_empty());
}

#[test]
fn a_stream_without_a_token_or_with_a_later_one_goes_on() {
    let mut h = harness(Some(FILE), None);
    let plain = h.stream(Some("AAPL"), None);
    let later = bearer(
        &mut h,
        "IBM",
        &es(json!({ "sub": "alice", "exp": now_s() + 3600 })),
    );
    h.later(Duration::from_secs(60));
    for c in [&plain, &later] {
        assert!(!c.text().contains("reauth"), "{}", c.text());
    }
    assert_eq!(h.core.timers.expiring.len(), 1);
}

#[test]
fn a_token_stream_taken_over_in_a_live_upgrade_keeps_its_claims_and_its_expiry() {
    let mut old = harness(Some(FILE), None);
    let exp = now_s() + 2;
    let carol = bearer(
        &mut old,
        "MSFT",
        &es(json!({ "sub": "carol", "exp": exp, "symbols": ["MSFT"] })),
    );
    assert_eq!(status(&carol), "HTTP/1.1 200 OK");
    let record = old.core.record();
    let mut new = harness(Some(FILE), None);
    let socket = carol.socket.clone();
    let taken = new.core.take_over(
        record,
        |fd, _| match std::os::fd::AsRawFd::as_raw_fd(&socket) == fd {
            true => Ok(socket.clone()),
            false => Err(io::Error::other("no such socket")),
        },
        new.now,
    );
    assert_eq!((taken.connections, taken.lost), (1, 0));
    // Its MSFT is the token's: a reload that gives carol nothing keeps it.
    let (ended, kept) = new
        .core
        .reload_entitlements(Entitlements::parse(FILE).unwrap());
    assert_eq!((ended, kept), (0, 1));
    // And it still ends at its expiry.
    while !carol.text().contains("reauth") {
        assert!(wall_ms_at(&new) <= u128::from(exp) * 1000 + 5000);
        new.later(Duration::from_millis(100));
    }
    assert!(wall_ms_at(&new) >= u128::from(exp) * 1000);
    assert!(carol.text().ends_with("event: reauth\ndata: expired\n\n"));
}

#[test]
fn the_expiries_of_closed_streams_do_not_pile_up() {
    let mut h = harness(Some(FILE), None);
    let t = es(json!({ "sub": "alice", "exp": now_s() + 3600 }));
    for _ in 0..1100 {
        let c = bearer(&mut h, "IBM", &t);
        h.ready(
            &c,
            Readiness {
                input: false,
                gone: true,
            },
        );
    }
    h.later(Duration::from_millis(10));
    assert!(h.core.clients.len() < 10, "{}", h.core.clients.len());
    assert!(
        h.core.timers.expiring.len() < 1100,
        "{}",
        h.core.timers.expiring.len()
    );
}

#[test]
fn reloaded_keys_judge_new_streams_and_leave_open_ones() {
    let mut h = harness(Some(FILE), None);
    let t = token("alice", &[]);
    let open = bearer(&mut h, "IBM", &t);
    assert_eq!(status(&open), "HTTP/1.1 200 OK");
    // Only the HS256 key is left: the ES256 token's kid is unknown from now on.
    let set: Value = serde_json::from_str(JWKS).unwrap();
    let only_hs = json!({ "keys": [set["keys"][0].clone()] }).to_string();
    h.core.reload_keys(KeySet::parse(&only_hs).unwrap());
    let c = bearer(&mut h, "IBM", &t);
    assert!(c.text().ends_with("token: unknown kid\n"), "{}", c.text());
    h.later(Duration::from_secs(1));
    assert!(!open.text().contains("reauth"), "{}", open.text());
}
