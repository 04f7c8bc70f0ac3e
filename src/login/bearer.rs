//! Bearer sessions of mini-programs (SPEC section 19): `Authorization: Bearer wgw1.SEALED`.
//!
//! A token is a session entry sealed like the session cookie (AES-256-GCM with the session
//! key), under its own associated-data name, so a token never opens as a cookie nor a cookie
//! value as a token. It carries the same `sid` and issue time, so `logout`-style and per-member
//! revocation records (`revocation`) end it exactly as they end a cookie session.
//!
//! Why bearer requests need no CSRF defence of their own: a browser attaches cookies to a
//! cross-site request by itself, but never an `Authorization` header — only code that holds
//! the token can send it, and holding it is the credential. What the gateway must make sure
//! instead is that a request with our token is judged by that token alone: cookies the same
//! request carries are ignored (a forged page cannot mix a victim's cookie into a token
//! request, nor a bad token fall back to the cookie), and the token never reaches the CRM.

use super::seal;
use super::session::SessionEntry;
use crate::config::model::SessionSettings;

/// Marks our tokens (and their format version) among other bearer tokens.
pub const PREFIX: &str = "wgw1.";
/// The associated data of the seal: only a token opens as a token.
const SEAL_NAME: &str = "wgw_bearer";

/// The token carrying `entry`.
pub fn issue(settings: &SessionSettings, entry: &SessionEntry) -> String {
    format!("{PREFIX}{}", seal::seal(&settings.key, SEAL_NAME, entry))
}

/// Our token in an `Authorization` value (`Bearer wgw1.…`, the scheme without case), or
/// `None` for anything else: no header, another scheme, someone else's token.
pub fn ours(authorization: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(authorization).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && token.starts_with(PREFIX)).then_some(token)
}

/// The live session a token carries: sealed by us, within its lifetime and the running `ttl`.
/// Revocation is the store's, checked by the caller like a cookie session's.
pub fn open(settings: &SessionSettings, token: &str, now: u64) -> Option<SessionEntry> {
    let sealed = token.strip_prefix(PREFIX)?;
    let entry: SessionEntry = seal::open(&settings.key, SEAL_NAME, sealed)?;
    entry.current(settings, now).then_some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Secret;
    use std::time::Duration;

    fn settings(secret: &str) -> SessionSettings {
        let secret = Secret::new(format!("{secret:0>32}"));
        SessionSettings::new(&secret, "wgw_session", Duration::from_secs(3600))
    }

    fn entry(iat: u64) -> SessionEntry {
        SessionEntry {
            app: "crm".into(),
            sid: Some("s1".into()),
            corp_id: Some("ww1".into()),
            agent_id: Some(1000002),
            userid: Some("zhangsan".into()),
            openid: None,
            wechat_app_id: None,
            unionid: None,
            open_userid: None,
            installed: false,
            suite: None,
            iat,
            exp: iat + 3600,
            contact: None,
            assertion: Default::default(),
            revocation: Default::default(),
        }
    }

    #[test]
    fn a_token_opens_only_sealed_by_us_as_a_token_and_within_its_life() {
        let s = settings("k");
        let token = issue(&s, &entry(1000));
        assert!(token.starts_with("wgw1."));
        assert!(!token.contains("zhangsan"), "the identity is not readable");
        let as_cookie = crate::login::session::set_cookie(&s, vec![entry(1000)], false);
        let cookie_value = as_cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("wgw_session=");
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        let cases: Vec<(&str, SessionSettings, String, u64, bool)> = vec![
            ("fresh", settings("k"), token.clone(), 1000, true),
            ("last second", settings("k"), token.clone(), 4599, true),
            ("expired", settings("k"), token.clone(), 4600, false),
            (
                "issued in the future",
                settings("k"),
                token.clone(),
                600,
                false,
            ),
            ("another key", settings("other"), token.clone(), 1000, false),
            ("tampered", settings("k"), tampered, 1000, false),
            (
                "a cookie value",
                settings("k"),
                format!("wgw1.{cookie_value}"),
                1000,
                false,
            ),
            (
                "no prefix",
                settings("k"),
                token[5..].to_owned(),
                1000,
                false,
            ),
        ];
        for (what, s, token, now, want) in cases {
            assert_eq!(open(&s, &token, now).is_some(), want, "{what}");
        }
    }

    /// `delete_user` (SPEC section 18) writes the per-member record; a token issued before it
    /// no longer opens, one issued after does, exactly as for cookie sessions.
    #[tokio::test]
    async fn the_member_record_ends_tokens_as_it_ends_cookie_sessions() {
        use crate::login::revocation;
        use std::sync::Arc;
        let store: Arc<dyn wecom_api::Store> =
            Arc::new(wecom_api::MemoryStore::new(crate::clock::clock().clone()));
        let s = settings("k");
        let now = crate::login::now_secs();
        let before = open(&s, &issue(&s, &entry(now - 10)), now).unwrap();
        assert_eq!(
            revocation::live(&store, vec![before.clone()]).await.len(),
            1
        );
        let member = revocation::member_key(&before).unwrap();
        revocation::end_member(&store, &member, now - 5, 3600).await;
        assert!(revocation::live(&store, vec![before]).await.is_empty());
        let mut after = entry(now);
        after.sid = Some("s2".into());
        let after = open(&s, &issue(&s, &after), now).unwrap();
        assert_eq!(revocation::live(&store, vec![after]).await.len(), 1);
    }

    #[test]
    fn only_our_bearer_tokens_are_ours() {
        for (value, want) in [
            ("Bearer wgw1.abc", Some("wgw1.abc")),
            ("bearer  wgw1.abc ", Some("wgw1.abc")),
            ("Bearer eyJhbGciOi.x.y", None),
            ("Basic d2d3MS5hYmM=", None),
            ("wgw1.abc", None),
            ("", None),
        ] {
            assert_eq!(ours(value.as_bytes()), want, "{value}");
        }
    }
}
