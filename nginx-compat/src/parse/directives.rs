//! Arguments of single directives, read as nginx's own handlers read them (same errors, same
//! defaults): sizes, times, `rewrite`, `return`, `if`, `try_files`, `error_page`,
//! `proxy_pass`, `expires`, `allow`/`deny`, `map`.

use super::model::{
    AccessRule, Cond, ErrorPage, Expires, Fallback, FileTest, Flag, Map, Net, Overwrite, PassKind,
    PassTarget, ProxyPass, RedirectPattern, RedirectRule, Rewrite, Stmt, TryCandidate, TryFiles,
};
use super::{Directive, ParseError};
use crate::regex::NgxRegex;
use crate::vars::Template;

pub(super) fn args(d: &Directive) -> Vec<&str> {
    d.args.iter().map(|a| a.text.as_str()).collect()
}

pub(super) fn nargs(d: &Directive, ok: impl Fn(usize) -> bool) -> Result<(), ParseError> {
    if ok(d.args.len()) {
        Ok(())
    } else {
        Err(d.pos.error(format!(
            "invalid number of arguments in \"{}\" directive",
            d.name
        )))
    }
}

pub(super) fn no_block(d: &Directive) -> Result<(), ParseError> {
    if d.block.is_some() {
        return Err(d
            .pos
            .error(format!("directive \"{}\" has no opening \"{{\"", d.name)));
    }
    Ok(())
}

pub(super) fn on_off(d: &Directive) -> Result<bool, ParseError> {
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

pub(super) fn template(d: &Directive, s: &str) -> Result<Template, ParseError> {
    Template::compile(s, false)
        .map(|(t, _)| t)
        .map_err(|m| d.pos.error(m))
}

pub(super) fn regex(d: &Directive, s: &str, caseless: bool) -> Result<NgxRegex, ParseError> {
    NgxRegex::new(s, caseless).map_err(|e| {
        d.pos
            .error(format!("pcre2_compile() failed: {e} in \"{s}\""))
    })
}

/// `ngx_parse_offset`: a size with an optional k/m/g suffix.
pub(super) fn size(d: &Directive, s: &str) -> Result<u64, ParseError> {
    let bad = || {
        d.pos
            .error(format!("\"{}\" directive invalid value", d.name))
    };
    let (num, scale) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1024u64),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1024 * 1024),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(bad)
}

/// `ngx_parse_time`: `1h 30m`, `10s`, `500ms` (only when `is_sec` is false). Returns seconds
/// (`is_sec`) or milliseconds.
pub(super) fn time(s: &str, is_sec: bool) -> Option<i64> {
    // Units in the order nginx requires them, each at most once.
    const UNITS: &[(&str, i64)] = &[
        ("y", 365 * 24 * 3600),
        ("M", 30 * 24 * 3600),
        ("w", 7 * 24 * 3600),
        ("d", 24 * 3600),
        ("h", 3600),
        ("m", 60),
        ("s", 1),
    ];
    let b = s.as_bytes();
    let (mut i, mut total, mut value, mut valid) = (0usize, 0i64, 0i64, false);
    let mut step = 0usize; // index into UNITS (+1) already used; ms after s
    let mut ms_used = false;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            value = value.checked_mul(10)?.checked_add((c - b'0') as i64)?;
            valid = true;
            i += 1;
            continue;
        }
        i += 1;
        let scale_ms: i64;
        if c == b'm' && b.get(i) == Some(&b's') {
            if is_sec || ms_used {
                return None;
            }
            i += 1;
            ms_used = true;
            step = UNITS.len() + 1;
            scale_ms = 1;
        } else if c == b' ' {
            if step > UNITS.len() {
                return None;
            }
            step = UNITS.len() + 1;
            scale_ms = 1000;
        } else {
            let pos = UNITS.iter().position(|(u, _)| u.as_bytes()[0] == c)?;
            if pos < step {
                return None;
            }
            step = pos + 1;
            scale_ms = UNITS[pos].1 * 1000;
        }
        let add = if is_sec {
            value.checked_mul(scale_ms / 1000)?
        } else {
            value.checked_mul(scale_ms)?
        };
        total = total.checked_add(add)?;
        value = 0;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
    }
    if !valid {
        return None;
    }
    let last = if is_sec {
        value
    } else {
        value.checked_mul(1000)?
    };
    total.checked_add(last)
}

