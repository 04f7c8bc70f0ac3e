//! The session cookie (SPEC section 8): AES-256-GCM sealed, `HttpOnly`, `SameSite=Lax`,
//! `Secure` on https, no `Max-Age` (it ends with the WebView), the absolute `ttl` inside.
//!
//! One cookie holds at most one session per configured app: a route of app A needs a session
//! of app A, and logging into app B leaves A's session alone.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cookie::{Cookie, SameSite};
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

use super::assertion::Prefix;
use super::seal;
use crate::config::model::{App, Credentials, SessionSettings};
use crate::identity::Identity;

/// How far ahead of this machine's clock a session may say it was issued (instances' clocks
/// apart, a clock stepped back): the skew a revocation's ordering also allows (a `delete_user`
/// ends the sessions dated up to this long after it).
pub use crate::revocation::CLOCK_SKEW_SECS;

/// A logged-in identity of one app, as sealed in the cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEntry {
    pub app: String,
    /// Names this session in revocation records (`logout`); cookies sealed before sessions had
    /// one still open until their `ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wechat_app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    /// Service-provider apps (SPEC section 20): the member as the provider sees them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_userid: Option<String>,
    /// A session of a service-provider app (third-party or 代开发) in the corp `corp_id`: it
    /// ends with that corp's `cancel_auth` (`crate::login::revocation`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub installed: bool,
    /// The suite of a service-provider app's session: a reload that points the app's name at
    /// another suite (whose installs are others) does not carry it over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    pub iat: u64,
    pub exp: u64,
    /// The external contact last verified in this session (SPEC section 9): what a request
    /// without a `WGW-Contact` ticket is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<CurrentContact>,
    /// The beginning of this session's assertions, prepared on its first signed request while
    /// the opened cookie is remembered (never sealed into it).
    #[serde(skip)]
    pub assertion: Memo<Prefix>,
    /// The store records that can end this session, worked out on its first check. An entry
    /// is not changed once checked (a changed copy starts without it: see [`Memo`]).
    #[serde(skip)]
    pub revocation: Memo<Records>,
}

/// The store records that can end one session, in the order they are asked for (its own, its
/// person's, its corp's installation's), worked out by `revocation` once for a remembered
/// session instead of three strings joined on each request.
pub struct Records {
    pub keys: Box<[String]>,
    pub sid: bool,
    pub member: bool,
    pub corp: bool,
    /// The store's facts version at which none of the records ended the session (0: never
    /// asked); see `Store::facts_version`.
    pub unrevoked_at: std::sync::atomic::AtomicU64,
}

/// A value worked out once from the rest of its owner, which it never adds to: a copy starts
/// without it, and it takes no part in comparisons.
pub struct Memo<T>(OnceLock<T>);

impl<T> Memo<T> {
    pub fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(f)
    }
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo(OnceLock::new())
    }
}

impl<T> Clone for Memo<T> {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl<T> PartialEq for Memo<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for Memo<T> {}

impl<T> std::fmt::Debug for Memo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Memo(..)"
        } else {
            "Memo(-)"
        })
    }
}

/// A verified external contact as the session remembers it; only plain ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentContact {
    pub external_userid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    /// When its verification began (Unix s), for removals of the pair (SPEC section 18); a
    /// cookie sealed before it was kept reads as 0, so any removal on record refuses it.
    #[serde(default)]
    pub at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Payload {
    v: u8,
    s: Vec<SessionEntry>,
}

impl SessionEntry {
    pub fn new(app: &App, identity: &Identity, now: u64, ttl_secs: u64) -> SessionEntry {
        SessionEntry {
            app: app.name.clone(),
            sid: Some(Alphanumeric.sample_string(&mut rand::rng(), 22)),
            corp_id: identity.corp_id.clone(),
            agent_id: identity.agent_id,
            userid: identity.userid.clone(),
            openid: identity.openid.clone(),
            wechat_app_id: identity.wechat_app_id.clone(),
            unionid: identity.unionid.clone(),
            open_userid: identity.open_userid.clone(),
            installed: matches!(app.credentials, Credentials::Suite { .. }),
            suite: match &app.credentials {
                Credentials::Suite { suite_id, .. } => Some(suite_id.clone()),
                _ => None,
            },
            iat: now,
            exp: now.saturating_add(ttl_secs),
            contact: None,
            assertion: Default::default(),
            revocation: Default::default(),
        }
    }

