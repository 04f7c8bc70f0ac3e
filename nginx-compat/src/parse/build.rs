//! Directives -> the typed model. Settings of a level are read before its locations (nginx
//! merges them whatever their order in the block); a level that sets any of a list directive
//! (`add_header`, `proxy_set_header`, `error_page`, `allow`/`deny`) replaces the inherited list.
//! Whatever is not implemented is recorded as [`Unsupported`], never skipped.

use std::collections::HashSet;
use std::sync::Arc;

use super::directives::{self as dir, args, nargs, no_block, on_off, template};
use super::model::{
    Config, GzipDisable, GzipProxied, Head, HttpVersion, LimitExcept, LocConf, Map, PassKind,
    ProxyRedirect, Server, Settings, Stmt, Unsupported,
};
use super::{Directive, ParseError, Pos};
use crate::location::{Location, LocationSet, Modifier};
use crate::vars::{is_builtin, is_changeable, Template};

pub(super) fn build(dirs: &[Directive]) -> Result<Config, ParseError> {
    let mut b = Builder::default();
    let mut servers = Vec::new();
    let mut maps = Vec::new();
    b.top(dirs, &mut servers, &mut maps)?;
    b.check_variables();
    let maps: Arc<[Map]> = Arc::from(maps);
    for s in &mut servers {
        s.maps = maps.clone();
    }
    Ok(Config {
        servers,
        maps,
        unsupported: b.unsupported,
    })
}

#[derive(Default)]
struct Builder {
    unsupported: Vec<Unsupported>,
    /// Every variable a value names, with its directive; checked once everything is read,
    /// since `set` and named captures define variables for the whole configuration.
    used: Vec<(String, String, Pos)>,
    defined: HashSet<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Server,
    Location,
    Named,
}

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
}

impl Builder {
    fn unsupported(&mut self, d: &Directive, detail: Option<String>) {
        self.unsupported.push(Unsupported {
            directive: d.name.clone(),
            pos: d.pos.clone(),
            detail,
        });
    }

    fn uses(&mut self, d: &Directive, t: &Template) {
        for v in t.vars() {
            self.used
                .push((v.to_owned(), d.name.clone(), d.pos.clone()));
        }
    }

    fn define_captures(&mut self, re: &crate::regex::NgxRegex) {
        for (_, n) in re.capture_names() {
            self.defined.insert(n.to_ascii_lowercase());
        }
    }

    fn check_variables(&mut self) {
        let used = std::mem::take(&mut self.used);
        let mut seen = HashSet::new();
        for (v, directive, pos) in used {
            if is_builtin(&v) || self.defined.contains(&v) {
                continue;
            }
            if seen.insert((v.clone(), pos.clone())) {
                self.unsupported.push(Unsupported {
                    directive,
                    pos,
                    detail: Some(format!("variable ${v}")),
                });
            }
        }
    }

    fn top(
        &mut self,
        dirs: &[Directive],
        servers: &mut Vec<Server>,
        maps: &mut Vec<Map>,
    ) -> Result<(), ParseError> {
        for d in dirs {
            match d.name.as_str() {
                // A whole nginx.conf: only its http block matters here.
                "http" => self.top(d.block.as_deref().unwrap_or(&[]), servers, maps)?,
                "server" => servers.push(self.server(d)?),
                "map" => {
                    let (m, refused) = dir::map(d)?;
                    self.uses(d, &m.source);
                    for (_, v) in &m.exact {
                        self.uses(d, v);
                    }
                    for (re, v) in &m.regex {
                        self.define_captures(re);
                        self.uses(d, v);
                    }
                    self.uses(d, &m.default);
                    for r in refused {
                        self.unsupported(d, Some(r));
                    }
                    if maps.iter().any(|o| o.name == m.name) {
                        return Err(d.pos.error(format!("duplicate \"{}\" variable", m.name)));
                    }
                    self.defined.insert(m.name.clone());
                    maps.push(m);
                }
                _ => self.unsupported(d, None),
            }
        }
        Ok(())
    }