pub(super) fn duration(d: &Directive) -> Result<std::time::Duration, ParseError> {
    nargs(d, |n| n == 1)?;
    let ms = time(&d.args[0].text, false).ok_or_else(|| {
        d.pos
            .error(format!("\"{}\" directive invalid value", d.name))
    })?;
    Ok(std::time::Duration::from_millis(ms.max(0) as u64))
}

pub(super) fn try_files(d: &Directive) -> Result<TryFiles, ParseError> {
    nargs(d, |n| n >= 2)?;
    no_block(d)?;
    let a = args(d);
    let (last, rest) = a.split_last().expect("two or more");
    let fallback = if let Some(code) = last.strip_prefix('=') {
        Fallback::Code(
            code.parse()
                .ok()
                .filter(|c: &u16| *c <= 999)
                .ok_or_else(|| d.pos.error(format!("invalid code \"{last}\"")))?,
        )
    } else if last.starts_with('@') {
        Fallback::Named(last.to_string())
    } else {
        Fallback::Uri(template(d, last)?)
    };
    let candidates = rest
        .iter()
        .map(|c| {
            let dir = c.ends_with('/');
            let name = if dir { &c[..c.len() - 1] } else { c };
            Ok(TryCandidate {
                name: template(d, name)?,
                dir,
            })
        })
        .collect::<Result<_, ParseError>>()?;
    Ok(TryFiles {
        candidates,
        fallback,
    })
}

pub(super) fn rewrite(d: &Directive) -> Result<Rewrite, ParseError> {
    no_block(d)?;
    nargs(d, |n| n == 2 || n == 3)?;
    let a = args(d);
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

pub(super) fn ret(d: &Directive) -> Result<Stmt, ParseError> {
    no_block(d)?;
    nargs(d, |n| n == 1 || n == 2)?;
    let a = args(d);
    if let Ok(code) = a[0].parse::<u16>() {
        if code > 999 || !a[0].bytes().all(|b| b.is_ascii_digit()) {
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
pub(super) fn condition(d: &Directive) -> Result<Cond, ParseError> {
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
            .map(str::to_ascii_lowercase)
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
        [op, path] if matches!(op.as_str(), "-f" | "!-f" | "-d" | "!-d" | "-e" | "!-e") => {
            let test = match op.trim_start_matches('!') {
                "-f" => FileTest::File,
                "-d" => FileTest::Dir,
                _ => FileTest::Exists,
            };
            Ok(Cond::File {
                op: test,
                negate: op.starts_with('!'),
                path: template(d, path)?,
            })
        }
        _ => Err(bad()),
    }
}

/// `ngx_http_core_error_page`: codes 300..599, then an optional `=[code]`, then the target.
pub(super) fn error_page(d: &Directive) -> Result<Vec<ErrorPage>, ParseError> {
    no_block(d)?;
    nargs(d, |n| n >= 2)?;
    let a = args(d);
    let invalid = |v: &str| d.pos.error(format!("invalid value \"{v}\""));
    let (codes, overwrite) = match a[a.len() - 2].strip_prefix('=') {
        Some(_) if a.len() == 2 => return Err(invalid(a[0])),
        Some("") => (&a[..a.len() - 2], Overwrite::Response),
        Some(c) => (
            &a[..a.len() - 2],
            Overwrite::Code(
                c.parse()
                    .ok()
                    .filter(|c: &u16| *c <= 999)
                    .ok_or_else(|| invalid(a[a.len() - 2]))?,
            ),
        ),
        None => (&a[..a.len() - 1], Overwrite::Keep),
    };
    let target = a[a.len() - 1];
    let mut value = template(d, target)?;
    let mut page_args = None;
    if value.literal().is_some() && target.starts_with('/') {
        if let Some((uri, q)) = target.split_once('?') {
            value = Template::literal_of(uri);
            page_args = Some(q.as_bytes().to_vec());
        }
    }
    codes
        .iter()
        .map(|c| {
            let status: u16 = c.parse().map_err(|_| invalid(c))?;
            if status == 499 {
                return Err(invalid(c));
            }
            if !(300..=599).contains(&status) {
                return Err(d
                    .pos
                    .error(format!("value \"{c}\" must be between 300 and 599")));
            }
            Ok(ErrorPage {
                status,
                overwrite,
                value: value.clone(),
                args: page_args.clone(),
            })
        })
        .collect()
}

/// `ngx_http_parse_expires`.
pub(super) fn expires(d: &Directive) -> Result<Expires, ParseError> {
    no_block(d)?;
    nargs(d, |n| n == 1 || n == 2)?;
    let a = args(d);
    let modified = a.len() == 2;
    if modified && a[0] != "modified" {
        return Err(d.pos.error("invalid value"));
    }
    let v = a[a.len() - 1];
    if !modified {
        match v {
            "epoch" => return Ok(Expires::Epoch),
            "max" => return Ok(Expires::Max),
            "off" => return Ok(Expires::Off),
            _ => {}
        }
    }
    let invalid = || d.pos.error("invalid value");
    if let Some(daily) = v.strip_prefix('@') {
        if modified {
            return Err(d
                .pos
                .error("daily time cannot be used with \"modified\" parameter"));
        }
        let t = time(daily, true).ok_or_else(invalid)?;
        if t > 24 * 3600 {
            return Err(d.pos.error("daily time value must be less than 24 hours"));
        }
        return Ok(Expires::Daily(t));
    }
    let (minus, rest) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let t = time(rest, true).ok_or_else(invalid)?;
    let t = if minus { -t } else { t };
    Ok(if modified {
        Expires::Modified(t)
    } else {
        Expires::Access(t)
    })
}

/// `allow`/`deny ADDRESS|CIDR|all`.
pub(super) fn access_rule(d: &Directive) -> Result<AccessRule, ParseError> {
    no_block(d)?;
    nargs(d, |n| n == 1)?;
    let v = d.args[0].text.as_str();
    let deny = d.name == "deny";
    let invalid = || d.pos.error(format!("invalid parameter \"{v}\""));
    if v == "all" {
        return Ok(AccessRule {
            deny,
            net: Net::All,
        });
    }
    let (addr, bits) = match v.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u32>().map_err(|_| invalid())?)),
        None => (v, None),
    };
    let ip: std::net::IpAddr = addr.parse().map_err(|_| invalid())?;
    // nginx keeps only the masked bits ("low address bits are meaningless").
    let net = match ip {
        std::net::IpAddr::V4(a) => {
            let bits = bits.unwrap_or(32);
            if bits > 32 {
                return Err(invalid());
            }
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            Net::V4 {
                addr: u32::from(a) & mask,
                mask,
            }
        }
        std::net::IpAddr::V6(a) => {
            let bits = bits.unwrap_or(128);
            if bits > 128 {
                return Err(invalid());
            }
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            Net::V6 {
                addr: u128::from(a) & mask,
                mask,
            }
        }
    };
    Ok(AccessRule { deny, net })
}

