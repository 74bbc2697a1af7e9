//! The `TICKERD_*` variables: each flag set by its own, an argument winning over it, errors
//! naming it, and the defaults that ignore them.

use super::*;

/// A key set file for `--jwt-jwks` (the JWT module's test keys).
const JWKS_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/jwt/testdata/jwks.json");

/// One value of each flag, different from its default.
fn one_value_each(
    symbols_file: &str,
    token_file: &str,
    rights_file: &str,
) -> Vec<(&'static str, String)> {
    [
        ("--scgi", "unix:/run/t/scgi.sock"),
        ("--scgi-socket-mode", "600"),
        ("--http", "127.0.0.1:8081"),
        ("--symbols", "AA=1,BB"),
        ("--symbols-file", symbols_file),
        ("--fields", "bid:price,ask:price"),
        ("--decimals", "4"),
        ("--initial-price", "2.50"),
        ("--tick-ms", "250"),
        ("--heartbeat-s", "0"),
        ("--retry-ms", "500"),
        ("--coalesce-ms", "100"),
        ("--max-hz", "5"),
        ("--max-symbols-per-client", "8"),
        ("--long-poll-s", "5"),
        ("--max-clients", "100"),
        ("--request-timeout-s", "3"),
        ("--max-scgi-header", "1024"),
        ("--max-publish-bytes", "4096"),
        ("--publish-token-file", token_file),
        ("--entitlements", rights_file),
        ("--trust-remote-user", "true"),
        ("--jwt-jwks", JWKS_FILE),
        ("--jwt-issuer", "https://id.example"),
        ("--jwt-audience", "tickerd"),
        ("--jwt-leeway-s", "30"),
        ("--auth-cookie", "tickerd_token"),
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
    let rights = TempFile::new("rights-from-env", "[anonymous]\nsymbols = [\"CC\"]\n");
    let values = one_value_each(symbols.path(), token.path(), rights.path());
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
    let rights = TempFile::new("rights-arg", "[anonymous]\nsymbols = [\"CC\"]\n");
    let values = one_value_each(symbols.path(), token.path(), rights.path());
    let other_symbols = TempFile::new("symbols-env", "EE\n");
    let other_token = TempFile::new("token-env", "other\n");
    let other_rights = TempFile::new("rights-env", "[anonymous]\nsymbols = [\"EE\"]\n");
    let other_jwks = TempFile::new(
        "jwks-env",
        r#"{"keys": [{"kty": "oct", "kid": "x", "alg": "HS256",
            "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}"#,
    );
    let others = one_value_each(
        other_symbols.path(),
        other_token.path(),
        other_rights.path(),
    );
    // A second value of each, from the environment, which the argument must override.
    let env_values: Vec<String> = others
        .iter()
        .map(|(flag, value)| match *flag {
            "--scgi" => "127.0.0.1:9999".into(),
            "--http" => "off".into(),
            "--symbols" => "ZZ".into(),
            "--symbols-file" | "--publish-token-file" | "--entitlements" => value.clone(),
            "--jwt-jwks" => other_jwks.path().into(),
            "--jwt-issuer" | "--jwt-audience" | "--auth-cookie" => "other".into(),
            "--trust-remote-user" => "false".into(),
            "--initial-price" => "9".into(),
            "--fields" => "x:int".into(),
            "--decimals" => "3".into(),
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
