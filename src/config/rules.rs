//! `[[rewrite]]`, route `rewrite = [...]` lists and `[nginx] include` files compiled into one
//! nginx server (SPEC sections 4 and 12), evaluated by `nginx-compat` at request time.
//!
//! The TOML rules become directives of a synthetic server, in this order: the `[[rewrite]]`
//! tables (server level), one `location` per `[[routes]]` entry holding its own rewrites, then
//! the body of the included nginx server (its server-level rules after the TOML ones, its
//! locations after the routes). Every directive keeps the position it was written at, so a bad
//! regex is reported at its TOML or nginx line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nginx_compat::parse::{parse_directives, Arg, Directive, Pos};
use nginx_compat::regex::NgxRegex;
use nginx_compat::{LocConf, Location, ParseError, Server, Unsupported};
use serde_spanned::Spanned;

use super::error::{line_col, route_path, ConfigError, Source};
use super::file::{self, RewriteFlag};
use crate::domain::Upstream;

/// The compiled rule set.
pub struct Rules {
    pub server: Server,
    /// The first `routes` top-level locations of `server` are the `[[routes]]`, in order.
    pub routes: usize,
    /// `proxy_pass` targets of the nginx locations, as written, and the upstream each names.
    pub targets: HashMap<String, Arc<Upstream>>,
    /// Where relative `root`/`alias` paths start: the directory of the nginx file. `None`
    /// when no nginx file is included; static outcomes are then "no route" (404).
    pub static_base: Option<PathBuf>,
}

type Result<T> = std::result::Result<T, ConfigError>;

/// `None` when there is no rule at all: the request path then costs nothing extra.
pub(super) fn compile(
    f: &file::File,
    upstreams: &std::collections::BTreeMap<String, Arc<Upstream>>,
    includes: &[PathBuf],
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
    for (i, r) in f.routes.iter().enumerate() {
        let route = r.get_ref();
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
    for path in includes {
        let (server_body, base) = read_nginx(path)?;
        static_base.get_or_insert(base);
        body.extend(server_body);
    }
    let server_dir = Directive {
        name: "server".into(),
        args: Vec::new(),
        block: Some(body),
        pos: b.pos(0..0, String::new()),
    };
    let cfg = nginx_compat::Config::from_directives(&[server_dir]).map_err(|e| b.error(e))?;
    if !cfg.unsupported.is_empty() {
        let lines: Vec<String> = cfg.unsupported.iter().map(|u| u.to_string()).collect();
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
    let server = cfg
        .servers
        .into_iter()
        .next()
        .expect("one synthetic server");
    // A `[[routes]]` entry is a proxied location: `/p/` answers `/p` with nginx's 301, as
    // the synthetic `proxy_pass` gives it (SPEC section 5, step 6).
    let routes = f.routes.len();
    let mut targets = HashMap::new();
    for (_, conf) in server.locations.iter().skip(routes) {
        map_targets(conf, upstreams, &mut targets)?;
    }
    Ok(Some(Rules {
        server,
        routes,
        targets,
        static_base,
    }))
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

/// Reads an nginx file (its own `include`s resolved relative to its directory) and returns
/// the body of its server block and that directory. A file holding only a server body
/// (`location` blocks, as in a snippet) is read as that body.
pub fn read_nginx(path: &Path) -> Result<(Vec<Directive>, PathBuf)> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(&name, &e))?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dirs = parse_nginx(&name, &text, &base).map_err(|e| parse_error(&name, e))?;
    let (body, refused) = server_body(dirs);
    if let Some(first) = refused.first() {
        return Err(ConfigError {
            file: first.pos.file.to_string(),
            line: first.pos.line,
            column: first.pos.col,
            path: "[nginx].include".into(),
            message: format!(
                "only the first server block is used; this file also has:\n  {}",
                refused
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ),
        });
    }
    Ok((body, base))
}

/// Parses nginx text, resolving `include` (with `*` in the file name) under `base`.
pub fn parse_nginx(
    name: &str,
    text: &str,
    base: &Path,
) -> std::result::Result<Vec<Directive>, ParseError> {
    let mut resolve = |pattern: &str| -> std::result::Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        for p in expand_include(base, pattern)? {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| format!("cannot read \"{}\": {e}", p.display()))?;
            out.push((p.display().to_string(), text));
        }
        Ok(out)
    };
    parse_directives(name, text, &mut resolve)
}

