//! The checks that need more than one value, and the build of the runtime model.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use nginx_compat::location::{Location, LocationSet, Modifier};
use serde_spanned::Spanned;

use super::app::compile_app;
use super::checked::{base_url, duration, secret};
use super::error::{route_path, ConfigError, Source};
use super::file::{self, AppKind, ExternalContactMode};
use super::model::*;
use super::rules::GuardAnswer;
use super::values::Text;
use crate::domain::balance;

const DEFAULT_PREFIX: &str = "/_gateway";
const DEFAULT_COOKIE: &str = "wgw_session";
const MIN_KEY_BYTES: usize = 32;
/// `[store] path` when none is written: beside the config file.
const DEFAULT_STORE_FILE: &str = "wecom-gateway.db";

type Result<T> = std::result::Result<T, ConfigError>;

pub(super) fn compile(f: file::File, src: &Source<'_>, dir: &Path) -> Result<Config> {
    let server = compile_server(&f.server, src)?;
    let session = f
        .session
        .as_ref()
        .map(|s| compile_session(s, &server, src))
        .transpose()?;
    let store = compile_store(&f.store, src, dir)?;

    let mut upstreams = BTreeMap::new();
    for (name, up) in &f.upstreams {
        let compiled = compile_upstream(name, up, src)?;
        let servers = compiled.balance.as_ref().map(|b| &b.servers[..]);
        let addrs = servers.map_or(vec![compiled.addr], |s| s.iter().map(|s| s.addr).collect());
        if addrs.into_iter().any(|a| is_own_listener(&server, a)) {
            return Err(src.error(
                up.span(),
                format!("[upstreams.{name}]"),
                "is the gateway's own listener: every request would come back to it (run the \
                 CRM on another port, or move [server].listen)",
            ));
        }
        upstreams.insert(name.clone(), Arc::new(compiled));
    }
    let mut apps = BTreeMap::new();
    for (name, app) in &f.apps {
        // The name is a path segment (`{prefix}/callback/NAME`, the qyapi endpoint's
        // `/NAME/cgi-bin/...`) and a query value (`?app=NAME`): one no URL can name is refused.
        let plain = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !plain || name.is_empty() || name == "." || name == ".." || name.len() > 64 {
            return Err(src.error(
                app.span(),
                format!("[apps.{name}]"),
                "an app's name is up to 64 letters, digits, '_', '-' and '.' (it is a URL path \
                 segment: the callback URL, the qyapi endpoint's prefix)",
            ));
        }
        apps.insert(
            name.clone(),
            Arc::new(compile_app(name, app, &upstreams, src)?),
        );
    }
    super::callback::require_assertion_secret(&f, &apps, session.as_ref(), src)?;
    require_durable_store_for_suites(&f, &store, src)?;

    let mut routes = Vec::new();
    let mut locations = Vec::new();
    let mut areas = Vec::new();
    for (i, r) in f.routes.iter().enumerate() {
        let route = compile_route(i, r.get_ref(), &apps, &upstreams, session.is_some(), src)?;
        let location = Location::parse(route.location.as_str()).map_err(|e| {
            src.error(
                r.get_ref().location.span(),
                route_path(i, "location"),
                e.to_string(),
            )
        })?;
        // nginx loads `location reports/` and matches nothing with it: a route, and the login
        // it asks for, would be walked past (the next route, a public one, answers).
        if !location.modifier().is_regex() && !location.pattern().starts_with('/') {
            return Err(src.error(
                r.get_ref().location.span(),
                route_path(i, "location"),
                format!(
                    "\"{}\" matches no request: a path starts with '/' (a prefix \"/reports/\", \
                     an exact \"= /reports\", a regex \"~ ^/reports\")",
                    route.location
                ),
            ));
        }
        if route_under_prefix(&location, &server.prefix) {
            return Err(src.error(
                r.get_ref().location.span(),
                route_path(i, "location"),
                format!(
                    "\"{}\" is under [server].prefix \"{}\", the gateway's own paths: no \
                     request would reach it (move the prefix, or the route)",
                    route.location, server.prefix
                ),
            ));
        }
        if route.login.is_some() {
            areas.push((location.clone(), i));
        }
        // A login area only is no location: what serves its paths is found without it.
        if route.upstream.is_none() {
            routes.push(route);
            continue;
        }
        // nginx's "duplicate location", said where the second one is written.
        let exact = matches!(location.modifier(), Modifier::Exact);
        let earlier = locations.iter().find(|(l, _): &&(Location, usize)| {
            !location.modifier().is_regex()
                && !l.modifier().is_regex()
                && matches!(l.modifier(), Modifier::Exact) == exact
                && l.pattern() == location.pattern()
        });
        if let Some((_, first)) = earlier {
            return Err(src.error(
                r.get_ref().location.span(),
                route_path(i, "location"),
                format!(
                    "duplicate location \"{}\" (already {})",
                    route.location,
                    route_path(*first, "location")
                ),
            ));
        }
        locations.push((location, i));
        routes.push(route);
    }
    // nginx's auto-redirect of a proxied location whose name ends in '/' (the request for
    // `/p` gets a 301 to `/p/`): without it `/p` would reach another route, outside `/p/`'s
    // protected area.
    let redirects: Vec<bool> = locations
        .iter()
        .map(|(l, _)| !l.modifier().is_regex() && l.pattern().ends_with('/'))
        .collect();
    let matcher = LocationSet::with_auto_redirect(locations, redirects).map_err(|e| {
        let span = f.routes.first().map_or(0..0, |r| r.span());
        src.error(span, "[[routes]]", e.to_string())
    })?;
    let areas_have_upper = areas
        .iter()
        .any(|(l, _)| l.pattern().bytes().any(|b| b.is_ascii_uppercase()));
    let areas_exact = areas
        .iter()
        .any(|(l, _)| matches!(l.modifier(), Modifier::Exact) || l.modifier().is_regex());
    let roots = |fold: bool| -> Vec<(Box<[u8]>, usize)> {
        areas
            .iter()
            .filter(|(l, _)| {
                matches!(
                    l.modifier(),
                    Modifier::Prefix | Modifier::PrefixNoRegex | Modifier::Exact
                ) && l.pattern().len() > 1
                    && l.pattern().ends_with('/')
            })
            .map(|(l, i)| {
                let name = &l.pattern().as_bytes()[..l.pattern().len() - 1];
                let name = if fold {
                    name.to_ascii_lowercase()
                } else {
                    name.to_vec()
                };
                (name.into_boxed_slice(), *i)
            })
            .collect()
    };
    let (area_roots, folded_area_roots) = (roots(false), roots(true));
    let open_area_roots: Vec<(Box<[u8]>, usize)> = area_roots
        .iter()
        .filter(|(_, i)| routes[*i].upstream.is_none())
        .cloned()
        .collect();
    // Two areas that differ only in case fold into one: the first keeps it.
    let routes_span = f.routes.first().map_or(0..0, |r| r.span());
    let mut folded = Vec::new();
    for (loc, i) in &areas {
        let fl = fold_location(loc)
            .map_err(|e| src.error(routes_span.clone(), "[[routes]]", e.to_string()))?;
        let seen = folded.iter().any(|(g, _): &(Location, usize)| {
            g.modifier() == fl.modifier() && g.pattern() == fl.pattern()
        });
        if !seen {
            folded.push((fl, *i));
        }
    }
    let folded_areas = LocationSet::new(folded)
        .map_err(|e| src.error(routes_span.clone(), "[[routes]]", e.to_string()))?;
    let areas = LocationSet::new(areas).map_err(|e| {
        let span = f.routes.first().map_or(0..0, |r| r.span());
        src.error(span, "[[routes]]", e.to_string())
    })?;

    let mut nginx_includes = Vec::new();
    for (i, inc) in f.nginx.include.iter().enumerate() {
        let path = dir.join(inc.get_ref().as_str());
        let key = || format!("[nginx].include[{}]", i + 1);
        // A pattern as in nginx's own `include` (BaoTa's `vhost/*.conf`, `sites/*/site.conf`):
        // the files it matches, in name order. Matching none is a mistake here, not nginx's
        // silent nothing: the site would be served by no rules at all.
        if super::glob::is_pattern(inc.get_ref().as_str()) {
            let found = super::rules::expand_include(dir, inc.get_ref().as_str())
                .map_err(|e| src.error(inc.span(), key(), e))?;
            if found.is_empty() {
                return Err(src.error(
                    inc.span(),
                    key(),
                    format!("'{}' matches no file", path.display()),
                ));
            }
            nginx_includes.extend(found);
            continue;
        }
        if !path.is_file() {
            return Err(src.error(
                inc.span(),
                key(),
                format!("cannot read '{}'", path.display()),
            ));
        }
        nginx_includes.push(path);
    }

    let nginx_dir = |key: &'static str, value: &Option<Spanned<Text>>| {
        let Some(v) = value else {
            return Ok(None);
        };
        let path = dir.join(v.get_ref().as_str());
        if !path.is_dir() {
            return Err(src.error(
                v.span(),
                key,
                format!("'{}' is not a directory", path.display()),
            ));
        }
        Ok(Some(path))
    };
    let nginx_paths = super::rules::NginxPaths {
        prefix: nginx_dir("[nginx].prefix", &f.nginx.prefix)?,
        conf_dir: nginx_dir("[nginx].conf_dir", &f.nginx.conf_dir)?,
    };
    let mut rules = super::rules::compile(&f, &upstreams, &nginx_includes, &nginx_paths, src)?;
    // A location of the file under the gateway's own prefix is never reached: the gateway's
    // endpoints answer there first (a `[[routes]]` entry there is refused; the file's is said).
    if let Some(r) = rules.as_mut() {
        let shadowed: Vec<String> = r
            .server
            .locations()
            .iter()
            .skip(r.routes)
            .filter(|(l, _)| route_under_prefix(l, &server.prefix))
            .map(|(l, _)| {
                format!(
                    "location {l}: under [server].prefix \"{}\", the gateway's own paths: no \
                     request reaches it",
                    server.prefix
                )
            })
            .collect();
        r.noted.extend(shadowed);
        // The sign-in comes back to `public_url`: a catch-all refusing its host would close it
        // (said, not refused: a proxy in front may set a `Host` of the site's).
        if let Some(g) = r.host_guard.as_ref() {
            if let Some(answer) = g.route(server.public_host.as_bytes()) {
                r.noted.push(format!(
                    "[server].public_url: its host ({}) is not among the site's server_name, \
                     and another server block of the nginx file answers it: sign-ins and \
                     WeCom's callbacks coming back to it would meet {} unless a proxy in front \
                     sets a Host the site names; name the host in server_name",
                    server.public_host.to_str().unwrap_or("?"),
                    match answer {
                        GuardAnswer::Status(444) => "a closed connection",
                        GuardAnswer::Status(_) => "its refusal",
                        GuardAnswer::Redirect(_) => "its redirect",
                    }
                ));
            }
        }
    }
    let rules = rules.map(Arc::new);
    // An nginx file's `large_client_header_buffers` holds where `[server]` says nothing.
    let mut server = server;
    if f.server.get_ref().large_client_header_buffers.is_none() {
        if let Some(b) = rules.as_ref().and_then(|r| r.server.header_buffers()) {
            server.header_buffers = b;
        }
    }

    let emulator = EmulatorSettings {
        enabled: f.emulator.enabled,
        listen: match &f.emulator.listen {
            Some(l) => socket_addr(l, "[emulator].listen", src)?,
            None => "127.0.0.1:9100".parse().expect("literal address"),
        },
    };

    // The emulator's listener beside the gateway's own: the start would fail to bind it.
    if emulator.enabled {
        let span = f
            .emulator
            .listen
            .as_ref()
            .map_or_else(|| src.table_span("emulator"), Spanned::span);
        let ours = [
            ("listen", Some(server.listen.as_str())),
            ("admin_listen", server.admin_listen.as_deref()),
            ("qyapi_listen", server.qyapi_listen.as_deref()),
        ];
        for (key, addr) in ours {
            let Some(a) = addr.and_then(|a| a.parse::<SocketAddr>().ok()) else {
                continue;
            };
            if overlap(a, emulator.listen) {
                return Err(src.error(
                    span,
                    "[emulator].listen",
                    format!(
                        "{} overlaps [server].{key}: each listener needs its own address",
                        emulator.listen
                    ),
                ));
            }
        }
    }
    let mut warnings = shared_callback_keys(&apps);
    // Several instances: the refresh lock must outlive a slow gettoken (WeCom is given 5 s),
    // else another instance fetches too (an Official Account's tokens replace each other).
    if store.backend == StoreBackend::Redis && store.lock_ttl < DEFAULT_LOCK_TTL {
        warnings.push(format!(
            "[store].lock_ttl = {:?} is shorter than two provider timeouts ({:?}): a gettoken \
             WeCom is slow to answer outlives the refresh lock, and another instance fetches \
             too (a callback lease is taken over sooner, which is what a short lock_ttl buys)",
            store.lock_ttl, DEFAULT_LOCK_TTL
        ));
    }
    if let Some(r) = &rules {
        warnings.extend(shadowed_named_locations(&r.server.named));
    }
    let routes = Arc::new(RouteTable {
        routes,
        matcher,
        areas,
        folded_areas,
        areas_have_upper,
        areas_exact,
        area_roots,
        folded_area_roots,
        open_area_roots,
    });
    warnings.extend(public_callback_paths(&apps, &routes, rules.as_deref()));
    let mut app_order: Vec<(usize, String)> = f
        .apps
        .iter()
        .map(|(name, a)| (a.span().start, name.clone()))
        .collect();
    app_order.sort();
    Ok(Config {
        server,
        session,
        store,
        warnings,
        apps,
        app_order: app_order.into_iter().map(|(_, name)| name).collect(),
        upstreams,
        routes,
        rules,
        emulator,
    })
}

