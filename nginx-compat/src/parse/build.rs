//! Directives -> the typed model. Settings of a level are read before its locations (nginx
//! merges them whatever their order in the block); a level that sets any of a list directive
//! (`add_header`, `proxy_set_header`, `error_page`, `allow`/`deny`) replaces the inherited list.
//! Whatever is not implemented is recorded as [`Unsupported`], never skipped.

use std::collections::HashSet;
use std::sync::Arc;

use super::directives::{self as dir, args, nargs, no_block, template};
use super::model::{
    Config, Head, LimitExcept, LocConf, Map, PassKind, Server, Settings, Stmt, Unsupported,
};
use super::settings::is_setting;
use super::{proxy_args, script_args};
use super::{Directive, ParseError, Pos};
use crate::location::{Location, LocationSet, Modifier};
use crate::log::{is_log_variable, is_unwritten_variable, LogFormat};
use crate::vars::{is_builtin, is_changeable, Template};

pub(super) fn build(dirs: &[Directive]) -> Result<Config, ParseError> {
    let mut b = Builder::default();
    b.register_charsets(dirs);
    let mut servers = Vec::new();
    let mut maps = Vec::new();
    let http = b.http_settings(dirs)?;
    b.top(dirs, &http, &mut servers, &mut maps)?;
    b.check_variables();
    let maps: Arc<[Map]> = Arc::from(maps);
    for s in &mut servers {
        s.maps = maps.clone();
    }
    Ok(Config {
        servers,
        maps,
        unsupported: b.unsupported,
        noted: b.noted,
        access_log_paths: b.log_paths,
    })
}

#[derive(Default)]
pub(super) struct Builder {
    unsupported: Vec<Unsupported>,
    noted: Vec<Unsupported>,
    /// Every variable a value names, with its directive; checked once everything is read,
    /// since `set` and named captures define variables for the whole configuration.
    used: Vec<(String, String, Pos)>,
    defined: HashSet<String>,
    /// Every charset a `charset` or `source_charset` names, spelled as the configuration
    /// first writes it (`ngx_http_add_charset`: one entry per name, whatever its case).
    charsets: Vec<Arc<str>>,
    /// The `log_format`s of the http level, in order (`combined` is made when first named).
    pub(super) formats: Vec<Arc<LogFormat>>,
    combined: Option<Arc<LogFormat>>,
    /// Every variable a `log_format` names, checked with the variables of the other
    /// directives, and with those only an access line has.
    log_used: Vec<(String, Pos)>,
    /// Every file an `access_log` names, once each.
    pub(super) log_paths: Vec<(Arc<str>, Pos)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    /// The `http` block (or a file of its directives): its settings are every server's.
    Http,
    Server,
    Location,
    Named,
    /// An `if` block in a location (nginx's `NGX_HTTP_LIF_CONF`).
    If,
}

impl Builder {
    pub(super) fn unsupported(&mut self, d: &Directive, detail: Option<String>) {
        self.unsupported.push(Unsupported {
            directive: d.name.clone(),
            pos: d.pos.clone(),
            detail,
        });
    }

    /// A directive that loads with no effect on what the gateway does, and why.
    pub(super) fn noted(&mut self, d: &Directive, why: &str) {
        self.noted.push(Unsupported {
            directive: d.name.clone(),
            pos: d.pos.clone(),
            detail: Some(why.to_owned()),
        });
    }

    pub(super) fn uses(&mut self, d: &Directive, t: &Template) {
        for v in t.vars() {
            self.used
                .push((v.to_owned(), d.name.clone(), d.pos.clone()));
        }
    }

    /// The charsets of the whole configuration in the order nginx reads them, so that a
    /// name is spelled as it is first written wherever it is used.
    fn register_charsets(&mut self, dirs: &[Directive]) {
        for d in dirs {
            if let ("charset" | "source_charset", [a]) = (d.name.as_str(), d.args.as_slice()) {
                let v = a.text.as_str();
                let off = d.name == "charset" && v == "off";
                if !off && !v.starts_with('$') {
                    self.charset_name(v);
                }
            }
            self.register_charsets(d.block.as_deref().unwrap_or(&[]));
        }
    }

