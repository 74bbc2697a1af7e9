//! The claims of a token whose signature holds: the times checked against the caller's
//! `now`, then tickerd's own claims read into a plain value.

use serde_json::{Map, Value};

use super::Refusal;

/// What a valid token says, as the core will keep it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verified {
    pub sub: Option<String>,
    /// When the token expires, unix seconds (its `exp`, without the leeway).
    pub exp: u64,
    /// Symbol patterns the token grants (`symbols`).
    pub symbols: Vec<String>,
    pub groups: Vec<String>,
    /// `realtime` or a delay such as `15m`, as written (the entitlements read it).
    pub tier: Option<String>,
    /// Symbol patterns the holder may publish (`publish`).
    pub publish: Vec<String>,
}

/// RFC 7519 §2 NumericDate: seconds, possibly with a fraction (dropped).
fn numeric_date(v: &Value) -> Option<u64> {
    match v.as_u64() {
        Some(s) => Some(s),
        None => v
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64),
    }
}

fn string(claims: &Map<String, Value>, name: &'static str) -> Result<Option<String>, Refusal> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Refusal::BadClaim(name)),
    }
}

/// A list of strings; one string alone is not taken (a claim is one type or refused).
fn strings(claims: &Map<String, Value>, name: &'static str) -> Result<Vec<String>, Refusal> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or(Refusal::BadClaim(name)),
        Some(_) => Err(Refusal::BadClaim(name)),
    }
}

/// `exp` (required) and `nbf` (when present) against `now`, with `leeway` seconds of
/// clock skew either way; then the claims tickerd reads, each of its one type or refused.
pub(crate) fn check(
    claims: &Map<String, Value>,
    now: u64,
    leeway: u64,
) -> Result<Verified, Refusal> {
    let exp = claims
        .get("exp")
        .and_then(numeric_date)
        .ok_or(Refusal::MissingExp)?;
    // RFC 7519 §4.1.4: the current time must be before exp.
    if now >= exp.saturating_add(leeway) {
        return Err(Refusal::Expired);
    }
    // §4.1.5: the current time must be after or equal to nbf.
    if let Some(nbf) = claims.get("nbf") {
        let nbf = numeric_date(nbf).ok_or(Refusal::BadClaim("nbf"))?;
        if now.saturating_add(leeway) < nbf {
            return Err(Refusal::NotYetValid);
        }
    }
    Ok(Verified {
        sub: string(claims, "sub")?,
        exp,
        symbols: strings(claims, "symbols")?,
        groups: strings(claims, "groups")?,
        tier: string(claims, "tier")?,
        publish: strings(claims, "publish")?,
    })
}
