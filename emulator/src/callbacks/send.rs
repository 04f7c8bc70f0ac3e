//! How one message travels: the URL check once per receiver, then the signed, encrypted POST
//! and its retries, each exchange bounded by the timeout and written to the log.

use std::time::Duration;

use rand::Rng;
use wecom_api::callback::envelope;

use super::{Attempt, Receiver, Record, Target};
use crate::scenario::ReceiverKind;
use crate::state::{EmulatorState, World};

/// Sends `message` to each target in the background; returns the log ids.
pub(crate) fn send_all(state: &EmulatorState, targets: Vec<Target>, message: &str) -> Vec<u64> {
    targets
        .into_iter()
        .map(|t| send(state, t, message.to_string()))
        .collect()
}

pub(crate) fn send(state: &EmulatorState, target: Target, message: String) -> u64 {
    let hub = &state.hub;
    let id = hub.open(Record {
        id: 0,
        app: target.receiver.spec.app.clone(),
        url: target
            .receiver
            .spec
            .url
            .replace(CORPID_TEMPLATE, &target.receive_id),
        kind: "message",
        receive_id: target.receive_id.clone(),
        message: message.clone(),
        attempts: Vec::new(),
        result: "pending",
    });
    hub.lock().in_flight += 1;
    let state = state.clone();
    tokio::spawn(async move {
        deliver(&state, &target, &message, id).await;
        state.hub.finish_one();
    });
    id
}

/// The receive id of a URL check: the corp for an app's URL, the provider's corp id for a
/// suite's URLs.
fn verify_receive_id(world: &World, r: &Receiver) -> String {
    match r.spec.kind {
        ReceiverKind::App => r
            .spec
            .corp_id
            .clone()
            .unwrap_or_else(|| world.home().corp_id.clone()),
        _ => world
            .scenario
            .provider
            .as_ref()
            .map(|p| p.corp_id.clone())
            .unwrap_or_default(),
    }
}

/// A suite's data URL may carry `$CORPID$`: WeCom puts the corp the event is about there (and
/// the provider's corp id for the URL check).
const CORPID_TEMPLATE: &str = "$CORPID$";

/// `create_auth`, `change_auth` and `cancel_auth` must be answered within 1000 ms.
const FAST_ANSWER: Duration = Duration::from_millis(1000);

fn must_answer_fast(message: &str) -> bool {
    wecom_api::XmlMessage::parse(message).is_ok_and(|m| {
        matches!(
            m.get("InfoType"),
            Some("create_auth" | "change_auth" | "cancel_auth")
        )
    })
}

struct Timing {
    timeout: Duration,
    retries: u32,
    delay: Duration,
}

fn timing(state: &EmulatorState) -> Timing {
    let s = &state.world().scenario.settings;
    Timing {
        timeout: s.callback_timeout,
        retries: s.callback_retries,
        delay: s.callback_retry_delay,
    }
}

/// (timestamp from the emulated clock, a random numeric nonce)
fn stamp(state: &EmulatorState) -> (String, String) {
    let now = state.world().now() / 1000;
    (
        now.to_string(),
        rand::rng()
            .random_range(100_000_000u64..10_000_000_000)
            .to_string(),
    )
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> Result<url::Url, String> {
    let mut u = url::Url::parse(url).map_err(|e| e.to_string())?;
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Ok(u)
}

/// One HTTP exchange bounded by the timeout, body included.
async fn exchange(request: reqwest::RequestBuilder, timeout: Duration) -> Attempt {
    let run = async {
        let r = request.send().await?;
        let status = r.status().as_u16();
        let body = r.text().await?;
        Ok::<_, reqwest::Error>((status, body))
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok((status, body))) => Attempt {
            status: Some(status),
            body: Some(body),
            error: None,
        },
        Ok(Err(e)) => Attempt {
            status: None,
            body: None,
            error: Some(if e.is_connect() {
                "connect".into()
            } else {
                e.to_string()
            }),
        },
        Err(_) => Attempt {
            status: None,
            body: None,
            error: Some("timeout".into()),
        },
    }
}

