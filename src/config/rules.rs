//! `[[rewrite]]`, route `rewrite = [...]` lists and `[nginx] include` files compiled into one
//! nginx server (SPEC sections 4 and 12), evaluated by `nginx-compat` at request time.
//!
//! The TOML rules become directives of a synthetic server, in this order: the `[[rewrite]]`
//! tables (server level), one `location` per `[[routes]]` entry holding its own rewrites, then
//! the body of the included nginx server (its server-level rules after the TOML ones, its
//! locations after the routes). Every directive keeps the position it was written at, so a bad
//! regex is reported at its TOML or nginx line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nginx_compat::parse::model::PassKind;
use nginx_compat::parse::{parse_directives, parse_target, Arg, Directive, Pos};
use nginx_compat::regex::NgxRegex;
use nginx_compat::{LocConf, Location, ParseError, Server, Unsupported};
use serde_spanned::Spanned;

use super::error::{line_col, route_path, ConfigError, Source};
use super::file::{self, RewriteFlag};
use crate::domain::balance;
use crate::domain::Upstream;

/// The compiled rule set.
pub struct Rules {
    pub server: Server,
    /// The first `routes` top-level locations of `server` are the `[[routes]]` that serve
    /// (a login area only is no location), in order.
    pub routes: usize,
    /// The `[[routes]]` index of each of those first locations.
    pub route_index: Vec<usize>,
    /// The upstream a `proxy_pass` authority names: `[upstreams.NAME]` by name, or by the
    /// `host:port` of its url (lower-cased; `:80` implied). Built once; a `proxy_pass` with
    /// variables is looked up here per request.
    pub upstreams: HashMap<String, Arc<Upstream>>,
    /// Where relative `root`/`alias` paths start: the directory of the nginx file. `None`
    /// when no nginx file is included; static outcomes are then "no route" (404).
    pub static_base: Option<PathBuf>,
    /// Some level of the rule set has `gzip on`: answers may need the engine's compression.
    pub gzip: bool,
    /// Directives of the nginx files that load with no effect on what the gateway does, each
    /// as `file:line: directive: why` (`check` lists them).
    pub noted: Vec<String>,
    /// The files the `access_log`s name, once each.
    pub log_paths: Vec<LogPath>,
    /// Where each of `log_paths` is written, in their order, once opened
    /// (`crate::nginx::log::open`): the configuration only names the files.
    pub log_outs: std::sync::OnceLock<Vec<Arc<dyn LineOut>>>,
    /// The variables of those files' formats whose values are secrets, written `***`;
    /// decided once, when the files are opened.
    pub log_secrets: std::sync::OnceLock<std::collections::HashSet<String>>,
    /// nginx's catch-all server beside the site (`listen 80 default_server; server_name _;
    /// return 444;`): a request whose `Host` the site's `server_name` does not name is
    /// refused so.
    pub host_guard: Option<HostGuard>,
}

/// Which server block of the nginx file a request's `Host` goes to, when the file has more
/// than the site's: the site, a block that only redirects its names elsewhere (`server_name
/// www.crm.example.com; return 301 https://crm.example.com$request_uri;`), or nginx's
/// catch-all for the hosts none names.
pub struct HostGuard {
    /// The site's names (`None`) and each redirecting block's, in the file's order.
    blocks: Vec<(Names, Option<GuardAnswer>)>,
    /// What the hosts no block names get: the catch-all's answer; without one, nginx's first
    /// server block on the port (`blocks[0]`).
    others: Option<GuardAnswer>,
}

/// A `server_name` list, read as nginx reads it.
struct Names {
    /// Exact names, lower-cased.
    exact: Vec<String>,
    /// `*.example.com` and `.example.com` as their suffix (`.example.com`).
    suffix: Vec<String>,
    /// `www.example.*` as its prefix (`www.example.`).
    prefix: Vec<String>,
    regex: Vec<nginx_compat::regex::NgxRegex>,
}

impl Names {
    fn of(names: &[String]) -> std::result::Result<Names, String> {
        let mut g = Names {
            exact: Vec::new(),
            suffix: Vec::new(),
            prefix: Vec::new(),
            regex: Vec::new(),
        };
        for n in names {
            if let Some(re) = n.strip_prefix('~') {
                let re = nginx_compat::regex::NgxRegex::new(re, true)
                    .map_err(|e| format!("server_name regex \"{re}\": {e}"))?;
                g.regex.push(re);
                continue;
            }
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            if let Some(rest) = n.strip_prefix("*.") {
                g.suffix.push(format!(".{rest}"));
            } else if let Some(rest) = n.strip_prefix('.') {
                g.suffix.push(format!(".{rest}"));
                g.exact.push(rest.to_owned());
            } else if let Some(head) = n.strip_suffix(".*") {
                g.prefix.push(format!("{head}."));
            } else if !n.is_empty() && n != "_" {
                g.exact.push(n);
            }
        }
        Ok(g)
    }

    /// Whether the list names no host (only `_`, `""` or none).
    fn is_empty(&self) -> bool {
        self.exact.is_empty()
            && self.suffix.is_empty()
            && self.prefix.is_empty()
            && self.regex.is_empty()
    }

    /// How well `host` (lower-cased, without port or final dot) matches, as
    /// `ngx_http_find_virtual_server` prefers: an exact name, then the longest `*.` wildcard,
    /// then the longest `.*` one, then a regex (the block written first wins a tie).
    fn rank(&self, host: &[u8]) -> Option<(u8, usize)> {
        if self.exact.iter().any(|n| n.as_bytes() == host) {
            return Some((3, 0));
        }
        let longest = |v: &[String], hit: &dyn Fn(&[u8]) -> bool| {
            v.iter()
                .filter(|s| hit(s.as_bytes()))
                .map(String::len)
                .max()
        };
        if let Some(n) = longest(&self.suffix, &|s| host.ends_with(s)) {
            return Some((2, n));
        }
        if let Some(n) = longest(&self.prefix, &|p| host.starts_with(p)) {
            return Some((1, n));
        }
        // A regex that gives up is no match, as nginx's 500 would serve no block either.
        self.regex
            .iter()
            .any(|r| r.is_match(host).unwrap_or(false))
            .then_some((0, 0))
    }
}

/// What nginx's catch-all server answers a host the site does not name.
pub enum GuardAnswer {
    /// 444 (the connection closed, no answer) or the status of the catch-all's `return`.
    Status(u16),
    /// Its redirect to a host it writes out, evaluated as nginx evaluates that server (its
    /// `return` or `rewrite`, with `$request_uri` or a capture of the path).
    Redirect(Box<Server>),
}

/// nginx's catch-all server beside the site (`listen 80 default_server; server_name _;`), as
/// [`refuses_other_hosts`] found it.
#[derive(Debug, Clone)]
pub enum CatchAll {
    /// `return 444;` or `return 4xx;`.
    Status(u16),
    /// A redirect to a host the file writes out: the "禁止IP访问" block sending an address or
    /// an unknown name to the site's own (`return 301 https://crm.example.com$request_uri;`,
    /// `rewrite ^(.*) http://crm.example.com$1 permanent;`). Its directives.
    Redirect(Vec<Directive>),
}

impl CatchAll {
    /// How `check` and `import-nginx` name what it answers.
    pub fn describe(&self) -> String {
        match self {
            CatchAll::Status(444) => "by a closed connection (444)".to_owned(),
            CatchAll::Status(s) => s.to_string(),
            CatchAll::Redirect(dirs) => {
                let shown: Vec<String> = redirects_of(dirs)
                    .map(|d| {
                        let args: Vec<&str> = d.args.iter().map(|a| a.text.as_str()).collect();
                        format!("{} {}", d.name, args.join(" "))
                    })
                    .collect();
                format!("with its redirect ({})", shown.join("; "))
            }
        }
    }
}

