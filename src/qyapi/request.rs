//! What a call to the endpoint asks for, read from its path, query and headers: which app,
//! which API, and what is forwarded. Pure functions; the listener only translates.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::model::App;
use crate::provider::TokenKind;

use super::handle;

/// Why a path is refused before anything is sent. Paths are taken literally (SPEC section
/// 10): a segment a server further on would resolve (`.`, `..`, also percent-encoded), an
/// empty one, or an escape that hides a `/` could turn an allowed path into `gettoken` with a
/// made-up secret or carry the real token outside `/cgi-bin/`. WeCom's API paths are plain
/// words, so anything else is refused rather than interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefused {
    DotSegment,
    EmptySegment,
    /// A percent-escape: `%2F`, `%2e` and friends.
    Escaped,
    /// A byte an API path never has (`\`, `;`, controls, ...).
    Character,
}

impl PathRefused {
    pub fn errmsg(self) -> &'static str {
        match self {
            PathRefused::DotSegment => {
                "the path has a '.' or '..' segment: paths are taken literally"
            }
            PathRefused::EmptySegment => "the path has an empty segment ('//' or a trailing '/')",
            PathRefused::Escaped => "the path has a percent-escape: API paths are plain",
            PathRefused::Character => "the path has a character no API path has",
        }
    }
}

/// `.` or `..`, each dot possibly written `%2e` / `%2E`.
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"%2e") {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    (1..=2).contains(&dots)
}

/// Checks `path` (without the query) segment by segment. The first segment may be the name of
/// a configured app, whatever it is spelt with.
pub fn literal(apps: &BTreeMap<String, Arc<App>>, path: &str) -> Result<(), PathRefused> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathRefused::Character);
    };
    for (i, segment) in rest.split('/').enumerate() {
        if segment.is_empty() {
            return Err(PathRefused::EmptySegment);
        }
        if is_dot_segment(segment) {
            return Err(PathRefused::DotSegment);
        }
        if i == 0 && apps.contains_key(segment) {
            continue;
        }
        let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.';
        if !segment.bytes().all(plain) {
            // An escape is said as such (`%2F` hides a `/`); anything else is a character.
            if segment.contains('%') {
                return Err(PathRefused::Escaped);
            }
            return Err(PathRefused::Character);
        }
    }
    Ok(())
}

/// Whose token a forwarded call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// The gateway injects the app's token of this kind, and a token error on the answer is
    /// about that token: expire it (if still cached), fetch once, retry once.
    Injected(TokenKind),
    /// The call brings its own credentials (a service provider's `suite_access_token`,
    /// `provider_access_token`, a suite secret): nothing is injected, and a token error is
    /// about those, so it never expires or refetches one of the gateway's tokens.
    Own,
}

/// APIs that issue a token from credentials in the request.
const TOKEN_ISSUERS: &[&str] = &[
    "/cgi-bin/gettoken",
    "/cgi-bin/token",
    "/cgi-bin/service/get_suite_token",
    "/cgi-bin/service/get_provider_token",
    "/cgi-bin/stable_token",
];

/// `carries_token`: a parameter of the caller's names a token of its own
/// ([`Query::carries_token`]).
pub fn token_use(app: &App, api: &str, carries_token: bool) -> TokenUse {
    let own = TOKEN_ISSUERS.contains(&api) || carries_token;
    if own {
        TokenUse::Own
    } else {
        TokenUse::Injected(kind_for(app, api))
    }
}

/// `gettoken` and `token` are the gateway's to answer (a handle, never the real token): they
/// are never forwarded, whatever the method.
pub fn is_sdk_gettoken(api: &str) -> bool {
    api == "/cgi-bin/gettoken" || api == "/cgi-bin/token"
}

/// What the caller addressed.
#[derive(Debug, PartialEq, Eq)]
pub struct Addressed<'a> {
    /// The API path with the `/{app}` prefix removed: `/cgi-bin/user/get`.
    pub api: &'a str,
    /// Named by the path prefix.
    pub prefix_app: Option<&'a str>,
}

