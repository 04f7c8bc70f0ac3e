//! The precontent and content phases: `try_files`, `proxy_pass`, `index` and the static
//! module. The crate reads no files: the caller answers "what is at this path" through
//! [`FileSystem`], and serves the file of an [`Action::File`](super::Action::File).

use super::{Action, FileAnswer, Flow, Step};
use crate::escape::{escape, Escape};
use crate::parse::model::{Fallback, LocConf, Server};
use crate::vars::Ctx;

/// What a path names on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Missing,
    File,
    Dir,
    /// It exists but may not be opened (nginx's EACCES: 403).
    Denied,
}

/// The one question the content phase asks of the file system. Paths are the bytes nginx
/// would pass to `open()`: the root (possibly relative) followed by the URI.
pub trait FileSystem {
    fn kind(&self, path: &[u8]) -> FileKind;
}

/// A file system with nothing on it.
pub struct NoFiles;

impl FileSystem for NoFiles {
    fn kind(&self, _path: &[u8]) -> FileKind {
        FileKind::Missing
    }
}

fn get_or_head_or_post(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "POST")
}

impl Server {
    /// `ngx_http_try_files_handler`.
    pub(super) fn try_files(&self, cx: &mut Ctx<'_>, fs: &dyn FileSystem) -> Flow {
        let conf = self.here(cx);
        let Some(tf) = &conf.try_files else {
            return Flow::Step(Step::Content);
        };
        for cand in &tf.candidates {
            let name = cand.name.expand(cx, false);
            let Some(mapped) = map_candidate(conf, cx, &name) else {
                return Flow::Finalize(500);
            };
            let kind = fs.kind(&mapped.path);
            let ok = match kind {
                FileKind::Dir => cand.dir,
                FileKind::File => !cand.dir,
                FileKind::Missing | FileKind::Denied => false,
            };
            if !ok {
                continue;
            }
            match mapped.uri {
                Some(uri) => cx.st.uri = uri,
                None => {
                    if !cand.dir {
                        cx.st.uri = name;
                        cx.st.add_uri_to_alias = true;
                    }
                }
            }
            cx.st.exten = crate::mime::exten(&cx.st.uri).to_vec();
            return Flow::Step(Step::Content);
        }
        match &tf.fallback {
            Fallback::Code(c) => Flow::Finalize(*c),
            Fallback::Named(n) => self.named_location(cx, n),
            Fallback::Uri(u) => {
                let u = u.expand(cx, false);
                let (uri, args) = split_args(&u);
                // ngx_http_try_files_handler's `args` is set by the split or left as the
                // stack had it: found, empty.
                self.internal_redirect(cx, uri.to_vec(), args.to_vec(), true)
            }
        }
    }