/// The most worker threads a listener may be given.
const MAX_THREADS: usize = 256;

/// `loc` as a server that ignores case reads it: a path lowercased, a regex caseless.
fn fold_location(loc: &Location) -> std::result::Result<Location, nginx_compat::LocationError> {
    match loc.modifier() {
        Modifier::Regex | Modifier::RegexCaseless => {
            Location::new(Modifier::RegexCaseless, loc.pattern())
        }
        m => Location::new(m, &loc.pattern().to_ascii_lowercase()),
    }
}

/// Whether binding `b` fails once `a` is bound: the same fixed port, and the same address, or a
/// wildcard of its family (`::` takes IPv4 too, dual-stack as Linux binds it).
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    let wild = |x: SocketAddr, y: SocketAddr| {
        x.ip().is_unspecified() && (x.is_ipv6() || x.is_ipv4() == y.is_ipv4())
    };
    a.port() == b.port() && a.port() != 0 && (a.ip() == b.ip() || wild(a, b) || wild(b, a))
}

fn socket_addr(v: &Spanned<Text>, path: &str, src: &Source<'_>) -> Result<SocketAddr> {
    v.get_ref().as_str().parse().map_err(|_| {
        src.error(
            v.span(),
            path,
            format!(
                "'{}' is not a socket address (expected \"IP:PORT\" like \"127.0.0.1:8080\")",
                v.get_ref().as_str()
            ),
        )
    })
}

