//! What nginx does with a request, phase by phase as `ngx_http_core_module` runs them:
//! server rewrite, find config (with `client_max_body_size` and the location auto-redirect),
//! location rewrite and post-rewrite, access (`allow`/`deny`, `limit_except`), precontent
//! (`try_files`) and content (`proxy_pass`, `index`, static files), with every status that
//! `ngx_http_finalize_request` would see going through the special-response handler
//! (`error_page`, nginx's own pages, `444`).
//!
//! The result is an [`Action`]: an answer to write, a file to send, a request to proxy, or a
//! connection to close. Each carries the request's final [`State`], which names the location
//! that handled the request and is what the response filters (`add_header`, `expires`,
//! `proxy_redirect`) and a later `error_page` (an upstream error) continue from.

mod access;
mod content;
mod filter;
mod find;
mod proxy;
mod script;
mod special;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

pub use content::{FileKind, FileSystem, NoFiles};
pub use filter::{civil_from_days, http_date, safe_status, HeaderEdit, HeaderMode};
pub use special::special_page;

use crate::escape::{escape, Escape};
use crate::mime::exten;
use crate::parse::model::{LocConf, LocRef, Server, Settings};
use crate::regex::Captures;
use crate::uri::parse_path;
use crate::vars::Ctx;
use crate::{split_request_uri, Request};

/// nginx's `NGX_HTTP_MAX_URI_CHANGES + 1`: the eleventh URI change is a 500.
const URI_CHANGES: u32 = 11;

/// The request as the phases leave it: nginx's `r->uri`, `r->args`, captures, variables and
/// the flags its modules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// `r->method_name`: an `error_page` redirect turns everything but HEAD into GET.
    pub method: String,
    /// The normalised (decoded) URI.
    pub uri: Vec<u8>,
    /// `r->exten`, the extension `types` is looked up by: the request-line parser's, then
    /// `ngx_http_set_exten`'s each time a rewrite, an internal redirect or `try_files`
    /// changes the URI. See [`Server::content_type`].
    pub exten: Vec<u8>,
    pub args: Vec<u8>,
    /// `r->args.data` is set: `$args` is found (empty, when `args` is), as after a `try_files`
    /// fallback, `set $args ""` or a rewrite dropping arguments there were; not found (`-` in
    /// a log line) otherwise, `/x?` among them.
    pub args_set: bool,
    pub captures: Captures,
    /// `set` variables and named captures.
    pub user: HashMap<String, Vec<u8>>,
    /// The raw path had a '%' (nginx's `r->quoted_uri`).
    pub quoted_uri: bool,
    /// The path had a '+' (`r->plus_in_uri`).
    pub plus_in_uri: bool,
    /// A rewrite or an internal redirect happened (`r->internal`).
    pub internal: bool,
    /// The request target may be passed upstream as the client sent it.
    pub valid_unparsed_uri: bool,
    /// The URI still starts with the location's name (`rewrite ... break` clears it).
    pub valid_location: bool,
    pub add_uri_to_alias: bool,
    /// The body was discarded (after a 413): `client_max_body_size` is not checked again.
    pub discard_body: bool,
    /// A rewrite changed the URI: the location is looked up again (`r->uri_changed`).
    pub uri_changed: bool,
    /// URI changes left before "rewrite or internal redirection cycle".
    pub uri_changes: u32,
    /// An `error_page` was used (recursive_error_pages off: only one per request).
    pub error_page: bool,
    /// The status the answer goes out with whatever its handler says (`r->err_status`).
    pub err_status: Option<u16>,
    /// `Location` set by a redirect, made absolute when the answer is written.
    pub location: Option<Vec<u8>>,
    /// The connection closes after the answer, whatever the final location's
    /// `keepalive_timeout` says (`r->keepalive = 0`): a configuration the request passed
    /// through had `keepalive_timeout 0` (ngx_http_update_location_config, which an internal
    /// redirect runs on the server's own level too), or it was finalized with a status after
    /// which nginx never keeps a connection (400, 413, 414, 495-497, 500, 501).
    pub keepalive_off: bool,
    /// The configuration level that handles the request.
    pub loc: LocRef,
    /// The `if` block of that level whose condition was true last (an index into its
    /// [`LocConf::ifs`]): its configuration is the request's from then on, as nginx's
    /// `ngx_http_script_if_code` switches `r->loc_conf`. Use [`Server::conf_for`] and
    /// [`Server::settings_for`] for what applies.
    pub if_block: Option<usize>,
}

