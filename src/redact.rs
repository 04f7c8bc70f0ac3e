//! Secrets never reach a log line (SPEC section 14). Every event the process logs passes
//! through [`redact`] whole, whatever produced it (our events, pingora's error messages, a
//! panic), so a future log statement cannot leak a token by forgetting to; then [`cut`] bounds
//! it, so a 200 KB request target cannot become a 200 KB line. The per-request lines
//! (`crate::logging::Line`) are cleaned field by field instead: every field that can carry
//! client text goes through [`redact`] and [`bound_field`].
//!
//! Lines arrive formatted and often escaped (pingora prints a bad request's bytes with `\r\n`
//! spelled out, JSON escapes them again), so a name counts as starting a word after an escape
//! sequence too, and a header's value runs to the end of its line, escaped or not.

use std::borrow::Cow;

/// Names whose values are secrets wherever they appear: as `name=value` (query strings, form
/// bodies), as a header dumped as `name: value`, or as a JSON member `"name":"value"`. `-` and
/// `_` are the same character here.
const SECRET_NAMES: &[&str] = &[
    "access_token",
    "refresh_token",
    "corpsecret",
    "secret",
    "contact_secret",
    "code",
    "js_code",
    "signature",
    "msg_signature",
    "ticket",
    "jsapi_ticket",
    "user_ticket",
    "session_key",
    "cookie",
    "set-cookie",
    "authorization",
    "proxy-authorization",
    "wgw-contact",
    "x-gateway-assertion",
    // A service provider's: the install's AuthCode (WeCom sends the browser to the provider's
    // page with `?auth_code=`), what it is exchanged for, and the suite's own credentials.
    "auth_code",
    "authcode",
    "permanent_code",
    "permanentcode",
    "pre_auth_code",
    "suite_ticket",
    "suiteticket",
    "suite_access_token",
    "provider_access_token",
    "provider_secret",
    "encoding_aes_key",
    "encodingaeskey",
    "welcome_code",
    "token",
    "password",
    "passwd",
    // The forward-auth check's `?key=` (`[server].forward_auth_key`).
    "key",
    // A callback URL check's challenge. (An OAuth `state` stays readable: single use, bound to
    // the browser's HttpOnly login cookie, and what ties a sign-in's lines together.)
    "echostr",
];

/// The gateway's own cookies (`wgw_session`, `wgw_login_*`): any name with this start.
const OWN_COOKIE_PREFIX: &str = "wgw_";

const MASK: &str = "***";

/// The bytes a secret name (or our cookie prefix, or `bearer`) starts with, in either case: one
/// lookup rules out most positions of a line before any name is compared.
const STARTS: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i <= SECRET_NAMES.len() + 1 {
        let c = if i < SECRET_NAMES.len() {
            SECRET_NAMES[i].as_bytes()[0]
        } else if i == SECRET_NAMES.len() {
            OWN_COOKIE_PREFIX.as_bytes()[0]
        } else {
            b'b'
        };
        t[c.to_ascii_lowercase() as usize] = true;
        t[c.to_ascii_uppercase() as usize] = true;
        i += 1;
    }
    t
};

/// Longest run of non-blank bytes (a text field) or JSON string kept whole by [`cut`].
pub const FIELD_MAX: usize = 1024;
/// Longest line [`cut`] lets through.
pub const LINE_MAX: usize = 8 * 1024;

/// Returns the line with every secret value replaced by `***`.
pub fn redact(line: &str) -> Cow<'_, str> {
    let b = line.as_bytes();
    // Every secret [`match_secret`] finds follows its name with one of these (`name=`,
    // `name: `, `"name":`, `bearer `, `name%3D`): text with none of them, as most paths are,
    // has none, whatever names its words start like (`/app/`, `/static/js/chunk.js`).
    if !b
        .iter()
        .any(|&c| matches!(c, b'=' | b':' | b'"' | b' ' | b'%'))
    {
        return Cow::Borrowed(line);
    }
    redact_each(line)
}

