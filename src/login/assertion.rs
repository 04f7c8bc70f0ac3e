//! `X-Gateway-Assertion` (SPEC section 7): an HS256 JWT the CRM can verify with
//! `assertion_secret`, so a request that bypassed the gateway carries no valid identity.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use crate::domain::AssertionKey;
use crate::identity::Identity;

/// Short-lived: it vouches for one request, not a session.
pub const LIFETIME_SECS: u64 = 60;

/// base64url of `{"alg":"HS256","typ":"JWT"}`.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// The assertion for one request, as the header's bytes (base64url and dots: ASCII, which is
/// not checked again on its way into a header). `unionid` is the signed-in person's own (a
/// WeChat user's); the customer's is `external_unionid`, never both in one claim (SPEC
/// section 7).
pub fn sign(
    identity: &Identity,
    request_id: &str,
    now: u64,
    key: &AssertionKey,
    audience: Option<&str>,
) -> Vec<u8> {
    Prefix::new(identity, key, audience).finish(identity, request_id, now)
}

/// What every assertion of one person signed with one key for one audience begins with: the
/// header, the claims about the person (written first, before those of the request), and the
/// MAC's state after them. A session prepares it once (`SessionEntry::assertion`), so each of
/// its requests encodes and hashes only its own claims: the customer, the times, the request id.
pub struct Prefix {
    key: u64,
    audience: Option<Box<str>>,
    /// The person's claims, for [`Prefix::fits`]: compared whole, never by a hash.
    person: Identity,
    /// `header.` and the base64 of the person's claims, as far as they fill groups of 3 bytes.
    text: Vec<u8>,
    /// The JSON bytes past the last full group (0 to 2), encoded with the request's claims.
    carry: Vec<u8>,
    /// The MAC after `text`.
    mac: Hmac<Sha256>,
}

impl Prefix {
    pub fn new(identity: &Identity, key: &AssertionKey, audience: Option<&str>) -> Prefix {
        let sub = identity
            .userid
            .as_deref()
            .or(identity.openid.as_deref())
            .unwrap_or_default();
        // The claims of SPEC section 7, written straight into bytes (no intermediate tree, no
        // serializer); absent values are `null`, so the shape never varies.
        let mut claims = Claims::new(Vec::with_capacity(256));
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
        if let Some(app_id) = identity.wechat_app_id.as_deref() {
            claims.string("app_id", Some(app_id));
        }
        if let Some(aud) = audience {
            claims.string("aud", Some(aud));
        }
        let json = claims.buf;
        let whole = json.len() / 3 * 3;
        let mut text = Vec::with_capacity(HEADER_B64.len() + 1 + unpadded_len(whole));
        text.extend_from_slice(HEADER_B64.as_bytes());
        text.push(b'.');
        append_base64(&mut text, &json[..whole]);
        let mut mac = key.mac();
        mac.update(&text);
        Prefix {
            key: key.id(),
            audience: audience.map(Into::into),
            person: Identity {
                external_userid: None,
                external_unionid: None,
                ..identity.clone()
            },
            text,
            carry: json[whole..].to_vec(),
            mac,
        }
    }

    /// Prepared for this person, key and audience: the claims it holds are theirs.
    pub fn fits(&self, identity: &Identity, key: &AssertionKey, audience: Option<&str>) -> bool {
        let p = &self.person;
        self.key == key.id()
            && self.audience.as_deref() == audience
            && p.corp_id == identity.corp_id
            && p.agent_id == identity.agent_id
            && p.userid == identity.userid
            && p.openid == identity.openid
            && p.wechat_app_id == identity.wechat_app_id
            && p.unionid == identity.unionid
    }

