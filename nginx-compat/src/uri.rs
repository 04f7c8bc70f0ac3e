//! The request URI as nginx sees it: `ngx_http_parse_complex_uri` with `merge_slashes on`.
//!
//! Every match (locations, rewrites, `$uri`) runs on the normalised path, never on the raw one,
//! so the gateway must normalise exactly as nginx does or a rule would select a different
//! location than it did behind nginx.

/// Why nginx would answer 400 to a request path.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum UriError {
    #[error("the path does not start with '/'")]
    NoLeadingSlash,
    #[error("a '..' segment climbs above the root")]
    AboveRoot,
    #[error("the path contains a NUL byte")]
    Nul,
    #[error("the path contains a control character or space (byte 0x{0:02x})")]
    Control(u8),
    #[error("bad percent-escape at byte {0}")]
    BadEscape(usize),
}

/// Split `"/a/b?x=1"` into `(path, Some(query))`.
///
/// Like nginx's request-line parser, a `#` ends the URI: a fragment before the first `?` means
/// there are no arguments, and arguments stop at a `#`.
pub fn split_request_uri(raw: &[u8]) -> (&[u8], Option<&[u8]>) {
    let end = raw.iter().position(|&b| b == b'?' || b == b'#');
    match end {
        Some(i) if raw[i] == b'?' => {
            let rest = &raw[i + 1..];
            let q_end = rest.iter().position(|&b| b == b'#').unwrap_or(rest.len());
            (&raw[..i], Some(&rest[..q_end]))
        }
        _ => (raw, None),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Usual,
    Slash,
    Dot,
    DotDot,
}

/// nginx's `ngx_http_parse_complex_uri`: percent-decode, merge slashes ("merge_slashes on"),
/// resolve "." and ".." segments; a ".." above the root, a NUL byte, a missing leading '/',
/// or a bad %-escape -> Err (nginx answers 400). `raw_path` excludes the query.
///
/// Decoded bytes take part in the segment logic (`%2F` is a '/', `%2e%2e` is `..`), except
/// that a decoded `%`, `#` or `?` is plain data — the same exceptions nginx makes so that an
/// escaped `%25` can never be decoded twice. A raw `#` ends the path, as in the request line.
pub fn normalize_path(raw_path: &[u8]) -> Result<Vec<u8>, UriError> {
    parse_path(raw_path).map(|p| p.uri)
}

/// A request-line path as nginx's parser leaves it: `r->uri` and `r->exten`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPath {
    /// The normalised path ([`normalize_path`]).
    pub uri: Vec<u8>,
    /// What follows the last '.' the parser met inside a segment (a '/' forgets it). Unlike
    /// [`crate::mime::exten`] on the same path, the dots that begin a segment (the second
    /// and third of `/..png`, `/...png`) are not counted: they are read as "." and ".."
    /// segments first.
    pub exten: Vec<u8>,
}

/// [`normalize_path`], with the extension the parser found on the way.
pub fn parse_path(raw_path: &[u8]) -> Result<ParsedPath, UriError> {
    if raw_path.first() != Some(&b'/') {
        return Err(UriError::NoLeadingSlash);
    }
    let mut out: Vec<u8> = Vec::with_capacity(raw_path.len());
    let mut state = State::Usual;
    let mut ext: Option<usize> = None;
    let mut i = 0;
    while i < raw_path.len() {
        let mut ch = raw_path[i];
        i += 1;
        match ch {
            0 => return Err(UriError::Nul),
            // nginx's request-line parser rejects these before the path is ever decoded.
            c if c <= 0x20 || c == 0x7f => return Err(UriError::Control(c)),
            b'#' => break,
            b'%' => {
                let (hi, lo) = match (raw_path.get(i), raw_path.get(i + 1)) {
                    (Some(&h), Some(&l)) => (h, l),
                    _ => return Err(UriError::BadEscape(i - 1)),
                };
                let (Some(hi), Some(lo)) = (hex(hi), hex(lo)) else {
                    return Err(UriError::BadEscape(i - 1));
                };
                i += 2;
                ch = (hi << 4) | lo;
                if ch == 0 {
                    return Err(UriError::Nul);
                }
                if matches!(ch, b'%' | b'#' | b'?') {
                    out.push(ch);
                    state = State::Usual;
                    continue;
                }
            }
            _ => {}
        }
        state = step(state, ch, &mut out, &mut ext)?;
    }
    match state {
        State::Dot => {
            out.pop();
        }
        State::DotDot => climb(&mut out)?,
        _ => {}
    }
    let exten = ext.and_then(|i| out.get(i..)).unwrap_or_default().to_vec();
    Ok(ParsedPath { uri: out, exten })
}

/// One byte of `ngx_http_parse_complex_uri`; `ext` is its `r->uri_ext`, which only a '.' or
/// a '/' read in the usual state moves.
fn step(
    state: State,
    ch: u8,
    out: &mut Vec<u8>,
    ext: &mut Option<usize>,
) -> Result<State, UriError> {
    Ok(match (state, ch) {
        (State::Usual, b'/') => {
            *ext = None;
            out.push(ch);
            State::Slash
        }
        (State::Usual, _) => {
            out.push(ch);
            if ch == b'.' {
                *ext = Some(out.len());
            }
            State::Usual
        }
        // merge_slashes on: "//" is one '/'.
        (State::Slash, b'/') => State::Slash,
        (State::Slash, b'.') => {
            out.push(ch);
            State::Dot
        }
        // "/./" drops the dot.
        (State::Dot, b'/') => {
            out.pop();
            State::Slash
        }
        (State::Dot, b'.') => {
            out.push(ch);
            State::DotDot
        }
        (State::DotDot, b'/') => {
            climb(out)?;
            State::Slash
        }
        (_, _) => {
            out.push(ch);
            State::Usual
        }
    })
}

