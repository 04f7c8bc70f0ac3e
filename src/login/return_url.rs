//! Where the browser goes after login (SPEC section 8). Every trick in oauth2-proxy's
//! open-redirect history is refused: `//host` and `/\host` (browsers read both as
//! scheme-relative), tabs and newlines between the slashes (browsers drop them, so `/\t/host`
//! becomes `//host`; CVE-2020-11053), the same percent-encoded, `javascript:`/`data:`, userinfo
//! (`https://crm@evil`), look-alike hosts and other ports. What passes is re-emitted as an
//! absolute URL on `public_url`'s origin, so no browser quirk can reinterpret it.

use percent_encoding::percent_decode_str;
use url::{Position, Url};

/// Long enough for any real deep link, short enough to keep the login cookie small.
const MAX_LEN: usize = 2048;

/// A validated return URL: `public_url`'s origin followed by a path (never `//`), an optional
/// query and an optional fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnUrl {
    origin: String,
    /// Path, query and fragment; starts with exactly one `/`.
    rest: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    Empty,
    TooLong,
    /// A control, whitespace or invisible character, or a backslash, raw or percent-encoded.
    Suspicious,
    SchemeRelative,
    NotAUrl,
    OtherOrigin,
    Userinfo,
}

impl ReturnUrl {
    /// The return URL for `raw`, or the site root when `raw` is refused.
    pub fn parse(raw: &str, public_url: &Url) -> ReturnUrl {
        Self::check(raw, public_url).unwrap_or_else(|_| Self::root(public_url))
    }

    /// [`Self::parse`], and the site root for a sign-in step of the gateway's own (its login,
    /// sign-in page, callback, forward-auth check or logout, however the path is spelled):
    /// coming back to one after signing in would start it again, in a loop inside the WeCom
    /// client where the sign-in is silent.
    pub fn for_site(raw: &str, server: &crate::config::model::ServerSettings) -> ReturnUrl {
        let url = Self::parse(raw, &server.public_url);
        if url.is_sign_in_step(&server.prefix) {
            Self::root(&server.public_url)
        } else {
            url
        }
    }

    fn is_sign_in_step(&self, prefix: &str) -> bool {
        const STEPS: &[&[u8]] = &[
            b"/login",
            b"/signin",
            b"/oauth/callback",
            b"/auth",
            b"/logout",
        ];
        let path = self.rest.split(['?', '#']).next().unwrap_or("/");
        let Ok(path) = nginx_compat::uri::normalize_path(path.as_bytes()) else {
            return true;
        };
        path.strip_prefix(prefix.as_bytes()).is_some_and(|rest| {
            let rest = rest.strip_suffix(b"/").unwrap_or(rest);
            STEPS.contains(&rest)
        })
    }

    pub fn root(public_url: &Url) -> ReturnUrl {
        ReturnUrl {
            origin: public_url.origin().ascii_serialization(),
            rest: "/".to_owned(),
        }
    }

