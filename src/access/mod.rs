//! Who may enter (SPEC section 17): a route's `allow` narrows the members its login admits.
//!
//! [`admit`] is the one decision, called by the login gate of the public listener and by any
//! other front door that must decide the same way (forward-auth). It reads the facts it needs
//! ([`wecom_api::directory`], through the provider), decides with the pure rule ([`rules::decide`]), keeps the decision with the
//! route's rule until its facts expire (so a member's next requests read nothing from the
//! store), counts it in `wgw_access_total{route,result}` and logs it once per member and route
//! per `policy_ttl`.
//!
//! A WeCom error while reading facts is a 502, never an admission.

#[cfg(test)]
mod config_tests;
pub mod reauth;
pub mod rules;

use std::time::Duration;

use crate::answers::{Failure, Kind};
use crate::config::model::{Config, Route, DEFAULT_POLICY_TTL};
use crate::domain::{Allow, App, Decided};
use crate::identity::Identity;
use crate::metrics::METRICS;
use crate::provider::Provider;

use rules::{Facts, Person, Verdict};

/// Decisions kept per rule before the expired ones are dropped.
const DECIDED_SOFT_LIMIT: usize = 10_000;

/// Whether the person of `identity` may enter `route`. `Ok` at once for a route without
/// `allow` (nothing read, nothing counted); `Err` is `not_allowed` (403) or a provider
/// failure (502).
pub async fn admit(
    config: &Config,
    provider: &Provider,
    route: &Route,
    identity: Option<&Identity>,
) -> Result<(), Failure> {
    let (Some(allow), Some(app)) = (route.allow.as_deref(), route.login.as_deref()) else {
        return Ok(());
    };
    let now = crate::clock::clock().now_ms();
    let result = match remembered(allow, identity, now) {
        Some(admitted) => Ok(admitted),
        None => {
            let ttl = config
                .session
                .as_ref()
                .map_or(DEFAULT_POLICY_TTL, |s| s.policy_ttl);
            // Boxed: reading facts is an API call whose future would otherwise sit in every
            // request's, though a member's requests decide it once per `policy_ttl`.
            Box::pin(decide(provider, allow, app, identity, ttl, now)).await
        }
    };
    let [admitted, refused, error] = allow.counted.get_or_init(|| {
        ["admitted", "refused", "error"]
            .map(|result| METRICS.access.with_label_values(&[&route.location, result]))
    });
    match result {
        Ok(true) => {
            admitted.inc();
            Ok(())
        }
        Ok(false) => {
            refused.inc();
            Err(not_allowed(identity))
        }
        Err(e) => {
            error.inc();
            Err(e)
        }
    }
}

/// The decision without reading anything: a WeCom non-member (openid only) enters only routes
/// without `allow`; a member's decision holds while its facts do. `None` when it must be made.
fn remembered(allow: &Allow, identity: Option<&Identity>, now: u64) -> Option<bool> {
    let Some(userid) = identity.and_then(|i| i.userid.as_deref()) else {
        return Some(false);
    };
    allow
        .decided
        .get(userid)
        .filter(|d| now < d.until_ms)
        .map(|d| d.admitted)
}

/// The decision from the facts (or the rule's own list of users), kept with the rule until
/// they expire.
async fn decide(
    provider: &Provider,
    allow: &Allow,
    app: &App,
    identity: Option<&Identity>,
    ttl: Duration,
    now: u64,
) -> Result<bool, Failure> {
    let Some(userid) = identity.and_then(|i| i.userid.as_deref()) else {
        return Ok(false);
    };
    let person = Person::Member(userid);
    let (verdict, until, name) = if rules::by_user(allow, person) {
        listed(provider, app, userid, ttl).await?
    } else {
        from_facts(provider, allow, app, userid, ttl).await?
    };
    if allow.decided.len() > DECIDED_SOFT_LIMIT {
        allow.decided.retain(|_, d| now < d.until_ms);
    }
    allow.decided.insert(
        userid.to_owned(),
        Decided {
            admitted: verdict.admitted(),
            until_ms: until,
        },
    );
    // Once per member and rule per `policy_ttl`: the decision is remembered until then.
    tracing::info!(
        target: "access",
        app = app.name.as_str(),
        userid,
        name = name.as_str(),
        rule = allow.describe().as_str(),
        decision = ?verdict,
        "access decision (kept until the member's facts expire)"
    );
    Ok(verdict.admitted())
}

/// A member the rule lists by userid is admitted while WeCom knows the userid: one that left
/// the corp (60111) is refused within `policy_ttl`, not at the end of a session that may last
/// days. When WeCom cannot be asked, a 502 as for every rule (SPEC 17): the userid alone would
/// admit a member deleted since, and for as long as the decision is kept.
async fn listed(
    provider: &Provider,
    app: &App,
    userid: &str,
    ttl: Duration,
) -> Result<(Verdict, u64, String), Failure> {
    let m = provider
        .facts()
        .member(&app.targets, userid, ttl)
        .await
        .map_err(could_not_check)?;
    Ok(match m.value.known {
        false => (Verdict::Refused, m.until, String::new()),
        true => (Verdict::ByUser, m.until, m.value.name),
    })
}

/// Whatever WeCom did while the facts were read, the answer is "could not check", never a
/// timeout of the CRM.
fn could_not_check(e: wecom_api::ApiError) -> Failure {
    let mut f = Failure::provider(&e);
    f.kind = Kind::ProviderFailed;
    f
}

/// Reads the facts the rule's lists need and decides; the decision holds until the first of
/// them expires.
async fn from_facts(
    provider: &Provider,
    allow: &Allow,
    app: &App,
    userid: &str,
    ttl: Duration,
) -> Result<(Verdict, u64, String), Failure> {
    let facts = provider.facts();
    let failed = could_not_check;
    let member = facts
        .member(&app.targets, userid, ttl)
        .await
        .map_err(failed)?;
    let mut until = member.until;
    let tree = if allow.departments.is_empty() {
        None
    } else {
        let t = facts.tree(&app.targets, ttl).await.map_err(failed)?;
        until = until.min(t.until);
        Some(t.value)
    };
    let mut tags = Vec::with_capacity(allow.tags.len());
    for &tagid in &allow.tags {
        let t = facts.tag(&app.targets, tagid, ttl).await.map_err(failed)?;
        until = until.min(t.until);
        tags.push((tagid, t.value));
    }
    let verdict = rules::decide(
        allow,
        Person::Member(userid),
        &Facts {
            member: Some(&member.value),
            tree: tree.as_ref(),
            tags: &tags,
        },
    );
    Ok((verdict, until, member.value.name))
}

/// 403 `not_allowed`: the page names the member and says who to ask; the JSON carries the
/// request id like every failure.
fn not_allowed(identity: Option<&Identity>) -> Failure {
    let detail = match identity.and_then(|i| i.userid.as_deref()) {
        Some(userid) => format!(
            "You are signed in as {userid}, who may not open this page. \
             Ask the administrator of this application to give you access \
             (a department, a tag or your userid in its access rule)."
        ),
        None => "This page is for members of the company only.".to_owned(),
    };
    Failure::new(Kind::NotAllowed, detail)
}