    /// The assertion of one request of this person: `identity` gives the customer (the
    /// person's own claims are the prefix's).
    pub fn finish(&self, identity: &Identity, request_id: &str, now: u64) -> Vec<u8> {
        let mut claims = Claims::new(Vec::with_capacity(160));
        claims.buf.extend_from_slice(&self.carry);
        claims.first = false;
        claims.string("external_userid", identity.external_userid.as_deref());
        claims.string("external_unionid", identity.external_unionid.as_deref());
        claims.number("iat", now);
        claims.number("exp", now + LIFETIME_SECS);
        claims.string("rid", Some(request_id));
        claims.buf.push(b'}');
        let rest = claims.buf;
        // Encoded straight into the token's bytes (base64's `encode_string` goes through a
        // chunked writer, twice the work for a few hundred bytes), sized exactly: the header
        // becomes a `Bytes` that adopts a full buffer as it is, where spare room costs another
        // allocation.
        let mut token =
            Vec::with_capacity(self.text.len() + unpadded_len(rest.len()) + 1 + unpadded_len(32));
        token.extend_from_slice(&self.text);
        append_base64(&mut token, &rest);
        let mut mac = self.mac.clone();
        mac.update(&token[self.text.len()..]);
        token.push(b'.');
        append_base64(&mut token, &mac.finalize().into_bytes());
        debug_assert_eq!(token.len(), token.capacity());
        debug_assert!(token.is_ascii());
        token
    }
}

/// The length of `n` bytes in base64 without padding.
fn unpadded_len(n: usize) -> usize {
    n / 3 * 4 + [0, 2, 3][n % 3]
}

/// base64url's alphabet (RFC 4648 section 5).
const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The two symbols of every 12 bits (8 KiB, built at compile time): three bytes are two
/// lookups.
static PAIRS: [[u8; 2]; 4096] = {
    let mut t = [[0; 2]; 4096];
    let mut i = 0;
    while i < 4096 {
        t[i] = [BASE64URL[i >> 6], BASE64URL[i & 63]];
        i += 1;
    }
    t
};

/// `bytes` in base64url without padding, appended to `out`: six bytes are four lookups and one
/// store. Written here rather than through the `base64` crate's engine, whose chunked encoder
/// spent ~7 instructions a byte on the few hundred bytes a request signs (the tests hold the
/// two to the same output).
fn append_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    out.resize(start + unpadded_len(bytes.len()), 0);
    let pair = |n: u64| u64::from(u16::from_le_bytes(PAIRS[(n & 0xfff) as usize]));
    let sixes = bytes.chunks_exact(6);
    let rest = sixes.remainder();
    let mut dst = out[start..].chunks_exact_mut(8);
    for (g, d) in sixes.zip(&mut dst) {
        let n = u64::from(u32::from_be_bytes([g[0], g[1], g[2], g[3]])) << 16
            | u64::from(u16::from_be_bytes([g[4], g[5]]));
        let w = pair(n >> 36) | pair(n >> 24) << 16 | pair(n >> 12) << 32 | pair(n) << 48;
        d.copy_from_slice(&w.to_le_bytes());
    }
    let tail = dst.into_remainder();
    let (three, rest) = rest.split_at(rest.len() / 3 * 3);
    let (head, tail) = tail.split_at_mut(three.len() / 3 * 4);
    if let [a, b, c] = *three {
        let n = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
        let (hi, lo) = (PAIRS[n >> 12], PAIRS[n & 0xfff]);
        head.copy_from_slice(&[hi[0], hi[1], lo[0], lo[1]]);
    }
    match *rest {
        [a] => tail.copy_from_slice(&PAIRS[usize::from(a) << 4]),
        [a, b] => {
            let n = usize::from(a) << 16 | usize::from(b) << 8;
            let (hi, lo) = (PAIRS[n >> 12], PAIRS[n & 0xfff]);
            tail.copy_from_slice(&[hi[0], hi[1], lo[0]]);
        }
        _ => debug_assert!(tail.is_empty()),
    }
}

/// A JSON object being written, one member at a time.
struct Claims {
    buf: Vec<u8>,
    first: bool,
}

impl Claims {
    fn new(buf: Vec<u8>) -> Claims {
        Claims { buf, first: true }
    }