/// Every request `location` matches is under the gateway's `prefix` (its own endpoints, which
/// answer before any route is looked at).
fn route_under_prefix(location: &Location, prefix: &str) -> bool {
    let exact = matches!(location.modifier(), Modifier::Exact);
    !location.modifier().is_regex()
        && location
            .pattern()
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/') || (exact && rest.is_empty()))
}

fn compile_server(s: &Spanned<file::Server>, src: &Source<'_>) -> Result<ServerSettings> {
    let s = s.get_ref();
    let listen_addr = socket_addr(&s.listen, "[server].listen", src)?;
    let listen = listen_addr.to_string();
    let public_url = base_url(&s.public_url, "[server].public_url", src)?;
    if public_url.path() != "/" {
        return Err(src.error(
            s.public_url.span(),
            "[server].public_url",
            "must be an origin without a path (the gateway owns the whole host)",
        ));
    }
    // Port 0 in `public_url` stands for the port a `listen` port 0 binds (tests, supervisors
    // that read `--ports-file`); with a fixed `listen` no browser could ever reach it.
    if public_url.port() == Some(0) && listen_addr.port() != 0 {
        return Err(src.error(
            s.public_url.span(),
            "[server].public_url",
            "has port 0, which only means 'the port listen binds' when listen's port is 0 too",
        ));
    }
    let public_origin = public_url.origin().ascii_serialization();
    let public_host = super::model::url_host(&public_url).map_err(|_| {
        src.error(
            s.public_url.span(),
            "[server].public_url",
            "has a host that cannot be a header value",
        )
    })?;
    let admin_listen = s
        .admin_listen
        .as_ref()
        .map(|a| socket_addr(a, "[server].admin_listen", src).map(|a| a.to_string()))
        .transpose()?;
    let qyapi_listen = s
        .qyapi_listen
        .as_ref()
        .map(|a| socket_addr(a, "[server].qyapi_listen", src).map(|a| a.to_string()))
        .transpose()?;
    // Two listeners whose addresses overlap: the second could never bind.
    let parsed = |a: &Option<String>| a.as_deref().and_then(|a| a.parse::<SocketAddr>().ok());
    let mut bound: Vec<(&str, SocketAddr)> = vec![("listen", listen_addr)];
    for (other, key, addr) in [
        (&s.admin_listen, "admin_listen", parsed(&admin_listen)),
        (&s.qyapi_listen, "qyapi_listen", parsed(&qyapi_listen)),
    ] {
        let (Some(v), Some(a)) = (other, addr) else {
            continue;
        };
        if let Some((first, _)) = bound.iter().find(|(_, b)| overlap(*b, a)) {
            return Err(src.error(
                v.span(),
                format!("[server].{key}"),
                format!("{a} overlaps [server].{first}: each listener needs its own address"),
            ));
        }
        bound.push((key, a));
    }
    let mut qyapi_allow = Vec::new();
    for (i, net) in s.qyapi_allow.iter().enumerate() {
        let text = net.get_ref().as_str();
        let parsed = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| {
                src.error(
                    net.span(),
                    format!("[server].qyapi_allow[{}]", i + 1),
                    format!("'{text}' is not a network (expected CIDR like \"127.0.0.1/32\")"),
                )
            })?;
        // `10.1.2.3/8` is all of 10.0.0.0/8: more than the one host it names (nginx warns of
        // "low address bits").
        if parsed.addr() != parsed.network() {
            return Err(src.error(
                net.span(),
                format!("[server].qyapi_allow[{}]", i + 1),
                format!(
                    "'{text}' has host bits set: it allows all of {}; write that, or {}/{} for \
                     the one address",
                    parsed.trunc(),
                    parsed.addr(),
                    parsed.max_prefix_len()
                ),
            ));
        }
        qyapi_allow.push(parsed);
    }
    if qyapi_allow.is_empty() {
        // Loopback only unless told otherwise: the endpoint hands out the app's power.
        qyapi_allow = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    }
    let threads = match &s.threads {
        Some(t) if *t.get_ref() == 0 => {
            return Err(src.error(t.span(), "[server].threads", "must be at least 1"))
        }
        // Each listener runs this many: thousands fail to start, after the gateway said it
        // listens.
        Some(t) if *t.get_ref() > MAX_THREADS => {
            return Err(src.error(
                t.span(),
                "[server].threads",
                format!(
                    "at most {MAX_THREADS} (each listener runs this many; one per CPU core is \
                     the most that helps)"
                ),
            ))
        }
        Some(t) => *t.get_ref(),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let prefix = match &s.prefix {
        None => DEFAULT_PREFIX.to_owned(),
        Some(p) => {
            let text = p.get_ref().as_str().trim_end_matches('/');
            // Every segment a name: `//gw` is another host to a browser (its sign-in script
            // would go there), `/..` climbs out of the prefix.
            let ok = text.starts_with('/')
                && text.len() > 1
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b))
                && text[1..]
                    .split('/')
                    .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
            if !ok {
                return Err(src.error(
                    p.span(),
                    "[server].prefix",
                    "expected a path like \"/_gateway\" (segments of letters, digits, '_', \
                     '-', '.'; no empty, \".\" or \"..\" segment)",
                ));
            }
            text.to_owned()
        }
    };
    // nginx's defaults; pingora counts keep-alive in whole seconds.
    let keepalive_timeout = match &s.keepalive_timeout {
        None => Duration::from_secs(75),
        Some(v) => {
            // Zero is allowed here: it turns keep-alive off, as in nginx.
            let text = v.get_ref().as_str().trim();
            let d = match humantime::parse_duration(text) {
                Ok(d) => d,
                Err(_) => duration(v, "[server].keepalive_timeout", src)?,
            };
            if d.subsec_nanos() != 0 || d > Duration::from_secs(3600) {
                return Err(src.error(
                    v.span(),
                    "[server].keepalive_timeout",
                    "expected whole seconds from \"0s\" (no keep-alive) to \"1h\"",
                ));
            }
            d
        }
    };
    let header_timeout = match &s.header_timeout {
        None => Duration::from_secs(60),
        Some(v) => {
            let d = duration(v, "[server].header_timeout", src)?;
            if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&d) {
                return Err(src.error(
                    v.span(),
                    "[server].header_timeout",
                    "expected between \"100ms\" and \"1h\"",
                ));
            }
            d
        }
    };
    let max_connections = match &s.max_connections {
        None => 20_000,
        Some(m) if !(1..=1_000_000).contains(m.get_ref()) => {
            return Err(src.error(
                m.span(),
                "[server].max_connections",
                "expected between 1 and 1000000",
            ))
        }
        Some(m) => *m.get_ref(),
    };
    let header_buffers = match &s.large_client_header_buffers {
        None => DEFAULT_HEADER_BUFFERS,
        Some(v) => header_buffers(v, src)?,
    };
    let forward_auth_key = match &s.forward_auth_key {
        None => None,
        Some(k)
            if k.get_ref().as_str().len() < 16
                || !k
                    .get_ref()
                    .as_str()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric()) =>
        {
            return Err(src.error(
                k.span(),
                "[server].forward_auth_key",
                "expected at least 16 letters and digits (a random secret the front proxy sends)",
            ))
        }
        Some(k) => Some(wecom_api::Secret::new(k.get_ref().as_str().to_owned())),
    };
    Ok(ServerSettings {
        forward_auth_key,
        listen,
        public_url,
        public_origin,
        admin_listen,
        qyapi_listen,
        qyapi_allow,
        threads,
        prefix,
        public_host,
        trust_host_header: s.trust_host_header,
        keepalive_timeout,
        header_timeout,
        max_connections,
        max_connections_written: s.max_connections.is_some(),
        header_buffers,
    })
}