    /// The person this session is of.
    pub fn identity(&self) -> Identity {
        Identity {
            corp_id: self.corp_id.clone(),
            agent_id: self.agent_id,
            userid: self.userid.clone(),
            openid: self.openid.clone(),
            wechat_app_id: self.wechat_app_id.clone(),
            unionid: self.unionid.clone(),
            open_userid: self.open_userid.clone(),
            external_userid: None,
            external_unionid: None,
        }
    }

    /// Within its absolute lifetime. An `iat` ahead of this clock is tolerated by
    /// [`CLOCK_SKEW_SECS`]: the cookie is sealed with the session key, so a later `iat` is no
    /// forgery, only another instance's clock (or this one stepped back by NTP); refusing it
    /// signed every member out without a word.
    pub fn live(&self, now: u64) -> bool {
        self.iat <= now + CLOCK_SKEW_SECS && now < self.exp
    }

    /// Live, and within the `ttl` of the running config: a shorter one after a reload ends
    /// sessions already issued (each carries its issue time).
    pub fn current(&self, settings: &SessionSettings, now: u64) -> bool {
        self.live(now) && now < self.iat.saturating_add(settings.ttl.as_secs())
    }

    /// Still the same app: a reload that points the name at another corp, agent or Official
    /// Account must not carry old sessions over.
    pub fn belongs_to(&self, app: &App) -> bool {
        if self.app != app.name {
            return false;
        }
        match &app.credentials {
            Credentials::Wecom {
                corp_id, agent_id, ..
            } => {
                self.corp_id.as_deref() == Some(corp_id.as_str())
                    && self.agent_id == Some(*agent_id)
                    && self.wechat_app_id.is_none()
                    // Not a service-provider app's session (its userid may be the provider's
                    // encrypted one) under a self-built app of that corp and agent.
                    && !self.installed
                    && self.suite.is_none()
            }
            Credentials::WechatMp { app_id, .. } => {
                self.wechat_app_id.as_deref() == Some(app_id.as_str())
            }
            // A member of one corp that installed it; the corp's `cancel_auth` ends it
            // (`crate::login::revocation`).
            Credentials::Suite { suite_id, .. } => {
                self.installed
                    && self.suite.as_deref() == Some(suite_id.as_str())
                    && self.corp_id.is_some()
                    && self.wechat_app_id.is_none()
            }
        }
    }
}

/// The live sessions in the request's cookies. A tampered, expired or foreign-key cookie is
/// simply no session. The `ttl` of the running config applies too, so a shorter one after a
/// reload ends sessions already issued (each carries its issue time).
pub fn read(
    settings: &SessionSettings,
    cookies: &[(String, String)],
    now: u64,
) -> Vec<SessionEntry> {
    let values = cookies
        .iter()
        .filter(|(name, _)| *name == settings.cookie_name)
        .map(|(_, value)| value.as_str());
    read_values(settings, values, now)
}

/// The same, given the values of the session cookie.
pub fn read_values<'a>(
    settings: &SessionSettings,
    values: impl IntoIterator<Item = &'a str>,
    now: u64,
) -> Vec<SessionEntry> {
    let live = |entries: &[SessionEntry]| -> Vec<SessionEntry> {
        entries
            .iter()
            .filter(|e| e.current(settings, now))
            .cloned()
            .collect()
    };
    match opened(settings, values) {
        Opened::One(entries) => live(&entries),
        Opened::Nothing => Vec::new(),
        // Several: the one with live sessions, if only one has any.
        Opened::Several(values) => {
            let mut with_live = values.iter().map(|e| live(e)).filter(|l| !l.is_empty());
            match (with_live.next(), with_live.next()) {
                (Some(one), None) => one,
                _ => Vec::new(),
            }
        }
    }
}

/// Every live session of every value of the session cookie that opens, two or more included
/// (a logout ends them all).
pub fn read_every<'a>(
    settings: &SessionSettings,
    values: impl IntoIterator<Item = &'a str>,
    now: u64,
) -> Vec<SessionEntry> {
    let mut seen: Vec<&str> = Vec::new();
    let mut all = Vec::new();
    for value in values {
        if seen.contains(&value) {
            continue;
        }
        seen.push(value);
        if let Some(entries) = open(settings, value) {
            all.extend(entries.iter().filter(|e| e.current(settings, now)).cloned());
        }
    }
    all
}

