//! Which route serves a path and which login protects it (SPEC section 5, steps 5 and 6).
//! Pure: the proxy phases, `check` and the fuzz target call the same functions.
//!
//! A login route protects a path *area*, not only the requests its location wins: every path
//! its location covers (a prefix or `=` location: the paths under it; a regex: the paths it
//! matches), whichever location finally handles the request. Overlapping areas are ordered as
//! nginx orders locations, so the most specific one decides. Two readings of a request are
//! checked:
//!
//! - the URI the upstream finally receives (after `rewrite ... last`, `try_files`, index
//!   files) decides when it lies in an area; otherwise the path the client asked for still
//!   counts, so neither a rewrite into an area nor a rewrite out of one lifts its login;
//! - a path with `;` or `\` is also read as Servlet containers (Tomcat, Spring) and Windows
//!   servers read it: `;params` cut from every segment, `\` as `/`, dot segments resolved.
//!   `/sidebar;x/` and `/x/..;/sidebar/` are `/sidebar/` to such an upstream, so they are in
//!   `/sidebar/`'s area here too. Matrix parameters stay usable (old CRMs put `;jsessionid=`
//!   in URLs);
//! - a request-target with percent-escapes is also read without decoding them, as the
//!   upstream receives it untouched: nginx reads `/sidebar/%2e%2e/x` as `/x`, an upstream that
//!   does not decode `%2e` as a path under `/sidebar/`.
//!
//! - a lenient reading that is an area's name without its final `/` (`/boss` of `/boss/`) is
//!   also in that area, its own root: nginx sends the literal spelling a 301 into the area, but
//!   `/boss;x`, `/boss.` and `/BOSS` reach servers that serve the area's index there.
//!
//! - a target sent upstream in another spelling than the client's (a route's `rewrite`, a
//!   `proxy_pass` with a URI part or built from variables) is read every one of these ways as
//!   sent, and its name-without-slash is its area's root ([`Final::Sent`]).
//!
//! A path whose readings fall in two different areas, or whose Servlet reading climbs above
//! the root, is refused with 400.

use nginx_compat::location::StaticMatch;

use crate::config::model::RouteTable;

/// What the route table says of a path when no nginx rule is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// `[[routes]]` entry `index` handles it.
    Route(usize),
    /// A prefix route `/p/` and the path `/p`: nginx's 301 to `/p/` (the route's name).
    Redirect(usize),
    NotFound,
    /// PCRE gave up on a regex route (its match limit): nginx's 500, never "no match".
    Unmatchable,
}

/// nginx's location selection over the `[[routes]]`, auto-redirect included.
pub fn route(table: &RouteTable, path: &[u8]) -> Routed {
    if let StaticMatch::AutoRedirect(i) = table.matcher.find_static(path) {
        return match table.matcher.get(i) {
            Some((_, &index)) => Routed::Redirect(index),
            None => Routed::NotFound,
        };
    }
    match table.matcher.find(path) {
        Ok(Some(m)) => Routed::Route(*m.value),
        Ok(None) => Routed::NotFound,
        Err(_) => Routed::Unmatchable,
    }
}

/// Why a request's readings cannot be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AreaError {
    /// The Servlet reading climbs above the root (Tomcat answers 400 too).
    AboveRoot,
    /// The readings fall in two different protected areas.
    Ambiguous,
    /// The URI a rewrite produced does not normalise.
    BadRewrite,
    /// PCRE gave up on a regex area (its match limit): fail closed.
    Unmatchable,
}

impl AreaError {
    pub fn describe(self) -> &'static str {
        match self {
            AreaError::AboveRoot => {
                "the path climbs above the root once its ';' parameters are removed"
            }
            AreaError::Ambiguous => "the path reads as two different protected paths",
            AreaError::BadRewrite => "the rewritten path cannot be normalised",
            AreaError::Unmatchable => "the path could not be matched against the protected areas",
        }
    }
}

/// The protected area (a `[[routes]]` index) of one reading, by nginx's order.
pub fn area_of(table: &RouteTable, path: &[u8]) -> Result<Option<usize>, AreaError> {
    match table.areas.find(path) {
        Ok(m) => Ok(m.map(|m| *m.value)),
        Err(_) => Err(AreaError::Unmatchable),
    }
}

/// The area whose name is `path` and a final `/`: a lenient server's reading of a request
/// that reaches the area's own root (Tomcat's `/p/admin;x`, IIS's `/p/admin.`, Express's
/// `/p/ADMIN` are `/p/admin` there, the index of `/p/admin/`), which nginx answers only for
/// the literal spelling (its 301 into the area). Noted beside the reading's own area, so that
/// a reading in two areas of different gates is ambiguous, never one silently chosen.
fn root_of(roots: &[(Box<[u8]>, usize)], path: &[u8]) -> Option<usize> {
    roots.iter().find(|(r, _)| **r == *path).map(|(_, i)| *i)
}

/// The route whose login protects a request: `final_path` (what the upstream receives, as
/// nginx normalised it) decides when it lies in an area, else the path the client asked for:
/// `asked` as nginx normalised it, and `raw`, its request-target path before decoding.
pub fn protecting(
    table: &RouteTable,
    final_path: &[u8],
    asked: &[u8],
    raw: &[u8],
) -> Result<Option<usize>, AreaError> {
    judge(table, final_path, None, asked, raw)
}

