//! Percentiles of sorted samples, plain and weighted; nanoseconds as milliseconds; figures
//! rounded for the JSON lines.

/// The value at quantile `p` of sorted samples (rank round((n-1)·p)); 0 if there are none.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// The value at quantile `p` of sorted (value, weight) pairs, each value counted `weight`
/// times (rank round((n-1)·p), as `percentile`).
pub fn weighted_percentile(sorted: &[(u64, u64)], p: f64) -> u64 {
    let total: u64 = sorted.iter().map(|v| v.1).sum();
    if total == 0 {
        return 0;
    }
    let rank = ((total - 1) as f64 * p).round() as u64;
    let mut seen = 0;
    for &(v, w) in sorted {
        seen += w;
        if seen > rank {
            return v;
        }
    }
    sorted.last().map_or(0, |v| v.0)
}

pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// `x` rounded to `places` decimals, as the JSON lines carry it: the figure, not the
/// float's noise.
pub fn round(x: f64, places: i32) -> f64 {
    let p = 10f64.powi(places);
    (x * p).round() / p
}

/// A figure for a table, with `precision` decimals, or `-` if there is none.
pub fn opt(v: Option<f64>, precision: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.precision$}"))
}
