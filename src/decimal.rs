//! Exact decimals: a signed integer mantissa and a scale (the number of decimals), parsed
//! from and written to text without a float, so a price is never rounded.
//!
//! `i64` holds any 18-digit mantissa, so every value with at most 18 significant digits is
//! exact at every scale up to [`MAX_SCALE`] (a price of 9,223,372,036.854775807 at 9
//! decimals is the largest); a value that does not fit is refused, never approximated.

use std::fmt;

/// The most decimals a value may have.
pub const MAX_SCALE: u8 = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    mantissa: i64,
    scale: u8,
}

/// Why a text is not a decimal (at a given precision); `Display` is a one-line reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalError {
    /// Not `[-]digits[.digits]`: empty, a letter, an exponent, a second point...
    NotADecimal,
    /// More decimals than allowed: `max` is the precision.
    TooManyDecimals { max: u8 },
    /// Does not fit in 18 significant digits at this scale.
    TooLarge,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecimalError::NotADecimal => f.write_str("not a decimal such as 123.45"),
            DecimalError::TooManyDecimals { max } => {
                write!(f, "more than {max} decimals (never rounded)")
            }
            DecimalError::TooLarge => f.write_str("too large for 18 significant digits"),
        }
    }
}

const POWERS: [i64; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

impl Decimal {
    /// `mantissa` × 10^-`scale`. `scale` at most [`MAX_SCALE`].
    pub fn new(mantissa: i64, scale: u8) -> Decimal {
        assert!(scale <= MAX_SCALE, "scale {scale} above {MAX_SCALE}");
        Decimal { mantissa, scale }
    }

    /// `-12.340` (the scale as written: 3). A sign only in front, digits on both sides of
    /// the point when there is one; no exponent, no `+`, no spaces.
    pub fn parse(text: &str) -> Result<Decimal, DecimalError> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match digits.split_once('.') {
            Some((w, f)) => (w, f),
            None => (digits, ""),
        };
        let plain = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !plain(whole)
            || !plain(fraction)
            || (digits.contains('.') && fraction.is_empty())
        {
            return Err(DecimalError::NotADecimal);
        }
        if fraction.len() > MAX_SCALE as usize {
            return Err(DecimalError::TooManyDecimals { max: MAX_SCALE });
        }
        // Accumulated with its sign, so that i64::MIN is reachable.
        let sign = if negative { -1 } else { 1 };
        let mut mantissa: i64 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(sign * (b - b'0') as i64))
                .ok_or(DecimalError::TooLarge)?;
        }
        Ok(Decimal {
            mantissa,
            scale: fraction.len() as u8,
        })
    }

    /// The text at exactly `scale` decimals: padded with zeros, refused when it has more.
    pub fn parse_at(text: &str, scale: u8) -> Result<Decimal, DecimalError> {
        Decimal::parse(text)?.at_scale(scale)
    }

    /// The same value written with `scale` decimals: padded with zeros; refused when that
    /// would drop a digit (never rounded) or overflow.
    pub fn at_scale(self, scale: u8) -> Result<Decimal, DecimalError> {
        if self.scale > scale {
            return Err(DecimalError::TooManyDecimals { max: scale });
        }
        let factor = POWERS[(scale - self.scale) as usize];
        let mantissa = self
            .mantissa
            .checked_mul(factor)
            .ok_or(DecimalError::TooLarge)?;
        Ok(Decimal { mantissa, scale })
    }

    pub fn mantissa(self) -> i64 {
        self.mantissa
    }

    pub fn scale(self) -> u8 {
        self.scale
    }

    pub fn is_negative(self) -> bool {
        self.mantissa < 0
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let magnitude = self.mantissa.unsigned_abs();
        if self.scale == 0 {
            return write!(f, "{sign}{magnitude}");
        }
        let factor = POWERS[self.scale as usize] as u64;
        write!(
            f,
            "{sign}{}.{:0width$}",
            magnitude / factor,
            magnitude % factor,
            width = self.scale as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    #[test]
    fn parses_as_written() {
        assert_eq!(d("189.20"), Decimal::new(18_920, 2));
        assert_eq!(d("1.08345"), Decimal::new(108_345, 5));
        assert_eq!(d("-37.63"), Decimal::new(-3_763, 2));
        assert_eq!(d("7"), Decimal::new(7, 0));
        assert_eq!(d("0.000000001"), Decimal::new(1, 9));
        assert_eq!(d("007.50"), Decimal::new(750, 2));
        assert_eq!(d("-0"), Decimal::new(0, 0));
    }

    #[test]
    fn refusals() {
        for bad in [
            "", "-", ".5", "5.", "1.2.3", "1e3", "+1", " 1", "1 ", "abc", "inf", "NaN", "1,5",
            "--1", "0x10", "1.-2",
        ] {
            assert_eq!(
                Decimal::parse(bad),
                Err(DecimalError::NotADecimal),
                "{bad:?}"
            );
        }
        assert_eq!(
            Decimal::parse("0.0000000001"),
            Err(DecimalError::TooManyDecimals { max: 9 })
        );
        assert_eq!(
            Decimal::parse("9223372036854775808"),
            Err(DecimalError::TooLarge)
        );
        assert_eq!(
            Decimal::parse("-9223372036854775807"),
            Ok(Decimal::new(-i64::MAX, 0))
        );
    }

    #[test]
    fn precision_pads_and_never_rounds() {
        assert_eq!(Decimal::parse_at("1", 2), Ok(Decimal::new(100, 2)));
        assert_eq!(Decimal::parse_at("1.5", 2).unwrap().to_string(), "1.50");
        assert_eq!(
            Decimal::parse_at("1.005", 2),
            Err(DecimalError::TooManyDecimals { max: 2 })
        );
        assert_eq!(
            Decimal::parse_at("2.999", 2),
            Err(DecimalError::TooManyDecimals { max: 2 })
        );
        assert_eq!(
            Decimal::parse_at("9223372036.9", 9),
            Err(DecimalError::TooLarge)
        );
        // At least 15 significant digits at every scale.
        for scale in 0..=MAX_SCALE {
            let text = "9".repeat(18 - scale as usize);
            let at = Decimal::parse_at(&text, scale).unwrap();
            assert_eq!(
                at.mantissa(),
                text.parse::<i64>().unwrap() * POWERS[scale as usize]
            );
        }
    }

    #[test]
    fn formats_exactly() {
        assert_eq!(Decimal::new(18_920, 2).to_string(), "189.20");
        assert_eq!(Decimal::new(5, 2).to_string(), "0.05");
        assert_eq!(Decimal::new(-5, 3).to_string(), "-0.005");
        assert_eq!(Decimal::new(-3_763, 2).to_string(), "-37.63");
        assert_eq!(Decimal::new(42, 0).to_string(), "42");
        assert_eq!(Decimal::new(5_123_456, 8).to_string(), "0.05123456");
        assert_eq!(
            Decimal::new(i64::MIN, 9).to_string(),
            "-9223372036.854775808"
        );
    }

    proptest! {
        /// Every value at every precision: format then parse gives it back, and the text
        /// has exactly `scale` decimals.
        #[test]
        fn round_trips(mantissa in any::<i64>(), scale in 0..=MAX_SCALE) {
            let value = Decimal::new(mantissa, scale);
            let text = value.to_string();
            prop_assert_eq!(Decimal::parse(&text), Ok(value), "{}", text);
            let decimals = text.split_once('.').map_or(0, |(_, f)| f.len());
            prop_assert_eq!(decimals, scale as usize);
        }

        /// Parsing at a precision keeps the value or refuses: never a different value.
        #[test]
        fn a_precision_never_changes_a_value(
            whole in -1_000_000i64..1_000_000, fraction in "[0-9]{0,9}", scale in 0..=MAX_SCALE,
        ) {
            let text = match fraction.is_empty() {
                true => whole.to_string(),
                false => format!("{whole}.{fraction}"),
            };
            let written = Decimal::parse(&text).unwrap();
            match Decimal::parse_at(&text, scale) {
                Ok(at) => {
                    prop_assert!(fraction.len() <= scale as usize);
                    let factor = POWERS[(scale - written.scale()) as usize];
                    prop_assert_eq!(at.mantissa(), written.mantissa() * factor);
                }
                Err(e) => {
                    prop_assert!(fraction.len() > scale as usize);
                    prop_assert_eq!(e, DecimalError::TooManyDecimals { max: scale });
                }
            }
        }
    }
}
