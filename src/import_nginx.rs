//! `wecom-gateway import-nginx FILE`: the TOML an nginx server block becomes.
//!
//! The TOML keeps the nginx file as an `[nginx] include`, which the gateway evaluates with
//! nginx's semantics, so the CRM receives what it received behind nginx. When every location
//! is a plain `proxy_pass` (no URI part, no variables) with rewrites, the plain TOML it could
//! become instead (`[[rewrite]]`, `[[routes]]` with `rewrite` lists) is shown commented out,
//! with what a route does differently (the client's `Host`, redirects passed as they are, no
//! body limit). Either way every
//! upstream the file names becomes an `[upstreams.NAME]` (an `upstream` block by its name, a
//! `proxy_pass http://host:port` by its host). Directives that cannot be honoured are listed on
//! stderr as `FILE:LINE: directive 'x' is not supported`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use nginx_compat::parse::Directive;

use crate::config::rules::{
    parse_nginx, parse_nginx_reading, server_body, upstream_block, upstream_of, upstream_toml,
    variable_hosts,
};

/// The rule set of `top`, and each error on the way. nginx stops at a file's first error; a
/// migration wants them all at once: the directive an error names is taken out and the rest
/// built again, until it builds. `None` when an error names no directive that can be taken
/// out (then the errors so far are all there is to say).
fn build_naming_each_error(
    top: &mut Vec<Directive>,
) -> (Option<nginx_compat::Config>, Vec<String>) {
    let mut errors: Vec<String> = Vec::new();
    // Each round takes a directive out: bounded by the file's size, and by this.
    for _ in 0..500 {
        match nginx_compat::Config::from_directives(top) {
            Ok(cfg) => return (Some(cfg), errors),
            Err(e) => {
                let line = e.to_string();
                if !errors.contains(&line) {
                    errors.push(line);
                }
                if !take_out(top, e.file.as_deref(), e.line) {
                    return (None, errors);
                }
            }
        }
    }
    (None, errors)
}

/// Removes the innermost directive starting on `line` of `file` (an error's place: the
/// directive, or one of its arguments on its line). Whether there was one.
fn take_out(dirs: &mut Vec<Directive>, file: Option<&str>, line: usize) -> bool {
    for d in dirs.iter_mut() {
        if let Some(block) = d.block.as_mut() {
            if take_out(block, file, line) {
                return true;
            }
        }
    }
    let at = dirs
        .iter()
        .position(|d| d.pos.line == line && file.is_none_or(|f| *d.pos.file == *f));
    match at {
        Some(i) => {
            dirs.remove(i);
            true
        }
        None => false,
    }
}

/// The file's directives, its relative `include`s read from its own directory, else (when one
/// is missing there) from the directory above it, the usual place of the main nginx.conf,
/// which is then the conf_dir to write. Missing either way: the rest is read all the same from
/// the directory that has more of the files, each missing one in `missing` (a migration wants
/// every line that cannot load in one run).
fn read_finding_conf_dir(
    name: &str,
    text: &str,
    base: &Path,
    missing: &mut Vec<String>,
) -> Result<(Vec<Directive>, Option<PathBuf>), String> {
    let e = match parse_nginx(name, text, base) {
        Ok(dirs) => return Ok((dirs, None)),
        Err(e) => e,
    };
    let Some(conf) = base
        .parent()
        .filter(|_| e.message.starts_with("cannot read"))
    else {
        return Err(e.to_string());
    };
    let conf_e = match parse_nginx(name, text, conf) {
        Ok(dirs) => return Ok((dirs, Some(conf.to_path_buf()))),
        Err(conf_e) => conf_e,
    };
    let (mut here, mut there) = (Vec::new(), Vec::new());
    let at_conf = parse_nginx_reading(name, text, conf, Some(&mut there));
    let at_base = parse_nginx_reading(name, text, base, Some(&mut here));
    let (dirs, first, dir) = match (at_conf, at_base) {
        (Ok(d), Ok(_)) if there.len() <= here.len() => {
            *missing = there;
            (d, conf_e, Some(conf.to_path_buf()))
        }
        (_, Ok(d)) => {
            *missing = here;
            (d, e, None)
        }
        (Ok(d), Err(_)) => {
            *missing = there;
            (d, conf_e, Some(conf.to_path_buf()))
        }
        (Err(_), Err(_)) => return Err(e.to_string()),
    };
    missing.insert(0, first.to_string());
    missing.dedup();
    Ok((dirs, dir))
}

