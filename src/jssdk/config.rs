//! The `wx.config` / `wx.agentConfig` payloads of `{prefix}/jssdk/config` (SPEC section 9).
//!
//! The URL that is signed is the page's `location.href` exactly as the browser holds it, minus
//! the fragment: the JS-SDK signs its own copy of that string, so the gateway must not
//! normalise, decode or re-encode it (`&amp;` left in a URL stays `&amp;`). It is checked, not
//! rewritten: absolute, on `public_url`'s origin, no userinfo, nothing a parser would drop.

use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Value};
use url::Url;

use super::signature::{sign, signed_url};

/// Longer than any page URL a sidebar has; keeps a hostile query out of the hash input.
const MAX_URL_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageUrlRejected {
    Empty,
    TooLong,
    /// Whitespace, a control character or a backslash: a browser's `location.href` has none,
    /// and URL parsers silently drop or reinterpret them.
    Suspicious,
    /// Not an absolute http(s) URL (a path, `//host`, garbage).
    NotAbsolute,
    Userinfo,
    OtherOrigin,
}

impl PageUrlRejected {
    pub fn describe(self) -> &'static str {
        match self {
            PageUrlRejected::Empty => "url is missing",
            PageUrlRejected::TooLong => "url is too long",
            PageUrlRejected::Suspicious => {
                "url contains whitespace or control characters, or '\\' before its path"
            }
            PageUrlRejected::NotAbsolute => "url must be the page's absolute location.href",
            PageUrlRejected::Userinfo => "url must not carry userinfo",
            PageUrlRejected::OtherOrigin => "url is not on this gateway's public origin",
        }
    }
}

/// The string to sign for the page at `raw`: `raw` up to its `#`, once it is known to be a
/// page of `public_url`'s origin.
pub fn page_url<'a>(raw: &'a str, public_url: &Url) -> Result<&'a str, PageUrlRejected> {
    if raw.is_empty() {
        return Err(PageUrlRejected::Empty);
    }
    if raw.len() > MAX_URL_LEN {
        return Err(PageUrlRejected::TooLong);
    }
    // A backslash before the path would move the host for some parsers (`https://a\@b/`);
    // within the path or the query (Chrome keeps `/p/?a=\b` as typed in `location.href`) it
    // moves nothing, and the page is signed as it is.
    let path_at = raw.find("://").map_or(raw.len(), |i| {
        i + 3 + raw[i + 3..].find(['/', '?']).unwrap_or(raw.len() - i - 3)
    });
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) || raw[..path_at].contains('\\') {
        return Err(PageUrlRejected::Suspicious);
    }
    let signed = signed_url(raw);
    let authority = signed
        .split_once("://")
        .map(|(_, after)| after.split(['/', '?']).next().unwrap_or(""));
    let Some(authority) = authority else {
        return Err(PageUrlRejected::NotAbsolute);
    };
    // Refused on the raw text too: parsers disagree on where userinfo ends.
    if authority.contains('@') {
        return Err(PageUrlRejected::Userinfo);
    }
    let url = Url::parse(signed).map_err(|_| PageUrlRejected::NotAbsolute)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(PageUrlRejected::NotAbsolute);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(PageUrlRejected::Userinfo);
    }
    if url.origin() != public_url.origin() {
        return Err(PageUrlRejected::OtherOrigin);
    }
    Ok(signed)
}

/// `nonceStr`: 16 letters and digits, fresh for every payload.
pub fn nonce() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 16)
}

/// One signed payload: what `wx.config` and `wx.agentConfig` share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub timestamp: u64,
    pub nonce_str: String,
    pub signature: String,
}

impl Signed {
    pub fn new(ticket: &str, url: &str, timestamp: u64, nonce_str: String) -> Signed {
        Signed {
            signature: sign(ticket, &nonce_str, timestamp, url),
            timestamp,
            nonce_str,
        }
    }
}

