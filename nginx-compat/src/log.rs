//! `log_format` and what `access_log` writes with it (`ngx_http_log_module`): a format is
//! compiled once into literal text and variables, and a request's line is its variables'
//! values, escaped as the format says, between the literal parts.
//!
//! The values come from the caller: the request's own variables ([`crate::vars`]) and those
//! only the end of a request knows (`$status`, `$body_bytes_sent`, `$request_time`...), which
//! [`is_log_variable`] names.

use std::borrow::Cow;

/// How a variable's value is written (`log_format NAME escape=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// `"`, `\`, control bytes and bytes from 0x7f up as `\xHH`; an absent value as `-`.
    Default,
    /// As in a JSON string; an absent value as nothing.
    Json,
    /// As it is; an absent value as nothing.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Lit(Vec<u8>),
    /// A variable's name, lower-cased (nginx looks variables up case-insensitively).
    Var(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    pub name: String,
    pub escape: Escape,
    pub ops: Vec<Op>,
}

/// nginx's predefined format, used when `access_log` names none.
pub const COMBINED: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status \
                            $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

impl LogFormat {
    /// `log_format NAME [escape=...] STRING...`: `args` are the strings after the name.
    pub fn compile(name: &str, args: &[&str]) -> Result<LogFormat, String> {
        let mut escape = Escape::Default;
        let mut rest = args;
        if let Some(e) = args.first().and_then(|a| a.strip_prefix("escape=")) {
            escape = match e {
                "default" => Escape::Default,
                "json" => Escape::Json,
                "none" => Escape::None,
                _ => return Err(format!("unknown log format escaping \"{e}\"")),
            };
            rest = &args[1..];
        }
        let mut ops = Vec::new();
        for s in rest {
            compile_string(s, &mut ops)?;
        }
        Ok(LogFormat {
            name: name.to_owned(),
            escape,
            ops,
        })
    }

    /// The `combined` format.
    pub fn combined() -> LogFormat {
        LogFormat::compile("combined", &[COMBINED]).expect("nginx's own format compiles")
    }

    /// The variables the format reads.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.ops.iter().filter_map(|op| match op {
            Op::Var(v) => Some(v.as_str()),
            Op::Lit(_) => None,
        })
    }

    /// Appends one line (without its newline) to `out`; `value` gives a variable's value, or
    /// `None` where nginx's would be "not found".
    pub fn render<'v>(
        &self,
        out: &mut Vec<u8>,
        mut value: impl FnMut(&str) -> Option<Cow<'v, [u8]>>,
    ) {
        for op in &self.ops {
            match op {
                Op::Lit(l) => out.extend_from_slice(l),
                Op::Var(name) => match (value(name), self.escape) {
                    (None, Escape::Default) => out.push(b'-'),
                    (None, _) => {}
                    (Some(v), Escape::Default) => escape_default(&v, out),
                    (Some(v), Escape::Json) => escape_json(&v, out),
                    (Some(v), Escape::None) => out.extend_from_slice(&v),
                },
            }
        }
    }
}

/// `ngx_http_log_compile_format` for one string: `$name` or `${name}`, the rest literal.
fn compile_string(s: &str, ops: &mut Vec<Op>) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let start = i;
            let (name, next) = crate::vars::var_name(s, i + 1)?;
            i = next;
            if name.is_empty() {
                return Err(format!("invalid parameter \"{}\"", &s[start..]));
            }
            ops.push(Op::Var(name.to_ascii_lowercase()));
            continue;
        }
        let start = i;
        while i < b.len() && b[i] != b'$' {
            i += 1;
        }
        match ops.last_mut() {
            Some(Op::Lit(l)) => l.extend_from_slice(&b[start..i]),
            _ => ops.push(Op::Lit(b[start..i].to_vec())),
        }
    }
    Ok(())
}

/// `ngx_http_log_escape`.
fn escape_default(v: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in v {
        if !(0x20..0x7f).contains(&c) || c == b'"' || c == b'\\' {
            out.extend_from_slice(&[b'\\', b'x', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        } else {
            out.push(c);
        }
    }
}

/// `ngx_escape_json`: bytes from 0x80 up pass as they are.
pub(crate) fn escape_json(v: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in v {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c if c < 0x20 => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
            }
            c => out.push(c),
        }
    }
}