/// `/{app}/cgi-bin/...` or `/cgi-bin/...`.
pub fn address<'a>(apps: &BTreeMap<String, Arc<App>>, path: &'a str) -> Addressed<'a> {
    if let Some(rest) = path.strip_prefix('/') {
        if let Some((first, _)) = rest.split_once('/') {
            if first != "cgi-bin" && apps.contains_key(first) {
                return Addressed {
                    api: &path[first.len() + 1..],
                    prefix_app: Some(&rest[..first.len()]),
                };
            }
        }
    }
    Addressed {
        api: path,
        prefix_app: None,
    }
}

/// A path `/{x}/.../cgi-bin/...` whose first segment [`address`] did not take for an app: a
/// prefix meant as one, misspelled.
pub fn unknown_prefix(addressed: &Addressed<'_>) -> bool {
    addressed.prefix_app.is_none()
        && !addressed.api.starts_with("/cgi-bin/")
        && addressed.api.contains("/cgi-bin/")
}

/// Why no app could be chosen; each is answered as WeCom would, with an errcode.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `X-Gateway-App` names no configured app.
    UnknownApp,
    /// The path's `/{app}` prefix names no configured app (a typo in the SDK's base URL).
    UnknownPrefix,
    /// `access_token` is not a handle of ours (or a forged one): 40014, as WeCom answers.
    BadHandle,
    /// The prefix, the header and the handle disagree.
    Conflict,
    /// Nothing names an app: 41001, "access_token missing".
    NoApp,
}

impl Refusal {
    pub fn errcode(&self) -> i64 {
        match self {
            Refusal::UnknownApp | Refusal::UnknownPrefix => 40013,
            Refusal::BadHandle | Refusal::Conflict => 40014,
            Refusal::NoApp => 41001,
        }
    }

    pub fn errmsg(&self) -> &'static str {
        match self {
            Refusal::UnknownApp => "X-Gateway-App names no configured app",
            Refusal::UnknownPrefix => {
                "the path's /{app} prefix names no configured app (check the SDK's base URL)"
            }
            Refusal::BadHandle => "invalid access_token: not a gateway handle",
            Refusal::Conflict => "the path prefix, X-Gateway-App and the handle name different apps",
            Refusal::NoApp => "access_token missing: give a gateway handle, an /{app} path prefix or X-Gateway-App",
        }
    }
}

/// The app by prefix, header or handle; when several are given they must agree.
pub fn choose_app<'a>(
    apps: &'a BTreeMap<String, Arc<App>>,
    prefix: Option<&str>,
    header: Option<&str>,
    access_token: Option<&str>,
) -> Result<&'a Arc<App>, Refusal> {
    let by_header = match header {
        Some(name) => Some(apps.get(name.trim()).ok_or(Refusal::UnknownApp)?),
        None => None,
    };
    let by_prefix = prefix.and_then(|p| apps.get(p));
    let by_handle = match access_token.filter(|t| !t.is_empty()) {
        Some(t) => Some(handle::verify(apps, t).ok_or(Refusal::BadHandle)?),
        None => None,
    };
    let mut chosen: Option<&Arc<App>> = None;
    for app in [by_handle, by_prefix, by_header].into_iter().flatten() {
        match chosen {
            Some(c) if !Arc::ptr_eq(c, app) => return Err(Refusal::Conflict),
            _ => chosen = Some(app),
        }
    }
    chosen.ok_or(Refusal::NoApp)
}

/// `externalcontact/*` only accepts the contact secret's token.
pub fn kind_for(app: &App, api: &str) -> TokenKind {
    let has_contact = matches!(
        &app.credentials,
        crate::config::model::Credentials::Wecom {
            contact_secret: Some(_),
            ..
        }
    );
    if has_contact && api.starts_with("/cgi-bin/externalcontact/") {
        TokenKind::Contact
    } else {
        TokenKind::Access
    }
}

/// A caller's query with its `access_token` (a gateway handle, or the caller's own token) taken
/// out: decoded for the gateway to read, and as written for forwarding.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// The pairs as the caller wrote them (`%20` stays `%20`), `&`-joined, without
    /// `access_token`; bytes that are not ASCII text are escaped.
    pub raw: String,
    pub access_token: Option<String>,
    /// Another parameter names a token (`suite_access_token`, `PROVIDER_ACCESS_TOKEN`...): the
    /// caller brings its own, the gateway injects none.
    pub carries_token: bool,
}

