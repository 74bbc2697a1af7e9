//! The entitlements file on any text: never a panic; an error names a line inside the text
//! on one line of its own; what it accepts resolves into rights that only add up (a user has
//! at least anonymous's rights at a tier as good) and agree with a stream's tier.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tickerd::rights::{Entitlements, TokenClaims};
use tickerd::symbol::Symbol;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let e = match Entitlements::parse(text) {
        Ok(e) => e,
        Err(err) => {
            assert!(!err.message.is_empty() && !err.message.contains('\n'));
            if let Some(n) = err.line {
                assert!(n >= 1 && n <= text.split('\n').count(), "{err}");
            }
            return;
        }
    };
    let symbols: Vec<Symbol> = ["AAPL", "MSFT", "FX.EURUSD", "FX.", "A", "FUND.NAV", "Z9"]
        .iter()
        .map(|s| Symbol::parse(s.as_bytes()).unwrap())
        .collect();
    let anon = e.rights_for(None, None);
    assert_eq!(anon.has_any(), e.anonymous_has_any());
    let token = TokenClaims {
        sub: Some("u".into()),
        symbols: vec!["FX.*".into()],
        groups: vec!["a".into(), "b".into()],
        tier: Some("15m".into()),
    };
    for who in [
        e.rights_for(Some("u"), None),
        e.rights_for(Some("alice"), None),
        e.rights_for(None, Some(&token)),
    ] {
        let grants = who.grants();
        for (i, g) in grants.iter().enumerate() {
            assert!(grants[i + 1..].iter().all(|h| h != g), "deduplicated");
        }
        for s in &symbols {
            if let Some(t) = anon.tier_of(s) {
                assert!(
                    who.tier_of(s).is_some_and(|u| u <= t),
                    "{s}: a union only adds"
                );
            }
            if who.tier_of(s).is_none() {
                assert_eq!(who.cap_of(s), None);
            }
        }
        match who.stream_tier(&symbols) {
            Ok(t) => assert_eq!(Some(t), symbols.iter().filter_map(|s| who.tier_of(s)).max()),
            Err(missing) => assert!(missing.iter().all(|s| who.tier_of(s).is_none())),
        }
        if who.allows_all() {
            assert!(symbols
                .iter()
                .all(|s| who.grant_for(s) == Some((tickerd::rights::Tier::Realtime, None))));
        }
    }
});