    /// The content phase: the proxy handler, else the index and static modules.
    pub(super) fn content(&self, cx: &mut Ctx<'_>, fs: &dyn FileSystem) -> Flow {
        let conf = self.here(cx);
        if let Some(pass) = &conf.proxy_pass {
            return self.proxy(cx, conf, pass);
        }
        let uri_is_dir = cx.st.uri.last() == Some(&b'/');
        // ngx_http_index_handler
        if uri_is_dir && get_or_head_or_post(&cx.st.method) {
            let Some(dir) = map_uri(conf, cx) else {
                return Flow::Finalize(500);
            };
            let mut dir_tested = false;
            for index in &conf.settings.index {
                let name = index.expand(cx, false);
                if name.first() == Some(&b'/') {
                    let args = cx.st.args.clone();
                    let set = cx.st.args_set;
                    return self.internal_redirect(cx, name, args, set);
                }
                let mut path = dir.path.clone();
                path.extend_from_slice(&name);
                match fs.kind(&path) {
                    FileKind::File | FileKind::Dir => {
                        let mut uri = cx.st.uri.clone();
                        uri.extend_from_slice(&name);
                        let args = cx.st.args.clone();
                        let set = cx.st.args_set;
                        return self.internal_redirect(cx, uri, args, set);
                    }
                    FileKind::Denied => return Flow::Finalize(403),
                    FileKind::Missing => {}
                }
                if !dir_tested {
                    // ngx_http_index_test_dir: the directory itself must exist.
                    let mut d = dir.path.clone();
                    if d.len() > 1 && d.last() == Some(&b'/') {
                        d.pop();
                    }
                    match fs.kind(&d) {
                        FileKind::Dir => {}
                        FileKind::Denied => return Flow::Finalize(403),
                        FileKind::Missing | FileKind::File => return Flow::Finalize(404),
                    }
                    dir_tested = true;
                }
            }
        }
        // ngx_http_autoindex_handler: a directory's listing, for GET and HEAD.
        if uri_is_dir
            && conf.settings.autoindex.is_some()
            && matches!(cx.st.method.as_str(), "GET" | "HEAD")
        {
            let Some(dir) = map_uri(conf, cx) else {
                return Flow::Finalize(500);
            };
            let mut d = dir.path.clone();
            if d.len() > 1 && d.last() == Some(&b'/') {
                d.pop();
            }
            return match fs.kind(&d) {
                FileKind::Dir => Flow::Done(Box::new(Action::File(FileAnswer {
                    status: 200,
                    path: dir.path,
                    root: dir.root,
                    state: cx.st.clone(),
                    listing: true,
                }))),
                FileKind::Denied => Flow::Finalize(403),
                FileKind::Missing | FileKind::File => Flow::Finalize(404),
            };
        }
        // ngx_http_static_handler
        if !get_or_head_or_post(&cx.st.method) {
            return Flow::Finalize(405);
        }
        if uri_is_dir {
            // No content handler for a directory: "directory index is forbidden".
            return Flow::Finalize(403);
        }
        let Some(mapped) = map_uri(conf, cx) else {
            return Flow::Finalize(500);
        };
        match fs.kind(&mapped.path) {
            // ngx_http_gzip_static_handler runs before the static handler and needs only the
            // `.gz` (a build that deleted its originals): the answer is the `.gz` when the
            // client takes gzip (or `always`), else the static handler's 404.
            FileKind::Missing if self.only_gz(cx, fs, &mapped.path) => {
                Flow::Done(Box::new(Action::File(FileAnswer {
                    status: cx.st.err_status.unwrap_or(200),
                    path: mapped.path,
                    root: mapped.root,
                    state: cx.st.clone(),
                    listing: false,
                })))
            }
            FileKind::Missing => Flow::Finalize(404),
            FileKind::Denied => Flow::Finalize(403),
            FileKind::Dir => {
                let mut location = escape(&cx.st.uri, Escape::Uri);
                location.push(b'/');
                if !cx.st.args.is_empty() {
                    location.push(b'?');
                    location.extend_from_slice(&cx.st.args);
                }
                cx.st.location = Some(location);
                Flow::Finalize(301)
            }
            FileKind::File if cx.st.method == "POST" => Flow::Finalize(405),
            FileKind::File => Flow::Done(Box::new(Action::File(FileAnswer {
                status: cx.st.err_status.unwrap_or(200),
                path: mapped.path,
                root: mapped.root,
                state: cx.st.clone(),
                listing: false,
            }))),
        }
    }
}

impl Server {
    /// A GET or HEAD whose file is missing but for its `.gz`, which `gzip_static` serves to
    /// this client: `always`, or `on` and `ngx_http_gzip_ok` passes (the client takes gzip,
    /// by its version and `User-Agent` too; through a proxy `Via` names, only where
    /// `gzip_proxied` is not `off`). Otherwise the static handler's 404, its `error_page`
    /// included.
    fn only_gz(&self, cx: &Ctx<'_>, fs: &dyn FileSystem, path: &[u8]) -> bool {
        use crate::parse::model::GzipStatic;
        let g = &self.settings_for(&cx.st).gzip;
        let serves = match g.static_files {
            GzipStatic::Off => false,
            GzipStatic::Always => true,
            GzipStatic::On => {
                let uas = cx.req.headers.iter().filter_map(|(n, v)| {
                    n.eq_ignore_ascii_case("user-agent").then_some(v.as_slice())
                });
                g.client_takes(cx.req.http_version, cx.req.header("accept-encoding"), uas)
                    && (cx.req.header("via").is_none() || g.proxied.is_on())
            }
        };
        serves
            && matches!(cx.st.method.as_str(), "GET" | "HEAD")
            && matches!(fs.kind(&[path, b".gz"].concat()), FileKind::File)
    }

