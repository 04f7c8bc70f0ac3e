//! Step 7 of the pipeline (SPEC sections 5 and 9): which external contact a request is about.
//! A valid `WGW-Contact` ticket wins — it was handed to one page, so two pages open on two
//! customers never mix them up — else the session's current contact. A ticket that does not
//! open (forged, expired, another member's or corp's) is ignored and logged, never trusted.

use pingora::proxy::Session;

use super::Ctx;
use crate::answers::{Failure, Kind};
use crate::config::model::ExternalContactMode;
use crate::identity::is_plain_id;
use crate::jssdk::contact;
use crate::login::now_secs;

/// The request header that carries a contact ticket; removed before the upstream.
pub const HEADER: &str = "wgw-contact";

pub fn check(session: &Session, ctx: &mut Ctx, mode: ExternalContactMode) -> Result<(), Failure> {
    let chosen = from_ticket(session, ctx).or_else(|| {
        ctx.session_contact
            .as_ref()
            .filter(|c| is_plain_id(&c.external_userid))
            .map(|c| {
                (
                    c.external_userid.clone(),
                    c.unionid.clone().filter(|u| is_plain_id(u)),
                )
            })
    });
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

/// The contact of the request's `WGW-Contact` ticket, when it opens for this session.
fn from_ticket(session: &Session, ctx: &Ctx) -> Option<(String, Option<String>)> {
    let value = session.req_header().headers.get(HEADER)?;
    let identity = ctx.identity.as_ref()?;
    let key = &ctx.config.session.as_ref()?.key;
    let opened = match (
        value.to_str(),
        identity.corp_id.as_deref(),
        identity.userid.as_deref(),
    ) {
        (Ok(v), Some(corp), Some(userid)) => {
            contact::open_ticket(key, v.trim(), corp, userid, now_secs())
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
