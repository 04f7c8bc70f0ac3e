//! The setting directives of a level (`root`, `error_page`, `proxy_set_header`, `gzip`...),
//! merged over the inherited settings as nginx's merge_loc_conf functions do: a level that sets
//! any of a list directive (`add_header`, `proxy_set_header`, `error_page`, `allow`/`deny`)
//! replaces the inherited list. So does a `types` block the inherited map (two blocks on one
//! level are one map).

use std::sync::Arc;

use super::build::{not_allowed, Builder, Level};
use super::directives::{self as dir, args, nargs, no_block, on_off, template};
use super::model::{
    AccessLogFile, GzipDisable, GzipProxied, GzipStatic, HeaderBuffers, HttpVersion, ProxyRedirect,
    Settings, CHARSET_TYPES, CONNECTION_POOL_SIZE, HEADER_BUFFERS_MAX,
};
use super::proxy_args;
use super::{Directive, ParseError};
use crate::mime::MimeTypes;

/// Which list directives this level has set (they replace, not extend, the inherited list).
#[derive(Default)]
struct Fresh {
    error_page: bool,
    access: bool,
    add_header: bool,
    proxy_set_header: bool,
    proxy_redirect: bool,
    gzip_types: bool,
    gzip_disable: bool,
    types: bool,
    default_type: bool,
    charset: bool,
    source_charset: bool,
    override_charset: bool,
    charset_types: bool,
    access_log: bool,
    hide_headers: bool,
    ignore_headers: bool,
    real_ip_from: bool,
    cookie_paths: bool,
    cookie_paths_off: bool,
    cookie_domains: bool,
    next_upstream: bool,
    next_upstream_off: bool,
    cookie_domains_off: bool,
    cookie_flags: bool,
    cookie_flags_off: bool,
    /// `access_log off;` on this level: whatever else the level names, nothing is logged.
    access_off: bool,
    /// `root` or `alias`, when this level wrote one: a second is nginx's "is duplicate".
    root: Option<String>,
}

