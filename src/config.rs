//! The command line: flags, their defaults and their validation.
//!
//! Hand-written rather than a parser crate: a dozen flags with one value each, and the
//! one-line error naming the flag is the whole interface.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::listing;
use crate::symbol::Symbol;

/// Where a listener binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub scgi: Option<ListenAddr>,
    pub http: Option<ListenAddr>,
    /// `--http` was on the command line (a bin-path spawn turns the default off).
    pub http_given: bool,
    /// Mode of the SCGI Unix socket file (`--scgi-socket-mode`).
    pub socket_mode: u32,
    /// Period of the built-in random walk; `None` means prices come only from publishers.
    pub tick: Option<Duration>,
    pub heartbeat: Option<Duration>,
    pub retry_ms: u64,
    /// `None`: derived from the open-file limit at start-up.
    pub max_clients: Option<usize>,
    pub publish_token: Option<String>,
    pub request_timeout: Duration,
    /// A long poll with no tick in this long is answered with the event it has.
    pub long_poll_hold: Duration,
    pub max_scgi_header: usize,
    pub initial_price_cents: u64,
    /// The universe, in order, with first prices; the first is the default symbol.
    pub universe: Vec<(Symbol, u64)>,
    /// Where it came from, for the start-up line.
    pub universe_source: String,
    pub max_symbols_per_client: usize,
    /// Cap on a request body, which only `POST /publish` has.
    pub max_publish_bytes: usize,
    /// At most one write per client per this period; `None`: write as updates come.
    pub coalesce: Option<Duration>,
    /// `--redis`: every update goes through Redis, shared with other instances.
    pub redis: Option<ListenAddr>,
    /// `--redis-key`: the prefix of the feed's keys.
    pub redis_key: String,
    /// `--redis-maxlen`: about how many publishes the stream keeps.
    pub redis_maxlen: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            scgi: Some(ListenAddr::Tcp(([127, 0, 0, 1], 9000).into())),
            http: Some(ListenAddr::Tcp(([127, 0, 0, 1], 8080).into())),
            http_given: false,
            socket_mode: 0o660,
            tick: Some(Duration::from_millis(1000)),
            heartbeat: Some(Duration::from_secs(15)),
            retry_ms: 3000,
            max_clients: None,
            publish_token: None,
            request_timeout: Duration::from_secs(10),
            long_poll_hold: Duration::from_secs(30),
            max_scgi_header: 16 * 1024,
            initial_price_cents: 10_000,
            universe: crate::universe::DEMO
                .iter()
                .map(|&(name, cents)| (Symbol::parse(name.as_bytes()).expect("valid"), cents))
                .collect(),
            universe_source: "the demo universe".into(),
            max_symbols_per_client: 64,
            max_publish_bytes: 64 * 1024,
            coalesce: None,
            redis: None,
            redis_key: "tickerd".into(),
            redis_maxlen: 10_000,
        }
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    /// `--check`: the configuration is valid (what a live upgrade asks the new binary).
    Check(Box<Config>),
    Help,
    Version,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

pub const HELP: &str = "\
tickerd: live prices to browsers with Server-Sent Events, over SCGI and HTTP/1.1

Usage: tickerd [OPTIONS]

