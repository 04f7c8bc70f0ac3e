//! SPEC section 5 step 4: the rewrite phase. The compiled rule set (`config::rules`) is
//! evaluated by `nginx-compat`; this module only translates its outcome into what the proxy
//! does next. It reads no request twice and compiles nothing: all regexes were compiled at load.
//!
//! Absolute redirects follow nginx's `absolute_redirect on`: the Host header the client sent,
//! with the scheme and port the client used to reach the server. The gateway listens in plain
//! HTTP behind whatever terminates TLS, so "the scheme and port the client used" are those of
//! `server.public_url` (an `https://` public URL gives `https://host/...` as the nginx that
//! terminated TLS did). Write `absolute_redirect off;` in an included nginx file for relative
//! Locations.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nginx_compat::escape::{escape, Escape};
use nginx_compat::{Content, FileKind, FileSystem, Outcome, Request};

use crate::config::model::{ServerSettings, Upstream};
use crate::config::rules::Rules;

/// What the proxy does after the rewrite phase.
pub enum Decision {
    /// Continue with `[[routes]]` entry `index` (login, external contact, upstream).
    Route {
        index: usize,
        uri: Option<Vec<u8>>,
    },
    /// An nginx `location` with `proxy_pass`: a public route to that upstream.
    Upstream {
        upstream: Arc<Upstream>,
        uri: Option<Vec<u8>>,
    },
    Redirect {
        status: u16,
        location: Vec<u8>,
    },
    Return {
        status: u16,
        body: Option<Vec<u8>>,
    },
    /// A static file under `root` (both already joined to the nginx file's directory), and
    /// the URI it was found for (`$uri` after `try_files` and index files).
    File {
        path: PathBuf,
        root: PathBuf,
        uri: Vec<u8>,
    },
    NotFound,
    Forbidden,
    BadRequest,
    Internal(String),
}

/// The request as nginx's variables and redirects see it.
pub fn request(
    method: &str,
    raw_uri: &[u8],
    headers: &http::HeaderMap,
    server: &ServerSettings,
    remote_addr: Option<std::net::IpAddr>,
) -> Request {
    let url = &server.public_url;
    Request {
        method: method.to_owned(),
        uri: raw_uri.to_vec(),
        scheme: url.scheme().to_owned(),
        port: url.port_or_known_default().unwrap_or(80),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
        remote_addr: remote_addr.map(|a| a.to_string()).unwrap_or_default(),
        local_addr: server.listen.clone(),
    }
}

/// Evaluates the rules for one request.
pub fn decide(rules: &Rules, req: &Request) -> Decision {
    let outcome = rules.server.evaluate(req);
    match outcome {
        Outcome::Static { ref location, .. } => match &rules.static_base {
            Some(base) if !is_route(rules, location) => {
                let fs = DiskFs { base };
                match rules.server.resolve(req, outcome, &fs) {
                    Content::File { path, root, uri } => Decision::File {
                        path: fs.full(&path),
                        root: fs.full(&root),
                        uri,
                    },
                    Content::Outcome(o) => translate(rules, req, o),
                    Content::NotFound => Decision::NotFound,
                    Content::Forbidden => Decision::Forbidden,
                }
            }
            _ => translate(rules, req, outcome),
        },
        o => translate(rules, req, o),
    }
}

fn is_route(rules: &Rules, location: &[usize]) -> bool {
    location.first().is_some_and(|&i| i < rules.routes)
}

fn translate(rules: &Rules, req: &Request, o: Outcome) -> Decision {
    match o {
        Outcome::Redirect { status, location } => Decision::Redirect { status, location },
        Outcome::Return { status, body } => Decision::Return { status, body },
        Outcome::BadRequest => Decision::BadRequest,
        Outcome::InternalError(m) => Decision::Internal(m),
        Outcome::Proxy {
            location,
            uri,
            args,
            target,
        } => {
            let uri = upstream_uri(req, &uri, &args);
            match location.first() {
                Some(&i) if i < rules.routes => Decision::Route { index: i, uri },
                _ => match rules.targets.get(&target) {
                    Some(up) => Decision::Upstream {
                        upstream: up.clone(),
                        uri,
                    },
                    None => Decision::Internal(format!("no upstream for proxy_pass {target}")),
                },
            }
        }
        // A static outcome without an nginx file, or on a route location.
        Outcome::Static { location, .. } => match location.first() {
            Some(&i) if i < rules.routes => Decision::Route {
                index: i,
                uri: None,
            },
            _ => Decision::NotFound,
        },
    }
}

/// What `proxy_pass http://up;` (no URI part) sends: the client's request-target untouched
/// unless a rewrite changed the URI, else the new URI escaped as nginx escapes it, plus args.
fn upstream_uri(req: &Request, uri: &[u8], args: &[u8]) -> Option<Vec<u8>> {
    let (raw_path, query) = nginx_compat::split_request_uri(&req.uri);
    let unchanged = nginx_compat::normalize_path(raw_path).is_ok_and(|p| p == uri)
        && query.unwrap_or_default() == args;
    if unchanged {
        return None;
    }
    let mut out = escape(uri, Escape::Uri);
    if !args.is_empty() {
        out.push(b'?');
        out.extend_from_slice(args);
    }
    Some(out)
}

/// The file system as the content phase asks about it. Relative roots start at the nginx
/// file's directory (nginx starts them at its prefix). A `stat` is short enough to run on
/// the worker thread, as nginx itself does.
struct DiskFs<'a> {
    base: &'a Path,
}

impl DiskFs<'_> {
    fn full(&self, path: &[u8]) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        self.base.join(std::ffi::OsStr::from_bytes(path))
    }
}

impl FileSystem for DiskFs<'_> {
    fn kind(&self, path: &[u8]) -> FileKind {
        if path.contains(&0) {
            return FileKind::Missing;
        }
        match std::fs::metadata(self.full(path)) {
            Ok(m) if m.is_file() => FileKind::File,
            Ok(m) if m.is_dir() => FileKind::Dir,
            _ => FileKind::Missing,
        }
    }
}
