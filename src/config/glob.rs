//! The files an nginx `include` pattern names, as nginx finds them: glob(3) with no flags.
//!
//! nginx treats a name holding `*`, `?` or `[` as a pattern (`ngx_conf_include`), and a
//! pattern may be in any part of the path (`vhosts/*/site.conf`). A wildcard does not match a
//! leading dot, so an editor's `.crm.conf.swp` beside the files is not included; a pattern
//! matching nothing includes nothing; the names come back sorted byte by byte. nginx never
//! sets a locale: a `?` is one byte (not one character of a UTF-8 name), and a bracket knows
//! the C locale's classes (`[[:digit:]]`).

use std::path::{Component, Path, PathBuf};

/// Whether nginx reads `name` as a pattern rather than a file name.
pub fn is_pattern(name: &str) -> bool {
    name.contains(['*', '?', '['])
}

/// The existing paths `pattern` (joined to `base` when relative) matches, sorted. A pattern
/// without a metacharacter names its one path, whether or not it exists (nginx then fails to
/// open it, with its name).
pub fn expand(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = base.join(pattern);
    if !is_pattern(&full.to_string_lossy()) {
        return Ok(vec![full]);
    }
    let parts: Vec<Component> = full.components().collect();
    let mut found = vec![PathBuf::new()];
    for (i, part) in parts.iter().enumerate() {
        let name = part.as_os_str().to_string_lossy();
        if !matches!(part, Component::Normal(_)) || !is_pattern(&name) {
            found.iter_mut().for_each(|p| p.push(part));
            continue;
        }
        let last = i + 1 == parts.len();
        let pattern = part.as_os_str().as_encoded_bytes();
        let mut next = Vec::new();
        for dir in &found {
            let listed = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let entries = match std::fs::read_dir(listed) {
                Ok(entries) => entries,
                // glob(3) finds nothing under a directory that is not there (`include
                // /etc/nginx/default.d/*.conf;` on a host without it), nor under a file.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(format!("cannot list \"{}\": {e}", listed.display())),
            };
            for entry in entries.filter_map(|e| e.ok()) {
                let file = entry.file_name();
                if !matches(pattern, file.as_encoded_bytes()) {
                    continue;
                }
                let path = dir.join(&file);
                // A part before the last is a directory to look in (a link to one counts).
                if last || path.is_dir() {
                    next.push(path);
                }
            }
        }
        found = next;
    }
    // Plain parts after the last pattern (`vhosts/*/site.conf`) name what must exist; a link
    // that leads nowhere is there, as glob(3) sees it (and nginx then fails to open it).
    found.retain(|p| p.symlink_metadata().is_ok());
    found.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    Ok(found)
}

