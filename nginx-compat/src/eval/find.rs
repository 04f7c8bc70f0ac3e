//! `ngx_http_core_find_location`: exact, longest prefix (stopping at `^~`), regexes in order,
//! nested locations, and the auto-redirect of `proxy_pass` locations named with a '/'.

use crate::location::StaticMatch;
use crate::parse::model::LocConf;
use crate::regex::MatchError;
use crate::vars::Ctx;

pub(super) enum Found {
    Location(Vec<usize>),
    /// The path plus '/' names a location with auto-redirect: nginx answers 301 to its name.
    AutoRedirect(Vec<usize>),
    Nothing,
}

pub(super) fn location(root: &LocConf, cx: &mut Ctx<'_>) -> Result<Found, MatchError> {
    let mut path = Vec::new();
    Ok(match find_in(root, cx, &mut path)? {
        Some(Lookup::Redirect) => Found::AutoRedirect(path),
        Some(_) => Found::Location(path),
        None => Found::Nothing,
    })
}

enum Lookup {
    /// An exact or regex match: final.
    Final,
    /// A prefix match: an enclosing level may still prefer one of its regexes.
    Prefix,
    Redirect,
}

/// One level of `ngx_http_core_find_location`; nginx checks the outer regexes even after a
/// nested prefix (or nested `^~`) match.
fn find_in(
    conf: &LocConf,
    cx: &mut Ctx<'_>,
    path: &mut Vec<usize>,
) -> Result<Option<Lookup>, MatchError> {
    let set = &conf.children;
    let uri = cx.st.uri.clone();
    let base = path.clone();
    let mut current: Option<Vec<usize>> = None;
    let mut no_regex = false;
    match set.find_static(&uri) {
        StaticMatch::Exact(i) => {
            path.push(i);
            return Ok(Some(Lookup::Final));
        }
        StaticMatch::AutoRedirect(i) => {
            path.push(i);
            return Ok(Some(Lookup::Redirect));
        }
        StaticMatch::Prefix {
            index,
            no_regex: nr,
        } => {
            no_regex = nr;
            let (_, c) = set.get(index).expect("index from set");
            let mut probe = base.clone();
            probe.push(index);
            current = Some(probe.clone());
            if !c.children.is_empty() {
                match find_in(c, cx, &mut probe)? {
                    Some(Lookup::Prefix) => current = Some(probe),
                    Some(found) => {
                        *path = probe;
                        return Ok(Some(found));
                    }
                    None => {}
                }
            }
        }
        StaticMatch::None => {}
    }
    if !no_regex {
        if let Some(m) = set.find_regex(&uri)? {
            let caps = m.to_captures();
            for (name, _) in &caps.names {
                if let Some(v) = caps.name(name) {
                    let name = name.to_ascii_lowercase();
                    cx.req.maps.wrote(&name);
                    cx.st.user.insert(name, v.to_vec());
                }
            }
            cx.st.captures = caps;
            let mut probe = base;
            probe.push(m.index);
            let c = m.value;
            if !c.children.is_empty() {
                let mut nested = probe.clone();
                if let Some(Lookup::Final | Lookup::Prefix) = find_in(c, cx, &mut nested)? {
                    probe = nested;
                }
            }
            *path = probe;
            return Ok(Some(Lookup::Final));
        }
    }
    Ok(current.map(|p| {
        *path = p;
        Lookup::Prefix
    }))
}