    fn server(&mut self, d: &Directive) -> Result<Server, ParseError> {
        let Some(block) = &d.block else {
            return Err(d.pos.error("directive \"server\" has no opening \"{\""));
        };
        let mut settings = Settings::default();
        self.settings(block, &mut settings, Level::Server)?;
        let settings = Arc::new(settings);
        let mut root = LocConf {
            head: Head::Server,
            stmts: Vec::new(),
            settings: settings.clone(),
            proxy_pass: None,
            try_files: None,
            limit_except: None,
            children: LocationSet::new(Vec::new()).expect("empty set"),
            pos: d.pos.clone(),
        };
        let (mut names, mut listen, mut locs, mut named) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::<LocConf>::new());
        for c in block {
            match c.name.as_str() {
                "server_name" => {
                    nargs(c, |n| n >= 1)?;
                    names.extend(args(c).iter().map(|a| a.to_string()));
                }
                "listen" => {
                    nargs(c, |n| n >= 1)?;
                    listen.push(args(c).join(" "));
                }
                "location" => match self.location(c, &settings, Level::Server)? {
                    Located::Plain(l, conf) => locs.push((l, conf)),
                    Located::Named(conf) => {
                        if named.iter().any(|n| n.name() == conf.name()) {
                            return Err(c
                                .pos
                                .error(format!("duplicate location \"{}\"", conf.name())));
                        }
                        named.push(conf);
                    }
                },
                _ => self.body_directive(c, &mut root, Level::Server)?,
            }
        }
        root.children = location_set(d, locs)?;
        Ok(Server {
            names,
            listen,
            root,
            named,
            maps: Arc::from(Vec::new()),
            pos: d.pos.clone(),
        })
    }

    /// A directive of a server or location body that is not a setting: statements,
    /// `proxy_pass`, `try_files`, `limit_except`, or something unsupported.
    fn body_directive(
        &mut self,
        c: &Directive,
        conf: &mut LocConf,
        level: Level,
    ) -> Result<(), ParseError> {
        match c.name.as_str() {
            n if is_setting(n) => {}
            "try_files" => {
                let tf = dir::try_files(c)?;
                for t in &tf.candidates {
                    self.uses(c, &t.name);
                }
                if let super::model::Fallback::Uri(u) = &tf.fallback {
                    self.uses(c, u);
                }
                conf.try_files = Some(tf);
            }
            "proxy_pass" if level != Level::Server => {
                if conf.proxy_pass.is_some() {
                    return Err(c.pos.error("\"proxy_pass\" directive is duplicate"));
                }
                let uri_allowed = level == Level::Location && !conf.is_regex();
                let pass = dir::proxy_pass(c, uri_allowed)?;
                if let PassKind::Dynamic(t) = &pass.kind {
                    self.uses(c, t);
                }
                conf.proxy_pass = Some(pass);
            }
            "limit_except" if level == Level::Location => {
                if conf.limit_except.is_some() {
                    return Err(c.pos.error("\"limit_except\" directive is duplicate"));
                }
                conf.limit_except = Some(self.limit_except(c, &conf.settings)?);
            }
            _ => {
                if let Some(st) = self.stmt(c)? {
                    conf.stmts.push(st);
                }
            }
        }
        Ok(())
    }

    fn location(
        &mut self,
        d: &Directive,
        parent: &Arc<Settings>,
        level: Level,
    ) -> Result<Located, ParseError> {
        let a = args(d);
        let named = matches!(a.as_slice(), [one] if one.starts_with('@'));
        let head = if named {
            if level != Level::Server {
                return Err(d
                    .pos
                    .error("named location can be on the server level only"));
            }
            Head::Named(a[0].to_owned())
        } else {
            let location = match a.as_slice() {
                [one] => Location::parse(one),
                [m, p] => {
                    let m = match *m {
                        "=" => Modifier::Exact,
                        "^~" => Modifier::PrefixNoRegex,
                        "~" => Modifier::Regex,
                        "~*" => Modifier::RegexCaseless,
                        other => {
                            return Err(d
                                .pos
                                .error(format!("invalid location modifier \"{other}\"")))
                        }
                    };
                    Location::new(m, p)
                }
                _ => {
                    return Err(d
                        .pos
                        .error("invalid number of arguments in \"location\" directive"))
                }
            }
            .map_err(|e| d.pos.error(e.to_string()))?;
            if let Some(re) = location.regex() {
                self.define_captures(re);
            }
            Head::Location(location)
        };
        let Some(block) = &d.block else {
            return Err(d.pos.error("directive \"location\" has no opening \"{\""));
        };
        let this = if named { Level::Named } else { Level::Location };
        let mut settings = Settings::clone(parent);
        settings.alias = None;
        self.settings(block, &mut settings, this)?;
        let settings = Arc::new(settings);
        let mut conf = LocConf {
            head: head.clone(),
            stmts: Vec::new(),
            settings: settings.clone(),
            proxy_pass: None,
            try_files: None,
            limit_except: None,
            children: LocationSet::new(Vec::new()).expect("empty set"),
            pos: d.pos.clone(),
        };
        let mut kids = Vec::new();
        for c in block {
            if c.name == "location" {
                if named {
                    return Err(c
                        .pos
                        .error("location is not allowed inside the named location"));
                }
                if let Head::Location(l) = &head {
                    if l.modifier() == Modifier::Exact {
                        return Err(c.pos.error(format!(
                            "location \"{}\" cannot be inside the exact location \"{}\"",
                            args(c).join(" "),
                            l.pattern()
                        )));
                    }
                }
                match self.location(c, &settings, Level::Location)? {
                    Located::Plain(l, k) => kids.push((l, k)),
                    Located::Named(_) => unreachable!("refused above"),
                }
                continue;
            }
            self.body_directive(c, &mut conf, this)?;
        }
        conf.children = location_set(d, kids)?;
        Ok(match head {
            Head::Location(l) => Located::Plain(l, conf),
            _ => Located::Named(conf),
        })
    }

    /// `limit_except GET { deny all; }`: only access rules are honoured inside.
    fn limit_except(
        &mut self,
        d: &Directive,
        parent: &Settings,
    ) -> Result<LimitExcept, ParseError> {
        nargs(d, |n| n >= 1)?;
        let Some(block) = &d.block else {
            return Err(d
                .pos
                .error("directive \"limit_except\" has no opening \"{\""));
        };
        const METHODS: &[&str] = &[
            "GET",
            "HEAD",
            "POST",
            "PUT",
            "DELETE",
            "MKCOL",
            "COPY",
            "MOVE",
            "OPTIONS",
            "PROPFIND",
            "PROPPATCH",
            "LOCK",
            "UNLOCK",
            "PATCH",
        ];
        let mut methods = Vec::new();
        for a in args(d) {
            let m = a.to_ascii_uppercase();
            if !METHODS.contains(&m.as_str()) {
                return Err(d.pos.error(format!("invalid method \"{a}\"")));
            }
            methods.push(m);
        }
        if methods.iter().any(|m| m == "GET") && !methods.iter().any(|m| m == "HEAD") {
            methods.push("HEAD".into());
        }
        let mut rules = Vec::new();
        for c in block {
            match c.name.as_str() {
                "allow" | "deny" => rules.push(dir::access_rule(c)?),
                _ => self.unsupported(c, Some("inside limit_except".into())),
            }
        }
        let access = if rules.is_empty() {
            parent.access.clone()
        } else {
            Arc::from(rules)
        };
        Ok(LimitExcept { methods, access })
    }

    /// The setting directives of one level, merged over the inherited `s`.
    fn settings(
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
                    let mut v = d.args[0].text.clone();
                    // ngx_http_core_root: a root loses its trailing '/'; an alias keeps it.
                    if d.name == "root" && v.len() > 1 && v.ends_with('/') {
                        v.pop();
                    }
                    let t = template(d, &v)?;
                    self.uses(d, &t);
                    if d.name == "root" {
                        s.root = t;
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
                    let value = template(d, &d.args[1].text)?;
                    self.uses(d, &value);
                    let h = super::model::AddHeader {
                        name: d.args[0].text.clone(),
                        value,
                        always: d.args.len() == 3,
                    };
                    extend(&mut s.add_headers, &mut fresh.add_header, vec![h]);
                }
                "expires" if d.args.iter().any(|a| a.text.contains('$')) => {
                    self.unsupported(d, Some("expires with variables".into()));
                }
                "expires" => s.expires = dir::expires(d)?,
                "proxy_set_header" => {
                    nargs(d, |n| n == 2)?;
                    let value = template(d, &d.args[1].text)?;
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
                    let rule = dir::redirect_rule(d)?;
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
                    s.gzip.min_length = dir::size(d, &d.args[0].text)?;
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
                other => unreachable!("is_setting lists {other}"),
            }
        }
        Ok(())
    }

    /// A rewrite-module statement, or None after recording an unsupported directive.
    fn stmt(&mut self, d: &Directive) -> Result<Option<Stmt>, ParseError> {
        let st = match d.name.as_str() {
            "rewrite" => {
                let rw = dir::rewrite(d)?;
                self.define_captures(&rw.regex);
                self.uses(d, &rw.uri);
                if let Some(a) = &rw.args {
                    self.uses(d, a);
                }
                Stmt::Rewrite(rw)
            }
            "return" => {
                let r = dir::ret(d)?;
                if let Stmt::Return { text: Some(t), .. } = &r {
                    self.uses(d, t);
                }
                r
            }
            "set" => {
                no_block(d)?;
                nargs(d, |n| n == 2)?;
                let Some(name) = d.args[0].text.strip_prefix('$').filter(|n| !n.is_empty()) else {
                    return Err(d
                        .pos
                        .error(format!("invalid variable name \"{}\"", d.args[0].text)));
                };
                let name = name.to_ascii_lowercase();
                if !is_changeable(&name) {
                    return Err(d.pos.error(format!("the duplicate \"{name}\" variable")));
                }
                let value = template(d, &d.args[1].text)?;
                self.uses(d, &value);
                self.defined.insert(name.clone());
                Stmt::Set { name, value }
            }
            "break" => {
                no_block(d)?;
                nargs(d, |n| n == 0)?;
                Stmt::Break
            }
            "if" => {
                let Some(block) = &d.block else {
                    return Err(d.pos.error("directive \"if\" has no opening \"{\""));
                };
                let cond = dir::condition(d)?;
                match &cond {
                    super::model::Cond::Eq { value, .. } => self.uses(d, value),
                    super::model::Cond::Regex { regex, .. } => self.define_captures(regex),
                    super::model::Cond::File { path, .. } => self.uses(d, path),
                    super::model::Cond::Truth(_) => {}
                }
                let var = match &cond {
                    super::model::Cond::Truth(v)
                    | super::model::Cond::Eq { var: v, .. }
                    | super::model::Cond::Regex { var: v, .. } => Some(v.clone()),
                    super::model::Cond::File { .. } => None,
                };
                if let Some(v) = var {
                    self.used.push((v, d.name.clone(), d.pos.clone()));
                }
                let mut body = Vec::new();
                for c in block {
                    if let Some(st) = self.stmt(c)? {
                        body.push(st);
                    }
                }
                Stmt::If { cond, body }
            }
            _ => {
                self.unsupported(d, None);
                return Ok(None);
            }
        };
        Ok(Some(st))
    }
}

enum Located {
    Plain(Location, LocConf),
    Named(LocConf),
}

/// Replace the inherited list the first time this level sets one, then append.
fn extend<T: Clone>(list: &mut Arc<[T]>, fresh: &mut bool, items: Vec<T>) {
    let mut v: Vec<T> = if *fresh { list.to_vec() } else { Vec::new() };
    v.extend(items);
    *list = Arc::from(v);
    *fresh = true;
}

fn is_setting(n: &str) -> bool {
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
    )
}

/// A location set with nginx's auto-redirect flags: a `proxy_pass` location whose name ends
/// in '/' answers its name without the slash with a 301.
fn location_set(
    d: &Directive,
    locs: Vec<(Location, LocConf)>,
) -> Result<LocationSet<LocConf>, ParseError> {
    let auto: Vec<bool> = locs
        .iter()
        .map(|(l, c)| {
            c.proxy_pass.is_some() && !l.modifier().is_regex() && l.pattern().ends_with('/')
        })
        .collect();
    let mut set = LocationSet::new(locs).map_err(|e| d.pos.error(e.to_string()))?;
    for (i, on) in auto.into_iter().enumerate() {
        set.set_auto_redirect(i, on);
    }
    Ok(set)
}
