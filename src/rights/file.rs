//! The entitlements file, TOML (README "Who may see what"): `[anonymous]`, `[groups.NAME]`
//! and `[users.NAME]`, each with `symbols`, `tier` and `max_hz`; users also with `groups`.
//! Read with the `toml` crate into serde structs that refuse unknown keys; every value is
//! checked as it is read, so an error carries the span of the value at fault, turned into
//! `line N: ...`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::pattern::Pattern;
use super::resolved::Grant;
use super::tier::Tier;

/// Why the file was refused: the line at fault when known (1-based), and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "line {n}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for FileError {}

impl FileError {
    fn at(text: &str, offset: Option<usize>, message: impl Into<String>) -> FileError {
        // One line, whatever the message: it goes into a log line.
        let message: String = message.into();
        FileError {
            line: offset.map(|o| line_of(text, o)),
            message: message.trim_end().replace(['\n', '\r'], " "),
        }
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The file as written. `deny_unknown_fields` everywhere: a misspelt key (`tiers`, `max-hz`)
/// is an error, never silently a right granted or withheld.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    anonymous: Option<RawSection>,
    #[serde(default)]
    groups: BTreeMap<String, RawSection>,
    #[serde(default)]
    users: BTreeMap<String, RawUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    symbols: Option<Vec<Spanned<String>>>,
    tier: Option<Spanned<Tier>>,
    max_hz: Option<Spanned<Cap>>,
}

/// A section's fields again (serde cannot flatten with `deny_unknown_fields`), and `groups`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    symbols: Option<Vec<Spanned<String>>>,
    tier: Option<Spanned<Tier>>,
    max_hz: Option<Spanned<Cap>>,
    #[serde(default)]
    groups: Vec<Spanned<String>>,
}

/// `max_hz`, as the least time between two rounds.
struct Cap(Duration);

/// What the file grants, checked: each section's grants, and each user's groups (all known).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Parsed {
    pub anonymous: Option<Vec<Grant>>,
    pub groups: BTreeMap<String, Vec<Grant>>,
    pub users: BTreeMap<String, (Vec<String>, Vec<Grant>)>,
}

pub(super) fn parse(text: &str) -> Result<Parsed, FileError> {
    let raw: Raw = toml::from_str(text)
        .map_err(|e| FileError::at(text, e.span().map(|s| s.start), e.message()))?;
    let section = |symbols: Option<Vec<Spanned<String>>>,
                   tier: Option<Spanned<Tier>>,
                   max_hz: Option<Spanned<Cap>>|
     -> Result<Vec<Grant>, FileError> {
        let Some(symbols) = symbols else {
            // A tier or cap for no symbols grants nothing: most likely a mistake (a user's
            // `tier = "realtime"` meant to upgrade their groups' symbols, which it cannot).
            if let Some(span) = tier
                .as_ref()
                .map(|t| t.span())
                .or(max_hz.as_ref().map(|c| c.span()))
            {
                return Err(FileError::at(
                    text,
                    Some(span.start),
                    "tier and max_hz apply to this section's own symbols, and it has none \
                     (add symbols = [...])",
                ));
            }
            return Ok(Vec::new());
        };
        // Without a tier: real time. Without max_hz: uncapped.
        let tier = tier.map_or(Tier::Realtime, |t| *t.get_ref());
        let cap = max_hz.map(|c| c.get_ref().0);
        // Each pattern checked here rather than as it is read, so that an error names the
        // pattern's own line, not the array's first.
        symbols
            .iter()
            .map(|p| {
                let pattern = Pattern::parse(p.get_ref())
                    .map_err(|e| FileError::at(text, Some(p.span().start), e))?;
                Ok(Grant { pattern, tier, cap })
            })
            .collect()
    };
    let mut parsed = Parsed::default();
    if let Some(a) = raw.anonymous {
        parsed.anonymous = Some(section(a.symbols, a.tier, a.max_hz)?);
    }
    for (name, g) in raw.groups {
        let grants = section(g.symbols, g.tier, g.max_hz)?;
        parsed.groups.insert(name, grants);
    }
    for (name, u) in raw.users {
        let mut groups = Vec::new();
        for g in u.groups {
            if !parsed.groups.contains_key(g.get_ref()) {
                return Err(FileError::at(
                    text,
                    Some(g.span().start),
                    format!(
                        "user {}: no group {} (a [groups.NAME] section)",
                        crate::symbol::quoted(name.as_bytes()),
                        crate::symbol::quoted(g.get_ref().as_bytes())
                    ),
                ));
            }
            if !groups.contains(g.get_ref()) {
                groups.push(g.into_inner());
            }
        }
        let grants = section(u.symbols, u.tier, u.max_hz)?;
        parsed.users.insert(name, (groups, grants));
    }
    Ok(parsed)
}

