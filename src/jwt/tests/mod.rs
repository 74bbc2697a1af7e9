//! Tokens signed here with jsonwebtoken's `encode` from the private keys in `testdata/`
//! (made once with `openssl genpkey`: RSA 2048, EC P-256, Ed25519); `testdata/jwks.json`
//! holds their public halves and an HS256 secret, kids `hs`, `rs`, `es`, `ed`.

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::source::{self, Source};
use super::*;

const JWKS: &str = include_str!("../testdata/jwks.json");
const RS_PEM: &[u8] = include_bytes!("../testdata/rs256.pem");
const RS_PUBLIC_PEM: &[u8] = include_bytes!("../testdata/rs256.pub.pem");
const ES_PEM: &[u8] = include_bytes!("../testdata/es256.pem");
const ED_PEM: &[u8] = include_bytes!("../testdata/eddsa.pem");
const NOW: u64 = 1_800_000_000;

fn keys() -> KeySet {
    KeySet::parse(JWKS).unwrap()
}

fn hs_secret() -> Vec<u8> {
    use base64::Engine;
    let set: Value = serde_json::from_str(JWKS).unwrap();
    let k = set["keys"][0]["k"].as_str().unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(k)
        .unwrap()
}

fn key_for(alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::HS256 => EncodingKey::from_secret(&hs_secret()).unwrap(),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RS_PEM).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(ES_PEM).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(ED_PEM).unwrap(),
        _ => unreachable!(),
    }
}

fn sign_with(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).unwrap()
}

fn sign(alg: Algorithm, kid: &str, claims: &Value) -> String {
    sign_with(alg, Some(kid), &key_for(alg), claims)
}

fn check(token: &str) -> Result<Verified, Refusal> {
    verify(token.as_bytes(), &keys(), &Checks::default(), NOW)
}

fn claims() -> Value {
    json!({ "sub": "alice", "exp": NOW + 60 })
}

/// A token as JOSE writes it, with any header and claims, and no valid signature.
fn unsigned(header: &Value, claims: &Value) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", b64(header), b64(claims))
}

#[test]
fn each_algorithm_is_accepted_with_its_key() {
    let full = json!({
        "sub": "alice", "exp": NOW + 60, "nbf": NOW - 10,
        "symbols": ["AAPL", "FX.*"], "groups": ["pro"], "tier": "15m", "publish": ["FUND.NAV"],
    });
    for (alg, kid) in [
        (Algorithm::HS256, "hs"),
        (Algorithm::RS256, "rs"),
        (Algorithm::ES256, "es"),
        (Algorithm::EdDSA, "ed"),
    ] {
        let v = check(&sign(alg, kid, &full)).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(
            v,
            Verified {
                sub: Some("alice".into()),
                exp: NOW + 60,
                symbols: vec!["AAPL".into(), "FX.*".into()],
                groups: vec!["pro".into()],
                tier: Some("15m".into()),
                publish: vec!["FUND.NAV".into()],
            }
        );
    }
    // The optional claims absent: empty, None.
    let v = check(&sign(Algorithm::ES256, "es", &json!({ "exp": NOW + 1 }))).unwrap();
    assert_eq!(
        v,
        Verified {
            exp: NOW + 1,
            ..Verified::default()
        }
    );
}

#[test]
fn a_token_is_bound_to_its_keys_algorithm() {
    // kid "rs" names the RS256 key; an ES256 token naming it is refused before any check.
    let es_as_rs = sign_with(
        Algorithm::ES256,
        Some("rs"),
        &key_for(Algorithm::ES256),
        &claims(),
    );
    assert_eq!(check(&es_as_rs), Err(Refusal::WrongAlgorithm));
    // The classic confusion: HS256 with the RSA public key's bytes as the HMAC secret.
    let confused = sign_with(
        Algorithm::HS256,
        Some("rs"),
        &EncodingKey::from_secret(RS_PUBLIC_PEM).unwrap(),
        &claims(),
    );
    assert_eq!(check(&confused), Err(Refusal::WrongAlgorithm));
    // Or with the modulus as the JWK writes it.
    let set: Value = serde_json::from_str(JWKS).unwrap();
    let n = set["keys"][1]["n"].as_str().unwrap().as_bytes();
    let confused = sign_with(
        Algorithm::HS256,
        Some("rs"),
        &EncodingKey::from_secret(n).unwrap(),
        &claims(),
    );
    assert_eq!(check(&confused), Err(Refusal::WrongAlgorithm));
    // alg none, with or without a signature; and an algorithm tickerd does not take.
    for alg in ["none", "None", "HS512", "PS256", ""] {
        let token = unsigned(&json!({ "alg": alg, "kid": "hs" }), &claims());
        assert_eq!(check(&token), Err(Refusal::WrongAlgorithm), "{alg}");
    }
    // HS384 with the right secret is still not HS256.
    let hs384 = sign_with(
        Algorithm::HS384,
        Some("hs"),
        &key_for(Algorithm::HS256),
        &claims(),
    );
    assert_eq!(check(&hs384), Err(Refusal::WrongAlgorithm));
}

