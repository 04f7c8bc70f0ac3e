//! `X-Gateway-Assertion` (SPEC section 7): an HS256 JWT the CRM can verify with
//! `assertion_secret`, so a request that bypassed the gateway carries no valid identity.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::identity::Identity;

/// Short-lived: it vouches for one request, not a session.
pub const LIFETIME_SECS: u64 = 60;

pub fn sign(identity: &Identity, request_id: &str, now: u64, secret: &[u8]) -> String {
    let sub = identity
        .userid
        .as_deref()
        .or(identity.openid.as_deref())
        .unwrap_or_default();
    let mut claims = serde_json::json!({
        "iss": "wecom-gateway",
        "sub": sub,
        "corp_id": identity.corp_id,
        "agent_id": identity.agent_id,
        "userid": identity.userid,
        "openid": identity.openid,
        "unionid": identity.unionid.as_ref().or(identity.external_unionid.as_ref()),
        "external_userid": identity.external_userid,
        "external_unionid": identity.external_unionid,
        "iat": now,
        "exp": now + LIFETIME_SECS,
        "rid": request_id,
    });
    if let Some(app_id) = &identity.wechat_app_id {
        claims["app_id"] = serde_json::json!(app_id);
    }
    const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_with_an_independent_jwt_library() {
        let id = Identity {
            corp_id: Some("ww1".into()),
            agent_id: Some(1000002),
            userid: Some("zhangsan".into()),
            ..Identity::default()
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let jwt = sign(&id, "rid-1", now, b"0123456789abcdef0123456789abcdef");
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.set_issuer(&["wecom-gateway"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &jwt,
            &jsonwebtoken::DecodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
            &v,
        )
        .unwrap();
        let c = data.claims;
        assert_eq!(c["sub"], "zhangsan");
        assert_eq!(c["userid"], "zhangsan");
        assert_eq!(c["corp_id"], "ww1");
        assert_eq!(c["agent_id"], 1000002);
        assert_eq!(c["rid"], "rid-1");
        assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 60);
        assert!(jsonwebtoken::decode::<serde_json::Value>(
            &jwt,
            &jsonwebtoken::DecodingKey::from_secret(b"another-secret-another-secret-xx"),
            &v,
        )
        .is_err());
    }
}