impl<'de> Deserialize<'de> for Tier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tier, D::Error> {
        let text = String::deserialize(d)?;
        Tier::parse(&text).map_err(de::Error::custom)
    }
}

/// `max_hz = 10`, `max_hz = 0.5` or `max_hz = "0.5"`: the text goes through
/// `route::min_gap`, the same rule as a client's `?max_hz=`. A TOML float is read as the
/// shortest decimal that gives it back (`0.1` stays `0.1`).
impl<'de> Deserialize<'de> for Cap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cap, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Cap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number above 0 and at most 1000")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cap, E> {
                crate::route::min_gap(v.as_bytes())
                    .map(Cap)
                    .map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cap, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cap, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cap, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(pattern: &str, tier: Tier, cap_ms: Option<u64>) -> Grant {
        Grant {
            pattern: Pattern::parse(pattern).unwrap(),
            tier,
            cap: cap_ms.map(Duration::from_millis),
        }
    }

    const EXAMPLE: &str = r#"
[anonymous]                 # everyone, identified or not
symbols = ["AAPL", "MSFT"]
tier = "15m"

[groups.pro]
symbols = ["*"]
tier = "realtime"
max_hz = 10

[groups.fx]
symbols = ["fx.*"]
tier = "90s"
max_hz = 0.5

[users.alice]               # REMOTE_USER or the token's sub
groups = ["pro", "fx", "pro"]
symbols = ["FUND.NAV"]

