//! Who may stream what (issue 18's edge): a request's identity (a trusted `REMOTE_USER`, a
//! verified token), its rights resolved once at the start of a stream, the answers when they
//! fall short, and what changes them later: a token's expiry, and a reload of the
//! entitlements file or the keys (SIGHUP). The fan-out never looks at any of it.

use std::rc::Rc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::requests::shown;
use super::{Core, Io};
use crate::answers::Answer;
use crate::response::Dialect;
use crate::rights::{Entitlements, Refusal, Rights, Tier, TokenClaims};
use crate::route::{Choice, Token};
use crate::symbol::Symbol;
use crate::universe::DEFAULT_SYMBOL;

/// Who asks, as [`Core::identify`] found: the user (a trusted `REMOTE_USER`, or the token's
/// `sub`), the valid token's claims, and when that token expires (unix seconds).
pub(super) struct Identity {
    pub(super) user: Option<String>,
    pub(super) claims: Option<TokenClaims>,
    pub(super) exp: Option<u64>,
}

impl<I: Io> Core<I> {
    /// The rights of a caller (`user`: its identity, if any; `claims`: its token's), resolved
    /// once; `None` without `--entitlements` and `--jwt-jwks`: everyone sees everything and
    /// nothing is checked (the fast path).
    pub(super) fn rights_of(
        &self,
        user: Option<&str>,
        claims: Option<&TokenClaims>,
    ) -> Option<Rights> {
        let rights = self.entitlements.as_ref()?.rights_for(user, claims);
        (!rights.allows_all()).then_some(rights)
    }

    /// Who a request is: its trusted `user`, and with `--jwt-jwks` its token verified against
    /// the wall clock. A trusted `REMOTE_USER` wins over the token's `sub`; the token's
    /// claims count either way. A token invalid in any way: the 401 (`WWW-Authenticate:
    /// Bearer`), logged once at info with the reason, never the token.
    pub(super) fn identify(
        &mut self,
        key: usize,
        p: Dialect,
        user: Option<String>,
        token: Option<&Token>,
    ) -> Result<Identity, Rc<[u8]>> {
        let (Some(token), Some(keys)) = (token, self.jwt_keys.as_ref()) else {
            return Ok(Identity {
                user,
                claims: None,
                exp: None,
            });
        };
        let now = u64::try_from(self.wall_ms() / 1000).unwrap_or(0);
        let refused = match crate::jwt::verify(&token.0, keys, &self.jwt_checks, now) {
            Ok(v) => {
                let claims = TokenClaims {
                    sub: v.sub,
                    symbols: v.symbols,
                    groups: v.groups,
                    tier: v.tier,
                };
                match claims.check() {
                    Ok(()) => {
                        return Ok(Identity {
                            user: user.or_else(|| claims.sub.clone()),
                            claims: Some(claims),
                            exp: Some(v.exp),
                        })
                    }
                    Err(why) => format!("token: claims: {why}"),
                }
            }
            Err(refusal) => format!("token: {refusal}"),
        };
        if let Some(conn) = self.clients.get(key) {
            let who = user.as_deref().unwrap_or("anonymous");
            log::info!("{}: refused (401): user {who}: {refused}", conn.describe());
        }
        Err(self.answer(p, Answer::StreamUnauthorized(&refused)))
    }

    /// Whether the caller of a stream or long poll may see its symbols, decided before they
    /// are looked up in the universe: a symbol outside the rights answers the same (401 or
    /// 403 naming it) whether it exists or not, so a caller cannot probe which exist. `Ok`:
    /// the stream's cap from the rights (`None`: uncapped); `Err`: the answer, logged once
    /// at info with the user (never a token). A caller with a valid token is identified,
    /// with or without a `sub`.
    pub(super) fn admit(
        &mut self,
        key: usize,
        p: Dialect,
        who: &Identity,
        symbols: &Choice,
    ) -> Result<Option<Duration>, Rc<[u8]>> {
        let user = who.user.as_deref();
        let Some(rights) = self.rights_of(user, who.claims.as_ref()) else {
            return Ok(None);
        };
        let symbols: Vec<Symbol> = match symbols {
            Choice::Default => vec![self.feed.universe.symbol(DEFAULT_SYMBOL)],
            Choice::Named(names) => names.clone(),
        };
        let identified = user.is_some() || who.claims.is_some();
        let who = user.unwrap_or("anonymous");
        let describe = |k| {
            self.clients
                .get(k)
                .map(|c| c.describe())
                .unwrap_or_default()
        };
        match rights.admit(&symbols, identified) {
            Ok(Tier::Realtime) => Ok(rights.stream_cap(&symbols)),
            Ok(tier) => {
                // Only reachable if the file's check at start is bypassed (or a token's tier
                // claim): never serve a delayed tier in real time.
                let why = format!("tier {tier}: delayed tiers are not served yet");
                log::info!("{}: refused (403): user {who}: {why}", describe(key));
                Err(self.answer(p, Answer::StreamForbidden(&why)))
            }
            Err(refusal) => {
                let missing = shown(refusal.missing().iter().map(|s| s.to_string()).collect());
                let unauthorized = matches!(refusal, Refusal::Unauthorized { .. });
                let why = match unauthorized {
                    true => format!("symbols: need an identity: {missing}"),
                    false => format!("symbols: not entitled: {missing}"),
                };
                log::info!(
                    "{}: refused ({}): user {who}: {why}",
                    describe(key),
                    refusal.status()
                );
                let answer = match unauthorized {
                    true => Answer::StreamUnauthorized(&why),
                    false => Answer::StreamForbidden(&why),
                };
                Err(self.answer(p, answer))
            }
        }
    }
}

