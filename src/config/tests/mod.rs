//! The command line, through its one entry point: [`Config::from_args`] with the process
//! environment. clap reads the environment when it builds the command, so every parse here
//! holds one lock and sees exactly the variables its test sets.

use std::sync::Mutex;
use std::time::Duration;

use super::*;

mod ranges;
mod variables;

static ENV_LOCK: Mutex<()> = Mutex::new(());

/// Every flag's variable, as the help must show it. A flag added without one, or with
/// another name, fails `the_help_lists_every_flag_with_its_variable`.
const VARIABLES: &[(&str, &str)] = &[
    ("--scgi", "TICKERD_SCGI"),
    ("--scgi-socket-mode", "TICKERD_SCGI_SOCKET_MODE"),
    ("--http", "TICKERD_HTTP"),
    ("--symbols", "TICKERD_SYMBOLS"),
    ("--symbols-file", "TICKERD_SYMBOLS_FILE"),
    ("--fields", "TICKERD_FIELDS"),
    ("--decimals", "TICKERD_DECIMALS"),
    ("--initial-price", "TICKERD_INITIAL_PRICE"),
    ("--tick-ms", "TICKERD_TICK_MS"),
    ("--heartbeat-s", "TICKERD_HEARTBEAT_S"),
    ("--retry-ms", "TICKERD_RETRY_MS"),
    ("--coalesce-ms", "TICKERD_COALESCE_MS"),
    ("--max-hz", "TICKERD_MAX_HZ"),
    ("--max-symbols-per-client", "TICKERD_MAX_SYMBOLS_PER_CLIENT"),
    ("--long-poll-s", "TICKERD_LONG_POLL_S"),
    ("--max-clients", "TICKERD_MAX_CLIENTS"),
    ("--request-timeout-s", "TICKERD_REQUEST_TIMEOUT_S"),
    ("--max-scgi-header", "TICKERD_MAX_SCGI_HEADER"),
    ("--max-publish-bytes", "TICKERD_MAX_PUBLISH_BYTES"),
    ("--publish-token-file", "TICKERD_PUBLISH_TOKEN_FILE"),
    ("--entitlements", "TICKERD_ENTITLEMENTS"),
    ("--trust-remote-user", "TICKERD_TRUST_REMOTE_USER"),
    ("--jwt-jwks", "TICKERD_JWT_JWKS"),
    ("--jwt-issuer", "TICKERD_JWT_ISSUER"),
    ("--jwt-audience", "TICKERD_JWT_AUDIENCE"),
    ("--jwt-leeway-s", "TICKERD_JWT_LEEWAY_S"),
    ("--auth-cookie", "TICKERD_AUTH_COOKIE"),
    ("--redis", "TICKERD_REDIS"),
    ("--redis-key", "TICKERD_REDIS_KEY"),
    ("--redis-maxlen", "TICKERD_REDIS_MAXLEN"),
];

/// `args` parsed with exactly `vars` among the declared variables (the others unset for the
/// parse, and everything restored after it).
fn parse_with(args: &[&str], vars: &[(&str, &str)]) -> Result<Command, ConfigError> {
    let _held = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let declared: Vec<OsString> = cli::command()
        .get_arguments()
        .filter_map(|a| a.get_env().map(|v| v.to_owned()))
        .collect();
    let saved: Vec<(OsString, OsString)> = declared
        .iter()
        .filter_map(|name| std::env::var_os(name).map(|v| (name.clone(), v)))
        .collect();
    for name in &declared {
        std::env::remove_var(name);
    }
    for (name, value) in vars {
        std::env::set_var(name, value);
    }
    let result = Config::from_args(args.iter().copied());
    for name in &declared {
        std::env::remove_var(name);
    }
    for (name, value) in saved {
        std::env::set_var(name, value);
    }
    result
}

fn parse(args: &[&str]) -> Result<Command, ConfigError> {
    parse_with(args, &[])
}

fn config_with(args: &[&str], vars: &[(&str, &str)]) -> Config {
    match parse_with(args, vars) {
        Ok(Command::Run(c)) => *c,
        other => panic!("{args:?} {vars:?}: expected a config, got {other:?}"),
    }
}

fn config(args: &[&str]) -> Config {
    config_with(args, &[])
}

/// A config as text, for comparing two whole configs; where the universe came from is left
/// out (it names the flag or the variable).
fn text(mut c: Config) -> String {
    c.universe_source.clear();
    format!("{c:?}")
}

fn help(flag: &str) -> String {
    match parse(&[flag]) {
        Ok(Command::Help(text)) => text,
        other => panic!("{flag}: {other:?}"),
    }
}