impl Builder {
    /// The setting directives of one level, merged over the inherited `s`.
    pub(super) fn settings(
        &mut self,
        block: &[Directive],
        s: &mut Settings,
        level: Level,
    ) -> Result<(), ParseError> {
        let mut fresh = Fresh::default();
        for d in block {
            if !is_setting(&d.name) {
                continue;
            }
            // The settings nginx allows in an `if` in a location (NGX_HTTP_LIF_CONF); nginx
            // checks where a directive is before its block.
            if level == Level::If
                && !matches!(
                    d.name.as_str(),
                    "root"
                        | "error_page"
                        | "add_header"
                        | "expires"
                        | "gzip"
                        | "access_log"
                        | "charset"
                        | "source_charset"
                        | "override_charset"
                        | "sendfile"
                        | "rewrite_log"
                        | "uninitialized_variable_warn"
                )
            {
                return Err(not_allowed(d));
            }
            if d.name == "types" {
                self.types(d, s, &mut fresh.types)?;
                continue;
            }
            no_block(d)?;
            match d.name.as_str() {
                "root" | "alias" => {
                    nargs(d, |n| n == 1)?;
                    if d.name == "alias" && level != Level::Location {
                        return Err(d.pos.error(if level == Level::Named {
                            "the \"alias\" directive cannot be used inside the named location"
                        } else {
                            "\"alias\" directive is not allowed here"
                        }));
                    }
                    // ngx_http_core_root: one of the two per level, and once.
                    if let Some(earlier) = &fresh.root {
                        return Err(d.pos.error(if *earlier == d.name {
                            format!("\"{}\" directive is duplicate", d.name)
                        } else {
                            format!(
                                "\"{}\" directive is duplicate, \"{earlier}\" directive was specified earlier",
                                d.name
                            )
                        }));
                    }
                    fresh.root = Some(d.name.clone());
                    let mut v = d.args[0].text.clone();
                    // ngx_http_core_root: a root loses its trailing '/'; an alias keeps it.
                    if d.name == "root" && v.len() > 1 && v.ends_with('/') {
                        v.pop();
                    }
                    let t = template(d, &v)?;
                    self.uses(d, &t);
                    if d.name == "root" {
                        s.root = t;
                        s.root_written = true;
                        s.alias = None;
                    } else {
                        s.alias = Some(t);
                    }
                }
                "index" => {
                    nargs(d, |n| n >= 1)?;
                    s.index = args(d)
                        .iter()
                        .map(|a| template(d, a))
                        .collect::<Result<_, _>>()?;
                    for t in s.index.clone() {
                        self.uses(d, &t);
                    }
                }
                "absolute_redirect" => s.absolute_redirect = on_off(d)?,
                "port_in_redirect" => s.port_in_redirect = on_off(d)?,
                "server_name_in_redirect" => s.server_name_in_redirect = on_off(d)?,
                "internal" => {
                    nargs(d, |n| n == 0)?;
                    if level != Level::Location {
                        return Err(d.pos.error("\"internal\" directive is not allowed here"));
                    }
                    s.internal = true;
                }
                "client_max_body_size" => {
                    nargs(d, |n| n == 1)?;
                    s.client_max_body_size = dir::size(d, &d.args[0].text)?;
                }
                "error_page" => {
                    let pages = dir::error_page(d)?;
                    for p in &pages {
                        self.uses(d, &p.value);
                    }
                    extend(&mut s.error_pages, &mut fresh.error_page, pages);
                }
                "allow" | "deny" => {
                    let r = dir::access_rule(d)?;
                    extend(&mut s.access, &mut fresh.access, vec![r]);
                }
                "add_header" => {
                    nargs(d, |n| n == 2 || n == 3)?;
                    if let Some(p) = d.args.get(2) {
                        if p.text != "always" {
                            return Err(d.pos.error(format!("invalid parameter \"{}\"", p.text)));
                        }
                    }
                    let value = dir::header_value(d, &d.args[1].text)?;
                    self.uses(d, &value);
                    let h = super::model::AddHeader {
                        name: d.args[0].text.clone(),
                        value,
                        always: d.args.len() == 3,
                    };
                    extend(&mut s.add_headers, &mut fresh.add_header, vec![h]);
                }
                "expires" => {
                    let (fixed, value) = dir::expires(d)?;
                    if let Some(v) = &value {
                        self.uses(d, &v.value);
                    }
                    s.expires = fixed;
                    s.expires_value = value.map(Arc::new);
                }
                "proxy_set_header" => {
                    nargs(d, |n| n == 2)?;
                    let value = dir::header_value(d, &d.args[1].text)?;
                    self.uses(d, &value);
                    let h = (d.args[0].text.clone(), value);
                    extend(
                        &mut s.proxy.set_headers,
                        &mut fresh.proxy_set_header,
                        vec![h],
                    );
                }
                "proxy_redirect" => {
                    nargs(d, |n| n == 1 || n == 2)?;
                    let a = args(d);
                    if a.len() == 1 && a[0] == "off" {
                        if fresh.proxy_redirect {
                            return Err(d.pos.error("\"proxy_redirect\" directive is duplicate"));
                        }
                        s.proxy.redirect = ProxyRedirect::Off;
                        fresh.proxy_redirect = true;
                        continue;
                    }
                    if a.len() == 1 && a[0] != "default" {
                        return Err(d.pos.error(format!("invalid parameter \"{}\"", a[0])));
                    }
                    if a.len() == 1 && !block.iter().any(|c| c.name == "proxy_pass") {
                        return Err(d.pos.error(
                            "\"proxy_redirect default\" should be placed after the \
                             \"proxy_pass\" directive",
                        ));
                    }
                    let rule = proxy_args::redirect_rule(d)?;
                    if let super::model::RedirectPattern::Prefix(t) = &rule.pattern {
                        self.uses(d, t);
                    }
                    self.uses(d, &rule.replacement);
                    let mut rules = match (&s.proxy.redirect, fresh.proxy_redirect) {
                        (ProxyRedirect::Rules(r), true) => r.to_vec(),
                        (ProxyRedirect::Off, true) => {
                            return Err(d.pos.error("\"proxy_redirect\" directive is duplicate"))
                        }
                        _ => Vec::new(),
                    };
                    rules.push(rule);
                    s.proxy.redirect = ProxyRedirect::Rules(Arc::from(rules));
                    fresh.proxy_redirect = true;
                }
                "proxy_connect_timeout" => s.proxy.connect_timeout = dir::duration(d)?,
                "proxy_read_timeout" => s.proxy.read_timeout = dir::duration(d)?,
                "proxy_send_timeout" => s.proxy.send_timeout = dir::duration(d)?,
                "proxy_http_version" => {
                    nargs(d, |n| n == 1)?;
                    s.proxy.http_version = match d.args[0].text.as_str() {
                        "1.0" => HttpVersion::V10,
                        "1.1" => HttpVersion::V11,
                        v => {
                            return Err(d.pos.error(format!(
                                "invalid value \"{v}\" in \"proxy_http_version\" directive, \
                                 it must be \"1.0\" or \"1.1\""
                            )))
                        }
                    };
                }
                "proxy_intercept_errors" => s.proxy.intercept_errors = on_off(d)?,
                "gzip" => s.gzip.on = on_off(d)?,
                "access_log" => {
                    nargs(d, |n| n >= 1)?;
                    // The first of a level replaces what the level inherited.
                    if !fresh.access_log {
                        fresh.access_log = true;
                        s.access_log = true;
                        s.access_files = Arc::from(Vec::new());
                    }
                    if d.args[0].text == "off" {
                        if let Some(a) = d.args.get(1) {
                            return Err(d.pos.error(format!("invalid parameter \"{}\"", a.text)));
                        }
                        fresh.access_off = true;
                    } else if let Some(file) = self.access_log_file(d)? {
                        let mut files = s.access_files.to_vec();
                        files.push(file);
                        s.access_files = Arc::from(files);
                    }
                }
                "log_not_found" => s.log_not_found = on_off(d)?,
                "gzip_vary" => s.gzip.vary = on_off(d)?,
                "gzip_comp_level" => {
                    nargs(d, |n| n == 1)?;
                    s.gzip.comp_level = d.args[0]
                        .text
                        .parse()
                        .ok()
                        .filter(|l| (1..=9).contains(l))
                        .ok_or_else(|| d.pos.error("invalid value, must be between 1 and 9"))?;
                }
                "gzip_min_length" => {
                    nargs(d, |n| n == 1)?;
                    s.gzip.min_length = dir::size_slot(d, &d.args[0].text)?;
                }
                "gzip_types" => {
                    nargs(d, |n| n >= 1)?;
                    let mut types: Vec<String> = if fresh.gzip_types {
                        s.gzip.types.to_vec()
                    } else {
                        vec!["text/html".to_owned()]
                    };
                    types.extend(args(d).iter().map(|t| t.to_ascii_lowercase()));
                    s.gzip.types = Arc::from(types);
                    fresh.gzip_types = true;
                }
                "gzip_proxied" => {
                    nargs(d, |n| n >= 1)?;
                    let mut p = GzipProxied::default();
                    for a in args(d) {
                        match a {
                            "off" => p = GzipProxied::default(),
                            "any" => p.any = true,
                            "expired" => p.expired = true,
                            "no-cache" => p.no_cache = true,
                            "no-store" => p.no_store = true,
                            "private" => p.private = true,
                            "no_last_modified" => p.no_last_modified = true,
                            "no_etag" => p.no_etag = true,
                            "auth" => p.auth = true,
                            v => return Err(d.pos.error(format!("invalid value \"{v}\""))),
                        }
                    }
                    s.gzip.proxied = p;
                }
                "gzip_disable" => {
                    nargs(d, |n| n >= 1)?;
                    let mut list: Vec<GzipDisable> = if fresh.gzip_disable {
                        s.gzip.disable.to_vec()
                    } else {
                        Vec::new()
                    };
                    for a in args(d) {
                        list.push(if a == "msie6" {
                            GzipDisable::Msie6
                        } else {
                            GzipDisable::Regex(dir::regex(d, a, true)?)
                        });
                    }
                    s.gzip.disable = Arc::from(list);
                    fresh.gzip_disable = true;
                }
                "default_type" => {
                    nargs(d, |n| n == 1)?;
                    // `ngx_conf_set_str_slot`: once per level.
                    if fresh.default_type {
                        return Err(d.pos.error("\"default_type\" directive is duplicate"));
                    }
                    let value = dir::header_text(d, &d.args[0].text)?;
                    s.default_type = Some(Arc::from(value.as_str()));
                    fresh.default_type = true;
                }
                "charset" | "source_charset" => {
                    nargs(d, |n| n == 1)?;
                    let (seen, slot) = if d.name == "charset" {
                        (&mut fresh.charset, &mut s.charset)
                    } else {
                        (&mut fresh.source_charset, &mut s.source_charset)
                    };
                    // `ngx_http_set_charset_slot`: once per level.
                    if std::mem::replace(seen, true) {
                        return Err(d
                            .pos
                            .error(format!("\"{}\" directive is duplicate", d.name)));
                    }
                    let v = d.args[0].text.as_str();
                    if v.starts_with('$') {
                        self.unsupported(d, Some(format!("{} from a variable", d.name)));
                        continue;
                    }
                    // Only `charset` has `off`; `source_charset off` names a charset "off".
                    *slot = if d.name == "charset" && v == "off" {
                        None
                    } else {
                        Some(self.charset_name(v))
                    };
                }
                "override_charset" => {
                    if std::mem::replace(&mut fresh.override_charset, true) {
                        return Err(d.pos.error("\"override_charset\" directive is duplicate"));
                    }
                    s.override_charset = on_off(d)?;
                }
                "charset_types" => {
                    nargs(d, |n| n >= 1)?;
                    // `ngx_http_types_slot`: the first on a level starts from the first
                    // default (`text/html`) only, and `*` (any type) ends the list for good.
                    let mut types: Vec<String> = if fresh.charset_types {
                        s.charset_types.to_vec()
                    } else {
                        vec![CHARSET_TYPES[0].to_owned()]
                    };
                    fresh.charset_types = true;
                    if types.iter().any(|t| t == "*") {
                        continue;
                    }
                    for a in args(d) {
                        if a == "*" {
                            types = vec!["*".to_owned()];
                            break;
                        }
                        types.push(a.to_ascii_lowercase());
                    }
                    s.charset_types = Arc::from(types);
                }
                "keepalive_timeout" => {
                    nargs(d, |n| n == 1 || n == 2)?;
                    if d.args.len() == 2 {
                        self.unsupported(
                            d,
                            Some("a second value (the Keep-Alive header's timeout)".into()),
                        );
                        continue;
                    }
                    s.keepalive_timeout = Some(dir::duration(d)?);
                }
                "chunked_transfer_encoding" => {
                    on_off(d)?;
                    self.noted(
                        d,
                        "how an answer of unknown length is framed to the client: the gateway \
                         chunks it for HTTP/1.1 clients (`off` ends it by closing the connection); \
                         the bytes the client reads are the same",
                    );
                }
                "lingering_close" => {
                    nargs(d, |n| n == 1)?;
                    if !matches!(d.args[0].text.as_str(), "on" | "off" | "always") {
                        return Err(d.pos.error(format!(
                            "invalid value \"{}\" in \"lingering_close\" directive, it must be \
                             \"on\", \"off\" or \"always\"",
                            d.args[0].text
                        )));
                    }
                    self.noted(
                        d,
                        "how nginx drains a client's unread body before closing; the gateway reads \
                         off a short one and closes on a long one",
                    );
                }
                "proxy_pass_request_headers" | "proxy_pass_request_body" | "merge_slashes" => {
                    if d.name == "merge_slashes" && !matches!(level, Level::Http | Level::Server) {
                        return Err(not_allowed(d));
                    }
                    if on_off(d)? {
                        self.noted(d, "nginx's default, which the gateway does as well");
                    } else {
                        let what = match d.name.as_str() {
                            "merge_slashes" => "matching locations on a path whose `//` are kept",
                            "proxy_pass_request_headers" => {
                                "an upstream request without the client's headers"
                            }
                            _ => "an upstream request without the client's body",
                        };
                        self.unsupported(d, Some(format!("`off`: {what}")));
                    }
                }
                "sendfile" | "tcp_nopush" | "tcp_nodelay" => {
                    on_off(d)?;
                    self.noted(
                        d,
                        "how nginx writes to the socket; the gateway streams files in chunks and \
                         sends what it has at once",
                    );
                }
                "proxy_buffering" | "proxy_request_buffering" => {
                    on_off(d)?;
                    self.noted(
                        d,
                        "the gateway passes bodies on as they come, both ways (what `off` \
                         asks); the bytes the client and the upstream get are the same either way",
                    );
                }
                "proxy_buffer_size" | "proxy_busy_buffers_size" => {
                    nargs(d, |n| n == 1)?;
                    dir::size_slot(d, &d.args[0].text)?;
                    self.noted(
                        d,
                        "nginx's buffer sizes; the gateway sizes its own and takes an upstream \
                         header of up to 1 MiB (nginx's default is 4 KiB)",
                    );
                }
                "open_file_cache" => {
                    nargs(d, |n| (1..=2).contains(&n))?;
                    let ok = match d.args[0].text.as_str() {
                        "off" => d.args.len() == 1,
                        a => {
                            a.strip_prefix("max=")
                                .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n > 0))
                                && d.args[1..].iter().all(|i| {
                                    i.text
                                        .strip_prefix("inactive=")
                                        .is_some_and(|t| dir::time(t, true).is_some())
                                })
                        }
                    };
                    if !ok {
                        return Err(d.pos.error(format!(
                            "invalid \"open_file_cache\" parameter \"{}\"",
                            d.args.last().map_or("", |a| a.text.as_str())
                        )));
                    }
                    self.noted(
                        d,
                        "nginx's cache of open files; the gateway opens each file it serves",
                    );
                }
                "open_file_cache_valid" | "open_file_cache_min_uses" | "open_file_cache_errors" => {
                    nargs(d, |n| n == 1)?;
                    let a = d.args[0].text.as_str();
                    let ok = match d.name.as_str() {
                        "open_file_cache_valid" => dir::time(a, true).is_some(),
                        "open_file_cache_min_uses" => a.parse::<u64>().is_ok(),
                        _ => on_off(d).is_ok(),
                    };
                    if !ok {
                        return Err(d
                            .pos
                            .error(format!("\"{}\" directive invalid value", d.name)));
                    }
                    self.noted(
                        d,
                        "nginx's cache of open files; the gateway opens each file it serves",
                    );
                }
                "proxy_temp_file_write_size" | "proxy_max_temp_file_size" => {
                    nargs(d, |n| n == 1)?;
                    dir::size_slot(d, &d.args[0].text)?;
                    self.noted(
                        d,
                        "nginx's temporary files for an answer it buffers; the gateway passes \
                         answers on as they come",
                    );
                }
                "proxy_temp_path" | "client_body_temp_path" => {
                    nargs(d, |n| (1..=4).contains(&n))?;
                    self.noted(
                        d,
                        "where nginx keeps temporary files; the gateway passes bodies on as they \
                         come",
                    );
                }
                "proxy_cache" => {
                    nargs(d, |n| n == 1)?;
                    if d.args[0].text == "off" {
                        self.noted(d, "nginx's default: the gateway keeps no cache of answers");
                    } else {
                        // A cache zone: listed with the other lines the gateway cannot honour.
                        self.unsupported(d, None);
                    }
                }
                "resolver" | "resolver_timeout" => {
                    nargs(d, |n| n >= 1)?;
                    if d.name == "resolver_timeout" && dir::time(&d.args[0].text, false).is_none() {
                        return Err(d.pos.error("\"resolver_timeout\" directive invalid value"));
                    }
                    self.noted(
                        d,
                        "an upstream's name is resolved by the system's resolver when the \
                         configuration loads",
                    );
                }
                "proxy_cache_bypass" | "proxy_no_cache" => {
                    nargs(d, |n| n >= 1)?;
                    self.noted(
                        d,
                        "the gateway keeps no cache of answers: every request goes to the \
                         upstream",
                    );
                }
                "client_body_buffer_size" => {
                    nargs(d, |n| n == 1)?;
                    dir::size_slot(d, &d.args[0].text)?;
                    self.noted(
                        d,
                        "nginx's memory for a body before a temporary file; the gateway passes \
                         bodies on as they come",
                    );
                }
                "underscores_in_headers" | "ignore_invalid_headers" => {
                    // NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF.
                    if !matches!(level, Level::Http | Level::Server) {
                        return Err(not_allowed(d));
                    }
                    let on = on_off(d)?;
                    if d.name == "underscores_in_headers" {
                        s.underscores_in_headers = on;
                    } else {
                        s.ignore_invalid_headers = on;
                    }
                }
                "gzip_static" => {
                    nargs(d, |n| n == 1)?;
                    s.gzip.static_files = match d.args[0].text.as_str() {
                        "off" => GzipStatic::Off,
                        "on" => GzipStatic::On,
                        "always" => GzipStatic::Always,
                        v => {
                            return Err(d.pos.error(format!(
                                "invalid value \"{v}\" in \"gzip_static\" directive, it must \
                                 be \"on\", \"off\" or \"always\""
                            )))
                        }
                    };
                }
                "gzip_http_version" => {
                    nargs(d, |n| n == 1)?;
                    s.gzip.http_10 = match d.args[0].text.as_str() {
                        "1.0" => true,
                        "1.1" => false,
                        v => {
                            return Err(d.pos.error(format!(
                                "invalid value \"{v}\" in \"gzip_http_version\" directive, it \
                                 must be \"1.0\" or \"1.1\""
                            )))
                        }
                    };
                }
                "proxy_cookie_path" | "proxy_cookie_domain" => {
                    nargs(d, |n| n == 1 || n == 2)?;
                    let path = d.name == "proxy_cookie_path";
                    let (list, fresh_list, off) = if path {
                        (
                            &mut s.proxy.cookie_paths,
                            &mut fresh.cookie_paths,
                            &mut fresh.cookie_paths_off,
                        )
                    } else {
                        (
                            &mut s.proxy.cookie_domains,
                            &mut fresh.cookie_domains,
                            &mut fresh.cookie_domains_off,
                        )
                    };
                    if d.args.len() == 1 {
                        if d.args[0].text != "off" {
                            return Err(d
                                .pos
                                .error(format!("invalid parameter \"{}\"", d.args[0].text)));
                        }
                        *list = Arc::from(Vec::new());
                        *fresh_list = true;
                        *off = true;
                        continue;
                    }
                    // ngx_http_proxy_cookie_path: after `off`, the level's others do nothing.
                    if *off {
                        continue;
                    }
                    let mut rule = proxy_args::redirect_rule(d)?;
                    if !path {
                        // ngx_http_proxy_cookie_domain: a leading dot is no part of the name.
                        if let super::model::RedirectPattern::Prefix(t) = &mut rule.pattern {
                            let text = d.args[0].text.strip_prefix('.').unwrap_or(&d.args[0].text);
                            *t = template(d, text)?;
                        }
                        if let Some(r) = d.args[1].text.strip_prefix('.') {
                            rule.replacement = template(d, r)?;
                        }
                    }
                    let (pattern, replacement) = (rule.pattern.clone(), rule.replacement.clone());
                    extend(list, fresh_list, vec![rule]);
                    if let super::model::RedirectPattern::Prefix(t) = &pattern {
                        self.uses(d, t);
                    }
                    self.uses(d, &replacement);
                }
                "proxy_cookie_flags" => {
                    nargs(d, |n| (1..=4).contains(&n))?;
                    let duplicate = || d.pos.error("\"proxy_cookie_flags\" directive is duplicate");
                    if d.args.len() == 1 {
                        // ngx_http_proxy_cookie_flags: `off` alone on its level.
                        if d.args[0].text != "off" {
                            return Err(d
                                .pos
                                .error(format!("invalid parameter \"{}\"", d.args[0].text)));
                        }
                        if fresh.cookie_flags {
                            return Err(duplicate());
                        }
                        s.proxy.cookie_flags = Arc::from(Vec::new());
                        fresh.cookie_flags = true;
                        fresh.cookie_flags_off = true;
                        continue;
                    }
                    if fresh.cookie_flags_off {
                        return Err(duplicate());
                    }
                    let name = &d.args[0].text;
                    let cookie = match name.strip_prefix('~') {
                        Some(re) => super::model::CookieName::Regex(dir::regex(d, re, true)?),
                        None => {
                            let t = template(d, name)?;
                            self.uses(d, &t);
                            super::model::CookieName::Name(t)
                        }
                    };
                    let mut flags = Vec::new();
                    for a in &d.args[1..] {
                        let t = template(d, &a.text)?;
                        self.uses(d, &t);
                        flags.push(t);
                    }
                    let rule = super::model::CookieFlagsRule { cookie, flags };
                    extend(
                        &mut s.proxy.cookie_flags,
                        &mut fresh.cookie_flags,
                        vec![rule],
                    );
                }
                "autoindex" | "autoindex_exact_size" | "autoindex_localtime" => {
                    let on = on_off(d)?;
                    let o = &mut s.autoindex_options;
                    match d.name.as_str() {
                        "autoindex" => s.autoindex = on.then_some(*o),
                        "autoindex_exact_size" => o.exact_size = on,
                        _ => o.localtime = on,
                    }
                }
                "autoindex_format" => {
                    nargs(d, |n| n == 1)?;
                    let v = d.args[0].text.as_str();
                    s.autoindex_options.format = crate::autoindex::Format::parse(v)
                        .ok_or_else(|| d.pos.error(format!("invalid value \"{v}\"")))?;
                }
                "set_real_ip_from" => {
                    nargs(d, |n| n == 1)?;
                    let v = d.args[0].text.as_str();
                    // A unix socket's clients: the gateway listens on none.
                    let nets = if v == "unix:" {
                        Vec::new()
                    } else {
                        vec![dir::net(d, v)?]
                    };
                    extend(&mut s.real_ip_from, &mut fresh.real_ip_from, nets);
                }
                "real_ip_header" => {
                    nargs(d, |n| n == 1)?;
                    if d.args[0].text == "proxy_protocol" {
                        self.unsupported(
                            d,
                            Some("the gateway's listener speaks no PROXY protocol".into()),
                        );
                    } else {
                        s.real_ip_header = Arc::from(d.args[0].text.to_ascii_lowercase());
                    }
                }
                "real_ip_recursive" => s.real_ip_recursive = on_off(d)?,
                "etag" => s.etag = on_off(d)?,
                "if_modified_since" => {
                    nargs(d, |n| n == 1)?;
                    s.if_modified_since = match d.args[0].text.as_str() {
                        "off" => super::model::ModifiedSince::Off,
                        "exact" => super::model::ModifiedSince::Exact,
                        "before" => super::model::ModifiedSince::Before,
                        other => {
                            return Err(d.pos.error(format!(
                                "invalid value \"{other}\" in \"if_modified_since\" directive, \
                                 it must be \"off\", \"exact\" or \"before\""
                            )))
                        }
                    };
                }
                "valid_referers" => {
                    // NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF.
                    if !matches!(level, Level::Server | Level::Location) {
                        return Err(not_allowed(d));
                    }
                    nargs(d, |n| n >= 1)?;
                    let mut r = super::model::ValidReferers::default();
                    for a in &d.args {
                        match a.text.as_str() {
                            "none" => r.none = true,
                            "blocked" => r.blocked = true,
                            "server_names" => r.server_names = true,
                            t if t.starts_with('~') => {
                                let (src, caseless) = match t.strip_prefix("~*") {
                                    Some(src) => (src, true),
                                    None => (&t[1..], false),
                                };
                                let re = crate::regex::NgxRegex::new(src, caseless)
                                    .map_err(|e| d.pos.error(format!("{e} in \"{t}\"")))?;
                                r.regexes.push(re);
                            }
                            t => {
                                let (host, uri) = match t.find('/') {
                                    Some(i) => (&t[..i], t.as_bytes()[i..].to_vec()),
                                    None => (t, Vec::new()),
                                };
                                r.hosts.push((host.to_ascii_lowercase(), uri));
                            }
                        }
                    }
                    s.referers = Some(Arc::new(r));
                }
                "proxy_ignore_headers" => {
                    // ngx_conf_set_bitmask_slot: the names OR-ed on one level, which replaces
                    // the inherited set.
                    nargs(d, |n| n >= 1)?;
                    if !fresh.ignore_headers {
                        s.proxy.ignore_accel_redirect = false;
                        fresh.ignore_headers = true;
                    }
                    for a in &d.args {
                        let known = IGNORABLE_HEADERS
                            .iter()
                            .any(|h| h.eq_ignore_ascii_case(&a.text));
                        if !known {
                            return Err(d.pos.error(format!(
                                "invalid value \"{}\" in \"{}\" directive",
                                a.text, d.name
                            )));
                        }
                        if a.text.eq_ignore_ascii_case("X-Accel-Redirect") {
                            s.proxy.ignore_accel_redirect = true;
                        } else {
                            self.noted(
                                d,
                                "the gateway acts on no upstream header but X-Accel-Redirect \
                                 (nginx's cache and rate headers have nothing to act on here)",
                            );
                        }
                    }
                }
                "proxy_hide_header" => {
                    nargs(d, |n| n == 1)?;
                    extend(
                        &mut s.proxy.hide_headers,
                        &mut fresh.hide_headers,
                        vec![d.args[0].text.to_ascii_lowercase()],
                    );
                }
                name if HASH_SIZES.contains(&name) => {
                    nargs(d, |n| n == 1)?;
                    if dir::size_slot(d, &d.args[0].text)? == 0 {
                        return Err(d
                            .pos
                            .error(format!("\"{}\" directive invalid value", d.name)));
                    }
                    self.noted(
                        d,
                        "the size of one of nginx's lookup tables; the gateway sizes its own",
                    );
                }
                name if another_protocols_setting(name) => {
                    nargs(d, |n| n >= 1)?;
                    self.noted(
                        d,
                        "configures a module nginx uses only with its `_pass` (FastCGI, uwsgi, \
                         SCGI, gRPC), which the gateway refuses where it appears",
                    );
                }
                "aio"
                | "directio"
                | "directio_alignment"
                | "output_buffers"
                | "postpone_output"
                | "proxy_socket_keepalive"
                | "read_ahead" => {
                    nargs(d, |n| n >= 1)?;
                    self.noted(
                        d,
                        "how nginx reads files and writes to sockets; the bytes sent are the same",
                    );
                }
                "gzip_buffers" => {
                    nargs(d, |n| n == 2)?;
                    let n = &d.args[0].text;
                    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n == "0" {
                        return Err(d.pos.error("\"gzip_buffers\" directive invalid value"));
                    }
                    dir::size_slot(d, &d.args[1].text)?;
                    self.noted(d, "nginx's buffer sizes; the gateway sizes its own");
                }
                "client_body_timeout" => s.client_body_timeout = Some(dir::duration(d)?),
                "send_timeout" => s.send_timeout = Some(dir::duration(d)?),
                "client_header_timeout" => {
                    if !matches!(level, Level::Http | Level::Server) {
                        return Err(not_allowed(d));
                    }
                    dir::duration(d)?;
                    self.noted(
                        d,
                        "the gateway's own limit applies: `[server] header_timeout` for a \
                         request's head",
                    );
                }
                "reset_timedout_connection" | "keepalive_requests" => {
                    if d.name == "keepalive_requests" {
                        nargs(d, |n| n == 1)?;
                        let n = &d.args[0].text;
                        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                            return Err(d
                                .pos
                                .error("\"keepalive_requests\" directive invalid value"));
                        }
                    } else {
                        on_off(d)?;
                    }
                    self.noted(
                        d,
                        "how nginx ends client connections; the gateway keeps a connection until \
                         its keep-alive timeout",
                    );
                }
                "proxy_next_upstream" => {
                    // ngx_conf_set_bitmask_slot: the level's own lines, OR-ed together, replace
                    // the inherited set; `off` wins over the rest (ngx_http_proxy_merge_loc_conf).
                    nargs(d, |n| n >= 1)?;
                    if !fresh.next_upstream {
                        fresh.next_upstream = true;
                        s.proxy.next_upstream = super::model::NextUpstream {
                            error: false,
                            timeout: false,
                            invalid_header: false,
                            non_idempotent: false,
                        };
                    }
                    let mut answers = false;
                    for a in args(d) {
                        let next = &mut s.proxy.next_upstream;
                        match a.to_ascii_lowercase().as_str() {
                            "error" => next.error = true,
                            "timeout" => next.timeout = true,
                            "invalid_header" => next.invalid_header = true,
                            "non_idempotent" => next.non_idempotent = true,
                            "off" => fresh.next_upstream_off = true,
                            "http_500" | "http_502" | "http_503" | "http_504" | "http_403"
                            | "http_404" | "http_429" | "updating" => answers = true,
                            _ => return Err(d.pos.error(format!("invalid value \"{a}\""))),
                        }
                    }
                    if fresh.next_upstream_off {
                        s.proxy.next_upstream = super::model::NextUpstream {
                            error: false,
                            timeout: false,
                            invalid_header: false,
                            non_idempotent: false,
                        };
                    } else if answers {
                        self.noted(
                            d,
                            "an upstream's answer (http_500, ...) is passed to the client: the \
                             next server is tried after an error, a timeout or an invalid header \
                             only",
                        );
                    }
                }
                "proxy_next_upstream_tries" => {
                    nargs(d, |n| n == 1)?;
                    let n = &d.args[0].text;
                    s.proxy.next_upstream_tries = n
                        .parse::<u32>()
                        .ok()
                        .filter(|_| n.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(|| {
                            d.pos
                                .error(format!("\"{}\" directive invalid value", d.name))
                        })?;
                }
                "proxy_next_upstream_timeout" => {
                    nargs(d, |n| n == 1)?;
                    let t = dir::duration(d)?;
                    s.proxy.next_upstream_timeout = (!t.is_zero()).then_some(t);
                }
                "proxy_ignore_client_abort" => {
                    on_off(d)?;
                    self.noted(
                        d,
                        "a client that goes away ends its request upstream as well (nginx's `off`)",
                    );
                }
                "client_header_buffer_size" => {
                    // NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF.
                    if !matches!(level, Level::Http | Level::Server) {
                        return Err(not_allowed(d));
                    }
                    nargs(d, |n| n == 1)?;
                    dir::size_slot(d, &d.args[0].text)?;
                    self.noted(
                        d,
                        "nginx's first buffer for a request's head; what bounds the head here is \
                         `large_client_header_buffers`",
                    );
                }
                "large_client_header_buffers" => {
                    // NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF.
                    if !matches!(level, Level::Http | Level::Server) {
                        return Err(not_allowed(d));
                    }
                    nargs(d, |n| n == 2)?;
                    let invalid = || {
                        d.pos
                            .error(format!("\"{}\" directive invalid value", d.name))
                    };
                    // ngx_conf_set_bufs_slot: digits only, not 0.
                    let n = &d.args[0].text;
                    let number = match n.parse::<u64>() {
                        Ok(n) if n > 0 && d.args[0].text.bytes().all(|b| b.is_ascii_digit()) => n,
                        _ => return Err(invalid()),
                    };
                    let size = dir::size_slot(d, &d.args[1].text)?;
                    if size == 0 {
                        return Err(invalid());
                    }
                    if size < CONNECTION_POOL_SIZE {
                        // ngx_http_core_merge_srv_conf's check.
                        return Err(d.pos.error(
                            "the \"large_client_header_buffers\" size must be equal to or greater \
                             than \"connection_pool_size\"",
                        ));
                    }
                    let total = number.saturating_mul(size);
                    if total > HEADER_BUFFERS_MAX {
                        self.noted(
                            d,
                            "the gateway reads a request's head of at most 1 MiB; longer ones \
                             are refused",
                        );
                    }
                    s.header_buffers = Some(HeaderBuffers {
                        size: size.min(HEADER_BUFFERS_MAX) as usize,
                        total: total.min(HEADER_BUFFERS_MAX) as usize,
                    });
                }
                "proxy_buffers" => {
                    nargs(d, |n| n == 2)?;
                    let n = &d.args[0].text;
                    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n == "0" {
                        return Err(d.pos.error("\"proxy_buffers\" directive invalid value"));
                    }
                    if dir::size_slot(d, &d.args[1].text)? == 0 {
                        return Err(d.pos.error("\"proxy_buffers\" directive invalid value"));
                    }
                    self.noted(d, "nginx's buffer sizes; the gateway sizes its own");
                }
                "satisfy" => {
                    nargs(d, |n| n == 1)?;
                    match d.args[0].text.to_ascii_lowercase().as_str() {
                        "all" => self.noted(d, "the gateway asks for every check a location has"),
                        "any" => self.unsupported(
                            d,
                            Some(
                                "`satisfy any`: the gateway asks for every check a location has; \
                                 keep allow/deny, or give the location a login route"
                                    .to_owned(),
                            ),
                        ),
                        v => return Err(d.pos.error(format!("invalid value \"{v}\""))),
                    }
                }
                "server_tokens" => {
                    nargs(d, |n| n == 1)?;
                    let v = d.args[0].text.as_str();
                    // ngx_conf_set_enum_slot compares without case.
                    if !matches!(v.to_ascii_lowercase().as_str(), "on" | "off" | "build") {
                        return Err(d.pos.error(format!("invalid value \"{v}\"")));
                    }
                    self.noted(
                        d,
                        "the gateway names no nginx version in its headers or pages (what `off` \
                         asks)",
                    );
                }
                "error_log" => {
                    nargs(d, |n| n == 1 || n == 2)?;
                    const LEVELS: &[&str] = &[
                        "debug", "info", "notice", "warn", "error", "crit", "alert", "emerg",
                    ];
                    if let Some(l) = d.args.get(1).filter(|l| !LEVELS.contains(&l.text.as_str())) {
                        return Err(d.pos.error(format!("invalid log level \"{}\"", l.text)));
                    }
                    self.noted(
                        d,
                        "the gateway writes its own error lines to its output, redacted, at the \
                         level `WGW_LOG` sets",
                    );
                }
                "rewrite_log" | "uninitialized_variable_warn" => {
                    on_off(d)?;
                    self.noted(
                        d,
                        "lines of nginx's error log at `notice`/`warn`; the gateway writes no \
                         such lines",
                    );
                }
                "open_log_file_cache" => {
                    nargs(d, |n| (1..=4).contains(&n))?;
                    self.noted(
                        d,
                        "the gateway keeps each log file open, reopened on SIGUSR1",
                    );
                }
                other => unreachable!("is_setting lists {other}"),
            }
        }
        // The options apply wherever they are written on the level, before or after `autoindex`.
        if let Some(a) = &mut s.autoindex {
            *a = s.autoindex_options;
        }
        // ngx_http_log_handler: a level's `off` wins over the files it names.
        if fresh.access_off {
            s.access_log = false;
            s.access_files = Arc::from(Vec::new());
        }
        // ngx_http_charset_merge_loc_conf + postconfiguration: labelling answers of one
        // charset as another takes a `charset_map` to recode them, and nginx does not start
        // without one.
        // (A level that writes neither inherits a pair its parent has been checked for.)
        if let (Some(dst), Some(src)) = (&s.charset, &s.source_charset) {
            let written = block
                .iter()
                .find(|d| d.name == "charset" || d.name == "source_charset");
            if let (false, Some(d)) = (Arc::ptr_eq(dst, src), written) {
                return Err(d.pos.error(format!(
                    "no \"charset_map\" between the charsets \"{src}\" and \"{dst}\": \
                     the gateway does not recode answers"
                )));
            }
        }
        Ok(())
    }

    /// One `access_log PATH [FORMAT] [buffer=SIZE [flush=TIME]] [gzip[=N]] [if=COND]` as
    /// `ngx_http_log_set_log` reads it. The gateway always buffers (off the workers) and
    /// writes out within a few milliseconds, so `buffer=` and `flush=` are checked and have
    /// nothing left to change. `None`: what the gateway does not write (recorded).
    fn access_log_file(&mut self, d: &Directive) -> Result<Option<AccessLogFile>, ParseError> {
        let path = d.args[0].text.as_str();
        if path.starts_with("syslog:") {
            self.unsupported(d, Some("an access log sent to syslog".into()));
            return Ok(None);
        }
        if path.contains('$') {
            self.unsupported(
                d,
                Some(
                    "a log file named by variables; for a file per day, name one file and let \
                     logrotate's daily rotation (with copytruncate, or a reload) split it"
                        .into(),
                ),
            );
            return Ok(None);
        }
        let name = d.args.get(1).map_or("combined", |a| a.text.as_str());
        let format = if name.eq_ignore_ascii_case("combined") {
            self.combined()
        } else {
            self.formats
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
                .cloned()
                .ok_or_else(|| d.pos.error(format!("unknown log format \"{name}\"")))?
        };
        let (mut buffer, mut flush, mut condition) = (false, false, None);
        for a in args(d).iter().skip(2) {
            if let Some(v) = a.strip_prefix("buffer=") {
                if dir::size_slot(d, v).ok().is_none_or(|n| n == 0) {
                    return Err(d.pos.error(format!("invalid buffer size \"{v}\"")));
                }
                buffer = true;
            } else if let Some(v) = a.strip_prefix("flush=") {
                if dir::time(v, false).is_none_or(|t| t <= 0) {
                    return Err(d.pos.error(format!("invalid flush time \"{v}\"")));
                }
                flush = true;
            } else if *a == "gzip" || a.starts_with("gzip=") {
                self.unsupported(d, Some("a gzip-compressed access log".into()));
                return Ok(None);
            } else if let Some(v) = a.strip_prefix("if=") {
                let t = template(d, v)?;
                self.uses(d, &t);
                condition = Some(t);
            } else {
                return Err(d.pos.error(format!("invalid parameter \"{a}\"")));
            }
        }
        if flush && !buffer {
            return Err(d
                .pos
                .error(format!("no buffer is defined for access_log \"{path}\"")));
        }
        let path: Arc<str> = Arc::from(path);
        if !self.log_paths.iter().any(|(p, _)| *p == path) {
            self.log_paths.push((path.clone(), d.pos.clone()));
        }
        Ok(Some(AccessLogFile {
            path,
            format,
            condition,
        }))
    }

    /// `types { TYPE EXT ...; }` as `ngx_http_core_types` reads it: every line is a type and
    /// its extensions (`include` is spliced in by the parser, as `mime.types` is), a later
    /// extension replaces an earlier one, and a second block on the same level adds to the
    /// first.
    fn types(
        &mut self,
        d: &Directive,
        s: &mut Settings,
        fresh: &mut bool,
    ) -> Result<(), ParseError> {
        nargs(d, |n| n == 0)?;
        let Some(block) = &d.block else {
            return Err(d.pos.error("directive \"types\" has no opening \"{\""));
        };
        let mut map = match (&s.types, *fresh) {
            (Some(own), true) => MimeTypes::clone(own),
            _ => MimeTypes::default(),
        };
        for line in block {
            if line.block.is_some() {
                return Err(line.pos.error("unexpected \"{\""));
            }
            let content_type: Arc<str> = Arc::from(line.name.as_str());
            for exten in &line.args {
                map.insert(&exten.text, content_type.clone());
            }
        }
        s.types = Some(Arc::new(map));
        *fresh = true;
        Ok(())
    }
}

