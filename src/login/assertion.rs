//! `X-Gateway-Assertion` (SPEC section 7): an HS256 JWT the CRM can verify with
//! `assertion_secret`, so a request that bypassed the gateway carries no valid identity.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;

pub use crate::domain::AssertionKey;
use crate::identity::Identity;

/// Short-lived: it vouches for one request, not a session.
pub const LIFETIME_SECS: u64 = 60;

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
    let sub = identity
        .userid
        .as_deref()
        .or(identity.openid.as_deref())
        .unwrap_or_default();
    // The claims of SPEC section 7, written straight into bytes (no intermediate tree, no
    // serializer); absent values are `null`, so the shape never varies.
    let mut claims = Claims(Vec::with_capacity(384));
    claims.string("iss", Some("wecom-gateway"));
    claims.string("sub", Some(sub));
    claims.string("corp_id", identity.corp_id.as_deref());
    match identity.agent_id {
        Some(agent) => claims.number("agent_id", agent),
        None => claims.string("agent_id", None),
    }
    claims.string("userid", identity.userid.as_deref());
    claims.string("openid", identity.openid.as_deref());
    claims.string("unionid", identity.unionid.as_deref());
    claims.string("external_userid", identity.external_userid.as_deref());
    claims.string("external_unionid", identity.external_unionid.as_deref());
    claims.number("iat", now);
    claims.number("exp", now + LIFETIME_SECS);
    claims.string("rid", Some(request_id));
    if let Some(app_id) = identity.wechat_app_id.as_deref() {
        claims.string("app_id", Some(app_id));
    }
    if let Some(aud) = audience {
        claims.string("aud", Some(aud));
    }
    claims.0.push(b'}');
    let json = claims.0;
    // Encoded straight into the token's bytes (base64's `encode_string` goes through a chunked
    // writer, twice the work for a few hundred bytes), sized exactly: the header becomes a
    // `Bytes` that adopts a full buffer as it is, where spare room costs another allocation.
    let mut token =
        Vec::with_capacity(HEADER_B64.len() + 1 + unpadded_len(json.len()) + 1 + unpadded_len(32));
    token.extend_from_slice(HEADER_B64.as_bytes());
    token.push(b'.');
    append_base64(&mut token, &json);
    let mut mac = key.mac();
    mac.update(&token);
    token.push(b'.');
    append_base64(&mut token, &mac.finalize().into_bytes());
    debug_assert_eq!(token.len(), token.capacity());
    String::from_utf8(token).expect("base64url and a dot are ASCII")
}

/// The length of `n` bytes in base64 without padding.
fn unpadded_len(n: usize) -> usize {
    n / 3 * 4 + [0, 2, 3][n % 3]
}

fn append_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    let len = unpadded_len(bytes.len());
    out.resize(start + len, 0);
    let written = URL_SAFE_NO_PAD
        .encode_slice(bytes, &mut out[start..])
        .expect("room for the unpadded encoding");
    debug_assert_eq!(written, len);
}

/// A JSON object being written, one member at a time.
struct Claims(Vec<u8>);

impl Claims {
    /// `name` is one of the claim names written in this file: plain ASCII, nothing to escape.
    fn key(&mut self, name: &'static str) {
        debug_assert!(name.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'));
        self.0.push(if self.0.is_empty() { b'{' } else { b',' });
        self.0.push(b'"');
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b"\":");
    }

    fn string(&mut self, name: &'static str, value: Option<&str>) {
        self.key(name);
        match value {
            Some(v) => crate::text::escaped(&mut self.0, v, true),
            None => self.0.extend_from_slice(b"null"),
        }
    }

    fn number(&mut self, name: &'static str, value: u64) {
        self.key(name);
        crate::text::decimal(&mut self.0, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpadded_lengths_are_base64s() {
        for n in 0..200 {
            assert_eq!(
                Some(unpadded_len(n)),
                base64::encoded_len(n, false),
                "{n} bytes"
            );
        }
    }

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

    #[test]
    fn the_claims_are_exactly_those_of_the_spec_and_escaped() {
        let id = Identity {
            openid: Some("oWechat".into()),
            wechat_app_id: Some("wxApp".into()),
            unionid: Some("oUnion".into()),
            ..Identity::default()
        };
        let key = AssertionKey::new(b"k");
        let jwt = sign(&id, "rid-2", 1_700_000_000, &key, Some("c\"r\\m\n"));
        let mut parts = jwt.split('.');
        let (head, body, sig) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert!(parts.next().is_none());
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "wecom-gateway", "sub": "oWechat", "corp_id": null, "agent_id": null,
                "userid": null, "openid": "oWechat", "unionid": "oUnion",
                "external_userid": null, "external_unionid": null,
                "iat": 1_700_000_000u64, "exp": 1_700_000_060u64, "rid": "rid-2",
                "app_id": "wxApp", "aud": "c\"r\\m\n"
            })
        );
        let mut mac = key.mac();
        mac.update(format!("{head}.{body}").as_bytes());
        assert_eq!(
            URL_SAFE_NO_PAD.decode(sig).unwrap(),
            mac.finalize().into_bytes().to_vec()
        );
        let without_aud = sign(&Identity::default(), "r", 1, &key, None);
        let body = without_aud.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        assert!(claims.get("aud").is_none() && claims.get("app_id").is_none());
        assert_eq!(claims["sub"], "");
    }
}
