//! The `access_log` files of the nginx configuration: once a request is done, its line in
//! each file the level that answered it names, in that file's `log_format`
//! (`nginx_compat::log`), queued to the file's writer.
//!
//! Redaction holds here as in the gateway's own lines (SPEC section 14): a variable whose value
//! is a secret as a whole (`$http_cookie`, `$cookie_*`, `$http_authorization`, `$arg_code`,
//! `$sent_http_set_cookie`...) is written `***`, and every other value is redacted where it
//! names a secret (`code=` in `$request`, `$args` or `$http_referer`) and bounded to
//! [`crate::redact::FIELD_MAX`] bytes.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nginx_compat::log::LogFormat;
use nginx_compat::vars::Ctx as Vars;
use nginx_compat::{Request, State};
use pingora::proxy::Session;

use crate::config::rules::{LineOut, Rules};
use crate::config::{Config, ConfigError};
use crate::logging::files::LogFile;
use crate::redact;

/// Opens every file the configuration's `access_log`s name (each path once for the process's
/// life: a reload naming it again writes on through the same writer). nginx opens its logs as
/// it reads its configuration and does not start when one cannot be opened: neither does the
/// gateway, nor does a reload take such a configuration.
pub fn open(config: &Config) -> Result<(), ConfigError> {
    let Some(rules) = &config.rules else {
        return Ok(());
    };
    let mut outs: Vec<Arc<dyn LineOut>> = Vec::new();
    for p in &rules.log_paths {
        let file = crate::logging::files::open(&p.full).map_err(|e| ConfigError {
            file: p.pos.file.to_string(),
            line: p.pos.line,
            column: p.pos.col,
            path: "[nginx].include".into(),
            message: format!("access_log: cannot open \"{}\": {e}", p.full.display()),
        })?;
        outs.push(Arc::new(FileOut(file)));
    }
    let _ = rules.log_outs.set(outs);
    let secrets = rules
        .server
        .log_variables()
        .into_iter()
        .filter(|v| secret(v, &rules.server, 4))
        .map(str::to_owned)
        .collect();
    let _ = rules.log_secrets.set(secrets);
    Ok(())
}

struct FileOut(LogFile);

impl LineOut for FileOut {
    fn push(&self, line: &[u8]) {
        self.0.push(line);
    }
}

/// What a request's line needs beyond the request itself, gathered as it runs; kept only
/// when the configuration names a log file (`None` in the request context otherwise).
#[derive(Default)]
pub struct Trace {
    /// The request as nginx's variables saw it and its state when the rule set answered
    /// (proxied requests keep theirs in the flight).
    pub at: Option<Box<(Request, State)>>,
    /// When the request was sent upstream, and when and with what the upstream answered.
    pub upstream_sent: Option<Instant>,
    pub upstream_answered: Option<(u16, Instant)>,
    /// When the attempt's connection was made (or taken from the pool).
    pub upstream_connected: Option<Instant>,
    /// The status nginx gives an attempt that failed before its answer (502, 504).
    pub upstream_failed: Option<u16>,
    /// The servers of a balanced upstream tried before the last attempt, and the status each
    /// failed with, each followed by `, ` (nginx lists every attempt in `$upstream_addr` and
    /// `$upstream_status`).
    pub earlier_addrs: String,
    pub earlier_statuses: String,
}

/// What the logging phase knows of a done request.
pub struct Done<'a> {
    pub status: u16,
    pub elapsed: Duration,
    pub request_id: &'a str,
    /// The upstream's `host:port`, when the request went to one.
    pub upstream: Option<&'a str>,
    pub trace: &'a Trace,
    /// The request and its state, when a location of the nginx file handled it.
    pub at: Option<(&'a Request, &'a State)>,
    pub server: &'a crate::config::model::ServerSettings,
    pub client_ip: Option<std::net::IpAddr>,
}

/// Writes the request's line to each file of the level that answered it.
pub fn write(rules: &Rules, session: &Session, done: &Done<'_>) {
    let built;
    let (req, st) = match done.at {
        Some(at) => at,
        None => {
            // Answered before or beside a location (the gateway's own endpoints, a route, a
            // 404): the server level's files, with the request as it came.
            let mut req = super::of_session(
                session,
                rules.server.drops_underscored_headers(),
                done.server,
                done.client_ip,
                done.request_id,
            );
            // Made now, for a request that came `elapsed` ago (`$request_time` in a map).
            req.started = Instant::now().checked_sub(done.elapsed);
            let st = rules.server.state_of(&req);
            built = (req, st);
            (&built.0, &built.1)
        }
    };
    let settings = rules.server.settings_for(st);
    if !settings.access_log || settings.access_files.is_empty() {
        return;
    }
    let answer = LineAnswer { session, done };
    let vars = Vars {
        req,
        server: &rules.server,
        st: st.clone(),
        proxy: None,
        answer: Some(&answer),
    };
    for file in settings.access_files.iter() {
        if let Some(cond) = &file.condition {
            let v = cond.expand(&vars, false);
            if v.is_empty() || v == b"0" {
                continue;
            }
        }
        let Some(out) = rules.log_out(&file.path) else {
            continue;
        };
        let mut line = Vec::with_capacity(256);
        render(&file.format, &mut line, session, done, &vars, rules);
        line.push(b'\n');
        out.push(&line);
    }
}

