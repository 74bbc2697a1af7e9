//! Resolution: the union of anonymous's, the groups', the user's own and the token's grants.

use std::time::Duration;

use super::*;
use crate::symbol::Symbol;

const FILE: &str = r#"
[anonymous]
symbols = ["AAPL", "MSFT"]
tier = "15m"

[groups.pro]
symbols = ["*"]
tier = "realtime"
max_hz = 10

[groups.fx]
symbols = ["FX.*"]
tier = "90s"

[groups.desk]
symbols = ["FUND.*"]
max_hz = 1

[users.alice]
groups = ["pro"]
symbols = ["FUND.NAV"]

[users.bob]
groups = ["fx"]
symbols = ["MSFT"]
tier = "1m"

[users.carol]
"#;

fn sym(s: &str) -> Symbol {
    Symbol::parse(s.as_bytes()).unwrap()
}

fn file() -> Entitlements {
    Entitlements::parse(FILE).unwrap()
}

fn tiers(r: &Rights, list: &[&str]) -> Vec<Option<Tier>> {
    list.iter().map(|s| r.tier_of(&sym(s))).collect()
}

const D15M: Option<Tier> = Some(Tier::Delayed(900));
const RT: Option<Tier> = Some(Tier::Realtime);

#[test]
fn anonymous_and_unnamed_users_get_anonymous_rights() {
    let e = file();
    assert!(e.anonymous_has_any());
    for r in [
        e.rights_for(None, None),
        e.rights_for(Some("nobody"), None),
        e.rights_for(Some("carol"), None),
    ] {
        assert_eq!(tiers(&r, &["AAPL", "MSFT", "IBM"]), [D15M, D15M, None]);
    }
    assert!(!e.knows_user("nobody"));
    assert!(e.knows_user("carol"));
}

#[test]
fn a_users_groups_and_own_entry_add_up() {
    let e = file();
    let alice = e.rights_for(Some("alice"), None);
    assert!(!alice.allows_all(), "pro is capped");
    assert_eq!(tiers(&alice, &["AAPL", "IBM", "FUND.NAV"]), [RT, RT, RT]);
    // pro's cap, but FUND.NAV also from her own uncapped entry at the same tier.
    assert_eq!(alice.cap_of(&sym("IBM")), Some(Duration::from_millis(100)));
    assert_eq!(alice.cap_of(&sym("FUND.NAV")), None);

    let bob = e.rights_for(Some("bob"), None);
    assert_eq!(
        tiers(&bob, &["AAPL", "MSFT", "FX.EURUSD", "IBM"]),
        [D15M, Some(Tier::Delayed(60)), Some(Tier::Delayed(90)), None]
    );
    // User names are exact.
    assert_eq!(e.rights_for(Some("Bob"), None).tier_of(&sym("MSFT")), D15M);
}

#[test]
fn a_tokens_claims_add_to_the_files() {
    let e = file();
    let claims =
        |sub: Option<&str>, symbols: &[&str], groups: &[&str], tier: Option<&str>| TokenClaims {
            sub: sub.map(str::to_string),
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            tier: tier.map(str::to_string),
        };
    // The token's sub names the user when no REMOTE_USER does.
    let t = claims(Some("bob"), &[], &["desk", "no-such-group"], None);
    let r = e.rights_for(None, Some(&t));
    assert_eq!(
        tiers(&r, &["MSFT", "FX.EURUSD", "FUND.X", "IBM"]),
        [Some(Tier::Delayed(60)), Some(Tier::Delayed(90)), RT, None]
    );
    assert_eq!(r.cap_of(&sym("FUND.X")), Some(Duration::from_secs(1)));
    // A trusted REMOTE_USER wins over sub.
    let r = e.rights_for(Some("alice"), Some(&t));
    assert_eq!(tiers(&r, &["IBM", "FX.EURUSD"]), [RT, RT]);
    // Symbols at the token's tier; real time without one.
    let t = claims(Some("zed"), &["IBM", "fx.*"], &[], Some("1h"));
    let r = e.rights_for(None, Some(&t));
    assert_eq!(
        tiers(&r, &["IBM", "FX.A", "AAPL", "ORCL"]),
        [
            Some(Tier::Delayed(3600)),
            Some(Tier::Delayed(3600)),
            D15M,
            None
        ]
    );
    let t = claims(None, &["AAPL"], &[], None);
    assert_eq!(e.rights_for(None, Some(&t)).tier_of(&sym("AAPL")), RT);
    // Claims that do not parse grant nothing (and check() says why).
    for t in [
        claims(Some("zed"), &["IBM"], &[], Some("soon")),
        claims(Some("zed"), &["IBM", "A*B"], &[], None),
    ] {
        assert!(t.check().is_err());
        assert_eq!(e.rights_for(None, Some(&t)).tier_of(&sym("IBM")), None);
    }
    assert_eq!(claims(None, &["*"], &["x"], Some("15m")).check(), Ok(()));
}

