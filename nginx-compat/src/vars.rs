//! nginx's "complex values": strings with `$var`, `${var}` and `$1`..`$9`, compiled once
//! (`ngx_http_script_compile`) and expanded per request; and the variables they read.

use crate::eval::State;
use crate::parse::model::{Map, Server};
use crate::Request;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(Vec<u8>),
    Capture(usize),
    /// A variable name, lower-cased (nginx's variable names are case-insensitive).
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
                let (name, next) = var_name(src, i)?;
                i = next;
                if name.is_empty() {
                    return Err("invalid variable name".into());
                }
                cur.parts.push(Part::Var(name.to_ascii_lowercase()));
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

    /// A template of literal text only.
    pub fn literal_of(s: &str) -> Template {
        let mut t = Template::default();
        if !s.is_empty() {
            t.parts.push(Part::Lit(s.as_bytes().to_vec()));
        }
        t
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
                    let c = ctx.st.captures.get(*n).unwrap_or(b"");
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

/// The name of a variable written `$name` or `${name}`, `at` just after the `$`, and where
/// the text after it starts; an empty name for the caller to refuse in its own words.
pub(crate) fn var_name(src: &str, at: usize) -> Result<(&str, usize), String> {
    let b = src.as_bytes();
    let bracket = b.get(at) == Some(&b'{');
    let start = at + usize::from(bracket);
    let mut i = start;
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
    Ok((name, i))
}

/// What the variables of one request read: the request, its server, and the request's state
/// as the phases left it.
#[derive(Debug)]
pub struct Ctx<'r> {
    pub req: &'r Request,
    pub server: &'r Server,
    pub st: State,
    /// `$proxy_host` and `$proxy_port` while the proxy module builds its request.
    pub proxy: Option<(Vec<u8>, Vec<u8>)>,
    /// The answer, while its header filters run (`add_header`, `expires`).
    pub answer: Option<&'r dyn Answer>,
}

/// The answer's variables ([`is_answer_variable`]), answered by the caller who holds it.
pub trait Answer {
    fn var(&self, name: &str) -> Option<Vec<u8>>;
}

impl std::fmt::Debug for dyn Answer + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Answer")
    }
}

/// No answer yet: its variables are not found.
pub struct NoAnswer;

impl Answer for NoAnswer {
    fn var(&self, _: &str) -> Option<Vec<u8>> {
        None
    }
}

/// Variables this crate implements, besides `set` variables, named captures and `map`s.
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
            | "https"
            | "request_method"
            | "server_name"
            | "server_port"
            | "server_addr"
            | "remote_addr"
            | "content_length"
            | "content_type"
            | "proxy_host"
            | "proxy_port"
            | "proxy_add_x_forwarded_for"
            | "request_id"
            | "invalid_referer"
            | "request_filename"
            | "document_root"
            | "remote_port"
            | "server_protocol"
    ) || is_process_variable(name)
        || is_answer_variable(name)
        || ["arg_", "http_", "cookie_"]
            .iter()
            .any(|p| name.len() > p.len() && name.starts_with(p))
}

/// Variables only the process knows (the clock, the host): the caller answers them through
/// [`provide_process_variables`], as the crate reads no clock and no files.
pub fn is_process_variable(name: &str) -> bool {
    matches!(
        name,
        "hostname" | "pid" | "msec" | "time_local" | "time_iso8601" | "request_time"
    )
}

/// Variables of the answer: found where there is one (its header filters: `add_header`, a
/// `map` an `expires $var` reads; the access log's `if=`), as nginx's; not found (empty)
/// before, as nginx's before the upstream answered. `$upstream_response_time` is `-` there,
/// as nginx's is until the answer's body is read.
pub fn is_answer_variable(name: &str) -> bool {
    matches!(
        name,
        "status" | "upstream_addr" | "upstream_status" | "upstream_response_time"
    ) || ["sent_http_", "upstream_http_"]
        .iter()
        .any(|p| name.len() > p.len() && name.starts_with(p))
}

/// How the caller answers a [process variable](is_process_variable), given when the request
/// came (`$request_time`, the time since).
pub type ProcessVariables = fn(&str, Option<std::time::Instant>) -> Option<Vec<u8>>;

static PROCESS_VARIABLES: std::sync::OnceLock<ProcessVariables> = std::sync::OnceLock::new();

/// Sets, once for the process, how [process variables](is_process_variable) are answered;
/// until then they are not found (empty).
pub fn provide_process_variables(answer: ProcessVariables) {
    let _ = PROCESS_VARIABLES.set(answer);
}