/// Replace the inherited list the first time this level sets one, then append.
/// The names `proxy_ignore_headers` takes (`ngx_http_upstream_ignore_headers_masks`).
const IGNORABLE_HEADERS: &[&str] = &[
    "X-Accel-Redirect",
    "X-Accel-Expires",
    "X-Accel-Limit-Rate",
    "X-Accel-Buffering",
    "X-Accel-Charset",
    "Expires",
    "Cache-Control",
    "Set-Cookie",
    "Vary",
];

fn extend<T: Clone>(list: &mut Arc<[T]>, fresh: &mut bool, items: Vec<T>) {
    let mut v: Vec<T> = if *fresh { list.to_vec() } else { Vec::new() };
    v.extend(items);
    *list = Arc::from(v);
    *fresh = true;
}

/// The sizes of nginx's lookup tables: loaded, checked, and listed as changing nothing.
const HASH_SIZES: &[&str] = &[
    "types_hash_max_size",
    "types_hash_bucket_size",
    "server_names_hash_max_size",
    "server_names_hash_bucket_size",
    "variables_hash_max_size",
    "variables_hash_bucket_size",
    "map_hash_max_size",
    "map_hash_bucket_size",
    "proxy_headers_hash_max_size",
    "proxy_headers_hash_bucket_size",
    "referer_hash_max_size",
    "referer_hash_bucket_size",
];

