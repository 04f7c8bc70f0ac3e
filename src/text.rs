//! Numbers and strings written straight into bytes, for the lines and tokens the hot path
//! builds without the formatter (the access line, the assertion's claims).

/// `s` as a JSON string when `quote` (in quotes, `"` and `\` escaped), bare otherwise; control
/// bytes are escaped either way, so a value can never end or split a line.
pub fn escaped(buf: &mut Vec<u8>, s: &str, quote: bool) {
    if quote {
        buf.push(b'"');
    }
    let bytes = s.as_bytes();
    // Nearly every value needs no escape: one pass over all its bytes, without an early exit so
    // that it vectorises, decides whether the byte-by-byte loop is needed at all.
    let plain = !bytes.iter().fold(false, |any, &c| {
        any | (c < 0x20) | (c == 0x7f) | (quote & ((c == b'"') | (c == b'\\')))
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

fn escape_each(buf: &mut Vec<u8>, bytes: &[u8], quote: bool) {
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let escape: &[u8] = match c {
            b'"' if quote => b"\\\"",
            b'\\' if quote => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            buf.extend_from_slice(b"\\u00");
            buf.extend_from_slice(&[hex(c >> 4), hex(c & 0xf)]);
        } else {
            buf.extend_from_slice(escape);
        }
        start = i + 1;
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