    pub fn check(raw: &str, public_url: &Url) -> Result<ReturnUrl, Rejected> {
        if raw.is_empty() {
            return Err(Rejected::Empty);
        }
        if raw.len() > MAX_LEN {
            return Err(Rejected::TooLong);
        }
        if suspicious(raw) {
            return Err(Rejected::Suspicious);
        }
        let url = if raw.starts_with('/') {
            if raw.starts_with("//") || decoded_starts_with_two_slashes(raw) {
                return Err(Rejected::SchemeRelative);
            }
            public_url.join(raw).map_err(|_| Rejected::NotAUrl)?
        } else {
            // Userinfo is refused on the raw text too: parsers disagree on where it ends.
            let authority = raw
                .split_once("://")
                .map(|(_, after)| after.split(['/', '?', '#']).next().unwrap_or(""))
                .unwrap_or("");
            if authority.contains('@') {
                return Err(Rejected::Userinfo);
            }
            Url::parse(raw).map_err(|_| Rejected::NotAUrl)?
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Rejected::Userinfo);
        }
        if url.origin() != public_url.origin() {
            return Err(Rejected::OtherOrigin);
        }
        let rest = &url[Position::BeforePath..];
        // `/..//evil` resolves to the path `//evil`: harmless as an absolute URL, but the
        // relative form is stored and reused, so it must never look scheme-relative.
        if !rest.starts_with('/') || rest.starts_with("//") {
            return Err(Rejected::SchemeRelative);
        }
        Ok(ReturnUrl {
            origin: url.origin().ascii_serialization(),
            rest: rest.to_owned(),
        })
    }

    /// The absolute URL for a `Location` header.
    pub fn absolute(&self) -> String {
        format!("{}{}", self.origin, self.rest)
    }

    /// The `Location` of the sign-in callback's redirect: [`ReturnUrl::absolute`], ended by an
    /// empty fragment when it has none. A redirect whose `Location` has no fragment keeps the
    /// fragment of the request it answers (RFC 9110), and WeCom's and WeChat's authorize URL
    /// ends in `#wechat_redirect`: the person landed on `/page#wechat_redirect`, a hash route
    /// named `wechat_redirect` to an SPA.
    pub fn after_sign_in(&self) -> String {
        if self.rest.contains('#') {
            self.absolute()
        } else {
            format!("{}{}#", self.origin, self.rest)
        }
    }

    /// Path, query and fragment: what the login cookie stores.
    pub fn relative(&self) -> &str {
        &self.rest
    }

    /// Appends `params` (SPEC section 8, `return_query`): inside the fragment's query when the
    /// fragment is a hash route (`/#/reg?openId=O`, as legacy front ends read it), else to the
    /// URL's query. A parameter of the same name (compared without case, percent-decoded) is
    /// first removed from every part of the URL — the query, the fragment's query, a fragment
    /// of `name=value` pairs, and any `name=` after a `?`, `&`, `;` or `#` where a legacy
    /// reader's regex (`[?&]openId=([^&;]+)` on `location.href`) would find it — so a crafted
    /// `return_to` can never pre-set the identity the front end reads, wherever it looks.
    pub fn with_query(&self, params: &[(String, String)]) -> ReturnUrl {
        if params.is_empty() {
            return self.clone();
        }
        let ours = |pair: &str| {
            let name = pair.split('=').next().unwrap_or("");
            let name = percent_decode_str(name).decode_utf8_lossy();
            params.iter().any(|(p, _)| p.eq_ignore_ascii_case(&name))
        };
        let rest = scrubbed(&self.rest, ours);
        let (before, fragment) = match rest.split_once('#') {
            Some((b, f)) => (b, Some(f)),
            None => (rest.as_str(), None),
        };
        let (path, query) = before.split_once('?').unwrap_or((before, ""));
        let mut query = without(query, ours);
        // A second `#` starts the hash route's own fragment (`#/reg?x=1#faq`, vue-router's
        // anchor in the page): it stays last, after what is appended to the route's query.
        let (fragment, tail) = match fragment.map(|f| f.split_once('#').unwrap_or((f, ""))) {
            Some((f, t)) if !t.is_empty() => (Some(f), format!("#{t}")),
            Some((f, _)) => (Some(f), String::new()),
            None => (None, String::new()),
        };
        let fragment = fragment.map(|f| match f.split_once('?') {
            Some((route, q)) => (route.to_owned(), Some(without(q, ours))),
            // `#openId=X&b=1`: a fragment of pairs, read as such by some front ends.
            None if !f.starts_with('/') && f.contains('=') => {
                (String::new(), Some(without(f, ours)))
            }
            None => (f.to_owned(), None),
        });
        let added = params.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v)));
        let rest = match fragment {
            Some((route, fq)) if route.starts_with('/') => {
                let mut fq = fq.unwrap_or_default();
                fq.extend(added);
                // Before the route's own fragment, a closing `&` keeps it out of the value a
                // `[?&]openId=([^&;]+)` reader takes.
                let close = if tail.is_empty() { "" } else { "&" };
                format!(
                    "{}#{route}?{}{close}{tail}",
                    join(path, &query),
                    fq.join("&")
                )
            }
            // In the URL's query a fragment follows (the sign-in's redirect ends a URL without
            // one with an empty `#`): the closing `&` keeps it out of the value a
            // `[?&]openId=([^&;]+)` reader takes from `location.href`.
            Some((f, fq)) => {
                query.extend(added);
                let f = match fq {
                    Some(pairs) if f.is_empty() => pairs.join("&"),
                    Some(pairs) => format!("{f}?{}", pairs.join("&")),
                    None => f,
                };
                format!("{}&#{f}{tail}", join(path, &query))
            }
            None => {
                query.extend(added);
                format!("{}&", join(path, &query))
            }
        };
        ReturnUrl {
            origin: self.origin.clone(),
            rest,
        }
    }
}