/// What to do with the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// An answer nginx makes itself: a `return`, a redirect, an error page.
    Respond(Response),
    /// A file to send (the static module; also an `error_page` served from disk).
    File(FileAnswer),
    /// A request to send upstream.
    Proxy(Box<Proxy>),
    /// `return 444`: close the connection without an answer.
    Close,
}

impl Action {
    /// The final state, which names the location that handled the request.
    pub fn state(&self) -> Option<&State> {
        match self {
            Action::Respond(r) => Some(&r.state),
            Action::File(f) => Some(&f.state),
            Action::Proxy(p) => Some(&p.state),
            Action::Close => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The `Location` header, already absolute as nginx's header filter makes it.
    pub location: Option<Vec<u8>>,
    pub body: Body,
    pub state: State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `return CODE TEXT`.
    Text(Vec<u8>),
    /// `return 200;`: no body at all.
    Empty,
    /// nginx's own page for the status ([`special_page`]); some statuses have none.
    Page,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAnswer {
    /// 200, or the status of the error it answers.
    pub status: u16,
    /// The file nginx opens: the root (possibly relative) followed by the URI.
    pub path: Vec<u8>,
    /// The document root (`root` or `alias`) it was found under.
    pub root: Vec<u8>,
    pub state: State,
    /// `autoindex`: `path` is a directory whose listing is the answer (`ngx_http_autoindex_module`,
    /// after the index module found no index file); its settings say in which format.
    pub listing: bool,
}

/// The request nginx's proxy module sends upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `host[:port]` of the `proxy_pass` URL, which names the upstream.
    pub authority: String,
    pub method: String,
    /// The request target, exactly as nginx writes it in the request line.
    pub target: Vec<u8>,
    /// Header lines in nginx's order: the `proxy_set_header` list (with nginx's defaults
    /// merged in, empty values dropped), then the client's headers that list does not name.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Lower-cased names of the merged `proxy_set_header` list: the client's own copies of
    /// these are never passed (nginx's `headers->hash`).
    pub set_names: Vec<String>,
    /// `$proxy_host` and `$proxy_port`.
    pub proxy_host: String,
    pub proxy_port: String,
    /// The status the answer must go out with, whatever the upstream says (an `error_page`
    /// that ended here without `=`).
    pub status: Option<u16>,
    pub state: State,
}

/// Where the phases continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    ServerRewrite,
    FindConfig,
    Rewrite,
    Access,
    TryFiles,
    Content,
}

enum Flow {
    Step(Step),
    /// `ngx_http_finalize_request(r, code)`.
    Finalize(u16),
    Done(Box<Action>),
}

impl State {
    /// The state a request enters the server's phases in, at the server level: what nginx's
    /// variables read of a request no location handled. With it, where the phases start
    /// (a path nginx cannot parse is finalized with 400).
    fn start(req: &Request) -> (State, Flow) {
        let (raw_path, query) = split_request_uri(&req.uri);
        let lower = raw_path.to_ascii_lowercase();
        let mut st = State {
            method: req.method.clone(),
            uri: Vec::new(),
            exten: Vec::new(),
            args: query.unwrap_or_default().to_vec(),
            // ngx_http_process_request_uri: a bare `?` sets none.
            args_set: false,
            captures: Captures::default(),
            user: HashMap::new(),
            quoted_uri: raw_path.contains(&b'%'),
            plus_in_uri: raw_path.contains(&b'+') || lower.windows(3).any(|w| w == b"%2b"),
            internal: false,
            valid_unparsed_uri: true,
            valid_location: true,
            add_uri_to_alias: false,
            discard_body: false,
            uri_changed: false,
            uri_changes: URI_CHANGES,
            error_page: false,
            err_status: None,
            location: None,
            keepalive_off: false,
            loc: LocRef::default(),
            if_block: None,
        };
        let flow = match parse_path(raw_path) {
            Ok(path) => {
                st.uri = path.uri;
                st.exten = path.exten;
                Flow::Step(Step::ServerRewrite)
            }
            Err(_) => Flow::Finalize(400),
        };
        (st, flow)
    }