/// A WeCom app: `config` with the corp ticket, `agentConfig` with the agent ticket. The agent
/// id is a string, as WeCom's own examples pass it.
pub fn wecom_payload(corp_id: &str, agent_id: u64, config: &Signed, agent: &Signed) -> Value {
    json!({
        "config": {
            "beta": true,
            "appId": corp_id,
            "timestamp": config.timestamp,
            "nonceStr": config.nonce_str,
            "signature": config.signature,
        },
        "agentConfig": {
            "corpid": corp_id,
            "agentid": agent_id.to_string(),
            "timestamp": agent.timestamp,
            "nonceStr": agent.nonce_str,
            "signature": agent.signature,
        },
    })
}

/// An Official Account: `wx.config` only, signed with its jsapi ticket.
pub fn wechat_payload(app_id: &str, config: &Signed) -> Value {
    json!({
        "config": {
            "appId": app_id,
            "timestamp": config.timestamp,
            "nonceStr": config.nonce_str,
            "signature": config.signature,
        },
    })
}

/// Which payload a page reports as refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    Config,
    AgentConfig,
}

/// `stale=KIND.TIMESTAMP.NONCE.SIGNATURE`: a payload the JS-SDK refused with
/// `invalid signature`. WeCom may drop a ticket before its `expires_in`; the page's failure is
/// the only sign of it. The gateway replaces its ticket only when the report was signed with
/// the ticket it holds now (compare-and-expire), so old or forged reports fetch nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleReport {
    pub kind: PayloadKind,
    pub timestamp: u64,
    pub nonce_str: String,
    pub signature: String,
}