/// The TOML text and the directives that are not supported.
pub struct Import {
    pub toml: String,
    pub unsupported: Vec<String>,
}

/// `given_conf_dir`: the main nginx.conf's directory when the operator names it
/// (`--conf-dir`); else it is found beside or above the file, where it usually is.
pub fn import(file: &Path, given_conf_dir: Option<&Path>) -> Result<Import, String> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{name}: cannot read: {e}"))?;
    // Its directory by its real path: `conf.d/crm.conf` run from /etc/nginx has `conf.d` as
    // its directory and /etc/nginx above it, not an empty path.
    let real = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let base = real.parent().unwrap_or(Path::new("."));
    // nginx reads a relative `include` from its configuration directory, not the including
    // file's: a site file of `conf.d/` (or `sites-enabled/`, `vhost/`) including
    // `proxy_params` means the one beside `nginx.conf`. Tried when the file's own directory
    // does not have it, and then written as `[nginx] conf_dir` for `check` and `run`.
    let mut missing = Vec::new();
    let given =
        given_conf_dir.map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf()));
    if let Some(d) = given.as_deref().filter(|d| !d.is_dir()) {
        return Err(format!("--conf-dir {}: not a directory", d.display()));
    }
    let (dirs, conf_dir) = match given {
        // Named: the file's includes are read there, as nginx reads them, each one missing
        // listed with the rest.
        Some(conf) => {
            let dirs = parse_nginx_reading(&name, &text, &conf, Some(&mut missing))
                .map_err(|e| e.to_string())?;
            if let Some(first) = missing.first_mut() {
                *first = format!("{name}: {first}");
            }
            (dirs, Some(conf))
        }
        None => read_finding_conf_dir(&name, &text, base, &mut missing)?,
    };
    let crate::config::rules::ServerBody {
        body,
        http,
        mut refused,
        refuses_other_hosts,
        ..
    } = server_body(dirs);
    // A catch-all refusing the hosts the site does not name, beside a site that names none.
    if let Some(catch_all) = refuses_other_hosts {
        if !crate::config::rules::names_a_host(&body) {
            refused.push(nginx_compat::parse::model::Unsupported {
                directive: "server".into(),
                pos: nginx_compat::parse::Pos {
                    file: name.as_str().into(),
                    line: 1,
                    col: 1,
                },
                detail: Some(format!(
                    "a catch-all server (default_server, answering {}) answers every host the \
                     site's server_name does not name, and it names none: give the site its \
                     server_name",
                    catch_all.describe()
                )),
            });
        }
    }
    let (blocks, maps): (Vec<Directive>, Vec<Directive>) =
        http.into_iter().partition(|d| d.name == "upstream");
    let mut top = maps.clone();
    // `access_log ... main;` or `$connection_upgrade` of a `conf.d/` file: the format or the map
    // is the main nginx.conf's, read from the configuration directory (the file's own, or the
    // one above it), which `check` and `run` then read too.
    let mut conf_dir = conf_dir;
    let tried: Vec<PathBuf> = match &conf_dir {
        Some(d) => vec![d.clone()],
        None => [base.parent(), Some(base)]
            .into_iter()
            .flatten()
            .map(Path::to_path_buf)
            .collect(),
    };
    let both = [top.clone(), body.clone()].concat();
    for dir in tried {
        let formats = crate::config::rules::from_main_file(&dir, &both);
        // `conf_dir` also roots the file's relative includes: only where they are found too.
        let includes_there = conf_dir.is_some() || parse_nginx(&name, &text, &dir).is_ok();
        if !formats.is_empty() && includes_there {
            top.splice(0..0, formats);
            conf_dir.get_or_insert(dir);
            break;
        }
    }
    top.push(Directive {
        name: "server".into(),
        args: Vec::new(),
        block: Some(body.clone()),
        pos: nginx_compat::parse::Pos {
            file: name.as_str().into(),
            line: 1,
            col: 1,
        },
    });
    let (cfg, mut errors) = build_naming_each_error(&mut top);
    // The strict reading's error names the first missing file with its line; the others are
    // said by their `include`.
    if let Some((first, rest)) = missing.split_first() {
        errors.push(first.clone());
        // A file's path is the quoted part of its line.
        let path = |m: &str| m.split('"').nth(1).unwrap_or(m).to_owned();
        errors.extend(
            rest.iter()
                .filter(|m| !first.contains(&format!("\"{}\"", path(m))))
                .map(|m| format!("{name}: {m}")),
        );
    }
    let mut unsupported: Vec<String> = refused.iter().map(ToString::to_string).collect();
    let cfg = match cfg {
        Some(cfg) if errors.is_empty() => cfg,
        // Errors, listed with the rest (no TOML: what it would be made of is in error, and
        // may be a credential).
        cfg => {
            unsupported.extend(errors);
            let rest = cfg.iter().flat_map(|c| c.unsupported.iter());
            unsupported.extend(rest.map(ToString::to_string));
            unsupported.sort_by_key(|l| line_key(l));
            unsupported.dedup();
            return Err(unsupported.join("\n"));
        }
    };
    unsupported.extend(cfg.unsupported.iter().map(ToString::to_string));

    let mut upstreams: BTreeMap<String, String> = BTreeMap::new();
    let mut notes = Vec::new();
    let mut refused_blocks = Vec::new();
    for b in &blocks {
        match upstream_block(b) {
            Ok(block) => {
                let keys = upstream_toml(&block);
                upstreams.insert(block.name, keys);
            }
            Err(why) => {
                unsupported.push(format!(
                    "{}: directive 'upstream' is not supported ({why})",
                    b.pos
                ));
                refused_blocks.extend(b.args.first().map(|a| a.text.clone()));
            }
        }
    }
    collect_upstreams(&body, &maps, &mut upstreams, &mut notes);
    // A refused block's name is no host: `http://crm_cluster` would only fail to resolve.
    for name in &refused_blocks {
        upstreams.remove(name);
    }
    unsupported.sort_by_key(|l| line_key(l));
    unsupported.dedup();

    let include = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let include = toml_str(&include.display().to_string());
    let conf_dir = conf_dir.map(|d| std::fs::canonicalize(&d).unwrap_or(d));
    // nginx's prefix (`-p`), where a relative `root` or `alias` starts (`root html;` of the
    // stock file): a source-built nginx keeps its files in `<prefix>/conf/`, `nginx.conf`
    // there and sites beside it or below (`conf/vhost/`). Elsewhere it is a build setting the
    // file does not tell (`nginx -V` shows it).
    let prefix = std::fs::canonicalize(file).ok().and_then(|f| {
        f.ancestors()
            .skip(1)
            .find(|d| d.file_name().is_some_and(|n| n == "conf") && d.join("nginx.conf").is_file())
            .and_then(|d| d.parent().map(Path::to_path_buf))
    });
    let prefix = match prefix {
        Some(p) => format!("\nprefix = {}", toml_str(&p.display().to_string())),
        None => "\n# prefix = \"/usr/share/nginx\"  # nginx's -p (`nginx -V` shows it): where a \
                 relative root or alias starts;\n#   unset, at the included file's directory"
            .to_owned(),
    };
    let conf_dir = conf_dir
        .map(|d| format!("\nconf_dir = {}", toml_str(&d.display().to_string())))
        .unwrap_or_default()
        + &prefix;
    // 8080, unless the CRM is there already (`proxy_pass http://localhost:8080/`).
    let port = [8080u16, 8088, 8090, 8000]
        .into_iter()
        .find(|p| !upstreams.values().any(|u| u.contains(&format!(":{p}\""))))
        .unwrap_or(8443);
    let host = server_name(&body).unwrap_or("localhost");
    // A file that tells its CRM `X-Forwarded-Proto https` is behind TLS (a front that ends
    // it): the gateway tells the CRM `public_url`'s scheme, so that is the one to start from.
    let public_url = if tells_https(&body) {
        format!(
            "{}\n# (https: the file sets X-Forwarded-Proto https, which the gateway writes from \
             public_url)",
            toml_str(&format!("https://{host}"))
        )
    } else if listens_tls(&body) {
        format!(
            "{}\n# (https: the site listened with TLS, which ends in front of the gateway now)",
            toml_str(&format!("https://{host}"))
        )
    } else {
        toml_str(&format!("http://{host}:{port}"))
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Generated by `wecom-gateway import-nginx {name}`.\n\
         [server]\n\
         listen = \"0.0.0.0:{port}\"\n\
         # How browsers reach the gateway; edit to the public origin.\n\
         public_url = {public_url}\n"
    );
    for note in &notes {
        let _ = writeln!(out, "# {note}");
    }
    for (up, keys) in &upstreams {
        let _ = writeln!(out, "[upstreams.{}]\n{keys}\n", toml_key(up));
    }
    // What is refused is listed on its own (stderr, exit 2), not as a reason to keep the file.
    let refused: std::collections::HashSet<String> = unsupported
        .iter()
        .filter_map(|l| l.split_once(": directive ").map(|(pos, _)| pos.to_owned()))
        .collect();
    let needs_nginx = if maps.is_empty() && blocks.is_empty() {
        needs_nginx(&body, &refused)
    } else {
        vec!["the file's `map`/`upstream` blocks go with it".to_owned()]
    };
    if needs_nginx.is_empty() {
        // The file as it is: the same requests reach the CRM as behind nginx. The routes it
        // could become are offered, with what they change.
        let _ = writeln!(out, "[nginx]\ninclude = [{include}]{conf_dir}\n");
        let mut routes = String::new();
        routes_toml(&body, &upstreams, &mut routes);
        let _ = writeln!(
            out,
            "# Its locations could instead be the gateway's own [[routes]] (below). Unlike the\n\
             # file, a route sends the CRM the client's Host (nginx: the upstream's, $proxy_host),\n\
             # passes the CRM's redirects as they are (nginx: proxy_redirect default rewrites\n\
             # them to the public host) and takes a body of any size (nginx: 1m by default).\n\
             # To use them, uncomment them and remove the [nginx] table above."
        );
        for line in routes.lines() {
            let _ = writeln!(out, "# {line}");
        }
    } else {
        let _ = writeln!(
            out,
            "# These need nginx semantics beyond [[routes]], so the file is included as it is:"
        );
        for why in &needs_nginx {
            // An address may carry a credential (`proxy_pass http://h/?key=...`): not copied.
            let _ = writeln!(out, "#   {}", crate::redact::redact(why));
        }
        let _ = writeln!(out, "[nginx]\ninclude = [{include}]{conf_dir}");
    }
    Ok(Import {
        toml: out,
        unsupported,
    })
}

