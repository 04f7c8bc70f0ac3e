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