impl HostGuard {
    /// Where a request for `host` (its `Host`: a port and a final dot aside, case aside) goes:
    /// `None` to the site, else what another server block of the file answers it.
    pub fn route(&self, host: &[u8]) -> Option<&GuardAnswer> {
        let host = match host.iter().rposition(|&b| b == b':') {
            Some(i) if !host.ends_with(b"]") => &host[..i],
            _ => host,
        };
        let host = host.strip_suffix(b".").unwrap_or(host).to_ascii_lowercase();
        let mut best: Option<((u8, usize), &Option<GuardAnswer>)> = None;
        for (names, answer) in &self.blocks {
            if let Some(r) = names.rank(&host) {
                if best.as_ref().is_none_or(|(b, _)| r > *b) {
                    best = Some((r, answer));
                }
            }
        }
        match best {
            Some((_, answer)) => answer.as_ref(),
            None => match &self.others {
                Some(a) => Some(a),
                None => self.blocks.first().and_then(|(_, a)| a.as_ref()),
            },
        }
    }
}

/// Whether a server body's `server_name` names a host (not only `_` or `""`).
pub fn names_a_host(body: &[Directive]) -> bool {
    let names: Vec<String> = body
        .iter()
        .filter(|d| d.name == "server_name")
        .flat_map(|d| d.args.iter().map(|a| a.text.clone()))
        .collect();
    Names::of(&names).is_ok_and(|n| !n.is_empty())
}