    /// [`State::start`]'s state alone.
    pub fn of(req: &Request) -> State {
        State::start(req).0
    }
}

impl Server {
    /// Run a request from its request line through nginx's phases.
    pub fn handle(&self, req: &Request, fs: &dyn FileSystem) -> Action {
        let (mut st, flow) = State::start(req);
        self.name_captures(req, &mut st);
        self.drive(req, st, flow, fs)
    }

    /// The state a request enters this server's phases in ([`State::of`] with the named
    /// captures of a `server_name` regex its Host matched).
    pub fn state_of(&self, req: &Request) -> State {
        let mut st = State::start(req).0;
        self.name_captures(req, &mut st);
        st
    }

    /// `ngx_http_find_virtual_server`: a Host that is none of the exact or wildcard names is
    /// matched against the `~regex` names in order; the first that matches sets its named
    /// captures as variables. A regex PCRE gives up on sets nothing.
    fn name_captures(&self, req: &Request, st: &mut State) {
        if self.name_regexes.is_empty() {
            return;
        }
        let Some(host) = req.host_header() else {
            return;
        };
        let host_text = String::from_utf8_lossy(&host);
        let plain = self
            .names
            .iter()
            .filter(|n| !n.starts_with('~'))
            .any(|n| crate::vars::host_matches(&n.to_ascii_lowercase(), &host_text));
        if plain {
            return;
        }
        for re in &self.name_regexes {
            if let Ok(Some(caps)) = re.captures(&host) {
                for (name, _) in &caps.names {
                    if let Some(v) = caps.name(name) {
                        st.user.insert(name.to_ascii_lowercase(), v.to_vec());
                    }
                }
                return;
            }
        }
    }

    /// Continue from a request's state with a status nginx finalizes it with: an upstream
    /// that failed (502, 504), an intercepted error (`proxy_intercept_errors`), a streamed body
    /// over `client_max_body_size` (413). The location's `error_page` applies.
    pub fn finalize_at(
        &self,
        req: &Request,
        st: State,
        status: u16,
        fs: &dyn FileSystem,
    ) -> Action {
        self.drive(req, st, Flow::Finalize(status), fs)
    }

    fn drive(&self, req: &Request, st: State, flow: Flow, fs: &dyn FileSystem) -> Action {
        let cx = Ctx {
            req,
            server: self,
            st,
            proxy: None,
            answer: None,
        };
        self.run(cx, flow, fs)
    }

    /// `X-Accel-Redirect: VALUE` in the answer of the upstream a request in `st` was proxied
    /// to (`ngx_http_upstream_process_headers`): an internal redirect to the URI (its `?args`
    /// split off, never decoded), or to the named location `@name`; the method becomes GET
    /// (HEAD stays). A URI nginx's `ngx_http_parse_unsafe_uri` refuses (a `..` segment, a NUL,
    /// not starting with `/`) is a 404.
    pub fn accel_redirect(
        &self,
        req: &Request,
        st: State,
        value: &[u8],
        fs: &dyn FileSystem,
    ) -> Action {
        let mut cx = Ctx {
            req,
            server: self,
            st,
            proxy: None,
            answer: None,
        };
        if cx.st.method != "HEAD" {
            cx.st.method = "GET".into();
        }
        let flow = match value.first() {
            Some(b'@') => self.named_location(&mut cx, &String::from_utf8_lossy(value)),
            _ => match safe_uri(value) {
                Some((uri, args)) => {
                    let set = value.contains(&b'?');
                    self.internal_redirect(&mut cx, uri, args, set)
                }
                None => Flow::Finalize(404),
            },
        };
        self.run(cx, flow, fs)
    }

