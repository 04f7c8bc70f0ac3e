//! `ngx_http_proxy_module`: the request sent upstream (`ngx_http_proxy_create_request`), the
//! rewriting of the upstream's `Location` (`proxy_redirect`), and what happens when the
//! upstream fails or answers an intercepted error (`error_page`).

use super::{Action, FileSystem, Flow, Proxy};
use crate::escape::{escape, Escape};
use crate::parse::model::{
    CookieFlagsRule, CookieName, LocConf, PassKind, PassTarget, ProxyPass, ProxyRedirect,
    RedirectPattern, RedirectRule, Server,
};
use crate::parse::parse_target;
use crate::vars::{Ctx, Template};
use crate::Request;

/// nginx's `ngx_http_proxy_headers`: merged under the `proxy_set_header` list unless it names
/// them; an empty value means the header is not sent (and the client's copy is not passed).
const DEFAULT_HEADERS: &[(&str, &str)] = &[
    ("Host", "$proxy_host"),
    ("Connection", "close"),
    ("Content-Length", "$proxy_internal_body_length"),
    ("Transfer-Encoding", "$proxy_internal_chunked"),
    ("TE", ""),
    ("Keep-Alive", ""),
    ("Expect", ""),
    ("Upgrade", ""),
];

impl Server {
    /// The content phase of a `proxy_pass` location.
    pub(super) fn proxy(&self, cx: &mut Ctx<'_>, conf: &LocConf, pass: &ProxyPass) -> Flow {
        let (target, dynamic) = match &pass.kind {
            PassKind::Static(t) => (t.clone(), false),
            PassKind::Dynamic(t) => match eval_url(t, cx) {
                Some(t) => (t, true),
                // "invalid URL prefix" and friends
                None => return Flow::Finalize(500),
            },
        };
        let st = &cx.st;
        let req = cx.req;
        let uri = if dynamic && !target.uri.is_empty() {
            target.uri.clone()
        } else if target.uri.is_empty() && st.valid_unparsed_uri {
            req.uri.clone()
        } else {
            // plcf->location: the location's name, but nothing for a regex or named location
            // or a proxy_pass with variables.
            let name_len =
                if dynamic || conf.is_regex() || matches!(st.loc, crate::LocRef::Named(_)) {
                    0
                } else {
                    conf.name().len()
                };
            let loc_len = if st.valid_location && !target.uri.is_empty() {
                name_len.min(st.uri.len())
            } else {
                0
            };
            let mut out = Vec::new();
            if st.valid_location {
                out.extend_from_slice(&target.uri);
            }
            let rest = &st.uri[loc_len..];
            if st.quoted_uri || st.internal {
                out.extend(escape(rest, Escape::Uri));
            } else {
                out.extend_from_slice(rest);
            }
            if !st.args.is_empty() {
                out.push(b'?');
                out.extend_from_slice(&st.args);
            }
            out
        };
        if uri.is_empty() {
            // "zero length URI to proxy"
            return Flow::Finalize(500);
        }
        cx.proxy = Some((
            target.host_header.as_bytes().to_vec(),
            target.port.as_bytes().to_vec(),
        ));
        let (headers, set_names) = request_headers(conf, cx);
        Flow::Done(Box::new(Action::Proxy(Box::new(Proxy {
            authority: target.authority,
            method: cx.st.method.clone(),
            target: uri,
            headers,
            set_names,
            proxy_host: target.host_header,
            proxy_port: target.port,
            status: cx.st.err_status,
            state: cx.st.clone(),
        }))))
    }

    /// The upstream answered `status`. With `proxy_intercept_errors on` and an `error_page`
    /// for that status in the location, nginx answers with its error page instead: the
    /// [`Action`] that replaces the upstream's answer.
    pub fn upstream_answered(
        &self,
        req: &Request,
        p: &Proxy,
        status: u16,
        fs: &dyn FileSystem,
    ) -> Option<Action> {
        let s = self.settings_for(&p.state);
        let intercept = status >= 300
            && s.proxy.intercept_errors
            && s.error_pages.iter().any(|e| e.status == status);
        intercept.then(|| self.finalize_at(req, p.state.clone(), status, fs))
    }

