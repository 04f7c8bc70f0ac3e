//! A browser as the login tests drive one: a cookie jar per host:port, no automatic redirects,
//! and the login flow through the emulator's authorize or QR page.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::upstream::Echo;
use super::world::World;
use super::{client, Gateway};

pub const HTML: &str = "text/html,application/xhtml+xml,*/*;q=0.8";
/// The WeCom client's User-Agent: the in-app (silent) login.
pub const WXWORK_UA: &str =
    "Mozilla/5.0 (iPhone) AppleWebKit MicroMessenger/8.0 wxwork/4.1.22 Language/zh";

/// A browser: one cookie jar per host:port, no automatic redirects.
pub struct Browser {
    pub c: reqwest::Client,
    pub ua: &'static str,
    pub jar: BTreeMap<String, BTreeMap<String, String>>,
}

impl Browser {
    pub fn new(ua: &'static str) -> Browser {
        Browser {
            c: client(),
            ua,
            jar: BTreeMap::new(),
        }
    }

    pub fn authority(url: &str) -> String {
        let u = url::Url::parse(url).unwrap();
        format!(
            "{}:{}",
            u.host_str().unwrap(),
            u.port_or_known_default().unwrap()
        )
    }

    pub fn cookie_header(&self, url: &str) -> String {
        self.jar
            .get(&Self::authority(url))
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        self.jar.get(&Self::authority(url))?.get(name).cloned()
    }

    pub fn set_cookie(&mut self, url: &str, name: &str, value: &str) {
        self.jar
            .entry(Self::authority(url))
            .or_default()
            .insert(name.into(), value.into());
    }

    pub async fn request(
        &mut self,
        method: reqwest::Method,
        url: &str,
        accept: &str,
    ) -> reqwest::Response {
        self.send(method, url, accept, |r| r).await
    }

    /// A request with the jar's cookies; `build` adds headers or a body.
    pub async fn send(
        &mut self,
        method: reqwest::Method,
        url: &str,
        accept: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> reqwest::Response {
        // Browsers never send the fragment.
        let url = url.split('#').next().unwrap().to_owned();
        let mut req = self
            .c
            .request(method, &url)
            .header("user-agent", self.ua)
            .header("accept", accept);
        let cookies = self.cookie_header(&url);
        if !cookies.is_empty() {
            req = req.header("cookie", cookies);
        }
        let resp = build(req).send().await.unwrap();
        let host = Self::authority(&url);
        for sc in resp.headers().get_all("set-cookie") {
            let c = cookie::Cookie::parse(sc.to_str().unwrap().to_owned()).unwrap();
            let jar = self.jar.entry(host.clone()).or_default();
            if c.max_age() == Some(cookie::time::Duration::ZERO) {
                jar.remove(c.name());
            } else {
                jar.insert(c.name().to_owned(), c.value().to_owned());
            }
        }
        resp
    }

    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, url, HTML).await
    }

    /// A script's call: `fetch(url, {headers})` with JSON accepted.
    pub async fn get_json(&mut self, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.send(reqwest::Method::GET, url, "application/json", |mut r| {
            for (k, v) in headers {
                r = r.header(k, v);
            }
            r
        })
        .await
    }

    /// A script's `POST` of a JSON body.
    pub async fn post_json(&mut self, url: &str, body: &serde_json::Value) -> reqwest::Response {
        let body = body.clone();
        self.send(reqwest::Method::POST, url, "application/json", |r| {
            r.json(&body)
        })
        .await
    }
}

pub fn location(resp: &reqwest::Response, base: &str) -> String {
    let loc = resp
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {}", resp.status()))
        .to_str()
        .unwrap();
    url::Url::parse(base)
        .unwrap()
        .join(loc)
        .unwrap()
        .to_string()
}

/// `{prefix}/login?app=&return_to=` on the gateway.
pub fn login_url(gw: &Gateway, app: &str, return_to: &str) -> String {
    gw.url(&format!(
        "/_gateway/login?app={app}&return_to={}",
        url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
    ))
}