/// Variables only the end of a request knows, or that only an access line reads: the
/// caller gives their values when it writes the line.
pub fn is_log_variable(name: &str) -> bool {
    matches!(
        name,
        "status"
            | "body_bytes_sent"
            | "bytes_sent"
            | "request_length"
            | "request_time"
            | "msec"
            | "time_local"
            | "time_iso8601"
            | "pipe"
            | "request"
            | "remote_user"
            | "remote_port"
            | "server_protocol"
            | "request_id"
            | "hostname"
            | "pid"
            | "upstream_addr"
            | "upstream_status"
            | "upstream_response_time"
            | "upstream_header_time"
            | "upstream_connect_time"
    ) || name
        .strip_prefix("sent_http_")
        .is_some_and(|h| !h.is_empty())
}

/// nginx variables an access line may name that the gateway has no value for (TLS is ended
/// in front of it, it keeps no cache, it does not number connections, it is not an nginx version, it keeps no request body for the log, it has no
/// GeoIP database): written as absent, and listed by `check`.
pub fn is_unwritten_variable(name: &str) -> bool {
    matches!(
        name,
        "http2"
            | "http3"
            | "connection"
            | "connection_requests"
            | "nginx_version"
            | "gzip_ratio"
            | "upstream_cache_status"
            | "upstream_bytes_received"
            | "upstream_bytes_sent"
            | "upstream_response_length"
            | "realpath_root"
            | "binary_remote_addr"
            | "request_completion"
            | "request_body"
            | "request_body_file"
            | "realip_remote_addr"
            | "realip_remote_port"
            | "connections_active"
            | "connections_reading"
            | "connections_writing"
            | "connections_waiting"
    ) || name.starts_with("ssl_")
        || name.starts_with("geoip_")
        || name.starts_with("geoip2_")
        || name.starts_with("tcpinfo_")
        || name.starts_with("upstream_http_")
        || name.starts_with("upstream_cookie_")
        || name.starts_with("upstream_trailer_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(f: &LogFormat, vals: &[(&str, Option<&[u8]>)]) -> String {
        let mut out = Vec::new();
        f.render(&mut out, |n| {
            vals.iter()
                .find(|(k, _)| *k == n)
                .and_then(|(_, v)| v.map(Cow::Borrowed))
        });
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn combined_writes_absent_values_as_a_dash() {
        let f = LogFormat::combined();
        let l = line(
            &f,
            &[
                ("remote_addr", Some(b"127.0.0.1")),
                ("time_local", Some(b"02/Dec/2026:13:49:22 +0000")),
                ("request", Some(b"GET /a?b=1 HTTP/1.1")),
                ("status", Some(b"200")),
                ("body_bytes_sent", Some(b"12")),
                ("http_user_agent", Some(b"curl/8")),
            ],
        );
        assert_eq!(
            l,
            "127.0.0.1 - - [02/Dec/2026:13:49:22 +0000] \"GET /a?b=1 HTTP/1.1\" 200 12 \"-\" \
             \"curl/8\""
        );
    }

    #[test]
    fn default_escaping_is_nginx_s() {
        let f = LogFormat::compile("x", &["[$http_a]"]).unwrap();
        assert_eq!(
            line(&f, &[("http_a", Some(b"q\"\\\x01\x7f\xe4 ok"))]),
            "[q\\x22\\x5C\\x01\\x7F\\xE4 ok]"
        );
        // An empty value is written empty: only an absent one is `-`.
        assert_eq!(line(&f, &[("http_a", Some(b""))]), "[]");
    }

    #[test]
    fn json_and_none_escaping() {
        let f = LogFormat::compile("j", &["escape=json", "{\"a\":\"$arg_a\"}"]).unwrap();
        assert_eq!(
            line(&f, &[("arg_a", Some(b"\"\\\n\x01\x1b\x7f"))]),
            "{\"a\":\"\\\"\\\\\\n\\u0001\\u001B\x7f\"}"
        );
        assert_eq!(line(&f, &[]), "{\"a\":\"\"}");
        let n = LogFormat::compile("n", &["escape=none", "$uri|${uri}x"]).unwrap();
        assert_eq!(line(&n, &[("uri", Some(b"/\""))]), "/\"|/\"x");
    }

    #[test]
    fn compile_refuses_what_nginx_refuses() {
        assert!(LogFormat::compile("x", &["escape=xml", "$a"])
            .unwrap_err()
            .contains("unknown log format escaping"));
        assert!(LogFormat::compile("x", &["a $"]).is_err());
        assert!(LogFormat::compile("x", &["${a"])
            .unwrap_err()
            .contains("closing bracket"));
        // Strings are joined as they are; names are lower-cased.
        let f = LogFormat::compile("x", &["$Status ", "-$msec"]).unwrap();
        assert_eq!(
            f.ops,
            vec![
                Op::Var("status".into()),
                Op::Lit(b" -".to_vec()),
                Op::Var("msec".into())
            ]
        );
    }
}