    fn run(&self, mut cx: Ctx<'_>, mut flow: Flow, fs: &dyn FileSystem) -> Action {
        loop {
            flow = match flow {
                Flow::Done(a) => return *a,
                Flow::Finalize(code) => self.finalize(&mut cx, code),
                Flow::Step(step) => match step {
                    Step::ServerRewrite => self.server_rewrite(&mut cx, fs),
                    Step::FindConfig => self.find_config(&mut cx),
                    Step::Rewrite => self.location_rewrite(&mut cx, fs),
                    Step::Access => self.access(&mut cx),
                    Step::TryFiles => self.try_files(&mut cx, fs),
                    Step::Content => self.content(&mut cx, fs),
                },
            };
        }
    }

    /// The configuration a request in `st` is at: its location's, or that of the location's
    /// `if` block whose condition was true.
    pub fn conf_for(&self, st: &State) -> Option<&LocConf> {
        let conf = self.conf(&st.loc)?;
        Some(st.if_block.and_then(|i| conf.ifs.get(i)).unwrap_or(conf))
    }

    /// The settings that apply to a request in `st` (the response filters', `gzip`, the
    /// proxy's): those of [`Server::conf_for`], the server's own when it names nothing.
    pub fn settings_for(&self, st: &State) -> &Settings {
        self.conf_for(st)
            .map_or(&self.root.settings, |c| &c.settings)
    }

    /// The client's address as `ngx_http_realip_module` reads it with the server's settings:
    /// when the connection comes from a `set_real_ip_from` proxy, the address its
    /// `real_ip_header` names (`X-Forwarded-For`: the last one, or with `real_ip_recursive on`
    /// the last one that is not a trusted proxy). `None`: the connection's own address stands
    /// (no trusted proxy, no header, or not an address).
    /// `header` gives a header's value by its lower-case name (several fields joined with
    /// `, `).
    pub fn real_ip(
        &self,
        peer: std::net::IpAddr,
        header: impl Fn(&str) -> Option<String>,
    ) -> Option<std::net::IpAddr> {
        let s = &self.root.settings;
        let trusted = |ip: std::net::IpAddr| s.real_ip_from.iter().any(|n| n.contains(ip));
        if s.real_ip_from.is_empty() || !trusted(peer) {
            return None;
        }
        let value = header(&s.real_ip_header)?;
        if &*s.real_ip_header != "x-forwarded-for" {
            return parse_addr(value.trim());
        }
        // ngx_http_get_forwarded_addr: from the right, past the trusted ones when recursive.
        let mut found = None;
        for part in value.rsplit(',') {
            let ip = parse_addr(part.trim())?;
            found = Some(ip);
            if !(s.real_ip_recursive && trusted(ip)) {
                break;
            }
        }
        found
    }

    /// `large_client_header_buffers` of the server (or of `http`), if either level writes one.
    pub fn header_buffers(&self) -> Option<crate::HeaderBuffers> {
        self.root.settings.header_buffers
    }

    /// nginx drops a request header whose name has `_` as it reads the request
    /// (`underscores_in_headers off` and `ignore_invalid_headers on`, both its defaults).
    pub fn drops_underscored_headers(&self) -> bool {
        let s = &self.root.settings;
        !s.underscores_in_headers && s.ignore_invalid_headers
    }

    /// Whether nginx ignores a request header whose name is not letters, digits, `-` (and `_`
    /// with `underscores_in_headers on`): `ignore_invalid_headers on`, its default.
    pub fn drops_invalid_headers(&self) -> bool {
        self.root.settings.ignore_invalid_headers
    }

    /// The `Content-Type` of an answer nginx makes itself for a request in `st` (a `return`
    /// with a code below 400 or a text, a static file): [`Settings::content_type`] for the
    /// request's extension. None when the configuration wrote neither `types` nor
    /// `default_type`: the caller's own table applies.
    pub fn content_type(&self, st: &State) -> Option<&str> {
        let s = self.settings_for(st);
        if s.types.is_none() && s.default_type.is_none() {
            return None;
        }
        Some(s.content_type_of_exten(&st.exten))
    }

