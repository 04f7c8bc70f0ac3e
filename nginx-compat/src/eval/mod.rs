//! What nginx would do with a request: the server-rewrite, find-config, rewrite and
//! post-rewrite phases of `ngx_http_core_module`, stopping before the content phase.

mod script;

use std::collections::HashMap;

use crate::escape::{escape, Escape};
use crate::location::StaticMatch;
use crate::parse::model::{LocConf, Server, Settings, TryFiles};
use crate::regex::Captures;
use crate::vars::Ctx;
use crate::{normalize_path, split_request_uri, LocationSet, Request};

/// nginx's `NGX_HTTP_MAX_URI_CHANGES + 1`: the 11th URI change is a 500.
const URI_CHANGES: u32 = 11;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A `rewrite ... redirect|permanent`, `return 3xx URL` or location auto-redirect.
    Redirect { status: u16, location: Vec<u8> },
    /// `return CODE [TEXT]`; no body means nginx's own page for that status.
    Return { status: u16, body: Option<Vec<u8>> },
    /// The request reaches a location with `proxy_pass`.
    Proxy {
        /// Indices from the server's locations down through nested ones.
        location: Vec<usize>,
        uri: Vec<u8>,
        args: Vec<u8>,
        target: String,
    },
    /// The request reaches static-file handling (`root`/`alias`, `index`, `try_files`).
    Static {
        /// Empty when no location matched (the server's own settings apply).
        location: Vec<usize>,
        uri: Vec<u8>,
        args: Vec<u8>,
        settings: Settings,
        /// `try_files` with its candidates expanded; the caller checks the file system and,
        /// for a URI fallback, evaluates it with [`Server::evaluate_uri`].
        try_files: Option<ExpandedTryFiles>,
    },
    /// A malformed path (nginx answers 400).
    BadRequest,
    /// The rewrite cycle limit, an empty rewritten URI, or an unsupported runtime condition.
    InternalError(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandedTryFiles {
    pub candidates: Vec<Vec<u8>>,
    pub fallback: ExpandedFallback,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandedFallback {
    Uri(Vec<u8>),
    Code(u16),
    Named(String),
}

pub(crate) enum Flow {
    Continue,
    Stop,
    Respond(Outcome),
}

impl Server {
    /// Evaluate a request from its raw request-target.
    pub fn evaluate(&self, req: &Request) -> Outcome {
        let (raw_path, query) = split_request_uri(&req.uri);
        let Ok(uri) = normalize_path(raw_path) else {
            return Outcome::BadRequest;
        };
        let lower = raw_path.to_ascii_lowercase();
        let quoted_uri = raw_path.contains(&b'%');
        let plus_in_uri = raw_path.contains(&b'+') || lower.windows(3).any(|w| w == b"%2b");
        let mut ctx = Ctx {
            req,
            uri,
            args: query.unwrap_or_default().to_vec(),
            captures: Captures::default(),
            user: HashMap::new(),
            server_name: self.server_name().to_string(),
            quoted_uri,
            plus_in_uri,
        };
        self.run(&mut ctx)
    }

    /// Evaluate an internal redirect (a `try_files` URI fallback, an index file): nginx
    /// restarts at the server-rewrite phase with the new URI and arguments.
    pub fn evaluate_uri(&self, req: &Request, uri: &[u8]) -> Outcome {
        let (path, query) = split_request_uri(uri);
        self.evaluate_internal(req, path, query.unwrap_or_default())
    }

    /// [`Server::evaluate_uri`] with the decoded path and the arguments already apart, as
    /// `ngx_http_internal_redirect` receives them (the path may hold a decoded '?').
    pub fn evaluate_internal(&self, req: &Request, uri: &[u8], args: &[u8]) -> Outcome {
        let mut ctx = Ctx {
            req,
            uri: uri.to_vec(),
            args: args.to_vec(),
            captures: Captures::default(),
            user: HashMap::new(),
            server_name: self.server_name().to_string(),
            quoted_uri: false,
            plus_in_uri: false,
        };
        self.run(&mut ctx)
    }

    /// A Location made absolute as `ngx_http_header_filter` does (absolute_redirect,
    /// port_in_redirect, server_name_in_redirect of `settings`).
    pub(crate) fn absolute_location(
        &self,
        req: &Request,
        location: Vec<u8>,
        settings: &Settings,
    ) -> Vec<u8> {
        let ctx = Ctx {
            req,
            uri: Vec::new(),
            args: Vec::new(),
            captures: Captures::default(),
            user: HashMap::new(),
            server_name: self.server_name().to_string(),
            quoted_uri: false,
            plus_in_uri: false,
        };
        script::absolute(location, &ctx, settings)
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Outcome {
        let mut changed = false;
        match script::run(&self.stmts, ctx, &self.settings, &mut changed) {
            Flow::Respond(o) => return o,
            Flow::Continue | Flow::Stop => {}
        }
        let mut changes_left = URI_CHANGES;
        loop {
            let mut path = Vec::new();
            let found = match self.find(ctx, &mut path) {
                Ok(f) => f,
                Err(o) => return o,
            };
            let (stmts, settings): (&[_], &Settings) = match found {
                Some(l) => (&l.stmts, &l.settings),
                None => (&[], &self.settings),
            };
            let mut changed = false;
            match script::run(stmts, ctx, settings, &mut changed) {
                Flow::Respond(o) => return o,
                Flow::Continue | Flow::Stop => {}
            }
            if changed {
                // ngx_http_core_post_rewrite_phase
                changes_left -= 1;
                if changes_left == 0 {
                    return Outcome::InternalError("rewrite or internal redirection cycle".into());
                }
                continue;
            }
            return match found {
                Some(l) => match &l.proxy_pass {
                    Some(target) => Outcome::Proxy {
                        location: path,
                        uri: ctx.uri.clone(),
                        args: ctx.args.clone(),
                        target: target.clone(),
                    },
                    None => static_outcome(path, ctx, &l.settings, l.try_files.as_ref()),
                },
                None => static_outcome(path, ctx, &self.settings, self.try_files.as_ref()),
            };
        }
    }

    fn find<'s>(
        &'s self,
        ctx: &mut Ctx<'_>,
        path: &mut Vec<usize>,
    ) -> Result<Option<&'s LocConf>, Outcome> {
        Ok(find_in(&self.locations, ctx, path)?.map(|(c, _)| c))
    }
}

/// `ngx_http_core_find_location` for one level; the flag says the answer is final (an exact
/// or regex match), otherwise an enclosing level may still prefer one of its regexes — nginx
/// checks the outer regexes even after a nested prefix (or nested `^~`) match.
fn find_in<'s>(
    set: &'s LocationSet<LocConf>,
    ctx: &mut Ctx<'_>,
    path: &mut Vec<usize>,
) -> Result<Option<(&'s LocConf, bool)>, Outcome> {
    let uri = ctx.uri.clone();
    let base = path.clone();
    let mut current = None;
    let mut no_regex = false;
    match set.find_static(&uri) {
        StaticMatch::Exact(i) => {
            path.push(i);
            return Ok(set.get(i).map(|(_, c)| (c, true)));
        }
        StaticMatch::AutoRedirect(i) => {
            let (loc, c) = set.get(i).expect("index from set");
            let mut location = escape(loc.pattern().as_bytes(), Escape::Uri);
            if !ctx.args.is_empty() {
                location.push(b'?');
                location.extend_from_slice(&ctx.args);
            }
            return Err(Outcome::Redirect {
                status: 301,
                location: script::absolute(location, ctx, &c.settings),
            });
        }
        StaticMatch::Prefix {
            index,
            no_regex: nr,
        } => {
            no_regex = nr;
            let (_, c) = set.get(index).expect("index from set");
            let mut probe = base.clone();
            probe.push(index);
            current = Some((c, probe.clone()));
            if !c.children.is_empty() {
                match find_in(&c.children, ctx, &mut probe)? {
                    Some((f, true)) => {
                        *path = probe;
                        return Ok(Some((f, true)));
                    }
                    Some((f, false)) => current = Some((f, probe)),
                    None => {}
                }
            }
        }
        StaticMatch::None => {}
    }
    if !no_regex {
        if let Some(m) = set.find_regex(&uri) {
            let caps = m.to_captures();
            for (name, _) in &caps.names {
                if let Some(v) = caps.name(name) {
                    ctx.user.insert(name.clone(), v.to_vec());
                }
            }
            ctx.captures = caps;
            let mut probe = base;
            probe.push(m.index);
            let c = m.value;
            let mut found = c;
            if !c.children.is_empty() {
                let mut nested = probe.clone();
                if let Some((f, _)) = find_in(&c.children, ctx, &mut nested)? {
                    found = f;
                    probe = nested;
                }
            }
            *path = probe;
            return Ok(Some((found, true)));
        }
    }
    Ok(current.map(|(c, p)| {
        *path = p;
        (c, false)
    }))
}

fn static_outcome(
    location: Vec<usize>,
    ctx: &Ctx<'_>,
    settings: &Settings,
    tf: Option<&TryFiles>,
) -> Outcome {
    use crate::parse::model::Fallback;
    let try_files = tf.map(|t| ExpandedTryFiles {
        candidates: t.candidates.iter().map(|c| c.expand(ctx, false)).collect(),
        fallback: match &t.fallback {
            Fallback::Uri(u) => ExpandedFallback::Uri(u.expand(ctx, false)),
            Fallback::Code(c) => ExpandedFallback::Code(*c),
            Fallback::Named(n) => ExpandedFallback::Named(n.clone()),
        },
    });
    Outcome::Static {
        location,
        uri: ctx.uri.clone(),
        args: ctx.args.clone(),
        settings: settings.clone(),
        try_files,
    }
}

#[cfg(test)]
mod tests;
