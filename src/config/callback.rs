//! `[apps.NAME] callback = { token, encoding_aes_key, forward, forward_path, format }` (SPEC
//! section 18), checked where it is written: WeCom's console accepts only what is checked
//! here, so a value it would refuse is a config error, not a callback that never verifies.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_spanned::Spanned;
use wecom_api::CallbackCrypto;

use super::error::{ConfigError, Source};
use super::file;
use super::model::{App, Callback, Forward, SessionSettings, Upstream};

type Result<T> = std::result::Result<T, ConfigError>;

/// WeCom's console: "Token 可由英文或数字组成，长度为 3-32".
fn token_ok(t: &str) -> bool {
    (3..=32).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// "EncodingAESKey 由英文或数字组成，长度固定为 43" — and it must decode to 32 bytes.
fn aes_key_ok(k: &str) -> bool {
    k.len() == 43 && k.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// An absolute path (a query may follow) that the upstream request line can carry as is.
fn forward_path_ok(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('#')
        && p.bytes().all(|b| b.is_ascii_graphic())
        && http::uri::PathAndQuery::try_from(p).is_ok()
}

pub(super) fn compile(
    app: &str,
    cb: &Spanned<file::Callback>,
    receive_ids: Vec<String>,
    check_ids: Vec<String>,
    upstreams: &BTreeMap<String, Arc<Upstream>>,
    src: &Source<'_>,
) -> Result<Callback> {
    let path = |key: &str| format!("[apps.{app}].callback.{key}");
    let c = cb.get_ref();
    // Secrets: the messages say what is wrong, never what the value is.
    let token = c.token.get_ref().as_str();
    if !token_ok(token) {
        return Err(src.error(
            c.token.span(),
            path("token"),
            "expected 3 to 32 letters or digits (as WeCom's console generates)",
        ));
    }
    let key = c.encoding_aes_key.get_ref().as_str();
    let crypto = aes_key_ok(key)
        .then(|| CallbackCrypto::new(token, key).ok())
        .flatten()
        .ok_or_else(|| {
            src.error(
                c.encoding_aes_key.span(),
                path("encoding_aes_key"),
                "expected 43 letters or digits (base64 of 32 bytes, as WeCom's console generates)",
            )
        })?;
    let forward = match (&c.forward, &c.forward_path) {
        (None, None) => None,
        (None, Some(p)) => {
            return Err(src.error(p.span(), path("forward_path"), "needs `forward`"));
        }
        (Some(f), None) => {
            return Err(src.error(
                f.span(),
                path("forward_path"),
                "required with `forward` (e.g. \"/wecom/callback\")",
            ));
        }
        (Some(f), Some(p)) => {
            let name = f.get_ref().as_str();
            let upstream = upstreams.get(name).cloned().ok_or_else(|| {
                let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
                src.error(
                    f.span(),
                    path("forward"),
                    format!(
                        "unknown upstream '{name}' (known: {})",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })?;
            let fp = p.get_ref().as_str();
            if !forward_path_ok(fp) {
                return Err(src.error(
                    p.span(),
                    path("forward_path"),
                    format!("'{fp}' is not an absolute path like \"/wecom/callback\""),
                ));
            }
            Some(Forward {
                upstream,
                path: fp.to_owned(),
            })
        }
    };
    Ok(Callback {
        crypto,
        token: wecom_api::Secret::new(token.to_owned()),
        encoding_aes_key: wecom_api::Secret::new(key.to_owned()),
        receive_ids,
        check_ids,
        forward,
        format: c.format,
    })
}

/// The CRM verifies `X-Gateway-Signature` with `assertion_secret`: a callback that forwards
/// without one would hand the CRM events anyone on its network could forge.
pub(super) fn require_assertion_secret(
    f: &file::File,
    apps: &BTreeMap<String, Arc<App>>,
    session: Option<&SessionSettings>,
    src: &Source<'_>,
) -> Result<()> {
    if session.is_some_and(|s| s.assertion_key.is_some()) {
        return Ok(());
    }
    for (name, app) in apps {
        if app.callback.as_ref().is_some_and(|c| c.forward.is_some()) {
            let span = f.apps[name]
                .get_ref()
                .callback
                .as_ref()
                .map_or(0..0, |c| c.span());
            return Err(src.error(
                span,
                format!("[apps.{name}].callback.forward"),
                "forwarding callbacks needs [session].assertion_secret (the key of X-Gateway-Signature)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keys_and_paths_are_what_wecom_and_http_accept() {
        let tokens: &[(&str, bool)] = &[
            ("QDG6eK", true),
            ("abc", true),
            ("ab", false),
            (&"a".repeat(32), true),
            (&"a".repeat(33), false),
            ("tok en", false),
            ("tok-en", false),
            ("令牌令牌", false),
        ];
        for (t, ok) in tokens {
            assert_eq!(token_ok(t), *ok, "{t:?}");
        }
        let keys: &[(&str, bool)] = &[
            ("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", true),
            ("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2", false),
            ("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C=", false),
            ("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B+C", false),
        ];
        for (k, ok) in keys {
            assert_eq!(aes_key_ok(k), *ok, "{k:?}");
        }
        let paths: &[(&str, bool)] = &[
            ("/wecom/callback", true),
            ("/hooks?src=wecom", true),
            ("/", true),
            ("wecom/callback", false),
            ("//evil.example/x", false),
            ("/a b", false),
            ("/a#frag", false),
            ("http://crm/x", false),
            ("", false),
        ];
        for (p, ok) in paths {
            assert_eq!(forward_path_ok(p), *ok, "{p:?}");
        }
    }
}
