//! The command line as one declaration: each field is a flag's help, its default, its
//! parser with its range, and its environment variable (`TICKERD_` and the flag's name).
//! The help, the man page and the shell completions are all rendered from it; turning the
//! parsed values into a [`Config`](super::Config) is the parent module's.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{Parser, ValueHint};

use super::ListenAddr;
use crate::decimal::Decimal;
use crate::schema::Schema;

/// Durations are capped at a day: longer is surely a typo, and timer arithmetic on
/// `Instant` must not overflow.
const DAY_S: u64 = 86_400;
const DAY_MS: u64 = DAY_S * 1000;

/// What `tickerd --help` says after the options, and what the man page says in sections of
/// its own (`man_page` in generated.rs).
pub(super) const ENVIRONMENT: &str = "\
Each option can be set with the variable shown beside it instead (TICKERD_ and the option's \
name: TICKERD_TICK_MS=250); an option on the command line wins over its variable. \
TICKERD_PUBLISH_TOKEN is the publish token itself (--publish-token-file wins over it). \
Logging: RUST_LOG=debug|info|warn (default info).";
pub(super) const SIGNALS: &str = "\
SIGTERM/SIGINT stop; SIGUSR2 upgrades in place (the binary at this path, checked with --check \
first, takes over every connection); SIGHUP reloads the --entitlements file (streams no \
longer entitled end with event: reauth; a file that does not read changes nothing) and the \
--jwt-jwks key set (for streams that start after it), and is ignored without either.";
pub(super) const EXIT_STATUS: &str = "\
0: stopped by a signal, or --check found the configuration valid; 1: a listener could not \
be opened, or the event loop failed; 2: a bad option, value or variable (one line on stderr \
names it).";

/// `ENVIRONMENT`, `SIGNALS` and `EXIT_STATUS` as the help's closing paragraphs.
fn after_help() -> String {
    format!("Environment: {ENVIRONMENT}\n\nSignals: {SIGNALS}\n\nExit status: {EXIT_STATUS}")
}

/// The declaration, with every variable's value left out of the help: the help documents,
/// and stays the same whatever the environment (the man page is made from it too).
pub(super) fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command().mut_args(|arg| arg.hide_env_values(true))
}

pub(super) const ABOUT: &str =
    "live prices to browsers with Server-Sent Events, over SCGI and HTTP/1.1";

/// The long help's paragraph after [`ABOUT`], and the man page's DESCRIPTION.
pub(super) const DESCRIPTION: &str = "\
One binary with one event loop: an SCGI backend for lighttpd, nginx or Apache, and its own \
HTTP/1.1 listener. Browsers stream the symbols they chose (/ticker?symbols=AAPL,MSFT), get \
their current prices at once, and resume exactly with one Last-Event-ID.";

#[derive(Parser, Debug)]
#[command(
    name = "tickerd",
    version,
    about = ABOUT,
    long_about = format!("{ABOUT}.\n\n{DESCRIPTION}"),
    help_template = "{name}: {about-with-newline}\n{usage-heading} {usage}\n\n{all-args}{after-help}",
    after_help = after_help(),
    // A flag given twice: the last one counts (what a wrapper adding flags relies on).
    args_override_self = true,
    // `--tick-ms -5` is a bad value of --tick-ms, not an unknown flag -5.
    allow_negative_numbers = true,
    max_term_width = 100
)]
pub(super) struct Cli {
    /// Check the configuration and exit (0: it is valid); what a live upgrade asks the new binary
    ///
    /// It reads the same arguments and variables as a run (and the files they name), and binds
    /// nothing. It has no variable: it is an action, not a setting.
    #[arg(long)]
    pub check: bool,

