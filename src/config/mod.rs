//! The command line: what the rest of tickerd reads ([`Config`]) and how it is made.
//!
//! Every flag is declared once, in [`cli`], with clap: its help, default, range and
//! environment variable (`TICKERD_<FLAG>`). This module turns what clap parsed into a
//! [`Config`]: it reads the symbols and token files, builds the universe, and checks what
//! involves more than one flag. Every error is one line naming the flag, or the variable
//! the value came from; `main` prints it and exits 2.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgMatches, FromArgMatches};

use crate::decimal::Decimal;
use crate::listing;
use crate::schema::{FieldType, Schema, HEADLINE};
use crate::universe::Listed;

mod cli;
#[cfg(test)]
mod generated;
#[cfg(test)]
mod tests;

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
    /// `--decimals`: the precision of a symbol whose listing gives none.
    pub decimals: u8,
    /// `--initial-price`: the headline of a symbol listed without one.
    pub initial_price: Decimal,
    /// The record each symbol carries (`--fields`).
    pub schema: Schema,
    /// The universe, in order, with precisions and first values; the first is the default
    /// symbol.
    pub universe: Vec<Listed>,
    /// Where it came from, for the start-up line.
    pub universe_source: String,
    pub max_symbols_per_client: usize,
    /// Cap on a request body, which only `POST /publish` has.
    pub max_publish_bytes: usize,
    /// `--max-hz`, as the least time between two rounds of a stream; `None`: no cap.
    pub max_hz: Option<Duration>,
    /// At most one write per client per this period; `None`: write as updates come.
    pub coalesce: Option<Duration>,
    /// `--redis`: every update goes through Redis, shared with other instances.
    pub redis: Option<ListenAddr>,
    /// `--redis-key`: the prefix of the feed's keys.
    pub redis_key: String,
    /// `--redis-maxlen`: about how many publishes the stream keeps.
    pub redis_maxlen: u64,
    /// `--entitlements`: who may see what; `None`: everyone sees everything.
    pub entitlements: Option<crate::rights::Entitlements>,
    /// Where it came from: SIGHUP reads it again.
    pub entitlements_path: Option<PathBuf>,
    /// `--trust-remote-user`: SCGI's `REMOTE_USER` is the caller's identity.
    pub trust_remote_user: bool,
    /// `--jwt-jwks`: the keys tokens are verified with; `None`: tokens are not looked at.
    pub jwt_keys: Option<std::sync::Arc<crate::jwt::KeySet>>,
    /// Where they came from: SIGHUP reads them again.
    pub jwt_jwks_path: Option<PathBuf>,
    /// `--jwt-issuer`, `--jwt-audience`, `--jwt-leeway-s`.
    pub jwt_checks: crate::jwt::Checks,
    /// `--auth-cookie`: the cookie a token may come in.
    pub auth_cookie: Option<String>,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    /// `--check`: the configuration is valid (what a live upgrade asks the new binary).
    Check(Box<Config>),
    /// `-h`/`--help`: the text to print.
    Help(String),
    /// `-V`/`--version`: the text to print.
    Version(String),
}

/// A bad flag, value or variable, as one line naming it.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses the arguments after the program name, with the `TICKERD_*` variables of the
    /// process environment for the flags not given (an argument wins over its variable).
    pub fn from_args<I, T>(args: I) -> Result<Command, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args: Vec<OsString> = std::iter::once(OsString::from("tickerd"))
            .chain(args.into_iter().map(Into::into))
            .collect();
        // The command reads the environment when it is built: here, at each parse.
        let matches = match cli::command().try_get_matches_from(&args) {
            Ok(matches) => matches,
            Err(e) => {
                return match e.kind() {
                    ErrorKind::DisplayHelp => Ok(Command::Help(e.render().to_string())),
                    ErrorKind::DisplayVersion => Ok(Command::Version(e.render().to_string())),
                    _ => Err(one_line(&e, &args[1..])),
                }
            }
        };
        let parsed = cli::Cli::from_arg_matches(&matches).map_err(|e| one_line(&e, &args[1..]))?;
        let check = parsed.check;
        let config = Box::new(convert(parsed, &matches)?);
        Ok(match check {
            true => Command::Check(config),
            false => Command::Run(config),
        })
    }
}

impl Config {
    /// The configuration of no flag and no variable: every default of the declaration,
    /// whatever the environment holds (for unit tests and the fuzz targets).
    pub fn defaults() -> Config {
        let command = cli::command().mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from(["tickerd"])
            .expect("the defaults parse");
        let parsed = cli::Cli::from_arg_matches(&matches).expect("the defaults parse");
        convert(parsed, &matches).expect("the defaults are valid")
    }
}