/// What a request's session cookie values open to.
pub enum Opened {
    Nothing,
    /// One value opens (the same value sent twice is one): what it holds, lifetimes not yet
    /// checked, shared with the memory of opened values, nothing copied.
    One(Arc<[SessionEntry]>),
    /// Two or more different values open (one may have been planted by a sibling host or
    /// another port of this one, a longer `Path` sending it first): what each holds, for
    /// [`choose`] to tell whether one session of an app is meant.
    Several(Vec<Arc<[SessionEntry]>>),
}

/// What the session cookie's values open to.
pub fn opened<'a>(settings: &SessionSettings, values: impl IntoIterator<Item = &'a str>) -> Opened {
    let mut found: Option<(&str, Arc<[SessionEntry]>)> = None;
    let mut more: Vec<(&str, Arc<[SessionEntry]>)> = Vec::new();
    for value in values {
        let seen = |v: &&str| *v == value;
        if found.as_ref().is_some_and(|(v, _)| seen(v)) || more.iter().any(|(v, _)| seen(v)) {
            continue;
        }
        if let Some(entries) = open(settings, value) {
            match found {
                None => found = Some((value, entries)),
                Some(_) => more.push((value, entries)),
            }
        }
    }
    match found {
        None => Opened::Nothing,
        Some((_, entries)) if more.is_empty() => Opened::One(entries),
        Some(first) => Opened::Several(
            std::iter::once(first)
                .chain(more)
                .map(|(_, entries)| entries)
                .collect(),
        ),
    }
}

/// A cookie's sessions, and where among them the one meant is.
pub type Held = (Arc<[SessionEntry]>, usize);

/// Of several session cookies, each with the live session of one app it holds (its entries,
/// and where): `Ok(None)` when there is none; `Ok(Some)` when there is one, or when they all
/// name one person (the newest then); `Err(newest iat)` when two name different people —
/// whose the browser is cannot be told, and neither is used.
pub fn choose(live: Vec<Held>) -> Result<Option<Held>, u64> {
    let Some(newest) = live.iter().max_by_key(|(entries, at)| entries[*at].iat) else {
        return Ok(None);
    };
    let one = &newest.0[newest.1];
    if live
        .iter()
        .all(|(entries, at)| same_person(&entries[*at], one))
    {
        Ok(Some(newest.clone()))
    } else {
        Err(one.iat)
    }
}

/// `Set-Cookie` values removing the session cookie wherever a cookie sent with a request for
/// `path` to `host` may have been set: at `/` and at each segment of the path (`/sidebar`,
/// `/sidebar/`, ..., the first 16), host-only as the gateway sets it and with `Domain=` of the
/// host and of each domain above it (a sibling host's; a browser ignores one for a public
/// suffix).
pub fn clear_cookies_for(
    settings: &SessionSettings,
    secure: bool,
    host: &str,
    path: &str,
) -> Vec<String> {
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let mut paths = vec!["/".to_owned()];
    for (i, _) in path.match_indices('/').skip(1).take(16) {
        paths.push(path[..i].to_owned());
        paths.push(path[..=i].to_owned());
    }
    if path.len() > 1 && !path.ends_with('/') {
        paths.push(path.to_owned());
    }
    let named = host.parse::<std::net::IpAddr>().is_err() && host.contains('.');
    let mut domains: Vec<Option<&str>> = vec![None];
    if named {
        let mut d = host;
        while d.contains('.') {
            domains.push(Some(d));
            d = &d[d.find('.').map_or(d.len(), |i| i + 1)..];
        }
    }
    let mut out = Vec::with_capacity(paths.len() * domains.len());
    for p in &paths {
        for d in &domains {
            out.push(removal_at(settings, secure, p.clone(), *d));
        }
    }
    out
}

/// The `Set-Cookie` value removing the session cookie set with `path` (and `domain`).
fn removal_at(
    settings: &SessionSettings,
    secure: bool,
    path: String,
    domain: Option<&str>,
) -> String {
    let mut c = Cookie::build((settings.cookie_name.clone(), ""))
        .path(path)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .build();
    if let Some(d) = domain {
        c.set_domain(d.to_owned());
    }
    c.make_removal();
    c.to_string()
}

