//! The JS-SDK permission signature (WECOM_API.md, "JS-SDK"):
//! `sha1("jsapi_ticket=T&noncestr=N&timestamp=TS&url=URL")`, hex lowercase, raw values in that
//! order — `noncestr` in the string, `nonceStr` in the JS object.

use sha1::{Digest, Sha1};

pub fn sign(ticket: &str, noncestr: &str, timestamp: u64, url: &str) -> String {
    let mut h = Sha1::new();
    h.update(b"jsapi_ticket=");
    h.update(ticket.as_bytes());
    h.update(b"&noncestr=");
    h.update(noncestr.as_bytes());
    h.update(b"&timestamp=");
    h.update(timestamp.to_string().as_bytes());
    h.update(b"&url=");
    h.update(url.as_bytes());
    hex::encode(h.finalize())
}

/// The URL that is signed: the page URL without `#` and what follows (the client never sends
/// the fragment to WeCom's check either).
pub fn signed_url(page_url: &str) -> &str {
    page_url.split('#').next().unwrap_or(page_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_vector() {
        let sig = sign(
            "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
            "Wm3WZYTPz0wzccnW",
            1414587457,
            "http://mp.weixin.qq.com?params=value",
        );
        assert_eq!(sig, "0f9de62fce790f9a083d5c99e95740ceb90c27ed");
    }

    #[test]
    fn fragment_is_never_signed() {
        let cases = [
            ("http://a/b?x=1#/customer/42", "http://a/b?x=1"),
            ("http://a/b#", "http://a/b"),
            ("http://a/b", "http://a/b"),
            ("http://a/#/x#y", "http://a/"),
        ];
        for (page, want) in cases {
            assert_eq!(signed_url(page), want, "{page}");
        }
    }
}
