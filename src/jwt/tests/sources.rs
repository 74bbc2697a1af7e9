//! Where a token comes from (bearer, cookie, query) and its redaction.

use super::*;

#[test]
fn bearer_tokens() {
    assert_eq!(
        source::bearer(b"Bearer abc.def.ghi"),
        Some(&b"abc.def.ghi"[..])
    );
    assert_eq!(source::bearer(b"bearer  abc"), Some(&b"abc"[..]));
    assert_eq!(source::bearer(b"BEARER abc== "), Some(&b"abc=="[..]));
    for refused in [
        &b"Basic YWxhZGRpbjpvcGVuc2VzYW1l"[..],
        b"Bearer",
        b"Bearer ",
        b"Bearerabc",
        b"Bearer a b",
        b"Bearer =abc",
        b"Bearer a=b",
    ] {
        assert_eq!(
            source::bearer(refused),
            None,
            "{}",
            String::from_utf8_lossy(refused)
        );
    }
}

#[test]
fn cookies() {
    let header = b"theme=dark; tk=abc.def.ghi; other=1";
    assert_eq!(source::cookie(header, "tk"), Some(&b"abc.def.ghi"[..]));
    assert_eq!(source::cookie(b"tk=\"abc\"", "tk"), Some(&b"abc"[..]));
    assert_eq!(
        source::cookie(b"tk=first;tk=second", "tk"),
        Some(&b"first"[..])
    );
    assert_eq!(source::cookie(header, "TK"), None);
    assert_eq!(source::cookie(b"xtk=a; tk2=b", "tk"), None);
    assert_eq!(source::cookie(b"tk=", "tk"), None);
    assert_eq!(source::cookie(b"", "tk"), None);
}

#[test]
fn query_tokens_and_precedence() {
    assert_eq!(
        source::query(b"symbols=AAPL&access_token=a.b.c"),
        Some(b"a.b.c".to_vec())
    );
    assert_eq!(
        source::query(b"access%5Ftoken=a.b.c"),
        Some(b"a.b.c".to_vec())
    );
    assert_eq!(source::query(b"access_token="), None);
    assert_eq!(source::query(b"access_token=a%20b"), None);
    assert_eq!(source::query(b"x_access_token=a"), None);

    let find = |auth: Option<&'static [u8]>, cookie: Option<&'static [u8]>, query: &[u8]| {
        source::find(auth, cookie, Some("tk"), query).map(|(s, t)| (s, t.into_owned()))
    };
    let q = b"access_token=from.query";
    assert_eq!(
        find(Some(b"Bearer from.header"), Some(b"tk=from.cookie"), q),
        Some((Source::Bearer, b"from.header".to_vec()))
    );
    // A Basic header (a front-end's) is not a token: the next source is looked at.
    assert_eq!(
        find(Some(b"Basic eA=="), Some(b"a=1; tk=from.cookie"), q),
        Some((Source::Cookie, b"from.cookie".to_vec()))
    );
    assert_eq!(
        find(None, Some(b"a=1"), q),
        Some((Source::Query, b"from.query".to_vec()))
    );
    assert_eq!(find(None, None, b"symbols=AAPL"), None);
    // Without --auth-cookie, cookies are not looked at.
    assert_eq!(
        source::find(None, Some(b"tk=from.cookie"), None, b"").map(|(s, _)| s),
        None
    );
}

#[test]
fn access_tokens_are_redacted() {
    let cases = [
        ("access_token=a.b.c", "access_token=[redacted]"),
        (
            "symbols=AAPL&access_token=a.b.c",
            "symbols=AAPL&access_token=[redacted]",
        ),
        (
            "GET /ticker?access_token=a.b.c&symbols=AAPL HTTP/1.1",
            "GET /ticker?access_token=[redacted]&symbols=AAPL HTTP/1.1",
        ),
        (
            "/ticker?a=1&access%5Ftoken=x&access_token=y",
            "/ticker?a=1&access%5Ftoken=[redacted]&access_token=[redacted]",
        ),
        ("access_token=", "access_token=[redacted]"),
        ("symbols=AAPL", "symbols=AAPL"),
        (
            "x_access_token=a&access_tokens=b",
            "x_access_token=a&access_tokens=b",
        ),
    ];
    for (text, redacted) in cases {
        assert_eq!(source::redact_access_token(text), redacted, "{text}");
        assert_eq!(source::query(redacted.as_bytes()), None);
    }
}
