//! The typed configuration: servers, their locations and rewrite-module statements.

use std::fmt;

use super::{parse_directives, Directive, IncludeResolver, ParseError, Pos};
use crate::location::{Location, LocationSet, Modifier};
use crate::regex::NgxRegex;
use crate::vars::Template;

/// A directive this crate does not implement; printed as `FILE:LINE: directive 'x' is not
/// supported` so nothing is ever silently dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub directive: String,
    pub pos: Pos,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: directive '{}' is not supported",
            self.pos, self.directive
        )
    }
}

#[derive(Debug)]
pub struct Config {
    pub servers: Vec<Server>,
    pub unsupported: Vec<Unsupported>,
}

/// Per-location settings that nginx merges from the enclosing level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub root: String,
    /// `alias` replaces the location's matched part; never inherited.
    pub alias: Option<String>,
    pub index: Vec<String>,
    pub absolute_redirect: bool,
    pub port_in_redirect: bool,
    pub server_name_in_redirect: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            root: "html".into(),
            alias: None,
            index: vec!["index.html".into()],
            absolute_redirect: true,
            port_in_redirect: true,
            server_name_in_redirect: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    Uri(Template),
    Code(u16),
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryFiles {
    pub candidates: Vec<Template>,
    pub fallback: Fallback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Last,
    Break,
    None,
}

#[derive(Debug, Clone)]
pub struct Rewrite {
    pub regex: NgxRegex,
    /// The replacement up to its first `?` (all of it for a redirect).
    pub uri: Template,
    /// The replacement after the first `?` of an internal rewrite.
    pub args: Option<Template>,
    /// The replacement contains a `?` (a redirect then appends old args with `&`).
    pub has_args: bool,
    /// Unless the replacement ends in `?`, the request's arguments are appended.
    pub add_args: bool,
    /// Some(301|302) for a redirect.
    pub redirect: Option<u16>,
    pub flag: Flag,
}

#[derive(Debug, Clone)]
pub enum Cond {
    /// `if ($var)`: false when empty or "0".
    Truth(String),
    Eq {
        var: String,
        value: Template,
        negate: bool,
    },
    Regex {
        var: String,
        regex: NgxRegex,
        negate: bool,
    },
    /// `-f`, `-d`, `-e`, `-x` (and `!` forms) need the file system.
    File { op: String, path: Template },
}

#[derive(Debug, Clone)]
pub enum Stmt {
    Rewrite(Rewrite),
    Return { code: u16, text: Option<Template> },
    Set { name: String, value: Template },
    If { cond: Cond, body: Vec<Stmt> },
    Break,
}

#[derive(Debug)]
pub struct LocConf {
    pub location: Location,
    pub stmts: Vec<Stmt>,
    pub settings: Settings,
    pub proxy_pass: Option<String>,
    /// Where `proxy_pass` was written, for errors about its target.
    pub proxy_pass_pos: Option<Pos>,
    pub try_files: Option<TryFiles>,
    pub children: LocationSet<LocConf>,
    pub pos: Pos,
}

#[derive(Debug)]
pub struct Server {
    pub names: Vec<String>,
    pub listen: Vec<String>,
    pub stmts: Vec<Stmt>,
    pub settings: Settings,
    pub try_files: Option<TryFiles>,
    pub locations: LocationSet<LocConf>,
    pub pos: Pos,
}

impl Server {
    /// `$server_name`: the first name, as nginx uses it.
    pub fn server_name(&self) -> &str {
        self.names.first().map_or("", String::as_str)
    }
}

impl Config {
    /// Parse a file that may not `include` anything.
    pub fn parse(file: &str, src: &str) -> Result<Config, ParseError> {
        Config::parse_with(file, src, &mut |p: &str| {
            Err(format!("include \"{p}\" cannot be resolved here"))
        })
    }

    /// Parse, resolving `include` through the caller (this crate reads no files).
    pub fn parse_with(
        file: &str,
        src: &str,
        resolve: &mut IncludeResolver<'_>,
    ) -> Result<Config, ParseError> {
        let dirs = parse_directives(file, src, resolve)?;
        Config::from_directives(&dirs)
    }