/// nginx's catch-all server that refuses the hosts no site names (`listen 80 default_server;
/// server_name _; return 444;`, the "禁止IP访问" block of compliance checklists, also with its
/// TLS lines), or sends them to a host it writes out: what it answers.
pub fn refuses_other_hosts(server: &[Directive]) -> Option<CatchAll> {
    let code = |d: &Directive| -> Option<u16> {
        match d.args.as_slice() {
            [c] if d.name == "return" => c
                .text
                .parse::<u16>()
                .ok()
                .filter(|c| *c == 444 || (400..500).contains(c)),
            _ => None,
        }
    };
    let (mut default, mut status, mut redirect) = (false, None, false);
    for d in server {
        match d.name.as_str() {
            "listen" => {
                default |= d
                    .args
                    .iter()
                    .any(|a| a.text == "default_server" || a.text == "default")
            }
            "server_name" | "access_log" | "error_log" => {}
            n if n.starts_with("ssl_") || n == "http2" => {}
            "return" | "rewrite" if redirects_elsewhere(d) => redirect = true,
            "return" => status = Some(code(d)?),
            "location" => {
                let inner = d.block.as_deref().unwrap_or_default();
                match inner {
                    _ if !inner.is_empty() && inner.iter().all(redirects_elsewhere) => {
                        redirect = true
                    }
                    [only] => status = Some(code(only)?),
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
    if !default {
        return None;
    }
    match (status, redirect) {
        (Some(s), false) => Some(CatchAll::Status(s)),
        (None, true) => Some(CatchAll::Redirect(server.to_vec())),
        _ => None,
    }
}

/// A `return` or `rewrite` that redirects to a host written out in its URL
/// (`return 301 https://crm.example.com$request_uri;`, `rewrite ^(.*) http://crm.example.com$1
/// permanent;`): not `https://$host...`, the redirect to TLS of whatever host came, which stays
/// in front of the gateway with TLS itself.
fn redirects_elsewhere(d: &Directive) -> bool {
    redirect_host(d).is_some()
}

/// The host a redirecting `return` or `rewrite` writes out in its URL, lower-cased.
fn redirect_host(d: &Directive) -> Option<String> {
    let a: Vec<&str> = d.args.iter().map(|a| a.text.as_str()).collect();
    let url = match (d.name.as_str(), a.as_slice()) {
        ("return", [code, url]) if matches!(*code, "301" | "302" | "303" | "307" | "308") => url,
        ("return", [url]) => url,
        ("rewrite", [_, url]) => url,
        ("rewrite", [_, url, flag]) if matches!(*flag, "permanent" | "redirect") => url,
        _ => return None,
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    // The host is written out up to the path or a variable of the path
    // (`https://crm.example.com$request_uri`, `http://crm.example.com$1`); a variable in the
    // host or its port (`$host`, `$server_port`) makes it another host per request.
    let end = rest.find(['/', '$']).unwrap_or(rest.len());
    let (host, after) = rest.split_at(end);
    let path_variable = ["$request_uri", "$uri", "$document_uri"]
        .iter()
        .any(|v| after.starts_with(v))
        || after
            .strip_prefix('$')
            .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()));
    let literal = !host.is_empty()
        && !host.ends_with(':')
        && (after.is_empty() || after.starts_with('/') || path_variable);
    literal.then(|| {
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        name.to_ascii_lowercase()
    })
}

/// A server block beside the site's that only sends the hosts it names to a host it writes
/// out (`server_name www.crm.example.com; return 301 https://crm.example.com$request_uri;`):
/// kept, the gateway answering those hosts with its redirect, as nginx does.
#[derive(Debug, Clone)]
pub struct NamedRedirect {
    pub body: Vec<Directive>,
    pub pos: Pos,
    /// Written before the site's block: then, without a catch-all, nginx's first block on the
    /// port, which the hosts no block names get.
    pub before_site: bool,
}

/// The `server_name` arguments of a server body.
fn server_names(body: &[Directive]) -> Vec<String> {
    body.iter()
        .filter(|d| d.name == "server_name")
        .flat_map(|d| d.args.iter().map(|a| a.text.clone()))
        .collect()
}

/// Whether `server` only redirects the hosts it names to a host it writes out, none of them
/// the site's (`site`) nor its own target: a block naming the site's host or sending its names
/// to themselves is the plain-HTTP half of a TLS pair, whose redirect stays in front.
fn redirects_names(server: &[Directive], site: &[Directive]) -> bool {
    let lower = |v: Vec<String>| -> Vec<String> {
        v.iter()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .collect()
    };
    let (names, site_names) = (lower(server_names(server)), lower(server_names(site)));
    if !names_a_host(server) || names.iter().any(|n| site_names.contains(n)) {
        return false;
    }
    let elsewhere = |d: &Directive| redirect_host(d).is_some_and(|h| !names.contains(&h));
    let mut redirect = false;
    for d in server {
        match d.name.as_str() {
            "server_name" | "access_log" | "error_log" => {}
            "listen" => {
                let special = d.args.iter().any(|a| {
                    matches!(
                        a.text.as_str(),
                        "ssl" | "default_server" | "default" | "quic"
                    )
                });
                if special {
                    return false;
                }
            }
            "return" | "rewrite" if elsewhere(d) => redirect = true,
            "location" => {
                let inner = d.block.as_deref().unwrap_or_default();
                if inner.is_empty() || !inner.iter().all(elsewhere) {
                    return false;
                }
                redirect = true;
            }
            _ => return false,
        }
    }
    redirect
}

/// A redirecting catch-all's body as the server nginx would run it: its `return`s and
/// `rewrite`s, in their locations, and nothing else (its `listen` and names are the guard's).
fn catch_all_server(dirs: &[Directive]) -> std::result::Result<Server, ParseError> {
    let body: Vec<Directive> = dirs
        .iter()
        .filter(|d| matches!(d.name.as_str(), "return" | "rewrite" | "location"))
        .cloned()
        .collect();
    let pos = dirs.first().map(|d| d.pos.clone()).unwrap_or_else(|| Pos {
        file: "".into(),
        line: 1,
        col: 1,
    });
    let top = [Directive {
        name: "server".into(),
        args: Vec::new(),
        block: Some(body),
        pos,
    }];
    let cfg = nginx_compat::Config::from_directives(&top)?;
    Ok(cfg.servers.into_iter().next().expect("one server written"))
}

/// The redirecting directives of a catch-all's body, its locations' included.
fn redirects_of(dirs: &[Directive]) -> impl Iterator<Item = &Directive> {
    dirs.iter()
        .flat_map(|d| match d.name.as_str() {
            "location" => d.block.as_deref().unwrap_or_default(),
            _ => std::slice::from_ref(d),
        })
        .filter(|d| matches!(d.name.as_str(), "return" | "rewrite"))
}

/// Each line once, in the order first written: a file included by many locations (a
/// `proxy_params` snippet) is one set of lines, said once.
fn once(lines: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    lines
        .into_iter()
        .filter(|l| seen.insert(l.clone()))
        .collect()
}

/// The `proxy_set_header` lines naming a header the gateway writes itself (`X-Forwarded-Proto`
/// and `-Host` from `public_url`, `X-Request-Id`, the identity headers): loaded, never sent.
fn written_over(dirs: &[Directive], noted: &mut Vec<String>) {
    for d in dirs {
        if d.name == "proxy_set_header" {
            if let Some(name) = d
                .args
                .first()
                .filter(|a| crate::domain::gateway_writes_header(&a.text))
            {
                noted.push(format!(
                    "{}: proxy_set_header {}: the gateway writes this header itself (X-Forwarded-Proto \
                     and -Host from [server].public_url, X-Request-Id, the verified identity): the \
                     file's value is not sent",
                    d.pos, name.text
                ));
            }
        }
        written_over(d.block.as_deref().unwrap_or(&[]), noted);
    }
}

/// A `proxy_pass http://$backend` whose variable holds hosts written in the file (its `set`s,
/// a `map`'s values) that no `[upstreams]` entry has: those requests are 502s (the gateway
/// reaches only the upstreams it is told of). `import-nginx` writes their entries.
fn unknown_variable_hosts(
    dirs: &[Directive],
    all: &[Directive],
    upstreams: &HashMap<String, Arc<Upstream>>,
    noted: &mut Vec<String>,
) {
    for d in dirs {
        if let ("proxy_pass", Some(url)) = (d.name.as_str(), d.args.first()) {
            let hosts = variable_hosts(&url.text, all, all);
            // A host chosen per request from what the file does not write out (a request's
            // header, a capture): only the hosts of [upstreams] entries are reached.
            let per_request = url.text.starts_with('$') || url.text.starts_with("http://$");
            if hosts.is_none() && per_request {
                noted.push(format!(
                    "{}: proxy_pass {}: its host is chosen per request: a request reaches only \
                     a host an [upstreams] entry names (by name or host:port), any other is \
                     answered 502",
                    d.pos, url.text
                ));
            }
            let missing: Vec<String> = hosts
                .into_iter()
                .flatten()
                .map(|(_, addr)| addr)
                .filter(|a| {
                    // As `Rules::upstream` finds them: a host without a port is its port 80.
                    let a = a.to_ascii_lowercase();
                    let bare = !a.contains(':') || a.ends_with(']');
                    !upstreams.contains_key(&a)
                        && !(bare && upstreams.contains_key(&format!("{a}:80")))
                })
                .collect();
            if !missing.is_empty() {
                noted.push(format!(
                    "{}: proxy_pass {}: no [upstreams] entry has {}: requests that pick it are \
                     answered 502 (add an [upstreams.NAME] with its url)",
                    d.pos,
                    url.text,
                    missing.join(", ")
                ));
            }
        }
        unknown_variable_hosts(d.block.as_deref().unwrap_or(&[]), all, upstreams, noted);
    }
}

/// A file an `access_log` names.
pub struct LogPath {
    /// As the file writes it (what the directives name).
    pub written: Arc<str>,
    /// From the prefix, for relative ones (nginx's `ngx_conf_full_name`).
    pub full: PathBuf,
    pub pos: Pos,
}

/// Takes whole lines for one access log file.
pub trait LineOut: Send + Sync {
    fn push(&self, line: &[u8]);
}

impl Rules {
    /// Where the lines of the file an `access_log` names go, once opened.
    pub fn log_out(&self, written: &str) -> Option<&dyn LineOut> {
        let at = self.log_paths.iter().position(|p| *p.written == *written)?;
        Some(&**self.log_outs.get()?.get(at)?)
    }

    /// The upstream for a `proxy_pass` authority (`host[:port]`), if one is configured.
    pub fn upstream(&self, authority: &str) -> Option<&Arc<Upstream>> {
        let lower = authority.to_ascii_lowercase();
        self.upstreams.get(&lower).or_else(|| {
            let with_port = if lower.contains(':') && !lower.ends_with(']') {
                return None;
            } else {
                format!("{lower}:80")
            };
            self.upstreams.get(&with_port)
        })
    }

    /// The `[[routes]]` entry a location of the rule set is, if it is one.
    pub fn route_of(&self, at: &nginx_compat::LocRef) -> Option<usize> {
        match at {
            nginx_compat::LocRef::Path(p) => self.route_at(*p.first()?),
            nginx_compat::LocRef::Named(_) => None,
        }
    }

    /// The `[[routes]]` entry the top-level location at `index` is, if it is one.
    pub fn route_at(&self, index: usize) -> Option<usize> {
        self.route_index.get(index).copied()
    }
}

type Result<T> = std::result::Result<T, ConfigError>;

/// Where nginx's relative paths start, when `[nginx]` says (else at the included file's own
/// directory): `root`/`alias` at nginx's prefix, `include` at the main configuration's directory.
#[derive(Debug, Default)]
pub struct NginxPaths {
    pub prefix: Option<PathBuf>,
    pub conf_dir: Option<PathBuf>,
}

/// `None` when there is no rule at all: the request path then costs nothing extra.
pub(super) fn compile(
    f: &file::File,
    upstreams: &std::collections::BTreeMap<String, Arc<Upstream>>,
    includes: &[PathBuf],
    paths: &NginxPaths,
    src: &Source<'_>,
) -> Result<Option<Rules>> {
    let route_rules = f.routes.iter().any(|r| !r.get_ref().rewrite.is_empty());
    if f.rewrite.is_empty() && !route_rules && includes.is_empty() {
        return Ok(None);
    }
    let mut b = Synth {
        src,
        file: Arc::from(src.name),
        paths: Vec::new(),
    };
    let mut body = Vec::new();
    for (i, r) in f.rewrite.iter().enumerate() {
        body.push(b.rewrite(r, &format!("[[rewrite]][{}]", i + 1))?);
    }
    let mut route_index = Vec::new();
    for (i, r) in f.routes.iter().enumerate() {
        let route = r.get_ref();
        // A login area only is no location: the file's own serve its paths.
        if route.upstream.is_none() {
            continue;
        }
        route_index.push(i);
        let mut block = Vec::new();
        for (j, w) in route.rewrite.iter().enumerate() {
            block.push(b.rewrite(w, &route_path(i, &format!("rewrite[{}]", j + 1)))?);
        }
        // Already checked by the route table; parsed again to split modifier and pattern.
        let loc = Location::parse(route.location.get_ref().as_str()).map_err(|e| {
            src.error(
                route.location.span(),
                route_path(i, "location"),
                e.to_string(),
            )
        })?;
        let mut args = Vec::new();
        let shown = loc.to_string();
        if let Some((modifier, _)) = shown.split_once(' ') {
            args.push(word(modifier));
        }
        args.push(word(loc.pattern()));
        // A route's body is the CRM's business: nginx's 1m default does not apply to it.
        block.push(Directive {
            name: "client_max_body_size".into(),
            args: vec![word("0")],
            block: None,
            pos: b.pos(r.span(), route_path(i, "location")),
        });
        // Marks the location as proxied so internal redirects that land here come back as
        // proxy outcomes; the index in the server's location list names the route.
        block.push(Directive {
            name: "proxy_pass".into(),
            args: vec![word(&format!("http://route-{}", i + 1))],
            block: None,
            pos: b.pos(r.span(), route_path(i, "location")),
        });
        body.push(Directive {
            name: "location".into(),
            args,
            block: Some(block),
            pos: b.pos(r.span(), route_path(i, "location")),
        });
    }
    let mut static_base = None;
    let mut top = Vec::new();
    let mut server_at: Option<Pos> = None;
    let mut upstream_noted = Vec::new();
    let mut refuses_other_hosts: Option<(CatchAll, PathBuf)> = None;
    let mut named_redirects: Vec<NamedRedirect> = Vec::new();
    for path in includes {
        let nginx = read_nginx(path, paths.conf_dir.as_deref())?;
        if let Some(catch_all) = nginx.refuses_other_hosts {
            refuses_other_hosts.get_or_insert((catch_all, path.clone()));
        }
        named_redirects.extend(nginx.redirects);
        for block in &nginx.upstreams {
            upstream_noted.extend(check_upstream_block(block, upstreams)?);
        }
        // Each file's server block would be merged into the one site the gateway serves, its
        // `server_name` unread: a second site's `return 301` would answer for the first.
        if let (Some(first), Some(second)) = (&server_at, &nginx.server_at) {
            return Err(ConfigError {
                file: second.file.to_string(),
                line: second.line,
                column: second.col,
                path: "[nginx].include".into(),
                message: format!(
                    "a second server block: the gateway serves one site, whose server block is \
                     at {}:{}; include one file with a server block (others may hold only \
                     locations and maps)",
                    first.file, first.line
                ),
            });
        }
        if server_at.is_none() {
            server_at = nginx.server_at.clone();
        }
        static_base.get_or_insert(paths.prefix.clone().unwrap_or(nginx.base));
        body.extend(nginx.server);
        top.extend(nginx.http);
    }
    if let Some(conf_dir) = paths.conf_dir.as_deref() {
        let mut formats = from_main_file(conf_dir, &[top.clone(), body.clone()].concat());
        formats.append(&mut top);
        top = formats;
    }
    top.push(Directive {
        name: "server".into(),
        args: Vec::new(),
        block: Some(body),
        pos: b.pos(0..0, String::new()),
    });
    let cfg = nginx_compat::Config::from_directives(&top).map_err(|e| b.error(e))?;
    if !cfg.unsupported.is_empty() {
        let lines = once(cfg.unsupported.iter().map(|u| u.to_string()));
        let first = &cfg.unsupported[0].pos;
        return Err(ConfigError {
            file: first.file.to_string(),
            line: first.line,
            column: first.col,
            path: "[nginx].include".into(),
            message: format!(
                "the nginx configuration uses what the gateway cannot honour:\n  {}",
                lines.join("\n  ")
            ),
        });
    }
    let mut noted: Vec<String> = cfg
        .noted
        .iter()
        .map(|u| {
            format!(
                "{}: {}: {}",
                u.pos,
                u.directive,
                u.detail.as_deref().unwrap_or("")
            )
        })
        .collect();
    noted.extend(upstream_noted);
    written_over(&top, &mut noted);
    // A relative log path starts at the prefix, as `root` does.
    let log_paths = cfg
        .access_log_paths
        .iter()
        .map(|(written, pos)| LogPath {
            written: written.clone(),
            full: static_base
                .as_deref()
                .unwrap_or(Path::new("."))
                .join(&**written),
            pos: pos.clone(),
        })
        .collect();
    let mut server = cfg
        .servers
        .into_iter()
        .next()
        .expect("one synthetic server");
    // `$request_filename` and `$document_root` write a relative root out from where the
    // gateway's file answers start it.
    if let Some(base) = &static_base {
        use std::os::unix::ffi::OsStrExt;
        server.prefix = base.as_os_str().as_bytes().to_vec();
        if server.prefix.last() != Some(&b'/') {
            server.prefix.push(b'/');
        }
    }
    // A `[[routes]]` entry is a proxied location: `/p/` answers `/p` with nginx's 301, as
    // the synthetic `proxy_pass` gives it (SPEC section 5, step 6).
    let routes = route_index.len();
    let mut by_authority = HashMap::new();
    for (name, up) in upstreams {
        by_authority.insert(name.to_ascii_lowercase(), up.clone());
        // An upstream of several servers is named by its name only: `proxy_pass` to one of
        // its servers' addresses means that server alone, as in nginx. One name of several
        // addresses is one server to `proxy_pass` (nginx's implicit upstream of them).
        let one_name = up
            .balance
            .as_deref()
            .is_none_or(|b| b.servers.iter().all(|s| s.entry == 0 && !s.down));
        if one_name {
            by_authority
                .entry(up.authority.to_ascii_lowercase())
                .or_insert_with(|| up.clone());
        }
    }
    unknown_variable_hosts(&top, &top, &by_authority, &mut noted);
    let gzip = std::iter::once(&server.root)
        .chain(&server.named)
        .any(any_gzip);
    let host_guard = if refuses_other_hosts.is_none() && named_redirects.is_empty() {
        None
    } else {
        let at = |pos: &Pos, message: String| ConfigError {
            file: pos.file.to_string(),
            line: pos.line,
            column: pos.col,
            path: "[nginx].include".into(),
            message,
        };
        let site_names = Names::of(&server.names).map_err(|e| at(&server.pos, e))?;
        let others = match refuses_other_hosts {
            None => None,
            Some((catch_all, file)) => {
                if site_names.is_empty() {
                    return Err(ConfigError {
                        file: file.display().to_string(),
                        line: 1,
                        column: 1,
                        path: "[nginx].include".into(),
                        message: format!(
                            "a catch-all server (default_server, answering {}) answers every \
                             host the site's server_name does not name, and it names none: \
                             nginx would answer every request so; give the site its server_name",
                            catch_all.describe()
                        ),
                    });
                }
                noted.push(format!(
                    "{}: the catch-all server: a Host the site's server_name ({}) does not \
                     name is answered {}",
                    file.display(),
                    server.names.join(" "),
                    catch_all.describe()
                ));
                Some(match &catch_all {
                    CatchAll::Status(s) => GuardAnswer::Status(*s),
                    CatchAll::Redirect(dirs) => GuardAnswer::Redirect(Box::new(
                        catch_all_server(dirs).map_err(|e| b.error(e))?,
                    )),
                })
            }
        };
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for r in named_redirects {
            let names = server_names(&r.body);
            noted.push(format!(
                "{}: the server block of {}: answered {}",
                r.pos,
                names.join(" "),
                CatchAll::Redirect(r.body.clone()).describe()
            ));
            let block = (
                Names::of(&names).map_err(|e| at(&r.pos, e))?,
                Some(GuardAnswer::Redirect(Box::new(
                    catch_all_server(&r.body).map_err(|e| b.error(e))?,
                ))),
            );
            if r.before_site {
                before.push(block);
            } else {
                after.push(block);
            }
        }
        let mut blocks = before;
        blocks.push((site_names, None));
        blocks.extend(after);
        Some(HostGuard { blocks, others })
    };
    let rules = Rules {
        server,
        routes,
        route_index,
        upstreams: by_authority,
        static_base,
        gzip,
        noted: once(noted),
        log_paths,
        log_outs: std::sync::OnceLock::new(),
        log_secrets: std::sync::OnceLock::new(),
        host_guard,
    };
    for (_, conf) in rules.server.locations().iter().skip(routes) {
        check_targets(conf, &rules, upstreams)?;
    }
    if let Some(base) = &rules.static_base {
        let mut seen = Vec::new();
        let locations = rules.server.locations().iter().skip(routes).map(|(_, c)| c);
        for conf in locations.chain(&rules.server.named) {
            missing_roots(conf, base, &mut seen);
        }
    }
    for conf in &rules.server.named {
        check_targets(conf, &rules, upstreams)?;
    }
    Ok(Some(rules))
}

fn word(s: &str) -> Arg {
    Arg {
        text: s.to_owned(),
        quoted: true,
    }
}

/// Builds directives positioned in the TOML file and maps crate errors back to key paths.
struct Synth<'a> {
    src: &'a Source<'a>,
    file: Arc<str>,
    /// (line, column, key path) of every synthetic directive.
    paths: Vec<(usize, usize, String)>,
}

impl Synth<'_> {
    fn pos(&mut self, span: std::ops::Range<usize>, path: String) -> Pos {
        let (line, col) = line_col(self.src.text, span.start);
        self.paths.push((line, col, path));
        Pos {
            file: self.file.clone(),
            line,
            col,
        }
    }

    fn rewrite(&mut self, r: &Spanned<file::Rewrite>, path: &str) -> Result<Directive> {
        let w = r.get_ref();
        let pattern = w.pattern.get_ref().as_str();
        // Checked here so the error names the key, not just the line.
        NgxRegex::new(pattern, false).map_err(|e| {
            self.src.error(
                w.pattern.span(),
                format!("{path}.pattern"),
                format!("pcre2_compile() failed: {e} in \"{pattern}\""),
            )
        })?;
        let mut args = vec![word(pattern), word(w.replacement.get_ref().as_str())];
        if let Some(flag) = &w.flag {
            args.push(word(match flag.get_ref() {
                RewriteFlag::Last => "last",
                RewriteFlag::Break => "break",
                RewriteFlag::Redirect => "redirect",
                RewriteFlag::Permanent => "permanent",
            }));
        }
        Ok(Directive {
            name: "rewrite".into(),
            args,
            block: None,
            pos: self.pos(r.span(), path.to_owned()),
        })
    }

    fn error(&self, e: ParseError) -> ConfigError {
        let in_toml = e.file.as_deref() == Some(&*self.file);
        let path = if in_toml {
            self.paths
                .iter()
                .find(|(l, c, _)| *l == e.line && *c == e.col)
                .map(|(_, _, p)| p.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        ConfigError {
            file: e
                .file
                .as_deref()
                .map_or_else(|| self.src.name.to_owned(), str::to_owned),
            line: e.line,
            column: e.col,
            path,
            message: e.message,
        }
    }
}

/// An nginx file as the gateway uses it.
pub struct NginxFile {
    /// The body of its (only) server block.
    pub server: Vec<Directive>,
    /// `http`-level directives the server relies on (`map`).
    pub http: Vec<Directive>,
    /// `upstream NAME { server ADDR; }` blocks, each of which must be an `[upstreams.NAME]`.
    pub upstreams: Vec<Directive>,
    /// The file's directory, where relative paths start.
    pub base: PathBuf,
    /// Where its server block starts, if it has one (else it holds a server's body alone).
    pub server_at: Option<Pos>,
    /// A catch-all server beside the site's answers other hosts so.
    pub refuses_other_hosts: Option<CatchAll>,
    /// Server blocks that only redirect their names elsewhere.
    pub redirects: Vec<NamedRedirect>,
}

/// Reads an nginx file (its own `include`s resolved relative to `conf_dir`, else to its
/// directory): the body of its server block, its `map`s, and its directory. A file holding
/// only a server body (`location` blocks, as in a snippet) is read as that body.
/// The usual companion of a site's server block: `listen 80; return 301 https://...`, also as
/// certbot writes it (`if ($host = ...) { return 301 ...; } return 404;`) or beside an ACME
/// challenge location (`location /.well-known/acme-challenge/ {...} location / { return 301
/// ...; }`). Whether `server` is such a redirect alone.
pub fn redirect_only(server: &[Directive]) -> bool {
    // `return 301 https://...`, or `return https://...` (a 302): not a catch-all's `return 444`.
    let redirects = |d: &Directive| {
        let a: Vec<&str> = d.args.iter().map(|a| a.text.as_str()).collect();
        let absolute = |url: &str| {
            url.starts_with("https://") || url.starts_with("http://") || url.starts_with('$')
        };
        match (d.name.as_str(), a.as_slice()) {
            ("return", [code, _]) => matches!(*code, "301" | "302" | "303" | "307" | "308"),
            ("return", [url]) => absolute(url),
            ("rewrite", [_, url, flag]) => {
                matches!(*flag, "permanent" | "redirect") || absolute(url)
            }
            ("rewrite", [_, url]) => absolute(url),
            _ => false,
        }
    };
    let redirect_block = |d: &Directive| {
        let inner = d.block.as_deref().unwrap_or_default();
        !inner.is_empty() && inner.iter().all(redirects)
    };
    let acme = |d: &Directive| {
        d.name == "location" && d.args.iter().any(|a| a.text.starts_with("/.well-known/"))
    };
    let mut redirected = false;
    for d in server {
        match d.name.as_str() {
            "listen" | "server_name" | "access_log" | "error_log" => {}
            "return" | "rewrite" => redirected |= redirects(d),
            "if" | "location" if redirect_block(d) => redirected = true,
            _ if acme(d) => {}
            _ => return false,
        }
    }
    redirected
}

/// What to do about such a server beside the site's, said by `check` and `import-nginx` alike.
pub const REDIRECT_PAIR_HINT: &str = "it only redirects (to https): that redirect, and TLS, \
     stay in front of the gateway; include a file with the site's own server block alone";

pub fn read_nginx(path: &Path, conf_dir: Option<&Path>) -> Result<NginxFile> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(&name, &e))?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dirs =
        parse_nginx(&name, &text, conf_dir.unwrap_or(&base)).map_err(|e| parse_error(&name, e))?;
    let ServerBody {
        body: server,
        mut http,
        refused,
        site_at: server_at,
        refuses_other_hosts,
        redirects,
    } = server_body(dirs);
    let (upstreams, others): (Vec<Directive>, Vec<Directive>) =
        http.drain(..).partition(|d| d.name == "upstream");
    let http = others;
    if let Some(first) = refused.first() {
        return Err(ConfigError {
            file: first.pos.file.to_string(),
            line: first.pos.line,
            column: first.pos.col,
            path: "[nginx].include".into(),
            message: format!(
                "the gateway serves one site (one server block); this file also has:\n  {}",
                refused
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ),
        });
    }
    Ok(NginxFile {
        server,
        http,
        upstreams,
        base,
        server_at,
        refuses_other_hosts,
        redirects,
    })
}

/// Parses nginx text, resolving `include` (a file or a glob(3) pattern) under `base`.
pub fn parse_nginx(
    name: &str,
    text: &str,
    base: &Path,
) -> std::result::Result<Vec<Directive>, ParseError> {
    parse_nginx_reading(name, text, base, None)
}

/// The same, where an `include` that cannot be read is left out and said in `missing`
/// (`import-nginx` lists it with every other line that cannot load).
pub fn parse_nginx_reading(
    name: &str,
    text: &str,
    base: &Path,
    mut missing: Option<&mut Vec<String>>,
) -> std::result::Result<Vec<Directive>, ParseError> {
    let mut resolve = |pattern: &str| -> std::result::Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        let files = match (expand_include(base, pattern), missing.as_deref_mut()) {
            (Ok(files), _) => files,
            (Err(e), Some(missing)) => {
                missing.push(format!("include {pattern}: {e}"));
                return Ok(out);
            }
            (Err(e), None) => return Err(e),
        };
        for p in files {
            let text = match (std::fs::read_to_string(&p), missing.as_deref_mut()) {
                (Ok(text), _) => text,
                (Err(e), Some(missing)) => {
                    missing.push(format!(
                        "include {pattern}: cannot read \"{}\": {e}",
                        p.display()
                    ));
                    continue;
                }
                // `include mime.types;` of a whole nginx.conf starts where nginx.conf lives.
                (Err(e), None) => {
                    return Err(format!(
                        "cannot read \"{}\": {e} (a relative include starts at [nginx] conf_dir \
                         (import-nginx --conf-dir), the directory of the main nginx.conf such as \
                         \"/etc/nginx\", else at the including file's directory)",
                        p.display()
                    ))
                }
            };
            out.push((p.display().to_string(), text));
        }
        Ok(out)
    };
    parse_directives(name, text, &mut resolve)
}