/// Session cookie values already opened, and what they hold. A value sealed by us opens to the
/// same sessions every time, so a browser's cookie is decrypted and parsed once, not on every
/// request; each request still checks lifetimes, the `ttl` and revocations. Entries are kept
/// per settings generation (a reload with another secret reuses nothing), only for values
/// that opened (a forged one costs its sender a decrypt each time, as before), at most
/// [`MAX_OPENED`], forgotten all at once when full.
///
/// Each thread keeps its own: a value is opened once per worker that serves it, and what it
/// opened to (with what is worked out once for it: the assertion's prefix, the revocation
/// keys) is then the thread's alone. A memory the workers share costs every request its lock's
/// cache line and the entries' reference count passing between cores.
type OpenedValues = HashMap<Box<str>, (u64, Arc<[SessionEntry]>), foldhash::quality::RandomState>;

thread_local! {
    /// Cookie value -> (settings generation, the sessions it opened to). Hashed with a randomly
    /// seeded foldhash, not SipHash: the key is the whole sealed value (a few hundred bytes,
    /// ~1k instructions per request with SipHash), and only values that opened are ever
    /// inserted, so nobody can fill the map with keys of their choosing.
    static OPENED: RefCell<OpenedValues> = RefCell::new(HashMap::with_hasher(Default::default()));
}

/// Values one thread remembers at most.
const MAX_OPENED: usize = 4096;

fn open(settings: &SessionSettings, value: &str) -> Option<Arc<[SessionEntry]>> {
    let kept = OPENED.with_borrow(|o| match o.get(value) {
        Some((generation, entries)) if *generation == settings.generation => Some(entries.clone()),
        _ => None,
    });
    if kept.is_some() {
        return kept;
    }
    let payload =
        seal::open::<Payload>(&settings.key, &settings.cookie_name, value).filter(|p| p.v == 1)?;
    let entries: Arc<[SessionEntry]> = payload.s.into();
    OPENED.with_borrow_mut(|o| {
        if o.len() >= MAX_OPENED {
            o.clear();
        }
        o.insert(value.into(), (settings.generation, entries.clone()));
    });
    Some(entries)
}

/// The session of `app` among `entries`.
pub fn for_app<'a>(entries: &'a [SessionEntry], app: &App) -> Option<&'a SessionEntry> {
    entries.iter().find(|e| e.belongs_to(app))
}

/// The session a new sign-in issues, given the app's session it replaces: the same person
/// keeps the current contact (a silent re-login after `reauth_after` changes nothing for
/// them); another member starts with none, as a customer verified by someone else is not
/// theirs (SPEC section 17). The session id is always new: a revoked one is never revived.
pub fn renew(previous: Option<&SessionEntry>, mut fresh: SessionEntry) -> SessionEntry {
    if previous.is_some_and(|p| same_person(p, &fresh)) {
        fresh.contact = previous.and_then(|p| p.contact.clone());
    }
    fresh
}

/// Two sessions of one app for the same person.
fn same_person(a: &SessionEntry, b: &SessionEntry) -> bool {
    a.app == b.app
        && a.corp_id == b.corp_id
        && a.userid == b.userid
        && a.openid == b.openid
        && a.wechat_app_id == b.wechat_app_id
}

/// The sessions of `entries` a sign-in to `fresh` inside the WeCom client does not show to be
/// the same person's: WeCom just named who is on this device (SPEC section 17: someone else
/// signed in there), and every other app's WeCom session that cannot be matched with them is
/// ended (inside the client its app signs in again without a word). Matched: self-built apps
/// of one corp by userid; a service provider's apps by `open_userid`, the same across its
/// apps, or within one suite by userid. A session of another corp, or of the other kind (a
/// provider may see a member under another userid; a 代开发 app has no `open_userid`), cannot
/// be matched: left in place, it let the next person on the device work as the one before in
/// an app whose session was not asked again. A WeChat (Official Account) session is no
/// WeCom member's and stays; a sign-in to one names no member, and displaces nothing.
pub fn displaced<'a>(
    entries: &'a [SessionEntry],
    fresh: &'a SessionEntry,
) -> impl Iterator<Item = &'a SessionEntry> + 'a {
    entries.iter().filter(move |e| {
        if e.app == fresh.app || e.corp_id.is_none() || fresh.corp_id.is_none() {
            return false;
        }
        if e.corp_id != fresh.corp_id {
            return true;
        }
        let same_ids = e.userid == fresh.userid && e.openid == fresh.openid;
        let same = match (e.installed, fresh.installed) {
            (false, false) => same_ids,
            (true, true) => match (&e.open_userid, &fresh.open_userid) {
                (Some(a), Some(b)) => a == b,
                _ => e.suite.is_some() && e.suite == fresh.suite && same_ids,
            },
            _ => false,
        };
        !same
    })
}