/// A file that is removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("tickerd-config-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn defaults() {
    let c = config(&[]);
    assert_eq!(
        c.scgi,
        Some(ListenAddr::Tcp("127.0.0.1:9000".parse().unwrap()))
    );
    assert_eq!(
        c.http,
        Some(ListenAddr::Tcp("127.0.0.1:8080".parse().unwrap()))
    );
    assert_eq!(c.tick, Some(Duration::from_secs(1)));
    assert_eq!(c.heartbeat, Some(Duration::from_secs(15)));
    assert_eq!(c.retry_ms, 3000);
    assert!(c.publish_token.is_none());
    // And the rest, which the help states.
    assert!(!c.http_given);
    assert_eq!(c.socket_mode, 0o660);
    assert_eq!(c.max_clients, None);
    assert_eq!(c.request_timeout, Duration::from_secs(10));
    assert_eq!(c.long_poll_hold, Duration::from_secs(30));
    assert_eq!(c.max_scgi_header, 16 * 1024);
    assert_eq!(c.initial_price.to_string(), "100");
    assert_eq!(c.universe_source, "the demo universe");
    assert_eq!(c.redis, None);
    assert_eq!(c.redis_key, "tickerd");
    assert_eq!(c.redis_maxlen, 10_000);
}

#[test]
fn flags_in_both_forms() {
    let c = config(&["--scgi", "unix:/tmp/t.sock", "--http=off", "--tick-ms", "0"]);
    assert_eq!(c.scgi, Some(ListenAddr::Unix("/tmp/t.sock".into())));
    assert_eq!(c.http, None);
    assert_eq!(c.tick, None);
}

#[test]
fn a_flag_given_twice_counts_once_the_last() {
    let c = config(&[
        "--tick-ms",
        "5",
        "--tick-ms=7",
        "--http",
        "off",
        "--http",
        "[::1]:1",
    ]);
    assert_eq!(c.tick, Some(Duration::from_millis(7)));
    assert_eq!(c.http, Some(ListenAddr::Tcp("[::1]:1".parse().unwrap())));
}

#[test]
fn errors_name_the_flag() {
    for (args, word) in [
        (&["--tick-ms", "x"][..], "--tick-ms"),
        (&["--http", "unix:/x"][..], "--http"),
        (&["--bogus"][..], "--bogus"),
        (&["--retry-ms"][..], "--retry-ms"),
        (&["--max-clients", "0"][..], "--max-clients"),
        (
            &["--heartbeat-s", "18446744073709551615"][..],
            "--heartbeat-s",
        ),
        (&["--request-timeout-s", "86401"][..], "--request-timeout-s"),
        (&["--tick-ms", "99999999999"][..], "--tick-ms"),
        (&["--publish-token", "s3cret"][..], "--publish-token"),
        (&["--scgi", "off", "--http", "off"][..], "--scgi"),
        (
            &["--symbols", "A,B,a"][..],
            "--symbols: entry 3: A is a duplicate",
        ),
        (&["--symbols", "A,B C"][..], "--symbols: entry 2: \"B C\""),
        (&["--symbols", "A", "--symbols-file", "/x"][..], "not both"),
        (
            &["--symbols-file", "/nonexistent"][..],
            "--symbols-file: cannot read",
        ),
        (
            &["--max-symbols-per-client", "1025"][..],
            "--max-symbols-per-client",
        ),
        (
            &["--max-symbols-per-client", "0"][..],
            "--max-symbols-per-client",
        ),
        (&["--coalesce-ms", "60001"][..], "--coalesce-ms"),
        (&["--redis", "nowhere"][..], "--redis"),
        (&["--redis-key", "a b"][..], "--redis-key"),
        (&["--redis-maxlen", "0"][..], "--redis-maxlen"),
        // And what clap itself refuses, still as one line.
        (&["--tick-ms", "-5"][..], "--tick-ms"),
        (
            &["--tickms", "5"][..],
            "similar argument exists: '--tick-ms'",
        ),
        (&["stray"][..], "'stray'"),
        (
            &["--publish-token-file", "/nonexistent"][..],
            "--publish-token-file: cannot read",
        ),
    ] {
        let err = parse(args).unwrap_err();
        assert!(err.0.contains(word), "{err} should name {word}");
        assert!(!err.0.contains("s3cret"), "a token must never be echoed");
        assert_eq!(err.0.lines().count(), 1, "{err:?}");
        assert!(!err.0.starts_with("error:"), "{err}");
    }
}

