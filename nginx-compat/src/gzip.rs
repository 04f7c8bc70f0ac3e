//! `ngx_http_gzip_ok`'s questions of the request, asked alike by `gzip` (of an answer) and
//! `gzip_static` (of a `.gz` beside a file): the client's `Accept-Encoding`, its HTTP version
//! (`gzip_http_version`) and its `User-Agent` (`gzip_disable`). What it asks of a request
//! through a proxy (`gzip_proxied`) depends on the answer and is the caller's.

use crate::parse::model::{Gzip, GzipDisable};

/// nginx's number for HTTP/1.0 (`NGX_HTTP_VERSION_10`); a version is `major * 1000 + minor`.
pub const HTTP_10: u16 = 1000;
/// nginx's number for HTTP/1.1, `gzip_http_version`'s default.
pub const HTTP_11: u16 = 1001;

impl Gzip {
    /// The request's side of `ngx_http_gzip_ok`: its first `Accept-Encoding` takes gzip, its
    /// version is `gzip_http_version` or later, and `gzip_disable` names none of its
    /// `User-Agent`s (`msie6` any of them, as nginx reads each line; a regex the first).
    pub fn client_takes<'a>(
        &self,
        http_version: u16,
        accept_encoding: Option<&[u8]>,
        user_agents: impl IntoIterator<Item = &'a [u8]>,
    ) -> bool {
        if !accept_encoding.is_some_and(accepts_gzip) {
            return false;
        }
        let oldest = if self.http_10 { HTTP_10 } else { HTTP_11 };
        if http_version < oldest {
            return false;
        }
        let mut msie6 = false;
        let mut first = None;
        for ua in user_agents {
            first.get_or_insert(ua);
            msie6 = is_msie6(ua, msie6);
        }
        !self.disable.iter().any(|d| match d {
            GzipDisable::Msie6 => msie6,
            GzipDisable::Regex(re) => first.is_some_and(|ua| re.is_match(ua).unwrap_or(false)),
        })
    }
}

/// `ngx_http_gzip_accept_encoding`: the first `gzip` that starts the value or follows a `,` or
/// a space is the one read; it is taken when a `,` or the end follows it, or a `;q=` with a
/// quantity that is not zero. Anything else there (`gzipx`, `gzip;level=1`, `q = 1`) declines,
/// even with a later `gzip` in the list.
pub fn accepts_gzip(ae: &[u8]) -> bool {
    let mut start = 0;
    let at = loop {
        let found = ae[start..]
            .windows(4)
            .position(|w| w.eq_ignore_ascii_case(b"gzip"))
            .map(|i| start + i);
        match found {
            None => return false,
            Some(p) if p == 0 || matches!(ae[p - 1], b',' | b' ') => break p,
            Some(p) => start = p + 4,
        }
    };
    let mut rest = ae[at + 4..].iter();
    loop {
        match rest.next() {
            None | Some(b',') => return true,
            Some(b';') => break,
            Some(b' ') => {}
            Some(_) => return false,
        }
    }
    loop {
        match rest.next() {
            None => return true,
            Some(b'q' | b'Q') => break,
            Some(b' ') => {}
            Some(_) => return false,
        }
    }
    let rest = rest.as_slice();
    if rest.len() < 2 || rest[0] != b'=' {
        return false;
    }
    quantity(&rest[1..]) != 0
}

/// `ngx_http_gzip_quantity`: `0`/`1`, then up to three decimals, read as nginx reads them (a
/// `0.5` is 5, not 500: only whether it is zero, or over `1`, matters).
fn quantity(q: &[u8]) -> u32 {
    let mut it = q.iter();
    let mut value = match it.next() {
        Some(&c @ (b'0' | b'1')) => u32::from(c - b'0') * 100,
        _ => return 0,
    };
    match it.next() {
        None | Some(b',' | b' ') => return value,
        Some(b'.') => {}
        Some(_) => return 0,
    }
    let mut digits = 0;
    for &c in it {
        match c {
            b',' | b' ' => break,
            b'0'..=b'9' => {
                value += u32::from(c - b'0');
                digits += 1;
            }
            _ => return 0,
        }
    }
    if value > 100 || digits > 3 {
        0
    } else {
        value
    }
}

/// `ngx_http_process_user_agent`'s `msie6` for one `User-Agent` line, given what the lines
/// before it set: the first `MSIE ` with three more bytes after it, `4.`/`5.`, or `6.` without
/// `SV1` after the version (XP SP2's, which handles gzip); a line naming `Opera` clears it.
fn is_msie6(ua: &[u8], before: bool) -> bool {
    let mut msie6 = before;
    if let Some(i) = find(ua, b"MSIE ") {
        if i + 7 < ua.len() && ua[i + 6] == b'.' {
            match ua[i + 5] {
                b'4' | b'5' => msie6 = true,
                b'6' if find(&ua[i + 8..], b"SV1").is_none() => msie6 = true,
                _ => {}
            }
        }
    }
    if find(ua, b"Opera").is_some() {
        msie6 = false;
    }
    msie6
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_is_read_as_nginx_reads_it() {
        for (ae, taken) in [
            ("gzip", true),
            ("GZIP", true),
            ("gzip, deflate", true),
            ("deflate, gzip", true),
            ("deflate,gzip", true),
            ("br;q=1, gzip;q=0.5", true),
            ("gzip;q=1", true),
            ("gzip;q=1.0", true),
            ("gzip;q=0.001", true),
            ("gzip; q=0.5", true),
            ("gzip ;q=0.5 , br", true),
            ("gzip;q=0", false),
            ("gzip;q=0.000", false),
            ("gzip;q=0.0001", false),
            ("gzip;q=1.5", false),
            ("gzip;q=2", false),
            ("gzip;q=", false),
            ("gzip; q = 0.5", false),
            ("gzip;level=1", false),
            // The first gzip is the one read.
            ("gzipx, gzip", false),
            ("x-gzip", false),
            ("x-gzip, gzip", true),
            ("deflate", false),
            ("", false),
            ("gzi", false),
            ("*", false),
        ] {
            assert_eq!(accepts_gzip(ae.as_bytes()), taken, "{ae:?}");
        }
    }

    #[test]
    fn msie6_is_read_as_nginx_reads_it() {
        for (ua, old) in [
            ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", true),
            (
                "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)",
                false,
            ),
            ("Mozilla/4.0 (compatible; MSIE 5.5; Windows 98)", true),
            ("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0)", false),
            ("Mozilla/4.0 (compatible; MSIE 6.0; Opera 9)", false),
            ("MSIE 6.0", true),
            ("MSIE 6.", false),
            ("MSIE 6.0;", true),
            ("Mozilla/5.0 (X11; Linux x86_64)", false),
        ] {
            assert_eq!(is_msie6(ua.as_bytes(), false), old, "{ua:?}");
        }
    }
}
