//! `autoindex` (`ngx_http_autoindex_module`): a directory's listing in nginx's html, json,
//! jsonp or xml. The caller reads the directory; this sorts the entries and writes the body
//! byte for byte as nginx does.

/// `autoindex_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
    Jsonp,
    Xml,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "html" => Format::Html,
            "json" => Format::Json,
            "jsonp" => Format::Jsonp,
            "xml" => Format::Xml,
            _ => return None,
        })
    }

    /// The answer's `Content-Type` (the xml one is labelled `utf-8` as well, as nginx does).
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html",
            Format::Json => "application/json",
            Format::Jsonp => "application/javascript",
            Format::Xml => "text/xml; charset=utf-8",
        }
    }
}

/// One directory entry (names starting with `.` are left out by the caller, as nginx does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub dir: bool,
    pub file: bool,
    /// Seconds since the epoch.
    pub mtime: i64,
    pub size: u64,
}

/// How the listing is written.
pub struct Options<'a> {
    pub format: Format,
    /// The request's URI (`$uri`), for the html title.
    pub uri: &'a [u8],
    /// The answer's charset is `utf-8`: names are cut by characters, not bytes (html).
    pub utf8: bool,
    /// `autoindex_exact_size` (html).
    pub exact_size: bool,
    /// Seconds east of UTC the html dates are written in: `autoindex_localtime on` gives the
    /// local offset, off gives 0.
    pub utc_offset: i64,
    /// The `callback` argument of a jsonp listing (already checked by [`jsonp_callback`]).
    pub callback: Option<&'a [u8]>,
}

/// `ngx_http_autoindex_cmp_entries`: directories first, then by name, byte by byte.
pub fn sort(entries: &mut [Entry]) {
    entries.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
}

/// A jsonp `callback` nginx refuses (400).
#[derive(Debug, PartialEq, Eq)]
pub struct BadCallback;

/// `ngx_http_autoindex_jsonp_callback`: `Ok(None)` without a `callback` argument (the listing
/// is then json), `Err` for one nginx refuses (400): longer than 128 bytes, or with a byte
/// other than a letter, a digit, `_` or `.`.
pub fn jsonp_callback(args: &[u8]) -> Result<Option<&[u8]>, BadCallback> {
    let Some(cb) = crate::vars::arg_value(args, b"callback") else {
        return Ok(None);
    };
    if cb.len() > 128
        || !cb
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
    {
        return Err(BadCallback);
    }
    Ok(Some(cb))
}

/// The listing's body; `entries` sorted by [`sort`].
pub fn render(entries: &[Entry], o: &Options<'_>) -> Vec<u8> {
    match o.format {
        Format::Html => html(entries, o),
        Format::Json => json(entries, None),
        Format::Jsonp => json(entries, o.callback),
        Format::Xml => xml(entries),
    }
}

const NAME_LEN: usize = 50;
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn html(entries: &[Entry], o: &Options<'_>) -> Vec<u8> {
    let mut b = Vec::with_capacity(256 + entries.len() * 120);
    b.extend_from_slice(b"<html>\r\n<head><title>Index of ");
    escape_html(o.uri, &mut b);
    b.extend_from_slice(b"</title></head>\r\n<body>\r\n<h1>Index of ");
    escape_html(o.uri, &mut b);
    b.extend_from_slice(b"</h1><hr><pre><a href=\"../\">../</a>\r\n");
    for e in entries {
        b.extend_from_slice(b"<a href=\"");
        escape_uri_component(&e.name, &mut b);
        if e.dir {
            b.push(b'/');
        }
        b.extend_from_slice(b"\">");
        let len = if o.utf8 {
            utf8_length(&e.name)
        } else {
            e.name.len()
        };
        // Where "..&gt;" goes when the name is cut.
        let cut_at;
        if e.name.len() != len {
            let chars = if len > NAME_LEN {
                NAME_LEN - 3
            } else {
                NAME_LEN
            };
            escape_html(utf8_prefix(&e.name, chars), &mut b);
            cut_at = b.len();
        } else if e
            .name
            .iter()
            .any(|c| matches!(c, b'<' | b'>' | b'&' | b'"'))
        {
            let n = if len > NAME_LEN { NAME_LEN - 3 } else { len };
            escape_html(&e.name[..n], &mut b);
            cut_at = b.len();
        } else {
            b.extend_from_slice(&e.name[..len.min(NAME_LEN)]);
            cut_at = b.len().saturating_sub(3);
        }
        if len > NAME_LEN {
            b.truncate(cut_at);
            b.extend_from_slice(b"..&gt;</a>");
        } else {
            let mut len = len;
            if e.dir && NAME_LEN > len {
                b.push(b'/');
                len += 1;
            }
            b.extend_from_slice(b"</a>");
            b.resize(b.len() + NAME_LEN.saturating_sub(len), b' ');
        }
        b.push(b' ');
        let t = civil(e.mtime + o.utc_offset);
        b.extend_from_slice(
            format!(
                "{:02}-{}-{} {:02}:{:02} ",
                t.day,
                MONTHS[t.month as usize - 1],
                t.year,
                t.hour,
                t.min
            )
            .as_bytes(),
        );
        if o.exact_size {
            if e.dir {
                b.extend_from_slice(b"                  -");
            } else {
                b.extend_from_slice(format!("{:>19}", e.size).as_bytes());
            }
        } else if e.dir {
            b.extend_from_slice(b"      -");
        } else {
            b.extend_from_slice(human_size(e.size).as_bytes());
        }
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"</pre><hr></body>\r\n</html>\r\n");
    b
}

