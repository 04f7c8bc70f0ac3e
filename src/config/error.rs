use std::fmt;
use std::ops::Range;

/// A config problem, printed as `gateway.toml:14:1: [[routes]][2].upstream: unknown upstream
/// 'crn' (known: crm)` (SPEC section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub path: String,
    pub message: String,
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No position (the file could not be read at all): the file alone, not `FILE:0:0`.
        if self.line == 0 {
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// The text being compiled, to turn byte spans into lines and columns.
pub(crate) struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    /// Where `[table]` is written, for an error about a key it lacks; the file's start if it
    /// is not written at all.
    pub fn table_span(&self, table: &str) -> Range<usize> {
        let header = format!("[{table}]");
        let mut at = 0;
        for line in self.text.split_inclusive('\n') {
            if line.trim() == header {
                let start = at + (line.len() - line.trim_start().len());
                return start..start + header.len();
            }
            at += line.len();
        }
        0..0
    }

    /// Where `key = ...` is written in `[table]` (the value), for an error about a value the
    /// file's reader does not place; the table's header when it is not found.
    pub fn key_span(&self, table: &str, key: &str) -> Range<usize> {
        let header = format!("[{table}]");
        let (mut at, mut inside) = (0, false);
        for line in self.text.split_inclusive('\n') {
            let t = line.trim();
            if t.starts_with('[') {
                inside = t == header;
            } else if inside {
                if let Some(rest) = t.strip_prefix(key) {
                    if let Some(value) = rest.trim_start().strip_prefix('=') {
                        let start = at + line.len() - line.trim_start().len() + t.len()
                            - value.trim_start().len();
                        return start..start + value.trim().len();
                    }
                }
            }
            at += line.len();
        }
        self.table_span(table)
    }

    pub fn error(
        &self,
        span: Range<usize>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        let message = message.into();
        // A value read from the environment may be a secret put in the wrong key
        // (`ttl = "${WGW_SESSION_SECRET}"`): the message never quotes it.
        let message = match self.text.get(span.clone()) {
            Some(raw) => without_env_value(raw, message),
            None => message,
        };
        ConfigError {
            file: self.name.to_owned(),
            line,
            column,
            path: path.into(),
            message,
        }
    }
}

/// `message` without the value of the environment variable `raw` (the value as written in
/// the file) refers to, if it does: a secret read into the wrong key
/// (`ttl = "${WGW_SESSION_SECRET}"`) is never quoted back, whatever it holds.
fn without_env_value(raw: &str, message: String) -> String {
    let name = raw
        .trim_matches(['"', '\''])
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'));
    match name.and_then(|n| std::env::var(n).ok()) {
        Some(value) if !value.is_empty() => without_word(&message, &value),
        _ => message,
    }
}

/// `message` with each quote of `value` as a whole word (not inside a longer one: a value
/// `t` leaves "expected" whole, and a message then still reads) as `***`.
fn without_word(message: &str, value: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(message.len());
    let mut last = 0;
    for (at, _) in message.match_indices(value) {
        if at < last {
            continue;
        }
        let before = message[..at].chars().next_back();
        let after = message[at + value.len()..].chars().next();
        let joined_before = word(before) && word(value.chars().next());
        let joined_after = word(after) && word(value.chars().next_back());
        if joined_before || joined_after {
            continue;
        }
        out.push_str(&message[last..at]);
        out.push_str("***");
        last = at + value.len();
    }
    out.push_str(&message[last..]);
    out
}

