//! nginx's "complex values": strings with `$var`, `${var}` and `$1`..`$9`, compiled once
//! (`ngx_http_script_compile`) and expanded per request.

use std::collections::HashMap;

use crate::regex::Captures;
use crate::Request;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(Vec<u8>),
    Capture(usize),
    Var(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pub parts: Vec<Part>,
}

impl Template {
    /// Compile a value; `split_args` makes the first literal `?` the start of the arguments
    /// (a non-redirect `rewrite` replacement), returned as the second template.
    pub fn compile(src: &str, split_args: bool) -> Result<(Template, Option<Template>), String> {
        let b = src.as_bytes();
        let mut cur = Template::default();
        let mut before: Option<Template> = None;
        let mut lit = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c == b'$' {
                i += 1;
                let Some(&n) = b.get(i) else {
                    return Err("invalid variable name".into());
                };
                flush(&mut cur, &mut lit);
                if (b'1'..=b'9').contains(&n) {
                    cur.parts.push(Part::Capture((n - b'0') as usize));
                    i += 1;
                    continue;
                }
                let bracket = n == b'{';
                if bracket {
                    i += 1;
                }
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let name = &src[start..i];
                if bracket {
                    if b.get(i) != Some(&b'}') {
                        return Err(format!(
                            "the closing bracket in \"{name}\" variable is missing"
                        ));
                    }
                    i += 1;
                }
                if name.is_empty() {
                    return Err("invalid variable name".into());
                }
                cur.parts.push(Part::Var(name.to_string()));
                continue;
            }
            if c == b'?' && split_args && before.is_none() {
                flush(&mut cur, &mut lit);
                before = Some(std::mem::take(&mut cur));
                i += 1;
                continue;
            }
            lit.push(c);
            i += 1;
        }
        flush(&mut cur, &mut lit);
        Ok(match before {
            Some(b) => (b, Some(cur)),
            None => (cur, None),
        })
    }

    pub fn literal(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [] => Some(b""),
            [Part::Lit(l)] => Some(l),
            _ => None,
        }
    }

    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            _ => None,
        })
    }

    /// Expand; `escape_captures` applies nginx's NGX_ESCAPE_ARGS re-escaping of captures.
    pub fn expand(&self, ctx: &Ctx<'_>, escape_captures: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.extend_from_slice(l),
                Part::Capture(n) => {
                    let c = ctx.captures.get(*n).unwrap_or(b"");
                    if escape_captures {
                        out.extend(crate::escape::escape(c, crate::escape::Escape::Args));
                    } else {
                        out.extend_from_slice(c);
                    }
                }
                Part::Var(v) => out.extend(ctx.var(v).unwrap_or_default()),
            }
        }
        out
    }
}

fn flush(t: &mut Template, lit: &mut Vec<u8>) {
    if !lit.is_empty() {
        t.parts.push(Part::Lit(std::mem::take(lit)));
    }
}

/// The per-request state nginx's variables read from.
#[derive(Debug, Clone)]
pub struct Ctx<'r> {
    pub req: &'r Request,
    pub uri: Vec<u8>,
    pub args: Vec<u8>,
    pub captures: Captures,
    pub user: HashMap<String, Vec<u8>>,
    pub server_name: String,
    /// The raw path had a '%' (nginx's `r->quoted_uri`).
    pub quoted_uri: bool,
    /// The path had a '+' (`r->plus_in_uri`).
    pub plus_in_uri: bool,
}

/// Variables known to this subset; anything else must come from `set` or a named capture.
pub fn is_builtin(name: &str) -> bool {
    matches!(
        name,
        "uri"
            | "document_uri"
            | "request_uri"
            | "args"
            | "query_string"
            | "is_args"
            | "host"
            | "scheme"
            | "request_method"
            | "server_name"
            | "server_port"
            | "remote_addr"
    ) || ["arg_", "http_", "cookie_"]
        .iter()
        .any(|p| name.len() > p.len() && name.starts_with(p))
}

impl Ctx<'_> {
    pub fn var(&self, name: &str) -> Option<Vec<u8>> {
        if let Some(v) = self.user.get(name) {
            return Some(v.clone());
        }
        let r = self.req;
        Some(match name {
            "uri" | "document_uri" => self.uri.clone(),
            "request_uri" => r.uri.clone(),
            "args" | "query_string" => self.args.clone(),
            "is_args" => {
                if self.args.is_empty() {
                    Vec::new()
                } else {
                    b"?".to_vec()
                }
            }
            "host" => r.host_variable(&self.server_name),
            "scheme" => r.scheme.as_bytes().to_vec(),
            "request_method" => r.method.as_bytes().to_vec(),
            "server_name" => self.server_name.as_bytes().to_vec(),
            "server_port" => r.port.to_string().into_bytes(),
            "remote_addr" => r.remote_addr.as_bytes().to_vec(),
            _ => {
                if let Some(arg) = name.strip_prefix("arg_") {
                    return arg_value(&self.args, arg.as_bytes()).map(<[u8]>::to_vec);
                }
                if let Some(h) = name.strip_prefix("http_") {
                    return r.header(&h.replace('_', "-")).map(<[u8]>::to_vec);
                }
                if let Some(c) = name.strip_prefix("cookie_") {
                    return r.cookie(c.as_bytes()).map(<[u8]>::to_vec);
                }
                return None;
            }
        })
    }
}

/// `$arg_NAME`: the first argument whose name matches case-insensitively (`ngx_http_arg`),
/// raw, not decoded.
pub fn arg_value<'a>(args: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    args.split(|&b| b == b'&').find_map(|kv| {
        let (k, v) = match kv.iter().position(|&b| b == b'=') {
            Some(i) => (&kv[..i], &kv[i + 1..]),
            None => return None,
        };
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}