    /// Build from directives the caller assembled (the gateway turns its TOML rules into a
    /// synthetic server this way, keeping the TOML file's positions in errors).
    pub fn from_directives(dirs: &[Directive]) -> Result<Config, ParseError> {
        let mut b = Builder::default();
        let mut servers = Vec::new();
        b.top(dirs, &mut servers)?;
        Ok(Config {
            servers,
            unsupported: b.unsupported,
        })
    }
}

#[derive(Default)]
struct Builder {
    unsupported: Vec<Unsupported>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Server,
    Location,
    If,
}

fn args(d: &Directive) -> Vec<&str> {
    d.args.iter().map(|a| a.text.as_str()).collect()
}

fn nargs(d: &Directive, ok: impl Fn(usize) -> bool) -> Result<(), ParseError> {
    if ok(d.args.len()) {
        Ok(())
    } else {
        Err(d.pos.error(format!(
            "invalid number of arguments in \"{}\" directive",
            d.name
        )))
    }
}

fn no_block(d: &Directive) -> Result<(), ParseError> {
    if d.block.is_some() {
        return Err(d
            .pos
            .error(format!("directive \"{}\" has no opening \"{{\"", d.name)));
    }
    Ok(())
}

fn on_off(d: &Directive) -> Result<bool, ParseError> {
    nargs(d, |n| n == 1)?;
    match d.args[0].text.as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        v => Err(d.pos.error(format!(
            "invalid value \"{v}\" in \"{}\" directive, it must be \"on\" or \"off\"",
            d.name
        ))),
    }
}

fn template(d: &Directive, s: &str) -> Result<Template, ParseError> {
    Template::compile(s, false)
        .map(|(t, _)| t)
        .map_err(|m| d.pos.error(m))
}

fn regex(d: &Directive, s: &str, caseless: bool) -> Result<NgxRegex, ParseError> {
    NgxRegex::new(s, caseless).map_err(|e| {
        d.pos
            .error(format!("pcre2_compile() failed: {e} in \"{s}\""))
    })
}

impl Builder {
    fn unsupported(&mut self, d: &Directive) {
        self.unsupported.push(Unsupported {
            directive: d.name.clone(),
            pos: d.pos.clone(),
        });
    }

    fn top(&mut self, dirs: &[Directive], servers: &mut Vec<Server>) -> Result<(), ParseError> {
        for d in dirs {
            match d.name.as_str() {
                // A whole nginx.conf: only its http block matters here.
                "http" => self.top(d.block.as_deref().unwrap_or(&[]), servers)?,
                "server" => servers.push(self.server(d)?),
                _ => self.unsupported(d),
            }
        }
        Ok(())
    }

    fn server(&mut self, d: &Directive) -> Result<Server, ParseError> {
        let Some(block) = &d.block else {
            return Err(d.pos.error("directive \"server\" has no opening \"{\""));
        };
        let mut s = Server {
            names: Vec::new(),
            listen: Vec::new(),
            stmts: Vec::new(),
            settings: Settings::default(),
            try_files: None,
            locations: LocationSet::new(Vec::new()).expect("empty set"),
            pos: d.pos.clone(),
        };
        // Settings first: nginx merges them regardless of where they appear in the block.
        for c in block {
            self.setting(c, &mut s.settings, Ctx::Server)?;
        }
        let mut locs = Vec::new();
        for c in block {
            match c.name.as_str() {
                "server_name" => {
                    nargs(c, |n| n >= 1)?;
                    s.names.extend(args(c).iter().map(|a| a.to_string()));
                }
                "listen" => {
                    nargs(c, |n| n >= 1)?;
                    s.listen.push(args(c).join(" "));
                }
                "location" => locs.push(self.location(c, &s.settings)?),
                "try_files" => s.try_files = Some(try_files(c)?),
                n if is_setting(n) => {}
                _ => {
                    if let Some(st) = self.stmt(c, Ctx::Server)? {
                        s.stmts.push(st);
                    }
                }
            }
        }
        s.locations = location_set(d, locs)?;
        Ok(s)
    }

