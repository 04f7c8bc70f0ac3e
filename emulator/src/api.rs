//! The one place that turns outcomes into WeCom / WeChat JSON answers, plus the layer every API
//! call passes: fault injection, the trusted-IP list and the call counts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::state::{EmulatorState, FaultKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// qyapi.weixin.qq.com: every answer carries errcode and errmsg.
    Wecom,
    /// api.weixin.qq.com: successes carry no errcode.
    Wechat,
}

impl Family {
    pub fn of(path: &str) -> Family {
        let wechat = path.starts_with("/sns/")
            || path == "/cgi-bin/token"
            || path == "/cgi-bin/stable_token"
            || path == "/cgi-bin/ticket/getticket";
        if wechat {
            Family::Wechat
        } else {
            Family::Wecom
        }
    }
}

/// The errcode an answer carried, read back by the counting layer.
#[derive(Debug, Clone, Copy)]
struct Errcode(i64);

pub struct Answer {
    body: Value,
    errcode: i64,
}

impl Answer {
    /// WeCom success: `errcode` 0 and `errmsg` "ok" beside the fields.
    pub fn wecom_ok(fields: Value) -> Answer {
        let mut body = Map::new();
        body.insert("errcode".into(), json!(0));
        body.insert("errmsg".into(), json!("ok"));
        if let Value::Object(fields) = fields {
            body.extend(fields);
        }
        Answer {
            body: Value::Object(body),
            errcode: 0,
        }
    }

    /// The few WeCom successes without errcode (`get_suite_token`, `get_corp_token`) answer
    /// like WeChat: the bare fields.
    pub fn bare(fields: Value) -> Answer {
        Answer::wechat_ok(fields)
    }

    /// WeChat success: the bare fields.
    pub fn wechat_ok(fields: Value) -> Answer {
        Answer {
            body: fields,
            errcode: 0,
        }
    }

    pub fn error(family: Family, code: i64, ip: IpAddr) -> Answer {
        Answer {
            body: json!({ "errcode": code, "errmsg": errmsg(family, code, ip) }),
            errcode: code,
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let body = axum::body::Body::from(wecom_order(&self.body));
        let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        response.extensions_mut().insert(Errcode(self.errcode));
        response
    }
}

/// The answer's JSON as WeCom writes it: `errcode` and `errmsg` first, then the fields (a
/// client may read the code there without parsing the rest, as the gateway does).
fn wecom_order(body: &Value) -> Vec<u8> {
    let Value::Object(members) = body else {
        return serde_json::to_vec(body).unwrap_or_default();
    };
    const FIRST: [&str; 2] = ["errcode", "errmsg"];
    let mut out = vec![b'{'];
    let ordered = FIRST
        .iter()
        .filter_map(|k| members.get_key_value(*k))
        .chain(members.iter().filter(|(k, _)| !FIRST.contains(&k.as_str())));
    for (i, (key, value)) in ordered.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // A string and a JSON value always serialize.
        let _ = serde_json::to_writer(&mut out, key);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, value);
    }
    out.push(b'}');
    out
}

/// Who is calling and how to spell errors for them.
pub struct Ctx {
    pub state: EmulatorState,
    pub ip: IpAddr,
    pub family: Family,
}

impl Ctx {
    pub fn err(&self, code: i64) -> Answer {
        Answer::error(self.family, code, self.ip)
    }

    pub fn answer(&self, result: Result<Answer, i64>) -> Answer {
        result.unwrap_or_else(|code| self.err(code))
    }
}

impl FromRequestParts<EmulatorState> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &EmulatorState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Ctx {
            state: state.clone(),
            ip: peer_ip(parts),
            family: Family::of(parts.uri.path()),
        })
    }
}

/// The caller's address; an embedding without `ConnectInfo` counts as loopback.
fn peer_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Runs around every `/cgi-bin/*` and `/sns/*` call.
pub async fn gatekeeper(
    State(state): State<EmulatorState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let family = Family::of(&path);
    let (parts, body) = request.into_parts();
    let ip = peer_ip(&parts);
    let fault = state.world().take_fault(&path);
    let response = match fault {
        Some(FaultKind::Errcode(code)) => Answer::error(family, code, ip).into_response(),
        Some(FaultKind::SlowErrcode(code, ms)) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            Answer::error(family, code, ip).into_response()
        }
        // Done now, in a task of its own (a caller that stops waiting does not undo it), and
        // answered late.
        Some(FaultKind::LateMs(ms)) => {
            let done = tokio::spawn(next.run(Request::from_parts(parts, body)));
            let response = match done.await {
                Ok(r) => r,
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            };
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            response
        }
        Some(FaultKind::HttpStatus(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, status.canonical_reason().unwrap_or("error")).into_response()
        }
        other => {
            if let Some(FaultKind::DelayMs(ms)) = other {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            let allowed = state.world().scenario.ip_allowed(ip);
            if allowed {
                next.run(Request::from_parts(parts, body)).await
            } else {
                // The trusted-IP list: WeCom says 60020, an Official Account's whitelist 40164.
                let code = if family == Family::Wecom {
                    60020
                } else {
                    40164
                };
                Answer::error(family, code, ip).into_response()
            }
        }
    };
    let outcome = match response.extensions().get::<Errcode>() {
        Some(Errcode(code)) => code.to_string(),
        None => format!("http_{}", response.status().as_u16()),
    };
    state.world().record_call(&path, &outcome);
    response
}