/// [`redact`] without its first look: every position where a secret's name can start.
fn redact_each(line: &str) -> Cow<'_, str> {
    let b = line.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if STARTS[usize::from(b[i])] && at_boundary(b, i) {
            if let Some((value_start, value_end)) = match_secret(b, i) {
                if value_end > value_start {
                    let o = out.get_or_insert_with(|| String::with_capacity(line.len()));
                    o.push_str(&line[copied..value_start]);
                    o.push_str(MASK);
                    copied = value_end;
                }
                i = value_end.max(i + 1);
                continue;
            }
        }
        i += 1;
    }
    match out {
        None => Cow::Borrowed(line),
        Some(mut o) => {
            o.push_str(&line[copied..]);
            Cow::Owned(o)
        }
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// A name starts a word: at the beginning, after a byte that is not part of a word, or right
/// after an escape sequence (`\n`, `\r`, `\t`, `\0`, `\x0a`, `\u000a`), so `errcode=40029` is
/// not `code` but `...HTTP/1.1\r\nCookie: ...` is `Cookie`; also after a percent escape, the
/// way a URL carried in a query value writes its own query (`next=%2Fx%3Faccess_token%3D...`).
fn at_boundary(b: &[u8], i: usize) -> bool {
    if i == 0 || !is_word(b[i - 1]) {
        return true;
    }
    // `%3F`, `%26`, `%22`... and, encoded twice, `%253F`: a byte that is no part of a word.
    let separator = |hex: &[u8]| hex_byte(hex).is_some_and(|c| !is_word(c));
    if i >= 3 && b[i - 3] == b'%' && separator(&b[i - 2..i]) {
        return true;
    }
    if i >= 5 && b[i - 5] == b'%' && &b[i - 4..i - 2] == b"25" && separator(&b[i - 2..i]) {
        return true;
    }
    let escaped = |len: usize, hex: usize| {
        i >= len
            && b[i - len] == b'\\'
            && b[i - hex..i].iter().all(u8::is_ascii_hexdigit)
            && match len - hex {
                1 => true,
                2 => matches!(b[i - len + 1], b'x' | b'u'),
                _ => false,
            }
    };
    (i >= 2 && b[i - 2] == b'\\' && matches!(b[i - 1], b'n' | b'r' | b't' | b'0'))
        || escaped(4, 2)
        || escaped(6, 4)
}

/// The byte two hex digits spell.
fn hex_byte(hex: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    match hex {
        [h, l] => Some((digit(*h)? * 16 + digit(*l)?) as u8),
        _ => None,
    }
}

/// `%XX` (once encoded) or `%25XX` (twice) spelling `byte` at `i`: its length.
fn encoded_at(b: &[u8], i: usize, byte: u8) -> Option<usize> {
    let spells = |at: usize| b.get(at..at + 2).and_then(hex_byte) == Some(byte);
    match b.get(i..i + 3) {
        Some([b'%', b'2', b'5']) if spells(i + 3) => Some(5),
        Some([b'%', ..]) if spells(i + 1) => Some(3),
        _ => None,
    }
}

fn name_at(b: &[u8], i: usize, name: &str) -> bool {
    let n = name.as_bytes();
    b.len() >= i + n.len()
        && b[i..i + n.len()].iter().zip(n).all(|(&x, &y)| {
            x.eq_ignore_ascii_case(&y) || (matches!(x, b'-' | b'_') && matches!(y, b'-' | b'_'))
        })
}

/// Whether `text` (a regex's source) names a secret anywhere (`access_token=([^&]+)`), in any
/// case: what it captures is likely the secret's value.
pub fn names_a_secret(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len()).any(|i| SECRET_NAMES.iter().any(|n| name_at(b, i, n)))
}