impl ConfigError {
    pub(crate) fn io(file: &str, e: &std::io::Error) -> Self {
        ConfigError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read: {e}"),
        }
    }

    pub(crate) fn from_toml(file: &str, text: &str, path: &str, e: &toml::de::Error) -> Self {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        let message = e.message().trim_end();
        // An unknown key's message quotes key names, never a value.
        let message = if names_a_secret(path) && !message.starts_with("unknown field") {
            masked(message)
        } else {
            message.to_owned()
        };
        let message = match e.span().and_then(|s| text.get(s)) {
            // A table or key written twice (a README snippet pasted below a file that has its
            // own `[session]`): the name, which is no value, and what to do.
            Some(raw) if message == "duplicate key" && raw.len() <= 64 && !raw.contains('=') => {
                let table = e
                    .span()
                    .is_some_and(|s| text[..s.start].trim_end_matches([' ', '\t']).ends_with('['));
                let name = raw.trim().trim_matches(['[', ']']).trim();
                // `[routes]` for `[[routes]]`: those are lists, one `[[...]]` per entry.
                let list = matches!(name, "routes" | "rewrite");
                format!(
                    "duplicate key `{name}`: it is written twice; {}",
                    if table && list {
                        format!("each entry is its own [[{name}]] (two brackets)")
                    } else if table {
                        "write the table once, with the keys of both".to_owned()
                    } else {
                        "keep one".to_owned()
                    }
                )
            }
            Some(raw) => without_env_value(raw, message),
            None => message,
        };
        // `[routes]` for `[[routes]]`: a list of tables, written with two brackets.
        let message = match path {
            "[routes]" | "[rewrite]"
                if message.starts_with("invalid type: map, expected a sequence") =>
            {
                let name = path.trim_matches(['[', ']']);
                format!("{message}: each entry is its own [[{name}]] (two brackets)")
            }
            _ => message,
        };
        ConfigError {
            file: file.to_owned(),
            line,
            column,
            path: path.to_owned(),
            message,
        }
    }
}

/// A key whose value is a secret (`secret`, `suite_secret`, a callback's `token` and
/// `encoding_aes_key`, `redis_url` with its password): an error about it never repeats the
/// value as written (serde's "invalid type: integer `20261202`" would).
fn names_a_secret(path: &str) -> bool {
    let key = path.rsplit(['.', ']']).next().unwrap_or(path);
    key.contains("secret")
        || key.contains("token")
        || key.contains("key") && key != "key_prefix"
        || key == "redis_url"
}

/// `message` with every value it quotes in backticks replaced by `***`.
fn masked(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('`');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        out.push('`');
        out.push_str(if i % 2 == 0 { "***" } else { part });
    }
    out
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Formats a serde path the way the file is written: `[server].listen`, `[apps.crm].secret`,
/// `[[routes]][2].upstream` (array positions counted from 1, as a reader counts them).
pub(crate) fn format_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    // `Spanned<T>` shows up as a private pseudo-key; it is not part of what the user wrote.
    let segs: Vec<&Segment> = path
        .iter()
        .filter(|s| !matches!(s, Segment::Map { key } if key.starts_with("$__serde_spanned")))
        .collect();
    let mut out = String::new();
    let mut i = 0;
    if let Some(Segment::Map { key }) = segs.first() {
        match segs.get(1) {
            Some(Segment::Seq { index }) => {
                out = format!("[[{key}]][{}]", index + 1);
                i = 2;
            }
            Some(Segment::Map { key: sub }) if matches!(key.as_str(), "apps" | "upstreams") => {
                out = format!("[{key}.{sub}]");
                i = 2;
            }
            _ => {
                out = format!("[{key}]");
                i = 1;
            }
        }
    }
    for seg in &segs[i..] {
        match seg {
            Segment::Map { key } => {
                out.push('.');
                out.push_str(key);
            }
            Segment::Seq { index } => out.push_str(&format!("[{}]", index + 1)),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

/// Path helpers for errors found after parsing, in the same notation as [`format_path`].
pub(crate) fn route_path(index: usize, key: &str) -> String {
    format!("[[routes]][{}].{key}", index + 1)
}

#[cfg(test)]
mod tests {
    use super::{line_col, without_word};

    /// A secret read from the environment is never quoted back, and a short one does not
    /// make the message unreadable (`t` masked inside "expected").
    #[test]
    fn an_environment_value_is_masked_as_a_word_only() {
        assert_eq!(
            without_word("expected 3 to 32 letters or digits", "t"),
            "expected 3 to 32 letters or digits"
        );
        assert_eq!(
            without_word("unknown upstream 't' (known: crm)", "t"),
            "unknown upstream '***' (known: crm)"
        );
        assert_eq!(
            without_word("not a duration: 'Kx9secret', Kx9secret", "Kx9secret"),
            "not a duration: '***', ***"
        );
        assert_eq!(without_word("got ':pw@' here", ":pw@"), "got '***' here");
        assert_eq!(without_word("aaaa", "aa"), "aaaa");
    }

    #[test]
    fn line_and_column_count_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(
            line_col(text, 9),
            (2, 3),
            "columns count characters, not bytes"
        );
    }
}
