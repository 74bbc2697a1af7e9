//! The coordinator's command line: the options of a run, their defaults (the smoke run's,
//! `--redis`'s), and the checks that refuse a run that could not mean anything.

use crate::client::Mode;
use crate::target::Via;

#[derive(Debug, Clone)]
pub struct Options {
    pub via: Via,
    pub unix: bool,
    pub clients: usize,
    pub rate: f64,
    pub seconds: f64,
    pub mode: Mode,
    pub nchan: bool,
    pub ramp_per_s: u64,
    pub per_worker: usize,
    /// Extra streams per system that never read.
    pub stalled: usize,
    /// The many-symbol workload (`--symbols`), instead of one symbol.
    pub many: Option<Many>,
    /// `--redis`: besides one tickerd without Redis, these clusters sharing a Redis, all
    /// behind lighttpd's balancing conf (the many-symbol workload).
    pub redis: Option<Vec<Instances>>,
    /// Publishes one at a time each way (kept alive, a connection each) after the
    /// one-symbol workload; 0: none.
    pub publishes: u64,
    pub smoke: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            via: Via::Http,
            unix: false,
            clients: 10_000,
            rate: 1.0,
            // 30 ticks: enough for spread and latency percentiles to mean something.
            seconds: 30.0,
            mode: Mode::Stream,
            nchan: false,
            ramp_per_s: 20_000,
            per_worker: 5_000,
            stalled: 0,
            many: None,
            redis: None,
            publishes: 2000,
            smoke: false,
        }
    }
}

impl Options {
    /// New connections per second for one of the workers of a system with `clients`: the
    /// run's ramp shared by the system's workers.
    pub fn worker_ramp(&self, clients: usize) -> u64 {
        (self.ramp_per_s / ((clients / self.per_worker).max(1) as u64)).max(1)
    }

    /// The single-symbol workload's `via` as the report names it.
    pub fn via_name(&self) -> &'static str {
        match (self.via, self.unix) {
            (Via::Scgi, true) => "scgi (unix socket)",
            (Via::Scgi, false) => "scgi",
            (Via::Http, _) => "http",
            (Via::Lighttpd, true) => "lighttpd → scgi (unix socket)",
            (Via::Lighttpd, false) => "lighttpd → scgi",
        }
    }

    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::LongPoll => "longpoll",
            _ => "stream",
        }
    }
}

/// The many-symbol workload's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Many {
    pub symbols: usize,
    pub subscribe: usize,
    pub zipf: f64,
    /// Updates per publish; 0: as many as make 100 publishes a second.
    pub batch: usize,
    /// The most updates per second the floor gets.
    pub floor_rate: f64,
    /// tickerd's `--coalesce-ms`, if given.
    pub coalesce_ms: Option<u64>,
    /// How long to wait after the last publish for every client to hold the final values.
    pub settle_s: f64,
    /// `--quote`: each symbol a record of six fields, each update setting 1 to 3 of them
    /// (`quote`), instead of one price.
    pub quote: bool,
    /// `--max-hz N`: each client asks for at most N events a second per symbol (`max_hz=N`).
    pub max_hz: Option<f64>,
}

impl Default for Many {
    fn default() -> Self {
        Many {
            symbols: 1000,
            subscribe: 20,
            zipf: 1.0,
            batch: 0,
            floor_rate: 100.0,
            coalesce_ms: None,
            settle_s: 10.0,
            quote: false,
            max_hz: None,
        }
    }
}

impl Many {
    pub fn batch(&self, rate: f64) -> usize {
        match self.batch {
            0 => (rate / 100.0).ceil().max(1.0) as usize,
            n => n,
        }
    }
}

/// One row of `--redis`: this many tickerd instances sharing a Redis behind lighttpd, with
/// the run's clients or `clients` of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instances {
    pub count: usize,
    pub clients: Option<usize>,
}

impl std::str::FromStr for Instances {
    type Err = String;
    /// `N` or `N:CLIENTS`.
    fn from_str(s: &str) -> Result<Instances, String> {
        let (count, clients) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c.parse().map_err(|e| format!("{s}: {e}"))?)),
            None => (s, None),
        };
        let count = count.parse().map_err(|e| format!("{s}: {e}"))?;
        if count == 0 || count > 16 || clients == Some(0) {
            return Err(format!("{s}: 1 to 16 instances, clients > 0"));
        }
        Ok(Instances { count, clients })
    }
}

/// `--redis` defaults, unless given: a run that fits a 2-core machine with lighttpd in front
/// of each of five systems (the floor, tickerd alone, ×1, ×2, ×3). 3,000 clients of 20 of
/// 10,000 symbols each get about 6 updates a second at 1,000 updates/s, so every system
/// delivers about 6,500 updates a second (26,000 through the four lighttpds), which leaves
/// two shared cores some room; each front-end holds 3,000 streams (6,000 descriptors).
const REDIS_CLIENTS: usize = 3000;
const REDIS_RATE: f64 = 1000.0;
const REDIS_SECONDS: f64 = 20.0;
const REDIS_SYMBOLS: usize = 10_000;
const REDIS_INSTANCES: [usize; 3] = [1, 2, 3];