    /// SCGI listener: HOST:PORT, unix:PATH, or off
    ///
    /// A listener handed over by systemd (LISTEN_FDS) or by a lighttpd that spawned tickerd
    /// (its standard input) replaces it.
    #[arg(long, value_name = "ADDR", env = "TICKERD_SCGI", default_value = "127.0.0.1:9000",
          value_parser = scgi_addr, help_heading = "Listeners")]
    pub scgi: Listen,

    /// Mode of the SCGI Unix socket file, in octal
    #[arg(long, value_name = "OCTAL", env = "TICKERD_SCGI_SOCKET_MODE", default_value = "660",
          value_parser = octal_mode, help_heading = "Listeners")]
    pub scgi_socket_mode: u32,

    /// Built-in HTTP/1.1 listener: HOST:PORT, or off
    ///
    /// A listener handed over by systemd replaces it. Spawned by lighttpd (bin-path), tickerd
    /// opens it only when it is set, here or with TICKERD_HTTP.
    #[arg(long, value_name = "ADDR", env = "TICKERD_HTTP", default_value = "127.0.0.1:8080",
          value_parser = http_addr, help_heading = "Listeners")]
    pub http: Listen,

    /// The universe: SYM or SYM=PRICE, comma separated; the first is the default symbol
    ///
    /// A price written with a point gives the symbol its precision (EURUSD=1.08345: 5
    /// decimals); otherwise the symbol takes --decimals. Without this or --symbols-file: the
    /// demo universe of stocks, FX and crypto quotes.
    #[arg(
        long,
        value_name = "LIST",
        env = "TICKERD_SYMBOLS",
        help_heading = "Prices"
    )]
    pub symbols: Option<String>,

    /// The universe from a file: one SYM [PRICE] [decimals=N] [field=value ...] a line
    ///
    /// # comments and blank lines are ignored. Give --symbols or --symbols-file, not both.
    #[arg(long, value_name = "PATH", env = "TICKERD_SYMBOLS_FILE", value_hint = ValueHint::FilePath,
          help_heading = "Prices")]
    pub symbols_file: Option<PathBuf>,

    /// Each symbol's record: NAME:TYPE comma separated, the first the headline
    ///
    /// Types: price (at the symbol's precision), qty (a non-negative decimal, kept as
    /// published), int (64-bit), time (ms since 1970). Without it: price:price, or the demo's
    /// quote (last:price,bid:price,ask:price,size:qty,volume:qty,time:time) for the demo
    /// universe.
    #[arg(long, value_name = "LIST", env = "TICKERD_FIELDS", value_parser = fields,
          help_heading = "Prices")]
    pub fields: Option<Schema>,

    /// Decimals of a symbol whose precision is not given otherwise (0 to 9)
    #[arg(long, value_name = "N", env = "TICKERD_DECIMALS", default_value_t = 2,
          value_parser = clap::value_parser!(u8).range(0..=crate::decimal::MAX_SCALE as i64),
          help_heading = "Prices")]
    pub decimals: u8,

    /// Headline of a symbol listed without a price
    #[arg(long, value_name = "PRICE", env = "TICKERD_INITIAL_PRICE", default_value = "100",
          value_parser = price, help_heading = "Prices")]
    pub initial_price: Decimal,

    /// Random-walk period (each tick moves every symbol once); 0: prices only from publishers
    ///
    /// At most a day, as for every period here: longer is surely a typo.
    #[arg(long, value_name = "MS", env = "TICKERD_TICK_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=DAY_MS), help_heading = "Prices")]
    pub tick_ms: u64,

    /// A comment line to idle streams every SECONDS; 0: off
    #[arg(long, value_name = "SECONDS", env = "TICKERD_HEARTBEAT_S", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(0..=DAY_S), help_heading = "Streams")]
    pub heartbeat_s: u64,

    /// Reconnection delay announced to browsers (the stream's retry: field)
    #[arg(long, value_name = "MS", env = "TICKERD_RETRY_MS", default_value_t = 3000,
          value_parser = clap::value_parser!(u64).range(0..=DAY_MS), help_heading = "Streams")]
    pub retry_ms: u64,

    /// At most one write per client per MS; 0: write as updates come
    #[arg(long, value_name = "MS", env = "TICKERD_COALESCE_MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=60_000), help_heading = "Streams")]
    pub coalesce_ms: u64,

    /// The most events per second per symbol any stream may ask for with max_hz (a decimal,
    /// above 0, at most 1000); a stream asking more, or nothing, gets this. Default: no cap
    #[arg(long, value_name = "N", env = "TICKERD_MAX_HZ", value_parser = max_hz,
          help_heading = "Streams")]
    pub max_hz: Option<Duration>,

    /// Symbols one stream may ask for, at most 1024
    #[arg(long, value_name = "N", env = "TICKERD_MAX_SYMBOLS_PER_CLIENT", default_value_t = 64,
          value_parser = RangedU64ValueParser::<usize>::new()
              .range(1..=crate::selection::MAX_SYMBOLS_PER_CLIENT as u64),
          help_heading = "Streams")]
    pub max_symbols_per_client: usize,

    /// A long poll with nothing due in SECONDS is answered with the event it has
    #[arg(long, value_name = "SECONDS", env = "TICKERD_LONG_POLL_S", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=DAY_S), help_heading = "Streams")]
    pub long_poll_s: u64,

    /// Connections held at once (default: the open-file limit - 64); over it: 503
    ///
    /// At start-up tickerd raises its soft open-file limit to the hard one; the default keeps
    /// 64 descriptors for listeners, Redis and a live upgrade. (The upper bound is the most
    /// descriptors a process can have.)
    #[arg(long, value_name = "N", env = "TICKERD_MAX_CLIENTS",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=i32::MAX as u64),
          help_heading = "Limits")]
    pub max_clients: Option<usize>,

    /// A request not complete in SECONDS is dropped
    ///
    /// The time runs from the connection's accept, and on a kept-alive HTTP connection from
    /// each answer: one that sends no next request in SECONDS is closed.
    #[arg(long, value_name = "SECONDS", env = "TICKERD_REQUEST_TIMEOUT_S", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=DAY_S), help_heading = "Limits")]
    pub request_timeout_s: u64,

    /// Cap on the SCGI netstring header
    #[arg(long, value_name = "BYTES", env = "TICKERD_MAX_SCGI_HEADER", default_value_t = 16384,
          value_parser = RangedU64ValueParser::<usize>::new().range(64..=1 << 20),
          help_heading = "Limits")]
    pub max_scgi_header: usize,

    /// Cap on a request body (a publish batch); over it: 413
    #[arg(long, value_name = "BYTES", env = "TICKERD_MAX_PUBLISH_BYTES", default_value_t = 65536,
          value_parser = RangedU64ValueParser::<usize>::new().range(64..=1 << 24),
          help_heading = "Limits")]
    pub max_publish_bytes: usize,

    /// Enables POST /publish with the token in PATH (or set TICKERD_PUBLISH_TOKEN; tokens are
    /// never taken as arguments)
    ///
    /// Publishers send it as "Authorization: Bearer TOKEN". The file wins over
    /// TICKERD_PUBLISH_TOKEN; --publish-token is refused, because a token there shows in ps.
    /// A live upgrade reads the file again.
    #[arg(long, value_name = "PATH", env = "TICKERD_PUBLISH_TOKEN_FILE",
          value_hint = ValueHint::FilePath, help_heading = "Publishing")]
    pub publish_token_file: Option<PathBuf>,

    // Refused on the command line (a token there shows in ps), taken from the environment.
    // Hidden: neither the help, the man page nor a completion offers it. Hyphens and no value
    // allowed, so that any use of the flag gets our refusal and a token is never echoed.
    #[arg(long, value_name = "TOKEN", env = "TICKERD_PUBLISH_TOKEN", hide = true,
          allow_hyphen_values = true, num_args = 0..=1, default_missing_value = "")]
    pub publish_token: Option<String>,

    /// Who may see what: a TOML file of symbol rights for anonymous, groups and users (README
    /// "Who may see what"); read at start, a bad file is refused with its line. Default: none,
    /// everyone sees every symbol
    #[arg(long, value_name = "PATH", env = "TICKERD_ENTITLEMENTS",
          value_hint = ValueHint::FilePath, help_heading = "Access")]
    pub entitlements: Option<PathBuf>,

    /// Take the caller's identity from the front-end's SCGI REMOTE_USER (never from the
    /// built-in HTTP listener); only for a front-end that authenticates and sets it
    #[arg(long, value_name = "BOOL", env = "TICKERD_TRUST_REMOTE_USER", num_args = 0..=1,
          default_value_t = false, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), help_heading = "Access")]
    pub trust_remote_user: bool,

    /// Verify tokens (Authorization: Bearer, the --auth-cookie cookie or the access_token
    /// query) with the keys of this JSON Web Key Set file (README "Tokens (JWT)"); read at
    /// start, a bad file is refused. Default: none, tokens are not looked at
    #[arg(long, value_name = "PATH", env = "TICKERD_JWT_JWKS",
          value_hint = ValueHint::FilePath, help_heading = "Access")]
    pub jwt_jwks: Option<PathBuf>,

    /// With --jwt-jwks: a token's iss must be this (default: iss is not checked)
    #[arg(
        long,
        value_name = "ISS",
        env = "TICKERD_JWT_ISSUER",
        help_heading = "Access"
    )]
    pub jwt_issuer: Option<String>,

    /// With --jwt-jwks: a token's aud must be or hold this (default: aud is not checked)
    #[arg(
        long,
        value_name = "AUD",
        env = "TICKERD_JWT_AUDIENCE",
        help_heading = "Access"
    )]
    pub jwt_audience: Option<String>,

    /// With --jwt-jwks: the clock skew allowed on a token's exp and nbf, in seconds
    #[arg(long, value_name = "S", env = "TICKERD_JWT_LEEWAY_S", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=300), help_heading = "Access")]
    pub jwt_leeway_s: u64,

    /// With --jwt-jwks: also take the token from this cookie (default: none)
    #[arg(long, value_name = "NAME", env = "TICKERD_AUTH_COOKIE", value_parser = cookie_name,
          help_heading = "Access")]
    pub auth_cookie: Option<String>,

    /// Share the feed with other instances through Redis: HOST:PORT or unix:PATH (default:
    /// none, a feed of its own)
    #[arg(long, value_name = "ADDR", env = "TICKERD_REDIS", value_parser = redis_addr,
          help_heading = "Redis")]
    pub redis: Option<Listen>,

    /// Prefix of the feed's keys in Redis
    #[arg(long, value_name = "PREFIX", env = "TICKERD_REDIS_KEY", default_value = "tickerd",
          value_parser = redis_key, help_heading = "Redis")]
    pub redis_key: String,

    /// Publishes the Redis stream keeps, about
    #[arg(long, value_name = "N", env = "TICKERD_REDIS_MAXLEN", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000), help_heading = "Redis")]
    pub redis_maxlen: u64,
}