Options:
  --scgi ADDR                SCGI listener: HOST:PORT or unix:PATH, or off [default: 127.0.0.1:9000]
  --scgi-socket-mode OCTAL   mode of the SCGI Unix socket file [default: 660]
  --http ADDR                built-in HTTP/1.1 listener: HOST:PORT, or off [default: 127.0.0.1:8080]
  --tick-ms N                random-walk period in ms; 0 = prices only from publishers [default: 1000]
  --heartbeat-s N            comment line to idle streams every N s; 0 = off [default: 15]
  --retry-ms N               reconnection delay announced to browsers [default: 3000]
  --max-clients N            connections held at once; over it: 503 [default: open-file limit - 64]
  --request-timeout-s N      a request not complete in N s is dropped [default: 10]
  --long-poll-s N            a long poll with no tick in N s gets the event it has [default: 30]
  --max-scgi-header N        cap on the SCGI netstring header, bytes [default: 16384]
  --symbols LIST             the universe: SYM or SYM=PRICE, comma separated; the first is
                             the default symbol [default: eight demo symbols]
  --symbols-file PATH        the universe from a file: one SYM [PRICE] a line, # comments
  --initial-price P          price of a symbol listed without one [default: 100.00]
  --max-symbols-per-client N symbols one stream may ask for, at most 1024 [default: 64]
  --max-publish-bytes N      cap on a publish body, bytes [default: 65536]
  --coalesce-ms N            at most one write per client per N ms; 0 = as updates come [default: 0]
  --redis ADDR               share the feed with other instances through Redis: HOST:PORT or
                             unix:PATH [default: none, a feed of its own]
  --redis-key PREFIX         prefix of the feed's keys in Redis [default: tickerd]
  --redis-maxlen N           publishes the Redis stream keeps, about [default: 10000]
  --publish-token-file PATH  enables POST /publish with the token in PATH
                             (or set TICKERD_PUBLISH_TOKEN; tokens are never taken as arguments)
  --check                    check the configuration and exit (0: it is valid)
  -h, --help                 this text
  -V, --version              the version

Logging: RUST_LOG=debug|info|warn (default info).
Signals: SIGTERM/SIGINT stop; SIGUSR2 upgrades in place (the binary at this path, checked
with --check first, takes over every connection); SIGHUP is ignored.
";