pub(super) fn is_setting(n: &str) -> bool {
    if matches!(
        n,
        "open_file_cache"
            | "open_file_cache_valid"
            | "open_file_cache_min_uses"
            | "open_file_cache_errors"
            | "proxy_temp_file_write_size"
            | "proxy_max_temp_file_size"
            | "proxy_temp_path"
            | "client_body_temp_path"
            | "proxy_cache"
            | "proxy_cache_bypass"
            | "proxy_no_cache"
            | "resolver"
            | "resolver_timeout"
    ) {
        return true;
    }
    matches!(
        n,
        "root"
            | "alias"
            | "index"
            | "absolute_redirect"
            | "port_in_redirect"
            | "server_name_in_redirect"
            | "internal"
            | "client_max_body_size"
            | "error_page"
            | "allow"
            | "deny"
            | "add_header"
            | "expires"
            | "proxy_set_header"
            | "proxy_redirect"
            | "proxy_connect_timeout"
            | "proxy_read_timeout"
            | "proxy_send_timeout"
            | "proxy_http_version"
            | "proxy_intercept_errors"
            | "gzip"
            | "gzip_vary"
            | "gzip_comp_level"
            | "gzip_min_length"
            | "gzip_types"
            | "gzip_proxied"
            | "gzip_disable"
            | "types"
            | "default_type"
            | "access_log"
            | "error_log"
            | "open_log_file_cache"
            | "rewrite_log"
            | "uninitialized_variable_warn"
            | "log_not_found"
            | "charset"
            | "source_charset"
            | "override_charset"
            | "charset_types"
            | "keepalive_timeout"
            | "sendfile"
            | "chunked_transfer_encoding"
            | "lingering_close"
            | "proxy_pass_request_headers"
            | "proxy_pass_request_body"
            | "merge_slashes"
            | "tcp_nopush"
            | "tcp_nodelay"
            | "proxy_buffering"
            | "proxy_request_buffering"
            | "proxy_buffer_size"
            | "proxy_busy_buffers_size"
            | "proxy_buffers"
            | "server_tokens"
            | "satisfy"
            | "client_body_buffer_size"
            | "client_header_buffer_size"
            | "underscores_in_headers"
            | "ignore_invalid_headers"
            | "gzip_http_version"
            | "gzip_static"
            | "proxy_hide_header"
            | "proxy_ignore_headers"
            | "set_real_ip_from"
            | "real_ip_header"
            | "real_ip_recursive"
            | "etag"
            | "if_modified_since"
            | "valid_referers"
            | "proxy_cookie_path"
            | "proxy_cookie_domain"
            | "proxy_cookie_flags"
            | "autoindex"
            | "autoindex_exact_size"
            | "autoindex_localtime"
            | "autoindex_format"
            | "gzip_buffers"
            | "client_header_timeout"
            | "client_body_timeout"
            | "send_timeout"
            | "reset_timedout_connection"
            | "keepalive_requests"
            | "proxy_next_upstream"
            | "proxy_next_upstream_tries"
            | "proxy_next_upstream_timeout"
            | "proxy_ignore_client_abort"
            | "large_client_header_buffers"
            | "aio"
            | "directio"
            | "directio_alignment"
            | "output_buffers"
            | "postpone_output"
            | "proxy_socket_keepalive"
            | "read_ahead"
    ) || HASH_SIZES.contains(&n)
        || another_protocols_setting(n)
}

/// A setting of the FastCGI, uwsgi, SCGI or gRPC module other than its `_pass`: nginx reads it
/// only for a location that passes to that protocol (stock `nginx.conf` files of BaoTa and LNMP
/// set the FastCGI timeouts and buffers for every site, PHP or not).
fn another_protocols_setting(n: &str) -> bool {
    ["fastcgi_", "uwsgi_", "scgi_", "grpc_"]
        .iter()
        .any(|p| n.starts_with(p))
        && !n.ends_with("_pass")
}