/// nginx's `large_client_header_buffers 4 8k`.
const DEFAULT_HEADER_BUFFERS: nginx_compat::HeaderBuffers = nginx_compat::HeaderBuffers {
    size: 8 * 1024,
    total: 32 * 1024,
};

/// `[server].large_client_header_buffers = "NUMBER SIZE"`, checked as nginx checks its
/// directive; the whole head at most 1 MiB, which the engine reads at most.
fn header_buffers(v: &Spanned<Text>, src: &Source<'_>) -> Result<nginx_compat::HeaderBuffers> {
    const KEY: &str = "[server].large_client_header_buffers";
    let text = v.get_ref().as_str();
    let bad = |why: String| src.error(v.span(), KEY, why);
    let mut words = text.split_whitespace();
    let (Some(number), Some(size), None) = (words.next(), words.next(), words.next()) else {
        return Err(bad(format!(
            "'{text}' is not a number of buffers and a size (expected a string like \"4 8k\")"
        )));
    };
    let number = match number.parse::<u64>() {
        Ok(n) if n > 0 && number.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => {
            return Err(bad(format!(
                "'{number}' is not a number of buffers above 0"
            )))
        }
    };
    let size = super::values::parse_size(size).map_err(bad)?;
    let max = nginx_compat::parse::model::HEADER_BUFFERS_MAX;
    let total = number.saturating_mul(size);
    if size < nginx_compat::parse::model::CONNECTION_POOL_SIZE || total > max {
        return Err(bad(format!(
            "'{text}': the size must be at least 512 and the whole at most 1m"
        )));
    }
    Ok(nginx_compat::HeaderBuffers {
        size: size as usize,
        total: total as usize,
    })
}

fn compile_session(
    s: &Spanned<file::Session>,
    server: &ServerSettings,
    src: &Source<'_>,
) -> Result<SessionSettings> {
    let s = s.get_ref();
    let cookie_name = match &s.cookie_name {
        None => DEFAULT_COOKIE.to_owned(),
        Some(c) => {
            let text = c.get_ref().as_str();
            let ok = !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return Err(src.error(
                    c.span(),
                    "[session].cookie_name",
                    "expected letters, digits, '_' or '-'",
                ));
            }
            // Browsers keep a `__Host-` or `__Secure-` cookie only when it is `Secure`, which
            // the gateway's cookies are on an https `public_url` alone: on http every sign-in
            // would end without a session, and start again.
            let prefixed = text.starts_with("__Host-") || text.starts_with("__Secure-");
            if prefixed && server.public_url.scheme() != "https" {
                return Err(src.error(
                    c.span(),
                    "[session].cookie_name",
                    "a __Host- or __Secure- cookie needs an https [server].public_url",
                ));
            }
            text.to_owned()
        }
    };
    let session_secret = secret(&s.secret, "[session].secret", MIN_KEY_BYTES, src)?;
    let assertion_secret = s
        .assertion_secret
        .as_ref()
        .map(|a| secret(a, "[session].assertion_secret", MIN_KEY_BYTES, src))
        .transpose()?;
    let assertion_audience = match &s.assertion_audience {
        None => None,
        Some(a) => {
            let text = a.get_ref().as_str();
            // It travels in a header value and is compared by the CRM as is.
            if !(1..=256).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(src.error(
                    a.span(),
                    "[session].assertion_audience",
                    "expected 1 to 256 printable ASCII characters without spaces",
                ));
            }
            if s.assertion_secret.is_none() {
                return Err(src.error(
                    a.span(),
                    "[session].assertion_audience",
                    "needs assertion_secret: without it no assertion is sent",
                ));
            }
            Some(text.to_owned())
        }
    };
    let policy_ttl = match &s.policy_ttl {
        None => DEFAULT_POLICY_TTL,
        Some(v) => {
            let d = duration(v, "[session].policy_ttl", src)?;
            if !(Duration::from_secs(1)..=Duration::from_secs(24 * 3600)).contains(&d) {
                return Err(src.error(
                    v.span(),
                    "[session].policy_ttl",
                    "expected between \"1s\" and \"24h\"",
                ));
            }
            d
        }
    };
    // Sessions are checked in whole seconds: under a second every session is over when it
    // opens, and a sign-in that ends before the next page loops (SPEC section 8: never a loop).
    // Past 30 days the records that end sessions early would have to be kept as long.
    let ttl = s.ttl.unwrap_or(Duration::from_secs(8 * 3600));
    if ttl < Duration::from_secs(60) {
        return Err(src.error(
            src.key_span("session", "ttl"),
            "[session].ttl",
            "expected at least \"1m\": a shorter session signs its member in again on every page",
        ));
    }
    if ttl > MAX_SESSION_TTL {
        return Err(src.error(
            src.key_span("session", "ttl"),
            "[session].ttl",
            "expected at most \"30d\"",
        ));
    }
    Ok(SessionSettings {
        policy_ttl,
        assertion_audience,
        // Only the derived key is kept: the raw secret leaves memory with the parsed file.
        key: cookie::Key::derive_from(session_secret.expose().as_bytes()),
        cookie_name,
        ttl,
        assertion_key: assertion_secret
            .as_ref()
            .map(|a| AssertionKey::new(a.expose().as_bytes())),
        assertion_secret,
        generation: SessionSettings::next_generation(),
    })
}