impl StaleReport {
    pub fn parse(s: &str) -> Option<StaleReport> {
        let mut parts = s.split('.');
        let kind = match parts.next()? {
            "config" => PayloadKind::Config,
            "agentConfig" => PayloadKind::AgentConfig,
            _ => return None,
        };
        let timestamp = parts.next()?.parse().ok()?;
        let nonce_str = parts.next()?;
        let signature = parts.next()?;
        let plain = |v: &str, max| {
            (1..=max).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric())
        };
        if parts.next().is_some() || !plain(nonce_str, 32) || !plain(signature, 40) {
            return None;
        }
        Some(StaleReport {
            kind,
            timestamp,
            nonce_str: nonce_str.to_owned(),
            signature: signature.to_ascii_lowercase(),
        })
    }

    /// Was the refused payload signed with `ticket` for `url`?
    pub fn signed_with(&self, ticket: &str, url: &str) -> bool {
        sign(ticket, &self.nonce_str, self.timestamp, url) == self.signature
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_url_table() {
        let public = Url::parse("https://crm.example.com").unwrap();
        use PageUrlRejected::*;
        let cases: &[(&str, Result<&str, PageUrlRejected>)] = &[
            (
                "https://crm.example.com/sidebar/",
                Ok("https://crm.example.com/sidebar/"),
            ),
            ("https://crm.example.com", Ok("https://crm.example.com")),
            (
                "https://crm.example.com/s?a=1#/customer/42?tab=1",
                Ok("https://crm.example.com/s?a=1"),
            ),
            (
                "https://crm.example.com/s#",
                Ok("https://crm.example.com/s"),
            ),
            // Kept raw: the JS-SDK signs the string the browser holds, `&amp;` and all.
            (
                "https://crm.example.com/s?a=1&amp;b=2",
                Ok("https://crm.example.com/s?a=1&amp;b=2"),
            ),
            (
                "https://crm.example.com/s?q=%E5%BC%A0",
                Ok("https://crm.example.com/s?q=%E5%BC%A0"),
            ),
            (
                "https://crm.example.com:443/s",
                Ok("https://crm.example.com:443/s"),
            ),
            ("https://evil.example.com/s", Err(OtherOrigin)),
            ("https://crm.example.com.evil.com/s", Err(OtherOrigin)),
            ("https://crm.example.com:8443/s", Err(OtherOrigin)),
            ("http://crm.example.com/s", Err(OtherOrigin)),
            ("https://user@crm.example.com/s", Err(Userinfo)),
            ("https://crm.example.com@evil.com/s", Err(Userinfo)),
            ("https://a:b@crm.example.com/s", Err(Userinfo)),
            ("/sidebar/", Err(NotAbsolute)),
            ("//crm.example.com/s", Err(NotAbsolute)),
            ("sidebar", Err(NotAbsolute)),
            (
                "javascript:alert(1)//https://crm.example.com/",
                Err(NotAbsolute),
            ),
            ("ftp://crm.example.com/s", Err(NotAbsolute)),
            // A backslash in the path or query is the page's own (Chrome keeps it); before the
            // path it could move the host.
            (
                "https://crm.example.com/s\\x?a=\\b",
                Ok("https://crm.example.com/s\\x?a=\\b"),
            ),
            ("https://crm.example.com\\@evil.com/s", Err(Suspicious)),
            ("https://crm.example.com\\s", Err(Suspicious)),
            ("https://crm.example.com/s x", Err(Suspicious)),
            ("https://crm.example.com/s\n", Err(Suspicious)),
            (" https://crm.example.com/s", Err(Suspicious)),
            ("", Err(Empty)),
        ];
        for (raw, want) in cases {
            assert_eq!(page_url(raw, &public), *want, "{raw:?}");
        }
        let long = format!("https://crm.example.com/{}", "a".repeat(5000));
        assert_eq!(page_url(&long, &public), Err(TooLong));
        let local = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            page_url("http://127.0.0.1:8080/sidebar/#/x", &local),
            Ok("http://127.0.0.1:8080/sidebar/")
        );
        assert_eq!(page_url("http://127.0.0.1:8081/", &local), Err(OtherOrigin));
        assert_eq!(page_url("http://localhost:8080/", &local), Err(OtherOrigin));
    }

    const TICKET: &str =
        "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg";

    #[test]
    fn wecom_payload_carries_both_signatures_with_the_official_vector() {
        let url = "http://mp.weixin.qq.com?params=value";
        let c = Signed::new(TICKET, url, 1414587457, "Wm3WZYTPz0wzccnW".into());
        let a = Signed::new("agent-ticket", url, 1414587457, "N0nce".into());
        let v = wecom_payload("ww1", 1000010, &c, &a);
        assert_eq!(
            v["config"],
            json!({"beta": true, "appId": "ww1", "timestamp": 1414587457,
                   "nonceStr": "Wm3WZYTPz0wzccnW",
                   "signature": "0f9de62fce790f9a083d5c99e95740ceb90c27ed"})
        );
        assert_eq!(v["agentConfig"]["corpid"], "ww1");
        assert_eq!(
            v["agentConfig"]["agentid"], "1000010",
            "a string, as WeCom shows it"
        );
        assert_eq!(v["agentConfig"]["nonceStr"], "N0nce");
        assert_eq!(
            v["agentConfig"]["signature"],
            sign("agent-ticket", "N0nce", 1414587457, url)
        );
        let mp = wechat_payload("wx1", &c);
        assert_eq!(mp["config"]["appId"], "wx1");
        assert!(mp.get("agentConfig").is_none() && mp["config"].get("beta").is_none());
    }

    #[test]
    fn nonces_are_16_alphanumerics_and_differ() {
        let (a, b) = (nonce(), nonce());
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn stale_reports() {
        let url = "http://mp.weixin.qq.com?params=value";
        let r = StaleReport::parse(
            "config.1414587457.Wm3WZYTPz0wzccnW.0f9de62fce790f9a083d5c99e95740ceb90c27ed",
        )
        .unwrap();
        assert_eq!(r.kind, PayloadKind::Config);
        assert!(r.signed_with(TICKET, url));
        assert!(!r.signed_with("another-ticket", url));
        assert!(!r.signed_with(TICKET, "http://mp.weixin.qq.com?params=other"));
        assert_eq!(
            StaleReport::parse("agentConfig.1.n.ABCDEF").map(|r| (r.kind, r.signature)),
            Some((PayloadKind::AgentConfig, "abcdef".to_owned()))
        );
        for bad in [
            "",
            "config",
            "other.1.n.s",
            "config.x.n.s",
            "config.1..s",
            "config.1.n.s.extra",
            "config.1.n-n.s",
            "config.1.n.0f9de62fce790f9a083d5c99e95740ceb90c27ed00",
        ] {
            assert_eq!(StaleReport::parse(bad), None, "{bad:?}");
        }
    }
}
