//! Key sets refused with the key and the problem named.

use super::*;

#[test]
fn key_set_errors_name_the_key_and_the_problem() {
    let set: Value = serde_json::from_str(JWKS).unwrap();
    let good = |i: usize| set["keys"][i].clone();
    let with = |mut k: Value, name: &str, v: Value| {
        if v.is_null() {
            k.as_object_mut().unwrap().remove(name);
        } else {
            k[name] = v;
        }
        k
    };
    let one = |k: Value| {
        KeySet::parse(&json!({ "keys": [good(0), k] }).to_string())
            .unwrap_err()
            .to_string()
    };
    let cases = [
        (
            with(good(1), "kid", Value::Null),
            "key 1: no \"kid\" (every key needs one)",
        ),
        (
            with(good(1), "alg", Value::Null),
            "key 1 (kid \"rs\"): no \"alg\" (every key needs one)",
        ),
        (
            with(good(1), "alg", json!("RS512")),
            "key 1 (kid \"rs\"): alg \"RS512\" is not HS256, RS256, ES256 or EdDSA",
        ),
        (
            with(good(1), "alg", json!("none")),
            "key 1 (kid \"rs\"): alg \"none\" is not HS256, RS256, ES256 or EdDSA",
        ),
        (
            with(good(1), "alg", json!("HS256")),
            "key 1 (kid \"rs\"): alg HS256 needs kty \"oct\", not \"RSA\"",
        ),
        (
            with(good(2), "alg", json!("EdDSA")),
            "key 1 (kid \"es\"): alg EdDSA needs kty \"OKP\", not \"EC\"",
        ),
        (
            with(good(1), "kid", json!("hs")),
            "key 1 (kid \"hs\"): the same \"kid\" as an earlier key",
        ),
        (
            with(good(1), "use", json!("enc")),
            "key 1 (kid \"rs\"): \"use\" is not \"sig\"",
        ),
        (
            with(good(1), "n", json!("AQAB")),
            "key 1 (kid \"rs\"): bad key material: an RSA modulus needs at least 2048 bits",
        ),
        (
            with(good(1), "e", json!("AQ")),
            "key 1 (kid \"rs\"): bad key material: the RSA exponent is not an odd number above 1",
        ),
        (
            with(good(1), "e", Value::Null),
            "key 1 (kid \"rs\"): bad key material: not the members a RSA key has",
        ),
        (
            with(good(0), "k", json!("c2hvcnQ")),
            "key 1 (kid \"hs\"): bad key material: an HS256 secret needs at least 32 bytes",
        ),
        (
            with(with(good(0), "kid", json!("h2")), "k", json!("!!")),
            "key 1 (kid \"h2\"): bad key material: \"k\" is not base64url",
        ),
        (
            with(good(2), "crv", json!("P-384")),
            "key 1 (kid \"es\"): bad key material: an ES256 key must be on crv P-256",
        ),
        // A point that is not on P-256.
        (
            with(
                good(2),
                "y",
                json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ),
            "key 1 (kid \"es\"): bad key material: InvalidEcdsaKey",
        ),
        (
            with(good(3), "x", json!("AAAA")),
            "key 1 (kid \"ed\"): bad key material: an Ed25519 public key is 32 bytes",
        ),
        (json!("a key"), "key 1: not a JSON object"),
    ];
    for (key, expected) in cases {
        assert_eq!(one(key.clone()), expected, "{key}");
    }
    let whole = |text: &str| KeySet::parse(text).unwrap_err();
    assert_eq!(whole(r#"{"keys": []}"#), KeysError::Empty);
    assert!(matches!(whole(r#"{"key": []}"#), KeysError::NotASet(_)));
    assert!(matches!(whole("{"), KeysError::NotASet(_)));
    assert!(matches!(
        KeySet::load(std::path::Path::new("/nonexistent/jwks.json")),
        Err(KeysError::Read(_))
    ));
    // The four keys, in order.
    let set = keys();
    let kinds: Vec<_> = set.keys().iter().map(|k| (k.kid.as_str(), k.alg)).collect();
    assert_eq!(
        kinds,
        [
            ("hs", Alg::HS256),
            ("rs", Alg::RS256),
            ("es", Alg::ES256),
            ("ed", Alg::EdDSA)
        ]
    );
}