    /// The upstream could not be reached (502) or did not answer in time (504): nginx
    /// finalizes with that status, so the location's `error_page` applies.
    pub fn upstream_failed(
        &self,
        req: &Request,
        p: &Proxy,
        status: u16,
        fs: &dyn FileSystem,
    ) -> Action {
        self.finalize_at(req, p.state.clone(), status, fs)
    }

    /// `proxy_redirect` applied to a `Location` the upstream sent: `Some` with the new value
    /// (made absolute as nginx's header filter does) when a rule rewrote it, `None` to pass it
    /// as it is.
    pub fn proxy_redirect(&self, req: &Request, p: &Proxy, value: &[u8]) -> Option<Vec<u8>> {
        self.redirected(req, p, value, true)
    }

    /// `proxy_redirect` applied to the URL of a `Refresh` the upstream sent: as for a
    /// `Location`, but left as the rule wrote it (nginx's header filter makes only the
    /// `Location` absolute).
    pub fn proxy_redirect_refresh(
        &self,
        req: &Request,
        p: &Proxy,
        value: &[u8],
    ) -> Option<Vec<u8>> {
        self.redirected(req, p, value, false)
    }

    fn redirected(
        &self,
        req: &Request,
        p: &Proxy,
        value: &[u8],
        absolute: bool,
    ) -> Option<Vec<u8>> {
        let conf = self.conf_for(&p.state)?;
        let cx = self.proxy_ctx(req, p);
        let rules: Vec<(RedirectPattern, Template)> = match &conf.settings.proxy.redirect {
            ProxyRedirect::Off => return None,
            ProxyRedirect::Default => vec![(RedirectPattern::Default, Template::default())],
            ProxyRedirect::Rules(r) => r
                .iter()
                .map(|r| (r.pattern.clone(), r.replacement.clone()))
                .collect(),
        };
        for (pattern, replacement) in rules {
            let new = match pattern {
                RedirectPattern::Default => {
                    let Some(pass) = &conf.proxy_pass else {
                        continue;
                    };
                    let PassKind::Static(t) = &pass.kind else {
                        continue;
                    };
                    let (prefix, repl) = if t.uri.is_empty() {
                        (format!("{}/", pass.url).into_bytes(), b"/".to_vec())
                    } else {
                        let name = if conf.is_regex() { "" } else { conf.name() };
                        (pass.url.as_bytes().to_vec(), name.as_bytes().to_vec())
                    };
                    replace_prefix(value, &prefix, &repl)
                }
                RedirectPattern::Prefix(t) => {
                    let prefix = t.expand(&cx, false);
                    replace_prefix(value, &prefix, &replacement.expand(&cx, false))
                }
                RedirectPattern::Regex(re) => match re.captures(value) {
                    Ok(Some(caps)) => Some(replacement.expand(&with_captures(&cx, caps), false)),
                    _ => None,
                },
            };
            if let Some(new) = new {
                return Some(if absolute {
                    self.absolute(&cx, new, &conf.settings)
                } else {
                    new
                });
            }
        }
        None
    }
}

/// One attribute of a `Set-Cookie` as `ngx_http_proxy_parse_cookie` splits it: its name and,
/// after an `=`, its value, each without the spaces around it.
struct Attr<'v> {
    name: &'v [u8],
    value: Option<Vec<u8>>,
    /// Taken off by `proxy_cookie_flags` (`nosecure`): not written again.
    gone: bool,
}

fn parse_cookie(v: &[u8]) -> Vec<Attr<'_>> {
    v.split(|&b| b == b';')
        .map(|part| {
            let part = trim_spaces(part);
            match part.iter().position(|&b| b == b'=') {
                Some(i) => Attr {
                    name: trim_spaces(&part[..i]),
                    value: Some(trim_spaces(&part[i + 1..]).to_vec()),
                    gone: false,
                },
                None => Attr {
                    name: part,
                    value: None,
                    gone: false,
                },
            }
        })
        .collect()
}