    fn here<'s>(&'s self, cx: &Ctx<'_>) -> &'s LocConf {
        self.conf_for(&cx.st).unwrap_or(&self.root)
    }

    fn server_rewrite(&self, cx: &mut Ctx<'_>, fs: &dyn FileSystem) -> Flow {
        match script::run(&self.root.stmts, cx, fs) {
            script::End::Flow(f) => f,
            script::End::Continue | script::End::Stop => Flow::Step(Step::FindConfig),
        }
    }

    /// `ngx_http_core_find_config_phase`.
    fn find_config(&self, cx: &mut Ctx<'_>) -> Flow {
        cx.st.uri_changed = false;
        let found = match find::location(&self.root, cx) {
            Ok(f) => f,
            Err(_) => return Flow::Finalize(500),
        };
        let (path, auto_redirect) = match found {
            find::Found::Location(p) => (p, false),
            find::Found::AutoRedirect(p) => (p, true),
            find::Found::Nothing => (Vec::new(), false),
        };
        cx.st.loc = LocRef::Path(path);
        cx.st.if_block = None;
        let conf = self.here(cx);
        if conf.settings.internal && !cx.st.internal {
            return Flow::Finalize(404);
        }
        let max = conf.settings.client_max_body_size;
        if max != 0 && !cx.st.discard_body && cx.req.content_length().is_some_and(|n| n > max) {
            cx.st.discard_body = true;
            return Flow::Finalize(413);
        }
        if auto_redirect {
            let mut location = escape(conf.name().as_bytes(), Escape::Uri);
            if !cx.st.args.is_empty() {
                location.push(b'?');
                location.extend_from_slice(&cx.st.args);
            }
            cx.st.location = Some(location);
            return Flow::Finalize(301);
        }
        Flow::Step(Step::Rewrite)
    }

    /// The location's rewrite phase, then `ngx_http_core_post_rewrite_phase`.
    fn location_rewrite(&self, cx: &mut Ctx<'_>, fs: &dyn FileSystem) -> Flow {
        self.entered(cx);
        let conf = self.here(cx);
        // No location matched: the request runs under the server's own configuration, whose
        // statements the server rewrite phase already ran; nginx skips the location rewrite
        // phase for it ("skipping location rewrite phase for server null location").
        if std::ptr::eq(conf, &self.root) {
            return Flow::Step(Step::Access);
        }
        // A method `limit_except` does not list runs under the block's own configuration
        // (ngx_http_update_location_config switches to it at find-config time), which has no
        // rewrite statements: the location's `return`, `rewrite`, `set` and `if` do not run,
        // and the block's access rules decide next.
        let limited = conf
            .limit_except
            .as_ref()
            .is_some_and(|le| !le.methods.contains(&cx.st.method));
        if limited {
            return Flow::Step(Step::Access);
        }
        if let script::End::Flow(f) = script::run(&conf.stmts, cx, fs) {
            return f;
        }
        if cx.st.uri_changed {
            cx.st.uri_changes -= 1;
            if cx.st.uri_changes == 0 {
                return Flow::Finalize(500);
            }
            return Flow::Step(Step::FindConfig);
        }
        Flow::Step(Step::Access)
    }

    fn access(&self, cx: &mut Ctx<'_>) -> Flow {
        let conf = self.here(cx);
        if access::denied(conf, cx) {
            return Flow::Finalize(403);
        }
        Flow::Step(Step::TryFiles)
    }

    /// `ngx_http_internal_redirect`: back to the server rewrite phase with a new URI.
    ///
    /// `set`: the redirect sets `r->args.data` even when it has no arguments (see
    /// [`State::args_set`]).
    fn internal_redirect(&self, cx: &mut Ctx<'_>, uri: Vec<u8>, args: Vec<u8>, set: bool) -> Flow {
        cx.st.uri_changes -= 1;
        if cx.st.uri_changes == 0 {
            return Flow::Finalize(500);
        }
        cx.st.exten = exten(&uri).to_vec();
        cx.st.uri = uri;
        cx.st.args_set = set || !args.is_empty();
        cx.st.args = args;
        cx.st.internal = true;
        cx.st.valid_unparsed_uri = false;
        cx.st.add_uri_to_alias = false;
        cx.st.valid_location = true;
        cx.st.loc = LocRef::default();
        cx.st.if_block = None;
        self.entered(cx);
        Flow::Step(Step::ServerRewrite)
    }