/// What ends a stream whose rights were revoked by a reload, before the connection closes:
/// a named event (a page may listen for it; `tickerd.js` does not yet, and an EventSource
/// reconnects after the close as after any other, getting 401/403 or its stream back), with
/// no `id:` line, so that the browser's last id stays where it was.
pub const REAUTH_REVOKED: &[u8] = b"event: reauth\ndata: revoked\n\n";

/// What ends a stream whose token has expired, before the connection closes (no `id:`).
pub const REAUTH_EXPIRED: &[u8] = b"event: reauth\ndata: expired\n\n";

/// Streams whose tokens expire in the same second end spread over this much after `exp`
/// (the bound is 5 s; the last second is left for a late loop turn).
pub const EXPIRY_SPREAD_MS: u64 = 4000;

/// A connection's place in the spread, from its serial: the same for the same connection,
/// scattered across connections (splitmix64's finalizer).
fn spread_ms(serial: u64) -> u64 {
    let mut z = serial.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % EXPIRY_SPREAD_MS
}

impl<I: Io> Core<I> {
    /// When a stream whose token expires at `exp` (unix seconds) ends, in the loop's time:
    /// `exp` plus the connection's spread, converted through the wall clock the core was
    /// made at (the same base as [`Core::wall_ms`]). Already past: now.
    pub(super) fn expiry_instant(&self, exp: u64, serial: u64) -> Instant {
        let wall = UNIX_EPOCH + Duration::from_secs(exp) + Duration::from_millis(spread_ms(serial));
        let (at, wall_at) = self.wall_at_start;
        let at = match wall.duration_since(wall_at) {
            Ok(after) => at + after,
            Err(_) => at,
        };
        at.max(self.now)
    }

    /// A stream whose token expired: `event: reauth` / `data: expired`, then the close.
    pub(super) fn end_expired(&mut self, key: usize) {
        let Some(conn) = self.clients.get_mut(key) else {
            return;
        };
        if !conn.end_stream(Rc::from(REAUTH_EXPIRED)) {
            return;
        }
        let who = self.stream_users.get(&key).cloned().flatten();
        log::info!(
            "{}: stream ended (reauth: expired): user {}",
            conn.describe(),
            who.as_deref().unwrap_or("anonymous")
        );
        self.feed.unsubscribe(key);
        self.rates.remove(key);
        self.stream_users.remove(&key);
        self.stream_claims.remove(&key);
        self.flush(key);
    }
}

impl<I: Io> Core<I> {
    /// A reloaded key set (SIGHUP): tokens are verified with it from now on. Open streams
    /// go on: their tokens were verified when they started, and they end at their expiry.
    pub fn reload_keys(&mut self, keys: crate::jwt::KeySet) {
        self.jwt_keys = Some(std::sync::Arc::new(keys));
    }

    /// A reloaded entitlements file (SIGHUP): from now on, streams start with it; every open
    /// stream whose rights no longer cover all its symbols at real time ends at once with
    /// `event: reauth` / `data: revoked`, and a waiting long poll is answered 401 or 403 as
    /// a new one would be. Others go on untouched (their cap stays what it was). Returns
    /// how many ended and how many go on.
    pub fn reload_entitlements(&mut self, entitlements: Entitlements) -> (usize, usize) {
        let mut checked: Vec<(usize, Option<String>)> = self
            .stream_users
            .iter()
            .map(|(k, u)| (*k, u.clone()))
            .collect();
        checked.sort_unstable_by_key(|(k, _)| *k);
        self.entitlements = Some(entitlements);
        let (mut ended, mut kept) = (0, 0);
        for (key, user) in checked {
            let Some(symbols) = self.feed.symbols_of(key).map(|(_, ids)| {
                let u = &self.feed.universe;
                ids.map(|id| u.symbol(id)).collect::<Vec<Symbol>>()
            }) else {
                continue; // not subscribed (yet, or any more)
            };
            let claims = self.stream_claims.get(&key).map(|(c, _)| c.clone());
            let rights = self
                .entitlements
                .as_ref()
                .map(|e| e.rights_for(user.as_deref(), claims.as_ref()))
                .unwrap_or_default();
            let identified = user.is_some() || claims.is_some();
            let missing = match rights.admit(&symbols, identified) {
                Ok(Tier::Realtime) => {
                    kept += 1;
                    continue;
                }
                Ok(tier) => format!("tier {tier}"),
                Err(refusal) => shown(refusal.missing().iter().map(|s| s.to_string()).collect()),
            };
            let Some(conn) = self.clients.get_mut(key) else {
                continue;
            };
            let who = user.as_deref().unwrap_or("anonymous");
            let p = conn.dialect();
            if conn.end_stream(Rc::from(REAUTH_REVOKED)) {
                log::info!(
                    "{}: stream ended (reauth: revoked): user {who}: not entitled: {missing}",
                    conn.describe()
                );
            } else if conn.waiting().is_some() {
                // A parked long poll: answered as a new one would be (admit logs why).
                let who = Identity {
                    user,
                    claims,
                    exp: None,
                };
                let Err(answer) = self.admit(key, p, &who, &Choice::Named(symbols)) else {
                    continue;
                };
                if let Some(conn) = self.clients.get_mut(key) {
                    conn.start_response(answer);
                }
            } else {
                // A long poll writing its answer already: it ends with it.
                continue;
            }
            ended += 1;
            self.feed.unsubscribe(key);
            self.rates.remove(key);
            self.stream_users.remove(&key);
            self.stream_claims.remove(&key);
            self.flush(key);
        }
        (ended, kept)
    }
}
