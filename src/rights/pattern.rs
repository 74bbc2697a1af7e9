//! Symbol patterns: `AAPL` (exactly that symbol), `FX.*` (every symbol starting with `FX.`)
//! and `*` (every symbol). Case is folded as symbols fold it: `fx.*` is `FX.*`.

use std::fmt;

use crate::symbol::{quoted, Symbol};

/// A parsed pattern. Small and `Copy`: a prefix is held as a `Symbol` (inline).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pattern {
    /// `*`: every symbol.
    All,
    /// `PREFIX*`: every symbol whose name starts with the prefix (the prefix itself is a
    /// valid symbol name, so it starts with a letter or a digit).
    Prefix(Symbol),
    /// `NAME`: that symbol only.
    Exact(Symbol),
}

impl Pattern {
    /// `*`, `PREFIX*` or `NAME`; the prefix and the name must be valid symbol names. A `*`
    /// anywhere but at the end is refused (`A*B`, `**`), as is an empty pattern.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let refuse = |why: String| format!("symbol pattern {}: {why}", quoted(text.as_bytes()));
        if text == "*" {
            return Ok(Pattern::All);
        }
        let (name, prefix) = match text.strip_suffix('*') {
            Some(prefix) => (prefix, true),
            None => (text, false),
        };
        let symbol = Symbol::parse(name.as_bytes()).map_err(|e| {
            refuse(if name.contains('*') {
                "`*` only at the end (FX.*) or alone (*)".into()
            } else {
                e.to_string()
            })
        })?;
        Ok(if prefix {
            Pattern::Prefix(symbol)
        } else {
            Pattern::Exact(symbol)
        })
    }

    /// Whether the symbol is one this pattern names.
    pub fn covers(&self, symbol: &Symbol) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Prefix(p) => symbol.as_str().starts_with(p.as_str()),
            Pattern::Exact(s) => s == symbol,
        }
    }

    /// Whether every symbol `other` covers, this covers too.
    pub fn includes(&self, other: &Pattern) -> bool {
        match (self, other) {
            (Pattern::All, _) => true,
            (_, Pattern::All) => false,
            (Pattern::Prefix(p), Pattern::Prefix(q)) => q.as_str().starts_with(p.as_str()),
            (Pattern::Prefix(_), Pattern::Exact(s)) => self.covers(s),
            (Pattern::Exact(s), Pattern::Exact(t)) => s == t,
            (Pattern::Exact(_), Pattern::Prefix(_)) => false,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::All => f.write_str("*"),
            Pattern::Prefix(p) => write!(f, "{p}*"),
            Pattern::Exact(s) => write!(f, "{s}"),
        }
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn patterns_parse_and_fold_case() {
        for (text, shown) in [
            ("AAPL", "AAPL"),
            ("aapl", "AAPL"),
            ("FX.*", "FX.*"),
            ("fx.*", "FX.*"),
            ("*", "*"),
            ("B*", "B*"),
            ("BRK.B", "BRK.B"),
        ] {
            assert_eq!(Pattern::parse(text).unwrap().to_string(), shown, "{text}");
        }
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        for (text, why) in [
            ("", "empty symbol"),
            ("**", "`*` only at the end"),
            ("A*B", "`*` only at the end"),
            ("*A", "`*` only at the end"),
            (".FX*", "must start with a letter or a digit"),
            ("AA PL", "character ' ' not allowed"),
            ("ABCDEFGHIJKLMNOPQ", "longer than 16"),
            ("ABCDEFGHIJKLMNOPQ*", "longer than 16"),
        ] {
            let e = Pattern::parse(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
            assert!(e.starts_with("symbol pattern "), "{e}");
        }
    }

    #[test]
    fn what_each_pattern_covers() {
        let p = |t| Pattern::parse(t).unwrap();
        assert!(p("AAPL").covers(&sym("aapl")));
        assert!(!p("AAPL").covers(&sym("AAPL.X")));
        assert!(!p("AAPL").covers(&sym("AAP")));
        assert!(p("FX.*").covers(&sym("FX.EURUSD")));
        assert!(p("FX.*").covers(&sym("FX.")));
        assert!(!p("FX.*").covers(&sym("FXEURUSD")));
        assert!(!p("FX.*").covers(&sym("CRYPTO.BTC")));
        assert!(p("*").covers(&sym("ANYTHING")));
    }

    #[test]
    fn inclusion() {
        let p = |t| Pattern::parse(t).unwrap();
        for (a, b, want) in [
            ("*", "*", true),
            ("*", "FX.*", true),
            ("*", "AAPL", true),
            ("FX.*", "*", false),
            ("FX.*", "FX.EU*", true),
            ("FX.EU*", "FX.*", false),
            ("FX.*", "FX.EURUSD", true),
            ("FX.*", "AAPL", false),
            ("AAPL", "AAPL", true),
            ("AAPL", "AAPL*", false),
            ("AAPL", "MSFT", false),
        ] {
            assert_eq!(p(a).includes(&p(b)), want, "{a} includes {b}");
        }
    }
}
