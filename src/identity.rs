//! Who the request is, once verified, and how the upstream is told (SPEC section 7).

use pingora::http::RequestHeader;

use crate::headers::{sent, Sent};

/// A verified identity. Only the login and external-contact steps create one; the client can
/// never contribute a field (its copies of these headers are stripped first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub corp_id: Option<String>,
    pub agent_id: Option<u64>,
    pub userid: Option<String>,
    pub openid: Option<String>,
    pub wechat_app_id: Option<String>,
    pub unionid: Option<String>,
    /// A service-provider app's member as the provider sees them (SPEC section 20).
    pub open_userid: Option<String>,
    pub external_userid: Option<String>,
    pub external_unionid: Option<String>,
}

pub use crate::domain::is_plain_id;

impl Identity {
    /// Writes the identity headers after the request's own (the caller has taken any other
    /// copy out of the map: `headers::strip_set`). Values were checked with [`is_plain_id`]
    /// when the identity was built, so this cannot fail on them; if it did, the request fails
    /// rather than go on without a header it should carry.
    pub fn apply(&self, req: &mut RequestHeader) -> pingora::Result<()> {
        let mut done = Ok(());
        self.each(|(name, _), v| {
            if done.is_ok() {
                done = req.append_wire_header(&name, v.as_bytes());
            }
        });
        done
    }

    /// Each identity header and its value, as `apply` sets them upstream and the forward-auth
    /// answer (SPEC section 19) hands them to nginx.
    pub fn each(&self, mut set: impl FnMut(Sent, &str)) {
        let mut set = |name: Sent, v: Option<&str>| {
            if let Some(v) = v {
                set(name, v);
            }
        };
        let mut digits = itoa::Buffer::new();
        let agent = self.agent_id.map(|a| digits.format(a));
        if self.wechat_app_id.is_some() {
            set(sent::X_WECHAT_APPID, self.wechat_app_id.as_deref());
            set(sent::X_WECHAT_OPENID, self.openid.as_deref());
            set(sent::X_WECHAT_UNIONID, self.unionid.as_deref());
        } else {
            set(sent::X_WECOM_CORPID, self.corp_id.as_deref());
            set(sent::X_WECOM_AGENTID, agent);
            set(sent::X_WECOM_USERID, self.userid.as_deref());
            set(sent::X_WECOM_OPENID, self.openid.as_deref());
            set(sent::X_WECOM_OPENUSERID, self.open_userid.as_deref());
        }
        set(
            sent::X_WECOM_EXTERNAL_USERID,
            self.external_userid.as_deref(),
        );
        set(
            sent::X_WECOM_EXTERNAL_UNIONID,
            self.external_unionid.as_deref(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids() {
        for ok in [
            "zhangsan",
            "wmEmuCustomer001",
            "oEmuUnion001",
            "ww1234567890abcdef",
            "a.b-c_d",
        ] {
            assert!(is_plain_id(ok), "{ok}");
        }
        for bad in ["", "张三", "a b", "a\r\nX-Evil: 1", "a\"b", "a;b"] {
            assert!(!is_plain_id(bad), "{bad:?}");
        }
    }
}