    /// `ngx_http_update_location_config`'s keep-alive part: a level with `keepalive_timeout 0`
    /// ends keep-alive for the request, wherever it goes next.
    pub(super) fn entered(&self, cx: &mut Ctx<'_>) {
        if self.settings_for(&cx.st).keepalive_timeout == Some(std::time::Duration::ZERO) {
            cx.st.keepalive_off = true;
        }
    }

    /// How long the connection stays open after the answer to a request in `st`: zero when
    /// nginx would close it, the `keepalive_timeout` of the level that answers where the
    /// configuration writes one, else `None` (the caller's own).
    pub fn keepalive_for(&self, st: &State) -> Option<std::time::Duration> {
        if st.keepalive_off {
            return Some(std::time::Duration::ZERO);
        }
        self.settings_for(st).keepalive_timeout
    }

    /// `ngx_http_named_location`: the named location's rewrite phase, skipping find config.
    fn named_location(&self, cx: &mut Ctx<'_>, name: &str) -> Flow {
        cx.st.uri_changes -= 1;
        if cx.st.uri_changes == 0 || cx.st.uri.is_empty() {
            return Flow::Finalize(500);
        }
        let Some(i) = self.named_index(name) else {
            return Flow::Finalize(500);
        };
        cx.st.internal = true;
        cx.st.loc = LocRef::Named(i);
        cx.st.if_block = None;
        Flow::Step(Step::Rewrite)
    }

    /// An answer made here, with the status an earlier error page fixed.
    fn respond(&self, cx: &Ctx<'_>, status: u16, body: Body) -> Flow {
        let settings = &self.here(cx).settings;
        let location = cx
            .st
            .location
            .clone()
            .map(|l| self.absolute(cx, l, settings));
        Flow::Done(Box::new(Action::Respond(Response {
            status: cx.st.err_status.unwrap_or(status),
            location,
            body,
            state: cx.st.clone(),
        })))
    }

    /// `ngx_http_header_filter`: a Location starting with '/' becomes absolute when
    /// `absolute_redirect` is on, with the Host (or server name) and a non-default port.
    fn absolute(&self, cx: &Ctx<'_>, loc: Vec<u8>, s: &Settings) -> Vec<u8> {
        if loc.first() != Some(&b'/') || !s.absolute_redirect {
            return loc;
        }
        let req = cx.req;
        let host = if s.server_name_in_redirect {
            self.server_name().as_bytes().to_vec()
        } else {
            req.host_header()
                .unwrap_or_else(|| req.local_addr.as_bytes().to_vec())
        };
        let https = req.scheme == "https";
        let default_port = if https { 443 } else { 80 };
        let mut out = Vec::with_capacity(loc.len() + host.len() + 16);
        out.extend_from_slice(if https { b"https://" } else { b"http://" });
        out.extend_from_slice(&host);
        if s.port_in_redirect && req.port != default_port {
            out.extend_from_slice(format!(":{}", req.port).as_bytes());
        }
        out.extend_from_slice(&loc);
        out
    }
}

/// `ngx_http_parse_unsafe_uri` on a URI an upstream names: split at the first `?`; `None`
/// when it does not start with `/`, holds a NUL, or climbs (`..` as a segment).
fn safe_uri(v: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (uri, args) = match v.iter().position(|&b| b == b'?') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    let climbs = uri.split(|&b| b == b'/').any(|seg| seg == b"..");
    if !uri.starts_with(b"/") || uri.contains(&0) || climbs {
        return None;
    }
    Some((uri.to_vec(), args.to_vec()))
}

/// An address as `ngx_parse_addr` reads a forwarded one: IPv4, IPv6 (bracketed or not).
fn parse_addr(v: &str) -> Option<std::net::IpAddr> {
    v.strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(v)
        .parse()
        .ok()
}
