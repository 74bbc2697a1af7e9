//! Who may see what (issue 18): the entitlements file, and each principal's rights resolved
//! from it and from a token's claims into a plain [`Rights`] value. Pure: no sockets, no
//! clock. The core resolves a stream's rights with it when the stream starts (`--entitlements`).
//!
//! - [`pattern`]: `AAPL`, `FX.*`, `*`;
//! - [`tier`]: `realtime` or a delay (`90s`, `15m`, `1h`), ordered best first;
//! - `file`: the TOML file, checked, with errors naming their line;
//! - [`resolved`]: the resolved rights (grants), the best-tier rule, a stream's tier, caps,
//!   and the 401/403 decision.
//!
//! How a caller decides a stream (README "Who may see what"):
//! 1. Without `--entitlements`: [`Rights::all`], and nothing is checked
//!    ([`Rights::allows_all`] is the fast path).
//! 2. Otherwise, the rights of the caller: [`Entitlements::rights_for`] with its user (a
//!    trusted `REMOTE_USER` or the token's `sub`) and its token's claims. An unidentified
//!    caller is given the rights of `[anonymous]` (none if that section is absent).
//! 3. [`Rights::admit`] with the stream's symbols and whether the caller is identified,
//!    *before* the symbols are looked up in the universe: `Ok(tier)`, or a [`Refusal`]
//!    (401 without an identity, 403 with one) naming the symbols not entitled. A symbol
//!    outside the rights so answers the same whether it exists or not.

pub mod pattern;
pub mod resolved;
pub mod tier;

mod file;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub use file::FileError;
pub use pattern::Pattern;
pub use resolved::{Grant, Refusal, Rights};
pub use tier::Tier;

/// The entitlements file, checked: what `[anonymous]`, each group and each user are granted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entitlements {
    /// `None`: no `[anonymous]` section, so an unidentified caller has no rights (401).
    anonymous: Option<Vec<Grant>>,
    groups: BTreeMap<String, Vec<Grant>>,
    /// Each user's groups (all defined in the file) and own grants.
    users: BTreeMap<String, (Vec<String>, Vec<Grant>)>,
}

/// What a verified token says about rights (the JWT module fills it; other claims, `exp` and
/// the like, are its business). Every field may be absent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct TokenClaims {
    /// The user, when no trusted `REMOTE_USER` names one.
    pub sub: Option<String>,
    /// Symbol patterns granted by the token itself, at `tier`.
    pub symbols: Vec<String>,
    /// Groups of the file the token puts its holder in; names the file does not define are
    /// ignored (an identity provider's groups are not all tickerd's).
    pub groups: Vec<String>,
    /// The tier of the token's `symbols`: real time when absent.
    pub tier: Option<String>,
}

impl TokenClaims {
    /// Whether the claims mean something: every pattern and the tier parse. A token whose
    /// claims do not is invalid (401); [`Entitlements::rights_for`] grants nothing from them
    /// in any case.
    pub fn check(&self) -> Result<(), String> {
        if let Some(tier) = &self.tier {
            Tier::parse(tier)?;
        }
        for p in &self.symbols {
            Pattern::parse(p)?;
        }
        Ok(())
    }

    /// The token's own grant: its `symbols` at its `tier`, uncapped. Nothing if the tier or
    /// any pattern is invalid: a bad claim never widens rights.
    fn grants(&self) -> Vec<Grant> {
        let tier = match self.tier.as_deref().map(Tier::parse) {
            None => Tier::Realtime,
            Some(Ok(tier)) => tier,
            Some(Err(_)) => return Vec::new(),
        };
        let patterns: Result<Vec<Pattern>, String> =
            self.symbols.iter().map(|p| Pattern::parse(p)).collect();
        patterns
            .unwrap_or_default()
            .into_iter()
            .map(|pattern| Grant {
                pattern,
                tier,
                cap: None,
            })
            .collect()
    }
}

impl Entitlements {
    /// Reads the file's text; an error names its line.
    pub fn parse(text: &str) -> Result<Entitlements, FileError> {
        let p = file::parse(text)?;
        Ok(Entitlements {
            anonymous: p.anonymous,
            groups: p.groups,
            users: p.users,
        })
    }

    /// Reads `--entitlements PATH`: an error names the path, and the line when it is the
    /// text that is wrong.
    pub fn load(path: &Path) -> Result<Entitlements, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Entitlements::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether an unidentified caller may see anything at all: `[anonymous]` is there and
    /// grants at least one pattern. If not, a caller without identity gets 401 whatever it
    /// asks ([`Rights::admit`] decides the same from the resolved rights).
    pub fn anonymous_has_any(&self) -> bool {
        self.anonymous.as_ref().is_some_and(|g| !g.is_empty())
    }

    /// Whether the file names this user (a `[users.NAME]` section). Not needed to decide
    /// anything (an unnamed identified user has anonymous's rights and its token's), but
    /// useful in a log line.
    pub fn knows_user(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The first section (in file order: `[anonymous]`, the groups, the users) that grants a
    /// delayed tier, and that tier. tickerd does not serve delayed streams yet, so `main`
    /// refuses such a file rather than pretend (README "Who may see what").
    pub fn first_delayed(&self) -> Option<(String, Tier)> {
        let delayed =
            |grants: &[Grant]| grants.iter().map(|g| g.tier).find(|t| *t != Tier::Realtime);
        let anonymous = self.anonymous.as_deref().and_then(delayed);
        let anonymous = anonymous.map(|t| ("[anonymous]".to_string(), t));
        let groups = || {
            self.groups
                .iter()
                .find_map(|(name, g)| delayed(g).map(|t| (format!("[groups.{name}]"), t)))
        };
        let users = || {
            self.users
                .iter()
                .find_map(|(name, (_, g))| delayed(g).map(|t| (format!("[users.{name}]"), t)))
        };
        anonymous.or_else(groups).or_else(users)
    }

    /// A principal's rights: the union of `[anonymous]`'s grants, those of its groups (the
    /// file's entry's and the token's `groups` claim), its own entry's, and the token's
    /// `symbols` at its `tier`. `user` is the identity (a trusted `REMOTE_USER`); without it
    /// the token's `sub` is the user. Neither: anonymous's rights (and a token's claims, if
    /// a token without `sub` is given).
    pub fn rights_for(&self, user: Option<&str>, token: Option<&TokenClaims>) -> Rights {
        let mut grants: Vec<Grant> = self.anonymous.iter().flatten().copied().collect();
        let user = user.or_else(|| token.and_then(|t| t.sub.as_deref()));
        let entry = user.and_then(|u| self.users.get(u));
        let file_groups = entry.map(|(groups, _)| groups.as_slice()).unwrap_or(&[]);
        let token_groups = token.map(|t| t.groups.as_slice()).unwrap_or(&[]);
        for name in file_groups.iter().chain(token_groups) {
            grants.extend(self.groups.get(name).into_iter().flatten());
        }
        if let Some((_, own)) = entry {
            grants.extend(own);
        }
        if let Some(t) = token {
            grants.extend(t.grants());
        }
        Rights::from_grants(grants)
    }
}

#[cfg(test)]
mod tests;
