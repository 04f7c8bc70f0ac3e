//! Which corp a call of a service-provider app is for (SPEC section 20): `/{app}/{corp_id}/
//! cgi-bin/...`, `X-Gateway-Corp: CORP_ID` or a corp handle. Kept apart from the request
//! parsing so that the rest of the endpoint knows nothing of corps; [`pick`] is pure,
//! [`resolve`] looks the corp's install up.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::model::App;
use crate::provider::Provider;
use crate::suite::Corp;

/// What the caller asked for, after the `/{app}` prefix.
#[derive(Debug, PartialEq, Eq)]
pub struct ForCorp<'a> {
    /// `None`: the suite's own calls (`service/*`, with the suite token).
    pub corp: Option<&'a str>,
    pub api: &'a str,
}

#[derive(Debug, PartialEq, Eq)]
pub enum CorpRefused {
    /// The path and the header name different corps.
    Conflict,
    /// A corp named for an app that serves one corp only.
    NotASuite,
    /// A service-provider app's call for a corp without naming which: sent on, it would go
    /// with no token WeCom takes for it.
    NoCorp,
}

impl CorpRefused {
    pub fn errmsg(&self) -> &'static str {
        match self {
            CorpRefused::Conflict => "the path and X-Gateway-Corp name different corps",
            CorpRefused::NotASuite => {
                "X-Gateway-Corp or a corp in the path is for service-provider apps only"
            }
            CorpRefused::NoCorp => {
                "a service-provider app's call names its corp (/{app}/{corp_id}/cgi-bin/... or \
                 X-Gateway-Corp); only its own service/ calls name none"
            }
        }
    }
}

/// `api` is the path after the app prefix: `/cgi-bin/...` or `/{corp}/cgi-bin/...`.
pub fn pick<'a>(
    suite: bool,
    api: &'a str,
    header: Option<&'a str>,
) -> Result<ForCorp<'a>, CorpRefused> {
    let in_path = api
        .strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
        .filter(|(first, rest)| *first != "cgi-bin" && rest.starts_with("cgi-bin/"))
        .map(|(first, _)| first);
    let api = match in_path {
        Some(corp) => &api[corp.len() + 1..],
        None => api,
    };
    let header = header.map(str::trim).filter(|h| !h.is_empty());
    let corp = match (in_path, header) {
        (Some(p), Some(h)) if p != h => return Err(CorpRefused::Conflict),
        (p, h) => p.or(h),
    };
    if corp.is_some() && !suite {
        return Err(CorpRefused::NotASuite);
    }
    // The suite's own calls (`service/*`) go with the suite token; a corp's need its token.
    if suite
        && corp.is_none()
        && api.starts_with("/cgi-bin/")
        && !api.starts_with("/cgi-bin/service/")
        && api != "/cgi-bin/gettoken"
    {
        return Err(CorpRefused::NoCorp);
    }
    Ok(ForCorp { corp, api })
}

/// Why a call cannot go on, as the endpoint answers it.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub errcode: i64,
    pub errmsg: &'static str,
}

/// The installed corp a call of `app` is for (`None`: the app's own token), and the API path
/// without the corp. Nothing is sent for a corp that has not installed the app.
pub async fn resolve(
    provider: &Provider,
    apps: &BTreeMap<String, Arc<App>>,
    app: &App,
    api: &str,
    header: Option<&str>,
    access_token: Option<&str>,
) -> Result<(Option<Arc<Corp>>, String), Refused> {
    let refused = |status, errcode, errmsg| Refused {
        status,
        errcode,
        errmsg,
    };
    // A corp handle names its corp as the header would; the two must agree.
    let handle_corp = access_token
        .and_then(|t| super::handle::verify_named(apps, t))
        .and_then(|(_, corp)| corp);
    let named = match (header, handle_corp) {
        (Some(h), Some(t)) if h.trim() != t => {
            return Err(refused(400, 40013, CorpRefused::Conflict.errmsg()))
        }
        (h, t) => h.or(t),
    };
    let suite = crate::suite::suite_of(app).is_some();
    let picked = pick(suite, api, named).map_err(|r| refused(400, 40013, r.errmsg()))?;
    let Some(corp_id) = picked.corp else {
        return Ok((None, picked.api.to_owned()));
    };
    match provider
        .installs()
        .corp(&**provider.store(), app, corp_id)
        .await
    {
        Ok(Some(c)) => Ok((Some(c), picked.api.to_owned())),
        Ok(None) => Err(refused(
            404,
            40084,
            "this corp has not installed the app (no permanent code)",
        )),
        Err(_) => Err(refused(503, -1, "the store of installs did not answer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corp_comes_from_the_path_or_the_header() {
        let ok = |corp, api| Ok(ForCorp { corp, api });
        let cases: &[(bool, &str, Option<&str>, Result<ForCorp, CorpRefused>)] = &[
            (true, "/cgi-bin/user/get", None, Err(CorpRefused::NoCorp)),
            (
                true,
                "/cgi-bin/service/get_pre_auth_code",
                None,
                ok(None, "/cgi-bin/service/get_pre_auth_code"),
            ),
            (
                true,
                "/wwA/cgi-bin/user/get",
                None,
                ok(Some("wwA"), "/cgi-bin/user/get"),
            ),
            (
                true,
                "/cgi-bin/user/get",
                Some("wwB"),
                ok(Some("wwB"), "/cgi-bin/user/get"),
            ),
            (
                true,
                "/wwA/cgi-bin/user/get",
                Some("wwA"),
                ok(Some("wwA"), "/cgi-bin/user/get"),
            ),
            (
                true,
                "/wwA/cgi-bin/user/get",
                Some("wwB"),
                Err(CorpRefused::Conflict),
            ),
            (
                false,
                "/wwA/cgi-bin/user/get",
                None,
                Err(CorpRefused::NotASuite),
            ),
            (
                false,
                "/cgi-bin/user/get",
                Some("wwA"),
                Err(CorpRefused::NotASuite),
            ),
            (
                false,
                "/cgi-bin/user/get",
                None,
                ok(None, "/cgi-bin/user/get"),
            ),
            // Not a corp segment: left for the endpoint's own refusal (only /cgi-bin/ passes).
            (true, "/wwA/other/x", None, ok(None, "/wwA/other/x")),
        ];
        for (suite, api, header, want) in cases {
            assert_eq!(&pick(*suite, api, *header), want, "{api} {header:?}");
        }
    }
}