/// A named location written again (in one file, or in two included files the gateway joins
/// into one server) never answers: the first of the name does, as in nginx. Loaded, and said,
/// so that a second file's fallback going to the first file's backend is not a surprise.
fn shadowed_named_locations(named: &[nginx_compat::LocConf]) -> Vec<String> {
    let mut first: std::collections::HashMap<&str, &nginx_compat::LocConf> =
        std::collections::HashMap::new();
    let mut warnings = Vec::new();
    for conf in named {
        match first.get(conf.name()) {
            Some(earlier) => warnings.push(format!(
                "location {} at {} never answers: the one at {} does (nginx takes the first)",
                conf.name(),
                conf.pos,
                earlier.pos
            )),
            None => {
                first.insert(conf.name(), conf);
            }
        }
    }
    warnings
}

/// Suite tickets, permanent codes and installed corps must survive a restart (SPEC section
/// 21): with `memory` every install would be lost, and WeCom sends each `create_auth` once.
fn require_durable_store_for_suites(
    f: &file::File,
    store: &StoreSettings,
    src: &Source<'_>,
) -> Result<()> {
    if store.backend != StoreBackend::Memory {
        return Ok(());
    }
    let suite = f.apps.iter().find(|(_, a)| {
        matches!(
            a.get_ref().kind.get_ref(),
            AppKind::WecomSuite | AppKind::WecomCustom
        )
    });
    match suite {
        Some((name, _)) => Err(src.error(
            src.key_span("store", "backend"),
            "[store].backend",
            format!(
                "\"memory\" loses the installs of [apps.{name}] at restart: use \"local\" or \"redis\""
            ),
        )),
        None => Ok(()),
    }
}

fn compile_store(s: &file::Store, src: &Source<'_>, dir: &Path) -> Result<StoreSettings> {
    let backend = s.backend.unwrap_or_default();
    let mut unused_redis_url = false;
    let redis_url = match (&backend, &s.redis_url) {
        (StoreBackend::Redis, None) => {
            return Err(src.error(
                src.table_span("store"),
                "[store].redis_url",
                "required when backend = \"redis\"",
            ))
        }
        // `backend` written beside it (the reference block of every key): the choice is made,
        // and the URL only said not to be used.
        (StoreBackend::Local | StoreBackend::Memory, Some(_)) if s.backend.is_some() => {
            unused_redis_url = true;
            None
        }
        // Without `backend = "redis"` the URL would be ignored: one instance's store, where
        // several were meant to share one.
        (StoreBackend::Local | StoreBackend::Memory, Some(u)) => {
            return Err(src.error(
                u.span(),
                "[store].redis_url",
                "only for backend = \"redis\" (add it, or remove redis_url)",
            ))
        }
        (_, Some(u)) => {
            let text = u.get_ref().as_str();
            if let Some(e) = super::checked::inline_reference(text) {
                return Err(src.error(u.span(), "[store].redis_url", e));
            }
            if !(text.starts_with("redis://")
                || text.starts_with("rediss://")
                || text.starts_with("unix://"))
            {
                return Err(src.error(
                    u.span(),
                    "[store].redis_url",
                    "expected a URL like \"redis://127.0.0.1:6379/0\"",
                ));
            }
            // What `run` would refuse (a port or database that is no number), `check` refuses
            // here, at the key; the URL itself is never printed (it may hold a password).
            if let Err(e) = redis::IntoConnectionInfo::into_connection_info(text) {
                return Err(src.error(
                    u.span(),
                    "[store].redis_url",
                    format!(
                        "not a Redis URL ({:?}): expected redis://[:PASSWORD@]HOST:PORT/DB",
                        e.kind()
                    ),
                ));
            }
            Some(Secret::new(text.to_owned()))
        }
        (_, None) => None,
    };
    let lock_ttl = s.lock_ttl.unwrap_or(DEFAULT_LOCK_TTL);
    if !(Duration::from_secs(1)..=Duration::from_secs(300)).contains(&lock_ttl) {
        return Err(src.error(
            src.key_span("store", "lock_ttl"),
            "[store].lock_ttl",
            "expected between \"1s\" and \"300s\"",
        ));
    }
    let path = match &s.path {
        Some(p) if backend != StoreBackend::Local => {
            return Err(src.error(p.span(), "[store].path", "only for backend = \"local\""))
        }
        Some(p) if p.get_ref().as_str().is_empty() => {
            return Err(src.error(p.span(), "[store].path", "must not be empty"))
        }
        Some(p) => {
            let path = dir.join(p.get_ref().as_str());
            // Caught here rather than as `run`'s I/O error, without a key or a line.
            if let Some(parent) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if !parent.is_dir() {
                    return Err(src.error(
                        p.span(),
                        "[store].path",
                        format!("the directory {} does not exist", parent.display()),
                    ));
                }
            }
            // A directory, or a device (`/dev/null`): never a store file.
            if std::fs::metadata(&path).is_ok_and(|m| !m.is_file()) {
                return Err(src.error(
                    p.span(),
                    "[store].path",
                    format!("{} is not a file: name the store's file", path.display()),
                ));
            }
            path
        }
        None => dir.join(DEFAULT_STORE_FILE),
    };
    Ok(StoreSettings {
        backend,
        path,
        redis_url,
        unused_redis_url,
        key_prefix: s
            .key_prefix
            .as_ref()
            .map_or("wgw:".to_owned(), |p| p.as_str().to_owned()),
        lock_ttl,
    })
}

/// `addr` is one of the gateway's listeners (an address of this host on a listener's port: a
/// wildcard listener takes loopback too). Port 0 is never one.
fn is_own_listener(server: &ServerSettings, addr: SocketAddr) -> bool {
    [
        Some(&server.listen),
        server.admin_listen.as_ref(),
        server.qyapi_listen.as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|l| l.parse::<SocketAddr>().ok())
    .any(|l| {
        l.port() != 0
            && l.port() == addr.port()
            && (l.ip() == addr.ip()
                || (l.ip().is_unspecified()
                    && (addr.ip().is_loopback() || addr.ip().is_unspecified())))
    })
}