/// An address to listen on (or connect to, for Redis), or `None` for `off`.
#[derive(Debug, Clone)]
pub(super) struct Listen(pub Option<ListenAddr>);

fn scgi_addr(text: &str) -> Result<Listen, String> {
    listen(text, true)
}

fn http_addr(text: &str) -> Result<Listen, String> {
    listen(text, false)
}

fn redis_addr(text: &str) -> Result<Listen, String> {
    listen(text, true)
}

fn listen(text: &str, unix_ok: bool) -> Result<Listen, String> {
    if text == "off" {
        return Ok(Listen(None));
    }
    if let Some(path) = text.strip_prefix("unix:") {
        if !unix_ok {
            return Err("expected HOST:PORT or off".into());
        }
        if path.is_empty() {
            return Err("expected unix:PATH with a path".into());
        }
        return Ok(Listen(Some(ListenAddr::Unix(PathBuf::from(path)))));
    }
    use std::net::ToSocketAddrs;
    let wanted = match unix_ok {
        true => "expected HOST:PORT, unix:PATH or off",
        false => "expected HOST:PORT or off",
    };
    let addr = text
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or(wanted)?;
    Ok(Listen(Some(ListenAddr::Tcp(addr))))
}

fn octal_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| "expected an octal mode from 0 to 777, such as 660".into())
}

