//! Tokens and key files on any bytes: never a panic. The bytes as a token against the test
//! key set (src/jwt/testdata/jwks.json) at a fixed time, issuer and audience set: a token
//! taken has not expired beyond the leeway. The bytes as a JWKS file: a set taken has keys.
//! The bytes as a query or a request line: once redacted, no access_token is left in it.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tickerd::jwt::{self, source, Checks, KeySet};

const NOW: u64 = 1_800_000_000;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| KeySet::parse(include_str!("../../src/jwt/testdata/jwks.json")).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let checks = Checks {
        issuer: Some("https://id.example".into()),
        audience: Some("tickerd".into()),
        leeway_s: 5,
    };
    if let Ok(v) = jwt::verify(data, keys(), &checks, NOW) {
        assert!(v.exp + checks.leeway_s > NOW);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(set) = KeySet::parse(text) {
            assert!(!set.is_empty());
        }
        let redacted = source::redact_access_token(text);
        assert_eq!(source::query(redacted.as_bytes()), None, "{redacted}");
    }
    let _ = source::bearer(data);
    let _ = source::cookie(data, "tk");
});