fn compile_upstream(name: &str, u: &Spanned<file::Upstream>, src: &Source<'_>) -> Result<Upstream> {
    let span = u.span();
    let u = u.get_ref();
    let servers = match (&u.url, &u.servers) {
        (Some(url), None) => upstream_server(url, &format!("[upstreams.{name}].url"), 0, src)?,
        (None, Some(list)) => {
            if list.get_ref().is_empty() || list.get_ref().len() > balance::MAX_SERVERS {
                return Err(src.error(
                    list.span(),
                    format!("[upstreams.{name}].servers"),
                    format!("lists 1 to {} servers", balance::MAX_SERVERS),
                ));
            }
            let mut out = Vec::new();
            for (i, s) in list.get_ref().iter().enumerate() {
                out.extend(server_entry(name, i, s, src)?);
            }
            if out.iter().all(|s| s.backup) {
                return Err(src.error(
                    list.span(),
                    format!("[upstreams.{name}].servers"),
                    "needs a server that is not a backup",
                ));
            }
            out
        }
        (Some(url), Some(_)) => {
            return Err(src.error(
                url.span(),
                format!("[upstreams.{name}]"),
                "has url and servers: one server is `url`, several are `servers` (put the url in the list)",
            ))
        }
        (None, None) => {
            return Err(src.error(
                span,
                format!("[upstreams.{name}]"),
                "needs url = \"http://host:port\" (or servers = [{ url = ... }, ...] for several)",
            ))
        }
    };
    let method = match u.balance.as_ref().map(|b| b.get_ref().as_str()) {
        None | Some("round_robin") => balance::Method::RoundRobin,
        Some("ip_hash") => balance::Method::IpHash,
        Some(other) => {
            let b = u.balance.as_ref().expect("a balance");
            return Err(src.error(
                b.span(),
                format!("[upstreams.{name}].balance"),
                format!("unknown balance '{other}' (round_robin, ip_hash)"),
            ));
        }
    };
    if method == balance::Method::IpHash && servers.iter().any(|s| s.backup) {
        return Err(src.error(
            span,
            format!("[upstreams.{name}].servers"),
            "a backup server cannot be used with ip_hash (as in nginx: a client's server is its \
             address's; mark a server down instead)",
        ));
    }
    if servers.len() > balance::MAX_SERVERS {
        return Err(src.error(
            span,
            format!("[upstreams.{name}]"),
            format!(
                "has {} servers once its names are resolved (a server per address, as nginx \
                 makes them): at most {}",
                servers.len(),
                balance::MAX_SERVERS
            ),
        ));
    }
    let first = &servers[0];
    let balanced = servers.len() > 1 || first.down;
    Ok(Upstream {
        name: name.to_owned(),
        authority: first.authority.clone(),
        addr: first.addr,
        connect_timeout: u.connect_timeout.unwrap_or(Duration::from_secs(5)),
        read_timeout: u.read_timeout.unwrap_or(Duration::from_secs(60)),
        write_timeout: u.write_timeout.unwrap_or(Duration::from_secs(60)),
        idle_timeout: u.idle_timeout.unwrap_or(Duration::from_secs(60)),
        balance: balanced.then(|| Box::new(balance::Balance::new(servers, method))),
    })
}

/// One of `servers`, with nginx's defaults: a server per address of its name.
fn server_entry(
    name: &str,
    i: usize,
    s: &Spanned<file::UpstreamServer>,
    src: &Source<'_>,
) -> Result<Vec<balance::Server>> {
    let e = s.get_ref();
    let at = |key: &str| format!("[upstreams.{name}].servers[{}].{key}", i + 1);
    let mut servers = upstream_server(&e.url, &at("url"), i, src)?;
    let number = |v: &Option<Spanned<i64>>, key: &str, min: i64, default: u32| match v {
        None => Ok(default),
        Some(n) if (min..=1_000_000).contains(n.get_ref()) => Ok(*n.get_ref() as u32),
        Some(n) => Err(src.error(n.span(), at(key), format!("must be {min} to 1000000"))),
    };
    let weight = number(&e.weight, "weight", 1, 1)?;
    let max_fails = number(&e.max_fails, "max_fails", 0, 1)?;
    for server in &mut servers {
        server.weight = weight;
        server.max_fails = max_fails;
        if let Some(t) = e.fail_timeout {
            server.fail_timeout = t;
        }
        server.backup = e.backup;
        server.down = e.down;
    }
    Ok(servers)
}

