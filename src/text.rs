//! Numbers and strings written straight into bytes, for the lines and tokens the hot path
//! builds without the formatter (the access line, the assertion's claims).

/// `s` as a JSON string when `quote` (in quotes, `"` and `\` escaped), bare otherwise; control
/// characters are escaped either way, so a value can never end or split a line: ASCII's, and
/// the C1 controls (NEL, U+0085) and U+2028/U+2029 that some readers also end a line at.
pub fn escaped(buf: &mut Vec<u8>, s: &str, quote: bool) {
    if quote {
        buf.push(b'"');
    }
    let bytes = s.as_bytes();
    // Nearly every value needs no escape: one pass over all its bytes, without an early exit so
    // that it vectorises, decides whether the byte-by-byte loop is needed at all.
    // 0xC2 leads the C1 controls, 0xE2 the line and paragraph separators (and other text,
    // which then takes the slow path and comes out as it was).
    let plain = !bytes.iter().fold(false, |any, &c| {
        any | (c < 0x20)
            | (c == 0x7f)
            | (c == 0xc2)
            | (c == 0xe2)
            | (quote & ((c == b'"') | (c == b'\\')))
    });
    if plain {
        buf.extend_from_slice(bytes);
    } else {
        escape_each(buf, bytes, quote);
    }
    if quote {
        buf.push(b'"');
    }
}

/// Text from a client written bare in a text line reads as more than one field (or line) when
/// it holds a space (also one past ASCII: U+3000, U+00A0), a control character, a quote or a
/// backslash: it goes in quotes then.
#[inline]
pub fn needs_quotes(s: &str) -> bool {
    // One pass over the bytes, without an early exit so that it vectorises; the characters
    // only when there is one past ASCII.
    let (odd, wide) = s.bytes().fold((false, false), |(odd, wide), b| {
        (
            odd | (b <= b' ') | (b == b'"') | (b == b'\\') | (b == 0x7f),
            wide | (b >= 0x80),
        )
    });
    odd || (wide && s.chars().any(|c| c.is_whitespace() || c.is_control()))
}

fn escape_each(buf: &mut Vec<u8>, bytes: &[u8], quote: bool) {
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        // The bytes an escaped character takes, and its escape (`u16`: a `\uXXXX` of it).
        let next = |k: usize| bytes.get(i + k).copied();
        let (len, escape): (usize, Result<&[u8], u16>) = match (c, next(1), next(2)) {
            (b'"', ..) if quote => (1, Ok(b"\\\"")),
            (b'\\', ..) if quote => (1, Ok(b"\\\\")),
            (b'\n', ..) => (1, Ok(b"\\n")),
            (b'\r', ..) => (1, Ok(b"\\r")),
            (b'\t', ..) => (1, Ok(b"\\t")),
            (0..=0x1f | 0x7f, ..) => (1, Err(u16::from(c))),
            // U+0080..U+009F (two bytes: also the value's last character).
            (0xc2, Some(n), _) if (0x80..=0x9f).contains(&n) => (2, Err(u16::from(n))),
            // U+2028, U+2029.
            (0xe2, Some(0x80), Some(n)) if n == 0xa8 || n == 0xa9 => {
                (3, Err(0x2000 | u16::from(n - 0x80)))
            }
            _ => {
                i += 1;
                continue;
            }
        };
        buf.extend_from_slice(&bytes[start..i]);
        match escape {
            Ok(e) => buf.extend_from_slice(e),
            Err(u) => {
                buf.extend_from_slice(b"\\u");
                for shift in [12, 8, 4, 0] {
                    buf.push(hex((u >> shift) as u8));
                }
            }
        }
        i += len;
        start = i;
    }
    buf.extend_from_slice(&bytes[start..]);
}

pub fn decimal(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

pub fn digit(n: u64) -> u8 {
    b'0' + (n % 10) as u8
}

fn hex(n: u8) -> u8 {
    b"0123456789abcdef"[n as usize & 0xf]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_json_when_quoted_and_never_break_a_line() {
        let mut b = Vec::new();
        escaped(&mut b, "a\"b\\c\nd\x01\x7fé", true);
        assert_eq!(b, r#""a\"b\\c\nd\u0001\u007fé""#.as_bytes());
        let parsed: String = serde_json::from_slice(&b).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\x01\x7fé");
        let mut b = Vec::new();
        escaped(&mut b, "x\"y\r", false);
        assert_eq!(b, b"x\"y\\r");
    }

    #[test]
    fn every_byte_that_needs_an_escape_gets_one() {
        for c in (0u8..0x20).chain([0x7f, b'"', b'\\']) {
            let s = format!("ab{}cd", c as char);
            let mut quoted = Vec::new();
            escaped(&mut quoted, &s, true);
            let back: String = serde_json::from_slice(&quoted).unwrap();
            assert_eq!(back, s, "{c:#x}");
            assert!(quoted.len() > s.len() + 2, "{c:#x} escaped");
            let mut bare = Vec::new();
            escaped(&mut bare, &s, false);
            let kept = c == b'"' || c == b'\\';
            assert_eq!(bare == s.as_bytes(), kept, "{c:#x} bare");
        }
        let mut b = Vec::new();
        escaped(&mut b, "plain-id_1.2@x/y", true);
        assert_eq!(b, b"\"plain-id_1.2@x/y\"");
        // The characters past ASCII that some readers end a line at: escaped, either way; the
        // rest of the text (also what begins with the same bytes) as it is.
        for (s, want) in [
            ("a\u{85}b", r"a\u0085b"),
            ("a\u{85}", r"a\u0085"),
            ("a\u{2029}", r"a\u2029"),
            ("a\u{9f}b", r"a\u009fb"),
            ("a\u{2028}b\u{2029}", r"a\u2028b\u2029"),
            (
                "\u{a0}\u{2030}\u{20ac}é\u{3000}",
                "\u{a0}\u{2030}\u{20ac}é\u{3000}",
            ),
        ] {
            let mut bare = Vec::new();
            escaped(&mut bare, s, false);
            assert_eq!(String::from_utf8(bare).unwrap(), want, "{s:?}");
            let mut quoted = Vec::new();
            escaped(&mut quoted, s, true);
            let back: String = serde_json::from_slice(&quoted).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 1234567890, u64::MAX] {
            let mut b = Vec::new();
            decimal(&mut b, n);
            assert_eq!(b, n.to_string().as_bytes());
        }
    }
}
