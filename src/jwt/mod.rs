//! JSON Web Tokens (issue 18's identity from a token): a pure module, no sockets, no clock.
//!
//! - [`keys`]: the `--jwt-jwks` file (RFC 7517) read into a [`KeySet`], each key bound to
//!   one of HS256, RS256, ES256, EdDSA and chosen by `kid`;
//! - [`verify()`]: one token against the set, the [`Checks`] and the caller's `now`, to a
//!   [`Verified`] value or a [`Refusal`] that names the reason and never the token;
//! - [`claims`]: the times and tickerd's own claims (`symbols`, `groups`, `tier`, `publish`);
//! - [`source`]: where a token comes from (bearer, cookie, `access_token`) and the
//!   redaction of `access_token` from log lines.
//!
//! Signatures, `alg` and the standard claims (`iss`, `aud`, `exp` present) are checked by
//! the `jsonwebtoken` crate; this module chooses the key, binds the algorithm, and reads the
//! times against `now` (jsonwebtoken would read the system clock). The core verifies a
//! stream's, long poll's or listing's token with it when that starts (`--jwt-jwks`).

pub mod claims;
pub mod keys;
pub mod source;
mod verify;

pub use claims::Verified;
pub use keys::{Alg, KeyProblem, KeySet, KeysError};
pub use verify::{verify, Checks, Refusal, MAX_TOKEN};

#[cfg(test)]
mod tests;
