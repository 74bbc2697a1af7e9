//! One token against the key set: the key chosen by `kid`, the header's `alg` bound to
//! that key's, the signature and the standard claims checked by `jsonwebtoken`, the times
//! against the caller's clock.

use std::collections::HashSet;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Validation;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::claims::{self, Verified};
use super::keys::KeySet;

/// What a token is checked against besides the keys (`--jwt-issuer`, `--jwt-audience`,
/// `--jwt-leeway-s`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checks {
    /// When set, `iss` must be present and equal to it.
    pub issuer: Option<String>,
    /// When set, `aud` must be present and be it or a list holding it. When not set, `aud`
    /// is not looked at.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway_s: u64,
}

impl Default for Checks {
    fn default() -> Checks {
        Checks {
            issuer: None,
            audience: None,
            leeway_s: 5,
        }
    }
}

/// Why a token was refused: a short reason for a log line. None of them carries any part
/// of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not three base64url parts of JSON objects, or longer than [`MAX_TOKEN`].
    Malformed,
    /// No `kid` in the header while the key set has several keys.
    MissingKid,
    UnknownKid,
    /// The header's `alg` is not the algorithm of the key its `kid` names (`none` included).
    WrongAlgorithm,
    BadSignature,
    /// No `exp`, or one that is not a number.
    MissingExp,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    /// A claim of the wrong type (its name).
    BadClaim(&'static str),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed => f.write_str("malformed token"),
            Refusal::MissingKid => f.write_str("token without kid"),
            Refusal::UnknownKid => f.write_str("unknown kid"),
            Refusal::WrongAlgorithm => f.write_str("wrong algorithm"),
            Refusal::BadSignature => f.write_str("bad signature"),
            Refusal::MissingExp => f.write_str("missing exp"),
            Refusal::Expired => f.write_str("expired"),
            Refusal::NotYetValid => f.write_str("not yet valid"),
            Refusal::WrongIssuer => f.write_str("wrong issuer"),
            Refusal::WrongAudience => f.write_str("wrong audience"),
            Refusal::BadClaim(name) => write!(f, "claim {name} of the wrong type"),
        }
    }
}

impl std::error::Error for Refusal {}

/// Longer tokens are refused before any decoding: a cookie is 4 KiB at most in browsers,
/// and a header of ours is smaller still.
pub const MAX_TOKEN: usize = 8192;

/// The two header members that choose the key, read before anything is verified.
#[derive(Deserialize)]
struct Peek {
    alg: String,
    kid: Option<String>,
}

/// Verifies `token` with `keys` at `now` (unix seconds, the caller's clock: nothing here
/// reads one).
pub fn verify(token: &[u8], keys: &KeySet, checks: &Checks, now: u64) -> Result<Verified, Refusal> {
    if token.len() > MAX_TOKEN {
        return Err(Refusal::Malformed);
    }
    let header = token.split(|&b| b == b'.').next().unwrap_or_default();
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Refusal::Malformed)?;
    let peek: Peek = serde_json::from_slice(&header).map_err(|_| Refusal::Malformed)?;
    let key = keys.choose(peek.kid.as_deref()).ok_or(match peek.kid {
        Some(_) => Refusal::UnknownKid,
        None => Refusal::MissingKid,
    })?;
    // The key, not the token, says how it verifies: `none`, or HS256 over an RSA key's
    // public bytes, never reach a verifier.
    if peek.alg != key.alg.name() {
        return Err(Refusal::WrongAlgorithm);
    }

    let mut validation = Validation::new(key.alg.jsonwebtoken());
    // The times are checked in `claims` against the caller's `now`; jsonwebtoken would
    // read the system clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    let mut required = HashSet::from(["exp".to_owned()]);
    if let Some(iss) = &checks.issuer {
        validation.set_issuer(&[iss]);
        required.insert("iss".into());
    }
    // Without a configured audience, `aud` is not looked at (jsonwebtoken would refuse
    // any token that has one).
    validation.validate_aud = checks.audience.is_some();
    if let Some(aud) = &checks.audience {
        validation.set_audience(&[aud]);
        required.insert("aud".into());
    }
    validation.required_spec_claims = required;

    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
        .map_err(|e| refusal(e.kind()))?;
    claims::check(&data.claims, now, checks.leeway_s)
}

fn refusal(kind: &ErrorKind) -> Refusal {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => Refusal::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => Refusal::WrongAlgorithm,
        ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) => match c.as_str() {
            "exp" => Refusal::MissingExp,
            "iss" => Refusal::WrongIssuer,
            "aud" => Refusal::WrongAudience,
            _ => Refusal::Malformed,
        },
        ErrorKind::InvalidIssuer => Refusal::WrongIssuer,
        ErrorKind::InvalidAudience => Refusal::WrongAudience,
        ErrorKind::ExpiredSignature => Refusal::Expired,
        ErrorKind::ImmatureSignature => Refusal::NotYetValid,
        // InvalidToken, Base64, Json, Utf8, and any kind a later version adds.
        _ => Refusal::Malformed,
    }
}