/// What clap parsed, as the [`Config`] the rest of tickerd reads.
fn convert(cli: cli::Cli, matches: &ArgMatches) -> Result<Config, ConfigError> {
    let from = |id: &str| Origin::of(matches, id);
    if matches.value_source("publish_token") == Some(ValueSource::CommandLine) {
        return Err(ConfigError(
            "--publish-token is refused: a token on the command line shows in ps; \
             use --publish-token-file or TICKERD_PUBLISH_TOKEN"
                .into(),
        ));
    }
    let defaults = listing::Defaults {
        decimals: cli.decimals,
        price: cli.initial_price,
    };
    let given = cli.symbols.is_some() || cli.symbols_file.is_some();
    // The demo universe is a quote; a listed one is a price, unless --fields says.
    let schema = match (cli.fields.clone(), given) {
        (Some(schema), _) => schema,
        (None, true) => Schema::single_price(),
        (None, false) => Schema::quote(),
    };
    let (universe, universe_source) = match (&cli.symbols, &cli.symbols_file) {
        (Some(_), Some(_)) => {
            let (file, list) = (from("symbols_file"), from("symbols"));
            return Err(ConfigError(format!(
                "{file}: the universe is already given by {list}: \
                 use --symbols or --symbols-file, not both"
            )));
        }
        (Some(list), None) => {
            let listed = listing::parse_list(list, &schema, defaults)
                .map_err(|e| ConfigError(format!("{}: {e}", from("symbols"))))?;
            listed_universe(listed, &from("symbols"))
        }
        (None, Some(path)) => {
            let name = from("symbols_file");
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("{name}: cannot read {}: {e}", path.display())))?;
            let listed = listing::parse_file(&text, &schema, defaults)
                .map_err(|e| ConfigError(format!("{name}: {}: {e}", path.display())))?;
            listed_universe(listed, &name)
        }
        (None, None) if cli.fields.is_some() => {
            // The demo's symbols with the given record: their prices as headlines when the
            // headline is a price, --initial-price otherwise.
            let headline = schema.field(HEADLINE).ty;
            let listed = listing::demo()
                .into_iter()
                .map(|l| {
                    let text = match headline {
                        FieldType::Price => l.values[0].1.to_string(),
                        _ => cli.initial_price.to_string(),
                    };
                    let value = headline.parse(&text, l.decimals).map_err(|e| {
                        ConfigError(format!(
                            "{}: the demo universe: {}: {e}",
                            from("fields"),
                            l.symbol
                        ))
                    })?;
                    Ok(Listed {
                        values: vec![(HEADLINE, value)],
                        ..l
                    })
                })
                .collect::<Result<Vec<Listed>, ConfigError>>()?;
            (listed, "the demo universe".to_string())
        }
        (None, None) => (listing::demo(), "the demo universe".to_string()),
    };
    let publish_token = match (&cli.publish_token_file, cli.publish_token) {
        (Some(path), _) => Some(read_token(path, &from("publish_token_file"))?),
        (None, Some(token)) if token.trim().is_empty() => {
            return Err(ConfigError("TICKERD_PUBLISH_TOKEN is empty".into()))
        }
        (None, Some(token)) => Some(token.trim().to_string()),
        (None, None) => None,
    };
    let entitlements = match &cli.entitlements {
        Some(path) => Some(read_entitlements(path, &from("entitlements"))?),
        None => None,
    };
    let jwt_keys = match &cli.jwt_jwks {
        Some(path) => Some(std::sync::Arc::new(
            crate::jwt::KeySet::load(path).map_err(|e| match e {
                crate::jwt::KeysError::Read(_) => ConfigError(format!("{}: {e}", from("jwt_jwks"))),
                e => ConfigError(format!("{}: {}: {e}", from("jwt_jwks"), path.display())),
            })?,
        )),
        None => None,
    };
    let config = Config {
        scgi: cli.scgi.0,
        http: cli.http.0,
        // Set, not defaulted: a bin-path spawn then serves HTTP too.
        http_given: matches!(
            matches.value_source("http"),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ),
        socket_mode: cli.scgi_socket_mode,
        tick: (cli.tick_ms > 0).then(|| Duration::from_millis(cli.tick_ms)),
        heartbeat: (cli.heartbeat_s > 0).then(|| Duration::from_secs(cli.heartbeat_s)),
        retry_ms: cli.retry_ms,
        max_clients: cli.max_clients,
        publish_token,
        request_timeout: Duration::from_secs(cli.request_timeout_s),
        long_poll_hold: Duration::from_secs(cli.long_poll_s),
        max_scgi_header: cli.max_scgi_header,
        decimals: cli.decimals,
        initial_price: cli.initial_price,
        schema,
        universe,
        universe_source,
        max_symbols_per_client: cli.max_symbols_per_client,
        max_publish_bytes: cli.max_publish_bytes,
        max_hz: cli.max_hz,
        coalesce: (cli.coalesce_ms > 0).then(|| Duration::from_millis(cli.coalesce_ms)),
        redis: cli.redis.and_then(|r| r.0),
        redis_key: cli.redis_key,
        redis_maxlen: cli.redis_maxlen,
        entitlements,
        entitlements_path: cli.entitlements.clone(),
        trust_remote_user: cli.trust_remote_user,
        jwt_keys,
        jwt_jwks_path: cli.jwt_jwks.clone(),
        jwt_checks: crate::jwt::Checks {
            issuer: cli.jwt_issuer.clone(),
            audience: cli.jwt_audience.clone(),
            leeway_s: cli.jwt_leeway_s,
        },
        auth_cookie: cli.auth_cookie.clone(),
    };
    if config.scgi.is_none() && config.http.is_none() {
        return Err(ConfigError(format!(
            "{} and {} are both off: nothing to listen on",
            from("scgi"),
            from("http")
        )));
    }
    Ok(config)
}