/// A path a request finally reaches, judged beside the path the client asked for
/// ([`protecting`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    /// A URI as nginx normalised it: the `$uri` a location was chosen for, a file's URI.
    Normal(Vec<u8>),
    /// A request-target's path sent to an upstream as written (a route's `rewrite`, a
    /// `proxy_pass` with a URI part or built from variables: `$1` holds what nginx decoded, so
    /// `/files/sidebar/%252e%252e/x` sends `/sidebar/%2e%2e/x`). The upstream reads it every
    /// way the client's own path is read, and no 301 of nginx's stands between it and an
    /// area's root: `/sidebar` sent is `/sidebar/`'s index to many servers.
    Sent { normal: Vec<u8>, raw: Vec<u8> },
}

impl Final {
    /// The path of `target` (path and query, as sent upstream).
    pub fn sent(target: &[u8]) -> Result<Final, AreaError> {
        let (raw, _) = nginx_compat::uri::split_request_uri(target);
        let normal = nginx_compat::uri::normalize_path(raw).map_err(|_| AreaError::BadRewrite)?;
        Ok(Final::Sent {
            normal,
            raw: raw.to_vec(),
        })
    }

    /// The area of this path judged alone: an internal redirect's target (`error_page`,
    /// `X-Accel-Redirect`), with no path asked beside it. A sent target's name-without-slash
    /// is its area's root here too.
    pub fn area(&self, table: &RouteTable) -> Result<Option<usize>, AreaError> {
        match self {
            Final::Normal(p) => judge(table, p, None, p, p),
            Final::Sent { normal, raw } => {
                if table.areas.is_empty() {
                    return Ok(None);
                }
                let readings = Readings::of(raw);
                let (slots, n) = readings.list(normal, raw);
                agree(table, &slots[..n], Some(normal))
            }
        }
    }

    /// [`protecting`] with this as the final path.
    pub fn protecting(
        &self,
        table: &RouteTable,
        asked: &[u8],
        raw: &[u8],
    ) -> Result<Option<usize>, AreaError> {
        match self {
            Final::Normal(p) => judge(table, p, None, asked, raw),
            Final::Sent { normal, raw: sent } => judge(table, normal, Some(sent), asked, raw),
        }
    }
}

#[inline(always)]
fn judge(
    table: &RouteTable,
    final_path: &[u8],
    sent: Option<&[u8]>,
    asked: &[u8],
    raw: &[u8],
) -> Result<Option<usize>, AreaError> {
    if table.areas.is_empty() {
        return Ok(None);
    }
    let asked_readings = Readings::of(raw);
    let (slots, n) = asked_readings.list(asked, raw);
    let asked_readings = &slots[..n];
    // Sent as the client wrote it: the same readings.
    let sent = sent.filter(|s| !(final_path == asked && *s == raw));
    let found = match sent {
        None if asked == final_path => return agree(table, asked_readings, None),
        None => agree(table, &[final_path], None)?,
        Some(sent) => {
            let sent_readings = Readings::of(sent);
            let (slots, n) = sent_readings.list(final_path, sent);
            agree(table, &slots[..n], Some(final_path))?
        }
    };
    match found {
        Some(area) => Ok(Some(area)),
        None => agree(table, asked_readings, None),
    }
}

/// The readings of a path as sent, besides nginx's normalised one, that an upstream may make.
struct Readings {
    /// `//name/rest` read as a host and a path: `/rest` normalised, as sent, and its own
    /// readings (a server that cuts the host off still routes `/sidebar/../x` as sent).
    past_authority: Option<Box<(Vec<u8>, Vec<u8>, Readings)>>,
    literal: Option<Vec<u8>>,
    dotted: bool,
    decoded: Option<Vec<u8>>,
    raw_merged: Option<Vec<u8>>,
    decoded_merged: Option<Vec<u8>>,
}

impl Readings {
    #[inline(always)]
    fn of(raw: &[u8]) -> Readings {
        let mut r = Readings::without_authority(raw);
        r.past_authority = past_authority(raw).map(|cut| {
            let normal = nginx_compat::uri::normalize_path(&cut).unwrap_or_else(|_| cut.to_vec());
            let readings = Readings::without_authority(&cut);
            Box::new((normal, cut.into_owned(), readings))
        });
        r
    }

    #[inline(always)]
    fn without_authority(raw: &[u8]) -> Readings {
        let literal = undecoded(raw);
        // An upstream that routes on the path as sent, dot segments and all (most frameworks
        // do: only browsers resolve them), reads `/sidebar/../pub/x` under `/sidebar/`; so does
        // one that decodes it first, also when the slashes around the dots were escaped: WSGI
        // and ASGI servers decode `/sidebar%2F..%2Fx` to a `PATH_INFO` of `/sidebar/../x`.
        let dotted = has_dot_segment(raw);
        let decoded = raw
            .contains(&b'%')
            .then(|| percent_encoding::percent_decode(raw).collect::<Vec<u8>>())
            .filter(|d| has_dot_segment(d));
        // Servers that merge slashes before they route (Werkzeug, Express) and keep dot
        // segments read `//sidebar/../x` and `/%2Fsidebar%2F..%2Fx` under `/sidebar/` too.
        let raw_merged = dotted.then(|| merged_slashes(raw)).flatten();
        let decoded_merged = decoded.as_deref().and_then(merged_slashes);
        Readings {
            past_authority: None,
            literal,
            dotted,
            decoded,
            raw_merged,
            decoded_merged,
        }
    }

