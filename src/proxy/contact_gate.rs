//! Step 7 of the pipeline (SPEC sections 5 and 9): which external contact a request is about.
//! A request with a `WGW-Contact` ticket is about that ticket's customer — it was handed to
//! one page, so two pages open on two customers never mix them up. A ticket that does not open
//! (forged, expired, another member's or corp's, two tickets at once) gives no contact at all:
//! that page is about some customer, and the session's current one is only the customer
//! another tab verified last. Without the header, the session's current contact applies.

use pingora::proxy::Session;

use super::Ctx;
use crate::answers::{Failure, Kind};
use crate::config::model::ExternalContactMode;
use crate::identity::is_plain_id;
use crate::jssdk::contact;
use crate::login::now_secs;
use wecom_api::Store;

/// The request header that carries a contact ticket; removed before the upstream.
pub const HEADER: &str = "wgw-contact";

/// Its value from a page that has no verified customer (the helper sends it then): no contact,
/// not the session's (which another tab or chat verified), and nothing to warn about.
const NONE: &[u8] = b"none";

pub async fn check(
    session: &Session,
    ctx: &mut Ctx,
    mode: ExternalContactMode,
    store: &dyn Store,
) -> Result<(), Failure> {
    let mut tickets = session.req_header().headers.get_all(HEADER).iter();
    let chosen = match (tickets.next(), tickets.next()) {
        (None, _) => from_session(ctx, store).await,
        (Some(none), None) if none.as_bytes() == NONE => None,
        (Some(ticket), None) => from_ticket(ticket, ctx, store).await,
        (Some(_), Some(_)) => {
            refused(ctx, "several_tickets");
            None
        }
    };
    match (chosen, ctx.identity.as_mut()) {
        (Some((external_userid, unionid)), Some(identity)) => {
            identity.external_userid = Some(external_userid);
            identity.external_unionid = unionid;
            Ok(())
        }
        _ if mode == ExternalContactMode::Required => Err(Failure::new(
            Kind::ExternalContactRequired,
            "this page needs a verified customer: open it from a customer chat",
        )),
        _ => Ok(()),
    }
}

/// Logged without the value: it is a bearer token for another page, or garbage.
fn refused(ctx: &Ctx, reason: &'static str) {
    tracing::warn!(
        reason,
        request_id = %ctx.request_id,
        userid = ctx.identity.as_ref().and_then(|i| i.userid.as_deref()).unwrap_or("-"),
        "WGW-Contact ticket refused: no contact for this request"
    );
}

/// The session's current contact, unless its pair was removed (SPEC section 18's
/// `del_follow_user` / `del_external_contact`) since it was verified. A removal is kept on
/// record for a session's lifetime after it, so a contact verified within the last session
/// lifetime is checked against every removal that can concern it; an older one (carried into
/// a renewed session by a re-login) is not used: the page verifies its customer again.
async fn from_session(ctx: &Ctx, store: &dyn Store) -> Option<(String, Option<String>)> {
    let c = ctx
        .session_contact
        .as_ref()
        .filter(|c| is_plain_id(&c.external_userid))?;
    let lifetime = ctx.config.session.as_ref()?.ttl.as_secs();
    if c.at.saturating_add(lifetime) <= now_secs() {
        return None;
    }
    if let Some(identity) = ctx.identity.as_ref() {
        if let (Some(corp), Some(userid)) =
            (identity.corp_id.as_deref(), identity.userid.as_deref())
        {
            if contact::ticket_revoked(store, corp, userid, &c.external_userid, c.at).await {
                return None;
            }
        }
    }
    Some((
        c.external_userid.clone(),
        c.unionid.clone().filter(|u| is_plain_id(u)),
    ))
}

/// The contact of a `WGW-Contact` ticket, when it opens for this session and its pair was not
/// revoked since it was issued.
async fn from_ticket(
    value: &http::HeaderValue,
    ctx: &Ctx,
    store: &dyn Store,
) -> Option<(String, Option<String>)> {
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
            refused(ctx, why.as_str());
            None
        }
    }
}
