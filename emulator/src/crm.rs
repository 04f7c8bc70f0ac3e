//! The demo CRM: shows what the gateway injected (identity headers, the assertion, the
//! fragment it kept) and the current customer through `/_gateway/sdk.js`; and takes the WeCom
//! events the gateway forwards (`POST /wecom/callback`), checking `X-Gateway-Signature`, and
//! lists the last ones on its page (and as JSON at `GET /wecom/events`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Response};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::oauth::escape;

pub struct Crm {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Crm {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        crate::server::base_url(self.addr)
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Serves the demo page for every path; `assertion_secret` checks `X-Gateway-Assertion`.
pub async fn start_crm(
    listen: SocketAddr,
    assertion_secret: Option<String>,
) -> std::io::Result<Crm> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = router(assertion_secret);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                stopped.await.ok();
            })
            .await
    });
    Ok(Crm { addr, stop, task })
}

/// The events the page lists: the newest [`KEEP_EVENTS`].
const KEEP_EVENTS: usize = 20;

#[derive(Default)]
pub struct CrmState {
    secret: Option<String>,
    events: Mutex<VecDeque<Value>>,
}

pub fn router(assertion_secret: Option<String>) -> Router {
    let state = Arc::new(CrmState {
        secret: assertion_secret,
        events: Mutex::new(VecDeque::new()),
    });
    Router::new()
        .route("/wecom/callback", axum::routing::post(take_event))
        .route("/wecom/events", axum::routing::get(list_events))
        .fallback(page)
        .with_state(state)
}

/// `sha256=` and the hex HMAC-SHA256 of the body, as the gateway signs forwarded events.
pub fn verify_event_signature(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// A forwarded WeCom event: checked, remembered, acknowledged with a 2xx.
async fn take_event(
    State(state): State<Arc<CrmState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let signature = match &state.secret {
        Some(secret) if verify_event_signature(secret, &body, &h("x-gateway-signature")) => "valid",
        Some(_) => "invalid",
        None => "unchecked",
    };
    if signature == "invalid" {
        // Not from the gateway: refused, as a CRM should.
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            "bad X-Gateway-Signature",
        )
            .into_response();
    }
    let received = json!({
        "event_id": h("x-gateway-event-id"),
        "corp_id": h("x-wecom-corpid"),
        "agent_id": h("x-wecom-agentid"),
        "signature": signature,
        "body": String::from_utf8_lossy(&body),
    });
    let mut events = state.events.lock().unwrap_or_else(|p| p.into_inner());
    events.push_front(received);
    events.truncate(KEEP_EVENTS);
    "ok".into_response()
}

async fn list_events(State(state): State<Arc<CrmState>>) -> Json<Value> {
    let events = state.events.lock().unwrap_or_else(|p| p.into_inner());
    Json(json!({ "events": events.iter().cloned().collect::<Vec<_>>() }))
}

/// Why an assertion is refused, or its claims.
#[derive(Debug, Clone, PartialEq)]
pub enum Assertion {
    Absent,
    NoSecret,
    Valid(Value),
    Invalid(String),
}

/// HS256 JWT as the gateway signs it: `iss="wecom-gateway"` and an unexpired `exp`.
pub fn verify_assertion(token: &str, secret: &str, now_secs: u64) -> Assertion {
    let invalid = |why: &str| Assertion::Invalid(why.to_string());
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return invalid("not a JWT");
    };
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).ok();
    let header: Option<Value> = decode(h).and_then(|b| serde_json::from_slice(&b).ok());
    if header
        .as_ref()
        .and_then(|v| v.get("alg"))
        .and_then(Value::as_str)
        != Some("HS256")
    {
        return invalid("alg is not HS256");
    }
    let Some(signature) = decode(s) else {
        return invalid("bad signature encoding");
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{h}.{c}").as_bytes());
    if mac.verify_slice(&signature).is_err() {
        return invalid("bad signature");
    }
    let Some(claims) = decode(c).and_then(|b| serde_json::from_slice::<Value>(&b).ok()) else {
        return invalid("bad claims");
    };
    if claims.get("iss").and_then(Value::as_str) != Some("wecom-gateway") {
        return invalid("iss is not wecom-gateway");
    }
    match claims.get("exp").and_then(Value::as_u64) {
        Some(exp) if exp > now_secs => Assertion::Valid(claims),
        Some(_) => invalid("expired"),
        None => invalid("no exp"),
    }
}

async fn page(State(state): State<Arc<CrmState>>, request: Request) -> Response {
    let secret = state.secret.clone();
    let events: Vec<Value> = state
        .events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect();
    let headers = request.headers().clone();
    let uri = request.uri().clone();
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    let assertion = match (
        headers
            .get("x-gateway-assertion")
            .and_then(|v| v.to_str().ok()),
        &secret,
    ) {
        (None, _) => Assertion::Absent,
        (Some(_), None) => Assertion::NoSecret,
        (Some(token), Some(secret)) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            verify_assertion(token, secret, now)
        }
    };
    if wants_json {
        let mut echoed = Map::new();
        for (name, value) in &headers {
            echoed.insert(
                name.as_str().to_string(),
                json!(String::from_utf8_lossy(value.as_bytes())),
            );
        }
        return Json(json!({
            "method": request.method().as_str(), "path": uri.path(), "query": uri.query().unwrap_or_default(),
            "headers": echoed, "assertion": assertion_json(&assertion),
        }))
        .into_response();
    }
    Html(render(uri.path(), &headers, &assertion, &events)).into_response()
}

fn assertion_json(a: &Assertion) -> Value {
    match a {
        Assertion::Absent => json!({"status": "absent"}),
        Assertion::NoSecret => json!({"status": "unchecked"}),
        Assertion::Valid(claims) => json!({"status": "valid", "claims": claims}),
        Assertion::Invalid(why) => json!({"status": "invalid", "reason": why}),
    }
}