[users.bob]
groups = ["fx"]
"#;

    #[test]
    fn the_example_parses() {
        let p = parse(EXAMPLE).unwrap();
        assert_eq!(
            p.anonymous,
            Some(vec![
                grant("AAPL", Tier::Delayed(900), None),
                grant("MSFT", Tier::Delayed(900), None)
            ])
        );
        assert_eq!(p.groups["pro"], vec![grant("*", Tier::Realtime, Some(100))]);
        assert_eq!(
            p.groups["fx"],
            vec![grant("FX.*", Tier::Delayed(90), Some(2000))]
        );
        let (groups, grants) = &p.users["alice"];
        assert_eq!(groups, &["pro", "fx"]);
        assert_eq!(grants, &[grant("FUND.NAV", Tier::Realtime, None)]);
        assert_eq!(p.users["bob"], (vec!["fx".to_string()], vec![]));
    }

    #[test]
    fn small_valid_files() {
        for text in [
            "",
            "# nothing\n",
            "[anonymous]\n",
            "[anonymous]\nsymbols = []\ntier = \"1h\"\n",
            "[groups.a]\nsymbols = [\"A\"]\nmax_hz = \"2.5\"\n",
            "[groups.a]\nsymbols = [\"A\"]\nmax_hz = 1000\n",
            "[groups.a]\nsymbols = [\"A\"]\nmax_hz = 0.001\n",
            "groups.a.symbols = [\"A\"]\nusers.u.groups = [\"a\"]\n",
            "[users.\"x@example.org\"]\nsymbols = [\"*\"]\n",
        ] {
            parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        }
        let p = parse("[groups.a]\nsymbols = [\"A\"]\nmax_hz = \"2.5\"\n").unwrap();
        assert_eq!(p.groups["a"][0].cap, Some(Duration::from_millis(400)));
        assert_eq!(parse("").unwrap(), Parsed::default());
        assert_eq!(parse("[anonymous]").unwrap().anonymous, Some(vec![]));
    }

    #[test]
    fn each_refusal_names_its_line() {
        for (text, line, says) in [
            (
                "[anonymous]\nsymbol = [\"A\"]\n",
                2,
                "unknown field `symbol`",
            ),
            (
                "[anonymous]\nsymbols = [\"A\"]\ntiers = \"1h\"\n",
                3,
                "unknown field `tiers`",
            ),
            (
                "[everyone]\nsymbols = [\"A\"]\n",
                1,
                "unknown field `everyone`",
            ),
            (
                "[groups.a]\nsymbols = [\"A\"]\ngroups = [\"b\"]\n",
                3,
                "unknown field `groups`",
            ),
            (
                "[anonymous]\nsymbols = [\"A\", \"B*C\"]\n",
                2,
                "`*` only at the end",
            ),
            (
                "[anonymous]\nsymbols = [\n  \"A\",\n  \"\"\n]\n",
                4,
                "empty symbol",
            ),
            ("[anonymous]\nsymbols = \"A\"\n", 2, "invalid type"),
            ("[anonymous]\nsymbols = [1]\n", 2, "invalid type"),
            (
                "[anonymous]\nsymbols = [\"A\"]\ntier = \"15 minutes\"\n",
                3,
                "tier \"15 minutes\"",
            ),
            (
                "[anonymous]\nsymbols = [\"A\"]\ntier = 15\n",
                3,
                "invalid type",
            ),
            (
                "[anonymous]\nsymbols = [\"A\"]\nmax_hz = 0\n",
                3,
                "max_hz: \"0\" is not a number",
            ),
            (
                "[anonymous]\nsymbols = [\"A\"]\nmax_hz = 1001\n",
                3,
                "at most 1000",
            ),
            ("[anonymous]\nsymbols = [\"A\"]\nmax_hz = -1\n", 3, "max_hz"),
            (
                "[anonymous]\nsymbols = [\"A\"]\nmax_hz = nan\n",
                3,
                "max_hz",
            ),
            (
                "[anonymous]\nsymbols = [\"A\"]\nmax_hz = true\n",
                3,
                "invalid type",
            ),
            ("[anonymous]\ntier = \"1h\"\n", 2, "it has none"),
            ("[users.a]\ngroups = []\n\nmax_hz = 5\n", 4, "it has none"),
            (
                "[groups.a]\n\n[users.u]\ngroups = [\"a\", \"b\"]\n",
                4,
                "user \"u\": no group \"b\"",
            ),
            ("[anonymous]\n[anonymous]\n", 2, "duplicate"),
            ("[anonymous]\nsymbols = [\"A\"\n", 2, ""),
            (
                "[anonymous]\n\n\nsymbols = [\"A\"]\nsymbols = []\n",
                5,
                "duplicate key",
            ),
            ("x", 1, ""),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
            assert!(e.message.contains(says), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("line {line}: ")), "{e}");
            assert!(!e.message.contains('\n'), "one line: {e:?}");
        }
    }

    proptest::proptest! {
        /// Any text is parsed or refused with a message, never a panic.
        #[test]
        fn any_text_parses_or_is_refused(text in "(\\PC|\n){0,200}") {
            if let Err(e) = parse(&text) {
                proptest::prop_assert!(!e.message.is_empty() && !e.message.contains('\n'));
                proptest::prop_assert!(e.line.is_none_or(|n| n >= 1 && n <= text.lines().count().max(1) + 1));
            }
        }

        /// Text made of the file's own words, so that most of it gets past TOML's grammar.
        #[test]
        fn file_like_text_parses_or_is_refused(
            words in proptest::collection::vec(proptest::sample::select(vec![
                "[anonymous]\n", "[groups.a]\n", "[groups.b]\n", "[users.u]\n", "symbols = ",
                "tier = ", "max_hz = ", "groups = ", "[\"a\"]", "[\"A\", \"FX.*\", \"*\"]",
                "[\"b\"]", "\"15m\"", "\"realtime\"", "\"0s\"", "10", "0.5", "1e3", "\"x\"",
                "\n", " ", "[", "]", ",", "\"", "=", "#",
            ]), 0..40)
        ) {
            let text = words.concat();
            if let Err(e) = parse(&text) {
                proptest::prop_assert!(!e.message.is_empty() && !e.message.contains('\n'));
                proptest::prop_assert!(e.line.is_none_or(|n| n >= 1 && n <= text.lines().count().max(1) + 1));
            }
        }
    }
}