#[test]
fn signatures_that_do_not_hold() {
    // Another secret under the same kid.
    let other = EncodingKey::from_secret(&[7; 32]).unwrap();
    let token = sign_with(Algorithm::HS256, Some("hs"), &other, &claims());
    assert_eq!(check(&token), Err(Refusal::BadSignature));
    // Claims changed after signing, for each algorithm.
    for (alg, kid) in [
        (Algorithm::HS256, "hs"),
        (Algorithm::RS256, "rs"),
        (Algorithm::ES256, "es"),
        (Algorithm::EdDSA, "ed"),
    ] {
        let token = sign(alg, kid, &claims());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = unsigned(&json!({}), &json!({ "sub": "mallory", "exp": NOW + 60 }));
        parts[1] = forged.split('.').nth(1).unwrap();
        assert_eq!(
            check(&parts.join(".")),
            Err(Refusal::BadSignature),
            "{alg:?}"
        );
        // No signature at all.
        parts[2] = "";
        assert_eq!(
            check(&parts.join(".")),
            Err(Refusal::BadSignature),
            "{alg:?}"
        );
    }
}

#[test]
fn kids() {
    let token = sign_with(
        Algorithm::HS256,
        Some("nope"),
        &key_for(Algorithm::HS256),
        &claims(),
    );
    assert_eq!(check(&token), Err(Refusal::UnknownKid));
    // Without a kid: refused by a set of several keys, taken by a set of one.
    let token = sign_with(
        Algorithm::HS256,
        None,
        &key_for(Algorithm::HS256),
        &claims(),
    );
    assert_eq!(check(&token), Err(Refusal::MissingKid));
    let set: Value = serde_json::from_str(JWKS).unwrap();
    let one = KeySet::parse(&json!({ "keys": [set["keys"][0]] }).to_string()).unwrap();
    assert_eq!(one.len(), 1);
    let v = verify(token.as_bytes(), &one, &Checks::default(), NOW).unwrap();
    assert_eq!(v.sub.as_deref(), Some("alice"));
}

#[test]
fn times_with_leeway() {
    let at = |exp: u64| check(&sign(Algorithm::HS256, "hs", &json!({ "exp": exp })));
    assert!(at(NOW + 1).is_ok());
    // Expired up to 5 s ago: accepted (the default leeway); at 5 s, refused.
    assert!(at(NOW).is_ok());
    assert!(at(NOW - 4).is_ok());
    assert_eq!(at(NOW - 5), Err(Refusal::Expired));
    assert_eq!(at(0), Err(Refusal::Expired));
    let no_leeway = Checks {
        leeway_s: 0,
        ..Checks::default()
    };
    let token = sign(Algorithm::HS256, "hs", &json!({ "exp": NOW }));
    assert_eq!(
        verify(token.as_bytes(), &keys(), &no_leeway, NOW),
        Err(Refusal::Expired)
    );
    // nbf: up to the leeway ahead is taken.
    let nbf = |nbf: Value| {
        check(&sign(
            Algorithm::HS256,
            "hs",
            &json!({ "exp": NOW + 60, "nbf": nbf }),
        ))
    };
    assert!(nbf(json!(NOW + 5)).is_ok());
    assert_eq!(nbf(json!(NOW + 6)), Err(Refusal::NotYetValid));
    assert_eq!(nbf(json!("soon")), Err(Refusal::BadClaim("nbf")));
    // A fractional NumericDate is taken.
    assert!(check(&sign(
        Algorithm::HS256,
        "hs",
        &json!({ "exp": NOW as f64 + 30.5 })
    ))
    .is_ok());
    // exp is required, and a number.
    for claims in [
        json!({ "sub": "a" }),
        json!({ "exp": "tomorrow" }),
        json!({ "exp": -1 }),
    ] {
        let token = sign(Algorithm::HS256, "hs", &claims);
        assert_eq!(check(&token), Err(Refusal::MissingExp), "{claims}");
    }
}

