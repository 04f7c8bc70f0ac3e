//! `X-Gateway-Assertion` (SPEC section 7): an HS256 JWT the CRM can verify with
//! `assertion_secret`, so a request that bypassed the gateway carries no valid identity.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;

pub use crate::domain::AssertionKey;
use crate::identity::Identity;

/// Short-lived: it vouches for one request, not a session.
pub const LIFETIME_SECS: u64 = 60;

/// The claims of SPEC section 7, borrowed from the identity: serialised straight into the
/// token, no intermediate JSON tree. Absent values are `null`, so the shape never varies.
#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'static str,
    sub: &'a str,
    corp_id: Option<&'a str>,
    agent_id: Option<u64>,
    userid: Option<&'a str>,
    openid: Option<&'a str>,
    unionid: Option<&'a str>,
    external_userid: Option<&'a str>,
    external_unionid: Option<&'a str>,
    iat: u64,
    exp: u64,
    rid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// base64url of `{"alg":"HS256","typ":"JWT"}`.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// The assertion for one request. `unionid` is the signed-in person's own (a WeChat user's);
/// the customer's is `external_unionid`, never both in one claim (SPEC section 7).
pub fn sign(
    identity: &Identity,
    request_id: &str,
    now: u64,
    key: &AssertionKey,
    audience: Option<&str>,
) -> String {
    let claims = Claims {
        iss: "wecom-gateway",
        sub: identity
            .userid
            .as_deref()
            .or(identity.openid.as_deref())
            .unwrap_or_default(),
        corp_id: identity.corp_id.as_deref(),
        agent_id: identity.agent_id,
        userid: identity.userid.as_deref(),
        openid: identity.openid.as_deref(),
        unionid: identity.unionid.as_deref(),
        external_userid: identity.external_userid.as_deref(),
        external_unionid: identity.external_unionid.as_deref(),
        iat: now,
        exp: now + LIFETIME_SECS,
        rid: request_id,
        app_id: identity.wechat_app_id.as_deref(),
        aud: audience,
    };
    let json = serde_json::to_vec(&claims).expect("claims serialise");
    let mut token = String::with_capacity(HEADER_B64.len() + json.len() * 4 / 3 + 48);
    token.push_str(HEADER_B64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&json, &mut token);
    let mut mac = key.mac();
    mac.update(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
    token
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
            external_userid: Some("wmCustomer".into()),
            external_unionid: Some("oCustomerUnion".into()),
            ..Identity::default()
        };
        let now = crate::clock::now_secs();
        let jwt = sign(
            &id,
            "rid-1",
            now,
            &AssertionKey::new(b"0123456789abcdef0123456789abcdef"),
            Some("crm"),
        );
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.set_issuer(&["wecom-gateway"]);
        v.set_audience(&["crm"]);
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
        assert_eq!(c["aud"], "crm");
        assert_eq!(c["unionid"], serde_json::Value::Null, "a member has none");
        assert_eq!(c["external_unionid"], "oCustomerUnion");
        assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 60);
        assert!(jsonwebtoken::decode::<serde_json::Value>(
            &jwt,
            &jsonwebtoken::DecodingKey::from_secret(b"another-secret-another-secret-xx"),
            &v,
        )
        .is_err());
    }
}
