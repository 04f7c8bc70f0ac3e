//! Step 7 of the pipeline (SPEC sections 5 and 9): which external contact a request is about.
//! A valid `WGW-Contact` ticket wins — it was handed to one page, so two pages open on two
//! customers never mix them up — else the session's current contact. A ticket that does not
//! open (forged, expired, another member's or corp's) is ignored and logged, never trusted.

use pingora::prelude::*;
use pingora::proxy::Session;

use super::{answer, wants_html, Ctx};
use crate::answers::{self, Failure};
use crate::config::model::ExternalContactMode;
use crate::identity::is_plain_id;
use crate::jssdk::contact;
use crate::login::now_secs;
use wecom_api::Store;

pub enum Outcome {
    Continue,
    Answered,
}

/// The request header that carries a contact ticket; removed before the upstream.
pub const HEADER: &str = "wgw-contact";

pub async fn check(
    session: &mut Session,
    ctx: &mut Ctx,
    mode: ExternalContactMode,
    store: &dyn Store,
) -> Result<Outcome> {
    let chosen = match from_ticket(session, ctx, store).await {
        Some(c) => Some(c),
        None => from_session(ctx, store).await,
    };
    match (chosen, ctx.identity.as_mut()) {
        (Some((external_userid, unionid)), Some(identity)) => {
            identity.external_userid = Some(external_userid);
            identity.external_unionid = unionid;
            Ok(Outcome::Continue)
        }
        _ if mode == ExternalContactMode::Required => {
            let a = answers::failure(
                Failure::ExternalContactRequired,
                "this page needs a verified customer: open it from a customer chat",
                &ctx.request_id,
                wants_html(session),
            );
            answer(session, ctx, a).await?;
            Ok(Outcome::Answered)
        }
        _ => Ok(Outcome::Continue),
    }
}

/// The session's current contact, unless its pair was revoked: the session does not say when
/// its contact was verified, so any revocation of the pair still on record refuses it (the
/// page's own tickets, issued after a new verification, are not refused).
async fn from_session(ctx: &Ctx, store: &dyn Store) -> Option<(String, Option<String>)> {
    let c = ctx
        .session_contact
        .as_ref()
        .filter(|c| is_plain_id(&c.external_userid))?;
    let identity = ctx.identity.as_ref()?;
    if let (Some(corp), Some(userid)) = (identity.corp_id.as_deref(), identity.userid.as_deref()) {
        if contact::ticket_revoked(store, corp, userid, &c.external_userid, 0).await {
            return None;
        }
    }
    Some((
        c.external_userid.clone(),
        c.unionid.clone().filter(|u| is_plain_id(u)),
    ))
}

/// The contact of the request's `WGW-Contact` ticket, when it opens for this session and its
/// pair was not revoked since it was issued.
async fn from_ticket(
    session: &Session,
    ctx: &Ctx,
    store: &dyn Store,
) -> Option<(String, Option<String>)> {
    let value = session.req_header().headers.get(HEADER)?;
    let identity = ctx.identity.as_ref()?;
    let key = &ctx.config.session.as_ref()?.key;
    let opened = match (
        value.to_str(),
        identity.corp_id.as_deref(),
        identity.userid.as_deref(),
    ) {
        (Ok(v), Some(corp), Some(userid)) => {
            match contact::open_ticket_at(key, v.trim(), corp, userid, now_secs()) {
                Ok((c, iat)) => {
                    if contact::ticket_revoked(store, corp, userid, &c.external_userid, iat).await {
                        Err(contact::TicketRejected::Revoked)
                    } else {
                        Ok(c)
                    }
                }
                Err(e) => Err(e),
            }
        }
        _ => Err(contact::TicketRejected::Unreadable),
    };
    match opened {
        Ok(c) => Some((c.external_userid, c.unionid)),
        Err(why) => {
            // The value is left out: it is a bearer token for another page, or garbage.
            tracing::warn!(
                reason = why.as_str(),
                request_id = %ctx.request_id,
                userid = identity.userid.as_deref().unwrap_or("-"),
                "WGW-Contact ticket ignored"
            );
            None
        }
    }
}