/// Sort by file, then line number, as a reader scans them.
/// A line's place, `FILE:LINE` or `FILE:LINE:COL`, for the order they are listed in.
fn line_key(l: &str) -> (String, usize, usize) {
    let place = l.split_once(": ").map_or(l, |(p, _)| p);
    let number = |s: &str| s.parse::<usize>().ok();
    match place.rsplit_once(':') {
        Some((rest, last)) => match (number(last), rest.rsplit_once(':')) {
            (Some(col), Some((file, line))) if number(line).is_some() => {
                (file.to_owned(), number(line).unwrap_or(0), col)
            }
            (Some(line), _) => (rest.to_owned(), line, 0),
            (None, _) => (place.to_owned(), 0, 0),
        },
        None => (place.to_owned(), 0, 0),
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A table key, quoted when it is not a bare key.
fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        s.to_owned()
    } else {
        toml_str(s)
    }
}

/// Some `proxy_set_header X-Forwarded-Proto https`, at any level.
fn tells_https(dirs: &[Directive]) -> bool {
    dirs.iter().any(|d| {
        (d.name == "proxy_set_header"
            && matches!(d.args.as_slice(), [n, v]
                if n.text.eq_ignore_ascii_case("x-forwarded-proto") && v.text == "https"))
            || tells_https(d.block.as_deref().unwrap_or(&[]))
    })
}