/// The URL check, once per receiver until it passes: the answer must be the decrypted echostr
/// exactly — no quotes, no BOM, no newline.
async fn verify(state: &EmulatorState, r: &Receiver) -> bool {
    let receive_id = verify_receive_id(&state.world(), r);
    let plain: String = rand::rng().random_range(1u64 << 60..u64::MAX).to_string();
    let (timestamp, nonce) = stamp(state);
    let sealed = r.crypto.seal(&plain, &receive_id, &timestamp, &nonce);
    let id = state.hub.open(Record {
        id: 0,
        app: r.spec.app.clone(),
        url: r.spec.url.replace(CORPID_TEMPLATE, &receive_id),
        kind: "verify",
        receive_id: receive_id.clone(),
        message: plain.clone(),
        attempts: Vec::new(),
        result: "pending",
    });
    let url = with_query(
        &r.spec.url.replace(CORPID_TEMPLATE, &receive_id),
        &[
            ("msg_signature", &sealed.msg_signature),
            ("timestamp", &timestamp),
            ("nonce", &nonce),
            ("echostr", &sealed.encrypt),
        ],
    );
    let attempt = match url {
        Ok(url) => exchange(state.hub.http.get(url), timing(state).timeout).await,
        Err(e) => Attempt {
            status: None,
            body: None,
            error: Some(e),
        },
    };
    let ok = attempt.status == Some(200) && attempt.body.as_deref() == Some(plain.as_str());
    state.hub.update(id, |rec| {
        rec.attempts.push(attempt);
        rec.result = if ok { "delivered" } else { "failed" };
    });
    ok
}

/// WeCom takes HTTP 200; a suite's instruction URL must also answer the literal `success`
/// (not `success\n`, not quoted).
fn accepted(kind: ReceiverKind, a: &Attempt) -> bool {
    a.status == Some(200)
        && (kind != ReceiverKind::Instruction || a.body.as_deref() == Some("success"))
}

async fn deliver(state: &EmulatorState, t: &Target, message: &str, id: u64) {
    let verified = {
        let mut v = t.receiver.verified.lock().await;
        if !*v {
            *v = verify(state, &t.receiver).await;
        }
        *v
    };
    if !verified {
        state.hub.update(id, |rec| rec.result = "unverified");
        return;
    }
    let timing = timing(state);
    let timeout = match t.receiver.spec.kind {
        ReceiverKind::Instruction if must_answer_fast(message) => timing.timeout.min(FAST_ANSWER),
        _ => timing.timeout,
    };
    let url = t.receiver.spec.url.replace(CORPID_TEMPLATE, &t.receive_id);
    for attempt in 0..=timing.retries {
        if attempt > 0 {
            tokio::time::sleep(timing.delay).await;
        }
        let (timestamp, nonce) = stamp(state);
        let sealed = t
            .receiver
            .crypto
            .seal(message, &t.receive_id, &timestamp, &nonce);
        let body = envelope(&t.to_user, &t.agent_id, &sealed.encrypt);
        let url = with_query(
            &url,
            &[
                ("msg_signature", &sealed.msg_signature),
                ("timestamp", &timestamp),
                ("nonce", &nonce),
            ],
        );
        let result = match url {
            Ok(url) => {
                let request = state
                    .hub
                    .http
                    .post(url)
                    .header("content-type", "text/xml")
                    .body(body);
                exchange(request, timeout).await
            }
            Err(e) => Attempt {
                status: None,
                body: None,
                error: Some(e),
            },
        };
        let ok = accepted(t.receiver.spec.kind, &result);
        state.hub.update(id, |rec| {
            rec.attempts.push(result);
            if ok {
                rec.result = "delivered";
            }
        });
        if ok {
            return;
        }
    }
    state.hub.update(id, |rec| rec.result = "failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instruction_is_taken_only_with_the_literal_success() {
        let answer = |status: u16, body: &str| Attempt {
            status: Some(status),
            body: Some(body.to_owned()),
            error: None,
        };
        assert!(accepted(ReceiverKind::Instruction, &answer(200, "success")));
        for body in ["success\n", " success", "\"success\"", "ok", ""] {
            assert!(
                !accepted(ReceiverKind::Instruction, &answer(200, body)),
                "{body:?}"
            );
        }
        assert!(!accepted(
            ReceiverKind::Instruction,
            &answer(500, "success")
        ));
        // An app's or a suite's data URL: HTTP 200 is enough.
        assert!(accepted(ReceiverKind::App, &answer(200, "")));
        assert!(accepted(ReceiverKind::Data, &answer(200, "success\n")));
    }
}
