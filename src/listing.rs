//! The universe as an operator writes it: `--symbols AAPL=189.20,MSFT` or a file of
//! `SYM [PRICE]` lines (`#` comments, blank lines ignored). Pure: text in, symbols out, or
//! an error naming the entry and where it is.

use std::collections::HashMap;

use crate::price::parse_price;
use crate::symbol::{quoted, Symbol};

/// One symbol and its first price, when the listing gives one.
pub type Listed = (Symbol, Option<u64>);

/// `--symbols`: a comma list of `SYM` or `SYM=PRICE`. Errors name the entry and its place.
pub fn parse_list(text: &str) -> Result<Vec<Listed>, String> {
    let mut seen = Seen::default();
    let mut out = Vec::new();
    for (n, entry) in text.split(',').enumerate() {
        let place = format!("entry {}", n + 1);
        let (name, price) = match entry.split_once('=') {
            Some((name, price)) => (name.trim(), Some(price.trim())),
            None => (entry.trim(), None),
        };
        out.push(seen.entry(name, price, &place)?);
    }
    Ok(out)
}

/// `--symbols-file`: one `SYM [PRICE]` a line. Errors name the entry and its line.
pub fn parse_file(text: &str) -> Result<Vec<Listed>, String> {
    let mut seen = Seen::default();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let place = format!("line {}", n + 1);
        let mut fields = line.split_whitespace();
        let name = fields.next().unwrap_or_default();
        let price = fields.next();
        if let Some(extra) = fields.next() {
            return Err(format!(
                "{place}: {} after the price",
                quoted(extra.as_bytes())
            ));
        }
        out.push(seen.entry(name, price, &place)?);
    }
    if out.is_empty() {
        return Err("no symbols in the file".into());
    }
    Ok(out)
}

/// Names seen so far, and where, for the duplicate check.
#[derive(Default)]
struct Seen(HashMap<Symbol, String>);

impl Seen {
    fn entry(&mut self, name: &str, price: Option<&str>, place: &str) -> Result<Listed, String> {
        let symbol = Symbol::parse(name.as_bytes())
            .map_err(|e| format!("{place}: {}: {e}", quoted(name.as_bytes())))?;
        let cents = match price {
            None => None,
            Some(p) => Some(parse_price(p).map_err(|_| {
                format!(
                    "{place}: {symbol}: price {} is not a positive price such as 189.20",
                    quoted(p.as_bytes())
                )
            })?),
        };
        if let Some(first) = self.0.insert(symbol, place.to_string()) {
            return Err(format!(
                "{place}: {symbol} is a duplicate (first at {first})"
            ));
        }
        Ok((symbol, cents))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(listed: &[Listed]) -> Vec<(String, Option<u64>)> {
        listed.iter().map(|(s, c)| (s.to_string(), *c)).collect()
    }

    #[test]
    fn a_comma_list() {
        let listed = parse_list("aapl=189.20, MSFT ,BRK.B=412.8").unwrap();
        assert_eq!(
            names(&listed),
            [
                ("AAPL".to_string(), Some(18_920)),
                ("MSFT".to_string(), None),
                ("BRK.B".to_string(), Some(41_280))
            ]
        );
    }

    #[test]
    fn list_errors_name_the_entry() {
        for (text, want) in [
            ("AAPL,", "entry 2: \"\": empty symbol"),
            ("AAPL,MS FT", "entry 2: \"MS FT\""),
            (
                "AAPL,aapl",
                "entry 2: AAPL is a duplicate (first at entry 1)",
            ),
            ("AAPL=abc", "entry 1: AAPL: price \"abc\""),
            ("AAPL=0", "entry 1: AAPL: price \"0\""),
            ("", "entry 1"),
        ] {
            let err = parse_list(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_file() {
        let text = "# the universe\n\nAAPL 189.20\n  msft   # no price\nBF-B 55\n";
        let listed = parse_file(text).unwrap();
        assert_eq!(
            names(&listed),
            [
                ("AAPL".to_string(), Some(18_920)),
                ("MSFT".to_string(), None),
                ("BF-B".to_string(), Some(5_500))
            ]
        );
    }

    #[test]
    fn file_errors_name_the_line() {
        for (text, want) in [
            (
                "AAPL\n\nAAPL 2\n",
                "line 3: AAPL is a duplicate (first at line 1)",
            ),
            ("AAPL 1 2\n", "line 1: \"2\" after the price"),
            ("# nothing\n", "no symbols"),
            ("A\n.B\n", "line 2: \".B\": must start"),
            ("A x\n", "line 1: A: price \"x\""),
        ] {
            let err = parse_file(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