    /// `$request_filename` and `$document_root` (`ngx_http_variable_request_filename`,
    /// `ngx_http_variable_document_root`) at the level the request is in: the file its URI
    /// maps to, and the `root` (or `alias`) it maps under; a relative one starts at
    /// [`Server::prefix`], as `ngx_get_full_name` starts it. `None` where nginx fails the
    /// variable: an alias whose location's URI was rewritten.
    pub(crate) fn path_variable(&self, cx: &Ctx<'_>, name: &str) -> Option<Vec<u8>> {
        let conf = self.here(cx);
        let path = if name == "document_root" {
            let s = &conf.settings;
            s.alias.as_ref().unwrap_or(&s.root).expand(cx, false)
        } else {
            map_uri(conf, cx)?.path
        };
        Some(if path.first() == Some(&b'/') {
            path
        } else {
            let mut full = self.prefix.clone();
            full.extend_from_slice(&path);
            full
        })
    }
}

/// The directory a file served through `root` or `alias` must lie in (its real path, symlinks
/// followed): the value itself when written without variables; else the directory its
/// leading text names (`/srv/www/` of `alias /srv/www/$1`), since a capture or a variable may
/// carry a symlink of the served tree (`static/link/secret`) into the value itself. A value
/// that starts with a variable is taken whole.
fn containing(t: &crate::vars::Template, expanded: Vec<u8>) -> Vec<u8> {
    if t.literal().is_some() {
        return expanded;
    }
    match t.parts.first() {
        Some(crate::vars::Part::Lit(lead)) => match lead.iter().rposition(|&b| b == b'/') {
            Some(i) => lead[..=i].to_vec(),
            None => expanded,
        },
        _ => expanded,
    }
}

pub(super) struct Mapped {
    pub path: Vec<u8>,
    pub root: Vec<u8>,
    /// The URI `try_files` switches to when this candidate exists (`None`: a regex
    /// location's alias, where nginx keeps the URI and appends the name to the alias).
    pub uri: Option<Vec<u8>>,
}

/// `ngx_http_map_uri_to_path`: root + URI, or alias + the URI past the location's name (a
/// regex location's alias is the whole path, plus the URI once `try_files` found a file).
/// `None` for an alias in a location whose URI was rewritten (nginx's 500).
pub(super) fn map_uri(conf: &LocConf, cx: &Ctx<'_>) -> Option<Mapped> {
    let s = &conf.settings;
    let uri = &cx.st.uri;
    let Some(alias) = &s.alias else {
        let mut path = s.root.expand(cx, false);
        let root = containing(&s.root, path.clone());
        path.extend_from_slice(uri);
        return Some(Mapped {
            path,
            root,
            uri: None,
        });
    };
    if !cx.st.valid_location {
        return None;
    }
    let mut path = alias.expand(cx, false);
    let root = containing(alias, path.clone());
    match s.alias_skip {
        None => {
            if cx.st.add_uri_to_alias {
                path.extend_from_slice(uri);
            }
        }
        Some(skip) => path.extend_from_slice(&uri[skip.min(uri.len())..]),
    }
    Some(Mapped {
        path,
        root,
        uri: None,
    })
}

/// A `try_files` candidate's path: the name appended to the root, or with an alias, the name
/// past the location's name appended to the alias (`ngx_http_try_files_handler`).
fn map_candidate(conf: &LocConf, cx: &Ctx<'_>, name: &[u8]) -> Option<Mapped> {
    let s = &conf.settings;
    let Some(alias) = &s.alias else {
        let mut path = s.root.expand(cx, false);
        let root = containing(&s.root, path.clone());
        path.extend_from_slice(name);
        return Some(Mapped {
            path,
            root,
            uri: Some(name.to_vec()),
        });
    };
    if !cx.st.valid_location {
        return None;
    }
    let mut path = alias.expand(cx, false);
    let root = containing(alias, path.clone());
    let Some(skip) = s.alias_skip else {
        path.extend_from_slice(name);
        return Some(Mapped {
            path,
            root,
            uri: None,
        });
    };
    let alias_len = skip.min(cx.st.uri.len());
    let prefix = &cx.st.uri[..alias_len];
    let rest = if name.starts_with(prefix) {
        &name[alias_len..]
    } else {
        name
    };
    path.extend_from_slice(rest);
    let mut uri = prefix.to_vec();
    uri.extend_from_slice(rest);
    Some(Mapped {
        path,
        root,
        uri: Some(uri),
    })
}

/// `ngx_http_split_args`: no '?' means no arguments at all.
pub(super) fn split_args(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|&b| b == b'?') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, b""),
    }
}