fn render(
    f: &LogFormat,
    line: &mut Vec<u8>,
    session: &Session,
    done: &Done<'_>,
    vars: &Vars,
    rules: &Rules,
) {
    let secrets = rules.log_secrets.get();
    f.render(line, |name| {
        if secrets.is_none_or(|s| s.contains(name)) {
            return lookup(name, session, done, vars).map(|_| Cow::Borrowed(&b"***"[..]));
        }
        let v = lookup(name, session, done, vars)?;
        Some(clean(v))
    });
}

/// Whether a variable's value is a secret as a whole: one [`redact::is_secret_variable`]
/// names, a `set` variable given one (`set $s $cookie_sid;`), or a `map` that passes one on (a
/// value naming a secret variable or map, or a value computed from a secret source, as
/// `map $cookie_sid $who { ~(.+) $1; }` is). A map that only tells something about a secret
/// (`map $http_authorization $signed { "" 0; default 1; }`) is not one. `depth` bounds
/// variables made of variables.
fn secret(name: &str, server: &nginx_compat::Server, depth: u8) -> bool {
    if redact::is_secret_variable(name) {
        return true;
    }
    if depth == 0 {
        return false;
    }
    if server
        .set_values(name)
        .iter()
        .any(|t| t.vars().any(|v| secret(v, server, depth - 1)))
    {
        return true;
    }
    // A header the file adds made of a secret (`add_header X-Echo $upstream_http_set_cookie`):
    // its `$sent_http_*` is one.
    if let Some(header) = name.strip_prefix("sent_http_") {
        let header = header.replace('_', "-");
        if server
            .add_header_values(&header)
            .iter()
            .any(|t| t.vars().any(|v| secret(v, server, depth - 1)))
        {
            return true;
        }
    }
    // A capture of a regex matched against a secret (an `if`'s, a map's), or of one written to
    // take a secret's value out of something longer (`$request_uri ~ access_token=([^&]+)`):
    // a piece of it.
    if server
        .if_captures_into(name)
        .iter()
        .any(|(v, re)| secret(v, server, depth - 1) || redact::names_a_secret(re.source()))
    {
        return true;
    }
    let captured = |re: &nginx_compat::regex::NgxRegex| {
        re.capture_names()
            .any(|(_, n)| n.eq_ignore_ascii_case(name))
    };
    if server.maps.iter().any(|m| {
        let source = m.source.vars().any(|v| secret(v, server, depth - 1));
        m.regex
            .iter()
            .any(|(re, _)| captured(re) && (source || redact::names_a_secret(re.source())))
    }) {
        return true;
    }
    let Some(m) = server.maps.iter().find(|m| m.name == name) else {
        return false;
    };
    let values = || {
        m.exact
            .values()
            .chain(m.regex.iter().map(|(_, v)| v))
            .chain(std::iter::once(&m.default))
    };
    let names_secret =
        |t: &nginx_compat::vars::Template| t.vars().any(|v| secret(v, server, depth - 1));
    values().any(names_secret)
        || (names_secret(&m.source) && values().any(|v| v.literal().is_none()))
}

/// A value redacted where it names a secret, and bounded.
fn clean(v: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    if !v.iter().any(|&c| matches!(c, b'=' | b':' | b'"' | b' ')) && v.len() <= redact::FIELD_MAX {
        return v;
    }
    let changed = {
        let text = String::from_utf8_lossy(&v);
        let red = redact::redact(&text);
        match (redact::bound_field(&red), &red) {
            (Cow::Borrowed(_), Cow::Borrowed(_)) => None,
            (c, _) => Some(c.into_owned().into_bytes()),
        }
    };
    // Unchanged: the bytes as they were, not their lossy text, for the format to escape.
    changed.map_or(v, Cow::Owned)
}