/// `rest` without any piece that `drop` names, a piece being what follows any of `?`, `&`, `;`
/// and `#` up to the next one (the path before the first is never one). The URL's structure
/// is kept: the first `#`, and the first `?` on either side of it, stay when their piece goes.
fn scrubbed(rest: &str, drop: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(rest.len());
    let (mut fragment, mut query) = (false, false);
    let mut pieces = rest.split_inclusive(['?', '&', ';', '#']).peekable();
    // Each item ends with its delimiter; the delimiter belongs to the piece after it.
    let mut delimiter: Option<char> = None;
    let mut first = true;
    while let Some(item) = pieces.next() {
        let (body, next) = match item.chars().last() {
            Some(c @ ('?' | '&' | ';' | '#')) => (&item[..item.len() - 1], Some(c)),
            _ => (item, None),
        };
        let structural = match delimiter {
            Some('#') if !fragment => {
                fragment = true;
                query = false;
                true
            }
            Some('?') if !query => {
                query = true;
                true
            }
            _ => false,
        };
        if first || !drop(body) {
            out.extend(delimiter);
            out.push_str(body);
        } else if structural {
            out.extend(delimiter);
        }
        first = false;
        delimiter = next;
    }
    if let Some(d) = delimiter {
        // A trailing delimiter (`/page#`): kept as written.
        out.push(d);
    }
    out
}

/// The pairs of `query` that `drop` does not name.
fn without(query: &str, drop: impl Fn(&str) -> bool) -> Vec<String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty() && !drop(pair))
        .map(str::to_owned)
        .collect()
}