    /// The one spelling of charset `name`.
    pub(super) fn charset_name(&mut self, name: &str) -> Arc<str> {
        if let Some(c) = self.charsets.iter().find(|c| c.eq_ignore_ascii_case(name)) {
            return c.clone();
        }
        let c: Arc<str> = Arc::from(name);
        self.charsets.push(c.clone());
        c
    }

    /// A regex's named captures become variables; one named as a variable nginx keeps for
    /// itself (`(?<host>...)`) is refused, as `nginx -t` refuses it: it would read the path
    /// where the file means the request's host.
    fn define_captures(
        &mut self,
        pos: &Pos,
        re: &crate::regex::NgxRegex,
    ) -> Result<(), ParseError> {
        for (_, n) in re.capture_names() {
            let name = n.to_ascii_lowercase();
            if !crate::vars::is_changeable(&name) {
                return Err(pos.error(format!("the duplicate \"{name}\" variable")));
            }
            self.defined.insert(name);
        }
        Ok(())
    }

    /// nginx's `combined` format, shared by every `access_log` that names it.
    pub(super) fn combined(&mut self) -> Arc<LogFormat> {
        self.combined
            .get_or_insert_with(|| Arc::new(LogFormat::combined()))
            .clone()
    }

    /// `log_format NAME [escape=...] STRING...` (http level only).
    fn log_format(&mut self, d: &Directive) -> Result<(), ParseError> {
        nargs(d, |n| n >= 2)?;
        let name = d.args[0].text.as_str();
        // ngx_http_log_set_format compares with case; `combined` is always there.
        if name == "combined" || self.formats.iter().any(|f| f.name == name) {
            return Err(d
                .pos
                .error(format!("duplicate \"log_format\" name \"{name}\"")));
        }
        let strings: Vec<&str> = args(d)[1..].to_vec();
        let f = LogFormat::compile(name, &strings).map_err(|e| d.pos.error(e))?;
        for v in f.vars() {
            self.log_used.push((v.to_owned(), d.pos.clone()));
        }
        self.formats.push(Arc::new(f));
        Ok(())
    }

    fn check_variables(&mut self) {
        let mut seen = HashSet::new();
        for (v, pos) in std::mem::take(&mut self.log_used) {
            if is_log_variable(&v)
                || is_builtin(&v)
                || self.defined.contains(&v)
                || !seen.insert((v.clone(), pos.clone()))
            {
                continue;
            }
            let u = Unsupported {
                directive: "log_format".into(),
                pos,
                detail: Some(unknown_variable(&v)),
            };
            if is_unwritten_variable(&v) {
                self.noted.push(Unsupported {
                    detail: Some(format!(
                        "variable ${v}: the gateway has no value for it and writes it as absent"
                    )),
                    ..u
                });
            } else {
                self.unsupported.push(u);
            }
        }
        let used = std::mem::take(&mut self.used);
        for (v, directive, pos) in used {
            if is_builtin(&v) || self.defined.contains(&v) {
                continue;
            }
            if !seen.insert((v.clone(), pos.clone())) {
                continue;
            }
            // A header made of a variable the gateway has no value for (`add_header X-Cache
            // $upstream_cache_status;` of BaoTa's template) is empty, so not sent: what
            // nginx does too without a cache, TLS or the like.
            let header = directive == "add_header" || directive == "proxy_set_header";
            if header && is_unwritten_variable(&v) {
                self.noted.push(Unsupported {
                    directive,
                    pos,
                    detail: Some(format!(
                        "variable ${v}: the gateway has no value for it: the header is empty, \
                         so not sent"
                    )),
                });
            } else {
                self.unsupported.push(Unsupported {
                    directive,
                    pos,
                    detail: Some(unknown_variable(&v)),
                });
            }
        }
    }