#[test]
fn issuer_and_audience() {
    let checks = Checks {
        issuer: Some("https://id.example".into()),
        audience: Some("tickerd".into()),
        ..Checks::default()
    };
    let with = |claims: Value| {
        let token = sign(Algorithm::ES256, "es", &claims);
        verify(token.as_bytes(), &keys(), &checks, NOW)
    };
    let exp = NOW + 60;
    assert!(with(json!({ "exp": exp, "iss": "https://id.example", "aud": "tickerd" })).is_ok());
    assert!(
        with(json!({ "exp": exp, "iss": "https://id.example", "aud": ["other", "tickerd"] }))
            .is_ok()
    );
    let refused = [
        (
            json!({ "exp": exp, "iss": "https://evil.example", "aud": "tickerd" }),
            Refusal::WrongIssuer,
        ),
        (
            json!({ "exp": exp, "aud": "tickerd" }),
            Refusal::WrongIssuer,
        ),
        (
            json!({ "exp": exp, "iss": "https://id.example", "aud": "other" }),
            Refusal::WrongAudience,
        ),
        (
            json!({ "exp": exp, "iss": "https://id.example", "aud": ["a", "b"] }),
            Refusal::WrongAudience,
        ),
        (
            json!({ "exp": exp, "iss": "https://id.example" }),
            Refusal::WrongAudience,
        ),
        (
            json!({ "exp": exp, "iss": "https://id.example", "aud": 7 }),
            Refusal::WrongAudience,
        ),
    ];
    for (claims, why) in refused {
        assert_eq!(with(claims.clone()), Err(why), "{claims}");
    }
    // Neither configured: iss and aud are not looked at.
    let token = sign(
        Algorithm::ES256,
        "es",
        &json!({ "exp": exp, "iss": "x", "aud": "y" }),
    );
    assert!(check(&token).is_ok());
}

#[test]
fn claims_of_the_wrong_type() {
    let cases = [
        ("sub", json!(7)),
        ("symbols", json!("AAPL")),
        ("symbols", json!(["AAPL", 1])),
        ("groups", json!({ "pro": true })),
        ("tier", json!(["realtime"])),
        ("publish", json!([null])),
    ];
    for (name, value) in cases {
        let mut claims = claims();
        claims[name] = value;
        let token = sign(Algorithm::EdDSA, "ed", &claims);
        assert_eq!(check(&token), Err(Refusal::BadClaim(name)), "{claims}");
    }
}

#[test]
fn malformed_tokens() {
    let good = sign(Algorithm::HS256, "hs", &claims());
    let cases = [
        String::new(),
        "abc".into(),
        "a.b".into(),
        "a.b.c".into(),
        format!("{good}.x"),
        format!("x{good}"),
        unsigned(&json!("HS256"), &claims()),
        unsigned(&json!({ "alg": "HS256", "kid": 5 }), &claims()),
        "x".repeat(MAX_TOKEN + 1),
    ];
    for token in &cases {
        assert_eq!(check(token), Err(Refusal::Malformed), "{token}");
    }
    // A payload that is not a JSON object, well signed.
    let key = key_for(Algorithm::HS256);
    let token = encode(&Header::new(Algorithm::HS256), &json!([1, 2]), &key).unwrap();
    let one = KeySet::parse(
        &json!({ "keys": [serde_json::from_str::<Value>(JWKS).unwrap()["keys"][0]] }).to_string(),
    )
    .unwrap();
    assert_eq!(
        verify(token.as_bytes(), &one, &Checks::default(), NOW),
        Err(Refusal::Malformed)
    );
}

#[test]
fn a_refusal_never_shows_the_token() {
    let token = sign(Algorithm::HS256, "hs", &json!({ "exp": 1 }));
    let why = check(&token).unwrap_err().to_string();
    assert_eq!(why, "expired");
    for part in token.split('.') {
        assert!(!why.contains(part));
    }
}

mod keys;
mod sources;