/// The site's own `listen ... ssl` (or `quic`): browsers reach it by https.
fn listens_tls(body: &[Directive]) -> bool {
    body.iter()
        .any(|d| d.name == "listen" && d.args.iter().any(|a| a.text == "ssl" || a.text == "quic"))
}

fn server_name(body: &[Directive]) -> Option<&str> {
    body.iter()
        .find(|d| d.name == "server_name")
        .and_then(|d| d.args.first())
        .map(|a| a.text.as_str())
        .filter(|n| !n.is_empty() && *n != "_" && !n.contains('*') && !n.starts_with('~'))
}

/// The upstream every `proxy_pass` names: by its host (an `upstream` block is named already).
/// A `proxy_pass http://$backend` whose variable only ever holds hosts written in the file
/// (`set $backend 10.0.0.5:8080;`, a `map`'s values) names those: each gets its entry, as a
/// written host does (without one every request is a 502).
fn collect_upstreams(
    dirs: &[Directive],
    maps: &[Directive],
    out: &mut BTreeMap<String, String>,
    notes: &mut Vec<String>,
) {
    fn add(out: &mut BTreeMap<String, String>, name: String, addr: String) {
        // An `upstream` block of that name is its address already.
        if out.contains_key(addr.as_str()) {
            return;
        }
        let url = format!("url = {}", toml_str(&format!("http://{addr}")));
        if !out.values().any(|u| *u == url) {
            let mut chosen = name.clone();
            let mut n = 2;
            while out.contains_key(&chosen) {
                chosen = format!("{name}_{n}");
                n += 1;
            }
            out.insert(chosen, url);
        }
    }
    fn walk(
        dirs: &[Directive],
        all: &[Directive],
        maps: &[Directive],
        out: &mut BTreeMap<String, String>,
        notes: &mut Vec<String>,
    ) {
        for d in dirs {
            if d.name == "proxy_pass" {
                if let Some(url) = d.args.first().map(|a| a.text.as_str()) {
                    match upstream_of(url) {
                        Some((name, addr)) => add(out, name, addr),
                        None => match variable_hosts(url, all, maps) {
                            Some(hosts) => {
                                for (name, addr) in hosts {
                                    add(out, name, addr);
                                }
                            }
                            None => notes.push(format!(
                                "{}: `proxy_pass {url}` chooses its host per request: add an \
                                 [upstreams.NAME] for every host it can name",
                                d.pos
                            )),
                        },
                    }
                }
            }
            if let Some(block) = &d.block {
                walk(block, all, maps, out, notes);
            }
        }
    }
    walk(dirs, dirs, maps, out, notes);
}