#[test]
fn the_universe() {
    let c = config(&[]);
    assert_eq!(c.universe, crate::listing::demo());
    assert_eq!(c.universe[0].symbol.as_str(), "AAPL");
    assert_eq!(c.schema, Schema::quote());
    let c = config(&["--symbols", "x=1.5,y", "--initial-price", "7"]);
    assert_eq!(c.schema, Schema::single_price());
    assert_eq!(
        headlines(&c),
        [
            ("X".to_string(), "1.5".to_string()),
            ("Y".to_string(), "7.00".to_string())
        ]
    );
    assert_eq!(c.universe_source, "--symbols (2 symbols)");
    assert_eq!(c.max_symbols_per_client, 64);
    assert_eq!(c.max_publish_bytes, 65536);
    assert_eq!(c.coalesce, None);
    let c = config(&["--max-symbols-per-client", "1024", "--coalesce-ms", "250"]);
    assert_eq!(
        (c.max_symbols_per_client, c.coalesce),
        (1024, Some(Duration::from_millis(250)))
    );
    let file = TempFile::new("universe", "# u\nmsft 2\naapl\n");
    let c = config(&[
        "--symbols-file",
        file.path(),
        "--initial-price",
        "3",
        "--decimals",
        "4",
    ]);
    assert_eq!(
        headlines(&c),
        [
            ("MSFT".to_string(), "2.0000".to_string()),
            ("AAPL".to_string(), "3.0000".to_string())
        ]
    );
    assert_eq!(c.universe_source, "--symbols-file (2 symbols)");
    let c = config(&["--fields", "bid:price,size:qty"]);
    assert_eq!(c.schema.len(), 2);
    assert_eq!(
        headlines(&c)[0],
        ("AAPL".to_string(), "189.20".to_string()),
        "the demo's symbols, headlines only"
    );
}

#[test]
fn records_and_rates() {
    let c = config(&["--max-hz", "4"]);
    assert_eq!(c.max_hz, Some(Duration::from_millis(250)));
    assert_eq!(config(&[]).max_hz, None);
    for (args, want) in [
        (&["--max-hz", "0"][..], "--max-hz"),
        (&["--max-hz", "1001"][..], "--max-hz"),
        (&["--fields", "bid:float"][..], "\"float\" is not a type"),
        (&["--decimals", "10"][..], "--decimals"),
        (&["--initial-price", "1.5.5"][..], "--initial-price"),
        (&["--symbols", "A=1.005", "--fields", "p:price"][..], ""),
        (
            &[
                "--symbols",
                "A",
                "--decimals",
                "0",
                "--initial-price",
                "1.5",
            ][..],
            "more than the symbol's 0 decimals",
        ),
    ] {
        match Config::from_args(args.iter().copied()) {
            Err(err) => assert!(err.0.contains(want), "{args:?}: {err}"),
            Ok(_) if want.is_empty() => {}
            Ok(_) => panic!("{args:?} accepted"),
        }
    }
}

/// Each symbol's name and headline.
fn headlines(c: &Config) -> Vec<(String, String)> {
    c.universe
        .iter()
        .map(|l| (l.symbol.to_string(), l.values[0].1.to_string()))
        .collect()
}

#[test]
fn token_from_env_is_trimmed() {
    let c = config_with(&[], &[("TICKERD_PUBLISH_TOKEN", "abc\n")]);
    assert_eq!(c.publish_token.as_deref(), Some("abc"));
}

#[test]
fn the_token() {
    let file = TempFile::new("token", "from-file\n");
    // The file wins over the variable.
    let c = config_with(
        &["--publish-token-file", file.path()],
        &[("TICKERD_PUBLISH_TOKEN", "from-env")],
    );
    assert_eq!(c.publish_token.as_deref(), Some("from-file"));
    let empty = TempFile::new("empty-token", " \n");
    let err = parse(&["--publish-token-file", empty.path()]).unwrap_err();
    assert!(
        err.0.starts_with("--publish-token-file: ") && err.0.ends_with("is empty"),
        "{err}"
    );
    let err = parse_with(&[], &[("TICKERD_PUBLISH_TOKEN", " ")]).unwrap_err();
    assert_eq!(err.0, "TICKERD_PUBLISH_TOKEN is empty");
    // Refused on the command line, whatever else is there, and never echoed.
    for args in [
        &["--publish-token", "s3cret"][..],
        &["--publish-token=-s3cret"][..],
        &["--publish-token"][..],
    ] {
        let err = parse_with(args, &[("TICKERD_PUBLISH_TOKEN", "s3cret")]).unwrap_err();
        assert_eq!(
            err.0,
            "--publish-token is refused: a token on the command line shows in ps; \
             use --publish-token-file or TICKERD_PUBLISH_TOKEN"
        );
    }
}

#[test]
fn check_help_and_version() {
    assert!(matches!(parse(&["--check"]), Ok(Command::Check(_))));
    assert!(matches!(
        parse(&["--tick-ms", "5", "--check"]),
        Ok(Command::Check(_))
    ));
    // --check checks: a bad configuration is an error, not a valid check.
    assert!(parse(&["--check", "--tick-ms", "x"]).is_err());
    let version = format!("tickerd {}\n", env!("CARGO_PKG_VERSION"));
    for flag in ["-V", "--version"] {
        match parse(&[flag]) {
            Ok(Command::Version(text)) => assert_eq!(text, version),
            other => panic!("{flag}: {other:?}"),
        }
    }
    // --check is an action: no variable sets it.
    let found = cli::command()
        .get_arguments()
        .find(|a| a.get_long() == Some("check"))
        .map(|a| a.get_env().is_none());
    assert_eq!(found, Some(true));
}