fn lookup<'v>(
    name: &str,
    session: &'v Session,
    done: &Done<'v>,
    vars: &Vars<'_>,
) -> Option<Cow<'v, [u8]>> {
    let owned = |s: String| Some(Cow::Owned(s.into_bytes()));
    let h = session.req_header();
    if let Some(v) = of_answer(name, session, done) {
        return v;
    }
    match name {
        "body_bytes_sent" => owned(session.body_bytes_sent().to_string()),
        "bytes_sent" => {
            let head = session.response_written().map_or(0, |r| {
                let line = "HTTP/1.1 200 OK\r\n".len();
                let fields: usize = r
                    .headers
                    .iter()
                    .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
                    .sum();
                line + fields + 2
            });
            owned((head + session.body_bytes_sent()).to_string())
        }
        "request_length" => {
            let head = h.method.as_str().len()
                + 1
                + h.raw_path().len()
                + " HTTP/1.1\r\n".len()
                + h.headers
                    .iter()
                    .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
                    .sum::<usize>()
                + 2;
            owned((head + session.body_bytes_read()).to_string())
        }
        "pipe" => Some(Cow::Borrowed(b".")),
        // nginx's are "not found" without arguments (`-` in a line), unless something set
        // them empty (`/x?`, a `try_files` fallback).
        "args" | "query_string" if vars.st.args.is_empty() && !vars.st.args_set => None,
        "request" => {
            let mut r = Vec::with_capacity(h.raw_path().len() + 16);
            r.extend_from_slice(h.method.as_str().as_bytes());
            r.push(b' ');
            r.extend_from_slice(h.raw_path());
            r.push(b' ');
            r.extend_from_slice(protocol(h.version).as_bytes());
            Some(Cow::Owned(r))
        }
        "server_protocol" => Some(Cow::Borrowed(protocol(h.version).as_bytes())),
        "remote_user" => remote_user(h.headers.get("authorization")?.as_bytes()).map(Cow::Owned),
        "request_id" => Some(Cow::Owned(done.request_id.as_bytes().to_vec())),
        "hostname" => Some(Cow::Borrowed(hostname().as_bytes())),
        _ if nginx_compat::vars::is_process_variable(name) => {
            process_variable(name, None).map(Cow::Owned)
        }
        _ => {
            if nginx_compat::log::is_unwritten_variable(name) {
                return None;
            }
            vars.var(name).map(Cow::Owned)
        }
    }
}

/// The answer's variables as the line sees them, done: `Some(value)` for one of them.
fn of_answer<'v>(
    name: &str,
    session: &'v Session,
    done: &Done<'v>,
) -> Option<Option<Cow<'v, [u8]>>> {
    let owned = |s: String| Some(Cow::Owned(s.into_bytes()));
    Some(match name {
        "status" => owned(format!("{:03}", done.status)),
        "request_time" => owned(seconds(done.elapsed)),
        "upstream_addr" => done
            .upstream
            .map(|u| owned(format!("{}{u}", done.trace.earlier_addrs)))
            .unwrap_or(None),
        "upstream_status" => done
            .trace
            .upstream_answered
            .map(|(s, _)| s)
            .or(done.trace.upstream_failed)
            .and_then(|s| owned(format!("{}{s}", done.trace.earlier_statuses))),
        "upstream_response_time" => done
            .trace
            .upstream_sent
            .and_then(|sent| owned(seconds(sent.elapsed()))),
        "upstream_connect_time" => {
            let sent = done.trace.upstream_sent;
            sent.zip(done.trace.upstream_connected)
                .and_then(|(sent, at)| owned(seconds(at.saturating_duration_since(sent))))
        }
        "upstream_header_time" => {
            let sent = done.trace.upstream_sent;
            let at = done.trace.upstream_answered.map(|(_, at)| at);
            sent.zip(at)
                .and_then(|(sent, at)| owned(seconds(at.saturating_duration_since(sent))))
        }
        _ => {
            let header = name.strip_prefix("sent_http_")?;
            session
                .response_written()
                .and_then(|r| super::response::joined(&r.headers, &header.replace('_', "-")))
                .map(Cow::Owned)
        }
    })
}

/// [`of_answer`] for the nginx file's `map`s and conditions a line reads (`map $status
/// $loggable`, `access_log ... if=$loggable`).
struct LineAnswer<'a> {
    session: &'a Session,
    done: &'a Done<'a>,
}

impl nginx_compat::vars::Answer for LineAnswer<'_> {
    fn var(&self, name: &str) -> Option<Vec<u8>> {
        of_answer(name, self.session, self.done)?.map(Cow::into_owned)
    }
}

fn protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}

