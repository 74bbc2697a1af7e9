//! The resolved rights of one principal: a short list of grants, each a pattern with its tier
//! and its rate cap. A plain value, made once when a stream starts (after nchan's
//! `nchan_authorize_request`: rights checked once, at the edge), that the core can keep per
//! client; the fan-out asks it nothing it would have to parse.

use std::time::Duration;

use super::pattern::Pattern;
use super::tier::Tier;
use crate::symbol::Symbol;

/// One grant: the symbols `pattern` covers, at `tier`, at most one round every `cap` (the
/// least time between two rounds, from `max_hz`; `None`: uncapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grant {
    pub pattern: Pattern,
    pub tier: Tier,
    pub cap: Option<Duration>,
}

impl Grant {
    /// Whether this grant gives everything `other` gives, or more: it covers every symbol
    /// `other` covers, at a tier as good, with a cap as generous. Such an `other` never
    /// decides a symbol's tier or cap (see [`Rights::cap_of`]), so it can be dropped.
    fn dominates(&self, other: &Grant) -> bool {
        self.pattern.includes(&other.pattern)
            && self.tier <= other.tier
            && more_generous_or_equal(self.cap, other.cap)
    }
}

/// `None` (no cap) is the most generous; otherwise the shorter least gap.
fn more_generous_or_equal(a: Option<Duration>, b: Option<Duration>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a <= b,
    }
}

/// What one principal may stream. Without grants, nothing.
///
/// For each symbol, the best tier among the grants covering it counts (real time before
/// any delay, a shorter delay before a longer one); its cap is the most generous among the
/// grants covering it *at that tier* (none if one of them has none). A slower grant's cap
/// never slows a better tier, and a grant at a worse tier never lifts a cap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rights {
    /// No grant dominates another (so no duplicates either), in a fixed order.
    grants: Box<[Grant]>,
}

impl Rights {
    /// Everything, in real time, uncapped: what everyone has when no entitlements are
    /// configured.
    pub fn all() -> Rights {
        Rights::from_grants(vec![Grant {
            pattern: Pattern::All,
            tier: Tier::Realtime,
            cap: None,
        }])
    }

    /// Nothing.
    pub fn none() -> Rights {
        Rights::default()
    }

    /// The union of the grants, kept small: a grant another dominates is dropped.
    pub fn from_grants(mut grants: Vec<Grant>) -> Rights {
        // A fixed order (so equal rights are equal values) and duplicates next to each other.
        grants.sort_by_key(|g| (g.pattern, g.tier, g.cap));
        grants.dedup();
        let mut kept: Vec<Grant> = Vec::with_capacity(grants.len());
        for (i, g) in grants.iter().enumerate() {
            // Dominated by a different grant; no two are equal here, so two grants never drop
            // each other.
            if !grants
                .iter()
                .enumerate()
                .any(|(j, h)| i != j && h.dominates(g))
            {
                kept.push(*g);
            }
        }
        Rights {
            grants: kept.into_boxed_slice(),
        }
    }

    /// The grants, none dominating another.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// Whether any symbol at all is granted. An unidentified caller without rights gets 401
    /// before its symbols are looked at.
    pub fn has_any(&self) -> bool {
        !self.grants.is_empty()
    }

    /// Whether every symbol is granted in real time, uncapped: the fast path, the same as no
    /// entitlements at all.
    pub fn allows_all(&self) -> bool {
        self.grants
            .iter()
            .any(|g| g.pattern == Pattern::All && g.tier == Tier::Realtime && g.cap.is_none())
    }

    /// The symbol's best tier and the cap that goes with it; `None`: not entitled.
    pub fn grant_for(&self, symbol: &Symbol) -> Option<(Tier, Option<Duration>)> {
        let mut best: Option<(Tier, Option<Duration>)> = None;
        for g in self.grants.iter().filter(|g| g.pattern.covers(symbol)) {
            best = Some(match best {
                Some((tier, cap)) if tier < g.tier => (tier, cap),
                Some((tier, cap)) if tier == g.tier => (
                    tier,
                    if more_generous_or_equal(cap, g.cap) {
                        cap
                    } else {
                        g.cap
                    },
                ),
                _ => (g.tier, g.cap),
            });
        }
        best
    }

    /// The symbol's best tier; `None`: not entitled (it must look as if it did not exist).
    pub fn tier_of(&self, symbol: &Symbol) -> Option<Tier> {
        self.grant_for(symbol).map(|(tier, _)| tier)
    }

