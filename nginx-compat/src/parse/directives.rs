//! Arguments of single directives, read as nginx's own handlers read them (same errors, same
//! defaults): the helpers every directive uses, sizes, times, `error_page`, `expires`,
//! `allow`/`deny`. The rewrite module's are in [`super::script_args`], the proxy module's and
//! `map` in [`super::proxy_args`].

use super::model::{AccessRule, ErrorPage, Expires, ExpiresValue, Net, Overwrite};
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
    // ngx_conf_set_flag_slot compares without case.
    match d.args[0].text.to_ascii_lowercase().as_str() {
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

/// The value of `add_header` or `proxy_set_header`: a value written over several lines (a
/// long `Content-Security-Policy`) is sent by nginx as written, line breaks and all, which
/// clients read as folded lines: each break with the blanks around it is one space here. A
/// break with no blank after it (the rest would be a header of its own, or the end of the
/// header block) and other control characters are refused, as no client would read them.
pub(super) fn header_value(d: &Directive, s: &str) -> Result<Template, ParseError> {
    template(d, &header_text(d, s)?)
}

/// [`header_value`]'s folding and checks, for a value without variables (`default_type`, a
/// redirect's URL).
pub(super) fn header_text(d: &Directive, s: &str) -> Result<String, ParseError> {
    let refused = |what: &str| {
        d.pos.error(format!(
            "\"{}\" value holds {what}: a line break must be followed by a space or a tab \
             (a folded line), and no other control character may appear",
            d.name
        ))
    };
    let mut folded = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['\r', '\n']) {
        folded.push_str(rest[..i].trim_end_matches([' ', '\t']));
        let after = rest[i..]
            .strip_prefix("\r\n")
            .or_else(|| rest[i..].strip_prefix('\n'))
            .ok_or_else(|| refused("a carriage return alone"))?;
        let next = after.trim_start_matches([' ', '\t']);
        if next.len() == after.len() {
            return Err(refused("a line break not followed by a space"));
        }
        if !folded.is_empty() && !next.is_empty() && !next.starts_with(['\r', '\n']) {
            folded.push(' ');
        }
        rest = next;
    }
    folded.push_str(rest);
    if folded
        .bytes()
        .any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(refused("a control character"));
    }
    Ok(folded)
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

/// `ngx_parse_size` (`ngx_conf_set_size_slot`, `ngx_conf_set_bufs_slot`): a size with an
/// optional k/m suffix; `g` is only for offsets (`client_max_body_size`).
pub(super) fn size_slot(d: &Directive, s: &str) -> Result<u64, ParseError> {
    if s.ends_with(['g', 'G']) {
        return Err(d
            .pos
            .error(format!("\"{}\" directive invalid value", d.name)));
    }
    size(d, s)
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

/// The `expires` directive: its value, or (with variables) the value to read at each answer.
pub(super) fn expires(d: &Directive) -> Result<(Expires, Option<ExpiresValue>), ParseError> {
    no_block(d)?;
    nargs(d, |n| n == 1 || n == 2)?;
    let a = args(d);
    let modified = a.len() == 2;
    if modified && a[0] != "modified" {
        return Err(d.pos.error("invalid value"));
    }
    let v = a[a.len() - 1];
    let value = template(d, v)?;
    if value.literal().is_none() {
        return Ok((Expires::Off, Some(ExpiresValue { modified, value })));
    }
    Ok((
        parse_expires(v, modified).map_err(|e| d.pos.error(e))?,
        None,
    ))
}

/// `ngx_http_parse_expires`: a value of `expires`, at load or (`expires $var`) at an answer.
pub(crate) fn parse_expires(v: &str, modified: bool) -> Result<Expires, &'static str> {
    if !modified {
        match v {
            "epoch" => return Ok(Expires::Epoch),
            "max" => return Ok(Expires::Max),
            "off" => return Ok(Expires::Off),
            _ => {}
        }
    }
    const INVALID: &str = "invalid value";
    if let Some(daily) = v.strip_prefix('@') {
        if modified {
            return Err("daily time cannot be used with \"modified\" parameter");
        }
        let t = time(daily, true).ok_or(INVALID)?;
        if t > 24 * 3600 {
            return Err("daily time value must be less than 24 hours");
        }
        return Ok(Expires::Daily(t));
    }
    let (minus, rest) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let t = time(rest, true).ok_or(INVALID)?;
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
    if v == "all" {
        return Ok(AccessRule {
            deny,
            net: Net::All,
        });
    }
    Ok(AccessRule {
        deny,
        net: net(d, v)?,
    })
}

/// An address or CIDR as `allow`, `deny` and `set_real_ip_from` take it; nginx keeps only
/// the masked bits ("low address bits are meaningless").
pub(super) fn net(d: &Directive, v: &str) -> Result<Net, ParseError> {
    let invalid = || d.pos.error(format!("invalid parameter \"{v}\""));
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
    Ok(net)
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
}