    /// `normal` first, then each reading of `raw` there is.
    #[inline]
    fn list<'a>(&'a self, normal: &'a [u8], raw: &'a [u8]) -> ([&'a [u8]; 12], usize) {
        let mut readings: [&[u8]; 12] = [normal; 12];
        let mut n = 1;
        for extra in self.extras(raw) {
            readings[n] = extra;
            n += 1;
        }
        if let Some(cut) = self.past_authority.as_deref() {
            let (cut_normal, cut_raw, cut_readings) = (&cut.0, &cut.1, &cut.2);
            readings[n] = cut_normal;
            n += 1;
            for extra in cut_readings.extras(cut_raw) {
                readings[n] = extra;
                n += 1;
            }
        }
        (readings, n)
    }

    /// Each reading of `raw` there is, besides nginx's.
    #[inline]
    fn extras<'a>(&'a self, raw: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
        [
            self.literal.as_deref(),
            self.dotted.then_some(raw),
            self.decoded.as_deref(),
            self.raw_merged.as_deref(),
            self.decoded_merged.as_deref(),
        ]
        .into_iter()
        .flatten()
    }
}

/// The one area the readings of `paths` fall in (each also read as a Servlet container reads
/// it), and the one whose root `root` names, or none; two different areas are ambiguous.
fn agree(
    table: &RouteTable,
    paths: &[&[u8]],
    root: Option<&[u8]>,
) -> Result<Option<usize>, AreaError> {
    let mut found = None;
    let mut note = |area: Option<usize>| -> Result<(), AreaError> {
        match (found, area) {
            (Some(a), Some(b)) if a != b && !same_gate(table, a, b) => Err(AreaError::Ambiguous),
            (None, b) => {
                found = b;
                Ok(())
            }
            _ => Ok(()),
        }
    };
    if let Some(root) = root {
        note(root_of(&table.area_roots, root))?;
    }
    for path in paths {
        note(area_of(table, path)?)?;
        // A login area's root with no route's 301 before it: in the area.
        if !table.open_area_roots.is_empty() {
            note(root_of(&table.open_area_roots, path))?;
        }
        lenient_readings(table, path, &mut note)?;
        // The Servlet reading is read leniently too: a server may need both (`/SIDEBAR;x/`).
        if path.iter().any(|&b| b == b';' || b == b'\\') {
            let servlet = servlet_reading(path)?;
            note(area_of(table, &servlet)?)?;
            note(root_of(&table.area_roots, &servlet))?;
            lenient_readings(table, &servlet, &mut note)?;
        }
    }
    Ok(found)
}

/// Two areas ask the same of a request (the same login, rules and external contact): a path
/// read into either is not ambiguous (`/sidebar/Admin/x` of areas `/sidebar/` and
/// `/sidebar/admin/`, both `login = "crm"`).
pub fn same_gate(table: &RouteTable, a: usize, b: usize) -> bool {
    let (a, b) = (&table.routes[a], &table.routes[b]);
    let same_app = match (&a.login, &b.login) {
        (Some(x), Some(y)) => x.name == y.name,
        (None, None) => true,
        _ => false,
    };
    let same_allow = match (&a.allow, &b.allow) {
        (Some(x), Some(y)) => std::sync::Arc::ptr_eq(x, y),
        (None, None) => true,
        _ => false,
    };
    same_app && same_allow && a.external_contact == b.external_contact
}

