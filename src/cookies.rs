//! The `Cookie` request header as bytes (SPEC section 5, step 2). Browsers send cookie values
//! in UTF-8 and old clients in Latin-1; a header that is not ASCII text must still give the
//! gateway its own cookies and must still lose them before it goes upstream. Nothing here
//! needs the header to be text: pairs are split on `;`, names end at the first `=`.

/// The gateway's cookies: every `wgw_*` name (login states, the default session cookie) and the
/// configured session cookie. Compared without case: a CRM that folds names must not see ours.
pub fn is_ours(name: &[u8], session_cookie: Option<&str>) -> bool {
    let name = trim(name);
    let own = |n: &[u8]| n.len() >= 4 && n[..4].eq_ignore_ascii_case(b"wgw_");
    // `__Host-wgw_login_*`: the login cookies behind https.
    own(name)
        || (name.len() > 7 && name[..7].eq_ignore_ascii_case(b"__Host-") && own(&name[7..]))
        || session_cookie.is_some_and(|s| name.eq_ignore_ascii_case(s.as_bytes()))
}

/// The `(name, value)` pairs of every `Cookie` header value, as bytes, in order.
pub fn pairs<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Vec<(&'a [u8], &'a [u8])> {
    each_pair(values).collect()
}

/// [`pairs`] without collecting them: the hot path reads one cookie of many.
fn each_pair<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    values.into_iter().flat_map(segments).filter_map(|pair| {
        let pair = trim(pair);
        if pair.is_empty() {
            return None;
        }
        Some(match memchr::memchr(b'=', pair) {
            Some(i) => (trim(&pair[..i]), trim(&pair[i + 1..])),
            None => (pair, &pair[pair.len()..]),
        })
    })
}

/// The `;`-separated pieces of one header value, found with `memchr` (a session cookie is a few
/// hundred bytes, and every protected request reads it and then rewrites the header).
fn segments(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(v);
    std::iter::from_fn(move || {
        let r = rest?;
        Some(match memchr::memchr(b';', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                &r[..i]
            }
            None => {
                rest = None;
                r
            }
        })
    })
}

/// The pairs whose name and value are text: the only ones the gateway can have set (its
/// values are base64). Others are the CRM's business and skipped, never a reason to fail.
pub fn text_pairs<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Vec<(String, String)> {
    pairs(values)
        .into_iter()
        .filter_map(|(n, v)| {
            let n = std::str::from_utf8(n).ok()?;
            let v = std::str::from_utf8(v).ok()?;
            Some((n.to_owned(), strip_quotes(v).to_owned()))
        })
        .collect()
}

/// The text values of the cookies named exactly `name`, in order, borrowed from the headers
/// (the same pairs [`text_pairs`] gives, without copying every cookie of the request), read as
/// they are asked for: whoever takes the first that serves reads no further.
pub fn text_values<'a>(
    values: impl IntoIterator<Item = &'a [u8]> + 'a,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    each_pair(values)
        .filter(move |(n, _)| *n == name.as_bytes())
        .filter_map(|(_, v)| std::str::from_utf8(v).ok().map(strip_quotes))
}

/// The `Cookie` value the upstream gets: every pair that is not ours, bytes untouched, joined
/// as RFC 6265 writes them. `None` when nothing is left.
pub fn without_ours<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    session_cookie: Option<&str>,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for v in values {
        for pair in segments(v) {
            let pair = trim(pair);
            if pair.is_empty() {
                continue;
            }
            let name = memchr::memchr(b'=', pair).map_or(pair, |i| &pair[..i]);
            if is_ours(name, session_cookie) {
                continue;
            }
            if !out.is_empty() {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(pair);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// RFC 6265 allows a value in double quotes.
fn strip_quotes(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_from_bytes_whatever_the_encoding() {
        let latin1 = b"a=caf\xe9; wgw_session=S1; b=2".as_slice();
        let utf8 = "lang=中文;wgw_login_x=L ;  flag".as_bytes();
        let got = text_pairs([latin1, utf8]);
        let want: Vec<(String, String)> = [
            ("wgw_session", "S1"),
            ("b", "2"),
            ("lang", "中文"),
            ("wgw_login_x", "L"),
            ("flag", ""),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want, "the Latin-1 pair is skipped, the rest read");
        assert_eq!(
            pairs([b"x=\"q\"".as_slice()]),
            vec![(&b"x"[..], &b"\"q\""[..])]
        );
        assert_eq!(text_pairs([b"x=\"q\"".as_slice()])[0].1, "q");
        assert_eq!(
            text_pairs([b"a=b=c".as_slice()])[0],
            ("a".into(), "b=c".into())
        );
    }

    #[test]
    fn ours_never_go_upstream_and_the_rest_is_kept_byte_for_byte() {
        type Case<'a> = (&'a [&'a [u8]], Option<&'a str>, Option<&'a [u8]>);
        let cases: &[Case] = &[
            (
                &[b"a=1; wgw_session=S; b=2"],
                Some("wgw_session"),
                Some(b"a=1; b=2"),
            ),
            (&[b"wgw_session=S"], Some("wgw_session"), None),
            (
                &[b"a=caf\xe9; wgw_session=S"],
                Some("wgw_session"),
                Some(b"a=caf\xe9"),
            ),
            (
                &[b"wgw_login_abc=1", b"x=\xff\xfe; WGW_Session=S"],
                None,
                Some(b"x=\xff\xfe"),
            ),
            (
                &[b"crm_sid=1; my_session=s"],
                Some("my_session"),
                Some(b"crm_sid=1"),
            ),
            (&[b" wgw_session =S;;  keep=1 "], None, Some(b"keep=1")),
            (
                &[b"nowgw_x=1; x_wgw_=2"],
                None,
                Some(b"nowgw_x=1; x_wgw_=2"),
            ),
            (&[b""], None, None),
            // Login cookies behind https; another site's `__Host-` cookie is the CRM's.
            (
                &[b"__Host-wgw_login_abc=1; __Host-crm=2; __host-WGW_login_x=3"],
                None,
                Some(b"__Host-crm=2"),
            ),
        ];
        for (values, name, want) in cases {
            let got = without_ours(values.iter().copied(), *name);
            assert_eq!(got.as_deref(), *want, "{values:?}");
        }
    }
}
