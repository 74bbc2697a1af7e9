//! The key set: a JSON Web Key Set file (RFC 7517) read into keys each bound to one
//! algorithm. What a key may be is checked when the file is read, so that a token can only
//! fail on the token.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// The four algorithms tickerd takes, each with its one key type (RFC 7518 §3, RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// HMAC with SHA-256, a shared secret (`kty: oct`).
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (`kty: RSA`).
    RS256,
    /// ECDSA on P-256 with SHA-256 (`kty: EC`, `crv: P-256`).
    ES256,
    /// Ed25519 (`kty: OKP`, `crv: Ed25519`).
    EdDSA,
}

impl Alg {
    /// The name as JOSE writes it in `alg`.
    pub fn name(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::RS256 => "RS256",
            Alg::ES256 => "ES256",
            Alg::EdDSA => "EdDSA",
        }
    }

    fn from_name(name: &str) -> Option<Alg> {
        [Alg::HS256, Alg::RS256, Alg::ES256, Alg::EdDSA]
            .into_iter()
            .find(|a| a.name() == name)
    }

    fn kty(self) -> &'static str {
        match self {
            Alg::HS256 => "oct",
            Alg::RS256 => "RSA",
            Alg::ES256 => "EC",
            Alg::EdDSA => "OKP",
        }
    }

    pub(crate) fn jsonwebtoken(self) -> Algorithm {
        match self {
            Alg::HS256 => Algorithm::HS256,
            Alg::RS256 => Algorithm::RS256,
            Alg::ES256 => Algorithm::ES256,
            Alg::EdDSA => Algorithm::EdDSA,
        }
    }
}

/// One verification key: its id, the one algorithm it verifies, its material.
#[derive(Debug)]
pub struct Key {
    pub kid: String,
    pub alg: Alg,
    pub(crate) decoding: DecodingKey,
}

/// The keys of one JWKS file, at least one, each `kid` once.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<Key>,
}

/// Why a key file was not taken: the whole file, or one key named by its place and `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysError {
    /// The file could not be read (the path and the OS's reason).
    Read(String),
    /// Not JSON, or not an object with a `keys` array.
    NotASet(String),
    /// A set of no key: no token could ever pass, which is never what was meant.
    Empty,
    /// One key, by its index in `keys` (from 0) and its `kid` when it has one.
    Key {
        index: usize,
        kid: Option<String>,
        problem: KeyProblem,
    },
}

/// What is wrong with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    NotAnObject,
    MissingKid,
    DuplicateKid,
    MissingAlg,
    /// `alg` is not one of HS256, RS256, ES256, EdDSA.
    UnsupportedAlg(String),
    /// `kty` is not the one `alg` needs (`oct` for HS256, `RSA`, `EC`, `OKP`).
    AlgNotForKty {
        alg: &'static str,
        kty: String,
    },
    /// `use` is present and not `sig`.
    NotForSignatures,
    /// The key material itself (which member, what is wrong).
    Material(String),
}

impl fmt::Display for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeysError::Read(why) => write!(f, "cannot read the key set: {why}"),
            KeysError::NotASet(why) => write!(f, "not a JSON Web Key Set: {why}"),
            KeysError::Empty => f.write_str("the key set has no keys"),
            KeysError::Key {
                index,
                kid: Some(kid),
                problem,
            } => write!(f, "key {index} (kid {kid:?}): {problem}"),
            KeysError::Key {
                index,
                kid: None,
                problem,
            } => write!(f, "key {index}: {problem}"),
        }
    }
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyProblem::NotAnObject => f.write_str("not a JSON object"),
            KeyProblem::MissingKid => f.write_str("no \"kid\" (every key needs one)"),
            KeyProblem::DuplicateKid => f.write_str("the same \"kid\" as an earlier key"),
            KeyProblem::MissingAlg => f.write_str("no \"alg\" (every key needs one)"),
            KeyProblem::UnsupportedAlg(alg) => {
                write!(f, "alg {alg:?} is not HS256, RS256, ES256 or EdDSA")
            }
            KeyProblem::AlgNotForKty { alg, kty } => write!(
                f,
                "alg {alg} needs kty {:?}, not {kty:?}",
                Alg::from_name(alg).map_or("?", Alg::kty)
            ),
            KeyProblem::NotForSignatures => f.write_str("\"use\" is not \"sig\""),
            KeyProblem::Material(why) => write!(f, "bad key material: {why}"),
        }
    }
}

impl std::error::Error for KeysError {}

