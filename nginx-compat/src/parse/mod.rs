//! nginx configuration text -> a tree of directives -> the typed model in [`model`].
//!
//! The crate reads no files: `include` is handed to a caller-supplied resolver, which returns
//! the (name, text) of each file the pattern names, and the result is spliced in place as nginx
//! does.

mod build;
mod directives;
pub(crate) use directives::parse_expires;
pub mod lexer;
pub mod model;
mod proxy_args;
mod script_args;
mod settings;

pub use proxy_args::parse_target;

/// An nginx time in whole seconds, as `ngx_parse_time(.., 1)` reads one (`30s`, `1m`, `10`):
/// an `upstream` block's `fail_timeout=`.
pub fn seconds(s: &str) -> Option<u64> {
    directives::time(s, true).and_then(|v| u64::try_from(v).ok())
}

use std::fmt;
use std::sync::Arc;

use lexer::{tokenize, Tok, Token};

/// A syntax or semantic error with its position, printed as `FILE:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    pub file: Option<Arc<str>>,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl ParseError {
    pub fn at(line: usize, col: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            file: None,
            line,
            col,
            message: message.into(),
        }
    }

    fn in_file(mut self, file: &Arc<str>) -> ParseError {
        if self.file.is_none() {
            self.file = Some(file.clone());
        }
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

/// Where a directive was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            file: Some(self.file.clone()),
            line: self.line,
            col: self.col,
            message: message.into(),
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub text: String,
    pub quoted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<Arg>,
    pub block: Option<Vec<Directive>>,
    pub pos: Pos,
}

/// Resolves an `include` argument to the files it names: `(file name, file text)` each.
pub type IncludeResolver<'a> = dyn FnMut(&str) -> Result<Vec<(String, String)>, String> + 'a;

/// Parse one file into directives, resolving `include` through `resolve`.
pub fn parse_directives(
    file: &str,
    src: &str,
    resolve: &mut IncludeResolver<'_>,
) -> Result<Vec<Directive>, ParseError> {
    parse_nested(file, src, resolve, 0)
}

fn parse_nested(
    file: &str,
    src: &str,
    resolve: &mut IncludeResolver<'_>,
    depth: usize,
) -> Result<Vec<Directive>, ParseError> {
    let file: Arc<str> = Arc::from(file);
    let tokens = tokenize(src).map_err(|e| e.in_file(&file))?;
    let mut p = Parser {
        tokens,
        i: 0,
        depth: 0,
        file: file.clone(),
    };
    let list = p.block(false)?;
    splice_includes(list, resolve, depth)
}

fn splice_includes(
    list: Vec<Directive>,
    resolve: &mut IncludeResolver<'_>,
    depth: usize,
) -> Result<Vec<Directive>, ParseError> {
    let mut out = Vec::with_capacity(list.len());
    for mut d in list {
        if d.name == "include" && d.block.is_none() {
            if d.args.len() != 1 {
                return Err(d
                    .pos
                    .error("invalid number of arguments in \"include\" directive"));
            }
            if depth > 16 {
                return Err(d.pos.error("include nesting is too deep"));
            }
            let files = resolve(&d.args[0].text).map_err(|m| d.pos.error(m))?;
            for (name, text) in files {
                out.extend(parse_nested(&name, &text, resolve, depth + 1)?);
            }
            continue;
        }
        if let Some(block) = d.block.take() {
            d.block = Some(splice_includes(block, resolve, depth)?);
        }
        out.push(d);
    }
    Ok(out)
}

/// How deep blocks may nest.
const MAX_NESTING: usize = 64;

struct Parser {
    tokens: Vec<Token>,
    i: usize,
    /// Blocks open around the token read ([`MAX_NESTING`] at most).
    depth: usize,
    file: Arc<str>,
}

impl Parser {
    fn pos(&self, t: &Token) -> Pos {
        Pos {
            file: self.file.clone(),
            line: t.line,
            col: t.col,
        }
    }