    /// `name` is one of the claim names written in this file: plain ASCII, nothing to escape.
    fn key(&mut self, name: &'static str) {
        debug_assert!(name.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'));
        self.buf.push(if self.first { b'{' } else { b',' });
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    fn string(&mut self, name: &'static str, value: Option<&str>) {
        self.key(name);
        match value {
            Some(v) => crate::text::escaped(&mut self.buf, v, true),
            None => self.buf.extend_from_slice(b"null"),
        }
    }

    fn number(&mut self, name: &'static str, value: u64) {
        self.key(name);
        crate::text::decimal(&mut self.buf, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    /// An assertion as text; that it is ASCII is part of what is checked.
    fn text(token: Vec<u8>) -> String {
        String::from_utf8(token).expect("an assertion is ASCII")
    }

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
    fn encodes_as_the_base64_crate_does() {
        // Every length up to 260 (each remainder, many groups), over bytes that reach every
        // symbol, appended after what the buffer already holds.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for n in 0..260 {
            let bytes: Vec<u8> = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let mut out = b"head.".to_vec();
            append_base64(&mut out, &bytes);
            assert_eq!(out[..5], *b"head.");
            assert_eq!(
                std::str::from_utf8(&out[5..]).unwrap(),
                URL_SAFE_NO_PAD.encode(&bytes),
                "{n} bytes"
            );
        }
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        append_base64(&mut out, &all);
        assert_eq!(out, URL_SAFE_NO_PAD.encode(&all).into_bytes());
    }

    /// What a prepared prefix finishes verifies with an independent library and holds exactly
    /// the claims asked for, for claims of every length modulo 3 (the bytes carried past the
    /// prefix's last full group), with and without a customer; and a prefix serves only its
    /// own person, key and audience.
    #[test]
    fn a_prepared_prefix_finishes_valid_assertions() {
        let key = AssertionKey::new(b"0123456789abcdef0123456789abcdef");
        let mut carries = std::collections::BTreeSet::new();
        for name in ["z", "zh", "zha", "zhangsan", "zhangsan1", "zhangsan12"] {
            let person = Identity {
                corp_id: Some("ww1".into()),
                agent_id: Some(1000002),
                userid: Some(name.into()),
                ..Identity::default()
            };
            let prefix = Prefix::new(&person, &key, Some("crm"));
            carries.insert(prefix.carry.len());
            for (external, union, rid) in [
                (None, None, "rid-1"),
                (Some("wmCustomer"), Some("oUnion"), "rid-2"),
                (Some("wmOther\"\n"), None, "rid-3"),
            ] {
                let asked = Identity {
                    external_userid: external.map(Into::into),
                    external_unionid: union.map(Into::into),
                    ..person.clone()
                };
                assert!(prefix.fits(&asked, &key, Some("crm")));
                let now = crate::clock::now_secs();
                let jwt = text(prefix.finish(&asked, rid, now));
                let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
                v.set_audience(&["crm"]);
                let c = jsonwebtoken::decode::<serde_json::Value>(
                    &jwt,
                    &jsonwebtoken::DecodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
                    &v,
                )
                .unwrap_or_else(|e| panic!("{name} {external:?}: {e}"))
                .claims;
                let expected = serde_json::json!({
                    "iss": "wecom-gateway", "sub": name, "corp_id": "ww1", "agent_id": 1000002,
                    "userid": name, "openid": null, "unionid": null,
                    "external_userid": external, "external_unionid": union,
                    "iat": now, "exp": now + 60, "rid": rid, "aud": "crm"
                });
                assert_eq!(c, expected);
            }
            let other = Identity {
                userid: Some(format!("{name}x")),
                ..person.clone()
            };
            assert!(!prefix.fits(&other, &key, Some("crm")), "another person");
            assert!(!prefix.fits(&person, &key, None), "another audience");
            let same_secret = AssertionKey::new(b"0123456789abcdef0123456789abcdef");
            assert!(
                !prefix.fits(&person, &same_secret, Some("crm")),
                "another key"
            );
            assert!(
                prefix.fits(&person, &key.clone(), Some("crm")),
                "a copy of the key"
            );
        }
        assert_eq!(carries.len(), 3, "every carry length met: {carries:?}");
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
        let jwt = text(sign(
            &id,
            "rid-1",
            now,
            &AssertionKey::new(b"0123456789abcdef0123456789abcdef"),
            Some("crm"),
        ));
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
        let jwt = text(sign(&id, "rid-2", 1_700_000_000, &key, Some("c\"r\\m\n")));
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
        let without_aud = text(sign(&Identity::default(), "r", 1, &key, None));
        let body = without_aud.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        assert!(claims.get("aud").is_none() && claims.get("app_id").is_none());
        assert_eq!(claims["sub"], "");
    }
}
