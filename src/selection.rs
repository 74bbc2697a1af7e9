//! A client's choice of symbols: the `symbols` query parameter of `GET /ticker`, already
//! URL-decoded, as a comma list. Pure: which names the universe knows is asked later.

use std::fmt;

use crate::symbol::{quoted, Symbol};

/// The most a client may ask for, whatever `--max-symbols-per-client` says.
pub const MAX_SYMBOLS_PER_CLIENT: usize = 1024;

/// Why a list is refused (400); `Display` is the one-line answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    Empty,
    Malformed { name: String, why: String },
    TooMany { asked: usize, max: usize },
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::Empty => f.write_str("symbols: the list is empty"),
            SelectError::Malformed { name, why } => {
                write!(f, "symbols: {name} is not a symbol: {why}")
            }
            SelectError::TooMany { asked, max } => {
                write!(
                    f,
                    "symbols: {asked} symbols asked, at most {max} per client"
                )
            }
        }
    }
}

/// The distinct symbols of a comma list, in the order first named (case-insensitive;
/// spaces around names ignored; empty entries, as in `A,,B` or a trailing comma, skipped).
pub fn parse(value: &[u8], max: usize) -> Result<Vec<Symbol>, SelectError> {
    let mut chosen: Vec<Symbol> = Vec::new();
    for name in value.split(|&b| b == b',') {
        let name = name.trim_ascii();
        if name.is_empty() {
            continue;
        }
        let symbol = Symbol::parse(name).map_err(|e| SelectError::Malformed {
            name: quoted(name),
            why: e.to_string(),
        })?;
        if !chosen.contains(&symbol) {
            if chosen.len() == max {
                // Count the rest for the answer, without keeping them.
                let asked = max + 1 + count_more(value, &chosen, symbol);
                return Err(SelectError::TooMany { asked, max });
            }
            chosen.push(symbol);
        }
    }
    if chosen.is_empty() {
        return Err(SelectError::Empty);
    }
    Ok(chosen)
}

/// Distinct valid names after the first one over the cap (for the 400's message only; the
/// list is bounded by the request size cap).
fn count_more(value: &[u8], chosen: &[Symbol], over: Symbol) -> usize {
    let mut extra: Vec<Symbol> = vec![over];
    for name in value.split(|&b| b == b',') {
        if let Ok(s) = Symbol::parse(name.trim_ascii()) {
            if !chosen.contains(&s) && !extra.contains(&s) {
                extra.push(s);
            }
        }
    }
    extra.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(value: &str, max: usize) -> Result<Vec<String>, SelectError> {
        parse(value.as_bytes(), max).map(|v| v.iter().map(Symbol::to_string).collect())
    }

    #[test]
    fn distinct_upper_cased_in_order() {
        assert_eq!(
            names("aapl,MSFT, brk.b ,AAPL,msft,", 64).unwrap(),
            ["AAPL", "MSFT", "BRK.B"]
        );
        assert_eq!(names("A,,B", 2).unwrap(), ["A", "B"]);
        assert_eq!(names("A,a,A", 1).unwrap(), ["A"], "duplicates do not count");
    }

    #[test]
    fn refusals() {
        assert_eq!(names("", 64), Err(SelectError::Empty));
        assert_eq!(names(" , ,", 64), Err(SelectError::Empty));
        let err = names("AAPL,<script>", 64).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("symbols: \"<script>\" is not a symbol"),
            "{err}"
        );
        assert_eq!(
            names("A,B,C,D,B", 2),
            Err(SelectError::TooMany { asked: 4, max: 2 })
        );
        assert_eq!(
            names("A,B,C", 2).unwrap_err().to_string(),
            "symbols: 3 symbols asked, at most 2 per client"
        );
    }
}