    fn setting(&mut self, d: &Directive, s: &mut Settings, ctx: Ctx) -> Result<(), ParseError> {
        match d.name.as_str() {
            "root" => {
                nargs(d, |n| n == 1)?;
                s.root = d.args[0].text.clone();
                s.alias = None;
            }
            "alias" => {
                if ctx != Ctx::Location {
                    return Err(d.pos.error("\"alias\" directive is not allowed here"));
                }
                nargs(d, |n| n == 1)?;
                s.alias = Some(d.args[0].text.clone());
            }
            "index" => {
                nargs(d, |n| n >= 1)?;
                s.index = args(d).iter().map(|a| a.to_string()).collect();
            }
            "absolute_redirect" => s.absolute_redirect = on_off(d)?,
            "port_in_redirect" => s.port_in_redirect = on_off(d)?,
            "server_name_in_redirect" => s.server_name_in_redirect = on_off(d)?,
            _ => return Ok(()),
        }
        no_block(d)
    }

    fn location(
        &mut self,
        d: &Directive,
        parent: &Settings,
    ) -> Result<(Location, LocConf), ParseError> {
        let a = args(d);
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
        if location.pattern().starts_with('@') {
            self.unsupported(d);
        }
        let Some(block) = &d.block else {
            return Err(d.pos.error("directive \"location\" has no opening \"{\""));
        };
        let mut settings = parent.clone();
        settings.alias = None;
        for c in block {
            self.setting(c, &mut settings, Ctx::Location)?;
        }
        let mut conf = LocConf {
            location: location.clone(),
            stmts: Vec::new(),
            settings,
            proxy_pass: None,
            proxy_pass_pos: None,
            try_files: None,
            children: LocationSet::new(Vec::new()).expect("empty set"),
            pos: d.pos.clone(),
        };
        let mut kids = Vec::new();
        for c in block {
            match c.name.as_str() {
                "location" => {
                    if location.modifier() == Modifier::Exact {
                        return Err(c.pos.error(format!(
                            "location \"{}\" cannot be inside the exact location \"{}\"",
                            args(c).join(" "),
                            location.pattern()
                        )));
                    }
                    kids.push(self.location(c, &conf.settings)?);
                }
                "proxy_pass" => {
                    nargs(c, |n| n == 1)?;
                    no_block(c)?;
                    conf.proxy_pass = Some(c.args[0].text.clone());
                    conf.proxy_pass_pos = Some(c.pos.clone());
                }
                "try_files" => conf.try_files = Some(try_files(c)?),
                n if is_setting(n) => {}
                _ => {
                    if let Some(st) = self.stmt(c, Ctx::Location)? {
                        conf.stmts.push(st);
                    }
                }
            }
        }
        conf.children = location_set(d, kids)?;
        Ok((location, conf))
    }

    /// A rewrite-module statement, or None after recording an unsupported directive.
    fn stmt(&mut self, d: &Directive, ctx: Ctx) -> Result<Option<Stmt>, ParseError> {
        let a = args(d);
        let st = match d.name.as_str() {
            "rewrite" => {
                no_block(d)?;
                nargs(d, |n| n == 2 || n == 3)?;
                Stmt::Rewrite(rewrite(d, &a)?)
            }
            "return" => {
                no_block(d)?;
                nargs(d, |n| n == 1 || n == 2)?;
                ret(d, &a)?
            }
            "set" => {
                no_block(d)?;
                nargs(d, |n| n == 2)?;
                let Some(name) = a[0].strip_prefix('$') else {
                    return Err(d.pos.error(format!("invalid variable name \"{}\"", a[0])));
                };
                Stmt::Set {
                    name: name.to_string(),
                    value: template(d, a[1])?,
                }
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
                let cond = condition(d)?;
                let mut body = Vec::new();
                for c in block {
                    if let Some(st) = self.stmt(c, Ctx::If)? {
                        body.push(st);
                    }
                }
                Stmt::If { cond, body }
            }
            _ => {
                let _ = ctx;
                self.unsupported(d);
                return Ok(None);
            }
        };
        Ok(Some(st))
    }
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
    )
}

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

fn try_files(d: &Directive) -> Result<TryFiles, ParseError> {
    nargs(d, |n| n >= 2)?;
    no_block(d)?;
    let a = args(d);
    let (last, rest) = a.split_last().expect("two or more");
    let fallback = if let Some(code) = last.strip_prefix('=') {
        Fallback::Code(
            code.parse()
                .map_err(|_| d.pos.error(format!("invalid code \"{last}\"")))?,
        )
    } else if last.starts_with('@') {
        Fallback::Named(last.to_string())
    } else {
        Fallback::Uri(template(d, last)?)
    };
    let candidates = rest
        .iter()
        .map(|c| template(d, c))
        .collect::<Result<_, _>>()?;
    Ok(TryFiles {
        candidates,
        fallback,
    })
}