    /// The settings every server inherits: those of the http level (`types`, `default_type`,
    /// `gzip`, `charset`, `keepalive_timeout`...),
    /// wherever they are written in it (nginx merges after reading the whole block), as
    /// `include mime.types; default_type application/octet-stream;` in a stock nginx.conf.
    fn http_settings(&mut self, dirs: &[Directive]) -> Result<Settings, ParseError> {
        fn collect(dirs: &[Directive], out: &mut Vec<Directive>) {
            for d in dirs {
                match d.name.as_str() {
                    "http" => collect(d.block.as_deref().unwrap_or(&[]), out),
                    n if is_setting(n) || n == "log_format" => out.push(d.clone()),
                    _ => {}
                }
            }
        }
        let mut level = Vec::new();
        collect(dirs, &mut level);
        // Before any `access_log` names them.
        for d in level.iter().filter(|d| d.name == "log_format") {
            no_block(d)?;
            self.log_format(d)?;
        }
        level.retain(|d| d.name != "log_format");
        let mut s = Settings::default();
        self.settings(&level, &mut s, Level::Http)?;
        Ok(s)
    }

    fn top(
        &mut self,
        dirs: &[Directive],
        http: &Settings,
        servers: &mut Vec<Server>,
        maps: &mut Vec<Map>,
    ) -> Result<(), ParseError> {
        for d in dirs {
            match d.name.as_str() {
                // A whole nginx.conf: only its http block matters here.
                "http" => self.top(d.block.as_deref().unwrap_or(&[]), http, servers, maps)?,
                "server" => servers.push(self.server(d, http)?),
                // Read by `http_settings`.
                n if is_setting(n) || n == "log_format" => {}
                // A whole nginx.conf's main level: how nginx runs its processes.
                "user"
                | "worker_processes"
                | "worker_rlimit_nofile"
                | "worker_cpu_affinity"
                | "worker_priority"
                | "pid"
                | "events"
                | "load_module"
                | "daemon"
                | "master_process"
                | "pcre_jit"
                | "timer_resolution"
                | "thread_pool"
                | "working_directory"
                | "lock_file" => self.noted(
                    d,
                    "how nginx runs its processes; the gateway's are `[server] threads` and \
                     `max_connections`",
                ),
                // A zone is only counted in by `limit_req`/`limit_conn`, which are listed where
                // a location uses them.
                "limit_req_zone" | "limit_conn_zone" => self.noted(
                    d,
                    "a zone nginx's limit_req and limit_conn count in; the gateway limits no \
                     rates (a location that uses it is listed)",
                ),
                "geo" => {
                    let m = proxy_args::geo(d)?;
                    self.uses(d, &m.source);
                    if maps.iter().any(|o| o.name == m.name) {
                        return Err(d.pos.error(format!("duplicate \"{}\" variable", m.name)));
                    }
                    self.defined.insert(m.name.clone());
                    maps.push(m);
                }
                "map" => {
                    let m = proxy_args::map(d)?;
                    self.uses(d, &m.source);
                    for v in m.exact.values() {
                        self.uses(d, v);
                    }
                    for (_, v) in m.wild_head.iter().chain(&m.wild_tail) {
                        self.uses(d, v);
                    }
                    for (re, v) in &m.regex {
                        self.define_captures(&d.pos, re)?;
                        self.uses(d, v);
                    }
                    self.uses(d, &m.default);
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

    fn server(&mut self, d: &Directive, http: &Settings) -> Result<Server, ParseError> {
        let Some(block) = &d.block else {
            return Err(d.pos.error("directive \"server\" has no opening \"{\""));
        };
        let mut settings = Settings::clone(http);
        self.settings(block, &mut settings, Level::Server)?;
        let settings = Arc::new(settings);
        let mut root = LocConf::new(Head::Server, settings.clone(), d.pos.clone());
        let (mut names, mut listen, mut locs, mut named) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::<LocConf>::new());
        let mut name_regexes = Vec::new();
        for c in block {
            match c.name.as_str() {
                "server_name" => {
                    nargs(c, |n| n >= 1)?;
                    for a in args(c) {
                        if let Some(source) = a.strip_prefix('~') {
                            let re = crate::regex::NgxRegex::new(source, true).map_err(|e| {
                                c.pos.error(format!("server_name regex \"{source}\": {e}"))
                            })?;
                            self.define_captures(&c.pos, &re)?;
                            name_regexes.push(re);
                        }
                        names.push(a.to_string());
                    }
                }
                "listen" => {
                    nargs(c, |n| n >= 1)?;
                    // A TLS port is a promise the gateway cannot keep (it speaks plain HTTP):
                    // said, never passed over as one more address.
                    if args(c).iter().any(|a| *a == "ssl" || *a == "quic") {
                        self.unsupported(
                            c,
                            Some("TLS on this port: TLS ends in front of the gateway, at the load balancer or an nginx kept there; remove this line and set [server] public_url = \"https://...\"".into()),
                        );
                        continue;
                    }
                    listen.push(args(c).join(" "));
                }
                "location" => match self.location(c, &settings, None)? {
                    Located::Plain(l, conf) => locs.push((l, conf)),
                    // nginx takes a named location written twice (a copy-paste in a long
                    // file) and the first answers (`named_index`); refusing it would stop a
                    // file nginx runs.
                    Located::Named(conf) => named.push(conf),
                },
                _ => self.body_directive(c, &mut root, Level::Server)?,
            }
        }
        root.children = location_set(locs)?;
        Ok(Server {
            names,
            name_regexes,
            listen,
            root,
            named,
            maps: Arc::from(Vec::new()),
            pos: d.pos.clone(),
            prefix: Vec::new(),
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
                let tf = script_args::try_files(c)?;
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
                let pass = proxy_args::proxy_pass(c, uri_allowed)?;
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
                // On the server level an `if` has no configuration of its own.
                let mut host = (level != Level::Server).then(|| IfHost {
                    head: &conf.head,
                    settings: conf.settings.clone(),
                    ifs: &mut conf.ifs,
                });
                if let Some(st) = self.stmt(c, host.as_mut())? {
                    conf.stmts.push(st);
                }
            }
        }
        Ok(())
    }

    /// A `location` block; `outer` is the enclosing location's head (None at the server level).
    fn location(
        &mut self,
        d: &Directive,
        parent: &Arc<Settings>,
        outer: Option<&Head>,
    ) -> Result<Located, ParseError> {
        let a = args(d);
        let named = matches!(a.as_slice(), [one] if one.starts_with('@'));
        let head = if named {
            Head::Named(a[0].to_owned())
        } else {
            let location = match a.as_slice() {
                [one] => Location::from_arg(one),
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
                self.define_captures(&d.pos, re)?;
            }
            Head::Location(location)
        };
        if let Some(outer) = outer {
            nesting(d, outer, &head)?;
        }
        let Some(block) = &d.block else {
            return Err(d.pos.error("directive \"location\" has no opening \"{\""));
        };
        let this = if named { Level::Named } else { Level::Location };
        let mut settings = Settings::clone(parent);
        self.settings(block, &mut settings, this)?;
        if block.iter().any(|c| c.name == "alias") {
            settings.alias_skip = match &head {
                Head::Location(l) if !l.modifier().is_regex() => Some(l.pattern().len()),
                _ => None,
            };
        }
        let settings = Arc::new(settings);
        let mut conf = LocConf::new(head.clone(), settings.clone(), d.pos.clone());
        let mut kids = Vec::new();
        for c in block {
            if c.name == "location" {
                match self.location(c, &settings, Some(&head))? {
                    Located::Plain(l, k) => kids.push((l, k)),
                    Located::Named(_) => unreachable!("refused by nesting()"),
                }
                continue;
            }
            self.body_directive(c, &mut conf, this)?;
        }
        conf.children = location_set(kids)?;
        inherit_into_ifs(&mut conf);
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

    /// The block of an `if` in a location, read as `ngx_http_rewrite_if` reads it: a
    /// nameless location configuration merged from the enclosing one, in which `root`,
    /// `error_page`, `add_header`, `expires`, `gzip` and a `proxy_pass` without a URI may be
    /// set, and whose statements run in the enclosing location's script.
    fn if_block(
        &mut self,
        d: &Directive,
        block: &[Directive],
        host: &mut IfHost<'_>,
    ) -> Result<(Vec<Stmt>, usize), ParseError> {
        let mut settings = Settings::clone(&host.settings);
        self.settings(block, &mut settings, Level::If)?;
        let settings = Arc::new(settings);
        let index = host.ifs.len();
        host.ifs.push(LocConf::new(
            host.head.clone(),
            settings.clone(),
            d.pos.clone(),
        ));
        let mut body = Vec::new();
        for c in block {
            match c.name.as_str() {
                n if is_setting(n) => {}
                "proxy_pass" => {
                    if host.ifs[index].proxy_pass.is_some() {
                        return Err(c.pos.error("\"proxy_pass\" directive is duplicate"));
                    }
                    let pass = proxy_args::proxy_pass(c, false)?;
                    if let PassKind::Dynamic(t) = &pass.kind {
                        self.uses(c, t);
                    }
                    host.ifs[index].proxy_pass = Some(pass);
                }
                // `if` is not among them: nginx has no nested `if`.
                "try_files" | "limit_except" | "location" | "if" => return Err(not_allowed(c)),
                _ => {
                    if let Some(st) = self.stmt(c, None)? {
                        body.push(st);
                    }
                }
            }
        }
        Ok((body, index))
    }

    /// A rewrite-module statement, or None after recording an unsupported directive.
    fn stmt(
        &mut self,
        d: &Directive,
        host: Option<&mut IfHost<'_>>,
    ) -> Result<Option<Stmt>, ParseError> {
        let st = match d.name.as_str() {
            "rewrite" => {
                let rw = script_args::rewrite(d)?;
                self.define_captures(&d.pos, &rw.regex)?;
                self.uses(d, &rw.uri);
                if let Some(a) = &rw.args {
                    self.uses(d, a);
                }
                Stmt::Rewrite(rw)
            }
            "return" => {
                let r = script_args::ret(d)?;
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
                let cond = script_args::condition(d)?;
                match &cond {
                    super::model::Cond::Eq { value, .. } => self.uses(d, value),
                    super::model::Cond::Regex { regex, .. } => {
                        self.define_captures(&d.pos, regex)?
                    }
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
                match host {
                    Some(host) => {
                        let (body, index) = self.if_block(d, block, host)?;
                        Stmt::If {
                            cond,
                            body,
                            conf: Some(index),
                        }
                    }
                    None => {
                        let mut body = Vec::new();
                        for c in block {
                            if is_setting(&c.name)
                                || matches!(
                                    c.name.as_str(),
                                    "proxy_pass" | "try_files" | "location" | "if"
                                )
                            {
                                return Err(not_allowed(c));
                            }
                            if let Some(st) = self.stmt(c, None)? {
                                body.push(st);
                            }
                        }
                        Stmt::If {
                            cond,
                            body,
                            conf: None,
                        }
                    }
                }
            }
            _ => {
                self.unsupported(d, None);
                return Ok(None);
            }
        };
        Ok(Some(st))
    }
}

/// Where an `if` in a location is written: the location whose configuration the block's is
/// merged from, and its list of `if` configurations.
struct IfHost<'a> {
    head: &'a Head,
    settings: Arc<Settings>,
    ifs: &'a mut Vec<LocConf>,
}

/// `"x" directive is not allowed here`, as nginx says of a directive outside its contexts.
pub(super) fn not_allowed(d: &Directive) -> ParseError {
    d.pos
        .error(format!("\"{}\" directive is not allowed here", d.name))
}

/// What a location's `if` blocks take from it once the whole location is read (its
/// `proxy_pass` may come after the `if`): `ngx_http_proxy_merge_loc_conf` gives a nameless
/// location the enclosing upstream when it names none, and `limit_except` is merged as every
/// core setting is. `try_files` is never merged, so a true `if` drops it.
fn inherit_into_ifs(conf: &mut LocConf) {
    for c in &mut conf.ifs {
        if c.proxy_pass.is_none() {
            c.proxy_pass = conf.proxy_pass.clone();
        }
        c.limit_except = conf.limit_except.clone();
    }
}

enum Located {
    Plain(Location, LocConf),
    Named(LocConf),
}

/// The nesting rules of `ngx_http_core_location`, checked in its order: nothing inside an
/// exact or a named location, named locations only on the server level, and a nested
/// exact or prefix location must begin with its parent's name (byte for byte, whatever the
/// parent's kind: under a regex location that is the regex's text). Only a nested regex may
/// name anything.
fn nesting(d: &Directive, outer: &Head, head: &Head) -> Result<(), ParseError> {
    let name = match head {
        Head::Named(n) => n.as_str(),
        Head::Location(l) => l.pattern(),
        Head::Server => "",
    };
    let (parent, exact) = match outer {
        Head::Server => return Ok(()),
        Head::Named(n) => {
            return Err(d.pos.error(format!(
                "location \"{name}\" cannot be inside the named location \"{n}\""
            )))
        }
        Head::Location(l) => (l.pattern(), l.modifier() == Modifier::Exact),
    };
    if exact {
        return Err(d.pos.error(format!(
            "location \"{name}\" cannot be inside the exact location \"{parent}\""
        )));
    }
    match head {
        Head::Named(_) => Err(d.pos.error(format!(
            "named location \"{name}\" can be on the server level only"
        ))),
        Head::Location(l) if !l.modifier().is_regex() && !name.starts_with(parent) => {
            Err(d.pos.error(format!(
                "location \"{name}\" is outside location \"{parent}\""
            )))
        }
        _ => Ok(()),
    }
}

/// A location set with nginx's auto-redirect flags: a `proxy_pass` location whose name ends
/// in '/' answers its name without the slash with a 301. A duplicate is reported where it is
/// written, as nginx's `duplicate location "/x" in FILE:LINE`.
fn location_set(locs: Vec<(Location, LocConf)>) -> Result<LocationSet<LocConf>, ParseError> {
    if let Some(i) = LocationSet::first_duplicate(&locs) {
        let (l, c) = &locs[i];
        // nginx names the second; the first is named too (it may be a `[[routes]]` entry of
        // the gateway's own file, not this one).
        let exact = |x: &Location| matches!(x.modifier(), crate::location::Modifier::Exact);
        let first = locs[..i].iter().find(|(o, _)| {
            !o.modifier().is_regex() && o.pattern() == l.pattern() && exact(o) == exact(l)
        });
        let also = first.map_or(String::new(), |(_, f)| format!(" (also at {})", f.pos));
        return Err(c
            .pos
            .error(format!("duplicate location \"{}\"{also}", l.pattern())));
    }
    let auto: Vec<bool> = locs
        .iter()
        .map(|(l, c)| {
            c.proxy_pass.is_some() && !l.modifier().is_regex() && l.pattern().ends_with('/')
        })
        .collect();
    Ok(LocationSet::with_auto_redirect(locs, auto).expect("duplicates refused above"))
}

/// Why a variable is refused: it is neither one the gateway gives a value (nginx's own it
/// supports) nor one a `map` or `set` read with the file defines; a `map` in an `nginx.conf`
/// the site file does not include is the usual cause.
fn unknown_variable(v: &str) -> String {
    // A name nginx itself has needs no `map`; another is most often one of the main
    // nginx.conf's (`$connection_upgrade`), which the gateway reads where it is told.
    let nginx_own = crate::log::is_log_variable(v) || crate::log::is_unwritten_variable(v);
    let hint = if nginx_own {
        ""
    } else {
        "; a `map` of the main nginx.conf is read with [nginx] conf_dir (import-nginx --conf-dir) set to that file's directory"
    };
    format!(
        "variable ${v}: not one the gateway provides, and no `map` or `set` read with this file \
         defines it{hint}"
    )
}