/// `entries` with `entry` in place of any earlier session of the same app.
pub fn replace(mut entries: Vec<SessionEntry>, entry: SessionEntry) -> Vec<SessionEntry> {
    entries.retain(|e| e.app != entry.app);
    entries.push(entry);
    entries
}

/// The `Set-Cookie` value carrying `entries`.
pub fn set_cookie(settings: &SessionSettings, entries: Vec<SessionEntry>, secure: bool) -> String {
    let value = seal::seal(
        &settings.key,
        &settings.cookie_name,
        &Payload { v: 1, s: entries },
    );
    Cookie::build((settings.cookie_name.clone(), value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .build()
        .to_string()
}

/// The `Set-Cookie` value that removes the session.
pub fn clear_cookie(settings: &SessionSettings, secure: bool) -> String {
    removal_at(settings, secure, "/".to_owned(), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Secret;
    use std::time::Duration;

    fn settings(secret: &str) -> SessionSettings {
        let secret = Secret::new(format!("{secret:0>32}"));
        SessionSettings::new(&secret, "wgw_session", Duration::from_secs(3600))
    }

    fn entry(app: &str, iat: u64) -> SessionEntry {
        SessionEntry {
            app: app.into(),
            sid: None,
            corp_id: Some("ww1".into()),
            agent_id: Some(1000002),
            userid: Some("zhangsan".into()),
            openid: None,
            wechat_app_id: None,
            unionid: None,
            open_userid: None,
            installed: false,
            suite: None,
            iat,
            exp: iat + 3600,
            contact: None,
            assertion: Default::default(),
            revocation: Default::default(),
        }
    }

    /// The cookie value from a `Set-Cookie` line, as the browser would send it back.
    fn sent_back(set_cookie: &str) -> Vec<(String, String)> {
        let c = Cookie::parse(set_cookie.to_owned()).unwrap();
        vec![(c.name().to_owned(), c.value().to_owned())]
    }

    #[test]
    fn a_sign_in_displaces_the_corps_other_sessions_of_another_person_only() {
        let with = |app: &str, f: &dyn Fn(&mut SessionEntry)| {
            let mut e = entry(app, 1000);
            f(&mut e);
            e
        };
        let lisi = with("crm", &|e| e.userid = Some("lisi".into()));
        let ended = |others: Vec<SessionEntry>, fresh: &SessionEntry| -> Vec<String> {
            displaced(&others, fresh).map(|e| e.app.clone()).collect()
        };
        let others = vec![
            entry("crm", 900),
            entry("crm2", 900),
            with("same", &|e| e.userid = Some("lisi".into())),
            with("guest", &|e| {
                e.userid = None;
                e.openid = Some("o-guest".into());
            }),
            with("other-corp", &|e| e.corp_id = Some("ww2".into())),
            with("oa", &|e| {
                e.corp_id = None;
                e.wechat_app_id = Some("wx1".into());
            }),
            with("suite", &|e| {
                e.installed = true;
                e.userid = Some("cipher-z".into());
                e.open_userid = Some("ou-z".into());
            }),
        ];
        // The app signed in to is replaced, not displaced; another app's session of zhangsan
        // and of a guest of this corp are, and so are those that cannot be matched with lisi:
        // another corp's, a provider's app's (another kind of userid). lisi's own and an
        // Official Account's (no member's) stay.
        assert_eq!(
            ended(others.clone(), &lisi),
            ["crm2", "guest", "other-corp", "suite"]
        );
        // Among a provider's apps, by open_userid; a self-built app's cannot be matched.
        let suite_lisi = with("suite2", &|e| {
            e.installed = true;
            e.userid = Some("cipher-l".into());
            e.open_userid = Some("ou-l".into());
        });
        assert_eq!(
            ended(others.clone(), &suite_lisi),
            ["crm", "crm2", "same", "guest", "other-corp", "suite"]
        );
        let suite_zhangsan = with("suite2", &|e| {
            e.installed = true;
            e.userid = Some("cipher-z2".into());
            e.open_userid = Some("ou-z".into());
        });
        assert!(!ended(others.clone(), &suite_zhangsan).contains(&"suite".to_owned()));
        // A provider's sessions without open_userid (a 代开发 app's), within one suite.
        let dk = |app: &str, suite: &str, userid: &str| {
            let (suite, userid) = (suite.to_owned(), userid.to_owned());
            with(app, &move |e| {
                e.installed = true;
                e.suite = Some(suite.clone());
                e.userid = Some(userid.clone());
            })
        };
        // Another suite's, without open_userid, cannot be matched: a 代开发 app's session of
        // zhangsan let lisi work as zhangsan after signing in to the third-party app.
        let kept = vec![dk("dk1", "dkA", "zhangsan"), dk("dk2", "dkB", "zhangsan")];
        assert_eq!(
            ended(kept.clone(), &dk("dk3", "dkA", "lisi")),
            ["dk1", "dk2"]
        );
        assert_eq!(ended(kept, &dk("dk3", "dkA", "zhangsan")), ["dk2"]);
        // An Official Account sign-in in the WeCom client names a WeChat user, no member:
        // the member's sessions stay.
        let oa = with("oa2", &|e| {
            e.corp_id = None;
            e.userid = None;
            e.openid = Some("o-wx".into());
            e.wechat_app_id = Some("wx2".into());
        });
        assert!(ended(others, &oa).is_empty());
    }

    #[test]
    fn cookie_attributes() {
        let s = settings("k");
        let line = set_cookie(&s, vec![entry("crm", 1000)], true);
        for want in [
            "wgw_session=",
            "Path=/",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
        ] {
            assert!(line.contains(want), "{line}");
        }
        assert!(
            !line.contains("Max-Age") && !line.contains("Expires"),
            "{line}"
        );
        let plain = set_cookie(&s, vec![entry("crm", 1000)], false);
        assert!(!plain.contains("Secure"));
        assert!(!line.contains("zhangsan"), "the identity is not readable");
        let gone = clear_cookie(&s, false);
        assert!(gone.contains("Max-Age=0"), "{gone}");
    }

    #[test]
    fn an_opened_value_is_kept_only_under_its_own_key_and_still_ages() {
        let s = settings("k");
        let cookies = sent_back(&set_cookie(&s, vec![entry("crm", 1000)], false));
        let kept = |s: &SessionSettings| {
            OPENED.with_borrow(|o| {
                o.get(cookies[0].1.as_str())
                    .is_some_and(|e| e.0 == s.generation)
            })
        };
        assert_eq!(read(&s, &cookies, 1001).len(), 1);
        assert!(kept(&s), "kept after the first open");
        assert_eq!(
            read(&s, &cookies, 1002).len(),
            1,
            "opens again from what was kept"
        );
        // Kept entries are checked on every read: past the ttl the session is gone.
        assert!(read(&s, &cookies, 1000 + 3600).is_empty());
        // Another config's key (a reload with a new secret) has its own, empty store.
        let other = settings("other");
        assert!(read(&other, &cookies, 1001).is_empty());
        assert!(!kept(&other));
        // A value that does not open is not kept.
        let mut forged = cookies.clone();
        forged[0].1.push('A');
        assert!(read(&s, &forged, 1001).is_empty());
        assert!(!OPENED.with_borrow(|o| o.contains_key(forged[0].1.as_str())));
    }

    #[test]
    fn seal_open_tamper_expiry_wrong_key() {
        let s = settings("k");
        let cookies = sent_back(&set_cookie(
            &s,
            vec![entry("crm", 1000), entry("mp", 1000)],
            false,
        ));
        let mut tampered = cookies.clone();
        let v = &mut tampered[0].1;
        let mid = v.len() / 2;
        let flipped = if &v[mid..mid + 1] == "A" { "B" } else { "A" };
        v.replace_range(mid..mid + 1, flipped);
        let mut renamed = cookies.clone();
        renamed[0].0 = "other".into();
        // (description, settings, cookies sent, now, live apps)
        type Case = (
            &'static str,
            SessionSettings,
            Vec<(String, String)>,
            u64,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "fresh",
                settings("k"),
                cookies.clone(),
                1000,
                vec!["crm", "mp"],
            ),
            (
                "last second",
                settings("k"),
                cookies.clone(),
                4599,
                vec!["crm", "mp"],
            ),
            ("expired", settings("k"), cookies.clone(), 4600, vec![]),
            (
                "issued in the future",
                settings("k"),
                cookies.clone(),
                600,
                vec![],
            ),
            (
                "issued a little ahead (another instance's clock)",
                settings("k"),
                cookies.clone(),
                960,
                vec!["crm", "mp"],
            ),
            (
                "foreign key",
                settings("other"),
                cookies.clone(),
                1000,
                vec![],
            ),
            ("tampered", settings("k"), tampered, 1000, vec![]),
            ("other name", settings("k"), renamed, 1000, vec![]),
            ("no cookie", settings("k"), vec![], 1000, vec![]),
        ];
        for (what, s, cookies, now, want) in cases {
            let got: Vec<String> = read(&s, &cookies, now).into_iter().map(|e| e.app).collect();
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn the_current_contact_survives_the_cookie_and_older_cookies_still_open() {
        let s = settings("k");
        let mut e = entry("crm", 1000);
        e.contact = Some(CurrentContact {
            external_userid: "wmEmuCustomer001".into(),
            unionid: Some("oEmuUnion001".into()),
            at: 990,
        });
        let back = read(
            &s,
            &sent_back(&set_cookie(&s, vec![e.clone()], false)),
            1000,
        );
        assert_eq!(back, vec![e]);
        // Sealed before sessions had a current contact.
        let old = seal::seal(
            &s.key,
            "wgw_session",
            &serde_json::json!({"v": 1, "s": [{"app": "crm", "iat": 1000, "exp": 4600}]}),
        );
        let back = read(&s, &[("wgw_session".into(), old)], 1000);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].contact, None);
    }

    #[test]
    fn one_session_per_app() {
        let entries = replace(vec![entry("crm", 1), entry("mp", 1)], entry("crm", 2));
        assert_eq!(entries.len(), 2);
        assert_eq!(entries.iter().find(|e| e.app == "crm").unwrap().iat, 2);
    }

    /// A new sign-in replacing the app's session: the same person keeps the current contact,
    /// another member (someone else on the device) starts without one; the sid is new.
    #[test]
    fn a_re_login_keeps_the_contact_only_for_the_same_member() {
        let contact = CurrentContact {
            external_userid: "wmC".into(),
            unionid: None,
            at: 900,
        };
        let mut old = entry("crm", 1000);
        old.sid = Some("old".into());
        old.contact = Some(contact.clone());
        let mut other = entry("crm", 2000);
        other.userid = Some("lisi".into());
        let mut fresh = entry("crm", 2000);
        fresh.sid = Some("new".into());
        let cases: &[(
            Option<&SessionEntry>,
            &SessionEntry,
            Option<&CurrentContact>,
        )] = &[
            (Some(&old), &fresh, Some(&contact)),
            (Some(&old), &other, None),
            (None, &fresh, None),
        ];
        for (previous, next, want) in cases {
            let got = renew(*previous, (*next).clone());
            assert_eq!(got.contact.as_ref(), *want, "{:?}", next.userid);
            assert_eq!(got.sid, next.sid, "the session id is the new one");
            assert_eq!(got.iat, 2000, "re-issued with the new time");
        }
        let mut not_same_app = old.clone();
        not_same_app.app = "other".into();
        assert_eq!(renew(Some(&not_same_app), fresh.clone()).contact, None);
    }

    /// Removals reach a cookie a sibling host set for the whole domain, and each path segment.
    #[test]
    fn conflicting_cookies_are_removed_along_the_path_and_up_the_domain() {
        let settings = settings("k");
        let all = clear_cookies_for(&settings, true, "crm.example.com", "/sidebar/x?q=1");
        for (path, domain) in [
            ("/", None),
            ("/sidebar", None),
            ("/sidebar/", Some("example.com")),
            ("/sidebar/x", Some("crm.example.com")),
        ] {
            assert!(
                all.iter().any(|c| c.contains(&format!("Path={path};"))
                    && c.contains("Max-Age=0")
                    && c.contains("Secure")
                    && match domain {
                        None => !c.contains("Domain="),
                        Some(d) => c.contains(&format!("Domain={d}")),
                    }),
                "{path} {domain:?}: {all:?}"
            );
        }
        assert!(!all.iter().any(|c| c.contains("Domain=com")), "{all:?}");
        let ip = clear_cookies_for(&settings, false, "10.0.0.5", "/a");
        assert!(!ip.iter().any(|c| c.contains("Domain=")), "{ip:?}");
    }
}