/// Why the file must stay nginx: one line per location or directive routes cannot express
/// (those at a position in `refused` aside: they are not honoured either way).
fn needs_nginx(body: &[Directive], refused: &std::collections::HashSet<String>) -> Vec<String> {
    let mut why = Vec::new();
    let is_refused = |d: &Directive| refused.contains(&d.pos.to_string());
    for d in body {
        if is_refused(d) {
            continue;
        }
        match d.name.as_str() {
            "listen" | "server_name" | "rewrite" => {}
            "location" => {
                let inner = d.block.as_deref().unwrap_or(&[]);
                let pass = inner.iter().find(|c| c.name == "proxy_pass");
                let plain = pass
                    .and_then(|p| p.args.first())
                    .is_some_and(|a| plain_pass(&a.text));
                let other = inner.iter().find(|c| {
                    !matches!(c.name.as_str(), "proxy_pass" | "rewrite") && !is_refused(c)
                });
                match (pass, plain, other) {
                    (Some(_), true, None) => {}
                    (_, _, Some(c)) => {
                        why.push(format!("{}: location {} uses '{}'", d.pos, args(d), c.name))
                    }
                    (Some(p), false, None) => why.push(format!(
                        "{}: location {} proxies to {} (a URI part or variables)",
                        d.pos,
                        args(d),
                        args(p)
                    )),
                    (None, _, None) if inner.iter().any(|c| c.name == "rewrite") => {
                        why.push(format!(
                            "{}: location {} only rewrites (no proxy_pass: what no rewrite \
                             sends elsewhere is served as static files)",
                            d.pos,
                            args(d)
                        ))
                    }
                    (None, _, None) => why.push(format!(
                        "{}: location {} has no proxy_pass (it serves static files)",
                        d.pos,
                        args(d)
                    )),
                }
            }
            other => why.push(format!("{}: '{other}' at server level", d.pos)),
        }
    }
    why
}

