//! Step 4 as a proxy phase: ask `rewrite_phase` what nginx would do and say which location
//! handles the request. A redirect or `return` answers here; a static file is served only
//! after the login and contact steps (`serve_file`).

use std::path::PathBuf;

use pingora::proxy::Session;

use super::Ctx;
use crate::answers::{self, Answer, Failure, Kind};
use crate::config::rules::Rules;
use crate::rewrite_phase::{self, Decision};
use crate::static_files::{self, Conditions, Served};

pub(super) enum Next {
    /// Go on with route selection's result (`None`: no route).
    Route(Option<usize>),
    /// An nginx location chose the upstream (set in the context).
    Proxy,
    /// A static file of an nginx location, and the URI it was found for.
    File {
        path: PathBuf,
        root: PathBuf,
        uri: Vec<u8>,
    },
    /// The rewrite phase answered (a redirect, `return`).
    Answer(Answer),
}

pub(super) fn phase(session: &Session, ctx: &mut Ctx, rules: &Rules) -> Result<Next, Failure> {
    let req = {
        let h = session.req_header();
        rewrite_phase::request(
            h.method.as_str(),
            h.raw_path(),
            &h.headers,
            &ctx.config.server,
            ctx.client_ip,
        )
    };
    let rid = &ctx.request_id;
    Ok(match rewrite_phase::decide(rules, &req) {
        Decision::Route { index, uri } => {
            ctx.upstream_uri = uri;
            Next::Route(Some(index))
        }
        Decision::Upstream { upstream, uri } => {
            ctx.upstream = Some(upstream);
            ctx.upstream_uri = uri;
            Next::Proxy
        }
        Decision::NotFound => Next::Route(None),
        Decision::Redirect { status, location } => {
            match answers::nginx_redirect(status, &location, rid) {
                Some(a) => Next::Answer(a),
                None => {
                    return Err(Failure::new(
                        Kind::Internal,
                        "the redirect target cannot be sent",
                    ))
                }
            }
        }
        Decision::Return { status, body } => {
            Next::Answer(answers::nginx_return(status, body.as_deref(), rid))
        }
        Decision::BadRequest => return Err(Failure::new(Kind::BadRequest, "malformed path")),
        Decision::Forbidden => {
            return Err(Failure::new(Kind::Forbidden, "this path is not served"))
        }
        Decision::Internal(why) => {
            tracing::warn!(request_id = %rid, "rewrite phase: {why}");
            return Err(Failure::new(
                Kind::Internal,
                "the request could not be completed",
            ));
        }
        Decision::File { path, root, uri } => Next::File { path, root, uri },
    })
}

pub(super) async fn serve_file(
    session: &Session,
    ctx: &Ctx,
    path: &std::path::Path,
    root: &std::path::Path,
) -> Result<Answer, Failure> {
    let h = &session.req_header().headers;
    let get = |n: http::header::HeaderName| h.get(n).map(|v| v.as_bytes().to_vec());
    let (inm, ims, range) = (
        get(http::header::IF_NONE_MATCH),
        get(http::header::IF_MODIFIED_SINCE),
        get(http::header::RANGE),
    );
    let cond = Conditions {
        if_none_match: inm.as_deref(),
        if_modified_since: ims.as_deref(),
        range: range.as_deref(),
    };
    match static_files::serve(path, root, &cond, &ctx.request_id).await {
        Served::Answer(h, body) => Ok((h, body)),
        Served::Forbidden => Err(Failure::new(Kind::Forbidden, "this path is not served")),
        Served::NotFound => Err(Failure::new(Kind::NotFound, "no such file")),
    }
}