    /// The least time between two rounds for this symbol; `None`: uncapped, or not entitled
    /// ([`Rights::tier_of`] tells which).
    pub fn cap_of(&self, symbol: &Symbol) -> Option<Duration> {
        self.grant_for(symbol).and_then(|(_, cap)| cap)
    }

    /// A stream's tier: the longest delay among its symbols (a stream is real time or
    /// delayed, never a mix); or the symbols not entitled, in request order.
    pub fn stream_tier(&self, symbols: &[Symbol]) -> Result<Tier, Vec<Symbol>> {
        let mut tier = Tier::Realtime;
        let mut missing = Vec::new();
        for s in symbols {
            match self.tier_of(s) {
                Some(t) => tier = tier.max(t),
                None => missing.push(*s),
            }
        }
        if missing.is_empty() {
            Ok(tier)
        } else {
            Err(missing)
        }
    }

    /// A stream's cap, for a core that keeps one `max_hz` per stream: the strictest (longest
    /// gap) among its symbols' caps, `None` when none is capped. Symbols not entitled are
    /// skipped ([`Rights::stream_tier`] refuses them first).
    pub fn stream_cap(&self, symbols: &[Symbol]) -> Option<Duration> {
        symbols.iter().filter_map(|s| self.cap_of(s)).max()
    }

    /// Whether a stream or long poll of these symbols may start, and at which tier; if not,
    /// which answer it gets. `identified`: the caller has an identity (a trusted
    /// `REMOTE_USER` or a valid token). Check this before looking the symbols up in the
    /// universe, so that a symbol outside the rights answers the same whether it exists or not.
    pub fn admit(&self, symbols: &[Symbol], identified: bool) -> Result<Tier, Refusal> {
        if !identified && !self.has_any() {
            return Err(Refusal::Unauthorized {
                missing: symbols.to_vec(),
            });
        }
        self.stream_tier(symbols).map_err(|missing| {
            if identified {
                Refusal::Forbidden { missing }
            } else {
                Refusal::Unauthorized { missing }
            }
        })
    }
}

