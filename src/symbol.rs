//! Symbol names: 1 to 16 characters of `A-Z 0-9 . - _`, starting with a letter or digit
//! (`BRK.B`, `BF-B`). Lower case is taken and upper-cased, so `aapl` and `AAPL` are one
//! symbol. Pure: no universe, no sockets.

use std::fmt;

/// The longest symbol name.
pub(crate) const MAX_LEN: usize = 16;

/// A valid, upper-cased symbol name, stored inline (no allocation per symbol).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol {
    len: u8,
    bytes: [u8; MAX_LEN],
}

/// Why a name is not a symbol; `Display` names the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SymbolError {
    Empty,
    TooLong,
    /// The first character must be a letter or a digit.
    BadStart,
    /// A character outside `A-Z 0-9 . - _`.
    BadChar(char),
}

impl fmt::Display for SymbolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SymbolError::Empty => f.write_str("empty symbol"),
            SymbolError::TooLong => write!(f, "longer than {MAX_LEN} characters"),
            SymbolError::BadStart => f.write_str("must start with a letter or a digit"),
            SymbolError::BadChar(c) => write!(f, "character {c:?} not allowed (A-Z 0-9 . - _)"),
        }
    }
}

impl Symbol {
    /// Parses a name, upper-casing it.
    pub fn parse(text: &[u8]) -> Result<Symbol, SymbolError> {
        let first = *text.first().ok_or(SymbolError::Empty)?;
        if text.len() > MAX_LEN {
            return Err(SymbolError::TooLong);
        }
        let mut bytes = [0u8; MAX_LEN];
        for (i, &b) in text.iter().enumerate() {
            let up = b.to_ascii_uppercase();
            if !(up.is_ascii_uppercase() || up.is_ascii_digit() || matches!(up, b'.' | b'-' | b'_'))
            {
                return Err(SymbolError::BadChar(
                    std::str::from_utf8(&text[i..])
                        .ok()
                        .and_then(|s| s.chars().next())
                        .unwrap_or(char::REPLACEMENT_CHARACTER),
                ));
            }
            bytes[i] = up;
        }
        if !first.is_ascii_alphanumeric() {
            return Err(SymbolError::BadStart);
        }
        Ok(Symbol {
            len: text.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_str())
    }
}

/// Shows a name from the wire in a log line or answer: control characters escaped, and
/// cut short, so that a hostile list cannot forge lines or flood the log.
pub(crate) fn quoted(text: &[u8]) -> String {
    let shown = String::from_utf8_lossy(&text[..text.len().min(40)]);
    let mut out = format!("{:?}", shown.as_ref());
    if text.len() > 40 {
        out.insert(out.len() - 1, '…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_are_upper_cased() {
        for (text, want) in [
            ("AAPL", "AAPL"),
            ("brk.b", "BRK.B"),
            ("BF-B", "BF-B"),
            ("9988", "9988"),
            ("A_1", "A_1"),
            ("ABCDEFGHIJKLMNOP", "ABCDEFGHIJKLMNOP"),
        ] {
            assert_eq!(Symbol::parse(text.as_bytes()).unwrap().as_str(), want);
        }
        assert_eq!(
            Symbol::parse(b"msft").unwrap(),
            Symbol::parse(b"MSFT").unwrap()
        );
    }

    #[test]
    fn each_rule_has_its_error() {
        assert_eq!(Symbol::parse(b""), Err(SymbolError::Empty));
        assert_eq!(
            Symbol::parse(b"ABCDEFGHIJKLMNOPQ"),
            Err(SymbolError::TooLong)
        );
        assert_eq!(Symbol::parse(b".A"), Err(SymbolError::BadStart));
        assert_eq!(Symbol::parse(b"-A"), Err(SymbolError::BadStart));
        assert_eq!(Symbol::parse(b"A B"), Err(SymbolError::BadChar(' ')));
        assert_eq!(Symbol::parse(b"A,B"), Err(SymbolError::BadChar(',')));
        assert_eq!(
            Symbol::parse("AÉ".as_bytes()),
            Err(SymbolError::BadChar('É'))
        );
        assert_eq!(
            Symbol::parse(b"A\xff"),
            Err(SymbolError::BadChar(char::REPLACEMENT_CHARACTER))
        );
        assert_eq!(Symbol::parse(b"A\n"), Err(SymbolError::BadChar('\n')));
    }

    #[test]
    fn quoting_escapes_and_cuts() {
        assert_eq!(quoted(b"A\nB"), "\"A\\nB\"");
        let long = quoted(&[b'x'; 100]);
        assert!(long.chars().count() < 50, "{long}");
        assert!(long.ends_with("…\""));
    }
}