    fn block(&mut self, nested: bool) -> Result<Vec<Directive>, ParseError> {
        let mut out = Vec::new();
        loop {
            let Some(t) = self.tokens.get(self.i).cloned() else {
                if nested {
                    let (line, col) = self.tokens.last().map_or((1, 1), |t| (t.line, t.col));
                    return Err(self.pos_err(line, col, "unexpected end of file, expecting \"}\""));
                }
                return Ok(out);
            };
            self.i += 1;
            let tpos = self.pos(&t);
            let name = match t.tok {
                Tok::Close if nested => return Ok(out),
                Tok::Close => return Err(self.pos_err(t.line, t.col, "unexpected \"}\"")),
                Tok::Semi => return Err(self.pos_err(t.line, t.col, "unexpected \";\"")),
                Tok::Open { .. } => return Err(self.pos_err(t.line, t.col, "unexpected \"{\"")),
                Tok::Word { text, .. } => text,
            };
            let mut args = Vec::new();
            let block = loop {
                let Some(a) = self.tokens.get(self.i).cloned() else {
                    return Err(self.pos_err(
                        t.line,
                        t.col,
                        format!(
                            "unexpected end of file, expecting \";\" or \"}}\" after \"{name}\""
                        ),
                    ));
                };
                self.i += 1;
                match a.tok {
                    Tok::Word { text, quoted } => args.push(Arg { text, quoted }),
                    Tok::Semi => break None,
                    Tok::Open { glued } => {
                        // Far deeper than any site nests (a location in a location in an
                        // `if`); every level is a frame of the parser and of what builds the
                        // server from it, so a file nested thousands deep would end the
                        // process on its stack rather than be refused.
                        if self.depth == MAX_NESTING {
                            return Err(self.pos_err(
                                a.line,
                                a.col,
                                format!("blocks nested deeper than {MAX_NESTING} levels"),
                            ));
                        }
                        self.depth += 1;
                        let inner = self.block(true);
                        self.depth -= 1;
                        break Some(inner.map_err(|mut e| {
                            // A regex's `{n}` unquoted: the block it opened fails on the
                            // same line. nginx fails there too; what to write is the hint.
                            if name.contains("_by_lua") {
                                // Lua's own syntax (tables, strings) read as nginx's.
                                e.message.push_str(&format!(
                                    " (inside {name} of {}:{}: OpenResty's Lua runs in \
                                     OpenResty; keep that location there, in front of the \
                                     gateway, or do its work in the CRM)",
                                    t.line, t.col
                                ));
                            } else if glued && e.line == a.line {
                                e.message.push_str(&format!(
                                    " (the \"{{\" at {}:{} ends the word before it and opens a \
                                     block, in nginx too: a regex with \"{{\" is written in \
                                     quotes, \"^/u/(\\d{{3}})$\")",
                                    a.line, a.col
                                ));
                            }
                            e
                        })?);
                    }
                    Tok::Close => {
                        return Err(self.pos_err(a.line, a.col, "unexpected \"}\""));
                    }
                }
            };
            out.push(Directive {
                name,
                args,
                block,
                pos: tpos,
            });
        }
    }