/// Why a stream may not start. Both name the symbols not entitled, in request order (for the
/// 403's message and the log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No identity, and anonymous lacks a symbol (or has no rights at all): 401 with
    /// `WWW-Authenticate: Bearer`, so that the client can log in and retry.
    Unauthorized { missing: Vec<Symbol> },
    /// An identified caller lacks a symbol: 403.
    Forbidden { missing: Vec<Symbol> },
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Unauthorized { .. } => 401,
            Refusal::Forbidden { .. } => 403,
        }
    }

    pub fn missing(&self) -> &[Symbol] {
        match self {
            Refusal::Unauthorized { missing } | Refusal::Forbidden { missing } => missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s.as_bytes()).unwrap()
    }

    fn syms(list: &[&str]) -> Vec<Symbol> {
        list.iter().map(|s| sym(s)).collect()
    }

    fn grant(pattern: &str, tier: &str, hz: Option<&str>) -> Grant {
        Grant {
            pattern: Pattern::parse(pattern).unwrap(),
            tier: Tier::parse(tier).unwrap(),
            cap: hz.map(|hz| crate::route::min_gap(hz.as_bytes()).unwrap()),
        }
    }

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn the_best_tier_covering_a_symbol_counts() {
        let r = Rights::from_grants(vec![
            grant("*", "15m", None),
            grant("FX.*", "90s", None),
            grant("FX.EURUSD", "realtime", None),
            grant("AAPL", "1h", None),
        ]);
        for (s, want) in [
            ("MSFT", Some(Tier::Delayed(900))),
            ("AAPL", Some(Tier::Delayed(900))),
            ("FX.GBPUSD", Some(Tier::Delayed(90))),
            ("fx.eurusd", Some(Tier::Realtime)),
        ] {
            assert_eq!(r.tier_of(&sym(s)), want, "{s}");
        }
        assert_eq!(Rights::none().tier_of(&sym("AAPL")), None);
        let r = Rights::from_grants(vec![grant("FX.*", "realtime", None)]);
        assert_eq!(r.tier_of(&sym("AAPL")), None);
    }

    #[test]
    fn caps_go_with_the_best_tier() {
        let r = Rights::from_grants(vec![
            // A worse tier's cap (or lack of one) does not count.
            grant("*", "15m", None),
            grant("FX.*", "realtime", Some("2")),
            grant("FX.EURUSD", "realtime", Some("10")),
            grant("AAPL", "realtime", Some("1")),
            grant("AAPL", "realtime", None),
            grant("MSFT", "90s", Some("4")),
        ]);
        for (s, tier, cap) in [
            ("FX.GBPUSD", Tier::Realtime, ms(500)),
            // The most generous cap among the grants at the best tier.
            ("FX.EURUSD", Tier::Realtime, ms(100)),
            // None if one of them has none.
            ("AAPL", Tier::Realtime, None),
            ("MSFT", Tier::Delayed(90), ms(250)),
            ("IBM", Tier::Delayed(900), None),
        ] {
            assert_eq!(r.grant_for(&sym(s)), Some((tier, cap)), "{s}");
            assert_eq!(r.cap_of(&sym(s)), cap, "{s}");
        }
        assert_eq!(r.cap_of(&sym("NOPE")), None);
        assert_eq!(
            r.stream_cap(&syms(&["FX.EURUSD", "FX.GBPUSD", "AAPL"])),
            ms(500)
        );
        assert_eq!(r.stream_cap(&syms(&["AAPL", "IBM"])), None);
    }

    #[test]
    fn a_streams_tier_is_its_longest_delay() {
        let r = Rights::from_grants(vec![
            grant("AAPL", "realtime", None),
            grant("MSFT", "15m", None),
            grant("FX.*", "90s", None),
        ]);
        assert_eq!(r.stream_tier(&syms(&["AAPL"])), Ok(Tier::Realtime));
        assert_eq!(
            r.stream_tier(&syms(&["AAPL", "FX.EURUSD"])),
            Ok(Tier::Delayed(90))
        );
        assert_eq!(
            r.stream_tier(&syms(&["FX.EURUSD", "MSFT", "AAPL"])),
            Ok(Tier::Delayed(900))
        );
        assert_eq!(r.stream_tier(&[]), Ok(Tier::Realtime));
        // The symbols not entitled, in request order.
        assert_eq!(
            r.stream_tier(&syms(&["ZZZ", "AAPL", "IBM", "FX.X", "CRYPTO.BTC"])),
            Err(syms(&["ZZZ", "IBM", "CRYPTO.BTC"]))
        );
    }

    #[test]
    fn dominated_grants_are_dropped() {
        let r = Rights::from_grants(vec![
            grant("*", "realtime", None),
            grant("FX.*", "15m", Some("1")),
            grant("AAPL", "realtime", None),
            grant("*", "realtime", None),
        ]);
        assert_eq!(r.grants(), &[grant("*", "realtime", None)]);
        assert!(r.allows_all());
        // Kept: a better tier, or a more generous cap, on a narrower pattern.
        let g = vec![
            grant("*", "15m", Some("1")),
            grant("FX.*", "realtime", Some("1")),
            grant("AAPL", "15m", Some("5")),
        ];
        let r = Rights::from_grants(g.clone());
        assert_eq!(r.grants().len(), 3);
        assert!(!r.allows_all());
        // The order the grants come in does not matter.
        let mut rev = g;
        rev.reverse();
        assert_eq!(Rights::from_grants(rev), r);
        assert!(Rights::all().allows_all());
        assert!(!Rights::from_grants(vec![grant("*", "realtime", Some("1000"))]).allows_all());
        assert!(!Rights::from_grants(vec![grant("*", "1s", None)]).allows_all());
    }

    #[test]
    fn admission_401_or_403() {
        let anon = Rights::from_grants(vec![grant("AAPL", "15m", None)]);
        assert_eq!(anon.admit(&syms(&["AAPL"]), false), Ok(Tier::Delayed(900)));
        let e = anon.admit(&syms(&["MSFT", "AAPL"]), false).unwrap_err();
        assert_eq!((e.status(), e.missing()), (401, &syms(&["MSFT"])[..]));
        let e = anon.admit(&syms(&["MSFT", "AAPL"]), true).unwrap_err();
        assert_eq!((e.status(), e.missing()), (403, &syms(&["MSFT"])[..]));
        // No rights at all and no identity: 401 whatever is asked.
        assert_eq!(Rights::none().admit(&[], false).unwrap_err().status(), 401);
        assert_eq!(Rights::none().admit(&[], true), Ok(Tier::Realtime));
        assert_eq!(
            Rights::none()
                .admit(&syms(&["A"]), true)
                .unwrap_err()
                .status(),
            403
        );
    }

    #[test]
    fn small_enough_to_keep_per_client() {
        assert!(std::mem::size_of::<Rights>() <= 16);
        assert!(std::mem::size_of::<Grant>() <= 48);
    }
}