/// A server's `http://host:port`, resolved once at load, as nginx resolves an upstream's
/// hosts at start-up: a server per address (`localhost` is often `::1` and `127.0.0.1`, and a
/// CRM listening on one of them is reached through the other once the first refuses).
fn upstream_server(
    v: &Spanned<Text>,
    path: &str,
    entry: usize,
    src: &Source<'_>,
) -> Result<Vec<balance::Server>> {
    let url = super::checked::outbound_url(v, path, src)?;
    if url.scheme() != "http" {
        return Err(src.error(
            v.span(),
            path,
            "only http:// upstreams are supported (terminate TLS in front of the gateway, reach the CRM over the private network)",
        ));
    }
    if url.path() != "/" {
        return Err(src.error(v.span(), path, "must be an origin without a path"));
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs = resolve(host.trim_start_matches('[').trim_end_matches(']'), port);
    if addrs.is_empty() {
        return Err(src.error(v.span(), path, format!("cannot resolve '{host}'")));
    }
    Ok(servers_of(&format!("{host}:{port}"), &addrs, entry))
}

/// Every address of `host` (the system's resolver: `/etc/hosts`, then DNS).
fn resolve(host: &str, port: u16) -> Vec<SocketAddr> {
    #[cfg(test)]
    if let Some(addrs) = tests::HOSTS.with(|h| h.borrow().get(host).cloned()) {
        return addrs.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
    }
    (host, port)
        .to_socket_addrs()
        .map(|a| a.collect())
        .unwrap_or_default()
}

/// The servers of one entry whose name has `addrs`: each called by its address when there are
/// several (the access line tells them apart), else by the name as written.
fn servers_of(authority: &str, addrs: &[SocketAddr], entry: usize) -> Vec<balance::Server> {
    addrs
        .iter()
        .map(|&addr| balance::Server {
            authority: authority.to_owned(),
            label: if addrs.len() > 1 {
                addr.to_string()
            } else {
                authority.to_owned()
            },
            addr,
            entry,
            weight: 1,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            backup: false,
            down: false,
        })
        .collect()
}

fn compile_route(
    i: usize,
    r: &file::Route,
    apps: &BTreeMap<String, Arc<App>>,
    upstreams: &BTreeMap<String, Arc<Upstream>>,
    has_session: bool,
    src: &Source<'_>,
) -> Result<Route> {
    let upstream = match &r.upstream {
        Some(up) => {
            let up_name = up.get_ref().as_str();
            Some(upstreams.get(up_name).cloned().ok_or_else(|| {
                let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
                src.error(
                    up.span(),
                    route_path(i, "upstream"),
                    format!(
                        "unknown upstream '{up_name}' (known: {})",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })?)
        }
        // A login area only: nothing of its own to serve, so nothing of its own to rewrite.
        None if r.login.is_none() => {
            return Err(src.error(
                r.location.span(),
                route_path(i, "upstream"),
                "missing: a route names the upstream it proxies to, or is a login area only \
                 (`login` without `upstream`: it protects its paths, which the nginx \
                 file's locations and the other routes serve)",
            ))
        }
        None if !r.rewrite.is_empty() => {
            return Err(src.error(
                r.location.span(),
                route_path(i, "rewrite"),
                "a login area without `upstream` is no location of its own: its rewrites \
                 would never run (write them in the nginx file's location, or give it an \
                 upstream)",
            ))
        }
        None => None,
    };
    let login = match &r.login {
        None => None,
        Some(l) => {
            let name = l.get_ref().as_str();
            let app = apps.get(name).cloned().ok_or_else(|| {
                let known: Vec<&str> = apps.keys().map(String::as_str).collect();
                src.error(
                    l.span(),
                    route_path(i, "login"),
                    format!(
                        "unknown app '{name}' (known: {})",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })?;
            if !has_session {
                return Err(src.error(
                    l.span(),
                    route_path(i, "login"),
                    "a login route needs a [session] table",
                ));
            }
            Some(app)
        }
    };
    // A third-party app's members have customers too, verified with their corp's token.
    if r.external_contact != ExternalContactMode::None
        && !login.as_ref().is_some_and(|a| {
            matches!(
                a.credentials,
                Credentials::Wecom { .. } | Credentials::Suite { custom: false, .. }
            )
        })
    {
        return Err(src.error(
            r.location.span(),
            route_path(i, "external_contact"),
            "needs `login` naming a kind = \"wecom\" or \"wecom_suite\" app",
        ));
    }
    let allow = match &r.allow {
        None => None,
        Some(lists) => Some(Arc::new(compile_allow(i, lists, login.as_deref(), src)?)),
    };
    Ok(Route {
        location: r.location.get_ref().as_str().to_owned(),
        upstream,
        login,
        external_contact: r.external_contact,
        allow,
    })
}

/// `allow` (SPEC section 17): only where a WeCom app logs people in, ids positive integers,
/// users plain userids, and at least one of them (an empty rule would admit nobody).
fn compile_allow(
    i: usize,
    lists: &Spanned<file::AllowLists>,
    login: Option<&App>,
    src: &Source<'_>,
) -> Result<Allow> {
    let path = |key: &str| route_path(i, &format!("allow.{key}"));
    if !login.is_some_and(|a| matches!(a.credentials, Credentials::Wecom { .. })) {
        return Err(src.error(
            lists.span(),
            route_path(i, "allow"),
            "needs `login` naming a kind = \"wecom\" app (rules are about corp members)",
        ));
    }
    let l = lists.get_ref();
    let positive = |ids: &[Spanned<i64>], key: &str| -> Result<Vec<u64>> {
        ids.iter()
            .enumerate()
            .map(|(n, id)| match u64::try_from(*id.get_ref()) {
                Ok(v) if v > 0 => Ok(v),
                _ => Err(src.error(
                    id.span(),
                    path(&format!("{key}[{}]", n + 1)),
                    format!("'{}' is not a positive integer id", id.get_ref()),
                )),
            })
            .collect()
    };
    let departments = positive(&l.departments, "departments")?;
    let tags = positive(&l.tags, "tags")?;
    let mut users = Vec::new();
    for (n, u) in l.users.iter().enumerate() {
        let text = u.get_ref().as_str();
        if !crate::domain::is_plain_id(text) {
            return Err(src.error(
                u.span(),
                path(&format!("users[{}]", n + 1)),
                format!("'{text}' is not a plain userid (letters, digits and -_.@)"),
            ));
        }
        users.push(text.to_owned());
    }
    if departments.is_empty() && tags.is_empty() && users.is_empty() {
        return Err(src.error(
            lists.span(),
            route_path(i, "allow"),
            "names no department, tag or user: nobody could enter",
        ));
    }
    Ok(Allow {
        users,
        departments,
        tags,
        ..Allow::default()
    })
}

/// A callback's `forward_path` that the public listener also proxies to the same upstream,
/// outside every login area: anyone can post a made-up event to the CRM's receiver there,
/// without the gateway's signature (the location that serves the path is judged, as `check`
/// lists it; a rewrite in front of it is not followed).
fn public_callback_paths(
    apps: &BTreeMap<String, Arc<App>>,
    table: &RouteTable,
    rules: Option<&super::rules::Rules>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for (name, app) in apps {
        let Some(forward) = app.callback.as_ref().and_then(|c| c.forward.as_ref()) else {
            continue;
        };
        let path = forward.path.split('?').next().unwrap_or_default();
        let Ok(normal) = nginx_compat::uri::normalize_path(path.as_bytes()) else {
            continue;
        };
        if !matches!(table.areas.find(&normal), Ok(None)) {
            continue;
        }
        let to_forward = |u: &Upstream| u.name == forward.upstream.name;
        let served_by = match rules {
            None => table
                .find(&normal)
                .ok()
                .flatten()
                .filter(|r| r.upstream.as_deref().is_some_and(to_forward))
                .map(|r| format!("[[routes]] location \"{}\"", r.location)),
            Some(rules) => rules
                .server
                .locations()
                .find(&normal)
                .ok()
                .flatten()
                .and_then(|m| {
                    let pass = m.value.proxy_pass.as_ref()?;
                    let nginx_compat::parse::model::PassKind::Static(target) = &pass.kind else {
                        return None;
                    };
                    let upstream = match rules.route_at(m.index) {
                        Some(i) => table.routes.get(i)?.upstream.as_ref()?,
                        None => rules.upstream(&target.authority)?,
                    };
                    to_forward(upstream).then(|| {
                        let file = pass.pos.file.rsplit('/').next().unwrap_or_default();
                        format!("the location at {file}:{}", pass.pos.line)
                    })
                }),
        };
        if let Some(by) = served_by {
            warnings.push(format!(
                "[apps.{name}].callback.forward_path {path} is also served to anyone by {by}: a \
                 made-up event posted there reaches the CRM's receiver without the gateway's \
                 signature, so the CRM must check X-Gateway-Signature (README, \"Callbacks\"), \
                 or put the path in a login area"
            ));
        }
    }
    warnings
}

/// Two apps whose callbacks share a Token and EncodingAESKey (WeCom's console lets one type the
/// same pair twice): a message sent to one also verifies at the other's URL, and an event that
/// names no agent (a contact change) captured at one can be replayed to the other, whose CRM
/// path takes it as its own.
fn shared_callback_keys(apps: &BTreeMap<String, Arc<App>>) -> Vec<String> {
    let mut warnings = Vec::new();
    let with_callback: Vec<(&String, &crate::domain::Callback)> = apps
        .iter()
        .filter_map(|(name, a)| Some((name, a.callback.as_ref()?)))
        .collect();
    for (i, (a, ca)) in with_callback.iter().enumerate() {
        for (b, cb) in &with_callback[i + 1..] {
            if ca.token.expose() == cb.token.expose()
                && ca.encoding_aes_key.expose() == cb.encoding_aes_key.expose()
            {
                warnings.push(format!(
                    "[apps.{a}] and [apps.{b}]: their callbacks share a token and \
                     encoding_aes_key, so a message for one also verifies at the other's URL \
                     (a captured contact change could be replayed there): give each app its own \
                     pair in WeCom's console"
                ));
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::net::IpAddr;

    thread_local! {
        /// Names this thread's tests resolve without the system's resolver.
        pub(super) static HOSTS: RefCell<HashMap<String, Vec<IpAddr>>> = RefCell::default();
    }

    fn with_host(name: &str, addrs: &[&str], f: impl FnOnce()) {
        HOSTS.with(|h| {
            let ips = addrs
                .iter()
                .map(|a| a.parse().expect("an address"))
                .collect();
            h.borrow_mut().insert(name.to_owned(), ips)
        });
        f();
        HOSTS.with(|h| h.borrow_mut().clear());
    }

    fn load(toml: &str, dir: &std::path::Path) -> Result<crate::config::Config, String> {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:1\"\n{toml}"
        );
        crate::config::load_str("gateway.toml", &text, dir).map_err(|e| e.to_string())
    }

    #[test]
    fn a_name_of_several_addresses_is_a_server_per_address() {
        let dir = std::env::temp_dir();
        with_host("crm.internal", &["::1", "127.0.0.1"], || {
            let cfg = load(
                "[upstreams.crm]\nurl = \"http://crm.internal:8080\"\n",
                &dir,
            )
            .expect("loads");
            let up = &cfg.upstreams["crm"];
            let b = up.balance.as_deref().expect("two servers are balanced");
            let seen: Vec<(&str, &str, usize)> = b
                .servers
                .iter()
                .map(|s| (s.authority.as_str(), s.label.as_str(), s.entry))
                .collect();
            assert_eq!(
                seen,
                [
                    ("crm.internal:8080", "[::1]:8080", 0),
                    ("crm.internal:8080", "127.0.0.1:8080", 0)
                ]
            );
            assert_eq!(up.authority, "crm.internal:8080");

            // A listed entry's parameters go to each of its addresses.
            let cfg = load(
                "[upstreams.crm]\nservers = [{ url = \"http://crm.internal:8080\", weight = 3, \
                 max_fails = 2 }, { url = \"http://127.0.0.9:80\", backup = true }]\n",
                &dir,
            )
            .expect("loads");
            let b = cfg.upstreams["crm"].balance.as_deref().expect("balanced");
            let seen: Vec<(&str, u32, u32, bool, usize)> = b
                .servers
                .iter()
                .map(|s| (s.label.as_str(), s.weight, s.max_fails, s.backup, s.entry))
                .collect();
            assert_eq!(
                seen,
                [
                    ("[::1]:8080", 3, 2, false, 0),
                    ("127.0.0.1:8080", 3, 2, false, 0),
                    ("127.0.0.9:80", 1, 1, true, 1)
                ]
            );
        });
    }

    #[test]
    fn a_name_of_one_address_is_one_server_called_by_its_name() {
        let dir = std::env::temp_dir();
        with_host("crm.internal", &["127.0.0.1"], || {
            let cfg = load(
                "[upstreams.crm]\nurl = \"http://crm.internal:8080\"\n",
                &dir,
            )
            .expect("loads");
            let up = &cfg.upstreams["crm"];
            assert!(up.balance.is_none());
            assert_eq!(up.addr, "127.0.0.1:8080".parse().unwrap());
        });
    }

    #[test]
    fn too_many_addresses_are_refused() {
        let dir = std::env::temp_dir();
        let many: Vec<String> = (1..=65).map(|i| format!("127.0.1.{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        with_host("crm.internal", &many, || {
            let err = load(
                "[upstreams.crm]\nurl = \"http://crm.internal:8080\"\n",
                &dir,
            )
            .err()
            .expect("65 servers are refused");
            assert!(
                err.contains("has 65 servers once its names are resolved"),
                "{err}"
            );
        });
    }

    /// A refresh lock shorter than a slow gettoken lets a second instance fetch: said.
    #[test]
    fn a_lock_ttl_shorter_than_two_provider_timeouts_is_warned_about() {
        let dir = std::env::temp_dir();
        let store = "[store]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:1\"\n";
        let warned = |extra: &str| {
            let cfg = load(&format!("{store}{extra}"), &dir).expect("loads");
            cfg.warnings.iter().any(|w| w.contains("[store].lock_ttl"))
        };
        assert!(warned("lock_ttl = \"2s\"\n"));
        assert!(!warned(""));
        assert!(!warned("lock_ttl = \"30s\"\n"));
    }

    #[test]
    fn an_nginx_file_names_the_entry_once() {
        let dir = std::env::temp_dir().join(format!("wgw-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory");
        with_host("crm.internal", &["::1", "127.0.0.1"], || {
            // The block's one server is the TOML's one entry, whatever its addresses; a
            // `proxy_pass` to the name is that upstream (nginx's implicit upstream of them).
            std::fs::write(
                dir.join("site.conf"),
                "upstream crm { server crm.internal:8080; }\n\
                 location /api/ { proxy_pass http://crm; }\n\
                 location /old/ { proxy_pass http://crm.internal:8080; }\n",
            )
            .unwrap();
            let nginx = "[nginx]\ninclude = [\"site.conf\"]\n";
            load(
                &format!("{nginx}[upstreams.crm]\nurl = \"http://crm.internal:8080\"\n"),
                &dir,
            )
            .expect("the block is the table's");
            // Two entries are not the block's one server.
            let err = load(
                &format!(
                    "{nginx}[upstreams.crm]\nservers = [{{ url = \"http://crm.internal:8080\" }}, \
                     {{ url = \"http://127.0.0.9:80\" }}]\n"
                ),
                &dir,
            )
            .err()
            .expect("not the block's servers");
            assert!(
                err.contains("its servers are not [upstreams.crm]'s"),
                "{err}"
            );
        });
    }
}
