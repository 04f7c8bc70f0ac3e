//! The external contact (SPEC section 9): what the sidebar reports is believed only after
//! `externalcontact/get` lists the logged-in member among the contact's `follow_user`, and it
//! reaches the CRM only as a sealed, page-bound ticket or the session's current contact.

use bytes::Bytes;
use cookie::Key;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::contact_cache::ContactCache;
use crate::config::model::{App, Credentials};
pub use crate::domain::ExternalContact;
use crate::identity::is_plain_id;
use crate::login::seal;
use crate::provider::{ApiError, ApiRequest, Provider, TokenKind};

/// A contact ticket binds one page to one customer for this long.
pub const TICKET_TTL_SECS: u64 = 2 * 3600;
/// `follow_user` comes 500 per page; a contact followed by more than 100 pages of members is
/// not a sidebar's contact.
const MAX_PAGES: usize = 100;

/// Verifications a member may have WeCom asked about per minute (cached ones are free): far
/// above a person opening customers, far below a script's loop.
pub const ASKED_PER_MINUTE: u32 = 60;

static ASKED: std::sync::LazyLock<crate::limit::PerMinute<(String, String)>> =
    std::sync::LazyLock::new(|| crate::limit::PerMinute::new(ASKED_PER_MINUTE));
/// The associated data of the sealed ticket: a session cookie never opens as a ticket.
const TICKET_AAD: &str = "wgw_contact";

/// What the `WGW-Contact` ticket seals.
#[derive(Debug, Serialize, Deserialize)]
struct TicketPayload {
    corp: String,
    userid: String,
    ext: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    union: Option<String>,
    exp: u64,
    /// When it was issued, for revocations (SPEC section 18); a ticket sealed before tickets
    /// carried it reads as issued at 0, so any revocation of its pair refuses it.
    #[serde(default)]
    iat: u64,
}

/// The ticket `{prefix}/external-contact` hands to the page, for a verification that began
/// at `verified_at` (Unix s): it counts as issued then, so a removal of the pair that came
/// while WeCom was asked refuses it, and it lasts [`TICKET_TTL_SECS`] from then.
pub fn issue_ticket(
    key: &Key,
    corp_id: &str,
    userid: &str,
    contact: &ExternalContact,
    verified_at: u64,
) -> String {
    issue_ticket_until(key, corp_id, userid, contact, verified_at + TICKET_TTL_SECS)
}

/// A verified contact, and when its verification began (Unix s): what a ticket or the
/// session's current contact counts as issued at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub contact: ExternalContact,
    pub at: u64,
}

/// A ticket valid until `exp` (seconds since the epoch); tests seal expired ones with it.
pub fn issue_ticket_until(
    key: &Key,
    corp_id: &str,
    userid: &str,
    contact: &ExternalContact,
    exp: u64,
) -> String {
    let payload = TicketPayload {
        corp: corp_id.to_owned(),
        userid: userid.to_owned(),
        ext: contact.external_userid.clone(),
        union: contact.unionid.clone(),
        exp,
        iat: exp.saturating_sub(TICKET_TTL_SECS),
    };
    seal::seal(key, TICKET_AAD, &payload)
}

/// Why a `WGW-Contact` ticket is ignored (logged; never told to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketRejected {
    /// Not sealed with this gateway's key, altered, or not a ticket at all.
    Unreadable,
    Expired,
    OtherCorp,
    OtherUser,
    /// The member and the customer are no longer contacts (an event of SPEC section 18).
    Revoked,
}

impl TicketRejected {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketRejected::Unreadable => "unreadable",
            TicketRejected::Expired => "expired",
            TicketRejected::OtherCorp => "other_corp",
            TicketRejected::OtherUser => "other_user",
            TicketRejected::Revoked => "revoked",
        }
    }
}

/// The contact of a ticket, when it was sealed here for this corp and member and is unexpired.
pub fn open_ticket(
    key: &Key,
    value: &str,
    corp_id: &str,
    userid: &str,
    now: u64,
) -> Result<ExternalContact, TicketRejected> {
    open_ticket_at(key, value, corp_id, userid, now).map(|(c, _)| c)
}