impl Config {
    /// Parses the arguments after the program name. `env_token` is `TICKERD_PUBLISH_TOKEN`,
    /// passed in so tests need not touch the process environment.
    pub fn from_args<I>(args: I, env_token: Option<String>) -> Result<Command, ConfigError>
    where
        I: IntoIterator<Item = String>,
    {
        let mut config = Config::default();
        let mut token_file: Option<PathBuf> = None;
        let mut listed: Option<(Vec<listing::Listed>, String)> = None;
        let mut check = false;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            // Accept both `--flag value` and `--flag=value`.
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = || -> Result<String, ConfigError> {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| ConfigError(format!("{flag} needs a value")))
            };
            match flag.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "-V" | "--version" => return Ok(Command::Version),
                "--check" => check = true,
                "--scgi" => config.scgi = parse_listen(&flag, &value()?, true)?,
                "--http" => {
                    config.http = parse_listen(&flag, &value()?, false)?;
                    config.http_given = true;
                }
                "--scgi-socket-mode" => {
                    let v = value()?;
                    config.socket_mode = u32::from_str_radix(&v, 8)
                        .ok()
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| bad(&flag, &v, "an octal mode such as 660"))?;
                }
                "--tick-ms" => {
                    let ms = parse_at_most(&flag, &value()?, DAY_S * 1000)?;
                    config.tick = (ms > 0).then(|| Duration::from_millis(ms));
                }
                "--heartbeat-s" => {
                    let s = parse_at_most(&flag, &value()?, DAY_S)?;
                    config.heartbeat = (s > 0).then(|| Duration::from_secs(s));
                }
                "--retry-ms" => config.retry_ms = parse_at_most(&flag, &value()?, DAY_S * 1000)?,
                "--max-clients" => {
                    let v = value()?;
                    let n = parse_num(&flag, &v)?;
                    if n == 0 {
                        return Err(bad(&flag, &v, "at least 1"));
                    }
                    config.max_clients = Some(n as usize);
                }
                "--request-timeout-s" => {
                    let v = value()?;
                    let s = parse_at_most(&flag, &v, DAY_S)?;
                    if s == 0 {
                        return Err(bad(&flag, &v, "at least 1"));
                    }
                    config.request_timeout = Duration::from_secs(s);
                }
                "--long-poll-s" => {
                    let v = value()?;
                    let s = parse_at_most(&flag, &v, DAY_S)?;
                    if s == 0 {
                        return Err(bad(&flag, &v, "at least 1"));
                    }
                    config.long_poll_hold = Duration::from_secs(s);
                }
                "--max-scgi-header" => {
                    let v = value()?;
                    let n = parse_num(&flag, &v)?;
                    if !(64..=1 << 20).contains(&n) {
                        return Err(bad(&flag, &v, "between 64 and 1048576"));
                    }
                    config.max_scgi_header = n as usize;
                }
                "--initial-price" => {
                    let v = value()?;
                    config.initial_price_cents = crate::price::parse_price(&v)
                        .map_err(|_| bad(&flag, &v, "a positive price such as 100.00"))?;
                }
                "--symbols" | "--symbols-file" => {
                    if let Some((_, from)) = &listed {
                        return Err(ConfigError(format!(
                            "{flag}: the universe is already given by {from}: use --symbols or --symbols-file, not both"
                        )));
                    }
                    let v = value()?;
                    listed = Some(if flag == "--symbols" {
                        let symbols = listing::parse_list(&v)
                            .map_err(|e| ConfigError(format!("--symbols: {e}")))?;
                        (symbols, "--symbols".to_string())
                    } else {
                        let text = std::fs::read_to_string(&v).map_err(|e| {
                            ConfigError(format!("--symbols-file: cannot read {v}: {e}"))
                        })?;
                        let symbols = listing::parse_file(&text)
                            .map_err(|e| ConfigError(format!("--symbols-file: {v}: {e}")))?;
                        (symbols, "--symbols-file".to_string())
                    });
                }
                "--max-symbols-per-client" => {
                    let v = value()?;
                    let max = crate::selection::MAX_SYMBOLS_PER_CLIENT as u64;
                    match parse_num(&flag, &v)? {
                        n @ 1.. if n <= max => config.max_symbols_per_client = n as usize,
                        _ => return Err(bad(&flag, &v, &format!("between 1 and {max}"))),
                    }
                }
                "--max-publish-bytes" => {
                    let v = value()?;
                    match parse_num(&flag, &v)? {
                        n @ 64..=0x100_0000 => config.max_publish_bytes = n as usize,
                        _ => return Err(bad(&flag, &v, "between 64 and 16777216")),
                    }
                }
                "--coalesce-ms" => {
                    let ms = parse_at_most(&flag, &value()?, 60_000)?;
                    config.coalesce = (ms > 0).then(|| Duration::from_millis(ms));
                }
                "--redis" => {
                    let v = value()?;
                    config.redis = parse_listen(&flag, &v, true)?;
                }
                "--redis-key" => {
                    let v = value()?;
                    if v.is_empty() || v.len() > 100 || v.bytes().any(|b| !b.is_ascii_graphic()) {
                        return Err(bad(&flag, &v, "1 to 100 printable characters, no spaces"));
                    }
                    config.redis_key = v;
                }
                "--redis-maxlen" => {
                    let v = value()?;
                    match parse_num(&flag, &v)? {
                        n @ 1..=100_000_000 => config.redis_maxlen = n,
                        _ => return Err(bad(&flag, &v, "between 1 and 100000000")),
                    }
                }
                "--publish-token-file" => token_file = Some(PathBuf::from(value()?)),
                "--publish-token" => {
                    return Err(ConfigError(
                        "--publish-token is refused: a token on the command line shows in ps; \
                         use --publish-token-file or TICKERD_PUBLISH_TOKEN"
                            .into(),
                    ))
                }
                _ => return Err(ConfigError(format!("unknown argument {arg} (see --help)"))),
            }
        }
        if let Some((symbols, from)) = listed {
            let count = symbols.len();
            config.universe = symbols
                .into_iter()
                .map(|(s, cents)| (s, cents.unwrap_or(config.initial_price_cents)))
                .collect();
            config.universe_source = format!("{from} ({count} symbols)");
        }
        config.publish_token = match token_file {
            Some(path) => Some(read_token(&path)?),
            None => match env_token {
                Some(t) if t.trim().is_empty() => {
                    return Err(ConfigError("TICKERD_PUBLISH_TOKEN is empty".into()))
                }
                Some(t) => Some(t.trim().to_string()),
                None => None,
            },
        };
        if config.scgi.is_none() && config.http.is_none() {
            return Err(ConfigError(
                "--scgi and --http are both off: nothing to listen on".into(),
            ));
        }
        Ok(match check {
            true => Command::Check(Box::new(config)),
            false => Command::Run(Box::new(config)),
        })
    }
}

