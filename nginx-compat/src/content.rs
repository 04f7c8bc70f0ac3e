//! nginx's content phase for static locations: `try_files`, `index`, `root`/`alias` and the
//! static module's directory redirect. The crate still reads no files: the caller answers
//! "what is at this path" through [`FileSystem`], and serves the [`Content::File`] it gets back.

use crate::escape::{escape, Escape};
use crate::eval::{ExpandedFallback, Outcome};
use crate::location::Modifier;
use crate::parse::model::{LocConf, Server, Settings};
use crate::Request;

/// What a path names on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Missing,
    File,
    Dir,
}

/// The one question the content phase asks of the file system. Paths are the bytes nginx
/// would pass to `open()`: the root (possibly relative) followed by the URI.
pub trait FileSystem {
    fn kind(&self, path: &[u8]) -> FileKind;
}

/// The content phase's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Send this file. `root` is the document root (`root` or `alias`) it was found under, so
    /// the caller can refuse a path that resolves outside it.
    File {
        path: Vec<u8>,
        root: Vec<u8>,
        uri: Vec<u8>,
    },
    /// Anything decided before or instead of a file: a proxy, redirect (including the static
    /// module's "directory without '/'" 301), return, 400 or 500.
    Outcome(Outcome),
    /// No such file (nginx's 404).
    NotFound,
    /// A directory without an index file (nginx's 403, autoindex being off).
    Forbidden,
}

/// nginx's `r->uri_changes`: internal redirects share the rewrite cycle limit.
const INTERNAL_REDIRECTS: u32 = 10;

impl Server {
    /// The location an [`Outcome`] names by its index path.
    pub fn location_at(&self, path: &[usize]) -> Option<&LocConf> {
        let (first, rest) = path.split_first()?;
        let mut conf = self.locations.get(*first)?.1;
        for i in rest {
            conf = conf.children.get(*i)?.1;
        }
        Some(conf)
    }

    /// Carry an outcome through the content phase: a static outcome is resolved against the
    /// file system (following `try_files` URI fallbacks and index files as internal
    /// redirects); any other outcome is handed back unchanged.
    pub fn resolve(&self, req: &Request, outcome: Outcome, fs: &dyn FileSystem) -> Content {
        let mut outcome = outcome;
        for _ in 0..=INTERNAL_REDIRECTS {
            match self.content_step(req, outcome, fs) {
                Step::Done(c) => return c,
                Step::Redirect { uri, args } => {
                    outcome = self.evaluate_internal(req, &uri, &args);
                }
            }
        }
        Content::Outcome(Outcome::InternalError(
            "rewrite or internal redirection cycle".into(),
        ))
    }

    fn content_step(&self, req: &Request, outcome: Outcome, fs: &dyn FileSystem) -> Step {
        let Outcome::Static {
            location,
            mut uri,
            mut args,
            settings,
            try_files,
        } = outcome
        else {
            return Step::Done(Content::Outcome(outcome));
        };
        let loc = self.location_at(&location);
        let map = |u: &[u8]| map_uri(loc, &settings, u);

        // ngx_http_try_files_handler
        if let Some(tf) = try_files {
            let mut found = false;
            for cand in &tf.candidates {
                let (name, cand_args) = split_args(cand);
                let (path, _) = map(name);
                let want_dir = name.last() == Some(&b'/');
                let ok = match fs.kind(&path) {
                    FileKind::Dir => want_dir,
                    FileKind::File => !want_dir,
                    FileKind::Missing => false,
                };
                if ok {
                    uri = name.to_vec();
                    if let Some(a) = cand_args {
                        args = a.to_vec();
                    }
                    found = true;
                    break;
                }
            }
            if !found {
                return match tf.fallback {
                    ExpandedFallback::Uri(u) => {
                        let (u, a) = split_args(&u);
                        Step::Redirect {
                            uri: u.to_vec(),
                            args: a.map_or(args, <[u8]>::to_vec),
                        }
                    }
                    ExpandedFallback::Code(404) => Step::Done(Content::NotFound),
                    ExpandedFallback::Code(c) => Step::Done(Content::Outcome(Outcome::Return {
                        status: c,
                        body: None,
                    })),
                    ExpandedFallback::Named(n) => Step::Done(Content::Outcome(
                        Outcome::InternalError(format!("named location {n} is not supported")),
                    )),
                };
            }
        }

        // ngx_http_index_handler: a URI ending in '/' names a directory.
        if uri.last() == Some(&b'/') {
            for index in &settings.index {
                if index.starts_with('/') {
                    return Step::Redirect {
                        uri: index.as_bytes().to_vec(),
                        args,
                    };
                }
                let mut candidate = uri.clone();
                candidate.extend_from_slice(index.as_bytes());
                if fs.kind(&map(&candidate).0) == FileKind::File {
                    return Step::Redirect {
                        uri: candidate,
                        args,
                    };
                }
            }
            return Step::Done(match fs.kind(&map(&uri).0) {
                FileKind::Dir => Content::Forbidden,
                _ => Content::NotFound,
            });
        }

        // ngx_http_static_handler
        let (path, root) = map(&uri);
        Step::Done(match fs.kind(&path) {
            FileKind::File => Content::File { path, root, uri },
            FileKind::Dir => {
                let mut location = escape(&uri, Escape::Uri);
                location.push(b'/');
                if !args.is_empty() {
                    location.push(b'?');
                    location.extend_from_slice(&args);
                }
                Content::Outcome(Outcome::Redirect {
                    status: 301,
                    location: self.absolute_location(req, location, &settings),
                })
            }
            FileKind::Missing => Content::NotFound,
        })
    }
}

enum Step {
    Done(Content),
    Redirect { uri: Vec<u8>, args: Vec<u8> },
}

/// `ngx_http_map_uri_to_path`: root + URI, or alias + the URI past the location's name (a
/// regex location's alias is the whole path). Returns (path, document root).
fn map_uri(loc: Option<&LocConf>, settings: &Settings, uri: &[u8]) -> (Vec<u8>, Vec<u8>) {
    if let (Some(alias), Some(loc)) = (&settings.alias, loc) {
        let root = alias.as_bytes().to_vec();
        if loc.location.modifier().is_regex() {
            return (root.clone(), root);
        }
        let name = loc.location.pattern().as_bytes();
        let skip = if loc.location.modifier() == Modifier::Exact || uri.starts_with(name) {
            name.len().min(uri.len())
        } else {
            0
        };
        let mut path = root.clone();
        path.extend_from_slice(&uri[skip..]);
        return (path, root);
    }
    let root = settings.root.as_bytes().to_vec();
    let mut path = root.clone();
    path.extend_from_slice(uri);
    (path, root)
}

/// `ngx_http_split_args`: a `try_files` name may carry its own arguments.
fn split_args(s: &[u8]) -> (&[u8], Option<&[u8]>) {
    match s.iter().position(|&b| b == b'?') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

#[cfg(test)]
mod tests;