impl KeySet {
    /// Reads and checks a JWKS file.
    pub fn load(path: &Path) -> Result<KeySet, KeysError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeysError::Read(format!("{}: {e}", path.display())))?;
        KeySet::parse(&text)
    }

    /// Checks a JWKS document: every key has a `kid` (unique) and an `alg` among the four,
    /// the `kty` that alg needs, and key material that one could verify with.
    pub fn parse(text: &str) -> Result<KeySet, KeysError> {
        let set: Value =
            serde_json::from_str(text).map_err(|e| KeysError::NotASet(e.to_string()))?;
        let Some(Value::Array(members)) = set.get("keys") else {
            return Err(KeysError::NotASet("no \"keys\" array".into()));
        };
        if members.is_empty() {
            return Err(KeysError::Empty);
        }
        let mut keys: Vec<Key> = Vec::with_capacity(members.len());
        for (index, member) in members.iter().enumerate() {
            let kid = member.get("kid").and_then(Value::as_str).map(str::to_owned);
            let fail = |problem| KeysError::Key {
                index,
                kid: kid.clone(),
                problem,
            };
            let key = one_key(member).map_err(fail)?;
            if keys.iter().any(|k| k.kid == key.kid) {
                return Err(fail(KeyProblem::DuplicateKid));
            }
            keys.push(key);
        }
        Ok(KeySet { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The key with this `kid`. Without a `kid`, the only key of a one-key set: a set of
    /// several keys cannot say which one a token meant (RFC 7515 leaves that to the
    /// application), so such a token is refused rather than tried against each.
    pub(crate) fn choose(&self, kid: Option<&str>) -> Option<&Key> {
        match (kid, self.keys.as_slice()) {
            (Some(kid), keys) => keys.iter().find(|k| k.kid == kid),
            (None, [only]) => Some(only),
            (None, _) => None,
        }
    }
}

fn one_key(member: &Value) -> Result<Key, KeyProblem> {
    if !member.is_object() {
        return Err(KeyProblem::NotAnObject);
    }
    let kid = match member.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => kid.clone(),
        _ => return Err(KeyProblem::MissingKid),
    };
    let alg = match member.get("alg") {
        Some(Value::String(alg)) => {
            Alg::from_name(alg).ok_or_else(|| KeyProblem::UnsupportedAlg(alg.clone()))?
        }
        Some(other) => return Err(KeyProblem::UnsupportedAlg(other.to_string())),
        None => return Err(KeyProblem::MissingAlg),
    };
    let kty = member.get("kty").and_then(Value::as_str).unwrap_or("");
    if kty != alg.kty() {
        return Err(KeyProblem::AlgNotForKty {
            alg: alg.name(),
            kty: kty.to_owned(),
        });
    }
    match member.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Err(KeyProblem::NotForSignatures),
    }
    let bad = |why: &str| KeyProblem::Material(why.to_owned());
    let jwk: Jwk = serde_json::from_value(member.clone()).map_err(|e| bad(&e.to_string()))?;
    let bytes = |member: &str, text: &str| {
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| bad(&format!("\"{member}\" is not base64url")))
    };
    match (&jwk.algorithm, alg) {
        (AlgorithmParameters::OctetKey(p), Alg::HS256) => {
            // RFC 7518 §3.2: a key of at least the hash's size (256 bits) MUST be used.
            if bytes("k", &p.value)?.len() < 32 {
                return Err(bad("an HS256 secret needs at least 32 bytes"));
            }
        }
        (AlgorithmParameters::RSA(p), Alg::RS256) => {
            let n = bytes("n", &p.n)?;
            let e = bytes("e", &p.e)?;
            let n = &n[n.iter().take_while(|&&b| b == 0).count()..];
            let e = &e[e.iter().take_while(|&&b| b == 0).count()..];
            // RFC 7518 §3.3: 2048 bits or more.
            if n.len() < 256 {
                return Err(bad("an RSA modulus needs at least 2048 bits"));
            }
            if e.is_empty() || e.len() > 8 || e[e.len() - 1] & 1 == 0 || e == [1] {
                return Err(bad("the RSA exponent is not an odd number above 1"));
            }
        }
        (AlgorithmParameters::EllipticCurve(p), Alg::ES256) => {
            if p.curve != jsonwebtoken::jwk::EllipticCurve::P256 {
                return Err(bad("an ES256 key must be on crv P-256"));
            }
            if bytes("x", &p.x)?.len() != 32 || bytes("y", &p.y)?.len() != 32 {
                return Err(bad("P-256 coordinates are 32 bytes each"));
            }
        }
        (AlgorithmParameters::OctetKeyPair(p), Alg::EdDSA) => {
            if p.curve != jsonwebtoken::jwk::EllipticCurve::Ed25519 {
                return Err(bad("an EdDSA key must be on crv Ed25519"));
            }
            if bytes("x", &p.x)?.len() != 32 {
                return Err(bad("an Ed25519 public key is 32 bytes"));
            }
        }
        // kty matched alg above, so the members for it are missing or of the wrong type.
        _ => return Err(bad(&format!("not the members a {kty} key has"))),
    }
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| bad(&e.to_string()))?;
    // The provider parses EC points and Ed25519 keys when it makes a verifier: a point that
    // is not on its curve is refused here, not on the first token.
    let provider = CryptoProvider::try_get_default().ok_or_else(|| bad("no crypto provider"))?;
    (provider.verifier_factory)(&alg.jsonwebtoken(), &decoding).map_err(|e| bad(&e.to_string()))?;
    Ok(Key { kid, alg, decoding })
}