#[test]
fn claims_from_json() {
    let t: TokenClaims = serde_json::from_str(
        r#"{"sub":"alice","exp":1,"symbols":["AAPL"],"groups":["pro"],"tier":"15m"}"#,
    )
    .unwrap();
    assert_eq!(t.sub.as_deref(), Some("alice"));
    assert_eq!((t.symbols.len(), t.groups.len()), (1, 1));
    let t: TokenClaims = serde_json::from_str(r#"{"exp":1}"#).unwrap();
    assert_eq!(t, TokenClaims::default());
}

#[test]
fn without_anonymous_an_unidentified_caller_has_nothing() {
    let e =
        Entitlements::parse("[groups.pro]\nsymbols = [\"*\"]\n[users.alice]\ngroups = [\"pro\"]\n")
            .unwrap();
    assert!(!e.anonymous_has_any());
    let r = e.rights_for(None, None);
    assert!(!r.has_any());
    assert_eq!(r.admit(&[sym("AAPL")], false).unwrap_err().status(), 401);
    let alice = e.rights_for(Some("alice"), None);
    assert!(alice.allows_all());
    // An identified user without rights: 403.
    let r = e.rights_for(Some("mallory"), None);
    assert!(!r.has_any());
    assert_eq!(r.admit(&[sym("AAPL")], true).unwrap_err().status(), 403);
    // An empty [anonymous] grants nothing either.
    let e = Entitlements::parse("[anonymous]\n").unwrap();
    assert!(!e.anonymous_has_any());
    assert!(!e.rights_for(None, None).has_any());
}

#[test]
fn the_statuses() {
    let e = file();
    let anon = e.rights_for(None, None);
    assert_eq!(anon.admit(&[sym("AAPL")], false), Ok(Tier::Delayed(900)));
    let no = anon.admit(&[sym("IBM"), sym("AAPL")], false).unwrap_err();
    assert_eq!((no.status(), no.missing()), (401, &[sym("IBM")][..]));
    let bob = e.rights_for(Some("bob"), None);
    let no = bob
        .admit(&[sym("IBM"), sym("FX.A"), sym("ORCL")], true)
        .unwrap_err();
    assert_eq!(
        (no.status(), no.missing()),
        (403, &[sym("IBM"), sym("ORCL")][..])
    );
    assert_eq!(
        bob.admit(&[sym("FX.A"), sym("MSFT"), sym("AAPL")], true),
        Ok(Tier::Delayed(900))
    );
}

#[test]
fn load_names_the_path_and_line() {
    let dir = std::env::temp_dir().join(format!("tickerd-rights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("entitlements.toml");
    std::fs::write(&path, "[anonymous]\nsymbols = [\"A\"]\ntier = \"2d\"\n").unwrap();
    let e = Entitlements::load(&path).unwrap_err();
    assert!(
        e.starts_with(&format!("{}: line 3: tier \"2d\"", path.display())),
        "{e}"
    );
    std::fs::write(&path, FILE).unwrap();
    assert_eq!(Entitlements::load(&path), Ok(file()));
    std::fs::remove_dir_all(&dir).unwrap();
    let e = Entitlements::load(&dir.join("gone.toml")).unwrap_err();
    assert!(e.contains("gone.toml: "), "{e}");
}

/// The README's example file, and its table of what each caller gets.
#[test]
fn the_readme_example() {
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find("## Who may see what").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let text = &section[start..start + section[start..].find("```").unwrap()];
    let e = Entitlements::parse(text).unwrap();
    let hz10 = Some(Duration::from_millis(100));
    let rt = |cap| Some((Tier::Realtime, cap));
    let delayed = |s, cap| Some((Tier::Delayed(s), cap));
    let symbols = ["AAPL", "MSFT", "FX.EURUSD", "FUND.NAV", "IBM"];
    for (user, want) in [
        (
            None,
            [delayed(900, None), delayed(900, None), None, None, None],
        ),
        (
            Some("alice"),
            [rt(hz10), rt(hz10), rt(hz10), rt(None), rt(hz10)],
        ),
        (
            Some("bob"),
            [
                delayed(900, None),
                delayed(60, None),
                delayed(90, Some(Duration::from_secs(2))),
                rt(None),
                None,
            ],
        ),
        (
            Some("carol"),
            [delayed(900, None), delayed(900, None), None, None, None],
        ),
    ] {
        let r = e.rights_for(user, None);
        let got: Vec<_> = symbols.iter().map(|s| r.grant_for(&sym(s))).collect();
        assert_eq!(got, want, "{user:?}");
    }
    let bob = e.rights_for(Some("bob"), None);
    assert_eq!(
        bob.stream_tier(&[sym("AAPL"), sym("FX.EURUSD")]),
        Ok(Tier::Delayed(900))
    );
}

#[test]
fn the_first_section_granting_a_delay_is_named() {
    let e = Entitlements::parse("[anonymous]\nsymbols = [\"A\"]\n").unwrap();
    assert_eq!(e.first_delayed(), None);
    let e = Entitlements::parse(
        "[groups.pro]\nsymbols = [\"*\"]\n[users.bob]\nsymbols = [\"B\"]\ntier = \"15m\"\n",
    )
    .unwrap();
    assert_eq!(
        e.first_delayed(),
        Some(("[users.bob]".to_string(), Tier::Delayed(900)))
    );
    let e = Entitlements::parse("[anonymous]\nsymbols = [\"A\"]\ntier = \"90s\"\n").unwrap();
    assert_eq!(
        e.first_delayed(),
        Some(("[anonymous]".to_string(), Tier::Delayed(90)))
    );
}
