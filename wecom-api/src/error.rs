//! What can go wrong when calling WeCom or WeChat, as values. The gateway turns them into
//! answers in one place of its own; this crate never writes HTTP answers.

/// A call, a token fetch or the store under the cache failed.
///
/// Deliberately without the request URL: it holds the token (reqwest errors are stripped of it
/// before they become one of these).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// WeCom or WeChat answered with this errcode (a refused gettoken: 40001 bad secret,
    /// 40013 bad corp id, 60020 untrusted IP ...). A call that reached its API and got an
    /// errcode back is not an error: it is an [`crate::ApiResponse`].
    /// `errmsg` is the provider's text: shown without control characters and cut (a line
    /// break in it would forge a log line of its own).
    #[error("provider answered errcode {errcode}: {}", shown(.errmsg))]
    Api { errcode: i64, errmsg: String },
    #[error("provider did not answer in time")]
    Timeout,
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    #[error("provider answer not understood: {0}")]
    BadAnswer(String),
    /// The call's token could not be had (its fetch timed out, found no provider, or got an
    /// answer it could not read): the call itself was never sent, so it may be made again.
    /// A refused fetch (a wrong secret's 40001) is [`ApiError::Api`], as the provider said it.
    #[error("no token for the call ({0}); the call was not sent")]
    NotSent(Box<ApiError>),
}

/// What a refused token fetch's errcode asks of whoever configures the app (WECOM_API.md's
/// codes), in the terms of WeCom's admin console; `None` for a code no setting changes.
pub fn advice(errcode: i64, kind: crate::TokenKind) -> Option<&'static str> {
    use crate::TokenKind::Contact;
    Some(match (errcode, kind) {
        (40001, Contact) => {
            "the customer-contact secret is not the corp's current one (客户联系 → API → \
             Secret; a reset one must be configured again)"
        }
        (40001, _) => {
            "the secret is not the app's current one (应用管理 → the app → Secret; a reset one \
             must be configured again)"
        }
        (40013, _) => {
            "the corp id or appid is not the one the console shows (WeCom: 我的企业 → 企业信息 → \
             企业ID; WeChat: 设置与开发 → 基本配置 → AppID)"
        }
        (60020, _) => {
            "this host's address is not among the app's trusted IPs (应用管理 → the app → \
             企业可信IP); WeCom's message names the address it saw"
        }
        (40164, _) => {
            "this host's address is not in the account's IP whitelist (设置与开发 → 基本配置 → \
             IP白名单)"
        }
        (40125, _) => "the AppSecret is not the account's current one (设置与开发 → 基本配置)",
        (45009, _) => {
            "fetched too often for the provider's limit: instances that share no store each \
             fetch their own"
        }
        _ => return None,
    })
}

/// A provider's text as it may be written anywhere: no control characters, 300 at most.
fn shown(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect()
}

impl ApiError {
    /// The errcode when the provider gave one.
    pub fn errcode(&self) -> Option<i64> {
        match self.root() {
            ApiError::Api { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }

    /// What went wrong, whether or not the call was sent.
    pub fn root(&self) -> &ApiError {
        match self {
            ApiError::NotSent(e) => e.root(),
            e => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider's errmsg with a line break would write a log line of its own.
    #[test]
    fn a_providers_text_is_shown_on_one_line_and_cut() {
        let e = ApiError::Api {
            errcode: 40001,
            errmsg: "bad\nFAKE level=ERROR\r\u{1b}[31m".into(),
        };
        assert_eq!(
            e.to_string(),
            "provider answered errcode 40001: bad FAKE level=ERROR  [31m"
        );
        let long = ApiError::Api {
            errcode: 1,
            errmsg: "x".repeat(1000),
        };
        assert!(long.to_string().len() < 350);
    }
}
