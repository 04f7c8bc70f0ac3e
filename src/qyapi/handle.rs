//! Gateway handles: what the endpoint's `gettoken` answers instead of a real token, so the
//! real one never leaves the gateway (SPEC section 10). `wgw1.{app}.{mac}`, the MAC keyed by
//! the app's own secret: stable across restarts (an SDK keeps its handle), and nobody without
//! that secret can make a handle naming that app.

use std::collections::BTreeMap;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::model::App;

const PREFIX: &str = "wgw1.";
/// 128 bits of MAC, hex.
const MAC_HEX: usize = 32;

fn mac(app: &App) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(app.credentials.secret().expose().as_bytes())
        .expect("HMAC takes any key length");
    m.update(PREFIX.as_bytes());
    m.update(app.name.as_bytes());
    m
}

pub fn sign(app: &App) -> String {
    let tag = mac(app).finalize().into_bytes();
    format!("{PREFIX}{}.{}", app.name, &hex::encode(tag)[..MAC_HEX])
}

/// A service-provider app's handle for one installed corp (SPEC section 20):
/// `wgw1.{app}~{corp}.{mac}`, the MAC over the app and the corp, keyed by the suite secret.
fn corp_mac(app: &App, corp: &str) -> Hmac<Sha256> {
    let mut m = mac(app);
    m.update(b"\0corp\0");
    m.update(corp.as_bytes());
    m
}

pub fn sign_corp(app: &App, corp: &str) -> String {
    let tag = corp_mac(app, corp).finalize().into_bytes();
    format!(
        "{PREFIX}{}~{corp}.{}",
        app.name,
        &hex::encode(tag)[..MAC_HEX]
    )
}

/// The app a handle names, if it is one of ours and not forged.
pub fn verify<'a>(apps: &'a BTreeMap<String, Arc<App>>, handle: &str) -> Option<&'a Arc<App>> {
    verify_named(apps, handle).map(|(app, _)| app)
}

/// The app a handle names, and the corp when it is a service-provider app's corp handle.
pub fn verify_named<'a, 'h>(
    apps: &'a BTreeMap<String, Arc<App>>,
    handle: &'h str,
) -> Option<(&'a Arc<App>, Option<&'h str>)> {
    let rest = handle.strip_prefix(PREFIX)?;
    let (name, tag) = rest.rsplit_once('.')?;
    if tag.len() != MAC_HEX {
        return None;
    }
    let tag = hex::decode(tag).ok()?;
    if let Some(app) = apps.get(name) {
        mac(app).verify_truncated_left(&tag).ok()?;
        return Some((app, None));
    }
    let (name, corp) = name.rsplit_once('~')?;
    let app = apps.get(name)?;
    if crate::suite::suite_of(app).is_none() || !crate::domain::is_plain_id(corp) {
        return None;
    }
    corp_mac(app, corp).verify_truncated_left(&tag).ok()?;
    Some((app, Some(corp)))
}

pub use crate::domain::same_secret;

#[cfg(test)]
mod tests {
    use super::*;

    fn apps() -> BTreeMap<String, Arc<App>> {
        let text = r#"
[server]
listen = "127.0.0.1:1"
public_url = "http://127.0.0.1:1"
[apps.crm]
kind = "wecom"
corp_id = "ww1"
agent_id = 1000002
secret = "secret-of-crm"
[apps."b.c"]
kind = "wecom"
corp_id = "ww1"
agent_id = 1000003
secret = "secret-of-bc"
[apps.mp]
kind = "wechat_mp"
app_id = "wx1"
secret = "secret-of-mp"
"#;
        crate::config::load_str("t.toml", text, std::path::Path::new("."))
            .unwrap()
            .apps
    }

    #[test]
    fn handles_name_their_app_and_cannot_be_forged() {
        let apps = apps();
        let crm = sign(&apps["crm"]);
        let bc = sign(&apps["b.c"]);
        let mp = sign(&apps["mp"]);
        assert!(crm.starts_with("wgw1.crm.") && !crm.contains("secret"));
        let forged_for_mp = crm.replacen("wgw1.crm.", "wgw1.mp.", 1);
        let mut flipped = crm.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        let cases: &[(&str, Option<&str>)] = &[
            (&crm, Some("crm")),
            (&bc, Some("b.c")),
            (&mp, Some("mp")),
            (&forged_for_mp, None),
            (&flipped, None),
            (&crm[..crm.len() - 1], None),
            ("wgw1.crm.", None),
            ("wgw1.nobody.00000000000000000000000000000000", None),
            ("", None),
            ("real-provider-token-abcdef", None),
            ("wgw2.crm.0", None),
        ];
        for (handle, want) in cases {
            assert_eq!(
                verify(&apps, handle).map(|a| a.name.as_str()),
                *want,
                "{handle}"
            );
        }
        assert_eq!(sign(&apps["crm"]), crm, "stable across calls and restarts");
    }

    #[test]
    fn corp_handles_name_the_app_and_the_corp_and_cannot_be_moved_to_another_corp() {
        let text = r#"
[server]
listen = "127.0.0.1:1"
public_url = "http://127.0.0.1:1"
[store]
backend = "local"
[apps.saas]
kind = "wecom_suite"
suite_id = "wws1"
suite_secret = "secret-of-suite"
callback = { token = "SuiteToken123", encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG" }
[apps.crm]
kind = "wecom"
corp_id = "ww1"
agent_id = 1000002
secret = "secret-of-crm"
"#;
        let apps = crate::config::load_str("t.toml", text, std::path::Path::new("."))
            .unwrap()
            .apps;
        let a = sign_corp(&apps["saas"], "wwA");
        assert!(
            a.starts_with("wgw1.saas~wwA.") && !a.contains("secret"),
            "{a}"
        );
        let moved = a.replacen("~wwA.", "~wwB.", 1);
        let not_a_suite = sign_corp(&apps["crm"], "wwA");
        let cases: &[(&str, Option<(&str, Option<&str>)>)] = &[
            (&a, Some(("saas", Some("wwA")))),
            (&sign(&apps["saas"]), Some(("saas", None))),
            (&moved, None),
            (&not_a_suite, None),
        ];
        for (handle, want) in cases {
            let got = verify_named(&apps, handle).map(|(app, corp)| (app.name.as_str(), corp));
            assert_eq!(got, *want, "{handle}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "abc"));
    }
}
