//! `ngx_http_rewrite_module`'s script engine: rewrite, return, set, if, break.

use super::{Body, FileKind, FileSystem, Flow};
use crate::escape::unescape_redirect;
use crate::parse::model::{Cond, FileTest, Flag, Rewrite, Stmt};
use crate::regex::Captures;
use crate::vars::{Ctx, Template};

pub(super) enum End {
    /// Every statement ran.
    Continue,
    /// `break`, or a rewrite with `last`/`break`.
    Stop,
    /// The script answered (a `return`, a redirect) or failed.
    Flow(Flow),
}

/// Run statements in order; `cx.st.uri_changed` ends true when the URI was rewritten and the
/// location must be looked up again.
pub(super) fn run(stmts: &[Stmt], cx: &mut Ctx<'_>, fs: &dyn FileSystem) -> End {
    for st in stmts {
        match st {
            Stmt::Rewrite(rw) => match rewrite(rw, cx) {
                End::Continue => {}
                other => return other,
            },
            Stmt::Return { code, text } => return End::Flow(ret(*code, text.as_ref(), cx)),
            Stmt::Set { name, value } => {
                let v = value.expand(cx, false);
                if name == "args" {
                    // ngx_http_variable_set_args
                    cx.st.args = v;
                    cx.st.args_set = true;
                    cx.st.valid_unparsed_uri = false;
                } else {
                    cx.req.maps.wrote(name);
                    cx.st.user.insert(name.clone(), v);
                }
            }
            Stmt::Break => {
                // ngx_http_script_break_code
                if cx.st.uri_changed {
                    cx.st.valid_location = false;
                    cx.st.uri_changed = false;
                }
                return End::Stop;
            }
            Stmt::If { cond, body, conf } => match test(cond, cx, fs) {
                Ok(true) => {
                    // ngx_http_script_if_code: the block's configuration becomes the
                    // request's, and stays so after the block (the script goes on).
                    if conf.is_some() {
                        cx.st.if_block = *conf;
                        let server = cx.server;
                        server.entered(cx);
                    }
                    match run(body, cx, fs) {
                        End::Continue => {}
                        other => return other,
                    }
                }
                Ok(false) => {}
                Err(()) => return End::Flow(Flow::Finalize(500)),
            },
        }
    }
    End::Continue
}

/// `ngx_http_script_regex_start_code` / `_end_code` for a `rewrite`.
fn rewrite(rw: &Rewrite, cx: &mut Ctx<'_>) -> End {
    let caps = match rw.regex.captures(&cx.st.uri) {
        Ok(Some(c)) => c,
        Ok(None) => {
            // A failed match forgets earlier captures (r->ncaptures = 0).
            cx.st.captures = Captures::default();
            return End::Continue;
        }
        Err(_) => return End::Flow(Flow::Finalize(500)),
    };
    set_captures(cx, caps);
    // Captures are re-escaped only when the request URI itself was escaped.
    let reescape = cx.st.quoted_uri || cx.st.plus_in_uri;
    if let Some(status) = rw.redirect {
        let mut loc = unescape_redirect(&rw.uri.expand(cx, reescape));
        if rw.add_args && !cx.st.args.is_empty() {
            loc.push(if rw.has_args { b'&' } else { b'?' });
            loc.extend_from_slice(&cx.st.args);
        }
        cx.st.location = Some(loc);
        return End::Flow(Flow::Finalize(status));
    }
    let uri = rw.uri.expand(cx, false);
    match &rw.args {
        Some(a) => {
            let mut args = a.expand(cx, reescape);
            if rw.add_args && !cx.st.args.is_empty() {
                args.push(b'&');
                args.extend_from_slice(&cx.st.args);
            }
            cx.st.args = args;
            cx.st.args_set = true;
        }
        None if !rw.add_args => {
            // nginx empties them in place: set, if there were any.
            cx.st.args_set |= !cx.st.args.is_empty();
            cx.st.args.clear();
        }
        None => {}
    }
    if uri.is_empty() {
        // "the rewritten URI has a zero length"
        return End::Flow(Flow::Finalize(500));
    }
    cx.st.exten = crate::mime::exten(&uri).to_vec();
    cx.st.uri = uri;
    cx.st.internal = true;
    cx.st.valid_unparsed_uri = false;
    match rw.flag {
        Flag::Last => {
            cx.st.uri_changed = true;
            End::Stop
        }
        Flag::Break => {
            cx.st.valid_location = false;
            cx.st.uri_changed = false;
            End::Stop
        }
        Flag::None => {
            cx.st.uri_changed = true;
            End::Continue
        }
    }
}

