//! One API call as the caller writes it, and the answer as it came back.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS};

use crate::error::ApiError;

/// A call without its token: the stack puts the token in front of `query` on each try.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: http::Method,
    /// `/cgi-bin/user/get`: plain path characters (the qyapi endpoint checks what it forwards).
    pub path: String,
    /// Without `access_token`, in the caller's order; form-encoded on the way out.
    pub query: Vec<(String, String)>,
    /// A query forwarded as the caller wrote it (after `query`), without `access_token`:
    /// `%20` stays `%20`, `+` stays `+`. Empty for the calls the gateway makes itself.
    pub raw_query: String,
    /// Header names and values as received: bytes, not text.
    pub headers: Vec<(HeaderName, HeaderValue)>,
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
            raw_query: String::new(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn post_json(path: &str, body: &serde_json::Value) -> ApiRequest {
        ApiRequest {
            method: http::Method::POST,
            path: path.to_owned(),
            query: Vec::new(),
            raw_query: String::new(),
            headers: vec![(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body: serde_json::to_vec(body).unwrap_or_default().into(),
        }
    }
}

/// The provider's answer, whatever its errcode: the caller decides what 60111 means.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// 0 when absent (WeChat successes, binary media).
    pub errcode: i64,
}

impl ApiResponse {
    /// The body as JSON. A key written twice in one object is no answer: the `errcode` read
    /// first ([`errcode_of`]) and every other field read last would tell two stories (a
    /// success with an error code after it; `userid` twice).
    pub fn json(&self) -> Result<serde_json::Value, ApiError> {
        let bad = |e: serde_json::Error| {
            ApiError::BadAnswer(format!("not JSON (HTTP {}): {e}", self.status))
        };
        let mut de = serde_json::Deserializer::from_slice(&self.body);
        let Unique(v) = serde::Deserialize::deserialize(&mut de).map_err(bad)?;
        de.end().map_err(bad)?;
        Ok(v)
    }
}

/// A JSON value whose objects name each key once.
struct Unique(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(out.into())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Unique(v) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "the key {key:?} is written twice"
                )));
            }
            out.insert(key, v);
        }
        Ok(out.into())
    }
}

/// What [`errcode_of`] reads for an `errcode` that is there but no integer (`"oops"`, `1.5`,
/// a number past 64 bits): an answer that says something went wrong, in a way nobody can read,
/// is never taken for a success.
pub const UNREADABLE_ERRCODE: i64 = i64::MIN;