/// `$server_protocol` for a version as nginx numbers it.
pub fn protocol(http_version: u16) -> &'static str {
    match http_version {
        9 => "HTTP/0.9",
        1000 => "HTTP/1.0",
        2000 => "HTTP/2.0",
        3000 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Builtins `set` may assign (nginx's NGX_HTTP_VAR_CHANGEABLE ones).
pub fn is_changeable(name: &str) -> bool {
    name == "args" || !is_builtin(name)
}

impl Ctx<'_> {
    pub fn var(&self, name: &str) -> Option<Vec<u8>> {
        if name == "args" || name == "query_string" {
            return Some(self.st.args.clone());
        }
        if let Some(v) = self.st.user.get(name) {
            // A map matched since the name was written here: its capture is the later.
            if self.req.maps.any_captured() {
                if let Some(m) = self.req.maps.captured(name) {
                    return Some(m);
                }
            }
            return Some(v.clone());
        }
        let r = self.req;
        Some(match name {
            "uri" | "document_uri" => self.st.uri.clone(),
            "request_uri" => r.uri.clone(),
            "is_args" => {
                if self.st.args.is_empty() {
                    Vec::new()
                } else {
                    b"?".to_vec()
                }
            }
            "host" => r.host_variable(self.server.server_name()),
            "scheme" => r.scheme.as_bytes().to_vec(),
            "https" => {
                if r.scheme == "https" {
                    b"on".to_vec()
                } else {
                    Vec::new()
                }
            }
            "request_method" => self.st.method.as_bytes().to_vec(),
            "server_name" => self.server.server_name().as_bytes().to_vec(),
            "server_port" => r.port.to_string().into_bytes(),
            "server_addr" => r
                .local_addr
                .trim_start_matches('[')
                .trim_end_matches(']')
                .as_bytes()
                .to_vec(),
            "remote_addr" => r.remote_addr.as_bytes().to_vec(),
            "remote_port" => r.remote_port?.to_string().into_bytes(),
            "server_protocol" => protocol(r.http_version).as_bytes().to_vec(),
            _ if is_process_variable(name) => return PROCESS_VARIABLES.get()?(name, r.started),
            // nginx's `$status` is `000` before there is one; the others are not found.
            _ if is_answer_variable(name) => {
                return match self.answer {
                    Some(a) => a.var(name),
                    None => (name == "status").then(|| b"000".to_vec()),
                }
            }
            "content_length" => return r.header("content-length").map(<[u8]>::to_vec),
            "content_type" => return r.header("content-type").map(<[u8]>::to_vec),
            "request_filename" | "document_root" => return self.server.path_variable(self, name),
            "proxy_host" => return self.proxy.as_ref().map(|p| p.0.clone()),
            "proxy_port" => return self.proxy.as_ref().map(|p| p.1.clone()),
            "request_id" => r.request_id.clone().into_bytes(),
            "invalid_referer" => {
                let s = self.server.settings_for(&self.st);
                match &s.referers {
                    Some(v) if !valid_referer(v, r.header("referer"), &self.server.names) => {
                        b"1".to_vec()
                    }
                    _ => Vec::new(),
                }
            }
            "proxy_add_x_forwarded_for" => {
                let mut v = r.joined("x-forwarded-for", b", ").unwrap_or_default();
                if !v.is_empty() {
                    v.extend_from_slice(b", ");
                }
                v.extend_from_slice(r.remote_addr.as_bytes());
                v
            }
            _ => {
                if let Some(arg) = name.strip_prefix("arg_") {
                    return arg_value(&self.st.args, arg.as_bytes()).map(<[u8]>::to_vec);
                }
                if let Some(h) = name.strip_prefix("http_") {
                    // nginx joins these two; every other header is its first occurrence.
                    return match h {
                        "cookie" => r.joined("cookie", b"; "),
                        "x_forwarded_for" => r.joined("x-forwarded-for", b", "),
                        _ => r.header_variable(h).map(<[u8]>::to_vec),
                    };
                }
                if let Some(c) = name.strip_prefix("cookie_") {
                    return r.cookie(c.as_bytes()).map(<[u8]>::to_vec);
                }
                let Some(at) = self.server.maps.iter().position(|m| m.name == name) else {
                    return self.req.maps.captured(name);
                };
                let map = &self.server.maps[at];
                if !map.volatile {
                    if let Some(v) = self.req.maps.get(at) {
                        return Some(v);
                    }
                }
                let v = self.map(map)?;
                if !map.volatile {
                    self.req.maps.keep(at, &v);
                }
                return Some(v);
            }
        })
    }

    /// `ngx_http_map_variable`: exact keys (case-insensitive), then regexes in order, then the
    /// default. A regex key's captures are its value's `$1`..`$9`. `None` (the variable not
    /// found, as nginx's) for a map worked out inside itself: a map whose source or value
    /// names itself, or two naming each other, which nginx ends at a depth of 100 ("cycle
    /// while evaluating variable") instead of without end.
    fn map(&self, map: &Map) -> Option<Vec<u8>> {
        thread_local! {
            static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
        }
        let depth = DEPTH.with(|d| d.get());
        if depth >= MAX_VARIABLE_DEPTH {
            tracing::error!("cycle while evaluating variable \"{}\"", map.name);
            return None;
        }
        DEPTH.with(|d| d.set(depth + 1));
        let value = self.map_value(map);
        DEPTH.with(|d| d.set(depth));
        Some(value)
    }

    fn map_value(&self, map: &Map) -> Vec<u8> {
        let mut key = map.source.expand(self, false);
        if let Some(geo) = &map.geo {
            let xff = self.req.joined("x-forwarded-for", b", ");
            return geo.value(&key, xff.as_deref()).to_vec();
        }
        if map.hostnames && key.last() == Some(&b'.') {
            key.pop();
        }
        let low = key.to_ascii_lowercase();
        if let Some(v) = map.exact.get(&low) {
            return v.expand(self, false);
        }
        // The most specific wildcard: the longest suffix, then the longest prefix.
        let head = map
            .wild_head
            .iter()
            .filter(|(s, _)| low.len() > s.len() && low.ends_with(s))
            .max_by_key(|(s, _)| s.len());
        let tail = map
            .wild_tail
            .iter()
            .filter(|(p, _)| low.len() > p.len() && low.starts_with(p))
            .max_by_key(|(p, _)| p.len());
        if let Some((_, v)) = head.or(tail) {
            return v.expand(self, false);
        }
        if !key.is_empty() {
            for (re, v) in &map.regex {
                match re.captures(&key) {
                    Ok(Some(caps)) => {
                        let mut st = self.st.clone();
                        // Named captures become variables, as ngx_http_regex_exec sets them:
                        // of the value, and of the rest of the request.
                        for (name, _) in &caps.names {
                            if let Some(v) = caps.name(name) {
                                let name = name.to_ascii_lowercase();
                                self.req.maps.capture(&name, v);
                                st.user.insert(name, v.to_vec());
                            }
                        }
                        st.captures = caps;
                        let inner = Ctx {
                            req: self.req,
                            server: self.server,
                            st,
                            proxy: self.proxy.clone(),
                            answer: self.answer,
                        };
                        return v.expand(&inner, false);
                    }
                    Ok(None) => {}
                    // A match that could not be worked out (PCRE's match limit): nginx logs it
                    // and gives the default (`ngx_http_map_find` returns NULL and
                    // `ngx_http_map_variable` takes the default), so a `default 1` that blocks
                    // still blocks.
                    Err(e) => {
                        tracing::error!(
                            "map \"{}\": a regex match failed ({e}): the default is used",
                            map.name
                        );
                        break;
                    }
                }
            }
        }
        map.default.expand(self, false)
    }
}

/// How deep variables may be worked out inside one another (`ngx_http_variable_depth`).
const MAX_VARIABLE_DEPTH: u32 = 100;

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

/// `ngx_http_referer_variable`: is this `Referer` one `valid_referers` accepts?
fn valid_referer(
    v: &crate::parse::model::ValidReferers,
    referer: Option<&[u8]>,
    server_names: &[String],
) -> bool {
    let Some(referer) = referer else {
        return v.none;
    };
    let rest = if referer.len() >= "http://i.ru".len() {
        let lower = |n: usize| referer[..n].to_ascii_lowercase();
        if lower(7) == b"http://" {
            Some(&referer[7..])
        } else if referer.len() >= 8 && lower(8) == b"https://" {
            Some(&referer[8..])
        } else {
            None
        }
    } else {
        None
    };
    let Some(rest) = rest else {
        return v.blocked;
    };
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b':')
        .unwrap_or(rest.len());
    if end > 256 {
        return false;
    }
    let host = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
    let path = &rest[end..];
    let names = server_names
        .iter()
        .filter(|_| v.server_names)
        .map(|n| (n.to_ascii_lowercase(), Vec::new()));
    let hit = v
        .hosts
        .iter()
        .cloned()
        .chain(names)
        .find(|(pattern, _)| host_matches(pattern, &host));
    if let Some((_, uri)) = hit {
        return uri.is_empty() || path.starts_with(&uri);
    }
    v.regexes
        .iter()
        .any(|re| re.is_match(rest).unwrap_or(false))
}

/// nginx's wildcard host names: `*.x` (a name under x), `.x` (x or a name under it), `x.*`
/// (x and any last part), or the name itself.
pub(crate) fn host_matches(pattern: &str, host: &str) -> bool {
    if let Some(domain) = pattern.strip_prefix("*.") {
        return host.len() > domain.len() + 1
            && host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.';
    }
    if let Some(domain) = pattern.strip_prefix('.') {
        return host == domain || host_matches(&format!("*.{domain}"), host);
    }
    if let Some(head) = pattern.strip_suffix(".*") {
        return host.len() > head.len() + 1
            && host.starts_with(head)
            && host.as_bytes()[head.len()] == b'.';
    }
    pattern == host
}