fn price(text: &str) -> Result<Decimal, String> {
    Decimal::parse(text).map_err(|e| format!("expected a price such as 100.00: {e}"))
}

fn max_hz(text: &str) -> Result<Duration, String> {
    crate::route::min_gap(text.as_bytes()).map_err(|e| {
        e.trim_start_matches("max_hz: ")
            .trim_start_matches(|c| c != ' ')
            .trim_start()
            .to_string()
    })
}

fn fields(text: &str) -> Result<Schema, String> {
    Schema::parse(text)
}

fn redis_key(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > 100 || text.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err("expected 1 to 100 printable characters, no spaces".into());
    }
    Ok(text.to_string())
}

/// A cookie name (RFC 6265 §4.1.1: an RFC 9110 token).
fn cookie_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    match ok {
        true => Ok(s.to_string()),
        false => Err("not a cookie name (letters, digits and !#$%&'*+-.^_`|~)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declaration_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn addresses() {
        let tcp = |s: &str| Some(ListenAddr::Tcp(s.parse().unwrap()));
        assert_eq!(
            scgi_addr("127.0.0.1:9000").unwrap().0,
            tcp("127.0.0.1:9000")
        );
        assert_eq!(http_addr("[::1]:80").unwrap().0, tcp("[::1]:80"));
        assert_eq!(
            scgi_addr("unix:/run/t.sock").unwrap().0,
            Some(ListenAddr::Unix("/run/t.sock".into()))
        );
        assert_eq!(redis_addr("off").unwrap().0, None);
        assert_eq!(
            http_addr("unix:/x").unwrap_err(),
            "expected HOST:PORT or off"
        );
        assert_eq!(
            scgi_addr("unix:").unwrap_err(),
            "expected unix:PATH with a path"
        );
        assert_eq!(
            scgi_addr("nowhere").unwrap_err(),
            "expected HOST:PORT, unix:PATH or off"
        );
    }
}
