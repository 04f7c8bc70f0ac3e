//! Scalar values of the config file: `${NAME}` environment references and durations.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer};

/// A string value after `${NAME}` expansion.
///
/// Only a whole value is expanded (`secret = "${WECOM_CRM_SECRET}"`), as SPEC section 4 says;
/// a `$` elsewhere in a string is kept, since nginx-style replacements (`/home#/register$1`)
/// use it.
#[derive(Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Never printed: a `Text` may hold a secret read from the environment.
impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Text(..)")
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        expand(&raw).map(Text).map_err(de::Error::custom)
    }
}

/// Expands a whole-value `${NAME}` from the environment.
pub fn expand(raw: &str) -> Result<String, String> {
    let Some(name) = raw.strip_prefix("${").and_then(|r| r.strip_suffix('}')) else {
        return Ok(raw.to_owned());
    };
    let valid = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if !valid {
        return Err(format!(
            "'{raw}' is not a valid environment reference (expected ${{NAME}} with letters, digits and '_')"
        ));
    }
    match std::env::var(name) {
        Ok(v) => Ok(v),
        Err(std::env::VarError::NotPresent) => {
            Err(format!("environment variable {name} is not set"))
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("environment variable {name} is not valid UTF-8"))
        }
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|_| {
        format!("'{s}' is not a duration (expected a string like \"500ms\", \"30s\" or \"8h\")")
    })?;
    if d.is_zero() {
        return Err(format!("'{s}' is zero; a duration here must be positive"));
    }
    Ok(d)
}

/// A size as nginx writes one: bytes, or a number with `k`/`K` or `m`/`M`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("'{s}' is not a size (expected a string like \"512\", \"8k\" or \"1m\")");
    let t = s.trim();
    let (digits, unit) = match t.as_bytes().last() {
        Some(b'k' | b'K') => (&t[..t.len() - 1], 1024),
        Some(b'm' | b'M') => (&t[..t.len() - 1], 1024 * 1024),
        _ => (t, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(bad)
}

/// The same, where zero is a value (`fail_timeout = "0s"`, as nginx's `fail_timeout=0`).
pub fn opt_duration_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = Text::deserialize(d)?;
    let t = text.as_str().trim();
    // Zero in any spelling of a number (`0`, `00`, `0.0`) with a unit, as a duration has one.
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(end);
    let zero = number.contains('0') && number.bytes().all(|b| b == b'0' || b == b'.');
    if zero && matches!(unit.trim(), "ms" | "s" | "m" | "h" | "d") {
        return Ok(Some(Duration::ZERO));
    }
    parse_duration(t).map(Some).map_err(de::Error::custom)
}

pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = Text::deserialize(d)?;
    parse_duration(text.as_str())
        .map(Some)
        .map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_as_nginx_writes_them() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("8k"), Ok(8192));
        assert_eq!(parse_size(" 1M "), Ok(1024 * 1024));
        for bad in ["", "k", "8kb", "-1", "1.5k", "8g", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expands_whole_value_references_only() {
        std::env::set_var("WGW_TEST_VALUES_A", "s3cret");
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("${WGW_TEST_VALUES_A}", Ok("s3cret")),
            ("plain", Ok("plain")),
            ("/home#/register$1", Ok("/home#/register$1")),
            ("x${WGW_TEST_VALUES_A}", Ok("x${WGW_TEST_VALUES_A}")),
            ("${WGW_TEST_VALUES_MISSING}", Err("not set")),
            ("${}", Err("not a valid")),
            ("${A-B}", Err("not a valid")),
            ("${1A}", Err("not a valid")),
        ];
        for (input, want) in cases {
            match (expand(input), want) {
                (Ok(got), Ok(w)) => assert_eq!(&got, w, "{input}"),
                (Err(got), Err(w)) => assert!(got.contains(w), "{input}: {got}"),
                (got, w) => panic!("{input}: got {got:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Option<u64>)] = &[
            ("500ms", Some(500)),
            ("30s", Some(30_000)),
            ("8h", Some(8 * 3600 * 1000)),
            ("7200s", Some(7_200_000)),
            ("1m 30s", Some(90_000)),
            ("30", None),
            ("soon", None),
            ("0s", None),
            ("-1s", None),
        ];
        for (input, want) in cases {
            let got = parse_duration(input).ok().map(|d| d.as_millis() as u64);
            assert_eq!(got, *want, "{input}");
        }
    }
}
