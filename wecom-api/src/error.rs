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
    #[error("provider answered errcode {errcode}: {errmsg}")]
    Api { errcode: i64, errmsg: String },
    #[error("provider did not answer in time")]
    Timeout,
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    #[error("provider answer not understood: {0}")]
    BadAnswer(String),
}

impl ApiError {
    /// The errcode when the provider gave one.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            ApiError::Api { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }
}
