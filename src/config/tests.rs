//! The command line, through its one entry point: [`Config::from_args`] with the process
//! environment. clap reads the environment when it builds the command, so every parse here
//! holds one lock and sees exactly the variables its test sets.

use std::sync::Mutex;
use std::time::Duration;

use super::*;

static ENV_LOCK: Mutex<()> = Mutex::new(());

/// Every flag's variable, as the help must show it. A flag added without one, or with
/// another name, fails `the_help_lists_every_flag_with_its_variable`.
const VARIABLES: &[(&str, &str)] = &[
    ("--scgi", "TICKERD_SCGI"),
    ("--scgi-socket-mode", "TICKERD_SCGI_SOCKET_MODE"),
    ("--http", "TICKERD_HTTP"),
    ("--symbols", "TICKERD_SYMBOLS"),
    ("--symbols-file", "TICKERD_SYMBOLS_FILE"),
    ("--initial-price", "TICKERD_INITIAL_PRICE"),
    ("--tick-ms", "TICKERD_TICK_MS"),
    ("--heartbeat-s", "TICKERD_HEARTBEAT_S"),
    ("--retry-ms", "TICKERD_RETRY_MS"),
    ("--coalesce-ms", "TICKERD_COALESCE_MS"),
    ("--max-symbols-per-client", "TICKERD_MAX_SYMBOLS_PER_CLIENT"),
    ("--long-poll-s", "TICKERD_LONG_POLL_S"),
    ("--max-clients", "TICKERD_MAX_CLIENTS"),
    ("--request-timeout-s", "TICKERD_REQUEST_TIMEOUT_S"),
    ("--max-scgi-header", "TICKERD_MAX_SCGI_HEADER"),
    ("--max-publish-bytes", "TICKERD_MAX_PUBLISH_BYTES"),
    ("--publish-token-file", "TICKERD_PUBLISH_TOKEN_FILE"),
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
    assert_eq!(c.initial_price_cents, 10_000);
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
    assert_eq!(c.universe.len(), crate::universe::DEMO.len());
    assert_eq!(c.universe[0].0.as_str(), "AAPL");
    let c = config(&["--symbols", "x=1.5,y", "--initial-price", "7"]);
    let got: Vec<(String, u64)> = c
        .universe
        .iter()
        .map(|(s, c)| (s.to_string(), *c))
        .collect();
    assert_eq!(got, [("X".to_string(), 150), ("Y".to_string(), 700)]);
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
    let c = config(&["--symbols-file", file.path(), "--initial-price", "3"]);
    let got: Vec<(String, u64)> = c
        .universe
        .iter()
        .map(|(s, c)| (s.to_string(), *c))
        .collect();
    assert_eq!(got, [("MSFT".to_string(), 200), ("AAPL".to_string(), 300)]);
    assert_eq!(c.universe_source, "--symbols-file (2 symbols)");
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
            assert!(
                text.contains(&format!("{flag} <")),
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

/// One value of each flag, different from its default.
fn one_value_each(symbols_file: &str, token_file: &str) -> Vec<(&'static str, String)> {
    [
        ("--scgi", "unix:/run/t/scgi.sock"),
        ("--scgi-socket-mode", "600"),
        ("--http", "127.0.0.1:8081"),
        ("--symbols", "AA=1,BB"),
        ("--symbols-file", symbols_file),
        ("--initial-price", "2.50"),
        ("--tick-ms", "250"),
        ("--heartbeat-s", "0"),
        ("--retry-ms", "500"),
        ("--coalesce-ms", "100"),
        ("--max-symbols-per-client", "8"),
        ("--long-poll-s", "5"),
        ("--max-clients", "100"),
        ("--request-timeout-s", "3"),
        ("--max-scgi-header", "1024"),
        ("--max-publish-bytes", "4096"),
        ("--publish-token-file", token_file),
        ("--redis", "127.0.0.1:6379"),
        ("--redis-key", "prices"),
        ("--redis-maxlen", "500"),
    ]
    .into_iter()
    .map(|(f, v)| (f, v.to_string()))
    .collect()
}

#[test]
fn every_flag_can_be_set_from_its_variable() {
    let symbols = TempFile::new("symbols-from-env", "CC 3\nDD\n");
    let token = TempFile::new("token-from-env", "t0ken\n");
    let values = one_value_each(symbols.path(), token.path());
    assert_eq!(values.len(), VARIABLES.len());
    let default = text(config(&[]));
    for (flag, value) in &values {
        let variable = variable_of(flag);
        let by_arg = config(&[flag, value]);
        let by_env = config_with(&[], &[(&variable, value)]);
        assert_ne!(
            text(by_arg.clone()),
            default,
            "{flag} {value} changes nothing"
        );
        assert_eq!(
            text(by_env),
            text(by_arg),
            "{variable}={value} is not {flag} {value}"
        );
    }
    // The universe says where it came from.
    let c = config_with(&[], &[("TICKERD_SYMBOLS_FILE", symbols.path())]);
    assert_eq!(c.universe_source, "TICKERD_SYMBOLS_FILE (2 symbols)");
}

#[test]
fn an_argument_wins_over_its_variable() {
    let symbols = TempFile::new("symbols-arg", "CC 3\nDD\n");
    let token = TempFile::new("token-arg", "t0ken\n");
    let values = one_value_each(symbols.path(), token.path());
    let other_symbols = TempFile::new("symbols-env", "EE\n");
    let other_token = TempFile::new("token-env", "other\n");
    let others = one_value_each(other_symbols.path(), other_token.path());
    // A second value of each, from the environment, which the argument must override.
    let env_values: Vec<String> = others
        .iter()
        .map(|(flag, value)| match *flag {
            "--scgi" => "127.0.0.1:9999".into(),
            "--http" => "off".into(),
            "--symbols" => "ZZ".into(),
            "--symbols-file" | "--publish-token-file" => value.clone(),
            "--initial-price" => "9".into(),
            "--redis" => "unix:/run/redis.sock".into(),
            "--redis-key" => "other".into(),
            "--heartbeat-s" => "60".into(),
            "--scgi-socket-mode" => "666".into(),
            _ => "128".into(),
        })
        .collect();
    for ((flag, value), env_value) in values.iter().zip(&env_values) {
        let variable = variable_of(flag);
        let by_arg = text(config(&[flag, value]));
        let by_env = text(config_with(&[], &[(&variable, env_value)]));
        assert_ne!(
            by_env, by_arg,
            "{variable}={env_value} and {flag} {value} are the same"
        );
        let both = text(config_with(&[flag, value], &[(&variable, env_value)]));
        assert_eq!(
            both, by_arg,
            "{flag} {value} lost to {variable}={env_value}"
        );
    }
}

#[test]
fn http_given_by_argument_or_variable() {
    assert!(!config(&[]).http_given);
    assert!(config(&["--http", "127.0.0.1:8080"]).http_given);
    assert!(config_with(&[], &[("TICKERD_HTTP", "127.0.0.1:8080")]).http_given);
    assert!(config_with(&[], &[("TICKERD_HTTP", "off")]).http_given);
}

#[test]
fn errors_from_a_variable_name_it() {
    for (vars, says) in [
        (
            &[("TICKERD_TICK_MS", "soon")][..],
            "TICKERD_TICK_MS: invalid value 'soon' for '--tick-ms <MS>'",
        ),
        (
            &[("TICKERD_TICK_MS", "")][..],
            "TICKERD_TICK_MS: invalid value ''",
        ),
        (
            &[("TICKERD_SYMBOLS", "A,B C")][..],
            "TICKERD_SYMBOLS: entry 2: \"B C\"",
        ),
        (
            &[("TICKERD_SYMBOLS", "A"), ("TICKERD_SYMBOLS_FILE", "/x")][..],
            "TICKERD_SYMBOLS_FILE: the universe is already given by TICKERD_SYMBOLS",
        ),
        (
            &[("TICKERD_SYMBOLS_FILE", "/nonexistent")][..],
            "TICKERD_SYMBOLS_FILE: cannot read /nonexistent",
        ),
        (
            &[("TICKERD_SCGI", "off"), ("TICKERD_HTTP", "off")][..],
            "TICKERD_SCGI and TICKERD_HTTP are both off",
        ),
        (
            &[("TICKERD_PUBLISH_TOKEN_FILE", "/nonexistent")][..],
            "TICKERD_PUBLISH_TOKEN_FILE: cannot read",
        ),
    ] {
        let err = parse_with(&[], vars).unwrap_err();
        assert!(err.0.starts_with(says), "{vars:?}: {err}");
        assert_eq!(err.0.lines().count(), 1, "{err:?}");
    }
    // A bad variable is not blamed when the argument overrides it...
    assert!(parse_with(&["--tick-ms", "5"], &[("TICKERD_TICK_MS", "soon")]).is_ok());
    // ...and a bad argument is the argument's fault, not the variable's.
    let err = parse_with(&["--tick-ms=x"], &[("TICKERD_TICK_MS", "5")]).unwrap_err();
    assert!(
        err.0.starts_with("invalid value 'x' for '--tick-ms <MS>'"),
        "{err}"
    );
}

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
            "0.01",
            "1000000000000",
            Some("0.004"),
            Some("1000000000000.01"),
        ),
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
    assert_eq!((c.socket_mode, c.initial_price_cents), (0o777, 1));
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

/// `Config::defaults` (what the core's tests and the fuzz targets start from) is what no
/// flag and no variable give, whatever the environment holds.
#[test]
fn the_defaults_ignore_the_environment() {
    let Ok(Command::Run(plain)) = parse_with(&[], &[]) else {
        panic!("no flag, no variable: a configuration")
    };
    let _held = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("TICKERD_TICK_MS", "5");
    let defaults = Config::defaults();
    std::env::remove_var("TICKERD_TICK_MS");
    assert_eq!(defaults.tick, plain.tick);
    assert_eq!(defaults.tick, Some(Duration::from_millis(1000)));
    assert_eq!(format!("{defaults:?}"), format!("{plain:?}"));
}