fn join(path: &str, query: &[String]) -> String {
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A control, whitespace or invisible character, or a backslash, in the text or in any of a
/// few rounds of percent-decoding (double encoding must not smuggle `%09` through).
fn suspicious(raw: &str) -> bool {
    let mut text = raw.to_owned();
    for _ in 0..4 {
        if text.chars().any(bad_char) {
            return true;
        }
        let decoded = percent_decode_str(&text).decode_utf8_lossy().into_owned();
        if decoded == text {
            return false;
        }
        text = decoded;
    }
    // Still changing after four rounds: nobody encodes a real link that deep.
    true
}

fn bad_char(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

/// `/%2F/evil.com` and friends: some front ends decode before they navigate.
fn decoded_starts_with_two_slashes(raw: &str) -> bool {
    let mut text = raw.to_owned();
    for _ in 0..4 {
        let decoded = percent_decode_str(&text).decode_utf8_lossy().into_owned();
        if decoded.starts_with("//") {
            return true;
        }
        if decoded == text {
            return false;
        }
        text = decoded;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_step_however_spelled_is_no_place_to_come_back_to() {
        let step = |raw: &str| ReturnUrl::parse(raw, &public()).is_sign_in_step("/_gateway");
        for raw in [
            "/_gateway/signin?app=crm&return_to=/x",
            "/_gateway//signin?app=crm",
            "/_gateway/./login?app=crm",
            "/x/../_gateway/oauth/callback?code=c",
            "/_gateway%2Fauth",
            "/_gateway/logout/",
            "https://crm.example.com/_gateway/./signin",
        ] {
            assert!(step(raw), "{raw}");
        }
        for raw in [
            "/_gateway/whoami",
            "/_gatewayx/login",
            "/sidebar/#/_gateway/login",
            "/",
        ] {
            assert!(!step(raw), "{raw}");
        }
    }

    fn public() -> Url {
        Url::parse("https://crm.example.com").unwrap()
    }

    #[test]
    fn accepted_return_urls_stay_on_the_origin_fragment_included() {
        let cases: &[(&str, &str)] = &[
            ("/", "https://crm.example.com/"),
            ("/customer", "https://crm.example.com/customer"),
            (
                "/#/customer/42?tab=1",
                "https://crm.example.com/#/customer/42?tab=1",
            ),
            (
                "/home?x=1&y=2#/reg",
                "https://crm.example.com/home?x=1&y=2#/reg",
            ),
            (
                "/sidebar/?a=%2F#/c",
                "https://crm.example.com/sidebar/?a=%2F#/c",
            ),
            (
                "https://crm.example.com/a?b#c",
                "https://crm.example.com/a?b#c",
            ),
            ("HTTPS://CRM.EXAMPLE.COM/a", "https://crm.example.com/a"),
            ("https://crm.example.com:443/a", "https://crm.example.com/a"),
            ("https://crm.example.com", "https://crm.example.com/"),
            (
                "/javascript:alert(1)",
                "https://crm.example.com/javascript:alert(1)",
            ),
            ("/a/../b", "https://crm.example.com/b"),
            (
                "/客户#/详情",
                "https://crm.example.com/%E5%AE%A2%E6%88%B7#/%E8%AF%A6%E6%83%85",
            ),
        ];
        for (raw, want) in cases {
            let got = ReturnUrl::check(raw, &public()).unwrap_or_else(|e| panic!("{raw}: {e:?}"));
            assert_eq!(got.absolute(), *want, "{raw}");
            assert!(got.relative().starts_with('/') && !got.relative().starts_with("//"));
        }
    }

    #[test]
    fn open_redirect_payloads_are_refused() {
        use Rejected::*;
        let cases: &[(&str, Rejected)] = &[
            ("", Empty),
            ("//evil.com", SchemeRelative),
            ("//evil.com/path", SchemeRelative),
            ("///evil.com", SchemeRelative),
            ("/\\evil.com", Suspicious),
            ("\\\\evil.com", Suspicious),
            ("/%5cevil.com", Suspicious),
            ("/%5Cevil.com", Suspicious),
            ("/\t/evil.com", Suspicious),
            ("/%09/evil.com", Suspicious),
            ("/%0a/evil.com", Suspicious),
            ("/%0D/evil.com", Suspicious),
            ("/%00/evil.com", Suspicious),
            ("/%20/evil.com", Suspicious),
            ("/ /evil.com", Suspicious),
            ("/%2509/evil.com", Suspicious),
            ("/\u{3000}/evil.com", Suspicious),
            ("/\u{feff}/evil.com", Suspicious),
            ("/\u{200b}/evil.com", Suspicious),
            (" //evil.com", Suspicious),
            ("/%2F/evil.com", SchemeRelative),
            ("/%2f%2fevil.com", SchemeRelative),
            ("/..//evil.com", SchemeRelative),
            ("https://evil.com", OtherOrigin),
            ("https://evil.com/https://crm.example.com", OtherOrigin),
            ("http://crm.example.com/", OtherOrigin),
            ("https://crm.example.com:8443/", OtherOrigin),
            ("https://crm.example.com.evil.com/", OtherOrigin),
            ("https://evil.com?.crm.example.com", OtherOrigin),
            ("https://crm.example.com@evil.com/", Userinfo),
            ("https://user:pw@crm.example.com/", Userinfo),
            ("https:evil.com", OtherOrigin),
            ("https:/evil.com", OtherOrigin),
            ("javascript:alert(1)", OtherOrigin),
            ("JaVaScRiPt:alert(1)", OtherOrigin),
            ("java\tscript:alert(1)", Suspicious),
            ("data:text/html,<script>alert(1)</script>", OtherOrigin),
            ("evil.com", NotAUrl),
            ("crm.example.com/a", NotAUrl),
        ];
        for (raw, want) in cases {
            assert_eq!(
                ReturnUrl::check(raw, &public()).err(),
                Some(*want),
                "{raw:?}"
            );
            assert_eq!(
                ReturnUrl::parse(raw, &public()).absolute(),
                "https://crm.example.com/",
                "{raw:?} falls back to the root"
            );
        }
        assert_eq!(
            ReturnUrl::check(&format!("/{}", "a".repeat(3000)), &public()).err(),
            Some(TooLong)
        );
    }

    #[test]
    fn non_default_ports_must_match_exactly() {
        let p = Url::parse("http://127.0.0.1:8080").unwrap();
        assert!(ReturnUrl::check("http://127.0.0.1:8080/x", &p).is_ok());
        assert!(ReturnUrl::check("http://127.0.0.1/x", &p).is_err());
        assert!(ReturnUrl::check("http://127.0.0.1:8081/x", &p).is_err());
        assert!(ReturnUrl::check("http://localhost:8080/x", &p).is_err());
    }

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn return_query_goes_into_the_hash_route_or_the_query() {
        let open_id = q(&[("openId", "oEmu001")]);
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("/#/reg", &[("openId", "OPENID")], "/#/reg?openId=OPENID"),
            ("/#/reg?x=1", &[("openId", "O")], "/#/reg?x=1&openId=O"),
            (
                "/home?a=1#/customer/42?tab=1",
                &[("userId", "zs")],
                "/home?a=1#/customer/42?tab=1&userId=zs",
            ),
            ("/page", &[("userId", "zs")], "/page?userId=zs&"),
            ("/page?a=1", &[("userId", "zs")], "/page?a=1&userId=zs&"),
            (
                "/page?a=1#section",
                &[("userId", "zs")],
                "/page?a=1&userId=zs&#section",
            ),
            ("/page#", &[("userId", "zs")], "/page?userId=zs&#"),
            (
                "/#/reg?openId=victim&x=1",
                &[("openId", "O")],
                "/#/reg?x=1&openId=O",
            ),
            ("/p?userId=victim", &[("userId", "zs")], "/p?userId=zs&"),
            ("/#/r", &[("a", "1"), ("b", "2")], "/#/r?a=1&b=2"),
            ("/#/r", &[], "/#/r"),
            // The hash route's own fragment stays last.
            (
                "/mp/#/reg?x=1#faq",
                &[("openId", "O")],
                "/mp/#/reg?x=1&openId=O&#faq",
            ),
            (
                "/mp/#/reg#faq",
                &[("openId", "O")],
                "/mp/#/reg?openId=O&#faq",
            ),
            ("/p#sec#x", &[("openId", "O")], "/p?openId=O&#sec#x"),
            // Removed from every part, whatever the case or escaping, then appended once.
            (
                "/?openId=ATTACKER#/reg",
                &[("openId", "O")],
                "/#/reg?openId=O",
            ),
            (
                "/p?OPENID=a&x=1#/reg?openid=b&y=2",
                &[("openId", "O")],
                "/p?x=1#/reg?y=2&openId=O",
            ),
            ("/p?open%49d=a#sec", &[("openId", "O")], "/p?openId=O&#sec"),
            ("/p#openId=a&k=1", &[("openId", "O")], "/p?openId=O&#k=1"),
            ("/p#openId=a", &[("openId", "O")], "/p?openId=O&#"),
            // Where a legacy reader's regex finds a name after any `?`, `&`, `;` or `#`.
            (
                "/mp/?a=1?openId=X",
                &[("openId", "O")],
                "/mp/?a=1&openId=O&",
            ),
            (
                "/mp/#/reg?a=1?openId=X",
                &[("openId", "O")],
                "/mp/#/reg?a=1&openId=O",
            ),
            (
                "/mp/#/reg&openId=X",
                &[("openId", "O")],
                "/mp/#/reg?openId=O",
            ),
            (
                "/mp/#/reg#openId=X",
                &[("openId", "O")],
                "/mp/#/reg?openId=O",
            ),
            (
                "/mp/?a=1;openId=X",
                &[("openId", "O")],
                "/mp/?a=1&openId=O&",
            ),
            ("/mp/;openId=X/p", &[("openId", "O")], "/mp/?openId=O&"),
            (
                "/mp;jsessionid=1/p",
                &[("openId", "O")],
                "/mp;jsessionid=1/p?openId=O&",
            ),
        ];
        for (raw, params, want) in cases {
            let r = ReturnUrl::check(raw, &public()).unwrap();
            assert_eq!(r.with_query(&q(params)).relative(), *want, "{raw}");
        }
        let r = ReturnUrl::check("/#/reg", &public())
            .unwrap()
            .with_query(&open_id);
        assert_eq!(r.absolute(), "https://crm.example.com/#/reg?openId=oEmu001");
    }

    /// A redirect without a fragment keeps the request's (`#wechat_redirect`): the sign-in's
    /// always names one, empty when the URL has none.
    #[test]
    fn the_sign_in_redirect_always_names_a_fragment() {
        let cases = [
            ("/sidebar/", "https://crm.example.com/sidebar/#"),
            ("/sidebar/?a=1", "https://crm.example.com/sidebar/?a=1#"),
            ("/sidebar/#/c/1", "https://crm.example.com/sidebar/#/c/1"),
            ("/sidebar/#", "https://crm.example.com/sidebar/#"),
        ];
        for (raw, want) in cases {
            let r = ReturnUrl::check(raw, &public()).unwrap();
            assert_eq!(r.after_sign_in(), want, "{raw}");
        }
    }
}