fn errmsg(family: Family, code: i64, ip: IpAddr) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut rng = rand::rng();
    match family {
        Family::Wecom => {
            let text = wecom_text(code);
            let hint = format!(
                "{now}{:06}_{:x}",
                rng.random_range(0..1_000_000),
                rng.random::<u32>()
            );
            format!(
                "{text}, hint: [{hint}], from ip: {ip}, more info at https://open.work.weixin.qq.com/devtool/query?e={code}"
            )
        }
        Family::Wechat => {
            let text = match code {
                40164 => format!("invalid ip {ip} ipv6 ::ffff:{ip}, not in whitelist"),
                _ => wechat_text(code).to_string(),
            };
            format!(
                "{text} rid: {:08x}-{:08x}-{:08x}",
                now as u32,
                rng.random::<u32>(),
                rng.random::<u32>()
            )
        }
    }
}

fn wecom_text(code: i64) -> &'static str {
    match code {
        -1 => "system busy",
        40001 => "invalid credential",
        40003 => "invalid userid",
        40004 => "invalid media type",
        40013 => "invalid corpid",
        40014 => "invalid access_token",
        40029 => "invalid code",
        40056 => "invalid agentid",
        40058 => "invalid Parameter",
        40068 => "invalid tagid",
        40078 => "invalid auth code",
        40080 => "invalid suite secret",
        40082 => "invalid suite_token",
        40083 => "invalid suite_id",
        40084 => "invalid permanent_code",
        40085 => "invalid suite_ticket",
        40096 => "invalid external userid",
        41001 => "access_token missing",
        41002 => "corpid missing",
        41004 => "corpsecret missing",
        41008 => "missing code",
        41009 => "missing userid",
        42001 => "access_token expired",
        42009 => "suite_access_token expired",
        41022 => "missing suite_access_token",
        41023 => "missing suite_ticket",
        41025 => "missing permanent_code",
        44001 => "empty media data",
        45009 => "api freq out of limit",
        45033 => "api concurrent out of limit",
        47001 => "data format error",
        48002 => "api forbidden",
        60011 => "no privilege to access/modify contact/party/agent",
        60020 => "not allow to access from your ip",
        60111 => "userid not found",
        60123 => "invalid party id",
        81013 => "user & party & tag all invalid",
        84061 => "not external contact",
        301002 => "not allow operate another agent with this accesstoken.",
        _ => "emulated error",
    }
}

fn wechat_text(code: i64) -> &'static str {
    match code {
        -1 => "system error",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40003 => "invalid openid",
        40013 => "invalid appid",
        40014 => "invalid access_token",
        40029 => "invalid code",
        40097 => "invalid args",
        40125 => "invalid appsecret",
        40163 => "code been used",
        41001 => "access_token missing",
        41002 => "appid missing",
        41004 => "appsecret missing",
        41008 => "missing code",
        42001 => "access_token expired",
        45009 => "reach max api daily quota limit",
        48001 => "api unauthorized",
        _ => "emulated error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wecom_answers_begin_with_errcode_and_errmsg_like_wecoms() {
        let answer = Answer::wecom_ok(json!({"avatar": "a", "userid": "u", "department": [1]}));
        let bytes = wecom_order(&answer.body);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with(r#"{"errcode":0,"errmsg":"ok","#), "{text}");
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            answer.body
        );
        let failed = Answer::error(Family::Wecom, 40014, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let text = String::from_utf8(wecom_order(&failed.body)).unwrap();
        assert!(text.starts_with(r#"{"errcode":40014,"errmsg":"#), "{text}");
        // A WeChat success has no errcode: its fields as they are.
        let wechat = json!({"access_token": "t", "expires_in": 7200});
        assert_eq!(
            serde_json::from_slice::<Value>(&wecom_order(&wechat)).unwrap(),
            wechat
        );
        assert_eq!(wecom_order(&json!([1, 2])), b"[1,2]");
    }
}