pub const USAGE: &str = "fanout [--via scgi|http|lighttpd] [--unix] [--clients N] [--rate R] \
[--seconds S] [--mode stream|longpoll] [--target tickerd|nchan] [--stalled N] [--ramp N/s] [--per-worker N]
  [--publishes N] (after it: N publishes one at a time each way, kept alive and a connection each;
  default 2000, 0: none)
  many symbols: --symbols U [--subscribe K] [--zipf S] [--batch N] [--floor-rate R] [--coalesce-ms N] [--settle-s S]
  (--rate is then updates/s; defaults: K 20, S 1.0, N = rate/100 (100 publishes/s), floor 100 updates/s)
  quotes: --quote [--symbols U …] [--max-hz N]: each symbol a record of six fields at 2, 5 or 8 decimals,
  each update setting 1 to 3 of them (U defaults to 1000); --max-hz: each client asks max_hz=N
  Redis: --redis [--instances 1,2,3] (each N, or N:CLIENTS for a row with clients of its own):
  the many-symbol workload on tickerd without Redis and on N instances sharing a private Redis,
  all behind lighttpd (conf/lighttpd-balance.conf); defaults --clients 3000 --rate 1000
  --seconds 20 --symbols 10000";

/// The flags read, before defaults that depend on them are applied.
#[derive(Default)]
struct Given {
    /// Every flag, for `--redis`'s defaults.
    flags: Vec<String>,
    many: Many,
    /// The many-symbol flags among them.
    many_flags: Vec<String>,
    instances: Option<Vec<Instances>>,
}

impl Given {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|g| g == flag)
    }
}

pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        // `cargo bench` passes --bench; `cargo test` does not: then make a smoke run.
        smoke: !args.iter().any(|a| a == "--bench"),
        ..Options::default()
    };
    if o.smoke {
        o.clients = 200;
        o.rate = 5.0;
        o.seconds = 2.0;
        o.publishes = 200;
    }
    let mut given = read_flags(args, &mut o)?;
    apply_redis(&mut o, &mut given)?;
    if !(o.rate > 0.0 && o.seconds > 0.0 && o.clients > 0 && o.per_worker > 0) {
        return Err("--rate, --seconds, --clients and --per-worker must be positive".into());
    }
    if o.unix && o.via == Via::Http {
        o.via = Via::Scgi; // a Unix socket is an SCGI listener
    }
    if o.redis.is_some() && given.many_flags.is_empty() {
        given.many_flags.push("--symbols".into());
    }
    if !given.many_flags.is_empty() {
        check_many(&o, &given)?;
        o.many = Some(given.many);
    }
    Ok(o)
}

/// Reads every flag into `o`, or into what is returned when its meaning depends on others.
fn read_flags(args: &[String], o: &mut Options) -> Result<Given, String> {
    let mut given = Given::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or(format!("{a} needs a value; usage: {USAGE}"))
        };
        given.flags.push(a.clone());
        match a.as_str() {
            "--bench" => {}
            "--redis" => o.redis = Some(Vec::new()),
            "--instances" => {
                let v = val()?;
                given.instances = Some(
                    v.split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("--instances: {e}"))?,
                );
            }
            "--via" => {
                o.via = match val()?.as_str() {
                    "scgi" => Via::Scgi,
                    "http" => Via::Http,
                    "lighttpd" => Via::Lighttpd,
                    v => return Err(format!("--via {v}: scgi, http or lighttpd")),
                }
            }
            "--unix" => o.unix = true,
            "--clients" => o.clients = val()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--rate" => o.rate = val()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--seconds" => o.seconds = val()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--ramp" => o.ramp_per_s = val()?.parse().map_err(|e| format!("--ramp: {e}"))?,
            "--stalled" => o.stalled = val()?.parse().map_err(|e| format!("--stalled: {e}"))?,
            "--publishes" => {
                o.publishes = val()?.parse().map_err(|e| format!("--publishes: {e}"))?
            }
            "--per-worker" => {
                o.per_worker = val()?.parse().map_err(|e| format!("--per-worker: {e}"))?
            }
            "--mode" => {
                o.mode = match val()?.as_str() {
                    "stream" => Mode::Stream,
                    "longpoll" => Mode::LongPoll,
                    v => return Err(format!("--mode {v}: stream or longpoll")),
                }
            }
            "--target" => {
                o.nchan = match val()?.as_str() {
                    "nchan" => true,
                    "tickerd" => false,
                    v => return Err(format!("--target {v}: tickerd or nchan")),
                }
            }
            "--symbols" | "--subscribe" | "--zipf" | "--batch" | "--floor-rate"
            | "--coalesce-ms" | "--settle-s" | "--max-hz" => {
                read_many_flag(&mut given.many, a, &val()?)?;
                given.many_flags.push(a.clone());
            }
            "--quote" => {
                given.many.quote = true;
                given.many_flags.push(a.clone());
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            // Under `cargo test`, libtest's own arguments (--nocapture, a filter…) may come.
            _ if o.smoke => {}
            other => return Err(format!("unknown argument {other}; usage: {USAGE}")),
        }
    }
    Ok(given)
}