/// nginx's sizes with `autoindex_exact_size off`: K, M and G rounded half up.
fn human_size(length: u64) -> String {
    const G: u64 = 1024 * 1024 * 1024;
    const M: u64 = 1024 * 1024;
    let (size, scale) = if length > G - 1 {
        (length / G + u64::from(length % G > G / 2 - 1), Some('G'))
    } else if length > M - 1 {
        (length / M + u64::from(length % M > M / 2 - 1), Some('M'))
    } else if length > 9999 {
        (length / 1024 + u64::from(length % 1024 > 511), Some('K'))
    } else {
        (length, None)
    };
    match scale {
        Some(c) => format!("{size:>6}{c}"),
        None => format!(" {size:>6}"),
    }
}

fn json(entries: &[Entry], callback: Option<&[u8]>) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + entries.len() * 100);
    if let Some(cb) = callback {
        b.extend_from_slice(b"/* callback */\r\n");
        b.extend_from_slice(cb);
        b.push(b'(');
    }
    b.push(b'[');
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        b.extend_from_slice(b"\r\n{ \"name\":\"");
        crate::log::escape_json(&e.name, &mut b);
        b.extend_from_slice(b"\", \"type\":\"");
        b.extend_from_slice(kind(e).as_bytes());
        b.extend_from_slice(b"\", \"mtime\":\"");
        b.extend_from_slice(http_time(e.mtime).as_bytes());
        if e.file {
            b.extend_from_slice(format!("\", \"size\":{}", e.size).as_bytes());
        } else {
            b.push(b'"');
        }
        b.extend_from_slice(b" }");
    }
    b.extend_from_slice(b"\r\n]");
    if callback.is_some() {
        b.extend_from_slice(b");");
    }
    b
}

fn xml(entries: &[Entry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + entries.len() * 80);
    b.extend_from_slice(b"<?xml version=\"1.0\"?>\r\n<list>\r\n");
    for e in entries {
        let k = kind(e);
        let t = civil(e.mtime);
        b.extend_from_slice(
            format!(
                "<{k} mtime=\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year, t.month, t.day, t.hour, t.min, t.sec
            )
            .as_bytes(),
        );
        if e.file {
            b.extend_from_slice(format!("\" size=\"{}", e.size).as_bytes());
        }
        b.extend_from_slice(b"\">");
        escape_html(&e.name, &mut b);
        b.extend_from_slice(format!("</{k}>\r\n").as_bytes());
    }
    b.extend_from_slice(b"</list>\r\n");
    b
}

fn kind(e: &Entry) -> &'static str {
    if e.dir {
        "directory"
    } else if e.file {
        "file"
    } else {
        "other"
    }
}

/// `ngx_escape_html`.
fn escape_html(s: &[u8], out: &mut Vec<u8>) {
    for &c in s {
        match c {
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'&' => out.extend_from_slice(b"&amp;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            c => out.push(c),
        }
    }
}

/// `ngx_escape_uri(..., NGX_ESCAPE_URI_COMPONENT)`: everything but letters, digits and
/// `-._~` as `%XX`.
fn escape_uri_component(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in s {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c);
        } else {
            out.extend_from_slice(&[b'%', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        }
    }
}

/// `ngx_utf8_length`: characters, or the bytes when the name is not valid UTF-8.
fn utf8_length(s: &[u8]) -> usize {
    std::str::from_utf8(s).map_or(s.len(), |t| t.chars().count())
}

/// `ngx_utf8_cpystrn(dst, src, n + 1, ...)`: the first `n` characters (all of a shorter name).
fn utf8_prefix(s: &[u8], n: usize) -> &[u8] {
    match std::str::from_utf8(s) {
        Ok(t) => t.char_indices().nth(n).map_or(s, |(i, _)| &s[..i]),
        Err(_) => &s[..n.min(s.len())],
    }
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
}

/// `ngx_gmtime`: seconds since the epoch as a UTC date and time.
fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        min: (rem % 3600 / 60) as u32,
        sec: (rem % 60) as u32,
    }
}