/// nginx's `%T.%03M`.
fn seconds(d: Duration) -> String {
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// `$remote_user`: the user name of `Authorization: Basic`, never its password.
fn remote_user(auth: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let (scheme, rest) = auth.split_at(auth.iter().position(|&c| c == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .ok()?;
    let user = &decoded[..decoded.iter().position(|&c| c == b':')?];
    Some(user.to_vec())
}

/// The variables only the process knows, for a line and for the nginx file's other
/// directives ([`nginx_compat::vars::provide_process_variables`]).
pub fn process_variable(name: &str, started: Option<Instant>) -> Option<Vec<u8>> {
    Some(match name {
        "request_time" => seconds(started?.elapsed()).into_bytes(),
        "hostname" => hostname().as_bytes().to_vec(),
        "pid" => std::process::id().to_string().into_bytes(),
        "msec" => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            format!("{}.{:03}", now.as_secs(), now.subsec_millis()).into_bytes()
        }
        "time_local" => times().0.into_bytes(),
        "time_iso8601" => times().1.into_bytes(),
        _ => return None,
    })
}

fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            // Lower-cased, as nginx keeps it (`ngx_init_cycle`).
            .map(|s| s.trim().to_ascii_lowercase())
            .unwrap_or_else(|_| "localhost".into())
    })
}

/// `$time_local` and `$time_iso8601` of this second, in the local time zone as nginx writes
/// them; made once a second per thread.
fn times() -> (String, String) {
    thread_local! {
        static LAST: RefCell<(u64, String, String)> =
            const { RefCell::new((u64::MAX, String::new(), String::new())) };
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != now {
            let (local, iso) = format_times(now, true);
            *last = (now, local, iso);
        }
        (last.1.clone(), last.2.clone())
    })
}

/// `local`: in the process's time zone (nginx's), else in UTC.
fn format_times(secs: u64, local: bool) -> (String, String) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // SAFETY: localtime_r and gmtime_r only write the `tm` they are given.
    let tm = unsafe {
        let t = secs as libc::time_t;
        let mut tm: libc::tm = std::mem::zeroed();
        if !local || libc::localtime_r(&t, &mut tm).is_null() {
            libc::gmtime_r(&t, &mut tm);
            tm.tm_gmtoff = 0;
        }
        tm
    };
    let off = tm.tm_gmtoff / 60;
    let (sign, off) = if off < 0 { ('-', -off) } else { ('+', off) };
    let (y, mo, d, h, mi, s) = (
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
    );
    let local = format!(
        "{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02} {sign}{:02}{:02}",
        MONTHS[(mo - 1).clamp(0, 11) as usize],
        off / 60,
        off % 60
    );
    let iso = format!(
        "{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{sign}{:02}:{:02}",
        off / 60,
        off % 60
    );
    (local, iso)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_nginx_s() {
        // 2026-12-02 13:49:22 UTC.
        let (local, iso) = format_times(1_796_219_362, false);
        assert_eq!(local, "02/Dec/2026:13:49:22 +0000");
        assert_eq!(iso, "2026-12-02T13:49:22+00:00");
    }

    #[test]
    fn a_map_that_passes_a_secret_on_is_a_secret() {
        let cfg = nginx_compat::Config::parse(
            "t.conf",
            "map $cookie_sid $who { ~^(?<v>.+)$ $1; }\n\
             map $http_authorization $signed { \"\" 0; default 1; }\n\
             map $arg_x $copy { default $http_cookie; }\n\
             map $who $again { default $who; }\n\
             map $arg_x $plain { default $arg_x; }\n\
             server { set $s $cookie_sid; location / { if ($arg_y) { set $t \"u:$s\"; } \
             set $u $uri; } }",
        )
        .unwrap();
        let server = &cfg.servers[0];
        for (name, want) in [
            ("who", true),
            ("signed", false),
            ("copy", true),
            ("again", true),
            ("plain", false),
            ("http_cookie", true),
            ("uri", false),
            ("s", true),
            ("t", true),
            ("u", false),
        ] {
            assert_eq!(secret(name, server, 4), want, "{name}");
        }
    }

    #[test]
    fn remote_user_is_the_name_never_the_password() {
        assert_eq!(
            remote_user(b"Basic YWxpY2U6czNjcmV0").as_deref(),
            Some(&b"alice"[..])
        );
        assert_eq!(remote_user(b"Bearer abc"), None);
        assert_eq!(remote_user(b"Basic !!!"), None);
    }

    #[test]
    fn values_are_redacted_and_bounded() {
        let v = clean(Cow::Borrowed(b"GET /cb?code=C0DE&state=s HTTP/1.1"));
        assert_eq!(&*v, b"GET /cb?code=***&state=s HTTP/1.1");
        // Bytes that are not text pass as they are, for the format to escape.
        let raw: &[u8] = b"/caf\xe9";
        assert!(matches!(clean(Cow::Borrowed(raw)), Cow::Borrowed(b) if b == raw));
        let long = vec![b'a'; redact::FIELD_MAX + 10];
        assert!(clean(Cow::Owned(long)).len() < redact::FIELD_MAX + 40);
    }
}