/// `out` ends in "/.."; remove it and the segment before it, leaving the '/' that preceded
/// that segment (nginx's `u -= 4` and scan back).
fn climb(out: &mut Vec<u8>) -> Result<(), UriError> {
    // out = ".../seg/..": drop "/.." then scan back to the previous '/'.
    if out.len() < 4 {
        return Err(UriError::AboveRoot);
    }
    let mut u = out.len() - 4;
    loop {
        if out[u] == b'/' {
            out.truncate(u + 1);
            return Ok(());
        }
        if u == 0 {
            return Err(UriError::AboveRoot);
        }
        u -= 1;
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per raw path and what nginx makes of it (None = 400).
    const CASES: &[(&str, Option<&str>)] = &[
        ("/", Some("/")),
        ("/a/b", Some("/a/b")),
        ("//a///b", Some("/a/b")),
        ("/a//", Some("/a/")),
        ("/a/./b", Some("/a/b")),
        ("/a/.", Some("/a/")),
        ("/.", Some("/")),
        ("/a/../b", Some("/b")),
        ("/a/b/../../c", Some("/c")),
        ("/a/..", Some("/")),
        ("/a/b/..", Some("/a/")),
        ("/..", None),
        ("/../x", None),
        ("/a/../../x", None),
        ("//..", None),
        ("/a/%2e%2e/b", Some("/b")),
        ("/a/%2E/b", Some("/a/b")),
        ("/a/.%2e", Some("/")),
        ("/%2e%2e/x", None),
        ("/a%2Fb", Some("/a/b")),
        ("/a%2F%2Fb", Some("/a/b")),
        ("/a%2F..%2Fb", Some("/b")),
        ("/a%20b", Some("/a b")),
        ("/%25", Some("/%")),
        ("/%252e%252e", Some("/%2e%2e")),
        ("/a%3Fb", Some("/a?b")),
        ("/a%23b", Some("/a#b")),
        ("/a#frag", Some("/a")),
        ("/a/..#x", Some("/")),
        ("/%zz", None),
        ("/%2", None),
        ("/%", None),
        ("/a%00b", None),
        ("a/b", None),
        ("", None),
        ("/...", Some("/...")),
        ("/a/.../b", Some("/a/.../b")),
        ("/a/.b/..c", Some("/a/.b/..c")),
        ("/a..b/../c", Some("/c")),
        ("/+", Some("/+")),
        ("/%C3%A9", Some("/\u{e9}")),
    ];

    #[test]
    fn parse_path_finds_the_extension_as_nginx_parser_does() {
        for (raw, want) in [
            ("/a.png", "png"),
            ("/a.b.PNG", "PNG"),
            ("/a", ""),
            ("/a.", ""),
            ("/.png", ""),
            ("/a/..png", ""),
            ("/a/...png", ""),
            ("/a/....png", "png"),
            ("/a/.b.png", "png"),
            ("/a.png/", ""),
            ("/a%2Epng", "png"),
            ("/a.png%2F", ""),
            ("/a.png%3Fb", "png?b"),
            ("/a.png/..", ""),
            ("/x.y/../b.c", "c"),
        ] {
            let p = parse_path(raw.as_bytes()).unwrap();
            assert_eq!(String::from_utf8_lossy(&p.exten), want, "{raw}");
        }
    }

    #[test]
    fn normalize_path_matches_nginx() {
        for (raw, want) in CASES {
            let got = normalize_path(raw.as_bytes());
            match want {
                Some(w) => assert_eq!(
                    got.as_deref()
                        .map(|v| String::from_utf8_lossy(v).into_owned()),
                    Ok(w.to_string()),
                    "path {raw:?}"
                ),
                None => assert!(got.is_err(), "path {raw:?} should be rejected, got {got:?}"),
            }
        }
    }

    #[test]
    fn raw_nul_and_controls_are_rejected() {
        assert_eq!(normalize_path(b"/a\0b"), Err(UriError::Nul));
        assert_eq!(normalize_path(b"/a\x01"), Err(UriError::Control(1)));
        assert_eq!(normalize_path(b"/a b"), Err(UriError::Control(b' ')));
    }

    #[test]
    fn split_request_uri_cases() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("/a/b?x=1", "/a/b", Some("x=1")),
            ("/a/b", "/a/b", None),
            ("/a?", "/a", Some("")),
            ("/a?x?y", "/a", Some("x?y")),
            ("/a?x#f", "/a", Some("x")),
            ("/a#f?x", "/a#f?x", None),
        ];
        for (raw, path, query) in cases {
            let (p, q) = split_request_uri(raw.as_bytes());
            assert_eq!(p, path.as_bytes(), "{raw}");
            assert_eq!(q, query.map(str::as_bytes), "{raw}");
        }
    }
}