fn trim_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' '] = s {
        s = rest;
    }
    s
}

impl Server {
    /// `proxy_cookie_path`, `proxy_cookie_domain` and `proxy_cookie_flags` applied to a
    /// `Set-Cookie` the upstream sent (`ngx_http_proxy_rewrite_cookie`): `Some` with the
    /// cookie written again (its attributes joined by `"; "`, as nginx writes it) when a rule
    /// rewrote its `path` or `domain` or a flags rule named it, `None` to pass it as it is.
    pub fn proxy_cookie(&self, req: &Request, p: &Proxy, value: &[u8]) -> Option<Vec<u8>> {
        let conf = self.conf_for(&p.state)?;
        let s = &conf.settings.proxy;
        if s.cookie_paths.is_empty() && s.cookie_domains.is_empty() && s.cookie_flags.is_empty() {
            return None;
        }
        let mut attrs = parse_cookie(value);
        attrs.first()?.value.as_ref()?;
        let cx = self.proxy_ctx(req, p);
        let mut changed = false;
        for a in attrs.iter_mut().skip(1) {
            let Some(v) = &a.value else { continue };
            let new = if a.name.eq_ignore_ascii_case(b"domain") {
                cookie_rewrite(&cx, &s.cookie_domains, v, true)
            } else if a.name.eq_ignore_ascii_case(b"path") {
                cookie_rewrite(&cx, &s.cookie_paths, v, false)
            } else {
                None
            };
            if let Some(new) = new {
                a.value = Some(new);
                changed = true;
            }
        }
        if !s.cookie_flags.is_empty() {
            changed |= cookie_flags(&cx, &s.cookie_flags, &mut attrs);
        }
        changed.then(|| {
            let mut out = Vec::with_capacity(value.len() + 16);
            for (i, a) in attrs.iter().enumerate() {
                if a.gone {
                    continue;
                }
                if i > 0 {
                    out.extend_from_slice(b"; ");
                }
                out.extend_from_slice(a.name);
                if let Some(v) = &a.value {
                    out.push(b'=');
                    out.extend_from_slice(v);
                }
            }
            out
        })
    }
}

/// `proxy_cookie_flags`' flags, as `ngx_http_proxy_cookie_flags_masks` names them.
const SECURE_ON: u16 = 1;
const SECURE_OFF: u16 = 1 << 1;
const HTTPONLY_ON: u16 = 1 << 2;
const HTTPONLY_OFF: u16 = 1 << 3;
const SAMESITE_STRICT: u16 = 1 << 4;
const SAMESITE_LAX: u16 = 1 << 5;
const SAMESITE_NONE: u16 = 1 << 6;
const SAMESITE_OFF: u16 = 1 << 7;
const FLAG_NAMES: [(&[u8], u16); 8] = [
    (b"secure", SECURE_ON),
    (b"nosecure", SECURE_OFF),
    (b"httponly", HTTPONLY_ON),
    (b"nohttponly", HTTPONLY_OFF),
    (b"samesite=strict", SAMESITE_STRICT),
    (b"samesite=lax", SAMESITE_LAX),
    (b"samesite=none", SAMESITE_NONE),
    (b"nosamesite", SAMESITE_OFF),
];