fn rewrite(d: &Directive, a: &[&str]) -> Result<Rewrite, ParseError> {
    let re = regex(d, a[0], false)?;
    let mut value = a[1];
    let mut redirect = None;
    let mut flag = Flag::None;
    // ngx_http_rewrite: these prefixes make a 302 redirect whatever the flag says.
    if value.starts_with("http://") || value.starts_with("https://") || value.starts_with("$scheme")
    {
        redirect = Some(302);
        flag = Flag::Last;
    }
    if let Some(f) = a.get(2) {
        match *f {
            "last" => flag = Flag::Last,
            "break" => flag = Flag::Break,
            "redirect" => redirect = Some(302),
            "permanent" => redirect = Some(301),
            other => return Err(d.pos.error(format!("invalid parameter \"{other}\""))),
        }
    }
    // "The last '?' drops the original arguments."
    let add_args = !value.ends_with('?');
    if !add_args {
        value = &value[..value.len() - 1];
    }
    let has_args = value.contains('?');
    let (uri, args) = Template::compile(value, redirect.is_none()).map_err(|m| d.pos.error(m))?;
    Ok(Rewrite {
        regex: re,
        uri,
        args,
        has_args,
        add_args,
        redirect,
        flag,
    })
}

fn ret(d: &Directive, a: &[&str]) -> Result<Stmt, ParseError> {
    if let Ok(code) = a[0].parse::<u16>() {
        if code > 999 {
            return Err(d.pos.error(format!("invalid return code \"{}\"", a[0])));
        }
        let text = a.get(1).map(|t| template(d, t)).transpose()?;
        return Ok(Stmt::Return { code, text });
    }
    if a.len() == 1
        && (a[0].starts_with("http://")
            || a[0].starts_with("https://")
            || a[0].starts_with("$scheme"))
    {
        return Ok(Stmt::Return {
            code: 302,
            text: Some(template(d, a[0])?),
        });
    }
    Err(d.pos.error(format!("invalid return code \"{}\"", a[0])))
}

/// `ngx_http_rewrite_if_condition`: the parentheses may be separate words or glued on.
fn condition(d: &Directive) -> Result<Cond, ParseError> {
    let mut a: Vec<String> = args(d).iter().map(|s| s.to_string()).collect();
    let bad = || d.pos.error("invalid condition");
    let first = a.first_mut().ok_or_else(bad)?;
    if first == "(" {
        a.remove(0);
    } else if let Some(rest) = first.strip_prefix('(') {
        *first = rest.to_string();
    } else {
        return Err(bad());
    }
    let last = a.last_mut().ok_or_else(bad)?;
    if last == ")" {
        a.pop();
    } else if let Some(rest) = last.strip_suffix(')') {
        *last = rest.to_string();
    } else {
        return Err(bad());
    }
    let var = |s: &str| -> Result<String, ParseError> {
        s.strip_prefix('$')
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| d.pos.error(format!("invalid condition \"{s}\"")))
    };
    match a.as_slice() {
        [v] if v.starts_with('$') => Ok(Cond::Truth(var(v)?)),
        [v, op, rhs] if v.starts_with('$') => match op.as_str() {
            "=" | "!=" => Ok(Cond::Eq {
                var: var(v)?,
                value: template(d, rhs)?,
                negate: op == "!=",
            }),
            "~" | "~*" | "!~" | "!~*" => Ok(Cond::Regex {
                var: var(v)?,
                regex: regex(d, rhs, op.ends_with('*'))?,
                negate: op.starts_with('!'),
            }),
            _ => Err(d.pos.error(format!("unexpected \"{op}\" in condition"))),
        },
        [op, path]
            if matches!(
                op.as_str(),
                "-f" | "!-f" | "-d" | "!-d" | "-e" | "!-e" | "-x" | "!-x"
            ) =>
        {
            Ok(Cond::File {
                op: op.clone(),
                path: template(d, path)?,
            })
        }
        _ => Err(bad()),
    }
}