pub fn split_query(query: &[u8]) -> Query {
    // One allocation: what is forwarded is at most the query (an escaped byte aside).
    let mut q = Query {
        raw: String::with_capacity(query.len()),
        ..Query::default()
    };
    for segment in query.split(|&b| b == b'&') {
        if !plain_pair(&mut q, segment) {
            read_pair(&mut q, segment);
        }
    }
    q
}

/// Nearly every pair is printable ASCII without an escape (`userid=zhangsan`): its key reads
/// as written and it is forwarded as it is, with no decoding and no escaping. False (nothing
/// done) for any other, and for `access_token`, whose value [`read_pair`] reads.
fn plain_pair(q: &mut Query, segment: &[u8]) -> bool {
    let plain = !segment.is_empty()
        && segment
            .iter()
            .all(|&b| (0x21..0x7f).contains(&b) && b != b'%' && b != b'+');
    let key = segment.split(|&b| b == b'=').next().unwrap_or_default();
    if !plain || key == b"access_token" {
        return false;
    }
    // Printable ASCII: key and pair are text.
    q.carries_token |= names_a_token(std::str::from_utf8(key).unwrap_or_default());
    if !q.raw.is_empty() {
        q.raw.push('&');
    }
    q.raw
        .push_str(std::str::from_utf8(segment).unwrap_or_default());
    true
}

/// One pair as a form reads it (escapes and `+` decoded), forwarded as written with the
/// bytes that are not ASCII text escaped.
fn read_pair(q: &mut Query, segment: &[u8]) {
    let Some((k, v)) = url::form_urlencoded::parse(segment).next() else {
        return;
    };
    if k == "access_token" {
        q.access_token.get_or_insert_with(|| v.into_owned());
        return;
    }
    q.carries_token |= names_a_token(&k);
    if !q.raw.is_empty() {
        q.raw.push('&');
    }
    q.raw.extend(percent_encoding::percent_encode(
        segment,
        percent_encoding::CONTROLS,
    ));
}

/// The pairs of `query` in order, decoded, without `access_token`: what `gettoken` reads.
pub fn pairs(query: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query)
        .filter(|(k, _)| k != "access_token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn names_a_token(key: &str) -> bool {
    const SUFFIX: &str = "access_token";
    key.len() >= SUFFIX.len()
        && key.as_bytes()[key.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX.as_bytes())
}

/// Request headers that are not forwarded: hop-by-hop ones, the ones the client library
/// recomputes, and the gateway's own. `Accept-Encoding` is dropped so the answer comes back
/// plain and its errcode can be read.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "host",
    "content-length",
    "expect",
    "accept-encoding",
    "x-gateway-app",
    "x-gateway-corp",
];

pub fn forwarded_request_header(name: &str, connection_listed: &[String]) -> bool {
    !NOT_FORWARDED.contains(&name) && !connection_listed.iter().any(|c| c == name)
}