fn render(path: &str, headers: &HeaderMap, assertion: &Assertion, events: &[Value]) -> String {
    let mut event_rows = String::new();
    for e in events {
        let text = |k: &str| escape(e[k].as_str().unwrap_or_default());
        event_rows.push_str(&format!(
            "<tr><td><code>{}</code><br>signature {}</td><td><code>{}</code></td></tr>",
            text("event_id"),
            text("signature"),
            text("body")
        ));
    }
    if event_rows.is_empty() {
        event_rows =
            "<tr><td colspan=2>none yet (the banner's curl makes the emulator send one)</td></tr>"
                .into();
    }
    let mut rows = String::new();
    for (name, value) in headers {
        let n = name.as_str();
        if n.starts_with("x-wecom-") || n.starts_with("x-wechat-") || n == "x-request-id" {
            rows.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(n),
                escape(&String::from_utf8_lossy(value.as_bytes()))
            ));
        }
    }
    if rows.is_empty() {
        rows = "<tr><td colspan=2>no identity headers (not behind the gateway, or not logged in)</td></tr>".into();
    }
    let assertion = match assertion {
        Assertion::Absent => "<span class=bad>absent</span>".to_string(),
        Assertion::NoSecret => "<span>present, not checked (no secret given)</span>".to_string(),
        Assertion::Valid(claims) => format!(
            "<span class=good>valid</span> <code>{}</code>",
            escape(&claims.to_string())
        ),
        Assertion::Invalid(why) => format!("<span class=bad>invalid: {}</span>", escape(why)),
    };
    let member = headers
        .get("x-wecom-userid")
        .or_else(|| headers.get("x-wechat-openid"))
        .map(|v| escape(&String::from_utf8_lossy(v.as_bytes())))
        .unwrap_or_else(|| "nobody".into());
    format!(
        r#"<!doctype html><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Demo CRM</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:1.5rem auto;padding:0 1rem;color:#222}}
.card{{border:1px solid #ddd;border-radius:8px;padding:.8rem 1rem;margin:.8rem 0}}.card h2{{margin:0 0 .4rem;font-size:1rem;color:#555}}
.big{{font-size:1.4rem;font-weight:600}}table{{border-collapse:collapse;width:100%}}
th,td{{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee;word-break:break-all;font-size:.9rem}}
.good{{color:#1a7f37}}.bad{{color:#c00}}code{{font-size:.85em;word-break:break-all}}</style>
<h1>Demo CRM</h1>
<div class=card><h2>Signed in as</h2><div class=big id="member">{member}</div></div>
<div class=card><h2>Customer in this chat</h2><div class=big id="customer">loading…</div>
<div>unionid <code id="unionid">-</code> &middot; entry <code id="entry">-</code></div></div>
<div class=card><h2>Route</h2>Path <code>{path}</code> &middot; hash route <code id="hash">(none)</code></div>
<div class=card><h2>X-Gateway-Assertion</h2><p id="assertion">{assertion}</p></div>
<div class=card><h2>Identity headers the CRM received</h2><table>{rows}</table></div>
<div class=card><h2>WeCom events received (newest first)</h2><table id="events">{event_rows}</table></div>
<script>
function showHash() {{ document.getElementById('hash').textContent = location.hash || '(none)'; }}
showHash();
window.addEventListener('hashchange', showHash);
(function () {{
  var out = document.getElementById('customer');
  function done(state) {{ document.body.setAttribute('data-customer', state); }}
  var s = document.createElement('script');
  s.src = '/_gateway/sdk.js';
  s.onerror = function () {{ out.textContent = '/_gateway/sdk.js is not available here'; done('error'); }};
  s.onload = function () {{
    if (!window.WeComGateway) {{ out.textContent = 'sdk.js loaded but defines no WeComGateway'; done('error'); return; }}
    window.WeComGateway.ready().then(function (c) {{
      document.getElementById('entry').textContent = c.entry || '-';
      if (c.externalUserId) {{
        out.textContent = (c.name ? c.name + ' ' : '') + c.externalUserId;
        document.getElementById('unionid').textContent = c.unionId || '-';
      }} else {{
        out.textContent = 'no customer chat (opened from ' + (c.entry || 'outside a chat') + ')';
      }}
      done('ready');
    }}, function (e) {{ out.textContent = 'error ' + (e && e.code) + ': ' + (e && e.message); done('error'); }});
  }};
  document.head.appendChild(s);
}})();
</script>"#,
        path = escape(path)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(claims: &Value, secret: &str) -> String {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{h}.{c}").as_bytes());
        format!(
            "{h}.{c}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn assertion_table() {
        let good = json!({"iss": "wecom-gateway", "sub": "zhangsan", "exp": 1000});
        let cases: Vec<(&str, String, &str)> = vec![
            ("valid", sign(&good, "k"), "valid"),
            ("wrong key", sign(&good, "other"), "bad signature"),
            (
                "expired",
                sign(&json!({"iss": "wecom-gateway", "exp": 999}), "k"),
                "expired",
            ),
            (
                "foreign issuer",
                sign(&json!({"iss": "x", "exp": 1000}), "k"),
                "iss is not wecom-gateway",
            ),
            ("garbage", "a.b".to_string(), "not a JWT"),
        ];
        for (name, token, want) in cases {
            let got = match verify_assertion(&token, "k", 999) {
                Assertion::Valid(_) => "valid".to_string(),
                Assertion::Invalid(why) => why,
                other => format!("{other:?}"),
            };
            assert_eq!(got, want, "{name}");
        }
    }
}