/// Whether an answer is a file (`media/get`'s bytes, whatever they hold), not an API's
/// answer: sent as an attachment, or typed as neither JSON nor text. A file whose content is a
/// JSON object with an `errcode` (one a customer uploaded) must not be read as WeCom's word.
pub fn is_file(headers: &http::HeaderMap) -> bool {
    // Without a copy: every answer of the qyapi endpoint is asked this.
    let starts = |v: &http::HeaderValue, prefix: &[u8]| {
        let v = v.as_bytes().trim_ascii_start();
        v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    let attachment = headers
        .get(http::header::CONTENT_DISPOSITION)
        .is_some_and(|v| starts(v, b"attachment"));
    let typed_otherwise = headers.get(http::header::CONTENT_TYPE).is_some_and(|t| {
        !(t.as_bytes().trim_ascii().is_empty()
            || starts(t, b"application/json")
            || starts(t, b"text/"))
    });
    attachment || typed_otherwise
}

/// The `errcode` of a JSON object answer (a number, or a numeric string as some WeCom APIs
/// write it); 0 without one, e.g. the bytes of `media/get`; [`UNREADABLE_ERRCODE`] for one that
/// is no integer.
pub fn errcode_of(body: &[u8]) -> i64 {
    #[derive(serde::Deserialize)]
    struct Errcode {
        errcode: Option<serde_json::Value>,
    }
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    if start.map(|i| body[i]) != Some(b'{') {
        return 0;
    }
    // An object cut short (a connection that ended early, a front's truncated page) is no
    // answer: the errcode read at its start must not count it as a success.
    if body.iter().rev().find(|b| !b.is_ascii_whitespace()) != Some(&b'}') {
        return UNREADABLE_ERRCODE;
    }
    // WeCom writes `errcode` first; read it there without parsing the whole answer.
    if let Some(code) = leading_errcode(&body[start.unwrap_or(0) + 1..]) {
        return code;
    }
    match serde_json::from_slice::<Errcode>(body)
        .ok()
        .and_then(|e| e.errcode)
    {
        None | Some(serde_json::Value::Null) => 0,
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(UNREADABLE_ERRCODE),
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(UNREADABLE_ERRCODE),
        Some(_) => UNREADABLE_ERRCODE,
    }
}

/// The number of an object's first member when that member is `"errcode"` and a plain integer
/// followed by `,` or `}`; anything else is left to the full parse.
fn leading_errcode(after_brace: &[u8]) -> Option<i64> {
    let skip = |b: &[u8]| -> usize { b.iter().take_while(|c| c.is_ascii_whitespace()).count() };
    let mut rest = after_brace;
    rest = &rest[skip(rest)..];
    rest = rest.strip_prefix(b"\"errcode\"")?;
    rest = &rest[skip(rest)..];
    rest = rest.strip_prefix(b":")?;
    rest = &rest[skip(rest)..];
    let sign = usize::from(rest.first() == Some(&b'-'));
    let digits = rest[sign..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if digits == 0 || digits > 18 {
        return None;
    }
    let number = std::str::from_utf8(&rest[..sign + digits])
        .ok()?
        .parse()
        .ok()?;
    rest = &rest[sign + digits..];
    rest = &rest[skip(rest)..];
    matches!(rest.first(), Some(b',' | b'}')).then_some(number)
}

/// Bytes of a forwarded query that a request-target may not hold as they are; everything else,
/// `%XX` escapes included, goes out as the caller wrote it.
const QUERY_UNSAFE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `{base}{path}?{param}=T&other=params&raw`, written from its parts: the base is the
/// configured `api_base` (checked when the configuration was compiled), the path plain
/// characters, the parameters form-encoded in the caller's order, the raw query as written.
/// `http`'s own check of the result is the only parse, and there is no host name processing
/// (IDNA) per call.
/// Text that form-encoding leaves as it is (`application/x-www-form-urlencoded`'s byte
/// serializer keeps ASCII letters, digits and `*-._`).
pub(crate) fn form_plain(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_'))
}

pub(crate) fn uri_of(
    base: &str,
    req: &ApiRequest,
    token: Option<(&str, &str)>,
) -> Result<http::Uri, ApiError> {
    let mut uri = String::with_capacity(
        base.len() + req.path.len() + req.raw_query.len() + token.map_or(0, |(_, t)| t.len()) + 64,
    );
    uri.push_str(base);
    uri.push_str(&req.path);
    if token.is_some() || !req.query.is_empty() {
        uri.push('?');
        let start = uri.len();
        // A token is letters, digits, `-` and `_`: written as it is, it reads the same as
        // form-encoded, without encoding it byte by byte on every call.
        let token = match token {
            Some((param, t)) if form_plain(param) && form_plain(t) => {
                uri.push_str(param);
                uri.push('=');
                uri.push_str(t);
                None
            }
            other => other,
        };
        let mut q = url::form_urlencoded::Serializer::for_suffix(&mut uri, start);
        if let Some((param, t)) = token {
            q.append_pair(param, t);
        }
        for (k, v) in &req.query {
            q.append_pair(k, v);
        }
        q.finish();
    }
    if !req.raw_query.is_empty() {
        uri.push(if uri.contains('?') { '&' } else { '?' });
        uri.extend(percent_encoding::percent_encode(
            req.raw_query.as_bytes(),
            QUERY_UNSAFE,
        ));
    }
    http::Uri::try_from(uri).map_err(|e| ApiError::Unreachable(format!("bad API URL: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> ApiResponse {
        ApiResponse {
            status: 200,
            headers: vec![],
            body: Bytes::from(body.to_owned()),
            errcode: errcode_of(body.as_bytes()),
        }
    }

    /// A key written twice in one object (at any depth) is a bad answer: the errcode read first
    /// and the fields read last would say two things. Anything else reads as serde_json reads it.
    #[test]
    fn an_answer_naming_a_key_twice_is_no_answer() {
        for body in [
            r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","errcode":40029}"#,
            r#"{"errcode":0,"userid":"zhangsan","userid":"admin"}"#,
            r#"{"errcode":0,"follow_user":[{"userid":"a","userid":"b"}]}"#,
            r#"{"access_token":"A","access_token":"B"}"#,
        ] {
            assert!(
                matches!(answer(body).json(), Err(ApiError::BadAnswer(m)) if m.contains("twice")),
                "{body}"
            );
        }
        for body in [
            r#"{"errcode":0,"errmsg":"ok","a":[1,-2,3.5,true,null,"x",{"b":{"c":[]}}],"big":18446744073709551616}"#,
            r#"[{"k":1},{"k":2}]"#,
            r#""text""#,
        ] {
            let want: serde_json::Value = serde_json::from_slice(body.as_bytes()).unwrap();
            assert_eq!(answer(body).json().unwrap(), want, "{body}");
        }
        assert!(answer(r#"{"errcode":0} trailing"#).json().is_err());
        assert!(answer("").json().is_err());
    }

    #[test]
    fn a_plain_token_is_written_as_form_encoding_writes_it() {
        let mut req = ApiRequest::get("/cgi-bin/user/get", &[("userid", "zhang san")]);
        req.raw_query = "x=%20".into();
        let tokens = ["T1", "aB9-_.*", "a+b/c=d", "tok en", "~x", "汉字", ""];
        for t in tokens {
            let mut want = String::new();
            url::form_urlencoded::Serializer::new(&mut want)
                .append_pair("access_token", t)
                .append_pair("userid", "zhang san");
            let want = format!("http://h/cgi-bin/user/get?{want}&x=%20");
            let got = uri_of("http://h", &req, Some(("access_token", t))).unwrap();
            assert_eq!(got.to_string(), want, "{t:?}");
        }
        let bare = ApiRequest::get("/cgi-bin/user/get", &[]);
        let got = uri_of("http://h", &bare, Some(("access_token", "T1"))).unwrap();
        assert_eq!(got.to_string(), "http://h/cgi-bin/user/get?access_token=T1");
    }

    #[test]
    fn a_file_is_told_by_its_type_or_disposition() {
        let with = |pairs: &[(http::HeaderName, &str)]| {
            let mut h = http::HeaderMap::new();
            for (n, v) in pairs {
                h.insert(n.clone(), v.parse().unwrap());
            }
            is_file(&h)
        };
        use http::header::{CONTENT_DISPOSITION as CD, CONTENT_TYPE as CT};
        assert!(!with(&[]));
        assert!(!with(&[(CT, "Application/JSON; charset=utf-8")]));
        assert!(!with(&[(CT, " text/plain")]));
        assert!(!with(&[(CD, "inline"), (CT, "application/json")]));
        assert!(with(&[(CT, "image/jpeg")]));
        assert!(with(&[(CT, "application/octet-stream")]));
        assert!(with(&[
            (CD, "Attachment; filename=\"a.json\""),
            (CT, "text/plain")
        ]));
    }

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
            (
                r#"{ "errcode" : 40014 , "errmsg":"invalid access_token"}"#,
                40014,
            ),
            (r#"{"errcode":0}"#, 0),
            (r#"{"errcode":1.5,"errmsg":"odd"}"#, UNREADABLE_ERRCODE),
            (r#"{"errcode":"oops","openid":"o1"}"#, UNREADABLE_ERRCODE),
            (
                r#"{"errcode":99999999999999999999,"userid":"u"}"#,
                UNREADABLE_ERRCODE,
            ),
            (r#"{"errcode":[0]}"#, UNREADABLE_ERRCODE),
            (r#"{"errcode":null}"#, 0),
            (r#"{"errcode":007x}"#, 0),
            (r#"{"errmsg":"ok","errcode":60011}"#, 60011),
            (r#"{"access_token":"x","expires_in":7200}"#, 0),
            (r#"{"base_resp":{"ret":0}}"#, 0),
            ("\u{ff}\u{d8}binary jpeg", 0),
            ("[1,2]", 0),
            ("", 0),
            (r#"{"errcode":40001"#, UNREADABLE_ERRCODE),
            (r#"{"errcode":0,"x":"#, UNREADABLE_ERRCODE),
            ("{\"errcode\":0}\n", 0),
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
        let uri = uri_of("http://127.0.0.1:9", &req, Some(("access_token", "T"))).unwrap();
        assert_eq!(
            uri,
            "http://127.0.0.1:9/cgi-bin/user/get?access_token=T&userid=zhang+san&b=2&a=1%26x%3Dy"
        );
        let uri = uri_of("https://qyapi.weixin.qq.com", &req, None).unwrap();
        assert_eq!(
            uri,
            "https://qyapi.weixin.qq.com/cgi-bin/user/get?userid=zhang+san&b=2&a=1%26x%3Dy"
        );
    }

    #[test]
    fn a_forwarded_query_goes_out_as_written() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            (
                "userid=zhang%20san&x=a+b",
                Some("T"),
                "?access_token=T&userid=zhang%20san&x=a+b",
            ),
            ("userid=zhang%20san", None, "?userid=zhang%20san"),
            ("a=%2F%2e&b=%E5%BC%A0", None, "?a=%2F%2e&b=%E5%BC%A0"),
            // What may not stand in a request-target is escaped; nothing else is.
            ("a=b c&d=\"e\"&f=张", None, "?a=b%20c&d=%22e%22&f=%E5%BC%A0"),
            ("a=1#frag", None, "?a=1%23frag"),
            ("", Some("T"), "?access_token=T"),
        ];
        for (raw, token, want) in cases {
            let mut req = ApiRequest::get("/cgi-bin/user/get", &[]);
            req.raw_query = (*raw).to_owned();
            let uri = uri_of(
                "http://127.0.0.1:9",
                &req,
                token.map(|t| ("access_token", t)),
            )
            .unwrap();
            assert_eq!(
                uri,
                format!("http://127.0.0.1:9/cgi-bin/user/get{want}").as_str(),
                "{raw}"
            );
        }
    }
}