/// A listed universe, and where it came from (for the start-up line).
fn listed_universe(listed: Vec<Listed>, from: &Origin) -> (Vec<Listed>, String) {
    let count = listed.len();
    (listed, format!("{from} ({count} symbols)"))
}

/// `--entitlements PATH`, checked: an error names the line. A file granting a delayed tier
/// is refused: delayed streams are not served yet, and tickerd does not pretend to.
fn read_entitlements(
    path: &Path,
    from: &Origin,
) -> Result<crate::rights::Entitlements, ConfigError> {
    load_entitlements(path).map_err(|e| ConfigError(format!("{from}: {e}")))
}

/// The entitlements file at `path`, checked as at start (SIGHUP reads it with this): an
/// error names the path and the line, or the section granting a delayed tier.
pub fn load_entitlements(path: &Path) -> Result<crate::rights::Entitlements, String> {
    let e = crate::rights::Entitlements::load(path)?;
    if let Some((section, tier)) = e.first_delayed() {
        return Err(format!(
            "{}: {section}: tier \"{tier}\": delayed tiers are not served yet; \
             only \"realtime\" (or no tier) is accepted",
            path.display()
        ));
    }
    Ok(e)
}

fn read_token(path: &Path, from: &Origin) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{from}: cannot read {}: {e}", path.display())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ConfigError(format!("{from}: {} is empty", path.display())));
    }
    Ok(token.to_string())
}

/// Where a value came from, as an error names it: `--symbols` when it was an argument,
/// `TICKERD_SYMBOLS` when it came from the environment.
struct Origin {
    flag: String,
    variable: Option<String>,
}

impl Origin {
    fn of(matches: &ArgMatches, id: &str) -> Origin {
        let flag = format!("--{}", id.replace('_', "-"));
        let variable = (matches.value_source(id) == Some(ValueSource::EnvVariable))
            .then(|| variable_of(&flag));
        Origin { flag, variable }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.variable.as_deref().unwrap_or(&self.flag))
    }
}

/// `--tick-ms` → `TICKERD_TICK_MS`: the naming rule of every flag's variable (the tests
/// check the declaration keeps it).
fn variable_of(flag: &str) -> String {
    format!(
        "TICKERD_{}",
        flag.trim_start_matches('-')
            .replace('-', "_")
            .to_ascii_uppercase()
    )
}

/// clap's error (a message, a tip, the usage, a pointer to --help) as one line: the message,
/// its tips after a semicolon, and the variable in front when the bad value came from one.
fn one_line(err: &clap::Error, args: &[OsString]) -> ConfigError {
    let rendered = err.render().to_string();
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("bad arguments");
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_string();
    for tip in lines.filter_map(|l| l.strip_prefix("tip: ")) {
        line.push_str("; ");
        line.push_str(tip);
    }
    match from_variable(err, args) {
        Some(variable) => ConfigError(format!("{variable}: {line}")),
        None => ConfigError(line),
    }
}

/// The variable a bad value came from: the error's flag has a variable, the variable is
/// set, and the flag is not among the arguments (which would win over it).
fn from_variable(err: &clap::Error, args: &[OsString]) -> Option<String> {
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    // "--tick-ms <MS>"
    let flag = arg.split_whitespace().next()?;
    let command = cli::command();
    let long = flag.strip_prefix("--")?;
    let variable = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?
        .get_env()?
        .to_owned();
    let given = args.iter().any(|a| {
        a.to_str()
            .is_some_and(|a| a == flag || a.strip_prefix(flag).is_some_and(|v| v.starts_with('=')))
    });
    (!given && std::env::var_os(&variable).is_some())
        .then(|| variable.to_string_lossy().into_owned())
}
