//! Every range the declaration checks, at both edges.

use super::*;

#[test]
fn ranges_at_both_edges() {
    // (flag, the lowest accepted, the highest accepted, just below, just above)
    for (flag, lowest, highest, below, above) in [
        ("--scgi-socket-mode", "0", "777", None, Some("1000")),
        ("--tick-ms", "0", "86400000", Some("-1"), Some("86400001")),
        ("--heartbeat-s", "0", "86400", Some("-1"), Some("86401")),
        ("--retry-ms", "0", "86400000", Some("-1"), Some("86400001")),
        ("--coalesce-ms", "0", "60000", Some("-1"), Some("60001")),
        (
            "--max-symbols-per-client",
            "1",
            "1024",
            Some("0"),
            Some("1025"),
        ),
        ("--long-poll-s", "1", "86400", Some("0"), Some("86401")),
        (
            "--max-clients",
            "1",
            "2147483647",
            Some("0"),
            Some("2147483648"),
        ),
        (
            "--request-timeout-s",
            "1",
            "86400",
            Some("0"),
            Some("86401"),
        ),
        (
            "--max-scgi-header",
            "64",
            "1048576",
            Some("63"),
            Some("1048577"),
        ),
        (
            "--max-publish-bytes",
            "64",
            "16777216",
            Some("63"),
            Some("16777217"),
        ),
        (
            "--redis-maxlen",
            "1",
            "100000000",
            Some("0"),
            Some("100000001"),
        ),
        (
            "--initial-price",
            "-9223372036854775808",
            "9223372036854775807",
            Some("-9223372036854775809"),
            Some("9223372036854775808"),
        ),
        ("--decimals", "0", "9", Some("-1"), Some("10")),
        ("--max-hz", "0.001", "1000", Some("0"), Some("1000.001")),
        (
            "--redis-key",
            "k",
            &"k".repeat(100),
            Some(""),
            Some(&"k".repeat(101)),
        ),
    ] {
        for value in [lowest, highest] {
            assert!(parse(&[flag, value]).is_ok(), "{flag} {value} is refused");
        }
        for value in [below, above].into_iter().flatten() {
            let arg = format!("{flag}={value}");
            let err = parse(&[&arg]).unwrap_err();
            assert!(err.0.contains(&format!("'{flag} <")), "{arg}: {err}");
        }
    }
    // What the edges mean.
    let c = config(&[
        "--tick-ms",
        "86400000",
        "--heartbeat-s",
        "0",
        "--coalesce-ms",
        "60000",
    ]);
    assert_eq!(c.tick, Some(Duration::from_secs(86_400)));
    assert_eq!(c.heartbeat, None);
    assert_eq!(c.coalesce, Some(Duration::from_secs(60)));
    let c = config(&["--scgi-socket-mode", "777", "--initial-price", "0.01"]);
    assert_eq!(
        (c.socket_mode, c.initial_price.to_string()),
        (0o777, "0.01".to_string())
    );
    let c = config(&[
        "--max-clients",
        "1",
        "--request-timeout-s",
        "1",
        "--long-poll-s",
        "86400",
    ]);
    assert_eq!(c.max_clients, Some(1));
    assert_eq!(c.request_timeout, Duration::from_secs(1));
    assert_eq!(c.long_poll_hold, Duration::from_secs(86_400));
}
