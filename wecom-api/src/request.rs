//! One API call as the caller writes it, and the answer as it came back.

use bytes::Bytes;

use crate::error::ApiError;

/// A call without its token: the stack puts the token in front of `query` on each try.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: http::Method,
    /// `/cgi-bin/user/get`
    pub path: String,
    /// Without `access_token`, in the caller's order.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl ApiRequest {
    pub fn get(path: &str, query: &[(&str, &str)]) -> ApiRequest {
        ApiRequest {
            method: http::Method::GET,
            path: path.to_owned(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn post_json(path: &str, body: &serde_json::Value) -> ApiRequest {
        ApiRequest {
            method: http::Method::POST,
            path: path.to_owned(),
            query: Vec::new(),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: serde_json::to_vec(body).unwrap_or_default().into(),
        }
    }
}

/// The provider's answer, whatever its errcode: the caller decides what 60111 means.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// 0 when absent (WeChat successes, binary media).
    pub errcode: i64,
}

impl ApiResponse {
    pub fn json(&self) -> Result<serde_json::Value, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::BadAnswer(format!("not JSON (HTTP {}): {e}", self.status)))
    }
}

/// The `errcode` of a JSON object answer (a number, or a numeric string as some WeCom APIs
/// write it); 0 for anything else, e.g. the bytes of `media/get`.
pub fn errcode_of(body: &[u8]) -> i64 {
    #[derive(serde::Deserialize)]
    struct Errcode {
        errcode: Option<serde_json::Value>,
    }
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    if start.map(|i| body[i]) != Some(b'{') {
        return 0;
    }
    match serde_json::from_slice::<Errcode>(body)
        .ok()
        .and_then(|e| e.errcode)
    {
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// `{base}{path}?{param}=T&other=params`, the caller's parameters in their order.
pub(crate) fn url_of(
    base: &str,
    req: &ApiRequest,
    token: Option<(&str, &str)>,
) -> Result<url::Url, ApiError> {
    let mut url = url::Url::parse(&format!("{base}{}", req.path))
        .map_err(|e| ApiError::Unreachable(format!("bad API URL: {e}")))?;
    url.set_query(None);
    if token.is_some() || !req.query.is_empty() {
        let mut q = url.query_pairs_mut();
        if let Some((param, t)) = token {
            q.append_pair(param, t);
        }
        for (k, v) in &req.query {
            q.append_pair(k, v);
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcode_of_answers() {
        let cases: &[(&str, i64)] = &[
            (r#"{"errcode":0,"errmsg":"ok"}"#, 0),
            (
                r#"{"errcode":42001,"errmsg":"access_token expired"}"#,
                42001,
            ),
            (r#"  {"errcode":-1,"errmsg":"system busy"}"#, -1),
            (r#"{"errcode":"45009"}"#, 45009),
            (r#"{"access_token":"x","expires_in":7200}"#, 0),
            (r#"{"base_resp":{"ret":0}}"#, 0),
            ("\u{ff}\u{d8}binary jpeg", 0),
            ("[1,2]", 0),
            ("", 0),
            (r#"{"errcode":40001"#, 0),
        ];
        for (body, want) in cases {
            assert_eq!(errcode_of(body.as_bytes()), *want, "{body}");
        }
    }

    #[test]
    fn url_puts_the_token_first_and_keeps_parameter_order() {
        let req = ApiRequest::get(
            "/cgi-bin/user/get",
            &[("userid", "zhang san"), ("b", "2"), ("a", "1&x=y")],
        );
        let url = url_of("http://127.0.0.1:9", &req, Some(("access_token", "T"))).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/cgi-bin/user/get?access_token=T&userid=zhang+san&b=2&a=1%26x%3Dy"
        );
        let url = url_of("https://qyapi.weixin.qq.com", &req, None).unwrap();
        assert!(url
            .as_str()
            .ends_with("/cgi-bin/user/get?userid=zhang+san&b=2&a=1%26x%3Dy"));
    }
}