/// `ngx_http_time`: `Wed, 02 Dec 2026 13:49:22 GMT`.
fn http_time(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let t = civil(secs);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[secs.div_euclid(86_400).rem_euclid(7) as usize],
        t.day,
        MONTHS[t.month as usize - 1],
        t.year,
        t.hour,
        t.min,
        t.sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, dir: bool, size: u64) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            dir,
            file: !dir,
            mtime: 1_796_219_362,
            size,
        }
    }

    fn opts(format: Format) -> Options<'static> {
        Options {
            format,
            uri: b"/files/",
            utf8: false,
            exact_size: true,
            utc_offset: 0,
            callback: None,
        }
    }

    #[test]
    fn html_is_nginx_s() {
        let mut e = vec![
            entry("b.txt", false, 12),
            entry("sub", true, 4096),
            entry("a&b.txt", false, 3),
        ];
        sort(&mut e);
        let body = String::from_utf8(render(&e, &opts(Format::Html))).unwrap();
        let line = |href: &str, text: &str, width: usize, size: &str| {
            format!(
                "<a href=\"{href}\">{text}</a>{} 02-Dec-2026 13:49 {size:>19}\r\n",
                " ".repeat(50 - width)
            )
        };
        let want = format!(
            "<html>\r\n<head><title>Index of /files/</title></head>\r\n<body>\r\n\
             <h1>Index of /files/</h1><hr><pre><a href=\"../\">../</a>\r\n{}{}{}\
             </pre><hr></body>\r\n</html>\r\n",
            line("sub/", "sub/", 4, "-"),
            line("a%26b.txt", "a&amp;b.txt", 7, "3"),
            line("b.txt", "b.txt", 5, "12"),
        );
        assert_eq!(body, want);
    }

    #[test]
    fn long_names_are_cut_as_nginx_cuts_them() {
        let long = "x".repeat(60);
        let e = vec![entry(&long, false, 1)];
        let body = String::from_utf8(render(&e, &opts(Format::Html))).unwrap();
        assert!(
            body.contains(&format!("\">{}..&gt;</a> 02-Dec", "x".repeat(47))),
            "{body}"
        );
        let name = "客户".repeat(30);
        let e = vec![entry(&name, false, 1)];
        let mut o = opts(Format::Html);
        o.utf8 = true;
        let body = String::from_utf8(render(&e, &o)).unwrap();
        assert!(
            body.contains(&format!("\">{}..&gt;</a> 02-Dec", "客户".repeat(23) + "客")),
            "{body}"
        );
    }

    #[test]
    fn sizes_and_other_formats() {
        assert_eq!(human_size(9999), "   9999");
        assert_eq!(human_size(10_000), "    10K");
        assert_eq!(human_size(1024 * 1024 * 3 / 2), "     2M");
        let e = vec![entry("d", true, 0), entry("f\"", false, 7)];
        assert_eq!(
            String::from_utf8(render(&e, &opts(Format::Json))).unwrap(),
            "[\r\n{ \"name\":\"d\", \"type\":\"directory\", \"mtime\":\"Wed, 02 Dec 2026 13:49:22 GMT\" },\
             \r\n{ \"name\":\"f\\\"\", \"type\":\"file\", \"mtime\":\"Wed, 02 Dec 2026 13:49:22 GMT\", \"size\":7 }\r\n]"
        );
        assert_eq!(
            String::from_utf8(render(&e, &opts(Format::Xml))).unwrap(),
            "<?xml version=\"1.0\"?>\r\n<list>\r\n\
             <directory mtime=\"2026-12-02T13:49:22Z\">d</directory>\r\n\
             <file mtime=\"2026-12-02T13:49:22Z\" size=\"7\">f&quot;</file>\r\n</list>\r\n"
        );
        assert_eq!(
            jsonp_callback(b"a=1&callback=cb.x_1"),
            Ok(Some(&b"cb.x_1"[..]))
        );
        assert_eq!(jsonp_callback(b"a=1"), Ok(None));
        assert!(jsonp_callback(b"callback=alert(1)").is_err());
    }
}
