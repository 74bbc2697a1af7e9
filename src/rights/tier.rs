//! Tiers: real time, or a delay (`"90s"`, `"15m"`, `"1h"`). The grammar is tiny and ours: a
//! positive whole number and one unit, `s`, `m` or `h`, nothing else (no spaces, no sign,
//! no fractions, no combined units).

use std::fmt;
use std::time::Duration;

use crate::symbol::quoted;

/// The longest delay a tier may have: a day. Longer is refused as a mistake (a delayed tier
/// keeps what its delay needs in memory), and it keeps the seconds well inside a `u32`.
pub const MAX_DELAY_S: u32 = 24 * 3600;

/// How late a client sees the feed. Ordered from best to worst: real time, then delays from
/// the shortest. So "the best tier" is the least and "a stream's tier" is the greatest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Realtime,
    /// Seconds of delay, 1 to [`MAX_DELAY_S`].
    Delayed(u32),
}

impl Tier {
    /// `realtime`, or a delay: `90s`, `15m`, `1h`.
    pub fn parse(text: &str) -> Result<Tier, String> {
        let refuse = || {
            format!(
                "tier {}: expected \"realtime\" or a delay such as \"90s\", \"15m\", \"1h\" \
                 (a whole number above 0 and s, m or h; a day at most)",
                quoted(text.as_bytes())
            )
        };
        if text == "realtime" {
            return Ok(Tier::Realtime);
        }
        let unit = match text.as_bytes().last() {
            Some(b's') => 1,
            Some(b'm') => 60,
            Some(b'h') => 3600,
            _ => return Err(refuse()),
        };
        let digits = &text[..text.len() - 1];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refuse());
        }
        let n: u64 = digits.parse().map_err(|_| refuse())?;
        match n.checked_mul(unit) {
            Some(secs @ 1..) if secs <= MAX_DELAY_S as u64 => Ok(Tier::Delayed(secs as u32)),
            _ => Err(refuse()),
        }
    }

    /// The delay: zero for real time.
    pub fn delay(&self) -> Duration {
        Duration::from_secs(self.delay_s() as u64)
    }

    /// The delay in seconds, 0 for real time (the `Tickerd-Delay` header's value).
    pub fn delay_s(&self) -> u32 {
        match self {
            Tier::Realtime => 0,
            Tier::Delayed(s) => *s,
        }
    }
}

/// `realtime`, or the delay in its largest whole unit (`900` seconds: `15m`), which parses
/// back to the same tier.
impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Tier::Realtime => f.write_str("realtime"),
            Tier::Delayed(s) if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            Tier::Delayed(s) if s % 60 == 0 => write!(f, "{}m", s / 60),
            Tier::Delayed(s) => write!(f, "{s}s"),
        }
    }
}

impl fmt::Debug for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_parse() {
        for (text, want) in [
            ("realtime", Tier::Realtime),
            ("90s", Tier::Delayed(90)),
            ("15m", Tier::Delayed(900)),
            ("1h", Tier::Delayed(3600)),
            ("24h", Tier::Delayed(86400)),
            ("1440m", Tier::Delayed(86400)),
            ("1s", Tier::Delayed(1)),
            ("015m", Tier::Delayed(900)),
        ] {
            assert_eq!(Tier::parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_tiers_are_refused() {
        for text in [
            "",
            "Realtime",
            "REALTIME",
            "real-time",
            "0s",
            "0m",
            "00h",
            "s",
            "15",
            "15 m",
            " 15m",
            "15m ",
            "+15m",
            "-15m",
            "1.5m",
            "15min",
            "1d",
            "15M",
            "1h30m",
            "25h",
            "86401s",
            "99999999999999999999999h",
            "１５m",
        ] {
            let e = Tier::parse(text).unwrap_err();
            assert!(e.starts_with("tier "), "{text:?}: {e}");
        }
    }

    #[test]
    fn ordering_best_first() {
        let mut tiers = [
            Tier::Delayed(3600),
            Tier::Realtime,
            Tier::Delayed(90),
            Tier::Delayed(900),
        ];
        tiers.sort();
        assert_eq!(
            tiers,
            [
                Tier::Realtime,
                Tier::Delayed(90),
                Tier::Delayed(900),
                Tier::Delayed(3600)
            ]
        );
    }

    #[test]
    fn shown_in_the_largest_unit_and_read_back() {
        for (secs, shown) in [
            (90, "90s"),
            (900, "15m"),
            (3600, "1h"),
            (5400, "90m"),
            (61, "61s"),
        ] {
            let t = Tier::Delayed(secs);
            assert_eq!(t.to_string(), shown);
            assert_eq!(Tier::parse(shown), Ok(t));
            assert_eq!(t.delay_s(), secs);
        }
        assert_eq!(Tier::Realtime.to_string(), "realtime");
        assert_eq!(Tier::Realtime.delay(), Duration::ZERO);
        assert_eq!(Tier::Delayed(900).delay(), Duration::from_secs(900));
    }
}