/// What servers that are lenient about a path make of it: without its trailing `/` (Spring
/// before 6, Express, ASP.NET match `/exact/` to `/exact`), without the dots and spaces that
/// end its segments (Windows: `/sidebar./x` is `/sidebar/x`) or the blanks and control bytes
/// around them (Java's `String.trim()` in Spring's `AntPathMatcher` before 4.3: `/sidebar%09/`
/// is `/sidebar/`), and without case (Express,
/// ASP.NET, IIS, ThinkPHP). Each reading costs something only when the path or the areas
/// give it something to find.
fn lenient_readings(
    table: &RouteTable,
    path: &[u8],
    note: &mut impl FnMut(Option<usize>) -> Result<(), AreaError>,
) -> Result<(), AreaError> {
    let trimmed = |p: &[u8]| -> usize {
        if p.len() > 1 && p.ends_with(b"/") {
            p.len() - 1
        } else {
            p.len()
        }
    };
    if table.areas_exact && trimmed(path) < path.len() {
        note(area_of(table, &path[..trimmed(path)])?)?;
    }
    // Most paths have nothing a lenient server reads otherwise: one pass says so.
    let odd = path
        .iter()
        .any(|&b| b.is_ascii_uppercase() || b == b'.' || b <= b' ');
    if !odd && !table.areas_have_upper {
        return Ok(());
    }
    let windows = windows_reading(path);
    let base = windows.as_deref().unwrap_or(path);
    if windows.is_some() {
        note(area_of(table, base)?)?;
        note(root_of(&table.area_roots, base))?;
        if table.areas_exact && trimmed(base) < base.len() {
            note(area_of(table, &base[..trimmed(base)])?)?;
        }
    }
    if let Some(bare) = without_format(base) {
        note(area_of(table, bare)?)?;
        note(root_of(&table.area_roots, bare))?;
    }
    if table.areas_have_upper || base.iter().any(u8::is_ascii_uppercase) {
        let lower = base.to_ascii_lowercase();
        let folded = |p: &[u8]| match table.folded_areas.find(p) {
            Ok(m) => Ok(m.map(|m| *m.value)),
            Err(_) => Err(AreaError::Unmatchable),
        };
        note(folded(&lower)?)?;
        note(root_of(&table.folded_area_roots, &lower))?;
        if let Some(bare) = without_format(&lower) {
            note(folded(bare)?)?;
            note(root_of(&table.folded_area_roots, bare))?;
        }
        if table.areas_exact && trimmed(&lower) < lower.len() {
            note(folded(&lower[..trimmed(&lower)])?)?;
        }
    }
    Ok(())
}

/// The path without the format its last segment names (`/reports.json`, `/admin.html`), as
/// servers that route a format suffix to the plain path read it: Rails' `(.:format)`, Grails'
/// `(.$format)?`, Spring MVC's suffix match before 5.3, ThinkPHP's `url_html_suffix`. `None`
/// when the last segment has no such suffix (a dot file such as `/.env` is its own name).
fn without_format(path: &[u8]) -> Option<&[u8]> {
    let start = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    let dot = path[start..].iter().rposition(|&b| b == b'.')?;
    (dot > 0 && start + dot + 1 < path.len()).then(|| &path[..start + dot])
}

/// The path with the dots and spaces that end a segment removed, as Windows reads a name, and
/// the blanks and control bytes that begin or end one, as Java's `trim()` does; `None` when no
/// segment has any.
fn windows_reading(path: &[u8]) -> Option<Vec<u8>> {
    let ends = |seg: &[u8]| {
        seg != b"."
            && seg != b".."
            && (matches!(seg.last(), Some(&b) if b == b'.' || b <= b' ')
                || matches!(seg.first(), Some(&b) if b <= b' '))
    };
    if !path.split(|&b| b == b'/').any(ends) {
        return None;
    }
    let mut out = Vec::with_capacity(path.len());
    for (i, seg) in path.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        let (start, keep) = if ends(seg) {
            let start = seg.iter().take_while(|&&b| b <= b' ').count();
            let end = seg.len()
                - seg[start..]
                    .iter()
                    .rev()
                    .take_while(|&&b| b == b'.' || b <= b' ')
                    .count();
            (start, end)
        } else {
            (0, seg.len())
        };
        out.extend_from_slice(&seg[start..keep]);
    }
    Some(out)
}

/// `path` with each run of `/` made one, when it has such a run.
fn merged_slashes(path: &[u8]) -> Option<Vec<u8>> {
    if !path.windows(2).any(|w| w == b"//") {
        return None;
    }
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        if !(b == b'/' && out.last() == Some(&b'/')) {
            out.push(b);
        }
    }
    Some(out)
}

/// `//name/rest` read as a URL parser reads a network-path reference (RFC 3986 section 4.2):
/// `name` a host, `/rest` the path. nginx merges the slashes (`/name/rest`), but a server that
/// hands the request-target to such a parser (Python's `urlsplit`, old Werkzeug) routes
/// `//x/sidebar/` as `/sidebar/`; and one that uses the WHATWG parser (Node's `new URL(url,
/// base)`, Deno, Bun) skips every `/` and `\` before the host and reads a `\` as `/`:
/// `///x/sidebar/` and `/\x\sidebar/` are `/sidebar/` there.
fn past_authority(raw: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let sep = |b: &u8| *b == b'/' || *b == b'\\';
    if !(raw.len() > 2 && sep(&raw[0]) && sep(&raw[1])) {
        return None;
    }
    let host = &raw[raw.iter().position(|b| !sep(b))?..];
    let path = &host[host.iter().position(sep)?..];
    Some(if path.contains(&b'\\') {
        std::borrow::Cow::Owned(
            path.iter()
                .map(|&b| if b == b'\\' { b'/' } else { b })
                .collect(),
        )
    } else {
        std::borrow::Cow::Borrowed(path)
    })
}

/// The raw path has a `.` or `..` segment (browsers resolve them before they send a path; a
/// hand-made request need not).
fn has_dot_segment(raw: &[u8]) -> bool {
    raw.windows(2).any(|w| w == b"/.")
        && raw
            .split(|&b| b == b'/')
            .any(|seg| seg == b"." || seg == b"..")
}