/// Whether an nginx variable's whole value is a secret (an `access_log` line of the nginx
/// file writes it `***`): every `$cookie_*` and `$upstream_cookie_*`, and a header, response
/// header (sent, or the upstream's) or argument named like a secret (`$http_cookie`,
/// `$http_authorization`, `$sent_http_set_cookie`, `$upstream_http_set_cookie`, `$arg_code`...)
/// or like the gateway's own cookies.
pub fn is_secret_variable(name: &str) -> bool {
    if name.starts_with("cookie_") || name.starts_with("upstream_cookie_") {
        return true;
    }
    let Some(rest) = ["http_", "sent_http_", "upstream_http_", "arg_"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
    else {
        return false;
    };
    let b = rest.as_bytes();
    SECRET_NAMES
        .iter()
        .any(|n| n.len() == b.len() && name_at(b, 0, n))
        || name_at(b, 0, OWN_COOKIE_PREFIX)
}

/// A quote at `j`, after any run of backslashes: how many backslashes (how deep the text it
/// opens is escaped).
fn quote_at(b: &[u8], j: usize) -> Option<usize> {
    let n = b.get(j..)?.iter().take_while(|&&c| c == b'\\').count();
    (b.get(j + n) == Some(&b'"')).then_some(n)
}

/// If a secret name starts at `i`, returns the byte range of its value.
fn match_secret(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut j = if let Some(name) = SECRET_NAMES.iter().find(|n| name_at(b, i, n)) {
        let end = i + name.len();
        // `cookie` inside `cookies_enabled` is another word.
        if b.get(end).is_some_and(|&c| is_word(c)) {
            return None;
        }
        end
    } else if name_at(b, i, OWN_COOKIE_PREFIX) {
        let mut k = i + OWN_COOKIE_PREFIX.len();
        while k < b.len() && is_word(b[k]) {
            k += 1;
        }
        k
    } else if name_at(b, i, "bearer ") {
        // A bearer token wherever it is quoted, whatever header it came in.
        let start = i + "bearer ".len();
        return Some((start, scan_until(b, start, value_stop)));
    } else {
        return None;
    };
    // JSON member: "name": "value" (the quote before the name made the boundary), also as
    // written inside a string once or more (`\"name\":\"value\"`; pingora's debug dump of
    // a body, escaped again by the JSON log format: `\\\"name\\\"`).
    if let Some(n) = quote_at(b, j) {
        j += n + 1;
        while b.get(j) == Some(&b' ') {
            j += 1;
        }
        if b.get(j) != Some(&b':') {
            return None;
        }
        j += 1;
        while b.get(j) == Some(&b' ') {
            j += 1;
        }
        if let Some(depth) = quote_at(b, j) {
            // The value ends at a quote escaped as its opening one was, after any number of
            // the value's own escaped backslashes (each `2 × (depth + 1)` backslashes there);
            // a quote escaped less ends an enclosing string, and the value with it. Another
            // is a quote inside the value.
            let start = j + depth + 1;
            let mut k = start;
            let end = loop {
                match b[k.min(b.len())..].iter().position(|&c| c == b'"') {
                    None => break b.len(),
                    Some(p) => {
                        let q = k + p;
                        let slashes = b[start..q]
                            .iter()
                            .rev()
                            .take_while(|&&c| c == b'\\')
                            .count();
                        if slashes < depth {
                            break q - slashes;
                        }
                        if (slashes - depth) % (2 * (depth + 1)) == 0 {
                            break q - depth;
                        }
                        k = q + 1;
                    }
                }
            };
            return Some((start, end.max(start)));
        }
        // Numbers and the like are not secrets.
        return None;
    }
    match b.get(j) {
        Some(b'=') => {
            let start = j + 1;
            match b.get(start) {
                // A quoted value (`access_token="..."`: a query a script wrote unencoded, a
                // `key="value"` pair): to its closing quote.
                Some(&q @ (b'"' | b'\'')) => {
                    // Its closing quote is one the value's end follows (a quote doubled or
                    // escaped inside is still the value); unclosed, to the end of the pair.
                    let inner = start + 1;
                    let mut k = inner;
                    while k < b.len() {
                        let c = b[k];
                        let after = b.get(k + 1).copied();
                        if c == q
                            && after.is_none_or(|a| {
                                matches!(a, b'&' | b' ' | b';' | b',' | b'\n' | b'\r' | b'\t')
                            })
                        {
                            break;
                        }
                        if matches!(c, b'&' | b'\n' | b'\r') {
                            break;
                        }
                        k += 1;
                    }
                    Some((inner, k))
                }
                _ => Some((start, scan_until(b, start, value_stop))),
            }
        }
        // A pair inside an encoded URL, `name%3Dvalue` (`%253D` encoded twice): the value
        // ends where the outer one does, or at its own encoded `&` or space.
        Some(b'%') => {
            if let Some(len) = encoded_at(b, j, b'=') {
                let start = j + len;
                let mut k = start;
                while k < b.len()
                    && !value_stop(b[k])
                    && encoded_at(b, k, b'&').is_none()
                    && encoded_at(b, k, b' ').is_none()
                {
                    k += 1;
                }
                return Some((start, k));
            }
            // A JSON member inside an encoded value: `%22name%22%3A%22value%22`.
            let quote = encoded_at(b, j, b'"')?;
            let colon = encoded_at(b, j + quote, b':')?;
            let start = j + quote + colon + encoded_at(b, j + quote + colon, b'"')?;
            let mut k = start;
            while k < b.len() && !value_stop(b[k]) && encoded_at(b, k, b'"').is_none() {
                k += 1;
            }
            Some((start, k))
        }
        Some(b':') => {
            // A header dumped as `Name: value` hides its whole value, to the end of its line
            // (a Cookie header holds several pairs, an Authorization value has spaces).
            let mut start = j + 1;
            while b.get(start) == Some(&b' ') {
                start += 1;
            }
            if b.get(start) == Some(&b'"') {
                return None;
            }
            let mut k = start;
            while k < b.len() {
                match b[k] {
                    b'\n' | b'\r' | b'"' => break,
                    b'\\' if matches!(b.get(k + 1), Some(b'n' | b'r')) => break,
                    b'\\' => k += 2,
                    _ => k += 1,
                }
            }
            Some((start, k.min(b.len())))
        }
        _ => None,
    }
}

/// Where a `name=value` value ends: a separator of query strings, cookies, JSON, or an escape.
fn value_stop(c: u8) -> bool {
    matches!(
        c,
        b'&' | b' ' | b'"' | b'\'' | b';' | b',' | b'\n' | b'\r' | b'\t' | b')' | b']' | b'\\'
    )
}

fn scan_until(b: &[u8], start: usize, stop: impl Fn(u8) -> bool) -> usize {
    let mut k = start;
    while k < b.len() && !stop(b[k]) {
        k += 1;
    }
    k
}

/// Bounds a line: a JSON line keeps its shape with each long string shortened; a text line has
/// each long run of non-blank bytes shortened (so the fields after a huge path survive), and
/// then the whole line if it is still too long. Each cut says how much it left out.
pub fn cut(line: &str) -> Cow<'_, str> {
    if line.len() <= FIELD_MAX {
        return Cow::Borrowed(line);
    }
    let body = line.trim_end_matches('\n');
    let newline = if body.len() < line.len() { "\n" } else { "" };
    if body.starts_with('{') {
        if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(body) {
            if shorten_strings(&mut v) {
                let mut s = v.to_string();
                if s.len() > LINE_MAX {
                    s = serde_json::json!({"message": shorten(&s, LINE_MAX)}).to_string();
                }
                return Cow::Owned(s + newline);
            }
            if body.len() <= LINE_MAX {
                return Cow::Borrowed(line);
            }
        }
    }
    let mut out = String::with_capacity(body.len().min(LINE_MAX + 64));
    let mut changed = false;
    for (i, run) in body.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if run.len() > FIELD_MAX {
            out.push_str(&shorten(run, FIELD_MAX));
            changed = true;
        } else {
            out.push_str(run);
        }
    }
    if out.len() > LINE_MAX {
        out = shorten(&out, LINE_MAX);
        changed = true;
    }
    if !changed {
        return Cow::Borrowed(line);
    }
    out.push_str(newline);
    Cow::Owned(out)
}

