//! `ngx_http_headers_filter_module`: `expires` and `add_header` on the answer, for the
//! statuses nginx considers safe (or any status with `always`).

use super::State;
use crate::parse::model::{Expires, Server};
use crate::vars::Ctx;
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
    pub fn response_headers(
        &self,
        req: &Request,
        state: &State,
        status: u16,
        last_modified: Option<i64>,
        now: i64,
    ) -> Vec<HeaderEdit> {
        let s = self.settings_for(state);
        let safe = safe_status(status);
        let mut out = Vec::new();
        if safe && s.expires != Expires::Off {
            let (expires, cc) = expires(s.expires, last_modified, now);
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
        if s.add_headers.is_empty() {
            return out;
        }
        let cx = Ctx {
            req,
            server: self,
            st: state.clone(),
            proxy: None,
        };
        for h in s.add_headers.iter() {
            if !safe && !h.always {
                continue;
            }
            let value = h.value.expand(&cx, false);
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

/// `ngx_http_set_expires`: the `Expires` and `Cache-Control` values.
fn expires(e: Expires, last_modified: Option<i64>, now: i64) -> (String, String) {
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
        Expires::Access(t) => (now + t, t, t < 0),
        Expires::Modified(t) => match last_modified {
            Some(lm) => (lm + t, lm + t - now, t < 0),
            None => (now + t, t, t < 0),
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
    fn expires_values() {
        let now = 1_700_000_000;
        assert_eq!(
            expires(Expires::Access(3600), None, now),
            (http_date(now + 3600), "max-age=3600".into())
        );
        assert_eq!(
            expires(Expires::Access(-1), None, now),
            (http_date(now - 1), "no-cache".into())
        );
        assert_eq!(
            expires(Expires::Modified(60), Some(now - 100), now),
            (http_date(now - 40), "no-cache".into())
        );
        assert_eq!(
            expires(Expires::Access(0), None, now),
            (http_date(now), "max-age=0".into())
        );
    }
}
