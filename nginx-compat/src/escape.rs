//! nginx's `ngx_escape_uri` / `ngx_unescape_uri` flavours, byte for byte: the Location header
//! of a rewrite redirect depends on exactly which bytes these leave alone.

/// `NGX_ESCAPE_URI` as nginx 1.21.1 and later have it: " ", `"`, "#", "%", "<", ">", "?",
/// "\\", "^", "`", "{", "|", "}", controls, DEL and high bytes. (Before 1.21.1 only
/// " ", "#", "%", "?": servlet containers refuse the others raw in a request-target.)
const URI: [u32; 8] = [
    0xffffffff, 0xd000002d, 0x50000000, 0xb8000001, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
];

/// `NGX_ESCAPE_ARGS` as nginx 1.21.1 and later have it: the URI's bytes and "&", "+", ";".
const ARGS: [u32; 8] = [
    0xffffffff, 0xd800086d, 0x50000000, 0xb8000001, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    Uri,
    Args,
}

pub fn escape(src: &[u8], how: Escape) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let table = match how {
        Escape::Uri => &URI,
        Escape::Args => &ARGS,
    };
    let mut out = Vec::with_capacity(src.len());
    for &b in src {
        if table[(b >> 5) as usize] & (1 << (b & 0x1f)) != 0 {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
        } else {
            out.push(b);
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `ngx_unescape_uri(..., NGX_UNESCAPE_REDIRECT)` as applied to a rewrite redirect: escapes
/// decoding to a byte in ('%', DEL) are decoded, others are kept with their original hex
/// digits; decoding stops after the first '?', the rest is copied untouched. A malformed
/// escape loses bytes exactly as nginx's state machine drops them.
pub fn unescape_redirect(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    let mut i = 0;
    while i < src.len() {
        let ch = src[i];
        i += 1;
        if ch == b'?' {
            out.push(ch);
            out.extend_from_slice(&src[i..]);
            return out;
        }
        if ch != b'%' {
            out.push(ch);
            continue;
        }
        // sw_quoted: an invalid first digit drops the '%' and keeps the byte.
        let Some(&c1) = src.get(i) else { break };
        i += 1;
        let Some(d1) = hex(c1) else {
            out.push(c1);
            continue;
        };
        // sw_quoted_second: an invalid second digit drops all three bytes.
        let Some(&c2) = src.get(i) else { break };
        i += 1;
        let Some(d2) = hex(c2) else { continue };
        let decoded = (d1 << 4) | d2;
        if decoded == b'?' && !c2.is_ascii_digit() {
            // Only the a-f branch of nginx checks for an escaped '?'.
            out.push(decoded);
            out.extend_from_slice(&src[i..]);
            return out;
        }
        if decoded > b'%' && decoded < 0x7f {
            out.push(decoded);
        } else {
            out.extend_from_slice(&[b'%', c1, c2]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_tables() {
        assert_eq!(escape(b"a b#%?&+;/", Escape::Uri), b"a%20b%23%25%3F&+;/");
        assert_eq!(
            escape(b"a b#%?&+;/", Escape::Args),
            b"a%20b%23%25%3F%26%2B%3B/"
        );
        assert_eq!(escape("é".as_bytes(), Escape::Args), b"%C3%A9");
    }

    /// rewrite_unescape.t: what survives NGX_UNESCAPE_REDIRECT.
    #[test]
    fn unescape_redirect_cases() {
        let cases: &[(&str, &str)] = &[
            ("/t%41b", "/tAb"),
            ("/t%20b", "/t%20b"),
            ("/t%25b", "/t%25b"),
            ("/t%2Fb", "/t/b"),
            ("/t%3fb?x%41", "/t?b?x%41"),
            ("/t%3Fb", "/t?b"),
            ("/a?%41", "/a?%41"),
            ("/t%c3%a9", "/t%c3%a9"),
            ("/t%zz", "/tzz"),
            ("/t%4z", "/t"),
            ("/t%", "/t"),
        ];
        for (src, want) in cases {
            assert_eq!(
                String::from_utf8_lossy(&unescape_redirect(src.as_bytes())),
                *want,
                "{src}"
            );
        }
    }
}