/// `proxy_pass URL` as `ngx_http_proxy_pass` reads it. `uri_allowed` is false in regex and
/// named locations, where nginx refuses a URI part.
pub(super) fn proxy_pass(d: &Directive, uri_allowed: bool) -> Result<ProxyPass, ParseError> {
    no_block(d)?;
    nargs(d, |n| n == 1)?;
    let url = d.args[0].text.clone();
    let t = template(d, &url)?;
    if t.literal().is_none() {
        return Ok(ProxyPass {
            url,
            kind: PassKind::Dynamic(t),
            pos: d.pos.clone(),
        });
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(d
            .pos
            .error("https upstreams are not supported by the gateway"));
    }
    if !lower.starts_with("http://") {
        return Err(d.pos.error("invalid URL prefix"));
    }
    let target = parse_target(&url[7..])
        .map_err(|m| d.pos.error(format!("{m} in upstream \"{}\"", &url[7..])))?;
    if !target.uri.is_empty() && !uri_allowed {
        return Err(d.pos.error(
            "\"proxy_pass\" cannot have URI part in location given by regular expression, \
             or inside named location, or inside \"if\" statement, or inside \
             \"limit_except\" block",
        ));
    }
    Ok(ProxyPass {
        url,
        kind: PassKind::Static(target),
        pos: d.pos.clone(),
    })
}

/// `ngx_parse_url` of what follows `http://`: `host[:port][/uri]` (a `?` right after the
/// authority starts the URI as `/?...`).
pub fn parse_target(rest: &str) -> Result<PassTarget, &'static str> {
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, uri) = rest.split_at(end);
    let mut uri = uri.as_bytes().to_vec();
    if uri.first() == Some(&b'?') {
        uri.insert(0, b'/');
    }
    if authority.is_empty() {
        return Err("no host");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6.find(']').ok_or("invalid IPv6 address")?;
        let after = &v6[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("invalid host"),
        };
        (&authority[..close + 2], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    let port_num = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or("invalid port")?,
        None => 80,
    };
    let host_header = if port_num == 80 {
        host.to_owned()
    } else {
        format!("{host}:{}", port.unwrap_or("80"))
    };
    Ok(PassTarget {
        authority: authority.to_owned(),
        host_header,
        port: port.unwrap_or("80").to_owned(),
        uri,
    })
}