/// From `{prefix}/login` to the callback URL the provider (the emulator at `emu`) sends the
/// browser to.
pub async fn to_callback(b: &mut Browser, gw: &Gateway, emu: &str, login_url: &str) -> String {
    let resp = b.get(login_url).await;
    assert_eq!(resp.status(), 302, "login starts at the provider");
    let provider = location(&resp, login_url);
    assert!(provider.starts_with(emu), "{provider}");
    let resp = b.get(&provider).await;
    let resp = if resp.status() == 200 {
        // The QR page: "scan" as the first member by following their button.
        let page = resp.text().await.unwrap();
        let start = page
            .find("href=\"/wwlogin/sso/choose?")
            .expect("a member button")
            + 6;
        let end = start + page[start..].find('"').unwrap();
        let href = page[start..end].replace("&amp;", "&");
        b.get(&format!("{emu}{href}")).await
    } else {
        resp
    };
    assert_eq!(resp.status(), 302, "the provider redirects back");
    let cb = location(&resp, &provider);
    assert!(
        cb.starts_with(&gw.url("/_gateway/oauth/callback?code=")),
        "{cb}"
    );
    cb
}

/// A whole login; returns the callback's final Location.
pub async fn login(b: &mut Browser, gw: &Gateway, emu: &str, app: &str, return_to: &str) -> String {
    let cb = to_callback(b, gw, emu, &login_url(gw, app, return_to)).await;
    let resp = b.get(&cb).await;
    assert_eq!(
        resp.status(),
        302,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    location(&resp, &cb)
}

/// What browsers do in a [`World`]: log in, call the CRM through the gateway, ask for
/// JS-SDK signatures and contact verification.
impl World {
    /// A WeCom client, not logged in yet.
    pub fn member_browser(&self) -> Browser {
        Browser::new(WXWORK_UA)
    }

    /// A WeCom client logged in to app `crm` as the emulator's current member.
    pub async fn member(&self) -> Browser {
        let mut b = Browser::new(WXWORK_UA);
        self.login(&mut b, "crm", "/sidebar/").await;
        b
    }

    /// A whole login to `app`; the callback's final Location.
    pub async fn login(&self, b: &mut Browser, app: &str, return_to: &str) -> String {
        login(b, self.gw(), &self.emu.base_url(), app, return_to).await
    }

    /// `{prefix}/login?app=&return_to=` on the gateway.
    pub fn login_url(&self, app: &str, return_to: &str) -> String {
        login_url(self.gw(), app, return_to)
    }

    /// From `login_url` to the callback URL the emulator sends the browser to.
    pub async fn to_callback(&self, b: &mut Browser, login_url: &str) -> String {
        to_callback(b, self.gw(), &self.emu.base_url(), login_url).await
    }

    /// What the CRM received for `path` (a script's call), or the gateway's own answer.
    pub async fn upstream_sees(
        &self,
        b: &mut Browser,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Echo, (u16, Value)> {
        let r = b.get_json(&self.gw().url(path), headers).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        match serde_json::from_str::<Echo>(&text) {
            Ok(e) if status == 200 && e.name == "crm" => Ok(e),
            _ => Err((status, serde_json::from_str(&text).unwrap_or(Value::Null))),
        }
    }

    /// What the CRM received for a page the browser opens; panics when the gateway answered.
    pub async fn echo(&self, b: &mut Browser, path: &str) -> Echo {
        let r = b.get(&self.gw().url(path)).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "application/json");
        r.json().await.unwrap()
    }

    /// `POST {prefix}/external-contact`: status and body.
    pub async fn verify_contact(&self, b: &mut Browser, external_userid: &str) -> (u16, Value) {
        let r = b
            .post_json(
                &self.gw().url("/_gateway/external-contact"),
                &json!({ "external_userid": external_userid }),
            )
            .await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `{prefix}/jssdk/config?{query}`: status and body.
    pub async fn jssdk_config(&self, b: &mut Browser, query: &str) -> (u16, Value) {
        let r = b
            .get_json(
                &self.gw().url(&format!("/_gateway/jssdk/config?{query}")),
                &[],
            )
            .await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// What the emulator's JS-SDK says of `payload` (`config` or `agentConfig`) on the page
    /// `href`: the `errMsg` its callback would get.
    pub async fn emulator_verdict(&self, kind: &str, payload: &Value, href: &str) -> String {
        let mut req = payload.clone();
        req["kind"] = json!(kind);
        req["url"] = json!(href);
        let v = self.control("/_emulator/jssdk/verify", req).await;
        v["errMsg"].as_str().unwrap_or_default().to_owned()
    }

    /// The emulator's sidebar is open on a chat with `external_userid`.
    pub async fn chat_with(&self, external_userid: &str) {
        self.control(
            "/_emulator/current-contact",
            json!({"external_userid": external_userid}),
        )
        .await;
    }
}
