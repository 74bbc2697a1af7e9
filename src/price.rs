//! Prices: whole cents, their text, a publisher's price, the random walk's step, and the
//! first id of a run.
//!
//! Prices are kept in whole cents so that "two decimals" is exact and formatting never
//! rounds differently from parsing.

/// The largest price accepted, in cents (10^12 currency units): keeps arithmetic far from
/// overflow and the text short.
pub const MAX_CENTS: u64 = 100_000_000_000_000;

/// The first id of a run: the wall clock in microseconds. Ids grow by one per update of one
/// symbol, so an earlier run's ids stay below it unless that run made more than a million
/// updates a second on average; an id a browser remembers from before a restart is never
/// taken for one of this run.
pub fn first_event_id(now: std::time::SystemTime) -> u64 {
    now.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

#[derive(Debug, PartialEq, Eq)]
pub struct BadPrice;

/// A publisher's price: `123.45` or `price=123.45`, surrounding white space ignored.
/// Must be a positive finite number that is at least one cent once rounded.
pub fn parse_price(text: &str) -> Result<u64, BadPrice> {
    let text = text.trim();
    let text = text.strip_prefix("price=").unwrap_or(text).trim();
    // Only plain decimals: f64's parser would also take "inf", "NaN" and "1e3".
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(BadPrice);
    }
    let value: f64 = text.parse().map_err(|_| BadPrice)?;
    let cents = (value * 100.0).round();
    if !cents.is_finite() || cents < 1.0 || cents > MAX_CENTS as f64 {
        return Err(BadPrice);
    }
    Ok(cents as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_publisher_prices() {
        assert_eq!(parse_price("123.45"), Ok(12_345));
        assert_eq!(parse_price("price=123.45\n"), Ok(12_345));
        assert_eq!(parse_price(" 7 "), Ok(700));
        assert_eq!(parse_price("0.005"), Ok(1));
        for bad in [
            "", "0", "0.00", "-1", "abc", "inf", "NaN", "1e3", "1.2.3", "price=", "1,5",
        ] {
            assert_eq!(parse_price(bad), Err(BadPrice), "{bad:?}");
        }
        assert_eq!(parse_price("1000000000000000"), Err(BadPrice));
    }

    #[test]
    fn first_id_is_above_an_earlier_runs_ids() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let earlier = first_event_id(t);
        // An earlier run that lived one second and ticked a thousand times a second...
        let reached = earlier + 1000;
        // ...stays below the next run's first id, one second later.
        assert!(first_event_id(t + std::time::Duration::from_secs(1)) > reached);
    }
}
