//! The universe as an operator writes it: `--symbols AAPL=189.20,EURUSD=1.08345,MSFT` or a
//! file of `SYM [PRICE] [decimals=N] [field=value …]` lines (`#` comments, blank lines
//! ignored). Pure: text in, symbols with their precision and first values out, or an error
//! naming the entry and where it is.
//!
//! A symbol's precision: `decimals=N` when given; otherwise the decimals its price is
//! written with (`1.08345`: 5), when written with a point; otherwise `--decimals`. Its
//! headline starts at its price, or at `--initial-price` when it has none; other fields
//! start without a value unless the line gives one.

use std::collections::HashMap;

use crate::decimal::Decimal;
use crate::schema::{parse_decimals, FieldId, Schema, Value, HEADLINE};
use crate::symbol::{quoted, Symbol};
pub use crate::universe::Listed;

/// What a symbol listed without them takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// `--decimals`.
    pub decimals: u8,
    /// `--initial-price`.
    pub price: Decimal,
}

/// `--symbols`: a comma list of `SYM` or `SYM=PRICE`. Errors name the entry and its place.
pub fn parse_list(text: &str, schema: &Schema, defaults: Defaults) -> Result<Vec<Listed>, String> {
    let mut seen = Seen::default();
    let mut out = Vec::new();
    for (n, entry) in text.split(',').enumerate() {
        let place = format!("entry {}", n + 1);
        let (name, price) = match entry.split_once('=') {
            Some((name, price)) => (name.trim(), Some(price.trim())),
            None => (entry.trim(), None),
        };
        let symbol = seen.symbol(name, &place)?;
        let line = Line {
            price,
            decimals: None,
            fields: Vec::new(),
        };
        out.push(line.listed(symbol, schema, defaults, &place)?);
    }
    Ok(out)
}

/// `--symbols-file`: one `SYM [PRICE] [decimals=N] [field=value …]` a line. Errors name the
/// entry and its line.
pub fn parse_file(text: &str, schema: &Schema, defaults: Defaults) -> Result<Vec<Listed>, String> {
    let mut seen = Seen::default();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let place = format!("line {}", n + 1);
        let mut words = line.split_whitespace();
        let symbol = seen.symbol(words.next().unwrap_or_default(), &place)?;
        let mut parsed = Line {
            price: None,
            decimals: None,
            fields: Vec::new(),
        };
        for (i, word) in words.enumerate() {
            match word.split_once('=') {
                None if i == 0 => parsed.price = Some(word),
                None => {
                    return Err(format!(
                        "{place}: {symbol}: {}: expected field=value",
                        quoted(word.as_bytes())
                    ))
                }
                Some(("decimals", n)) => {
                    let n = parse_decimals(n).map_err(|e| format!("{place}: {symbol}: {e}"))?;
                    parsed.decimals = Some(n);
                }
                Some((name, value)) => parsed.fields.push((name, value)),
            }
        }
        out.push(parsed.listed(symbol, schema, defaults, &place)?);
    }
    if out.is_empty() {
        return Err("no symbols in the file".into());
    }
    Ok(out)
}

/// One entry's words, before they are checked against the schema.
struct Line<'a> {
    price: Option<&'a str>,
    decimals: Option<u8>,
    fields: Vec<(&'a str, &'a str)>,
}

impl Line<'_> {
    fn listed(
        self,
        symbol: Symbol,
        schema: &Schema,
        defaults: Defaults,
        place: &str,
    ) -> Result<Listed, String> {
        let bad = |why: String| format!("{place}: {symbol}: {why}");
        let written = match self.price {
            None => None,
            Some(p) => Some(
                Decimal::parse(p)
                    .map_err(|e| bad(format!("price {}: {e}", quoted(p.as_bytes()))))?,
            ),
        };
        let decimals = match (self.decimals, self.price, written) {
            (Some(n), _, _) => n,
            (None, Some(text), Some(price)) if text.contains('.') => price.scale(),
            _ => defaults.decimals,
        };
        let headline = schema.field(HEADLINE);
        let mut values: Vec<(FieldId, Value)> = Vec::new();
        for (name, text) in self.fields {
            let field = schema
                .find(name)
                .ok_or_else(|| bad(format!("unknown field {}", quoted(name.as_bytes()))))?;
            if values.iter().any(|&(f, _)| f == field) || (field == HEADLINE && written.is_some()) {
                return Err(bad(format!("{name} is given twice")));
            }
            let value = schema
                .field(field)
                .ty
                .parse(text, decimals)
                .map_err(|e| bad(format!("{name}: {e}")))?;
            values.push((field, value));
        }
        if !values.iter().any(|&(f, _)| f == HEADLINE) {
            let price = written.unwrap_or(defaults.price);
            let value = headline
                .ty
                .parse(&price.to_string(), decimals)
                .map_err(|e| bad(format!("{}: {e}", headline.name)))?;
            values.insert(0, (HEADLINE, value));
        }
        Ok(Listed {
            symbol,
            decimals,
            values,
        })
    }
}

/// Names seen so far, and where, for the duplicate check.
#[derive(Default)]
struct Seen(HashMap<Symbol, String>);

impl Seen {
    fn symbol(&mut self, name: &str, place: &str) -> Result<Symbol, String> {
        let symbol = Symbol::parse(name.as_bytes())
            .map_err(|e| format!("{place}: {}: {e}", quoted(name.as_bytes())))?;
        if let Some(first) = self.0.insert(symbol, place.to_string()) {
            return Err(format!(
                "{place}: {symbol} is a duplicate (first at {first})"
            ));
        }
        Ok(symbol)
    }
}