/// What site files of `dirs` use from nginx's main file in `conf_dir` (`nginx.conf`'s http
/// level), where nginx reads them inside that http block: the `log_format`s their
/// `access_log` lines name but they do not define (the stock nginx.org, CentOS and RHEL file
/// defines `main`, which nearly every `conf.d/*.conf` names), and the `map`s of variables they
/// use but do not define (BaoTa's and many tutorials' `$connection_upgrade` for WebSockets),
/// with the maps those maps read. The main file's own includes are not read (they name the
/// site files). Nothing when there is no such file or it defines none of them.
pub fn from_main_file(conf_dir: &Path, dirs: &[Directive]) -> Vec<Directive> {
    fn walk<'a>(dirs: &'a [Directive], f: &mut impl FnMut(&'a Directive)) {
        for d in dirs {
            f(d);
            walk(d.block.as_deref().unwrap_or_default(), f);
        }
    }
    let (mut named, mut defined) = (Vec::new(), Vec::new());
    let (mut used, mut set): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    walk(dirs, &mut |d| {
        match d.name.as_str() {
            "access_log" => {
                if let Some(f) = d.args.get(1).filter(|a| !a.text.contains('=')) {
                    named.push(f.text.to_ascii_lowercase());
                }
            }
            "log_format" => defined.extend(d.args.first().map(|a| a.text.to_ascii_lowercase())),
            "map" => set.extend(d.args.get(1).and_then(|a| variable_name(&a.text))),
            "geo" => set.extend(d.args.last().and_then(|a| variable_name(&a.text))),
            "set" => set.extend(d.args.first().and_then(|a| variable_name(&a.text))),
            _ => {}
        }
        for a in &d.args {
            used.extend(variables_in(&a.text));
        }
    });
    named.retain(|n| n != "combined" && !defined.contains(n));
    used.retain(|v| !set.contains(v));
    if named.is_empty() && used.is_empty() {
        return Vec::new();
    }
    let path = conf_dir.join("nginx.conf");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let mut unread = |_: &str| Ok(Vec::new());
    let Ok(main) = parse_directives(&path.display().to_string(), &text, &mut unread) else {
        return Vec::new();
    };
    let level: Vec<&Directive> = main
        .iter()
        .flat_map(|d| match d.name.as_str() {
            "http" => d.block.as_deref().unwrap_or_default().iter().collect(),
            _ => vec![d],
        })
        .collect();
    let mut out: Vec<Directive> = Vec::new();
    for f in level.iter().filter(|f| f.name == "log_format") {
        let name = f.args.first().map(|a| a.text.to_ascii_lowercase());
        if name.is_some_and(|n| named.contains(&n)) {
            out.push((*f).clone());
        }
    }
    // A map taken may read another of the main file's: taken too, until none is new.
    let maps: Vec<&Directive> = level
        .iter()
        .copied()
        .filter(|d| d.name == "map" || d.name == "geo")
        .collect();
    let mut taken = vec![false; maps.len()];
    loop {
        let mut more = false;
        for (i, m) in maps.iter().enumerate() {
            let defined = if m.name == "geo" {
                m.args.last()
            } else {
                m.args.get(1)
            };
            let target = defined.and_then(|a| variable_name(&a.text));
            if taken[i] || !target.is_some_and(|t| used.contains(&t)) {
                continue;
            }
            taken[i] = true;
            more = true;
            let mut reads = Vec::new();
            walk(std::slice::from_ref(*m), &mut |d| {
                reads.extend(
                    std::iter::once(&d.name)
                        .chain(d.args.iter().map(|a| &a.text))
                        .flat_map(|t| variables_in(t)),
                );
            });
            used.extend(reads.into_iter().filter(|v| !set.contains(v)));
        }
        if !more {
            break;
        }
    }
    out.extend(
        maps.iter()
            .zip(&taken)
            .filter(|(_, t)| **t)
            .map(|(m, _)| (*m).clone()),
    );
    out
}