/// fnmatch(3) of one name, as glob(3) calls it in the C locale: `*`, `?`, `[...]` (`!` or `^`
/// negating, `a-z` ranges, `[:digit:]` classes, a `]` first taken as itself), `\` quoting the
/// next byte; a wildcard or a bracket does not match a leading `.`.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && !matches!(pattern.first(), Some(b'.') | Some(b'\\')) {
        return false;
    }
    let (mut p, mut n) = (0, 0);
    // Where to resume after the last `*`: the pattern just past it, the name one further.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => match bracket(&pattern[p..], name[n]) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                // No closing `]`: the `[` is itself.
                None => (name[n] == b'[').then_some(1),
            },
            Some(b'\\') if p + 1 < pattern.len() => (pattern[p + 1] == name[n]).then_some(2),
            Some(c) => (*c == name[n]).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                p += len;
                n += 1;
            }
            (None, Some((after, from))) => {
                p = after;
                n = from + 1;
                star = Some((after, from + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// A bracket expression at the start of `pattern` against `c`: whether it matches and how many
/// pattern bytes it spans; `None` when it does not close.
fn bracket(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pattern.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let mut lo = *pattern.get(i)?;
        if lo == b']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        // A class, `[:digit:]`, as the C locale has it.
        if lo == b'[' && pattern.get(i + 1) == Some(&b':') {
            let rest = &pattern[i + 2..];
            if let Some(end) = rest.windows(2).position(|w| w == b":]") {
                hit |= class(&rest[..end])?(c);
                i += 2 + end + 2;
                continue;
            }
        }
        if lo == b'\\' {
            i += 1;
            lo = *pattern.get(i)?;
        }
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|h| *h != b']') {
            let hi = pattern[i + 2];
            hit |= lo <= c && c <= hi;
            i += 3;
        } else {
            hit |= lo == c;
            i += 1;
        }
    }
}

/// A character class of the C locale by its name; `None` for a name glob(3) does not know
/// (the pattern then matches nothing).
fn class(name: &[u8]) -> Option<fn(u8) -> bool> {
    Some(match name {
        b"alpha" => |c: u8| c.is_ascii_alphabetic(),
        b"digit" => |c: u8| c.is_ascii_digit(),
        b"alnum" => |c: u8| c.is_ascii_alphanumeric(),
        b"upper" => |c: u8| c.is_ascii_uppercase(),
        b"lower" => |c: u8| c.is_ascii_lowercase(),
        b"space" => |c: u8| c.is_ascii_whitespace() || c == 0x0b,
        b"blank" => |c: u8| c == b' ' || c == b'\t',
        b"punct" => |c: u8| c.is_ascii_punctuation(),
        b"xdigit" => |c: u8| c.is_ascii_hexdigit(),
        b"cntrl" => |c: u8| c.is_ascii_control(),
        b"print" => |c: u8| (0x20..0x7f).contains(&c),
        b"graph" => |c: u8| c.is_ascii_graphic(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        matches(pattern.as_bytes(), name.as_bytes())
    }

    #[test]
    fn names_match_as_fnmatch_matches_them() {
        assert!(m("*.conf", "crm.conf"));
        assert!(!m("*.conf", ".conf"), "a wildcard takes no leading dot");
        assert!(!m("*.conf", ".crm.conf"));
        assert!(m(".*.conf", ".crm.conf"));
        assert!(!m("*.conf", "crm.conf.swp"));
        assert!(m("crm*", "crm"));
        assert!(m("*a*b*", "xaxxbx"));
        assert!(!m("*a*b", "xaxxbx"));
        assert!(m("site?.conf", "site1.conf"));
        assert!(!m("site?.conf", "site.conf"));
        assert!(!m("?crm", ".crm"), "`?` takes no leading dot");
        assert!(m("site[0-9].conf", "site7.conf"));
        assert!(!m("site[0-9].conf", "sitex.conf"));
        assert!(m("site[!0-9].conf", "sitex.conf"));
        assert!(m("site[^0-9].conf", "sitex.conf"));
        assert!(!m("site[!0-9].conf", "site7.conf"));
        assert!(m("[]]x", "]x"), "a `]` first in a bracket is itself");
        assert!(m("[a-]x", "-x"), "a `-` last in a bracket is itself");
        assert!(m("a[b.conf", "a[b.conf"), "an unclosed `[` is itself");
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("*", "x"));
        assert!(!m("x", ""));
        assert!(m("*", ""));
        assert!(m("站点*.conf", "站点一.conf"));
        // A byte each, as in nginx's C locale: `一` is three.
        assert!(!m("站点?.conf", "站点一.conf"));
        assert!(m("站点???.conf", "站点一.conf"));
        assert!(m("site[[:digit:]].conf", "site1.conf"));
        assert!(!m("site[[:digit:]].conf", "sitex.conf"));
        assert!(m("site[![:digit:]].conf", "sitex.conf"));
        assert!(m("[[:alpha:]_]*", "_x"));
        assert!(!m("site[[:nosuch:]].conf", "site1.conf"));
    }

    /// A directory of its own (per test and process), removed when dropped.
    struct Tree(PathBuf);

    impl Tree {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tree(tag: &str) -> Tree {
        let dir = Tree(std::env::temp_dir().join(format!("wgw-glob-{tag}-{}", std::process::id())));
        for f in [
            "vhost/b.conf",
            "vhost/a.conf",
            "vhost/.a.conf.swp",
            "vhost/a.conf.bak",
            "vhost/sub/c.conf",
            "sites/one/site.conf",
            "sites/two/other.conf",
            "sites/three/site.conf",
            "sites/a-b/site.conf",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        dir
    }

    fn names(base: &Path, found: Vec<PathBuf>) -> Vec<String> {
        found
            .into_iter()
            .map(|p| p.strip_prefix(base).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn a_pattern_names_the_existing_files_it_matches_in_byte_order() {
        let dir = tree("order");
        let base = dir.path();
        assert_eq!(
            names(base, expand(base, "vhost/*.conf").unwrap()),
            ["vhost/a.conf", "vhost/b.conf"]
        );
        assert_eq!(
            names(base, expand(base, "vhost/[ab].conf").unwrap()),
            ["vhost/a.conf", "vhost/b.conf"]
        );
        assert_eq!(
            names(base, expand(base, "vhost/?.conf*").unwrap()),
            ["vhost/a.conf", "vhost/a.conf.bak", "vhost/b.conf"]
        );
        // A pattern in a directory's name, a plain name after it: only where it exists, and
        // sorted as bytes (`a-b/` before `one/`, `-` below `/`).
        assert_eq!(
            names(base, expand(base, "sites/*/site.conf").unwrap()),
            [
                "sites/a-b/site.conf",
                "sites/one/site.conf",
                "sites/three/site.conf"
            ]
        );
        assert_eq!(
            names(base, expand(base, "*/*/*.conf").unwrap()),
            [
                "sites/a-b/site.conf",
                "sites/one/site.conf",
                "sites/three/site.conf",
                "sites/two/other.conf",
                "vhost/sub/c.conf"
            ]
        );
        // Absolute, as most nginx files write it.
        let abs = format!("{}/vhost/*.conf", base.display());
        assert_eq!(
            names(base, expand(Path::new("/nowhere"), &abs).unwrap()),
            ["vhost/a.conf", "vhost/b.conf"]
        );
    }

    /// A link that leads nowhere is named (nginx then fails to open it, as the gateway does),
    /// not passed over in silence.
    #[test]
    fn a_dangling_link_is_named() {
        let dir = tree("link");
        let base = dir.path();
        std::os::unix::fs::symlink(base.join("nowhere.conf"), base.join("vhost/c.conf")).unwrap();
        assert_eq!(
            names(base, expand(base, "vhost/*.conf").unwrap()),
            ["vhost/a.conf", "vhost/b.conf", "vhost/c.conf"]
        );
    }

    #[test]
    fn a_pattern_matching_nothing_names_nothing_and_a_plain_name_itself() {
        let dir = tree("none");
        let base = dir.path();
        assert!(expand(base, "vhost/*.site").unwrap().is_empty());
        assert!(expand(base, "default.d/*.conf").unwrap().is_empty());
        assert!(expand(base, "vhost/a.conf/*").unwrap().is_empty());
        assert_eq!(
            expand(base, "missing.conf").unwrap(),
            [base.join("missing.conf")]
        );
    }
}