/// One of the many-symbol workload's flags, `flag v`.
fn read_many_flag(many: &mut Many, flag: &str, v: &str) -> Result<(), String> {
    let bad = |e: &dyn std::fmt::Display| format!("{flag} {v}: {e}");
    match flag {
        "--symbols" => many.symbols = v.parse().map_err(|e| bad(&e))?,
        "--subscribe" => many.subscribe = v.parse().map_err(|e| bad(&e))?,
        "--zipf" => many.zipf = v.parse().map_err(|e| bad(&e))?,
        "--batch" => many.batch = v.parse().map_err(|e| bad(&e))?,
        "--floor-rate" => many.floor_rate = v.parse().map_err(|e| bad(&e))?,
        "--coalesce-ms" => many.coalesce_ms = Some(v.parse().map_err(|e| bad(&e))?),
        "--max-hz" => many.max_hz = Some(v.parse().map_err(|e| bad(&e))?),
        _ => many.settle_s = v.parse().map_err(|e| bad(&e))?,
    }
    Ok(())
}

/// `--redis` (and `--instances`, which needs it): its rows, lighttpd in front, and its
/// defaults for what was not given (except in the smoke run, whose sizes stay small).
fn apply_redis(o: &mut Options, given: &mut Given) -> Result<(), String> {
    match (&mut o.redis, given.instances.take()) {
        (None, Some(_)) => return Err("--instances needs --redis".into()),
        (None, None) => return Ok(()),
        (Some(rows), list) => {
            *rows = list.unwrap_or_else(|| {
                REDIS_INSTANCES
                    .iter()
                    .map(|&count| Instances {
                        count,
                        clients: None,
                    })
                    .collect()
            })
        }
    }
    if given.has("--via") && o.via != Via::Lighttpd {
        return Err("--redis: the systems are behind lighttpd (no --via)".into());
    }
    o.via = Via::Lighttpd;
    if o.smoke {
        return Ok(());
    }
    if !given.has("--clients") {
        o.clients = REDIS_CLIENTS;
    }
    if !given.has("--rate") {
        o.rate = REDIS_RATE;
    }
    if !given.has("--seconds") {
        o.seconds = REDIS_SECONDS;
    }
    if !given.has("--symbols") {
        given.many.symbols = REDIS_SYMBOLS;
        given.many_flags.push("--symbols".into());
    }
    Ok(())
}

/// The many-symbol flags make sense together and with the rest.
fn check_many(o: &Options, given: &Given) -> Result<(), String> {
    if !given
        .many_flags
        .iter()
        .any(|f| f == "--symbols" || f == "--quote")
    {
        return Err(format!(
            "{} needs --symbols U (or --quote)",
            given.many_flags[0]
        ));
    }
    if given.many.quote && (o.nchan || o.redis.is_some()) {
        return Err("--quote: tickerd and the floor only (no --target nchan, no --redis)".into());
    }
    if given
        .many
        .max_hz
        .is_some_and(|hz| !(hz > 0.0 && hz <= 1000.0))
    {
        return Err("--max-hz N: above 0, at most 1000 (tickerd's range)".into());
    }
    if o.mode != Mode::Stream || o.stalled > 0 {
        return Err("--symbols: streams only (no --mode longpoll, no --stalled)".into());
    }
    let many = &given.many;
    if !(many.symbols > 0
        && (1..=255).contains(&many.subscribe)
        && many.subscribe <= many.symbols
        && many.batch <= many.symbols
        && many.zipf >= 0.0
        && many.floor_rate > 0.0
        && many.settle_s > 0.0)
    {
        return Err(
            "--symbols U > 0, 1 <= --subscribe K <= min(U, 255) (nchan's multiplexing limit), --batch <= U, --zipf >= 0, --floor-rate and --settle-s > 0".into(),
        );
    }
    Ok(())
}

/// `--instances`' values, run by the smoke run.
pub fn self_check() {
    assert_eq!(
        "3:6000".parse::<Instances>(),
        Ok(Instances {
            count: 3,
            clients: Some(6000)
        })
    );
    assert!("0".parse::<Instances>().is_err() && "2:x".parse::<Instances>().is_err());
}