/// One `proxy_redirect` rule (not `off`; `default` is a rule of its own).
pub(super) fn redirect_rule(d: &Directive) -> Result<RedirectRule, ParseError> {
    let a = args(d);
    if a.len() == 1 {
        return Ok(RedirectRule {
            pattern: RedirectPattern::Default,
            replacement: Template::default(),
        });
    }
    let pattern = if let Some(re) = a[0].strip_prefix("~*") {
        RedirectPattern::Regex(regex(d, re, true)?)
    } else if let Some(re) = a[0].strip_prefix('~') {
        RedirectPattern::Regex(regex(d, re, false)?)
    } else {
        RedirectPattern::Prefix(template(d, a[0])?)
    };
    Ok(RedirectRule {
        pattern,
        replacement: template(d, a[1])?,
    })
}

/// `map $source $name { key value; ... }`.
pub(super) fn map(d: &Directive) -> Result<(Map, Vec<String>), ParseError> {
    nargs(d, |n| n == 2)?;
    let Some(block) = &d.block else {
        return Err(d.pos.error("directive \"map\" has no opening \"{\""));
    };
    let a = args(d);
    let name = a[1]
        .strip_prefix('$')
        .filter(|n| !n.is_empty())
        .ok_or_else(|| d.pos.error(format!("invalid variable name \"{}\"", a[1])))?;
    let mut m = Map {
        source: template(d, a[0])?,
        name: name.to_ascii_lowercase(),
        exact: Vec::new(),
        regex: Vec::new(),
        default: Template::default(),
    };
    let mut refused = Vec::new();
    let mut has_default = false;
    for e in block {
        let key = e.name.as_str();
        if e.args.is_empty() && key == "volatile" {
            continue;
        }
        if e.args.is_empty() && key == "hostnames" {
            refused.push("hostnames".to_owned());
            continue;
        }
        if e.args.len() != 1 || e.block.is_some() {
            return Err(e.pos.error("invalid number of the map parameters"));
        }
        let value = template(e, &e.args[0].text)?;
        if key == "default" {
            if has_default {
                return Err(e.pos.error("duplicate default map parameter"));
            }
            has_default = true;
            m.default = value;
        } else if let Some(re) = key.strip_prefix("~*") {
            m.regex.push((regex(e, re, true)?, value));
        } else if let Some(re) = key.strip_prefix('~') {
            m.regex.push((regex(e, re, false)?, value));
        } else {
            let key = key.strip_prefix('\\').unwrap_or(key);
            let low = key.as_bytes().to_ascii_lowercase();
            if m.exact.iter().any(|(k, _)| *k == low) {
                return Err(e.pos.error(format!("conflicting parameter \"{key}\"")));
            }
            m.exact.push((low, value));
        }
    }
    Ok((m, refused))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes_as_nginx_parses_them() {
        assert_eq!(time("30s", false), Some(30_000));
        assert_eq!(time("1h 30m", true), Some(5400));
        assert_eq!(time("500ms", false), Some(500));
        assert_eq!(time("500ms", true), None);
        assert_eq!(time("90", true), Some(90));
        assert_eq!(time("30d", true), Some(30 * 86400));
        assert_eq!(time("1m1h", true), None);
        assert_eq!(time("", true), None);
        assert_eq!(time("x", true), None);
    }

    #[test]
    fn proxy_pass_targets_split_like_ngx_parse_url() {
        let t = parse_target("127.0.0.1:8080/api/").unwrap();
        assert_eq!(
            (t.host_header.as_str(), t.port.as_str(), &t.uri[..]),
            ("127.0.0.1:8080", "8080", &b"/api/"[..])
        );
        let t = parse_target("backend").unwrap();
        assert_eq!((t.host_header.as_str(), t.port.as_str()), ("backend", "80"));
        assert!(t.uri.is_empty());
        let t = parse_target("b:80?x").unwrap();
        assert_eq!((t.host_header.as_str(), &t.uri[..]), ("b", &b"/?x"[..]));
        assert!(parse_target(":80").is_err());
        assert!(parse_target("h:0").is_err());
    }
}