/// [`open_ticket`], and when the ticket was issued (Unix s).
pub fn open_ticket_at(
    key: &Key,
    value: &str,
    corp_id: &str,
    userid: &str,
    now: u64,
) -> Result<(ExternalContact, u64), TicketRejected> {
    let p: TicketPayload = seal::open(key, TICKET_AAD, value).ok_or(TicketRejected::Unreadable)?;
    if p.corp != corp_id {
        return Err(TicketRejected::OtherCorp);
    }
    if p.userid != userid {
        return Err(TicketRejected::OtherUser);
    }
    if now >= p.exp {
        return Err(TicketRejected::Expired);
    }
    // Sealed from checked values; checked again because they become header values.
    if !is_plain_id(&p.ext) || p.union.as_deref().is_some_and(|u| !is_plain_id(u)) {
        return Err(TicketRejected::Unreadable);
    }
    Ok((
        ExternalContact {
            external_userid: p.ext,
            unionid: p.union,
            name: String::new(),
        },
        p.iat,
    ))
}

/// Was this pair's ticket issued at `iat` revoked by `del_follow_user` /
/// `del_external_contact` (SPEC section 18)?
pub async fn ticket_revoked(
    store: &dyn wecom_api::Store,
    corp_id: &str,
    userid: &str,
    external_userid: &str,
    iat: u64,
) -> bool {
    let key = crate::revocation::contact_key(corp_id, userid, external_userid);
    crate::revocation::is_revoked(store, &key, iat).await
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ContactError {
    /// 84061 (no relationship), 40096 (unknown id), or the member is not in `follow_user`.
    #[error("not this member's contact")]
    NotYourContact,
    /// The member asked WeCom about more customers this minute than anyone opens.
    #[error("too many customers asked about")]
    TooMany,
    #[error("provider: {0}")]
    Provider(#[from] ApiError),
    #[error("the provider's answer cannot be used: {0}")]
    Unusable(String),
}

/// One page of `externalcontact/get`, as far as the check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub contact: ExternalContact,
    pub followers: Vec<String>,
    /// Empty on the last page.
    pub next_cursor: String,
}

/// Reads one answer of `externalcontact/get`.
pub fn read_page(status: u16, errcode: i64, v: &Value) -> Result<Page, ContactError> {
    match errcode {
        // A success only in a success: an error page of WeCom's front (or a redirect) whose
        // body happens to read as JSON verifies nobody.
        0 if !(200..300).contains(&status) => {
            return Err(ContactError::Provider(ApiError::BadAnswer(format!(
                "HTTP {status}"
            ))))
        }
        0 => {}
        84061 | 40096 => return Err(ContactError::NotYourContact),
        _ => {
            return Err(ContactError::Provider(ApiError::Api {
                errcode,
                errmsg: v["errmsg"].as_str().unwrap_or_default().to_owned(),
            }))
        }
    }
    let c = &v["external_contact"];
    let external_userid = c["external_userid"]
        .as_str()
        .ok_or_else(|| ContactError::Unusable("no external_contact.external_userid".into()))?;
    let followers = v["follow_user"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["userid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(Page {
        contact: ExternalContact {
            external_userid: external_userid.to_owned(),
            unionid: c["unionid"]
                .as_str()
                .filter(|u| !u.is_empty())
                .map(str::to_owned),
            name: c["name"].as_str().unwrap_or_default().to_owned(),
        },
        followers,
        next_cursor: v["next_cursor"].as_str().unwrap_or_default().to_owned(),
    })
}

/// The id a page sends, before anything is asked of WeCom.
pub fn plausible_external_userid(s: &str) -> bool {
    s.len() <= 128 && is_plain_id(s)
}

/// Is `external_userid` a contact of member `userid` of `app`'s corp? Asks the store first
/// (positive answers only, 10 minutes), then `externalcontact/get` page by page until the
/// member shows up in `follow_user`.
///
/// `installed`: for a service-provider app, the member's corp (SPEC section 20): its own corp
/// token asks, and the verification is cached under that corp.
pub async fn verify(
    provider: &Provider,
    app: &App,
    installed: Option<&crate::suite::Corp>,
    userid: &str,
    external_userid: &str,
) -> Result<Verified, ContactError> {
    let (corp_id, kind) = match (&app.credentials, installed) {
        (
            Credentials::Wecom {
                corp_id,
                contact_secret,
                ..
            },
            _,
        ) => {
            // The contact secret's token is the one `externalcontact/*` is meant for; without
            // one, the app's own token works when the app may call customer contact APIs.
            let kind = if contact_secret.is_some() {
                TokenKind::Contact
            } else {
                TokenKind::Access
            };
            (corp_id.as_str(), kind)
        }
        // A third-party app calls with its corp token (there is no contact secret).
        (Credentials::Suite { .. }, Some(corp)) => {
            (corp.install.corp_id.as_str(), TokenKind::Access)
        }
        _ => {
            return Err(ContactError::Unusable(
                "external contacts belong to WeCom apps".into(),
            ))
        }
    };
    let store = &**provider.store();
    let cache = ContactCache::new(store);
    if let Some((contact, at)) = cache.get(corp_id, userid, external_userid).await {
        // Remembered by a verification that raced a removal of the pair (the removal's
        // `forget` came before this `remember`): not used.
        if !ticket_revoked(store, corp_id, userid, external_userid, at).await {
            return Ok(Verified { contact, at });
        }
    }
    // Each verification not remembered costs WeCom calls: a script repeating made-up ids must
    // not spend the corp's `externalcontact/get` quota.
    if !ASKED.allow(&(corp_id.to_owned(), userid.to_owned())) {
        return Err(ContactError::TooMany);
    }
    let started = crate::login::now_secs();
    let mut cursor = String::new();
    let mut cursors = std::collections::HashSet::new();
    for _ in 0..MAX_PAGES {
        let mut query = vec![("external_userid".to_owned(), external_userid.to_owned())];
        if !cursor.is_empty() {
            query.push(("cursor".to_owned(), cursor.clone()));
        }
        let req = ApiRequest {
            method: http::Method::GET,
            path: "/cgi-bin/externalcontact/get".into(),
            query,
            raw_query: String::new(),
            headers: Vec::new(),
            body: Bytes::new(),
        };
        let resp = match installed {
            Some(corp) => provider.corp_call(corp, kind, req).await?,
            None => provider.call(app, kind, req).await?,
        };
        let page = read_page(resp.status, resp.errcode, &resp.json()?)?;
        if page.contact.external_userid != external_userid {
            return Err(ContactError::Unusable(
                "the answer is about another contact".into(),
            ));
        }
        if page.followers.iter().any(|f| f == userid) {
            let mut contact = page.contact;
            // A unionid that is not a plain id is dropped, never forwarded (SPEC section 7).
            contact.unionid = contact.unionid.filter(|u| is_plain_id(u));
            // The pair was removed while WeCom was asked: its answer may be from before.
            if ticket_revoked(store, corp_id, userid, external_userid, started).await {
                return Err(ContactError::NotYourContact);
            }
            cache.remember(corp_id, userid, &contact, started).await;
            return Ok(Verified {
                contact,
                at: started,
            });
        }
        // A cursor seen before would page in a circle (up to MAX_PAGES calls).
        if page.next_cursor.is_empty() || !cursors.insert(page.next_cursor.clone()) {
            break;
        }
        cursor = page.next_cursor;
    }
    Err(ContactError::NotYourContact)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(s: &str) -> Key {
        Key::derive_from(format!("{s:0>32}").as_bytes())
    }

    fn customer() -> ExternalContact {
        ExternalContact {
            external_userid: "wmEmuCustomer001".into(),
            unionid: Some("oEmuUnion001".into()),
            name: "王小明".into(),
        }
    }

    #[test]
    fn ticket_opens_only_for_its_corp_member_and_lifetime() {
        let k = key("k");
        let t = issue_ticket(&k, "ww1", "zhangsan", &customer(), 1000);
        assert!(!t.contains("wmEmuCustomer001"), "sealed, not readable");
        let mut tampered = t.clone().into_bytes();
        let i = tampered.len() / 2;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let session_cookie = seal::seal(&k, "wgw_session", &json!({"v": 1, "s": []}));
        // (what, key, ticket, corp, member, now, outcome)
        type Case = (
            &'static str,
            Key,
            String,
            &'static str,
            &'static str,
            u64,
            Result<(), TicketRejected>,
        );
        let cases: Vec<Case> = vec![
            (
                "valid",
                k.clone(),
                t.clone(),
                "ww1",
                "zhangsan",
                1000,
                Ok(()),
            ),
            (
                "last second",
                k.clone(),
                t.clone(),
                "ww1",
                "zhangsan",
                1000 + 7199,
                Ok(()),
            ),
            (
                "expired",
                k.clone(),
                t.clone(),
                "ww1",
                "zhangsan",
                1000 + 7200,
                Err(TicketRejected::Expired),
            ),
            (
                "other member",
                k.clone(),
                t.clone(),
                "ww1",
                "lisi",
                1000,
                Err(TicketRejected::OtherUser),
            ),
            (
                "other corp",
                k.clone(),
                t.clone(),
                "ww2",
                "zhangsan",
                1000,
                Err(TicketRejected::OtherCorp),
            ),
            (
                "foreign key",
                key("other"),
                t.clone(),
                "ww1",
                "zhangsan",
                1000,
                Err(TicketRejected::Unreadable),
            ),
            (
                "tampered",
                k.clone(),
                tampered,
                "ww1",
                "zhangsan",
                1000,
                Err(TicketRejected::Unreadable),
            ),
            (
                "forged text",
                k.clone(),
                "wmEmuCustomer001".into(),
                "ww1",
                "zhangsan",
                1000,
                Err(TicketRejected::Unreadable),
            ),
            (
                "a session cookie",
                k.clone(),
                session_cookie,
                "ww1",
                "zhangsan",
                1000,
                Err(TicketRejected::Unreadable),
            ),
            (
                "empty",
                k.clone(),
                String::new(),
                "ww1",
                "zhangsan",
                1000,
                Err(TicketRejected::Unreadable),
            ),
        ];
        for (what, k, value, corp, user, now, want) in cases {
            let got = open_ticket(&k, &value, corp, user, now);
            match want {
                Ok(()) => {
                    let c = got.unwrap_or_else(|e| panic!("{what}: {e:?}"));
                    assert_eq!(c.external_userid, "wmEmuCustomer001", "{what}");
                    assert_eq!(c.unionid.as_deref(), Some("oEmuUnion001"), "{what}");
                }
                Err(e) => assert_eq!(got, Err(e), "{what}"),
            }
        }
        let expired = issue_ticket_until(&k, "ww1", "zhangsan", &customer(), 999);
        assert_eq!(
            open_ticket(&k, &expired, "ww1", "zhangsan", 1000),
            Err(TicketRejected::Expired)
        );
    }

    #[test]
    fn reading_externalcontact_get() {
        let ok = json!({
            "errcode": 0, "errmsg": "ok",
            "external_contact": {"external_userid": "wmA", "name": "王", "type": 1, "unionid": "oU"},
            "follow_user": [{"userid": "lisi"}, {"userid": "zhangsan", "remark": "x"}],
            "next_cursor": "C2"
        });
        let p = read_page(200, 0, &ok).unwrap();
        assert_eq!(p.followers, vec!["lisi", "zhangsan"]);
        assert_eq!(p.next_cursor, "C2");
        assert_eq!(p.contact.unionid.as_deref(), Some("oU"));
        assert_eq!(p.contact.name, "王");

        let wecom_user = json!({"errcode": 0, "external_contact": {"external_userid": "wmB", "type": 2}, "follow_user": []});
        let p = read_page(200, 0, &wecom_user).unwrap();
        assert_eq!((p.contact.unionid, p.next_cursor.as_str()), (None, ""));

        for code in [84061, 40096] {
            assert!(matches!(
                read_page(200, code, &json!({"errcode": code})),
                Err(ContactError::NotYourContact)
            ));
        }
        assert!(matches!(
            read_page(
                200,
                60011,
                &json!({"errcode": 60011, "errmsg": "no privilege"})
            ),
            Err(ContactError::Provider(ApiError::Api { errcode: 60011, .. }))
        ));
        assert!(matches!(
            read_page(200, 0, &json!({"errcode": 0})),
            Err(ContactError::Unusable(_))
        ));
        // A success body under an error status or a redirect verifies nobody.
        for status in [302, 500, 502] {
            assert!(
                matches!(
                    read_page(status, 0, &ok),
                    Err(ContactError::Provider(ApiError::BadAnswer(_)))
                ),
                "{status}"
            );
        }
    }

    #[test]
    fn plausible_ids() {
        assert!(plausible_external_userid("wmEmuCustomer001"));
        for bad in ["", "wm a", "wm\r\nX: 1", "王小明", &"w".repeat(129)] {
            assert!(!plausible_external_userid(bad), "{bad:?}");
        }
    }
}
