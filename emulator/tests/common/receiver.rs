//! A callback receiver for tests: it checks every signature and decrypts with `wecom-api`, as
//! the gateway will, records what arrived, and answers as told.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use wecom_api::callback::envelope_encrypt;
use wecom_api::{CallbackCrypto, XmlMessage};

pub const TOKEN: &str = "QDG6eK";
pub const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

/// One request as the receiver saw it, already verified and decrypted.
#[derive(Debug, Clone)]
pub struct Received {
    /// "verify" or "message".
    pub kind: &'static str,
    pub plaintext: String,
    /// The envelope's `ToUserName` and `AgentID` (messages only).
    pub to_user: String,
    pub agent_id: String,
    pub timestamp: String,
    /// The whole query string, signature parameters included.
    pub query: HashMap<String, String>,
}

/// How the receiver answers POSTs, one entry per request; then `success`.
#[derive(Clone)]
pub struct Answer {
    pub status: u16,
    pub body: &'static str,
    pub delay: Duration,
}

pub fn answer(status: u16, body: &'static str) -> Answer {
    Answer {
        status,
        body,
        delay: Duration::ZERO,
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    refused: Vec<String>,
    script: VecDeque<Answer>,
    /// The verification answers this instead of the plaintext.
    wrong_echo: bool,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    crypto: CallbackCrypto,
    receive_ids: Vec<String>,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    /// A receiver that accepts messages addressed to any of `receive_ids`.
    pub async fn start(receive_ids: &[&str]) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let r = Receiver {
            url: format!("http://{addr}/wecom/callback"),
            crypto: CallbackCrypto::new(TOKEN, AES_KEY).unwrap(),
            receive_ids: receive_ids.iter().map(|s| s.to_string()).collect(),
            inner: Arc::default(),
        };
        let app = Router::new()
            .route("/wecom/callback", get(verify).post(message))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.inner.lock().unwrap().script.extend(answers);
    }

    pub fn fail_verification(&self) {
        self.inner.lock().unwrap().wrong_echo = true;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    pub fn messages(&self) -> Vec<XmlMessage> {
        self.received()
            .into_iter()
            .filter(|r| r.kind == "message")
            .map(|r| XmlMessage::parse(&r.plaintext).unwrap())
            .collect()
    }

    /// Requests whose signature, decryption or receive id failed: must stay empty.
    pub fn refused(&self) -> Vec<String> {
        self.inner.lock().unwrap().refused.clone()
    }

    fn open(&self, q: &HashMap<String, String>, encrypt: &str) -> Result<String, String> {
        let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
        let ids: Vec<&str> = self.receive_ids.iter().map(String::as_str).collect();
        self.crypto
            .open(
                get("msg_signature"),
                get("timestamp"),
                get("nonce"),
                encrypt,
                &ids,
            )
            .map_err(|e| e.to_string())
    }
}

async fn verify(
    State(r): State<Receiver>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let echostr = q.get("echostr").cloned().unwrap_or_default();
    match r.open(&q, &echostr) {
        Ok(plain) => {
            let mut inner = r.inner.lock().unwrap();
            inner.received.push(Received {
                kind: "verify",
                plaintext: plain.clone(),
                to_user: String::new(),
                agent_id: String::new(),
                timestamp: q.get("timestamp").cloned().unwrap_or_default(),
                query: q.clone(),
            });
            let body = if inner.wrong_echo {
                format!("\"{plain}\"")
            } else {
                plain
            };
            (StatusCode::OK, body)
        }
        Err(e) => {
            r.inner.lock().unwrap().refused.push(format!("verify: {e}"));
            (StatusCode::BAD_REQUEST, e)
        }
    }
}

async fn message(
    State(r): State<Receiver>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> (StatusCode, String) {
    let opened = envelope_encrypt(&body)
        .map_err(|e| e.to_string())
        .and_then(|encrypt| r.open(&q, &encrypt));
    let plain = match opened {
        Ok(p) => p,
        Err(e) => {
            r.inner
                .lock()
                .unwrap()
                .refused
                .push(format!("message: {e}"));
            return (StatusCode::BAD_REQUEST, e);
        }
    };
    let env = XmlMessage::parse(&body).unwrap();
    let answer = {
        let mut inner = r.inner.lock().unwrap();
        inner.received.push(Received {
            kind: "message",
            plaintext: plain,
            to_user: env.get("ToUserName").unwrap_or_default().to_string(),
            agent_id: env.get("AgentID").unwrap_or_default().to_string(),
            timestamp: q.get("timestamp").cloned().unwrap_or_default(),
            query: q.clone(),
        });
        inner.script.pop_front().unwrap_or(answer(200, "success"))
    };
    tokio::time::sleep(answer.delay).await;
    (
        StatusCode::from_u16(answer.status).unwrap(),
        answer.body.to_string(),
    )
}
