//! `ngx_http_headers_filter_module`: `expires` and `add_header` on the answer, for the
//! statuses nginx considers safe (or any status with `always`); and
//! `ngx_http_charset_filter_module`'s label on the answer's `Content-Type`.

use super::State;
use crate::parse::model::{Expires, Server, Settings};
use crate::parse::parse_expires;
use crate::vars::{Answer, Ctx};
use crate::Request;

/// How a header of [`Server::response_headers`] is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderMode {
    /// Add a line (keeping any existing ones).
    Append,
    /// Replace every existing line of that name; an empty value removes them.
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderEdit {
    pub name: String,
    pub value: Vec<u8>,
    pub mode: HeaderMode,
}

/// The answer as the headers filter has changed it so far: `expires` sets `Expires` and
/// `Cache-Control` before `add_header` reads the answer's variables.
struct Filtered<'a> {
    answer: &'a dyn Answer,
    expired: std::cell::RefCell<Option<(String, String)>>,
}

impl Answer for Filtered<'_> {
    fn var(&self, name: &str) -> Option<Vec<u8>> {
        if let Some((expires, cc)) = &*self.expired.borrow() {
            match name {
                "sent_http_expires" => return Some(expires.as_bytes().to_vec()),
                "sent_http_cache_control" => return Some(cc.as_bytes().to_vec()),
                _ => {}
            }
        }
        self.answer.var(name)
    }
}

