//! Secrets never reach a log line (SPEC section 14). Every line the gateway writes passes
//! through [`redact`], whatever produced it (our events, pingora's error messages), so a
//! future log statement cannot leak a token by forgetting to.

use std::borrow::Cow;
use std::io;

/// Names whose values are secrets wherever they appear: as `name=value` (query strings, form
/// bodies, headers dumped as `name: value`) or as a JSON member `"name":"value"`.
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
    "wgw-contact",
    "x-gateway-assertion",
];

const MASK: &str = "***";

/// Returns the line with every secret value replaced by `***`.
pub fn redact(line: &str) -> Cow<'_, str> {
    let b = line.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if at_boundary(b, i) {
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

/// A name starts at the beginning or after a separator, so `errcode=40029` is not `code`.
fn at_boundary(b: &[u8], i: usize) -> bool {
    i == 0
        || matches!(
            b[i - 1],
            b'?' | b'&' | b';' | b' ' | b'"' | b'\'' | b'{' | b',' | b'\t' | b'\n' | b'(' | b'['
        )
}

/// If a secret name starts at `i`, returns the byte range of its value.
fn match_secret(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let name = SECRET_NAMES.iter().find(|n| {
        let n = n.as_bytes();
        b.len() >= i + n.len() && b[i..i + n.len()].eq_ignore_ascii_case(n)
    })?;
    let mut j = i + name.len();
    // JSON member: "name": "value"
    if b.get(j) == Some(&b'"') {
        j += 1;
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
        if b.get(j) == Some(&b'"') {
            let start = j + 1;
            let mut k = start;
            while k < b.len() && b[k] != b'"' {
                k += if b[k] == b'\\' { 2 } else { 1 };
            }
            return Some((start, k.min(b.len())));
        }
        // Numbers and the like are not secrets.
        return None;
    }
    match b.get(j) {
        Some(b'=') => {
            let start = j + 1;
            let end = scan_until(b, start, |c| {
                matches!(
                    c,
                    b'&' | b' ' | b'"' | b'\'' | b';' | b',' | b'\n' | b'\t' | b')' | b']'
                )
            });
            Some((start, end))
        }
        Some(b':') => {
            // A header dumped as `Name: value` hides the whole value (a Cookie header holds
            // several pairs).
            let mut start = j + 1;
            while b.get(start) == Some(&b' ') {
                start += 1;
            }
            if b.get(start) == Some(&b'"') {
                return None;
            }
            let end = scan_until(b, start, |c| matches!(c, b'\n' | b'"' | b','));
            Some((start, end))
        }
        _ => None,
    }
}

fn scan_until(b: &[u8], start: usize, stop: impl Fn(u8) -> bool) -> usize {
    let mut k = start;
    while k < b.len() && !stop(b[k]) {
        k += 1;
    }
    k
}

/// A writer that redacts each formatted event before it reaches the sink.
pub struct RedactingWriter<W>(pub W);

impl<W: io::Write> io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(s) => self.0.write_all(redact(s).as_bytes())?,
            Err(_) => self
                .0
                .write_all(redact(&String::from_utf8_lossy(buf)).as_bytes())?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn secrets_are_masked_wherever_they_appear() {
        let cases: &[(&str, &str)] = &[
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
            ("code=", "code="),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), *want, "{input}");
        }
    }
}