/// `$name` (or `${name}`) alone: the variable's name, lower-cased as nginx keys them.
fn variable_name(text: &str) -> Option<String> {
    let v = variables_in(text);
    (v.len() == 1 && text.starts_with('$')).then(|| v[0].clone())
}

/// The variables `text` names (`$name`, `${name}`), lower-cased.
fn variables_in(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        let braced = b.get(i + 1) == Some(&b'{');
        let start = i + 1 + usize::from(braced);
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        if end > start {
            out.push(text[start..end].to_ascii_lowercase());
        }
        i = end.max(i + 1);
    }
    out
}

/// The files an `include` names: `pattern` under `base`, glob(3)'s pattern in any part as
/// nginx reads it ([`super::glob`]).
pub fn expand_include(base: &Path, pattern: &str) -> std::result::Result<Vec<PathBuf>, String> {
    super::glob::expand(base, pattern)
}

fn parse_error(name: &str, e: ParseError) -> ConfigError {
    ConfigError {
        file: e.file.as_deref().unwrap_or(name).to_owned(),
        line: e.line,
        column: e.col,
        path: String::new(),
        message: e.message,
    }
}

/// The first server block's body (through an `http` block if the file is a whole nginx.conf),
/// the directives of the `http` and main levels, and further server blocks, which are not
/// honoured (the gateway serves one site).
/// A file's site and what is beside it ([`server_body`]).
pub struct ServerBody {
    /// The body of its site's server block (or the file, when it holds a body alone).
    pub body: Vec<Directive>,
    /// The http level's directives.
    pub http: Vec<Directive>,
    /// The other server blocks, each with why.
    pub refused: Vec<Unsupported>,
    /// Where the site's server block is, when the file has one.
    pub site_at: Option<Pos>,
    /// A catch-all server answering other hosts, and what it answers ([`refuses_other_hosts`]).
    pub refuses_other_hosts: Option<CatchAll>,
    /// Server blocks that only redirect their names elsewhere ([`NamedRedirect`]).
    pub redirects: Vec<NamedRedirect>,
}