/// `proxy_cookie_flags` (`ngx_http_proxy_rewrite_cookie_flags`, `..._edit_cookie_flags`): the
/// first rule naming the cookie (its name without case, or a caseless regex) gives its flags;
/// a flag the cookie has is kept where it is (a `SameSite` of another value rewritten in
/// place), one it should not have is taken off, one it lacks is added at its end, `Secure`,
/// `HttpOnly`, `SameSite` in that order. Whether a rule named it with a flag nginx knows (then
/// the cookie is written again, as nginx writes it, even when nothing changed).
fn cookie_flags(cx: &Ctx<'_>, rules: &[CookieFlagsRule], attrs: &mut Vec<Attr<'_>>) -> bool {
    let name = attrs[0].name;
    let Some(rule) = rules.iter().find(|r| match &r.cookie {
        CookieName::Regex(re) => matches!(re.is_match(name), Ok(true)),
        CookieName::Name(t) => t.expand(cx, false).eq_ignore_ascii_case(name),
    }) else {
        return false;
    };
    let mut f = 0;
    for t in &rule.flags {
        let v = t.expand(cx, false);
        if let Some((_, bit)) = FLAG_NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(&v)) {
            f |= bit;
        }
    }
    if f == 0 {
        return false;
    }
    let samesite = |f: u16| -> Option<&'static [u8]> {
        if f & SAMESITE_STRICT != 0 {
            Some(b"Strict")
        } else if f & SAMESITE_LAX != 0 {
            Some(b"Lax")
        } else if f & SAMESITE_NONE != 0 {
            Some(b"None")
        } else {
            None
        }
    };
    for a in attrs.iter_mut().skip(1) {
        if a.name.eq_ignore_ascii_case(b"secure") {
            if f & SECURE_ON != 0 {
                f &= !SECURE_ON;
            } else if f & SECURE_OFF != 0 {
                a.gone = true;
            }
        } else if a.name.eq_ignore_ascii_case(b"httponly") {
            if f & HTTPONLY_ON != 0 {
                f &= !HTTPONLY_ON;
            } else if f & HTTPONLY_OFF != 0 {
                a.gone = true;
            }
        } else if a.name.eq_ignore_ascii_case(b"samesite") {
            // The strongest asked for, once: a second `SameSite` meets the next one, as in
            // nginx (which clears each flag as it uses it).
            let (bit, want): (u16, &'static [u8]) = if f & SAMESITE_STRICT != 0 {
                (SAMESITE_STRICT, b"Strict")
            } else if f & SAMESITE_LAX != 0 {
                (SAMESITE_LAX, b"Lax")
            } else if f & SAMESITE_NONE != 0 {
                (SAMESITE_NONE, b"None")
            } else {
                if f & SAMESITE_OFF != 0 {
                    a.gone = true;
                }
                continue;
            };
            f &= !bit;
            if !a
                .value
                .as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case(want))
            {
                a.name = b"SameSite";
                a.value = Some(want.to_vec());
            }
        }
    }
    let added = |name: &'static [u8], value: Option<&[u8]>| Attr {
        name,
        value: value.map(<[u8]>::to_vec),
        gone: false,
    };
    if f & SECURE_ON != 0 {
        attrs.push(added(b"Secure", None));
    }
    if f & HTTPONLY_ON != 0 {
        attrs.push(added(b"HttpOnly", None));
    }
    if let Some(want) = samesite(f) {
        attrs.push(added(b"SameSite", Some(want)));
    }
    true
}

/// The first of `rules` that matches `value` (`ngx_http_proxy_rewrite_cookie_value`): a
/// string is a prefix compared with case (`path`), or the whole name compared without case
/// after a leading dot, which stays (`domain`); a regex replaces the whole value.
fn cookie_rewrite(
    cx: &Ctx<'_>,
    rules: &[RedirectRule],
    value: &[u8],
    domain: bool,
) -> Option<Vec<u8>> {
    for rule in rules {
        let new = match &rule.pattern {
            RedirectPattern::Default => None,
            RedirectPattern::Prefix(t) => {
                let pattern = t.expand(cx, false);
                if domain {
                    let dot = usize::from(value.first() == Some(&b'.'));
                    value[dot..].eq_ignore_ascii_case(&pattern).then(|| {
                        let mut out = value[..dot].to_vec();
                        out.extend(rule.replacement.expand(cx, false));
                        out
                    })
                } else {
                    replace_prefix(value, &pattern, &rule.replacement.expand(cx, false))
                }
            }
            RedirectPattern::Regex(re) => match re.captures(value) {
                Ok(Some(caps)) => Some(rule.replacement.expand(&with_captures(cx, caps), false)),
                _ => None,
            },
        };
        if new.is_some() {
            return new;
        }
    }
    None
}

