//! The per-request lines (`access`, `qyapi`) written straight into bytes: the same shape as the
//! lines `tracing`'s formatter writes for every other event (text or JSON), without its field
//! visitors, `Debug` formatting or per-line allocation, and redacted field by field — only the
//! fields written with [`Line::client`] (a path, qyapi's app and api) can carry client text —
//! instead of scanning the whole line.

use std::cell::{Cell, RefCell};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::redact;
use crate::text::{decimal, digit};

/// One line being written; [`Line::finish`] hands it to the log.
pub struct Line {
    buf: Vec<u8>,
    json: bool,
    target: &'static str,
}

thread_local! {
    /// Each worker reuses one buffer for its lines.
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Line {
    /// A line at level INFO, with the timestamp written.
    pub(super) fn start(json: bool, target: &'static str, now: SystemTime) -> Line {
        let mut buf = BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
        buf.clear();
        if json {
            buf.extend_from_slice(b"{\"timestamp\":\"");
            timestamp(&mut buf, now);
            buf.extend_from_slice(b"\",\"level\":\"INFO\"");
        } else {
            timestamp(&mut buf, now);
            buf.extend_from_slice(b"  INFO");
        }
        Line { buf, json, target }
    }

    fn name(&mut self, name: &str) {
        if self.json {
            self.buf.extend_from_slice(b",\"");
            self.buf.extend_from_slice(name.as_bytes());
            self.buf.extend_from_slice(b"\":");
        } else {
            self.buf.push(b' ');
            self.buf.extend_from_slice(name.as_bytes());
            self.buf.push(b'=');
        }
    }

    /// A value known to hold no secret, written as text shows a displayed value: bare.
    pub fn plain(mut self, name: &str, value: &str) -> Line {
        self.name(name);
        self.string(value, false);
        self
    }

    /// A value of token characters only (a method, a request id: no control byte, quote or
    /// backslash), written as [`Line::plain`] writes it without looking for bytes to escape.
    pub fn token(mut self, name: &str, value: &str) -> Line {
        debug_assert!(
            value
                .bytes()
                .all(|b| b > 0x20 && b < 0x7f && b != b'"' && b != b'\\'),
            "not a token: {value:?}"
        );
        self.name(name);
        if self.json {
            self.buf.push(b'"');
            self.buf.extend_from_slice(value.as_bytes());
            self.buf.push(b'"');
        } else {
            self.buf.extend_from_slice(value.as_bytes());
        }
        self
    }

    /// A value written as text shows a string: in quotes, escaped.
    pub fn quoted(mut self, name: &str, value: &str) -> Line {
        self.name(name);
        self.string(value, true);
        self
    }

    /// Text from the client (a path): redacted and bounded, then written bare unless it holds
    /// a space (also one past ASCII: U+3000, U+00A0), a control character, a quote or a
    /// backslash; then in quotes, escaped, so that a client cannot write what reads as further
    /// fields of its line (`/x route="/sidebar/" userid="zhangsan"`).
    pub fn client(mut self, name: &str, value: &str) -> Line {
        let value = redact::redact(value);
        let value = redact::bound_field(&value);
        self.name(name);
        self.string(&value, crate::text::needs_quotes(&value));
        self
    }

    pub fn number(mut self, name: &str, value: u64) -> Line {
        self.name(name);
        decimal(&mut self.buf, value);
        self
    }

    /// Milliseconds with three decimals.
    pub fn millis(mut self, name: &str, d: Duration) -> Line {
        self.name(name);
        let micros = d.as_micros().min(u64::MAX as u128) as u64;
        decimal(&mut self.buf, micros / 1000);
        let frac = micros % 1000;
        self.buf.extend_from_slice(&[
            b'.',
            digit(frac / 100),
            digit(frac / 10 % 10),
            digit(frac % 10),
        ]);
        self
    }

    /// Ends the line and queues it.
    pub fn finish(mut self) {
        if self.json {
            self.buf.extend_from_slice(b",\"target\":\"");
            self.buf.extend_from_slice(self.target.as_bytes());
            self.buf.extend_from_slice(b"\"}\n");
        } else {
            self.buf.push(b'\n');
        }
        super::write_line(&self.buf);
        let buf = std::mem::take(&mut self.buf);
        if buf.capacity() <= 16 * 1024 {
            BUF.with(|b| *b.borrow_mut() = buf);
        }
    }

    fn string(&mut self, s: &str, quoted: bool) {
        crate::text::escaped(&mut self.buf, s, quoted || self.json);
    }
}

/// RFC 3339 in UTC with microseconds, as `tracing`'s formatter writes it:
/// `2026-11-30T18:33:43.427972Z`. The date and time up to the second are worked out once per
/// second per thread; a line within the same second copies them.
pub fn timestamp(buf: &mut Vec<u8>, now: SystemTime) {
    thread_local! {
        static SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (cached, mut text) = SECOND.get();
    if cached != secs {
        text = to_second(secs);
        SECOND.set((secs, text));
    }
    buf.extend_from_slice(&text);
    let us = u64::from(since.subsec_micros());
    let mut micros = [0; 7];
    for (i, p) in [100_000, 10_000, 1_000, 100, 10, 1].into_iter().enumerate() {
        micros[i] = digit(us / p);
    }
    micros[6] = b'Z';
    buf.extend_from_slice(&micros);
}

/// `YYYY-MM-DDTHH:MM:SS.` of a Unix second.
fn to_second(secs: u64) -> [u8; 20] {
    let (y, m, d) = nginx_compat::eval::civil_from_days((secs / 86_400) as i64);
    let (m, d) = (u64::from(m), u64::from(d));
    let s = secs % 86_400;
    let y = y.clamp(0, 9999) as u64;
    let (h, min, sec) = (s / 3600, s / 60 % 60, s % 60);
    [
        digit(y / 1000),
        digit(y / 100),
        digit(y / 10),
        digit(y),
        b'-',
        digit(m / 10),
        digit(m),
        b'-',
        digit(d / 10),
        digit(d),
        b'T',
        digit(h / 10),
        digit(h),
        b':',
        digit(min / 10),
        digit(min),
        b':',
        digit(sec / 10),
        digit(sec),
        b'.',
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(line: Line) -> String {
        String::from_utf8(line.buf).unwrap()
    }

    #[test]
    fn timestamps_match_the_calendar() {
        let mut b = Vec::new();
        timestamp(
            &mut b,
            UNIX_EPOCH + Duration::from_micros(1_796_063_623_427_972),
        );
        assert_eq!(String::from_utf8(b).unwrap(), "2026-11-30T18:33:43.427972Z");
        // Calendar edges, then within one second only the microseconds change and the next
        // second is worked out anew (each thread keeps the text up to the second).
        for (micros, want) in [
            (0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400_000_000, "2000-02-29T00:00:00.000000Z"),
            (4_107_542_399_000_000, "2100-02-28T23:59:59.000000Z"),
            (1_709_251_199_000_000, "2024-02-29T23:59:59.000000Z"),
            (1_796_063_623_000_001, "2026-11-30T18:33:43.000001Z"),
            (1_796_063_623_999_999, "2026-11-30T18:33:43.999999Z"),
            (1_796_063_624_000_000, "2026-11-30T18:33:44.000000Z"),
            (1_796_063_623_500_000, "2026-11-30T18:33:43.500000Z"),
        ] {
            let mut b = Vec::new();
            timestamp(&mut b, UNIX_EPOCH + Duration::from_micros(micros));
            assert_eq!(String::from_utf8(b).unwrap(), want);
        }
    }

    #[test]
    fn text_lines_look_like_the_other_events() {
        let t = UNIX_EPOCH + Duration::from_secs(0);
        let l = Line::start(false, "access", t)
            .token("method", "GET")
            .client("path", "/a b/access_token=SECRET\n")
            .quoted("route", "r\"1")
            .number("status", 200)
            .millis("duration_ms", Duration::from_micros(12_345))
            .millis("d2", Duration::from_micros(7));
        assert_eq!(
            text(l),
            "1970-01-01T00:00:00.000000Z  INFO method=GET path=\"/a b/access_token=***\\n\" \
             route=\"r\\\"1\" status=200 duration_ms=12.345 d2=0.007"
        );
    }

    #[test]
    fn a_path_cannot_write_fields_of_its_own() {
        let t = UNIX_EPOCH + Duration::from_secs(0);
        let l = Line::start(false, "access", t)
            .client(
                "path",
                "/reports route=\"/sidebar/\" userid=\"zhangsan\" x=",
            )
            .quoted("route", "/");
        assert_eq!(
            text(l),
            "1970-01-01T00:00:00.000000Z  INFO \
             path=\"/reports route=\\\"/sidebar/\\\" userid=\\\"zhangsan\\\" x=\" route=\"/\""
        );
        let l = Line::start(false, "access", t).client("path", "/plain/path=1");
        assert_eq!(
            text(l),
            "1970-01-01T00:00:00.000000Z  INFO path=/plain/path=1"
        );
        // Nor with a space or a line's end past ASCII.
        let l = Line::start(false, "access", t).client(
            "path",
            "/pub\u{3000}status=200\u{a0}userid=zhangsan\u{2028}\u{85}x",
        );
        assert_eq!(
            text(l),
            "1970-01-01T00:00:00.000000Z  INFO \
             path=\"/pub\u{3000}status=200\u{a0}userid=zhangsan\\u2028\\u0085x\""
        );
        let l = Line::start(false, "access", t).client("path", "/客户/详情");
        assert_eq!(text(l), "1970-01-01T00:00:00.000000Z  INFO path=/客户/详情");
    }

    #[test]
    fn json_lines_parse_and_keep_every_field() {
        let t = UNIX_EPOCH + Duration::from_secs(0);
        let mut l = Line::start(true, "access", t)
            .token("method", "GET")
            .token("request_id", "a-B_1.2:3")
            .client("path", "/x\"\\\u{1}y")
            .quoted("userid", "张三")
            .number("status", 404)
            .millis("duration_ms", Duration::from_micros(1_500));
        l.buf.extend_from_slice(b",\"target\":\"access\"}");
        let v: serde_json::Value = serde_json::from_slice(&l.buf).unwrap();
        assert_eq!(v["path"], "/x\"\\\u{1}y");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["request_id"], "a-B_1.2:3");
        assert_eq!(v["userid"], "张三");
        assert_eq!(v["status"], 404);
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn a_huge_path_is_cut_and_says_so() {
        let l = Line::start(false, "access", UNIX_EPOCH).client("path", &"a".repeat(200_000));
        let s = text(l);
        assert!(s.len() < 2 * redact::FIELD_MAX, "{}", s.len());
        assert!(s.contains("bytes cut]"));
    }
}