pub fn server_body(dirs: Vec<Directive>) -> ServerBody {
    let mut flat = Vec::new();
    for d in dirs {
        if d.name == "http" && d.block.is_some() {
            flat.extend(d.block.unwrap_or_default());
        } else {
            flat.push(d);
        }
    }
    if !flat.iter().any(|d| d.name == "server") {
        // A server's body alone: `map`, `upstream` and `log_format` are the http level's (a
        // file of `log_format` lines, included beside the site's, names them for it).
        let (http, body): (Vec<Directive>, Vec<Directive>) = flat
            .into_iter()
            .partition(|d| matches!(d.name.as_str(), "map" | "geo" | "upstream" | "log_format"));
        return ServerBody {
            body,
            http,
            refused: Vec::new(),
            site_at: None,
            refuses_other_hosts: None,
            redirects: Vec::new(),
        };
    }
    // A file with a server block: what is outside it is the http level's (its settings,
    // `map`s, `upstream`s) or nginx's process settings (`events`, `worker_processes`...),
    // which the rule set reads, notes or refuses, each at its own line.
    let (http, mut servers): (Vec<Directive>, Vec<Directive>) =
        flat.into_iter().partition(|d| d.name != "server");
    let block = |d: &Directive| d.block.as_deref().unwrap_or_default().to_vec();
    // nginx's catch-all refusing other hosts is kept as the site's host check (one per port
    // is usual, `listen 80` and `listen 443 ssl`: the first one's status answers).
    let mut refuses = None;
    servers.retain(|d| match refuses_other_hosts(&block(d)) {
        Some(catch_all) => {
            refuses.get_or_insert(catch_all);
            false
        }
        None => true,
    });
    // The site: the first server block that does more than redirect (to https); each other
    // is listed, so that one run names every line to change, the site's own included.
    let site = servers
        .iter()
        .position(|d| !redirect_only(&block(d)))
        .unwrap_or(0);
    let site_at = servers.get(site).map(|d| d.pos.clone());
    let site_block = servers.get(site).map(block).unwrap_or_default();
    let mut body = Vec::new();
    let mut refused = Vec::new();
    let mut redirects = Vec::new();
    for (i, d) in servers.into_iter().enumerate() {
        if i == site {
            body = d.block.unwrap_or_default();
            continue;
        }
        if redirects_names(&block(&d), &site_block) {
            redirects.push(NamedRedirect {
                body: block(&d),
                pos: d.pos.clone(),
                before_site: i < site,
            });
            continue;
        }
        let why = match (&site_at, redirect_only(&block(&d))) {
            (_, true) => REDIRECT_PAIR_HINT.to_owned(),
            (Some(at), false) => format!(
                "the gateway serves one site, the server block at line {}: include a file with \
                 that one alone",
                at.line
            ),
            (None, false) => "the gateway serves one site".to_owned(),
        };
        refused.push(Unsupported {
            directive: d.name,
            pos: d.pos,
            detail: Some(why),
        });
    }
    ServerBody {
        body,
        http,
        refused,
        site_at,
        refuses_other_hosts: refuses,
        redirects,
    }
}