fn expand_include(base: &Path, pattern: &str) -> std::result::Result<Vec<PathBuf>, String> {
    let full = base.join(pattern);
    let file_name = full
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some((head, tail)) = file_name.split_once('*') else {
        return Ok(vec![full]);
    };
    let dir = full.parent().unwrap_or(base);
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list \"{}\": {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().map(|f| f.to_string_lossy().into_owned());
            n.is_some_and(|n| {
                n.len() >= head.len() + tail.len() && n.starts_with(head) && n.ends_with(tail)
            })
        })
        .collect();
    // nginx's glob() returns names in sorted order.
    found.sort();
    Ok(found)
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
/// and what lies outside it (further servers, `upstream`, `events`...), which is not honoured.
pub fn server_body(dirs: Vec<Directive>) -> (Vec<Directive>, Vec<Unsupported>) {
    let mut flat = Vec::new();
    for d in dirs {
        if d.name == "http" && d.block.is_some() {
            flat.extend(d.block.unwrap_or_default());
        } else {
            flat.push(d);
        }
    }
    if !flat.iter().any(|d| d.name == "server") {
        return (flat, Vec::new());
    }
    let mut body = None;
    let mut refused = Vec::new();
    for d in flat {
        match (d.name.as_str(), &body) {
            ("server", None) => body = Some(d.block.unwrap_or_default()),
            _ => refused.push(Unsupported {
                directive: d.name,
                pos: d.pos,
            }),
        }
    }
    (body.unwrap_or_default(), refused)
}

/// `proxy_pass http://NAME` names `[upstreams.NAME]`, or an upstream whose url is
/// `http://host:port`. A URI part (nginx's prefix replacement) or variables are refused.
fn map_targets(
    conf: &LocConf,
    upstreams: &std::collections::BTreeMap<String, Arc<Upstream>>,
    out: &mut HashMap<String, Arc<Upstream>>,
) -> Result<()> {
    if let Some(target) = &conf.proxy_pass {
        let pos = conf.proxy_pass_pos.as_ref().unwrap_or(&conf.pos);
        let up = resolve_target(target, upstreams).map_err(|message| ConfigError {
            file: pos.file.to_string(),
            line: pos.line,
            column: pos.col,
            path: String::new(),
            message: format!("proxy_pass {target}: {message}"),
        })?;
        out.insert(target.clone(), up);
    }
    for (_, child) in conf.children.iter() {
        map_targets(child, upstreams, out)?;
    }
    Ok(())
}

pub fn resolve_target(
    target: &str,
    upstreams: &std::collections::BTreeMap<String, Arc<Upstream>>,
) -> std::result::Result<Arc<Upstream>, String> {
    let Some(rest) = target.strip_prefix("http://") else {
        return Err("only http:// targets are supported".into());
    };
    if rest.contains('$') {
        return Err("variables in proxy_pass are not supported".into());
    }
    if rest.contains('/') {
        return Err(
            "a URI part in proxy_pass is not supported (write it as a rewrite ... break)".into(),
        );
    }
    if let Some(up) = upstreams.get(rest) {
        return Ok(up.clone());
    }
    let authority = if rest.contains(':') && !rest.ends_with(']') {
        rest.to_owned()
    } else {
        format!("{rest}:80")
    };
    upstreams
        .values()
        .find(|u| u.authority.eq_ignore_ascii_case(&authority))
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
            format!(
                "unknown upstream (known: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )
        })
}