    fn pos_err(&self, line: usize, col: usize, m: impl Into<String>) -> ParseError {
        ParseError::at(line, col, m).in_file(&self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_includes(p: &str) -> Result<Vec<(String, String)>, String> {
        Err(format!("no file {p}"))
    }

    #[test]
    fn quoting_comments_and_blocks() {
        let src = "server { # c\n  return 200 \"a \\\"b\\\" ;{}\"; set $x '${y}z';\n rewrite ^/(.*)$ /$1?a=${b}c last; }";
        let d = parse_directives("t.conf", src, &mut no_includes).unwrap();
        let s = d[0].block.as_ref().unwrap();
        assert_eq!(s[0].name, "return");
        assert_eq!(s[0].args[1].text, "a \"b\" ;{}");
        assert_eq!(s[1].args[1].text, "${y}z");
        assert_eq!(s[2].args[1].text, "/$1?a=${b}c");
        assert_eq!((s[2].pos.line, s[2].pos.col), (3, 2));
    }

    /// A regex's `{n}` unquoted opens a block where nginx opens one too; the error says to
    /// quote it. A glued `{` that opens a block as meant (`location /{`) loads.
    #[test]
    fn an_unquoted_regex_brace_says_to_quote_it() {
        for src in [
            "server { rewrite ^/u/(\\d{3})$ /user/$1 last; }",
            "server { location ~ ^/api/v{1,2}/ { return 200; } }",
        ] {
            let e = crate::Config::parse("x.conf", src).unwrap_err().to_string();
            assert!(e.contains("is written in quotes"), "{src}: {e}");
        }
        let e = crate::Config::parse("x.conf", "server { location /a { x\n} }")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("quotes"), "{e}");
        crate::Config::parse("x.conf", "server { location /a{ return 200; } }").unwrap();
        crate::Config::parse(
            "x.conf",
            "server { rewrite \"^/u/(\\d{3})$\" /user/$1 last; }",
        )
        .unwrap();
    }

    /// An OpenResty Lua block is Lua, not nginx's syntax: the error that reading it as nginx's
    /// makes says what it is; a zone only declared loads.
    #[test]
    fn a_lua_block_says_it_is_openrestys_and_a_zone_alone_loads() {
        let e = crate::Config::parse(
            "x.conf",
            "server { location /t { content_by_lua_block { ngx.say(\"hi\") } } }",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("OpenResty's Lua runs in OpenResty"), "{e}");
        let c = crate::Config::parse(
            "x.conf",
            "http { limit_req_zone $binary_remote_addr zone=one:10m rate=1r/s; server { } }",
        )
        .unwrap();
        assert!(c.unsupported.is_empty(), "{:?}", c.unsupported);
        assert!(c.noted.iter().any(|n| n.directive == "limit_req_zone"));
    }

    /// `satisfy all` is what the gateway does (every check of the location asked for): it loads,
    /// noted; `satisfy any` is listed with what to do instead; another value is nginx's error.
    #[test]
    fn satisfy_all_loads_and_any_is_listed() {
        let c = crate::Config::parse(
            "x.conf",
            "server { satisfy all; location / { satisfy any; allow 10.0.0.0/8; deny all; } }",
        )
        .unwrap();
        assert!(
            c.noted.iter().any(|n| n.directive == "satisfy"),
            "{:?}",
            c.noted
        );
        let listed: Vec<String> = c.unsupported.iter().map(ToString::to_string).collect();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert!(
            listed[0].starts_with("x.conf:1: directive 'satisfy' is not supported (`satisfy any`"),
            "{listed:?}"
        );
        let e = crate::Config::parse("x.conf", "server { satisfy some; }").unwrap_err();
        assert!(e.to_string().contains("invalid value \"some\""), "{e}");
    }

    /// nginx -t: `the duplicate "host" variable` for a named capture (or `set`) that would
    /// replace a variable nginx keeps for itself; `$args` may be set, and a new name defined.
    #[test]
    fn a_capture_named_as_a_builtin_variable_is_refused() {
        for (body, refused) in [
            (
                "location ~ ^/t/(?<host>[^/]+)$ { return 302 http://$host/; }",
                Some("host"),
            ),
            ("rewrite ^/(?<pid>\\d+)$ /x last;", Some("pid")),
            (
                "if ($uri ~ ^/(?<Request_URI>.*)$) { return 404; }",
                Some("request_uri"),
            ),
            ("set $remote_addr 1;", Some("remote_addr")),
            (
                "location ~ ^/t/(?<tenant>[^/]+)$ { return 302 /$tenant; }",
                None,
            ),
            ("set $args a=1;", None),
        ] {
            let got = crate::Config::parse("x.conf", &format!("server {{ {body} }}"));
            match refused {
                Some(name) => {
                    let e = got.err().unwrap_or_else(|| panic!("{body}: loaded"));
                    assert!(
                        e.to_string()
                            .contains(&format!("the duplicate \"{name}\" variable")),
                        "{body}: {e}"
                    );
                }
                None => assert!(got.is_ok(), "{body}: {:?}", got.err()),
            }
        }
    }

    /// A `hostnames` map's keys: what nginx -t refuses, refused with its words.
    #[test]
    fn a_hostnames_maps_bad_keys_are_refused() {
        for (keys, said) in [
            ("a*b x;", "invalid hostname or wildcard \"a*b\""),
            ("*.a.*.b x;", "invalid hostname or wildcard \"*.a.*.b\""),
            (".a.com x; a.com y;", "conflicting parameter \"a.com\""),
            ("*.a.com x; *.A.com y;", "conflicting parameter \"*.A.com\""),
        ] {
            let text =
                format!("map $http_host $t {{ hostnames; {keys} }} server {{ return 200 $t; }}");
            let e = crate::Config::parse("x.conf", &text).err().expect(keys);
            assert!(e.to_string().contains(said), "{keys}: {e}");
        }
        // Before the line, `*` is a plain character of an exact key.
        let text = "map $http_host $t { a*b x; hostnames; } server { return 200 $t; }";
        assert!(crate::Config::parse("x.conf", text).is_ok());
    }

    #[test]
    fn errors_have_positions() {
        let e =
            parse_directives("t.conf", "server {\n  listen 80;\n", &mut no_includes).unwrap_err();
        assert!(e.to_string().starts_with("t.conf:2:"), "{e}");
        let e = parse_directives("t.conf", "a b\"c\";", &mut no_includes);
        assert!(e.is_ok(), "a quote inside a word is plain text");
        let e = parse_directives("t.conf", "a \"b\"c;", &mut no_includes).unwrap_err();
        assert_eq!((e.line, e.col), (1, 6));
        let e = parse_directives("t.conf", "}", &mut no_includes).unwrap_err();
        assert_eq!(e.to_string(), "t.conf:1:1: unexpected \"}\"");
    }

    #[test]
    fn includes_are_spliced_through_the_resolver() {
        let mut resolve = |p: &str| -> Result<Vec<(String, String)>, String> {
            assert_eq!(p, "conf.d/*.conf");
            Ok(vec![(
                "conf.d/a.conf".into(),
                "location /a { return 204; }".into(),
            )])
        };
        let d = parse_directives(
            "main.conf",
            "server { include conf.d/*.conf; }",
            &mut resolve,
        )
        .unwrap();
        let inner = &d[0].block.as_ref().unwrap()[0];
        assert_eq!(inner.name, "location");
        assert_eq!(&*inner.pos.file, "conf.d/a.conf");
        let e = parse_directives("m.conf", "include x;", &mut no_includes).unwrap_err();
        assert_eq!(e.to_string(), "m.conf:1:1: no file x");
    }
}