/// An `upstream NAME { server ADDR ...; }` block of the nginx file, read as nginx reads it.
pub struct UpstreamBlock {
    pub name: String,
    /// Each `server` line: its address, as `[upstreams.NAME]` must have it.
    pub servers: Vec<BlockServer>,
    pub method: balance::Method,
    /// What loads with no effect, as `(line, why)` for `check` to list.
    pub noted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockServer {
    pub addr: String,
    pub weight: u32,
    pub max_fails: u32,
    pub fail_timeout_secs: u64,
    pub backup: bool,
    pub down: bool,
}

impl BlockServer {
    /// As `servers = [...]` writes it.
    pub fn toml(&self) -> String {
        let mut t = format!("{{ url = \"http://{}\"", self.addr);
        if self.weight != 1 {
            let _ = write!(t, ", weight = {}", self.weight);
        }
        if self.max_fails != 1 {
            let _ = write!(t, ", max_fails = {}", self.max_fails);
        }
        if self.fail_timeout_secs != 10 {
            let _ = write!(t, ", fail_timeout = \"{}s\"", self.fail_timeout_secs);
        }
        if self.backup {
            t.push_str(", backup = true");
        }
        if self.down {
            t.push_str(", down = true");
        }
        t.push_str(" }");
        t
    }
}

/// The block's servers with nginx's defaults (`weight=1 max_fails=1 fail_timeout=10`), `down`
/// and `backup`; `ip_hash` or the round-robin. `max_conns`, `keepalive*` and `zone` load and
/// are listed; `least_conn`, `hash` and `random` with several servers are refused (with one,
/// there is nothing to choose between).
pub fn upstream_block(d: &Directive) -> std::result::Result<UpstreamBlock, String> {
    let name = match d.args.as_slice() {
        [n] => n.text.clone(),
        _ => return Err("an upstream block needs one name".into()),
    };
    let refused = |why: &str| Err(format!("upstream {name}: {why}"));
    let mut servers = Vec::new();
    let mut method = balance::Method::RoundRobin;
    let mut other_method = None;
    let mut ip_hash_at = None;
    let mut tuned_at = None;
    let mut noted = Vec::new();
    for s in d.block.as_deref().unwrap_or_default() {
        let why = match s.name.as_str() {
            "server" => {
                let Some((addr, params)) = s.args.split_first() else {
                    return refused("`server` needs an address");
                };
                if addr.text.starts_with("unix:") {
                    return refused(&format!(
                        "`server {}`: the gateway reaches its upstreams over TCP (an application \
                         on a port instead)",
                        addr.text
                    ));
                }
                let mut server = BlockServer {
                    addr: addr.text.clone(),
                    weight: 1,
                    max_fails: 1,
                    fail_timeout_secs: 10,
                    backup: false,
                    down: false,
                };
                let mut max_conns = false;
                for p in params {
                    let (key, value) = p.text.split_once('=').unwrap_or((p.text.as_str(), ""));
                    let number = || value.parse::<u32>().ok().filter(|n| *n <= 1_000_000);
                    let bad = || format!("invalid parameter \"{}\"", p.text);
                    match key {
                        "weight" => server.weight = number().filter(|n| *n > 0).ok_or_else(bad)?,
                        "max_fails" => server.max_fails = number().ok_or_else(bad)?,
                        "fail_timeout" => {
                            server.fail_timeout_secs =
                                nginx_compat::parse::seconds(value).ok_or_else(bad)?
                        }
                        "max_conns" => {
                            number().ok_or_else(bad)?;
                            max_conns = true;
                        }
                        "backup" if value.is_empty() && p.text == "backup" => server.backup = true,
                        "down" if value.is_empty() && p.text == "down" => server.down = true,
                        _ => return refused(&format!("`server ... {}` is not supported", p.text)),
                    }
                }
                if server.weight != 1 || server.max_fails != 1 || server.fail_timeout_secs != 10 {
                    tuned_at.get_or_insert(s.pos.clone());
                }
                servers.push(server);
                if !max_conns {
                    continue;
                }
                "max_conns: a server takes what it is sent here (nginx queues nothing without \
                 `queue` either)"
            }
            "keepalive" | "keepalive_timeout" | "keepalive_requests" | "keepalive_time" => {
                "the gateway keeps its own pool of upstream connections"
            }
            "zone" => "the gateway's worker threads share the servers' state already",
            "ip_hash" => {
                method = balance::Method::IpHash;
                ip_hash_at = Some(s.pos.clone());
                continue;
            }
            "least_conn" | "hash" | "random" => {
                other_method = Some((s.name.clone(), s.pos.clone()));
                continue;
            }
            other => return refused(&format!("`{other}` is not supported")),
        };
        noted.push(format!("{}: {}: {why}", s.pos, s.name));
    }
    if servers.is_empty() {
        return refused("a `server` is needed");
    }
    if let Some((m, at)) = other_method {
        if servers.len() > 1 {
            return refused(&format!(
                "`{m}` is not supported with several servers (the gateway shares them out \
                 round-robin, or by the client's address with `ip_hash`)"
            ));
        }
        noted.push(format!(
            "{at}: {m}: with one server there is nothing to choose between"
        ));
    }
    // nginx's `single` peer: one server is never weighed, marked failed or hashed to.
    if servers.len() == 1 {
        if let Some(at) = tuned_at {
            noted.push(format!(
                "{at}: server: with one server there is nothing to weigh or mark failed"
            ));
        }
        if let Some(at) = ip_hash_at {
            noted.push(format!(
                "{at}: ip_hash: with one server there is nothing to choose between"
            ));
        }
    }
    if method == balance::Method::IpHash && servers.iter().any(|s| s.backup) {
        return refused("`backup` cannot be used with `ip_hash`, as in nginx");
    }
    Ok(UpstreamBlock {
        name,
        servers,
        method,
        noted,
    })
}

/// The block's servers must be `[upstreams.NAME]`'s (same addresses and parameters, the same
/// balancing): the gateway's table decides, the block says what nginx did. Returns the lines
/// it loads with no effect, for `check` to list.
fn check_upstream_block(
    d: &Directive,
    upstreams: &std::collections::BTreeMap<String, Arc<Upstream>>,
) -> Result<Vec<String>> {
    let err = |message: String| ConfigError {
        file: d.pos.file.to_string(),
        line: d.pos.line,
        column: d.pos.col,
        path: "[nginx].include".into(),
        message,
    };
    let block = upstream_block(d).map_err(err)?;
    let name = &block.name;
    let wanted = upstream_toml(&block);
    let Some(up) = upstreams.get(name) else {
        return Err(err(format!(
            "upstream {name}: add [upstreams.{name}] with {wanted}"
        )));
    };
    let authority = |addr: &str| {
        if addr.contains(':') && !addr.ends_with(']') {
            addr.to_ascii_lowercase()
        } else {
            format!("{}:80", addr.to_ascii_lowercase())
        }
    };
    let ours: Vec<BlockServer> = match up.balance.as_deref() {
        None => vec![BlockServer {
            addr: up.authority.to_ascii_lowercase(),
            weight: 1,
            max_fails: 1,
            fail_timeout_secs: 10,
            backup: false,
            down: false,
        }],
        // A server per address of a name: the block names the entry once.
        Some(b) => b
            .servers
            .iter()
            .enumerate()
            .filter(|(i, s)| *i == 0 || b.servers[i - 1].entry != s.entry)
            .map(|(_, s)| BlockServer {
                addr: s.authority.to_ascii_lowercase(),
                weight: s.weight,
                max_fails: s.max_fails,
                fail_timeout_secs: s.fail_timeout.as_secs(),
                backup: s.backup,
                down: s.down,
            })
            .collect(),
    };
    let mut theirs: Vec<BlockServer> = block
        .servers
        .iter()
        .map(|s| BlockServer {
            addr: authority(&s.addr),
            ..s.clone()
        })
        .collect();
    // The backups come after the others in `Balance`, whatever the order written.
    theirs.sort_by_key(|s| s.backup);
    let method = up
        .balance
        .as_deref()
        .map_or(balance::Method::RoundRobin, |b| b.method);
    // One server: its parameters change nothing (nginx's `single` peer), only its address.
    let same = if theirs.len() == 1 && ours.len() == 1 {
        theirs[0].addr == ours[0].addr && theirs[0].down == ours[0].down
    } else {
        theirs == ours && method == block.method
    };
    if same {
        return Ok(block.noted);
    }
    Err(err(format!(
        "upstream {name}: its servers are not [upstreams.{name}]'s: write {wanted}"
    )))
}

/// `[upstreams.NAME]`'s keys for the block: `url = ...` for one server, else `servers = [...]`
/// (and `balance = "ip_hash"`).
pub fn upstream_toml(block: &UpstreamBlock) -> String {
    match block.servers.as_slice() {
        [one] if !one.down => format!("url = \"http://{}\"", one.addr),
        list => {
            let mut t = String::from("servers = [\n");
            for s in list {
                let _ = writeln!(t, "  {},", s.toml());
            }
            t.push(']');
            if block.method == balance::Method::IpHash {
                t.push_str("\nbalance = \"ip_hash\"");
            }
            t
        }
    }
}

/// Every `proxy_pass` without variables must name a configured upstream: `[upstreams.NAME]`
/// or one whose url is `http://host:port`. (One with variables is looked up per request and
/// answers 502 when it names none.)
/// `gzip on` at this level or one inside it (nested locations, `if` blocks).
fn any_gzip(conf: &LocConf) -> bool {
    conf.settings.gzip.on
        || conf.children.iter().any(|(_, c)| any_gzip(c))
        || conf.ifs.iter().any(any_gzip)
}

/// Says, once per path, where a location serving files has a literal `root` or `alias` that
/// cannot serve them: every request there would be a 404, or a 500 once `try_files` falls
/// back in a loop, as nginx answers, with nothing else to tell why. A `root` is a directory;
/// an `alias` may also name a file (`location = /WW_verify_x.txt { alias /srv/x.txt; }`, the
/// usual way to serve WeCom's domain check file: nginx swaps the location's name for it). A
/// relative path starts at `[nginx].prefix` (nginx's `-p`), else at the included file's
/// directory.
fn missing_roots(conf: &LocConf, base: &Path, seen: &mut Vec<PathBuf>) {
    let serves_files = conf.try_files.is_some()
        || conf.settings.alias.is_some()
        || (conf.proxy_pass.is_none() && conf.settings.root_written);
    let alias = conf.settings.alias.is_some();
    let path = conf
        .settings
        .alias
        .as_ref()
        .unwrap_or(&conf.settings.root)
        .literal()
        .map(|d| base.join(String::from_utf8_lossy(d).as_ref()));
    let unusable = |p: &PathBuf| !(p.is_dir() || (alias && p.is_file()));
    if let Some(path) = path.filter(|p| serves_files && unusable(p) && !seen.contains(p)) {
        tracing::warn!(
            "the nginx file's location at {}:{} serves files from '{}', which {} (a \
             relative root or alias starts at [nginx].prefix, nginx's -p, else at the \
             included file's directory)",
            conf.pos.file,
            conf.pos.line,
            path.display(),
            if path.exists() {
                "is not a directory"
            } else {
                "does not exist"
            }
        );
        seen.push(path);
    }
    for child in conf.children.iter().map(|(_, c)| c).chain(&conf.ifs) {
        missing_roots(child, base, seen);
    }
}

fn check_targets(
    conf: &LocConf,
    rules: &Rules,
    upstreams: &std::collections::BTreeMap<String, Arc<Upstream>>,
) -> Result<()> {
    if let Some(pass) = &conf.proxy_pass {
        if let PassKind::Static(t) = &pass.kind {
            if rules.upstream(&t.authority).is_none() {
                return Err(ConfigError {
                    file: pass.pos.file.to_string(),
                    line: pass.pos.line,
                    column: pass.pos.col,
                    path: String::new(),
                    message: format!(
                        "proxy_pass {}: unknown upstream (known: {}); an [upstreams.NAME] \
                         is named by NAME or by its url's host:port, as written",
                        pass.url,
                        if upstreams.is_empty() {
                            "none".into()
                        } else {
                            upstreams
                                .iter()
                                .map(|(n, u)| format!("{n} = {}", u.authority))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                });
            }
        }
    }
    for (_, child) in conf.children.iter() {
        check_targets(child, rules, upstreams)?;
    }
    // An `if` block's own `proxy_pass` too: found now, not by its first request.
    for block in &conf.ifs {
        check_targets(block, rules, upstreams)?;
    }
    Ok(())
}

/// The hosts `proxy_pass http://$var...` can name, when every value `$var` is given in the
/// file is a host written out: its `set`s anywhere, and the values (default included) of the
/// `map` that makes it. `None` when any is not (another variable, a value built per request).
pub(crate) fn variable_hosts(
    url: &str,
    all: &[Directive],
    maps: &[Directive],
) -> Option<Vec<(String, String)>> {
    // `proxy_pass $backend` (the variable holds the whole URL: `set $backend
    // http://svc:8080;`) or `proxy_pass http://$backend...` (its host and port).
    let (var, whole) = match url.strip_prefix("http://$") {
        Some(var) => (var, false),
        None => (url.strip_prefix('$')?, true),
    };
    let var = var.trim_start_matches('{');
    let end = var
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(var.len());
    let (var, rest) = (&var[..end], var[end..].trim_start_matches('}'));
    // `http://$backend` or `http://$backend/path...`: the variable is the whole authority.
    if var.is_empty() || !(rest.is_empty() || rest.starts_with(['/', '$', '?'])) {
        return None;
    }
    let want = format!("${var}");
    let mut values: Vec<&str> = Vec::new();
    // `true`: something else writes the variable per request (a regex's named capture of
    // that name: `location`, `if`, `rewrite`, a `map`'s key). (A `resolver` only says nginx
    // looks the names of its `set`s up while serving: the gateway resolves them at load, and
    // they are the hosts all the same.)
    fn sets<'a>(dirs: &'a [Directive], var: &str, want: &str, values: &mut Vec<&'a str>) -> bool {
        let captures = [
            format!("(?<{var}>"),
            format!("(?P<{var}>"),
            format!("(?'{var}'"),
        ];
        for d in dirs {
            if let ("set", [name, value]) = (d.name.as_str(), d.args.as_slice()) {
                if name.text.eq_ignore_ascii_case(want) {
                    values.push(value.text.as_str());
                }
            }
            let written = std::iter::once(&d.name)
                .chain(d.args.iter().map(|a| &a.text))
                .any(|t| captures.iter().any(|c| t.contains(c.as_str())));
            if written || sets(d.block.as_deref().unwrap_or(&[]), var, want, values) {
                return true;
            }
        }
        false
    }
    if sets(all, var, &want, &mut values) || sets(maps, var, &want, &mut Vec::new()) {
        return None;
    }
    for m in maps.iter().filter(|m| m.name == "map") {
        if m.args
            .get(1)
            .is_some_and(|a| a.text.eq_ignore_ascii_case(&want))
        {
            for entry in m.block.as_deref().unwrap_or(&[]) {
                match (entry.name.as_str(), entry.args.as_slice()) {
                    ("hostnames" | "volatile", []) => {}
                    (_, [value]) => values.push(value.text.as_str()),
                    _ => return None,
                }
            }
        }
    }
    if values.is_empty() {
        return None;
    }
    values
        .into_iter()
        .map(|v| match whole {
            true => upstream_of(v).filter(|_| !v.contains('$')),
            false => upstream_of(&format!("http://{v}")).filter(|_| !v.contains(['$', '/'])),
        })
        .collect()
}

/// (upstream name, address) of a `proxy_pass` URL whose host is written out; its URI part
/// may have variables (`http://crm$request_uri`), its host may not (`http://$backend`).
pub(crate) fn upstream_of(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let end = rest.find(['/', '?', '$']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.ends_with(['.', '-']) {
        return None;
    }
    parse_target(authority).ok()?;
    // Named by the host, and by the port when one is written: `proxy_pass http://NAME` reads
    // NAME as an upstream's name first, so a name that is a host must be that host's port 80
    // (`localhost` for `localhost:8080` would take `proxy_pass http://localhost` there), and
    // two ports of one host (an API and its file service) each get their own.
    let name: String = authority
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    Some((name, authority.to_owned()))
}
