//! PCRE2 as nginx uses it: byte subjects, no UTF mode, `~*` means caseless.

use pcre2::bytes::{Regex, RegexBuilder};

/// A compiled regex plus the source text it came from (kept for Display and error messages).
#[derive(Debug, Clone)]
pub struct NgxRegex {
    source: String,
    caseless: bool,
    re: Regex,
}

/// Captures of one successful match: index 0 is the whole match, like nginx's `$0`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Captures {
    pub groups: Vec<Option<Vec<u8>>>,
    pub names: Vec<(String, usize)>,
}

impl Captures {
    /// `$N`: an unset group and a group beyond the regex's count are both empty in nginx.
    pub fn get(&self, n: usize) -> Option<&[u8]> {
        self.groups.get(n).and_then(|g| g.as_deref())
    }

    /// A named capture `(?<name>...)`, which nginx exposes as the variable `$name`.
    pub fn name(&self, name: &str) -> Option<&[u8]> {
        self.names
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, i)| self.get(*i))
    }
}

impl NgxRegex {
    pub fn new(source: &str, caseless: bool) -> Result<NgxRegex, pcre2::Error> {
        // nginx compiles without PCRE2_UTF unless the pattern asks for it with (*UTF).
        let re = RegexBuilder::new().caseless(caseless).build(source)?;
        Ok(NgxRegex {
            source: source.to_string(),
            caseless,
            re,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn caseless(&self) -> bool {
        self.caseless
    }

    /// Number of capture groups, not counting group 0.
    pub fn groups(&self) -> usize {
        self.re.captures_len().saturating_sub(1)
    }

    pub fn capture_names(&self) -> impl Iterator<Item = (usize, &str)> {
        self.re
            .capture_names()
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_deref().map(|n| (i, n)))
    }

    /// `Err` when PCRE gives up (the match or depth limit): nginx's `ngx_regex_exec` error,
    /// which it answers with 500. Never read as "no match": that would fail open to the next
    /// location or rule.
    pub fn is_match(&self, subject: &[u8]) -> Result<bool, MatchError> {
        self.re.is_match(subject).map_err(|e| self.failed(e))
    }

    /// nginx's error line for it (`pcre2_match() failed: ... using "PATTERN"`): which rule of a
    /// large file answered 500.
    fn failed(&self, e: pcre2::Error) -> MatchError {
        let e = MatchError(format!("{e} using \"{}\"", self.source));
        tracing::error!("{e}");
        e
    }

    pub fn captures(&self, subject: &[u8]) -> Result<Option<Captures>, MatchError> {
        // Most patterns of a file miss a given request: `is_match` reuses its match data,
        // `captures` builds one (an allocation per pattern tried).
        if !self.is_match(subject)? {
            return Ok(None);
        }
        let Some(caps) = self.re.captures(subject).map_err(|e| self.failed(e))? else {
            return Ok(None);
        };
        let groups = (0..caps.len())
            .map(|i| caps.get(i).map(|m| m.as_bytes().to_vec()))
            .collect();
        let names = self
            .capture_names()
            .map(|(i, n)| (n.to_string(), i))
            .collect();
        Ok(Some(Captures { groups, names }))
    }
}

/// PCRE could not finish a match (`pcre2_match()` failed, e.g. "match limit exceeded").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pcre2_match() failed: {0}")]
pub struct MatchError(pub String);