/// The raw path with its dot segments resolved and slashes merged but nothing decoded: what an
/// upstream that does not decode reads. `None` when there is nothing to decode, or when it
/// climbs above the root (nginx's reading is then the only one an upstream can act on).
pub fn undecoded(raw: &[u8]) -> Option<Vec<u8>> {
    if !raw.contains(&b'%') {
        return None;
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing = false;
    for seg in raw.split(|&b| b == b'/') {
        trailing = true;
        match seg {
            b"" | b"." => {}
            b".." => {
                segments.pop()?;
            }
            s => {
                segments.push(s);
                trailing = false;
            }
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if trailing || out.is_empty() {
        out.push(b'/');
    }
    Some(out)
}

/// The path as a Servlet container reads it: each segment cut at its first `;`, `\` read as
/// `/`, empty and `.` segments dropped, `..` climbing one segment. A trailing `/` is kept.
pub fn servlet_reading(path: &[u8]) -> Result<Vec<u8>, AreaError> {
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing = false;
    for raw in path.split(|&b| b == b'/' || b == b'\\') {
        let seg = raw.split(|&b| b == b';').next().unwrap_or_default();
        trailing = true;
        match seg {
            b"" | b"." => {}
            b".." => {
                segments.pop().ok_or(AreaError::AboveRoot)?;
            }
            s => {
                segments.push(s);
                trailing = false;
            }
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if trailing || out.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, bool)]) -> RouteTable {
        let logins: Vec<(&str, &str)> = routes
            .iter()
            .map(|(l, login)| match login {
                true if l.contains("mp") => (*l, "mp"),
                true => (*l, "crm"),
                false => (*l, ""),
            })
            .collect();
        table_of(&logins)
    }

    /// Routes by location and login app ("" for none).
    fn table_of(routes: &[(&str, &str)]) -> RouteTable {
        let mut text = String::from(
            "[server]\nlisten = \"127.0.0.1:1\"\npublic_url = \"http://127.0.0.1:1\"\n\
             [session]\nsecret = \"0123456789abcdef0123456789abcdef\"\n\
             [apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"s\"\n\
             [apps.mp]\nkind = \"wechat_mp\"\napp_id = \"wx1\"\nsecret = \"s\"\n\
             [upstreams.crm]\nurl = \"http://127.0.0.1:9\"\n",
        );
        for (location, login) in routes {
            let login = match *login {
                "" => String::new(),
                app => format!("login = \"{app}\"\n"),
            };
            text.push_str(&format!(
                "[[routes]]\nlocation = {location:?}\nupstream = \"crm\"\n{login}"
            ));
        }
        let config = crate::config::load_str("t.toml", &text, std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("{e}"));
        std::sync::Arc::try_unwrap(config.routes)
            .ok()
            .expect("only owner")
    }

    #[test]
    fn servlet_readings_like_tomcat() {
        let cases: &[(&str, Result<&str, AreaError>)] = &[
            ("/sidebar;x/", Ok("/sidebar/")),
            ("/x/..;/sidebar/", Ok("/sidebar/")),
            ("/sidebar;jsessionid=1/api;v=2", Ok("/sidebar/api")),
            ("/a\\..\\sidebar\\x", Ok("/sidebar/x")),
            ("/a/./b//c/", Ok("/a/b/c/")),
            ("/a/..", Ok("/")),
            (";x", Ok("/")),
            ("/..;/x", Err(AreaError::AboveRoot)),
            ("/a/../../x", Err(AreaError::AboveRoot)),
        ];
        for (path, want) in cases {
            let got = servlet_reading(path.as_bytes());
            assert_eq!(
                got.map(|v| String::from_utf8_lossy(&v).into_owned()),
                (*want).map(str::to_owned),
                "{path}"
            );
        }
    }

    /// One line per request: the route that serves it and the one whose login protects it.
    #[test]
    fn areas_protect_whatever_location_serves_the_path() {
        let t = table(&[
            ("/sidebar/", true),
            ("~* \\.(js|css)$", false),
            ("^~ /sidebar/public/", false),
            ("~ ^/mp/", true),
            ("= /exact/", true),
            ("/", false),
        ]);
        type Case<'a> = (&'a str, Routed, Result<Option<usize>, AreaError>);
        let cases: &[Case] = &[
            ("/sidebar/", Routed::Route(0), Ok(Some(0))),
            ("/sidebar", Routed::Redirect(0), Ok(None)),
            ("/sidebar/app.js", Routed::Route(1), Ok(Some(0))),
            // Inside an area, a public route is still protected.
            ("/sidebar/public/x", Routed::Route(2), Ok(Some(0))),
            ("/app.js", Routed::Route(1), Ok(None)),
            ("/sidebar;x/", Routed::Route(5), Ok(Some(0))),
            ("/x/..;/sidebar/", Routed::Route(5), Ok(Some(0))),
            ("/x;a=1/y", Routed::Route(5), Ok(None)),
            ("/..;/sidebar/", Routed::Route(5), Err(AreaError::AboveRoot)),
            ("/mp/x", Routed::Route(3), Ok(Some(3))),
            // Two readings, two areas: refused.
            (
                "/mp/..;/sidebar/",
                Routed::Route(3),
                Err(AreaError::Ambiguous),
            ),
            ("/exact/", Routed::Route(4), Ok(Some(4))),
            ("/exact/x", Routed::Route(5), Ok(None)),
            ("/other", Routed::Route(5), Ok(None)),
        ];
        for (path, routed, area) in cases {
            assert_eq!(route(&t, path.as_bytes()), *routed, "route of {path}");
            assert_eq!(
                protecting(&t, path.as_bytes(), path.as_bytes(), path.as_bytes()),
                *area,
                "area of {path}"
            );
        }
        // A rewrite into an area, and out of one: either way the login stays.
        assert_eq!(
            protecting(&t, b"/sidebar/x", b"/old/x", b"/old/x"),
            Ok(Some(0))
        );
        assert_eq!(
            protecting(&t, b"/public/x", b"/sidebar/x", b"/sidebar/x"),
            Ok(Some(0))
        );
        // Both in areas: the URI the upstream receives decides.
        assert_eq!(
            protecting(&t, b"/mp/x", b"/sidebar/x", b"/sidebar/x"),
            Ok(Some(3))
        );
        // Read without decoding, as the upstream receives it untouched.
        type Area = Result<Option<usize>, AreaError>;
        let raw: &[(&str, &str, Area)] = &[
            ("/other", "/sidebar/%2e%2e/other", Ok(Some(0))),
            ("/other", "/sidebar/%2E%2E/other", Ok(Some(0))),
            // Escaped slashes around the dots: decoded, it is under /sidebar/.
            ("/other", "/sidebar%2F..%2Fother", Ok(Some(0))),
            ("/other", "/sidebar%2f%2e%2e%2fother", Ok(Some(0))),
            ("/other", "/sidebar%2F../other", Ok(Some(0))),
            ("/x", "/other%2F..%2Fx", Ok(None)),
            // Slashes merged, dot segments kept (Werkzeug, Express): under /sidebar/.
            ("/x", "//sidebar/../x", Ok(Some(0))),
            ("/x", "/%2Fsidebar%2F..%2Fx", Ok(Some(0))),
            ("/x", "/%2F%2Fsidebar%2F..%2Fx", Ok(Some(0))),
            ("/x", "//other/../x", Ok(None)),
            ("/sidebar/x", "/%73idebar/x", Ok(Some(0))),
            ("/x", "/%78", Ok(None)),
            // Servers that ignore case, a trailing slash, or a segment's trailing dots.
            ("/SIDEBAR/x", "/SIDEBAR/x", Ok(Some(0))),
            ("/Sidebar/x", "/Sidebar/x", Ok(Some(0))),
            ("/MP/x", "/MP/x", Ok(Some(3))),
            ("/EXACT/", "/EXACT/", Ok(Some(4))),
            ("/sidebar./x", "/sidebar./x", Ok(Some(0))),
            ("/sidebar /x", "/sidebar%20/x", Ok(Some(0))),
            ("/sidebar\t/x", "/sidebar%09/x", Ok(Some(0))),
            ("/sidebar\x0b/x", "/sidebar%0b/x", Ok(Some(0))),
            ("/\x1fsidebar/x", "/%1fsidebar/x", Ok(Some(0))),
            ("/Other/x", "/Other/x", Ok(None)),
            ("/other./x", "/other./x", Ok(None)),
            // Literal dot segments, read as sent: most upstreams route on them unresolved.
            ("/other", "/sidebar/../other", Ok(Some(0))),
            ("/other", "/sidebar/./../other", Ok(Some(0))),
            ("/other", "/sid%65bar/../other", Ok(Some(0))),
            ("/mp", "/mp/..", Ok(Some(3))),
            ("/other/x", "/other/./x", Ok(None)),
            ("/sidebar/x", "/other/../sidebar/x", Ok(Some(0))),
            ("/mp/x", "/sidebar/../mp/x", Err(AreaError::Ambiguous)),
            (
                "/sidebar/",
                "/mp/%2e%2e/sidebar/",
                Err(AreaError::Ambiguous),
            ),
        ];
        for (asked, target, want) in raw {
            assert_eq!(
                protecting(&t, asked.as_bytes(), asked.as_bytes(), target.as_bytes()),
                *want,
                "{target}"
            );
        }
    }

    #[test]
    fn an_exact_area_covers_its_path_with_a_slash_and_in_any_case() {
        let t = table(&[("= /api/secret", true), ("~ ^/Admin$", true), ("/", false)]);
        let area = |p: &str| protecting(&t, p.as_bytes(), p.as_bytes(), p.as_bytes());
        assert_eq!(area("/api/secret/"), Ok(Some(0)));
        assert_eq!(area("/API/Secret/"), Ok(Some(0)));
        assert_eq!(area("/api/secret./"), Ok(Some(0)));
        assert_eq!(area("/admin/"), Ok(Some(1)));
        assert_eq!(area("/api/secrets/"), Ok(None));
        assert_eq!(area("/api/"), Ok(None));
        // Two lenient readings at once: a Servlet container's and a lenient server's.
        for path in [
            "/api/secret;x/",
            "/api/secret/;x",
            "/API/secret;x",
            "/api/secret\\",
        ] {
            assert_eq!(area(path), Ok(Some(0)), "{path}");
        }
        let t = table(&[("/sidebar/", true), ("/", false)]);
        let area = |p: &str| protecting(&t, p.as_bytes(), p.as_bytes(), p.as_bytes());
        for path in [
            "/SIDEBAR;x/",
            "/SIDEBAR\\x",
            "/x/..;/SIDEBAR/",
            "/sidebar.\\x",
            "/sidebar.;x/y",
            "/sidebar ;x/y",
            "/x/..;/sidebar./",
        ] {
            assert_eq!(area(path), Ok(Some(0)), "{path}");
        }
    }

    /// A format suffix on the last segment (`/reports.json`, `/admin.html`, `/mgr/1.json`):
    /// Rails, Grails, Spring MVC before 5.3 and ThinkPHP route it to the plain path, so it
    /// lies where the plain path does, in any case.
    #[test]
    fn a_format_suffix_lies_where_the_plain_path_does() {
        let t = table(&[
            ("/reports/", true),
            ("= /admin", true),
            ("~ ^/mgr/(\\d+)$", true),
            ("/", false),
        ]);
        let area = |p: &str| protecting(&t, p.as_bytes(), p.as_bytes(), p.as_bytes());
        for (path, want) in [
            ("/reports.json", Some(0)),
            ("/Reports.json", Some(0)),
            ("/reports.json.", Some(0)),
            ("/admin.html", Some(1)),
            ("/ADMIN.html", Some(1)),
            ("/mgr/1.json", Some(2)),
            ("/reports/x.csv", Some(0)),
            // Not the plain path of an area.
            ("/reportsx.json", None),
            ("/admin.html/x", None),
            ("/mgr/x.json", None),
            ("/.reports", None),
            ("/static/app.js", None),
        ] {
            assert_eq!(area(path), Ok(want), "{path}");
        }
    }

    /// A prefix area's own root (`/boss` of `/boss/`): nginx sends the literal path a 301 into
    /// the area, but Tomcat's `/boss;x`, IIS's `/boss.` and Express's `/BOSS` reach it as the
    /// area's index. Each is in the area; read also in an enclosing area of another login, it
    /// is ambiguous.
    #[test]
    fn an_areas_own_root_is_in_it_however_it_is_spelled() {
        let t = table(&[("/boss/", true), ("/", false)]);
        let area = |p: &str| protecting(&t, p.as_bytes(), p.as_bytes(), p.as_bytes());
        for path in ["/BOSS", "/boss;x", "/boss.", "/Boss ", "/x/..;/boss;a"] {
            assert_eq!(area(path), Ok(Some(0)), "{path}");
        }
        // The literal spelling is nginx's: its 301 (or the location named so) decides.
        assert_eq!(area("/boss"), Ok(None));
        for path in ["/bossy", "/bos", "/BOSSY;x"] {
            assert_eq!(area(path), Ok(None), "{path}");
        }
        let t = table(&[("/p/", true), ("/p/mpadmin/", true), ("/", false)]);
        let area = |p: &str| protecting(&t, p.as_bytes(), p.as_bytes(), p.as_bytes());
        assert_eq!(area("/p/mpadmin"), Ok(Some(0)));
        for path in [
            "/p/mpadmin;x",
            "/p/mpadmin;jsessionid=1",
            "/p/./mpadmin;a",
            "/p/mpadmin.",
            "/p/mpadmin..",
            "/p/MPADMIN",
            "/p/MpAdmin",
        ] {
            assert_eq!(area(path), Err(AreaError::Ambiguous), "{path}");
        }
        assert_eq!(area("/p/mpadminx;y"), Ok(Some(0)));
        // A location named as the root is its own: its rules, never the area's beside it.
        let t = table_of(&[("= /p/admin", "mp"), ("/p/admin/", "crm"), ("/", "")]);
        let area = |p: &str| protecting(&t, p.as_bytes(), p.as_bytes(), p.as_bytes());
        assert_eq!(area("/p/admin"), Ok(Some(0)));
        assert_eq!(area("/p/admin;x"), Err(AreaError::Ambiguous));
        let t = table_of(&[("= /p/admin", ""), ("/p/admin/", "crm"), ("/", "")]);
        let area = |p: &str| protecting(&t, p.as_bytes(), p.as_bytes(), p.as_bytes());
        assert_eq!(area("/p/admin"), Ok(None), "a public page stays public");
        // An exact area ending in `/` has a root too (its literal spelling gets the 301).
        let t = table_of(&[("= /p/admin/", "crm"), ("/", "")]);
        let area = |p: &str| protecting(&t, p.as_bytes(), p.as_bytes(), p.as_bytes());
        for path in ["/p/admin;x", "/P/ADMIN", "/p/admin.", "/p/admin "] {
            assert_eq!(area(path), Ok(Some(0)), "{path}");
        }
    }

    /// Two areas that ask the same (the same login, rules, contact): a path read into both is
    /// theirs, not ambiguous; areas of two logins still are.
    #[test]
    fn readings_in_two_areas_of_one_login_are_not_ambiguous() {
        let t = table(&[("/sidebar/", true), ("/sidebar/admin/", true), ("/", false)]);
        let area = |p: &str| protecting(&t, p.as_bytes(), p.as_bytes(), p.as_bytes());
        assert!(matches!(area("/sidebar/Admin/x"), Ok(Some(0 | 1))));
        assert_eq!(area("/sidebar/admin/x"), Ok(Some(1)));
    }

    #[test]
    fn a_doubled_slash_is_also_read_as_a_host_and_a_path() {
        for (raw, want) in [
            ("//x/sidebar/", Some("/sidebar/")),
            ("//x/sidebar/%61/../b", Some("/sidebar/%61/../b")),
            ("//x", None),
            ("///x/sidebar/", Some("/sidebar/")),
            ("/\\x/sidebar/", Some("/sidebar/")),
            ("/\\/x\\sidebar\\", Some("/sidebar/")),
            ("//\\//x/sidebar/?a", Some("/sidebar/?a")),
            ("///sidebar", None),
            ("/x//sidebar/", None),
            ("/x\\sidebar/", None),
            ("/sidebar/", None),
        ] {
            let got =
                past_authority(raw.as_bytes()).map(|v| String::from_utf8(v.to_vec()).unwrap());
            assert_eq!(got.as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn undecoded_readings() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/a/b", None),
            ("/sidebar/%2e%2e/x", Some("/sidebar/%2e%2e/x")),
            ("/a/../%2e/b//", Some("/%2e/b/")),
            ("/%2e/../..", None),
        ];
        for (raw, want) in cases {
            let got = undecoded(raw.as_bytes()).map(|v| String::from_utf8(v).unwrap());
            assert_eq!(got.as_deref(), *want, "{raw}");
        }
    }

    #[test]
    fn rewritten_targets_are_read_as_normalised_paths() {
        let normal = |t: &[u8]| match Final::sent(t) {
            Ok(Final::Sent { normal, .. }) => Ok(normal),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(normal(b"/sidebar/a%20b?x=1").unwrap(), b"/sidebar/a b");
        assert_eq!(normal(b"/x/../sidebar/").unwrap(), b"/sidebar/");
        assert_eq!(normal(b"/../x"), Err(AreaError::BadRewrite));
    }

    /// A target sent upstream as written is read every way the client's own path is (a
    /// `proxy_pass http://crm/$1` sends what nginx decoded: `/files/sidebar/%252e%252e/x`
    /// reaches the CRM as `/sidebar/%2e%2e/x`), and its name without the slash is the area's
    /// root (`location /api/ { proxy_pass http://crm/; }` sends `/api/sidebar` as `/sidebar`,
    /// with no 301 of nginx's between).
    #[test]
    fn a_target_sent_as_written_is_read_every_way_and_reaches_an_areas_root() {
        let t = table(&[("/sidebar/", true), ("/mp/", true), ("/", false)]);
        let sent = |target: &str, raw: &str| {
            let asked = nginx_compat::uri::normalize_path(raw.as_bytes()).unwrap();
            Final::sent(target.as_bytes())
                .unwrap()
                .protecting(&t, &asked, raw.as_bytes())
        };
        type Case<'a> = (&'a str, &'a str, Result<Option<usize>, AreaError>);
        let cases: &[Case] = &[
            (
                "/sidebar/%2e%2e/x",
                "/files/sidebar/%252e%252e/x",
                Ok(Some(0)),
            ),
            (
                "/sidebar%2f..%2fx",
                "/files/sidebar%252f..%252fx",
                Ok(Some(0)),
            ),
            ("/sidebar/../x", "/files/sidebar/%252E%252E/x", Ok(Some(0))),
            // Read into two areas of different logins: refused, as the client's own path.
            (
                "/mp/%2e%2e/sidebar/x",
                "/files/mp/%252e%252e/sidebar/x",
                Err(AreaError::Ambiguous),
            ),
            ("/sidebar", "/api/sidebar", Ok(Some(0))),
            ("/sidebar?a=1", "/api/sidebar", Ok(Some(0))),
            ("/mp", "/files/mp", Ok(Some(1))),
            ("/sidebarx", "/api/sidebarx", Ok(None)),
            ("/other", "/api/other", Ok(None)),
            ("/other/%2e%2e/x", "/files/other/%252e%252e/x", Ok(None)),
            // Sent as asked: the client's own readings only (its `/sidebar` got nginx's 301).
            ("/sidebar/x", "/sidebar/x", Ok(Some(0))),
        ];
        for (target, raw, want) in cases {
            assert_eq!(sent(target, raw), *want, "{raw} sent as {target}");
        }
        // Judged alone (an internal redirect's target, no path asked beside it): the same.
        for (target, want) in [
            ("/sidebar", Ok(Some(0))),
            ("/sidebar/%2e%2e/x", Ok(Some(0))),
            ("/mp", Ok(Some(1))),
            ("/other", Ok(None)),
        ] {
            assert_eq!(
                Final::sent(target.as_bytes()).unwrap().area(&t),
                want,
                "{target}"
            );
        }
        // A `$uri` (already normalised, never sent) is read as before.
        assert_eq!(
            Final::Normal(b"/sidebar".to_vec()).protecting(&t, b"/api/sidebar", b"/api/sidebar"),
            Ok(None)
        );
    }
}
