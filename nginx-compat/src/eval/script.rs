//! `ngx_http_rewrite_module`'s script engine: rewrite, return, set, if, break.

use super::{Flow, Outcome};
use crate::escape::unescape_redirect;
use crate::parse::model::{Cond, Flag, Rewrite, Settings, Stmt};
use crate::regex::Captures;
use crate::vars::Ctx;

/// Run statements in order. `changed` ends true when the URI was rewritten and the phase
/// must look up the location again (nginx's `r->uri_changed`).
pub(crate) fn run(
    stmts: &[Stmt],
    ctx: &mut Ctx<'_>,
    settings: &Settings,
    changed: &mut bool,
) -> Flow {
    for st in stmts {
        match st {
            Stmt::Rewrite(rw) => match rewrite(rw, ctx, settings, changed) {
                Flow::Continue => {}
                other => return other,
            },
            Stmt::Return { code, text } => {
                return Flow::Respond(ret(*code, text.as_ref(), ctx, settings))
            }
            Stmt::Set { name, value } => {
                let v = value.expand(ctx, false);
                ctx.user.insert(name.clone(), v);
            }
            Stmt::Break => {
                *changed = false;
                return Flow::Stop;
            }
            Stmt::If { cond, body } => match test(cond, ctx) {
                Ok(true) => match run(body, ctx, settings, changed) {
                    Flow::Continue => {}
                    other => return other,
                },
                Ok(false) => {}
                Err(m) => return Flow::Respond(Outcome::InternalError(m)),
            },
        }
    }
    Flow::Continue
}

fn rewrite(rw: &Rewrite, ctx: &mut Ctx<'_>, settings: &Settings, changed: &mut bool) -> Flow {
    let Some(caps) = rw.regex.captures(&ctx.uri) else {
        // A failed match forgets earlier captures (r->ncaptures = 0).
        ctx.captures = Captures::default();
        return Flow::Continue;
    };
    set_captures(ctx, caps);
    // Captures are re-escaped only when the request URI itself was escaped.
    let reescape = ctx.quoted_uri || ctx.plus_in_uri;
    if let Some(status) = rw.redirect {
        let mut loc = unescape_redirect(&rw.uri.expand(ctx, reescape));
        if rw.add_args && !ctx.args.is_empty() {
            loc.push(if rw.has_args { b'&' } else { b'?' });
            loc.extend_from_slice(&ctx.args);
        }
        return Flow::Respond(Outcome::Redirect {
            status,
            location: absolute(loc, ctx, settings),
        });
    }
    let uri = rw.uri.expand(ctx, false);
    match &rw.args {
        Some(a) => {
            let mut args = a.expand(ctx, reescape);
            if rw.add_args && !ctx.args.is_empty() {
                args.push(b'&');
                args.extend_from_slice(&ctx.args);
            }
            ctx.args = args;
        }
        None if !rw.add_args => ctx.args.clear(),
        None => {}
    }
    if uri.is_empty() {
        return Flow::Respond(Outcome::InternalError(
            "the rewritten URI has a zero length".into(),
        ));
    }
    ctx.uri = uri;
    match rw.flag {
        Flag::Last => {
            *changed = true;
            Flow::Stop
        }
        Flag::Break => {
            *changed = false;
            Flow::Stop
        }
        Flag::None => {
            *changed = true;
            Flow::Continue
        }
    }
}

fn set_captures(ctx: &mut Ctx<'_>, caps: Captures) {
    for (name, _) in &caps.names {
        if let Some(v) = caps.name(name) {
            ctx.user.insert(name.clone(), v.to_vec());
        }
    }
    ctx.captures = caps;
}

/// `ngx_http_script_return_code` + `ngx_http_send_response`.
fn ret(
    code: u16,
    text: Option<&crate::vars::Template>,
    ctx: &Ctx<'_>,
    settings: &Settings,
) -> Outcome {
    let Some(text) = text else {
        return Outcome::Return {
            status: code,
            body: None,
        };
    };
    let value = text.expand(ctx, false);
    if matches!(code, 301 | 302 | 303 | 307 | 308) {
        return Outcome::Redirect {
            status: code,
            location: absolute(value, ctx, settings),
        };
    }
    Outcome::Return {
        status: code,
        body: Some(value),
    }
}

fn test(cond: &Cond, ctx: &mut Ctx<'_>) -> Result<bool, String> {
    Ok(match cond {
        Cond::Truth(v) => {
            let v = ctx.var(v).unwrap_or_default();
            !(v.is_empty() || v == b"0")
        }
        Cond::Eq { var, value, negate } => {
            let v = ctx.var(var).unwrap_or_default();
            (v == value.expand(ctx, false)) != *negate
        }
        Cond::Regex { var, regex, negate } => {
            let v = ctx.var(var).unwrap_or_default();
            match regex.captures(&v) {
                Some(c) => {
                    set_captures(ctx, c);
                    !*negate
                }
                None => {
                    ctx.captures = Captures::default();
                    *negate
                }
            }
        }
        Cond::File { op, .. } => {
            return Err(format!(
                "if ({op} ...) needs the file system, which this evaluator does not read"
            ))
        }
    })
}

/// `ngx_http_header_filter`: a Location starting with '/' becomes absolute when
/// `absolute_redirect` is on, with the Host (or server name) and a non-default port.
pub(crate) fn absolute(loc: Vec<u8>, ctx: &Ctx<'_>, s: &Settings) -> Vec<u8> {
    if loc.first() != Some(&b'/') || !s.absolute_redirect {
        return loc;
    }
    let req = ctx.req;
    let host = if s.server_name_in_redirect {
        ctx.server_name.as_bytes().to_vec()
    } else {
        req.host_header()
            .unwrap_or_else(|| req.local_addr.as_bytes().to_vec())
    };
    let https = req.scheme == "https";
    let default_port = if https { 443 } else { 80 };
    let mut out = Vec::with_capacity(loc.len() + host.len() + 16);
    out.extend_from_slice(if https { b"https://" } else { b"http://" });
    out.extend_from_slice(&host);
    if s.port_in_redirect && req.port != default_port {
        out.extend_from_slice(format!(":{}", req.port).as_bytes());
    }
    out.extend_from_slice(&loc);
    out
}