/// The universe of `cargo run` without `--symbols`: stocks at 2 decimals, FX pairs at 5
/// (USDJPY at 3), crypto at 2 and 8, each a quote ([`Schema::quote`]) that the random walk
/// moves. The first is the default symbol.
pub const DEMO: &str = "\
AAPL    189.20  bid=189.19  ask=189.21  size=100  volume=0
MSFT    415.30  bid=415.28  ask=415.32  size=50   volume=0
NVDA    121.70  bid=121.69  ask=121.71  size=200  volume=0
AMZN    186.40  bid=186.39  ask=186.42  size=80   volume=0
GOOGL   171.90  bid=171.88  ask=171.91  size=60   volume=0
META    503.10  bid=503.05  ask=503.14  size=40   volume=0
TSLA    248.50  bid=248.47  ask=248.53  size=120  volume=0
BRK.B   412.80  bid=412.70  ask=412.90  size=10   volume=0
EURUSD  1.08345 bid=1.08344 ask=1.08346 size=1000000 volume=0
GBPUSD  1.26510 bid=1.26508 ask=1.26512 size=1000000 volume=0
USDJPY  151.235 bid=151.233 ask=151.237 size=1000000 volume=0
BTC-USD 97250.50 bid=97250.00 ask=97251.00 size=0.015 volume=0
ETH-BTC 0.05123456 bid=0.05123450 ask=0.05123462 size=1.5 volume=0
";

/// [`DEMO`] as the universe.
pub fn demo() -> Vec<Listed> {
    let defaults = Defaults {
        decimals: 2,
        price: Decimal::new(100, 0),
    };
    parse_file(DEMO, &Schema::quote(), defaults).expect("the demo universe is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            decimals: 2,
            price: Decimal::new(100, 0),
        }
    }

    /// Each symbol as `NAME/decimals field=value …`.
    fn shown(listed: &[Listed], schema: &Schema) -> Vec<String> {
        listed
            .iter()
            .map(|l| {
                let mut s = format!("{}/{}", l.symbol, l.decimals);
                for (f, v) in &l.values {
                    s.push_str(&format!(" {}={v}", schema.field(*f).name));
                }
                s
            })
            .collect()
    }

    #[test]
    fn a_comma_list() {
        let schema = Schema::single_price();
        let listed = parse_list(
            "aapl=189.20, MSFT ,EURUSD=1.08345,BF-B=55,WTI=-37.63",
            &schema,
            defaults(),
        )
        .unwrap();
        assert_eq!(
            shown(&listed, &schema),
            [
                "AAPL/2 price=189.20",
                "MSFT/2 price=100.00",
                "EURUSD/5 price=1.08345",
                "BF-B/2 price=55.00",
                "WTI/2 price=-37.63"
            ]
        );
    }

    #[test]
    fn list_errors_name_the_entry() {
        let schema = Schema::single_price();
        for (text, want) in [
            ("AAPL,", "entry 2: \"\": empty symbol"),
            ("AAPL,MS FT", "entry 2: \"MS FT\""),
            (
                "AAPL,aapl",
                "entry 2: AAPL is a duplicate (first at entry 1)",
            ),
            ("AAPL=abc", "entry 1: AAPL: price \"abc\""),
            ("AAPL=1.0000000001", "entry 1: AAPL: price \"1.0000000001\""),
            ("", "entry 1"),
        ] {
            let err = parse_list(text, &schema, defaults()).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_file() {
        let schema = Schema::parse("bid:price,ask:price,size:qty,n:int").unwrap();
        let text = "# the universe\n\nAAPL 189.20\n  msft   # no price\n\
                    EURUSD decimals=5 bid=1.0834 ask=1.08347 size=0.10\nX 5 decimals=0 n=-3\n";
        let listed = parse_file(text, &schema, defaults()).unwrap();
        assert_eq!(
            shown(&listed, &schema),
            [
                "AAPL/2 bid=189.20",
                "MSFT/2 bid=100.00",
                "EURUSD/5 bid=1.08340 ask=1.08347 size=0.10",
                "X/0 bid=5 n=-3"
            ]
        );
    }

    #[test]
    fn file_errors_name_the_line() {
        let schema = Schema::parse("bid:price,ask:price,size:qty").unwrap();
        for (text, want) in [
            (
                "AAPL\n\nAAPL 2\n",
                "line 3: AAPL is a duplicate (first at line 1)",
            ),
            ("AAPL 1 2\n", "line 1: AAPL: \"2\": expected field=value"),
            ("# nothing\n", "no symbols"),
            ("A\n.B\n", "line 2: \".B\": must start"),
            ("A x\n", "line 1: A: price \"x\""),
            ("A decimals=10\n", "line 1: A: decimals \"10\""),
            (
                "A ask=1.123\n",
                "line 1: A: ask: 1.123 has more than the symbol's 2 decimals",
            ),
            ("A nope=1\n", "line 1: A: unknown field \"nope\""),
            ("A 1 bid=2\n", "line 1: A: bid is given twice"),
            ("A size=-1\n", "line 1: A: size: -1 is negative"),
        ] {
            let err = parse_file(text, &schema, defaults()).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_demo_universe() {
        let schema = Schema::quote();
        let demo = demo();
        let shown = shown(&demo, &schema);
        assert_eq!(
            shown[0],
            "AAPL/2 last=189.20 bid=189.19 ask=189.21 size=100 volume=0"
        );
        assert!(shown.contains(
            &"USDJPY/3 last=151.235 bid=151.233 ask=151.237 size=1000000 volume=0".to_string()
        ));
        let precisions: Vec<u8> = demo.iter().map(|l| l.decimals).collect();
        for p in [2, 3, 5, 8] {
            assert!(precisions.contains(&p), "{p}");
        }
    }
}