/// The statuses `add_header` (without `always`) and `expires` apply to.
pub fn safe_status(status: u16) -> bool {
    matches!(
        status,
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

impl Server {
    /// The header edits nginx's headers filter makes to an answer with `status`, in order,
    /// at the location `state` names. `last_modified` is the answer's `Last-Modified` (for
    /// `expires modified`), `now` the time of the answer; both in seconds since the epoch.
    /// `answer` gives the answer's variables (`$sent_http_*`, `$upstream_addr`...).
    pub fn response_headers(
        &self,
        req: &Request,
        state: &State,
        status: u16,
        last_modified: Option<i64>,
        now: i64,
        answer: &dyn Answer,
    ) -> Vec<HeaderEdit> {
        let s = self.settings_for(state);
        let safe = safe_status(status);
        let mut out = Vec::new();
        let expiring = safe && (s.expires != Expires::Off || s.expires_value.is_some());
        if !expiring && !s.add_headers.iter().any(|h| safe || h.always) {
            return out;
        }
        let filtered = Filtered {
            answer,
            expired: Default::default(),
        };
        // Made only for a value with variables: a plain `expires 30d` copies no state.
        let made = std::cell::OnceCell::new();
        let cx = || {
            made.get_or_init(|| Ctx {
                req,
                server: self,
                st: state.clone(),
                proxy: None,
                answer: Some(&filtered),
            })
        };
        // `ngx_http_set_expires`: a value read now that is no `expires` value, or `off`,
        // sets nothing.
        let set = match &s.expires_value {
            Some(v) if expiring => {
                let value = v.value.expand(cx(), false);
                std::str::from_utf8(&value)
                    .ok()
                    .and_then(|t| parse_expires(t, v.modified).ok())
                    .unwrap_or(Expires::Off)
            }
            _ => s.expires,
        };
        if expiring && set != Expires::Off {
            // nginx's "in the past" is the written value's sign; a value read from a variable
            // has none (only a negative `max-age` then says `no-cache`).
            let literal = s.expires_value.is_none();
            let (expires, cc) = expires(set, last_modified, now, literal);
            *filtered.expired.borrow_mut() = Some((expires.clone(), cc.clone()));
            out.push(HeaderEdit {
                name: "Expires".into(),
                value: expires.into_bytes(),
                mode: HeaderMode::Replace,
            });
            out.push(HeaderEdit {
                name: "Cache-Control".into(),
                value: cc.into_bytes(),
                mode: HeaderMode::Replace,
            });
        }
        for h in s.add_headers.iter() {
            if !safe && !h.always {
                continue;
            }
            let value = h.value.expand(cx(), false);
            let lower = h.name.to_ascii_lowercase();
            let mode = match lower.as_str() {
                "last-modified" | "etag" => HeaderMode::Replace,
                _ if value.is_empty() => continue,
                _ => HeaderMode::Append,
            };
            out.push(HeaderEdit {
                name: h.name.clone(),
                value,
                mode,
            });
        }
        out
    }
}

impl Server {
    /// `ngx_http_charset_header_filter` (which never recodes here: a configuration that would
    /// need it does not load): the `Content-Type` nginx sends instead of `content_type` for an
    /// answer with `status` at the location `state` names, or None when it sends it as it is.
    /// `upstream`: the type is a proxied answer's, whose `charset=` parameter nginx reads
    /// (`ngx_http_upstream_copy_content_type`); the types of nginx's own answers are taken
    /// whole. nginx runs this filter after the headers filter, on the answer's own
    /// `Content-Type` (not on one `add_header` adds).
    pub fn charset_content_type(
        &self,
        state: &State,
        status: u16,
        content_type: &[u8],
        upstream: bool,
    ) -> Option<Vec<u8>> {
        charset(self.settings_for(state), status, content_type, upstream)
    }
}

fn charset(s: &Settings, status: u16, ct: &[u8], upstream: bool) -> Option<Vec<u8>> {
    let dst = s.charset.as_deref()?;
    if ct.is_empty() {
        return None;
    }
    let (type_len, named) = if upstream {
        named_charset(ct)
    } else {
        (ct.len(), None)
    };
    let labelled = match named {
        // `charset=` with nothing after it: nginx labels the type without it, which its header
        // filter then does not write; the answer goes out as it came.
        Some([]) => return None,
        // ngx_http_destination_charset: an answer that names its charset keeps it, unless
        // `override_charset`; then only the same charset is relabelled (another would take a
        // `charset_map`, and nginx sends the answer as it came).
        Some(named) => {
            if !s.override_charset || !named.eq_ignore_ascii_case(dst.as_bytes()) {
                return None;
            }
            &ct[..type_len]
        }
        None => {
            let lower = ct.to_ascii_lowercase();
            if !s
                .charset_types
                .iter()
                .any(|t| t == "*" || t.as_bytes() == lower.as_slice())
            {
                return None;
            }
            ct
        }
    };
    let mut out = labelled.to_vec();
    // ngx_http_set_charset: never on a 301 or 302 ("NN 4.x use this charset instead of the
    // next page charset").
    if !matches!(status, 301 | 302) {
        out.extend_from_slice(b"; charset=");
        out.extend_from_slice(dst.as_bytes());
    }
    (out != ct).then_some(out)
}

/// `ngx_http_upstream_copy_content_type`: the length of the type before a `charset=`
/// parameter, and that parameter's value (to the end of the header, one pair of quotes
/// removed); the whole length and None without one.
fn named_charset(v: &[u8]) -> (usize, Option<&[u8]>) {
    let mut p = 0;
    while p < v.len() {
        if v[p] == b';' {
            let last = p;
            p += 1;
            while p < v.len() && v[p] == b' ' {
                p += 1;
            }
            if p == v.len() {
                return (v.len(), None);
            }
            if v[p..].len() >= 8 && v[p..p + 8].eq_ignore_ascii_case(b"charset=") {
                let (mut start, mut end) = (p + 8, v.len());
                if v.get(start) == Some(&b'"') {
                    start += 1;
                }
                if end > start && v[end - 1] == b'"' {
                    end -= 1;
                }
                return (last, Some(&v[start.min(end)..end]));
            }
            // nginx's loop steps over the byte it compared, whatever it is.
        }
        p += 1;
    }
    (v.len(), None)
}

/// `ngx_http_set_expires`: the `Expires` and `Cache-Control` values.
fn expires(e: Expires, last_modified: Option<i64>, now: i64, literal: bool) -> (String, String) {
    let (time, max_age, negative) = match e {
        Expires::Epoch => return ("Thu, 01 Jan 1970 00:00:01 GMT".into(), "no-cache".into()),
        Expires::Max => {
            return (
                "Thu, 31 Dec 2037 23:55:55 GMT".into(),
                "max-age=315360000".into(),
            )
        }
        Expires::Off => unreachable!("checked by the caller"),
        Expires::Access(0) | Expires::Modified(0) => {
            return (http_date(now), "max-age=0".into());
        }
        Expires::Daily(t) => {
            // ngx_next_time: the next time of day `t` after now (UTC here).
            let day = now - now.rem_euclid(86400);
            let mut at = day + t;
            if at <= now {
                at += 86400;
            }
            (at, at - now, false)
        }
        // A value read from a variable may be as large as `i64` holds: added as nginx's C
        // adds it (wrapping, then written as the epoch: `ngx_gmtime` takes no time before it).
        Expires::Access(t) => (now.wrapping_add(t), t, literal && t < 0),
        Expires::Modified(t) => match last_modified {
            Some(lm) => {
                let at = lm.wrapping_add(t);
                (at, at.wrapping_sub(now), literal && t < 0)
            }
            None => (now.wrapping_add(t), t, literal && t < 0),
        },
    };
    let cc = if negative || max_age < 0 {
        "no-cache".to_owned()
    } else {
        format!("max-age={max_age}")
    };
    (http_date(time), cc)
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

/// RFC 1123 date as `ngx_http_time` writes it.
pub fn http_date(secs: i64) -> String {
    // `ngx_gmtime`'s range: the epoch to the last second of 9999.
    let secs = secs.clamp(0, 253_402_300_799);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let (y, m, d) = civil_from_days(days);
    format!(
        "{weekday}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_like_ngx_http_time() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1), "Thu, 01 Jan 1970 00:00:01 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
    }

    #[test]
    fn a_charset_parameter_as_ngx_http_upstream_copy_content_type_reads_it() {
        let cases: &[(&str, usize, Option<&str>)] = &[
            ("text/html", 9, None),
            ("text/html; charset=utf-8", 9, Some("utf-8")),
            ("text/html;charset=\"GBK\"", 9, Some("GBK")),
            ("text/html; q=1; CHARSET=x; y=z", 14, Some("x; y=z")),
            ("text/html;   ", 13, None),
            ("text/html; charset=", 9, Some("")),
            ("text/html; ;charset=x", 21, None),
            ("text/html; charset=\"", 9, Some("")),
        ];
        for (v, len, named) in cases {
            let (l, n) = named_charset(v.as_bytes());
            assert_eq!(
                (l, n.map(|n| std::str::from_utf8(n).unwrap())),
                (*len, *named),
                "{v}"
            );
        }
    }

    #[test]
    fn the_charset_label_as_ngx_http_charset_header_filter_writes_it() {
        let mut s = Settings::default();
        let label = |s: &Settings, status, ct: &str, up| {
            charset(s, status, ct.as_bytes(), up).map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(label(&s, 200, "text/html", false), None, "off by default");
        s.charset = Some("UTF-8".into());
        assert_eq!(
            label(&s, 200, "text/html", false).as_deref(),
            Some("text/html; charset=UTF-8")
        );
        assert_eq!(
            label(&s, 404, "Text/Plain", true).as_deref(),
            Some("Text/Plain; charset=UTF-8")
        );
        assert_eq!(
            label(&s, 200, "text/css", false),
            None,
            "not a charset type"
        );
        assert_eq!(
            label(&s, 200, "text/html; q=1", true),
            None,
            "the whole value is the type"
        );
        assert_eq!(label(&s, 301, "text/html", false), None);
        assert_eq!(label(&s, 200, "", false), None);
        assert_eq!(
            label(&s, 200, "text/html; charset=utf-8", true),
            None,
            "named"
        );
        assert_eq!(label(&s, 200, "text/html; charset=", true), None);
        s.override_charset = true;
        assert_eq!(
            label(&s, 200, "text/html; charset=\"utf-8\"", true).as_deref(),
            Some("text/html; charset=UTF-8")
        );
        assert_eq!(
            label(&s, 302, "text/html; charset=utf-8", true).as_deref(),
            Some("text/html")
        );
        assert_eq!(
            label(&s, 200, "text/html; charset=gbk", true),
            None,
            "no map"
        );
        assert_eq!(
            label(&s, 200, "image/png; charset=utf-8", true).as_deref(),
            Some("image/png; charset=UTF-8"),
            "a named charset is relabelled whatever the type"
        );
        s.charset_types = std::sync::Arc::from(vec!["*".to_owned()]);
        assert_eq!(
            label(&s, 200, "image/png", true).as_deref(),
            Some("image/png; charset=UTF-8")
        );
        // nginx's own answers' types are never read for a parameter.
        assert_eq!(
            label(&s, 200, "text/html; charset=UTF-8", false).as_deref(),
            Some("text/html; charset=UTF-8; charset=UTF-8")
        );
    }

    /// What `nginx -t` says of the charset directives, and the one spelling of a charset.
    #[test]
    fn charset_directives_load_as_nginx_loads_them() {
        use crate::Config;
        // The first spelling in the file, wherever it is, names the charset everywhere.
        let cfg = Config::parse(
            "x.conf",
            "charset_types text/css; server { location /a { charset utf-8; } charset UTF-8; \
             source_charset Utf-8; location /b { charset_types *; } \
             location /c { if ($arg_x) { charset off; override_charset on; } } }",
        )
        .unwrap();
        assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
        let s = &cfg.servers[0].root.settings;
        assert_eq!(s.charset.as_deref(), Some("utf-8"));
        assert_eq!(s.source_charset.as_deref(), Some("utf-8"));
        assert_eq!(&s.charset_types[..], ["text/html", "text/css"]);
        for (body, want) in [
            (
                "charset a;\n charset b;",
                "x.conf:2:2: \"charset\" directive is duplicate",
            ),
            (
                "override_charset on;\n override_charset on;",
                "x.conf:2:2: \"override_charset\" directive is duplicate",
            ),
            (
                "\n charset utf-8; source_charset koi8-r;",
                "x.conf:2:2: no \"charset_map\" between the charsets \"koi8-r\" and \
                 \"utf-8\": the gateway does not recode answers",
            ),
            (
                "source_charset koi8-r; location / {\n charset utf-8; }",
                "x.conf:2:2: no \"charset_map\" between the charsets \"koi8-r\" and \
                 \"utf-8\": the gateway does not recode answers",
            ),
            (
                "location / { if ($a) {\n charset_types a/b; } }",
                "x.conf:2:2: \"charset_types\" directive is not allowed here",
            ),
            (
                "\n charset a b;",
                "x.conf:2:2: invalid number of arguments in \"charset\" directive",
            ),
            (
                "\n override_charset yes;",
                "x.conf:2:2: invalid value \"yes\" in \"override_charset\" directive, it must \
                 be \"on\" or \"off\"",
            ),
        ] {
            let e = Config::parse("x.conf", &format!("server {{ {body} }}")).unwrap_err();
            assert_eq!(e.to_string(), want, "{body}");
        }
        // A charset from a variable is reported, never taken as a name.
        let cfg = Config::parse("x.conf", "server { charset $c; }").unwrap();
        assert_eq!(cfg.unsupported.len(), 1, "{:?}", cfg.unsupported);
        assert_eq!(cfg.servers[0].root.settings.charset, None);
    }

    #[test]
    fn expires_values() {
        let now = 1_700_000_000;
        assert_eq!(
            expires(Expires::Access(3600), None, now, true),
            (http_date(now + 3600), "max-age=3600".into())
        );
        assert_eq!(
            expires(Expires::Access(-1), None, now, true),
            (http_date(now - 1), "no-cache".into())
        );
        assert_eq!(
            expires(Expires::Modified(60), Some(now - 100), now, true),
            (http_date(now - 40), "no-cache".into())
        );
        assert_eq!(
            expires(Expires::Access(0), None, now, true),
            (http_date(now), "max-age=0".into())
        );
        // Read from a variable: as large as a number goes, never past 9999 nor before 1970,
        // and past what a time holds, the epoch (nginx's addition wraps).
        assert_eq!(
            expires(Expires::Access(i64::MAX), None, now, false),
            (
                "Thu, 01 Jan 1970 00:00:00 GMT".into(),
                format!("max-age={}", i64::MAX)
            )
        );
        assert_eq!(
            expires(Expires::Access(-i64::MAX), None, now, false).0,
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(
            expires(Expires::Access(9_223_372_036_828_800), None, now, false).0,
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
        // `expires modified -1h` before a Last-Modified two hours ahead: no-cache as written,
        // the max-age left as read from a variable (nginx asks the written value's sign).
        let lm = Some(now + 7200);
        assert_eq!(
            expires(Expires::Modified(-3600), lm, now, true).1,
            "no-cache"
        );
        assert_eq!(
            expires(Expires::Modified(-3600), lm, now, false).1,
            "max-age=3600"
        );
    }
}