#[test]
fn the_help_lists_every_flag_with_its_variable() {
    for flag in ["-h", "--help"] {
        let text = help(flag);
        for (flag, variable) in VARIABLES {
            // A switch such as --trust-remote-user takes an optional value: `[<BOOL>]`.
            assert!(
                text.contains(&format!("{flag} <")) || text.contains(&format!("{flag} [<")),
                "{flag} missing:\n{text}"
            );
            // The short help may wrap "[env: NAME]" after "[env:".
            let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                flat.contains(&format!("[env: {variable}]")),
                "{variable} missing:\n{text}"
            );
        }
        for word in [
            "--check",
            "--version",
            "TICKERD_PUBLISH_TOKEN",
            "RUST_LOG",
            "SIGUSR2",
        ] {
            assert!(text.contains(word), "{word} missing:\n{text}");
        }
        // The token flag exists only to be refused.
        assert!(!text.contains("--publish-token <"), "{text}");
    }
    // The declaration has no flag the table lacks, and every variable follows the rule.
    let command = cli::command();
    let settable: Vec<(String, String)> = command
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| {
            let env = a.get_env()?.to_str()?.to_string();
            Some((format!("--{}", a.get_long()?), env))
        })
        .collect();
    let table: Vec<(String, String)> = VARIABLES
        .iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect();
    assert_eq!(settable, table);
    for (flag, variable) in VARIABLES {
        assert_eq!(variable_of(flag), *variable);
    }
}

#[test]
fn the_jwt_flags() {
    let plain = config(&[]);
    assert!(plain.jwt_keys.is_none() && plain.auth_cookie.is_none());
    assert_eq!(plain.jwt_checks, crate::jwt::Checks::default());
    let jwks = concat!(env!("CARGO_MANIFEST_DIR"), "/src/jwt/testdata/jwks.json");
    let c = config(&[
        "--jwt-jwks",
        jwks,
        "--jwt-issuer",
        "https://id.example",
        "--jwt-leeway-s",
        "0",
        "--auth-cookie",
        "tk",
    ]);
    assert_eq!(c.jwt_keys.map(|k| k.len()), Some(4));
    assert_eq!(c.jwt_checks.issuer.as_deref(), Some("https://id.example"));
    assert_eq!(c.jwt_checks.leeway_s, 0);
    assert_eq!(c.auth_cookie.as_deref(), Some("tk"));
    let err = parse(&["--jwt-jwks", "/nonexistent"]).unwrap_err();
    assert!(
        err.0
            .starts_with("--jwt-jwks: cannot read the key set: /nonexistent"),
        "{err}"
    );
    let bad = TempFile::new("jwks-bad", "{\"keys\": []}");
    let err = parse(&["--jwt-jwks", bad.path()]).unwrap_err();
    assert!(err.0.ends_with("the key set has no keys"), "{err}");
    assert!(parse(&["--auth-cookie", "a b"]).is_err());
}

#[test]
fn the_entitlements_file() {
    assert!(config(&[]).entitlements.is_none());
    assert!(!config(&[]).trust_remote_user);
    assert!(config(&["--trust-remote-user"]).trust_remote_user);
    let good = TempFile::new("rights-good", "[anonymous]\nsymbols = [\"AAPL\"]\n");
    assert!(config(&["--entitlements", good.path()])
        .entitlements
        .is_some());
    // A bad file: refused, naming the flag, the path and the line.
    let bad = TempFile::new(
        "rights-bad",
        "[anonymous]\nsymbols = [\"AAPL\"]\ntier = \"15 min\"\n",
    );
    let err = parse(&["--entitlements", bad.path()]).unwrap_err();
    assert!(
        err.0
            .starts_with(&format!("--entitlements: {}: line 3", bad.path())),
        "{err}"
    );
    // A delayed tier: refused, naming the section (delayed streams are not served yet).
    let delayed = TempFile::new(
        "rights-delayed",
        "[groups.pro]\nsymbols = [\"*\"]\n[anonymous]\nsymbols = [\"A\"]\ntier = \"15m\"\n",
    );
    let err = parse(&["--entitlements", delayed.path()]).unwrap_err();
    assert!(
        err.0
            .contains("[anonymous]: tier \"15m\": delayed tiers are not served yet"),
        "{err}"
    );
    let err = parse(&["--entitlements", "/nonexistent"]).unwrap_err();
    assert!(err.0.starts_with("--entitlements: /nonexistent: "), "{err}");
}