/// Answer headers not passed back: the gateway frames the answer itself.
pub fn forwarded_response_header(name: &str) -> bool {
    !matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "x-request-id"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apps() -> BTreeMap<String, Arc<App>> {
        let text = r#"
[server]
listen = "127.0.0.1:1"
public_url = "http://127.0.0.1:1"
[apps.crm]
kind = "wecom"
corp_id = "ww1"
agent_id = 1000002
secret = "secret-of-crm"
contact_secret = "contact"
[apps.hr]
kind = "wecom"
corp_id = "ww1"
agent_id = 1000003
secret = "secret-of-hr"
"#;
        crate::config::load_str("t.toml", text, std::path::Path::new("."))
            .unwrap()
            .apps
    }

    #[test]
    fn addressing_by_path_prefix() {
        let apps = apps();
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("/cgi-bin/user/get", "/cgi-bin/user/get", None),
            ("/crm/cgi-bin/user/get", "/cgi-bin/user/get", Some("crm")),
            ("/hr/cgi-bin/gettoken", "/cgi-bin/gettoken", Some("hr")),
            ("/nobody/cgi-bin/user/get", "/nobody/cgi-bin/user/get", None),
            ("/crm", "/crm", None),
        ];
        for (path, api, prefix) in cases {
            let a = address(&apps, path);
            assert_eq!((a.api, a.prefix_app), (*api, *prefix), "{path}");
        }
    }

    #[test]
    fn choosing_the_app() {
        let apps = apps();
        let crm = handle::sign(&apps["crm"]);
        let hr = handle::sign(&apps["hr"]);
        let cases: &[(
            Option<&str>,
            Option<&str>,
            Option<&str>,
            Result<&str, Refusal>,
        )] = &[
            (Some("crm"), None, None, Ok("crm")),
            (None, Some("hr"), None, Ok("hr")),
            (None, None, Some(&crm), Ok("crm")),
            (Some("crm"), Some("crm"), Some(&crm), Ok("crm")),
            (None, None, Some(""), Err(Refusal::NoApp)),
            (None, None, None, Err(Refusal::NoApp)),
            (None, Some("nobody"), None, Err(Refusal::UnknownApp)),
            (None, None, Some("a-real-token"), Err(Refusal::BadHandle)),
            (
                Some("crm"),
                None,
                Some("a-real-token"),
                Err(Refusal::BadHandle),
            ),
            (Some("crm"), None, Some(&hr), Err(Refusal::Conflict)),
            (Some("crm"), Some("hr"), None, Err(Refusal::Conflict)),
        ];
        for (prefix, header, token, want) in cases {
            let got = choose_app(&apps, *prefix, *header, *token).map(|a| a.name.as_str());
            assert_eq!(&got, want, "{prefix:?} {header:?} {token:?}");
        }
    }

    #[test]
    fn query_order_kept_and_token_taken_out() {
        let query = b"userid=zhang%20san&access_token=wgw1.x.y&b=2&a=1";
        let q = split_query(query);
        assert_eq!(q.access_token.as_deref(), Some("wgw1.x.y"));
        assert!(!q.carries_token);
        assert_eq!(
            pairs(query),
            vec![
                ("userid".to_owned(), "zhang san".to_owned()),
                ("b".to_owned(), "2".to_owned()),
                ("a".to_owned(), "1".to_owned())
            ]
        );
        assert_eq!(q.raw, "userid=zhang%20san&b=2&a=1");
    }

    #[test]
    fn the_query_is_forwarded_as_written() {
        let cases: &[(&[u8], &str, Option<&str>)] = &[
            (b"a=x+y&b=x%20y&c=%2F", "a=x+y&b=x%20y&c=%2F", None),
            (b"access_token=A&access_token=B&x=1", "x=1", Some("A")),
            (b"&&x=1&&", "x=1", None),
            (b"access_token", "", Some("")),
            (b"n=\xe5\xbc\xa0", "n=%E5%BC%A0", None),
            (b"", "", None),
        ];
        for (query, raw, token) in cases {
            let q = split_query(query);
            assert_eq!(q.raw, *raw, "{query:?}");
            assert_eq!(q.access_token.as_deref(), *token, "{query:?}");
        }
    }

    /// The plain pairs' fast reading gives what the general one gives.
    #[test]
    fn a_plain_pair_reads_as_the_general_reading_reads_it() {
        fn general(query: &[u8]) -> Query {
            let mut q = Query::default();
            for segment in query.split(|&b| b == b'&') {
                read_pair(&mut q, segment);
            }
            q
        }
        let queries: &[&[u8]] = &[
            b"userid=zhangsan",
            b"userid=zhangsan&access_token=T&debug=1",
            b"=x&x=&=&x",
            b"suite_access_token=S&userid=a",
            b"SUITE_ACCESS_TOKEN=S",
            b"access_token",
            b"access_token=&access_token=B",
            b"a=1&&b=2&",
            b"a=x+y&b=%41&c=%zz&d=\x01&e=\x7f&f=\xe5\xbc\xa0&g= &h=\"",
            b"cursor=abc==&limit=100",
            b"x=access_token&access_token_x=1",
        ];
        for query in queries {
            assert_eq!(split_query(query), general(query), "{query:?}");
        }
    }

    #[test]
    fn kinds_by_api() {
        let apps = apps();
        let cases: &[(&str, &str, TokenKind)] = &[
            ("crm", "/cgi-bin/externalcontact/get", TokenKind::Contact),
            ("crm", "/cgi-bin/user/get", TokenKind::Access),
            // Without a contact secret the app's own token is tried (and WeCom decides).
            ("hr", "/cgi-bin/externalcontact/get", TokenKind::Access),
        ];
        for (app, api, want) in cases {
            assert_eq!(kind_for(&apps[*app], api), *want, "{app} {api}");
        }
    }

    #[test]
    fn paths_are_taken_literally() {
        let apps = apps();
        use PathRefused::*;
        let cases: &[(&str, Result<(), PathRefused>)] = &[
            ("/crm/cgi-bin/user/get", Ok(())),
            ("/cgi-bin/externalcontact/batch/get_by_user", Ok(())),
            ("/cgi-bin/media/get/jssdk", Ok(())),
            ("/crm/cgi-bin/./gettoken", Err(DotSegment)),
            ("/crm/cgi-bin/../sns/userinfo", Err(DotSegment)),
            ("/crm/cgi-bin/%2e%2E/sns/userinfo", Err(DotSegment)),
            ("/crm/cgi-bin/.%2e/sns", Err(DotSegment)),
            ("/./crm/cgi-bin/user/get", Err(DotSegment)),
            ("/crm/cgi-bin//user/get", Err(EmptySegment)),
            ("//cgi-bin/user/get", Err(EmptySegment)),
            ("/cgi-bin/user/get/", Err(EmptySegment)),
            ("/crm/cgi-bin/user%2Fget", Err(Escaped)),
            ("/crm/cgi-bin/user%20get", Err(Escaped)),
            ("/crm/cgi-bin\\..\\sns", Err(Character)),
            ("/crm/cgi-bin/user/get;x", Err(Character)),
            ("/crm/cgi-bin/user/get#x", Err(Character)),
            ("cgi-bin/user/get", Err(Character)),
            ("/cgi-bin/...", Ok(())),
        ];
        for (path, want) in cases {
            assert_eq!(literal(&apps, path), *want, "{path}");
        }
    }

    #[test]
    fn token_errors_only_count_for_tokens_the_gateway_injected() {
        let apps = apps();
        let q = |query: &str| split_query(query.as_bytes()).carries_token;
        let cases: &[(&str, bool, TokenUse)] = &[
            (
                "/cgi-bin/user/get",
                q("userid=a&access_token=wgw1.x.y"),
                TokenUse::Injected(TokenKind::Access),
            ),
            (
                "/cgi-bin/externalcontact/get",
                q(""),
                TokenUse::Injected(TokenKind::Contact),
            ),
            (
                "/cgi-bin/service/get_permanent_code",
                q("suite_access_token=x"),
                TokenUse::Own,
            ),
            (
                "/cgi-bin/message/send",
                q("PROVIDER_ACCESS_TOKEN=x"),
                TokenUse::Own,
            ),
            ("/cgi-bin/service/get_suite_token", q(""), TokenUse::Own),
            ("/cgi-bin/stable_token", q(""), TokenUse::Own),
            ("/cgi-bin/user/get", q("x_Access%5FToken=1"), TokenUse::Own),
            (
                "/cgi-bin/user/get",
                q("token=1&access_tokens=2"),
                TokenUse::Injected(TokenKind::Access),
            ),
        ];
        for (api, query, want) in cases {
            assert_eq!(token_use(&apps["crm"], api, *query), *want, "{api}");
        }
        assert!(is_sdk_gettoken("/cgi-bin/gettoken") && is_sdk_gettoken("/cgi-bin/token"));
        assert!(!is_sdk_gettoken("/cgi-bin/./gettoken"));
    }

    #[test]
    fn headers_forwarded() {
        let listed = vec!["x-hop".to_owned()];
        for (name, want) in [
            ("content-type", true),
            ("user-agent", true),
            ("x-custom", true),
            ("host", false),
            ("content-length", false),
            ("transfer-encoding", false),
            ("connection", false),
            ("x-hop", false),
            ("x-gateway-app", false),
            ("accept-encoding", false),
        ] {
            assert_eq!(forwarded_request_header(name, &listed), want, "{name}");
        }
    }
}