/// One field's text bounded as [`cut`] bounds a run of a text line.
pub fn bound_field(s: &str) -> Cow<'_, str> {
    if s.len() > FIELD_MAX {
        Cow::Owned(shorten(s, FIELD_MAX))
    } else {
        Cow::Borrowed(s)
    }
}

fn shorten(s: &str, max: usize) -> String {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes cut]", &s[..end], s.len() - end)
}

fn shorten_strings(v: &mut serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) if s.len() > FIELD_MAX => {
            *s = shorten(s, FIELD_MAX);
            true
        }
        serde_json::Value::Array(a) => a.iter_mut().fold(false, |c, x| shorten_strings(x) | c),
        serde_json::Value::Object(o) => o.values_mut().fold(false, |c, x| shorten_strings(x) | c),
        _ => false,
    }
}

/// Redacts, then bounds, one formatted line. Redaction comes first: a cut could leave a
/// secret's value without the name that marks it.
pub fn clean(line: &str) -> Cow<'_, str> {
    match redact(line) {
        Cow::Borrowed(l) => cut(l),
        Cow::Owned(l) => Cow::Owned(cut(&l).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn secret_variables_are_known_by_name() {
        use super::is_secret_variable as secret;
        for v in [
            "http_cookie",
            "cookie_sid",
            "http_authorization",
            "http_proxy_authorization",
            "sent_http_set_cookie",
            "upstream_http_set_cookie",
            "upstream_http_authorization",
            "upstream_cookie_jsessionid",
            "arg_code",
            "arg_ACCESS_TOKEN",
            "http_x_gateway_assertion",
            "cookie_wgw_session",
            "arg_wgw_x",
            "arg_auth_code",
            "arg_AuthCode",
            "arg_permanent_code",
            "arg_password",
        ] {
            assert!(secret(v), "{v}");
        }
        for v in [
            "http_user_agent",
            "arg_codes",
            "http_referer",
            "request",
            "uri",
            "args",
        ] {
            assert!(!secret(v), "{v}");
        }
    }

    #[test]
    fn secrets_are_masked_wherever_they_appear() {
        let cases: &[(&str, &str)] = &[
            // A quoted value, as a script writes a query unencoded.
            (
                "GET /logged/?access_token=\"SECRET1\"&x=1 HTTP/1.1",
                "GET /logged/?access_token=\"***\"&x=1 HTTP/1.1",
            ),
            ("?code='SECRET2' x", "?code='***' x"),
            ("?code='it''s-SECRETF' x", "?code='***' x"),
            (
                "?access_token=\"SEC\\\\RETC\"&y=1",
                "?access_token=\"***\"&y=1",
            ),
            // A URL carried in a query value: its own pairs encoded.
            (
                "GET /legacy/a?next=%2Fx%3Faccess_token%3DZZng4V&y=1",
                "GET /legacy/a?next=%2Fx%3Faccess_token%3D***&y=1",
            ),
            (
                "url=http%3A%2F%2Fh%2Fsidebar%2F%3Fa%3D1%26code%3dZZjs HTTP/1.1",
                "url=http%3A%2F%2Fh%2Fsidebar%2F%3Fa%3D1%26code%3d*** HTTP/1.1",
            ),
            (
                "?msg_signature=a&echostr=ZZcb2",
                "?msg_signature=***&echostr=***",
            ),
            // Encoded twice (a return_to inside a redirect_uri), and a JSON value encoded.
            (
                "/x?redirect=https%3A%2F%2Fh%2Fcb%3Fcode%253DSECRET2%2526a%253D1 HTTP/1.1",
                "/x?redirect=https%3A%2F%2Fh%2Fcb%3Fcode%253D***%2526a%253D1 HTTP/1.1",
            ),
            (
                "/x?data=%7B%22access_token%22%3A%22LEAK6%22%2C%22n%22%3A1%7D&y=2",
                "/x?data=%7B%22access_token%22%3A%22***%22%2C%22n%22%3A1%7D&y=2",
            ),
            // A path alone, without `=` or a space.
            ("/a%3Fcode%3DZZp", "/a%3Fcode%3D***"),
            // The encoded value ends at its own encoded `&`: what follows stays readable.
            (
                "/search?q=code%3D42%26status%3Dopen&page=2",
                "/search?q=code%3D***%26status%3Dopen&page=2",
            ),
            // Not a name: a percent escape inside a word, a name inside another.
            ("errcode%3D40029 states=2", "errcode%3D40029 states=2"),
            (
                "GET /cgi-bin/user/get?access_token=AbC123&userid=zs",
                "GET /cgi-bin/user/get?access_token=***&userid=zs",
            ),
            ("/cb?code=CODE9&state=xyz", "/cb?code=***&state=xyz"),
            (
                "gettoken?corpid=ww1&corpsecret=S3CRET",
                "gettoken?corpid=ww1&corpsecret=***",
            ),
            (
                "token?grant_type=client_credential&appid=wx1&secret=S",
                "token?grant_type=client_credential&appid=wx1&secret=***",
            ),
            (
                r#"{"errcode":0,"access_token":"tok-1","expires_in":7200}"#,
                r#"{"errcode":0,"access_token":"***","expires_in":7200}"#,
            ),
            (
                r#"{"ticket": "T1", "signature":"abc"}"#,
                r#"{"ticket": "***", "signature":"***"}"#,
            ),
            ("Cookie: wgw_session=abc; other=1", "Cookie: ***"),
            ("cookie=wgw_session", "cookie=***"),
            (r#"{"user_ticket":"ut"}"#, r#"{"user_ticket":"***"}"#),
            (
                "errcode=40029 errmsg=invalid code",
                "errcode=40029 errmsg=invalid code",
            ),
            ("barcode=1 unicode=2", "barcode=1 unicode=2"),
            (
                "url=/x?jsapi_ticket=J&noncestr=n",
                "url=/x?jsapi_ticket=***&noncestr=n",
            ),
            (
                r#"{"errcode":40001,"code":12}"#,
                r#"{"errcode":40001,"code":12}"#,
            ),
            ("X-Gateway-Assertion: eyJ.a.b", "X-Gateway-Assertion: ***"),
            ("nothing here", "nothing here"),
            (
                "GET /install?auth_code=AC1&state=s",
                "GET /install?auth_code=***&state=s",
            ),
            (
                r#"{"permanent_code":"P","suite_access_token":"S","SuiteTicket":"T"}"#,
                r#"{"permanent_code":"***","suite_access_token":"***","SuiteTicket":"***"}"#,
            ),
            (
                "/cb?pre_auth_code=x&provider_access_token=y&encoding-aes-key=z&password=p",
                "/cb?pre_auth_code=***&provider_access_token=***&encoding-aes-key=***&password=***",
            ),
            ("/p?token=abc&tokens=2", "/p?token=***&tokens=2"),
            ("code=", "code="),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), *want, "{input}");
        }
    }

    /// A JSON body in pingora's debug dump (`Body(Some(b"{\"access_token\":...}"))`), and that
    /// line again in the JSON log format (`\\\"access_token\\\"`): the value goes at every
    /// depth, the rest of the line stays.
    #[test]
    fn a_json_member_escaped_at_any_depth_is_masked() {
        let body = r#"{"access_token":"BODYTOKEN1","session_key":"SK1","errmsg":"ok \"q\""}"#;
        let dumped = format!("upstream event: Some(Body(Some(b{:?}), true))", body);
        let logged = serde_json::json!({ "message": dumped }).to_string();
        let twice = serde_json::json!({ "message": logged }).to_string();
        for line in [body, dumped.as_str(), logged.as_str(), twice.as_str()] {
            let clean = redact(line);
            for secret in ["BODYTOKEN1", "SK1"] {
                assert!(!clean.contains(secret), "{secret} in {clean}");
            }
            assert!(clean.contains("errmsg"), "{clean}");
        }
        // The closing quote is the one escaped as the opening one was.
        assert_eq!(
            redact(r#"{"token":"a\"b","n":1}"#),
            r#"{"token":"***","n":1}"#
        );
        // A value ending in an escaped backslash ends there, at any depth; the rest of the
        // line stays.
        assert_eq!(
            redact(r#"{"token":"a\\","user":"zhangsan"}"#),
            r#"{"token":"***","user":"zhangsan"}"#
        );
        let inner = serde_json::json!({ "token": "C:\\", "request_id": "r-123" }).to_string();
        let line = serde_json::json!({ "message": inner }).to_string();
        let clean = redact(&line);
        assert!(clean.contains("r-123") && !clean.contains("C:"), "{clean}");
        assert_eq!(
            redact(r#"x \"token\":\"v\\\"w\", \"n\":1"#),
            r#"x \"token\":\"***\", \"n\":1"#
        );
    }

    /// What pingora prints for a malformed request, escaped once (text log) or twice (JSON).
    #[test]
    fn a_dumped_request_header_leaks_nothing_however_it_is_escaped() {
        let raw = "GET /x y HTTP/1.1\r\nHost: a\r\nCookie: a=1, wgw_session=S1; wgw_login_ab=S2\r\nauthorization: Bearer S3\r\nWGW-Contact: S4\r\nX-Gateway-Assertion: S5\r\nProxy-Authorization: Basic S6\r\n\r\n";
        let once = format!("Fail: buf: {}", raw.escape_debug());
        let twice = serde_json::json!({ "message": once }).to_string();
        let bytes = format!("{:?}", raw.as_bytes().escape_ascii().to_string());
        for line in [once.as_str(), twice.as_str(), bytes.as_str(), raw] {
            let clean = redact(line);
            for secret in ["S1", "S2", "S3", "S4", "S5", "S6"] {
                assert!(!clean.contains(secret), "{secret} in {clean}");
            }
            assert!(clean.contains("Host: a"), "{clean}");
        }
    }

    #[test]
    fn the_gateways_own_cookies_and_bearer_tokens_are_masked_wherever_they_appear() {
        let cases: &[(&str, &str)] = &[
            ("c=wgw_session=abc", "c=wgw_session=***"),
            ("x; wgw_login_0a1b=zz", "x; wgw_login_0a1b=***"),
            ("token is Bearer eyJ.x.y now", "token is Bearer *** now"),
            (
                r#"{"authorization":"Basic dXNlcg=="}"#,
                r#"{"authorization":"***"}"#,
            ),
            ("/cb/access_token=T1/x", "/cb/access_token=***"),
            ("wgw_contact=T", "wgw_contact=***"),
            ("cookies_enabled=true", "cookies_enabled=true"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), *want, "{input}");
        }
    }

    #[test]
    fn the_first_look_skips_only_text_the_full_scan_leaves_as_it_is() {
        // Every string of up to four of these pieces: secret names, our cookie prefix, the
        // bearer word, separators and escapes, word and non-word bytes.
        let pieces = [
            "access_token",
            "Code",
            "wgw_s",
            "bearer",
            "Bearer ",
            "cookie",
            "/",
            "a",
            "-",
            "=",
            ":",
            "\"",
            " ",
            "\\n",
            "\\\"",
            "x1",
            "\t",
            ";",
        ];
        let mut texts = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = texts
                .iter()
                .flat_map(|t| pieces.iter().map(move |p| format!("{t}{p}")))
                .collect();
            texts.extend(longer);
            texts.dedup();
        }
        let mut skipped = 0;
        for t in &texts {
            let quick = redact(t);
            assert_eq!(quick, super::redact_each(t), "{t:?}");
            if !t.contains(['=', ':', '"', ' ']) {
                skipped += 1;
                assert!(matches!(quick, std::borrow::Cow::Borrowed(_)), "{t:?}");
            }
        }
        assert!(skipped > 1000, "{skipped}");
    }

    #[test]
    fn a_huge_field_is_cut_and_the_fields_after_it_survive() {
        let path = format!("/{}", "a".repeat(200 * 1024));
        let line = format!("INFO access: method=GET path={path} status=404 request_id=r1\n");
        let out = super::clean(&line);
        assert!(out.len() < 2 * super::FIELD_MAX, "{}", out.len());
        assert!(out.contains("bytes cut]"));
        assert!(out.ends_with("status=404 request_id=r1\n"), "{out}");

        let json = format!("{}\n", serde_json::json!({"path": path, "status": 404}));
        let out = super::clean(&json);
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).expect("still JSON");
        assert_eq!(v["status"], 404);
        assert!(v["path"].as_str().unwrap().len() < 2 * super::FIELD_MAX);

        let long_line = "x ".repeat(super::LINE_MAX);
        assert!(super::clean(&long_line).len() < super::LINE_MAX + 64);
    }
}