impl Server {
    /// What the variables of the proxy module's header filters read: the request in the
    /// state it was proxied in, with `$proxy_host` and `$proxy_port`.
    fn proxy_ctx<'r>(&'r self, req: &'r Request, p: &Proxy) -> Ctx<'r> {
        Ctx {
            req,
            server: self,
            st: p.state.clone(),
            proxy: Some((
                p.proxy_host.as_bytes().to_vec(),
                p.proxy_port.as_bytes().to_vec(),
            )),
            answer: None,
        }
    }
}

/// `cx` with a regex's captures as `$1`..`$9`.
fn with_captures<'r>(cx: &Ctx<'r>, caps: crate::regex::Captures) -> Ctx<'r> {
    let mut st = cx.st.clone();
    st.captures = caps;
    Ctx {
        req: cx.req,
        server: cx.server,
        st,
        proxy: cx.proxy.clone(),
        answer: cx.answer,
    }
}

fn replace_prefix(value: &[u8], prefix: &[u8], replacement: &[u8]) -> Option<Vec<u8>> {
    value.starts_with(prefix).then(|| {
        let mut out = replacement.to_vec();
        out.extend_from_slice(&value[prefix.len()..]);
        out
    })
}

/// `ngx_http_proxy_eval`: a `proxy_pass` with variables, read as a URL per request.
fn eval_url(t: &Template, cx: &Ctx<'_>) -> Option<PassTarget> {
    let url = text_or_escaped(t.expand(cx, false));
    let lower = url.get(..7)?.to_ascii_lowercase();
    if lower != "http://" || url.len() <= 7 {
        return None;
    }
    parse_target(&url[7..]).ok()
}

/// The URL as text: a decoded variable (`$uri` of `/p/%FF`, a GBK path of an old client) may
/// hold bytes that are not UTF-8, which nginx sends raw; each such byte is written `%XX`, the
/// same request for the upstream, rather than the whole URL failing with a 500.
fn text_or_escaped(url: Vec<u8>) -> String {
    match String::from_utf8(url) {
        Ok(s) => s,
        Err(e) => {
            let mut out = String::new();
            for chunk in e.as_bytes().utf8_chunks() {
                out.push_str(chunk.valid());
                for b in chunk.invalid() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            out
        }
    }
}

/// The header lines `ngx_http_proxy_create_request` writes: the merged `proxy_set_header`
/// list in order (values that come out empty are not sent), then every client header the
/// list does not name.
fn request_headers(conf: &LocConf, cx: &Ctx<'_>) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let set = &conf.settings.proxy.set_headers;
    let mut names: Vec<String> = set.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
    let mut out = Vec::new();
    for (name, value) in set.iter() {
        let v = value.expand(cx, false);
        if !v.is_empty() {
            out.push((name.clone(), v));
        }
    }
    let body_length = body_length(cx);
    for (name, value) in DEFAULT_HEADERS {
        let lower = name.to_ascii_lowercase();
        if names.contains(&lower) {
            continue;
        }
        names.push(lower.clone());
        let v = match lower.as_str() {
            "host" => cx.proxy.as_ref().map(|p| p.0.clone()).unwrap_or_default(),
            "content-length" => body_length
                .map(|n| n.to_string().into_bytes())
                .unwrap_or_default(),
            "transfer-encoding" => {
                if body_length.is_none() && chunked(cx) {
                    b"chunked".to_vec()
                } else {
                    Vec::new()
                }
            }
            _ => value.as_bytes().to_vec(),
        };
        if !v.is_empty() {
            out.push((name.to_string(), v));
        }
    }
    for (name, value) in &cx.req.headers {
        if !names.contains(&name.to_ascii_lowercase()) {
            out.push((name.clone(), value.clone()));
        }
    }
    (out, names)
}

fn chunked(cx: &Ctx<'_>) -> bool {
    cx.req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"))
}

/// `$proxy_internal_body_length`: the length of the body nginx sends, known up front from the
/// client's Content-Length (a chunked body is sent chunked).
fn body_length(cx: &Ctx<'_>) -> Option<u64> {
    if chunked(cx) {
        return None;
    }
    cx.req.content_length()
}