/// `proxy_pass http://host[:port]`, which a `[[routes]]` entry says as well.
fn plain_pass(url: &str) -> bool {
    url.strip_prefix("http://")
        .is_some_and(|a| !a.is_empty() && !a.contains(['/', '$', '?']))
}

fn args(d: &Directive) -> String {
    d.args
        .iter()
        .map(|a| a.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn rewrite_fields(d: &Directive) -> String {
    let mut s = format!(
        "pattern = {}, replacement = {}",
        toml_str(&d.args[0].text),
        toml_str(&d.args[1].text)
    );
    if let Some(flag) = d.args.get(2) {
        let _ = write!(s, ", flag = {}", toml_str(&flag.text));
    }
    s
}

fn routes_toml(body: &[Directive], upstreams: &BTreeMap<String, String>, out: &mut String) {
    for d in body
        .iter()
        .filter(|d| d.name == "rewrite" && d.args.len() >= 2)
    {
        let _ = writeln!(
            out,
            "[[rewrite]]  # {}\npattern = {}\nreplacement = {}",
            d.pos,
            toml_str(&d.args[0].text),
            toml_str(&d.args[1].text)
        );
        if let Some(flag) = d.args.get(2) {
            let _ = writeln!(out, "flag = {}", toml_str(&flag.text));
        }
        out.push('\n');
    }
    for d in body.iter().filter(|d| d.name == "location") {
        let inner = d.block.as_deref().unwrap_or(&[]);
        let Some(up) = inner
            .iter()
            .find(|c| c.name == "proxy_pass")
            .and_then(|c| c.args.first())
            .and_then(|a| upstream_of(&a.text))
            .map(|(n, _)| n)
            .filter(|n| upstreams.contains_key(n))
        else {
            continue;
        };
        let _ = writeln!(
            out,
            "[[routes]]  # {}\nlocation = {}\nupstream = {}",
            d.pos,
            toml_str(&args(d)),
            toml_str(&up)
        );
        let rewrites: Vec<String> = inner
            .iter()
            .filter(|c| c.name == "rewrite" && c.args.len() >= 2)
            .map(|c| format!("  {{ {} }},", rewrite_fields(c)))
            .collect();
        if !rewrites.is_empty() {
            let _ = writeln!(out, "rewrite = [\n{}\n]", rewrites.join("\n"));
        }
        out.push('\n');
    }
}
