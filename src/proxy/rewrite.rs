//! Step 4 as a proxy phase: ask `rewrite_phase` what nginx would do and act on it.

use pingora::prelude::*;
use pingora::proxy::Session;

use super::{answer, wants_html, Ctx};
use crate::answers::{self, Failure};
use crate::config::rules::Rules;
use crate::rewrite_phase::{self, Decision};
use crate::static_files::{self, Conditions, Served};

pub(super) enum Next {
    /// Go on with route selection's result (`None`: no route).
    Route(Option<usize>),
    /// An nginx location chose the upstream; no login applies.
    Proxy,
    Answered,
}

pub(super) async fn phase(session: &mut Session, ctx: &mut Ctx, rules: &Rules) -> Result<Next> {
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
    let html = wants_html(session);
    let rid = ctx.request_id.clone();
    let fail = |f: Failure, detail: &str| answers::failure(f, detail, &rid, html);
    let a = match rewrite_phase::decide(rules, &req) {
        Decision::Route { index, uri } => {
            ctx.upstream_uri = uri;
            return Ok(Next::Route(Some(index)));
        }
        Decision::Upstream { upstream, uri } => {
            ctx.upstream = Some(upstream);
            ctx.upstream_uri = uri;
            return Ok(Next::Proxy);
        }
        Decision::NotFound => return Ok(Next::Route(None)),
        Decision::Redirect { status, location } => {
            match answers::nginx_redirect(status, &location, &rid) {
                Some(a) => a,
                None => fail(Failure::Internal, "the redirect target cannot be sent"),
            }
        }
        Decision::Return { status, body } => answers::nginx_return(status, body.as_deref(), &rid),
        Decision::BadRequest => fail(Failure::BadRequest, "malformed path"),
        Decision::Forbidden => fail(Failure::Forbidden, "this path is not served"),
        Decision::Internal(why) => {
            tracing::warn!(request_id = %rid, "rewrite phase: {why}");
            fail(Failure::Internal, "the request could not be completed")
        }
        Decision::File { path, root } => {
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
            match static_files::serve(&path, &root, &cond, &rid).await {
                Served::Answer(h, body) => (h, body),
                Served::Forbidden => fail(Failure::Forbidden, "this path is not served"),
                Served::NotFound => fail(Failure::NotFound, "no such file"),
            }
        }
    };
    answer(session, ctx, a).await?;
    Ok(Next::Answered)
}