fn bad(flag: &str, value: &str, wanted: &str) -> ConfigError {
    ConfigError(format!(
        "{flag}: invalid value {value:?}, expected {wanted}"
    ))
}

fn parse_num(flag: &str, value: &str) -> Result<u64, ConfigError> {
    value
        .parse::<u64>()
        .map_err(|_| bad(flag, value, "a whole number"))
}

/// Durations are capped at a day: longer is surely a typo, and timer arithmetic on
/// `Instant` must not overflow.
const DAY_S: u64 = 86_400;

fn parse_at_most(flag: &str, value: &str, max: u64) -> Result<u64, ConfigError> {
    match parse_num(flag, value)? {
        n if n <= max => Ok(n),
        _ => Err(bad(flag, value, &format!("at most {max}"))),
    }
}

fn parse_listen(flag: &str, value: &str, unix_ok: bool) -> Result<Option<ListenAddr>, ConfigError> {
    if value == "off" {
        return Ok(None);
    }
    if let Some(path) = value.strip_prefix("unix:") {
        if !unix_ok {
            return Err(bad(flag, value, "HOST:PORT or off"));
        }
        if path.is_empty() {
            return Err(bad(flag, value, "unix:PATH with a path"));
        }
        return Ok(Some(ListenAddr::Unix(PathBuf::from(path))));
    }
    use std::net::ToSocketAddrs;
    let wanted = if unix_ok {
        "HOST:PORT, unix:PATH or off"
    } else {
        "HOST:PORT or off"
    };
    let addr = value
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| bad(flag, value, wanted))?;
    Ok(Some(ListenAddr::Tcp(addr)))
}

fn read_token(path: &PathBuf) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "--publish-token-file: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ConfigError(format!(
            "--publish-token-file: {} is empty",
            path.display()
        )));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, ConfigError> {
        Config::from_args(args.iter().map(|s| s.to_string()), None)
    }

    fn config(args: &[&str]) -> Config {
        match parse(args) {
            Ok(Command::Run(c)) => *c,
            other => panic!("expected a config, got {other:?}"),
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
    }

    #[test]
    fn flags_in_both_forms() {
        let c = config(&["--scgi", "unix:/tmp/t.sock", "--http=off", "--tick-ms", "0"]);
        assert_eq!(c.scgi, Some(ListenAddr::Unix("/tmp/t.sock".into())));
        assert_eq!(c.http, None);
        assert_eq!(c.tick, None);
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
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.0.contains(word), "{err} should name {word}");
            assert!(!err.0.contains("s3cret"), "a token must never be echoed");
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
        assert_eq!(c.max_symbols_per_client, 64);
        assert_eq!(c.max_publish_bytes, 65536);
        assert_eq!(c.coalesce, None);
        let c = config(&["--max-symbols-per-client", "1024", "--coalesce-ms", "250"]);
        assert_eq!(
            (c.max_symbols_per_client, c.coalesce),
            (1024, Some(Duration::from_millis(250)))
        );
    }

    #[test]
    fn token_from_env_is_trimmed() {
        let cmd = Config::from_args(Vec::new(), Some("abc\n".into())).unwrap();
        let Command::Run(c) = cmd else { panic!() };
        assert_eq!(c.publish_token.as_deref(), Some("abc"));
    }
}