fn set_captures(cx: &mut Ctx<'_>, caps: Captures) {
    for (name, _) in &caps.names {
        if let Some(v) = caps.name(name) {
            let name = name.to_ascii_lowercase();
            cx.req.maps.wrote(&name);
            cx.st.user.insert(name, v.to_vec());
        }
    }
    cx.st.captures = caps;
}

/// `ngx_http_script_return_code` + `ngx_http_send_response`: below 400 or with a text the
/// answer is made here (a redirect code sets Location and goes through the special-response
/// handler, so `error_page` sees it); a bare 4xx/5xx is finalized as an error.
/// The answer a `return` is making, as its value reads it: its status only.
struct Returning(u16);

impl crate::vars::Answer for Returning {
    fn var(&self, name: &str) -> Option<Vec<u8>> {
        (name == "status").then(|| format!("{:03}", self.0).into_bytes())
    }
}

fn ret(code: u16, text: Option<&Template>, cx: &mut Ctx<'_>) -> Flow {
    if code >= 400 && text.is_none() {
        return Flow::Finalize(code);
    }
    let value = match text {
        None => Vec::new(),
        Some(t) if t.literal().is_some() => t.expand(cx, false),
        // nginx sets the answer's status before it works the value out
        // (`ngx_http_send_response`): `$status` in it is the code returned.
        Some(t) => {
            let returning = Returning(code);
            let inner = Ctx {
                req: cx.req,
                server: cx.server,
                st: cx.st.clone(),
                proxy: cx.proxy.clone(),
                answer: Some(&returning),
            };
            t.expand(&inner, false)
        }
    };
    if matches!(code, 301 | 302 | 303 | 307 | 308) {
        // `return 301;` sends an empty Location, as nginx does.
        cx.st.location = Some(value);
        return Flow::Finalize(code);
    }
    let body = if value.is_empty() {
        Body::Empty
    } else {
        Body::Text(value)
    };
    let server = cx.server;
    server.respond(cx, code, body)
}

fn test(cond: &Cond, cx: &mut Ctx<'_>, fs: &dyn FileSystem) -> Result<bool, ()> {
    Ok(match cond {
        Cond::Truth(v) => {
            let v = cx.var(v).unwrap_or_default();
            !(v.is_empty() || v == b"0")
        }
        Cond::Eq { var, value, negate } => {
            let v = cx.var(var).unwrap_or_default();
            (v == value.expand(cx, false)) != *negate
        }
        Cond::Regex { var, regex, negate } => {
            let v = cx.var(var).unwrap_or_default();
            match regex.captures(&v) {
                Ok(Some(c)) => {
                    set_captures(cx, c);
                    !*negate
                }
                Ok(None) => {
                    cx.st.captures = Captures::default();
                    *negate
                }
                Err(_) => return Err(()),
            }
        }
        Cond::File { op, negate, path } => {
            let p = path.expand(cx, false);
            let kind = fs.kind(&p);
            let yes = match op {
                FileTest::File => kind == FileKind::File,
                FileTest::Dir => kind == FileKind::Dir,
                FileTest::Exists => matches!(kind, FileKind::File | FileKind::Dir),
            };
            yes != *negate
        }
    })
}
