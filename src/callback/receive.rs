//! What WeCom sends to `{prefix}/callback/{app}`, checked (SPEC section 18, WECOM_API.md
//! "Callback encryption" and "Callbacks in detail"). Pure: the query, the body and the time
//! in, a verdict out; no sockets, no store.
//!
//! The order of the checks is the attacker's order: size first (no work for a flood), then the
//! signature (nothing is decrypted for a forger), decryption, the receive id (a message
//! encrypted for another corp with a leaked key is not ours), then the time window (a
//! captured request replayed later), then the message itself.

use percent_encoding::percent_decode;
use wecom_api::callback::{envelope_encrypt, MAX_ENCRYPTED_LEN};
use wecom_api::{CryptoError, XmlMessage};

use crate::config::model::Callback;

/// The largest body accepted. WeCom's messages are a few KB; the envelope around the largest
/// `Encrypt` the crypto takes stays under this.
pub const MAX_BODY: usize = MAX_ENCRYPTED_LEN + 4096;
/// A `timestamp` further than this from the gateway's clock, either way, is refused.
pub const WINDOW_SECS: u64 = 600;

/// Why a callback is refused: always a 400, nothing queued; the reason is logged (once a
/// minute per app and reason), never told in detail to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("missing query parameter {0}")]
    MissingParam(&'static str),
    #[error("query parameter {0} given more than once")]
    RepeatedParam(&'static str),
    #[error("the body is larger than {MAX_BODY} bytes")]
    TooLarge,
    /// How far the timestamp is from this host's clock (s, ahead positive), when it is a
    /// number: every callback so far apart says this host's clock is wrong, not WeCom's.
    #[error("timestamp {} outside the 10-minute window{}", offset_text(*.0), clock_hint(*.0))]
    Stale(Option<i64>),
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("the decrypted message is not a WeCom XML message: {0}")]
    BadMessage(String),
}

fn offset_text(offset: Option<i64>) -> String {
    match offset {
        Some(o) if o > 0 => format!("{o} s ahead of this host's clock,"),
        Some(o) => format!("{} s behind this host's clock,", o.unsigned_abs()),
        None => "not a number,".to_owned(),
    }
}

/// What a timestamp hours or days away most likely means.
fn clock_hint(offset: Option<i64>) -> &'static str {
    match offset {
        Some(_) => {
            " (if every callback is refused so, this host's clock is off: check its time sync)"
        }
        None => "",
    }
}

impl Refusal {
    /// A fixed label for logs and their throttle.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::MissingParam(_) => "missing_param",
            Refusal::RepeatedParam(_) => "repeated_param",
            Refusal::TooLarge | Refusal::Crypto(CryptoError::TooLarge) => "too_large",
            Refusal::Stale(_) => "stale",
            Refusal::Crypto(CryptoError::BadSignature) => "bad_signature",
            Refusal::Crypto(CryptoError::WrongReceiveId(_)) => "wrong_receive_id",
            Refusal::Crypto(CryptoError::BadEnvelope(_)) => "bad_envelope",
            Refusal::Crypto(_) => "undecryptable",
            Refusal::BadMessage(_) => "bad_message",
        }
    }
}

/// The signed parameters of the query string, percent-decoded. `+` stays `+`: the base64 of an
/// `echostr` is full of them, and reading `+` as a space (form encoding) breaks the signature.
#[derive(Debug, Default)]
pub struct Signed {
    pub msg_signature: String,
    pub timestamp: String,
    pub nonce: String,
    pub echostr: Option<String>,
}

impl Signed {
    pub fn parse(query: &[u8]) -> Result<Signed, Refusal> {
        let mut s = Signed::default();
        let (mut sig, mut ts, mut nonce) = (None, None, None);
        for pair in query.split(|&b| b == b'&') {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let v = percent_decode(v).decode_utf8_lossy().into_owned();
            // One of each: which of two a checker in front reads (the first, often) and which
            // this one reads must not differ.
            let (slot, name) = match k {
                b"msg_signature" => (&mut sig, "msg_signature"),
                b"timestamp" => (&mut ts, "timestamp"),
                b"nonce" => (&mut nonce, "nonce"),
                b"echostr" => (&mut s.echostr, "echostr"),
                _ => continue,
            };
            if slot.replace(v).is_some() {
                return Err(Refusal::RepeatedParam(name));
            }
        }
        s.msg_signature = sig.ok_or(Refusal::MissingParam("msg_signature"))?;
        s.timestamp = ts.ok_or(Refusal::MissingParam("timestamp"))?;
        s.nonce = nonce.ok_or(Refusal::MissingParam("nonce"))?;
        Ok(s)
    }

    fn fresh(&self, now_secs: u64) -> Result<(), Refusal> {
        let t: u64 = self
            .timestamp
            .trim()
            .parse()
            .map_err(|_| Refusal::Stale(None))?;
        if t.abs_diff(now_secs) > WINDOW_SECS {
            let offset = i64::try_from(t)
                .unwrap_or(i64::MAX)
                .saturating_sub(now_secs as i64);
            return Err(Refusal::Stale(Some(offset)));
        }
        Ok(())
    }
}

/// What a `POST` is refused for before its body is read: its signed parameters missing,
/// repeated or out of the time window (the signature itself covers the body).
pub fn before_body(query: &[u8], now_secs: u64) -> Result<(), Refusal> {
    Signed::parse(query)?.fresh(now_secs)
}

/// `GET`: the URL check. The answer is the decrypted `echostr`, as is.
pub fn verify_url(cb: &Callback, query: &[u8], now_secs: u64) -> Result<String, Refusal> {
    let s = Signed::parse(query)?;
    let echostr = s
        .echostr
        .as_deref()
        .ok_or(Refusal::MissingParam("echostr"))?;
    let checks: Vec<&str> = cb.check_ids.iter().map(String::as_str).collect();
    let plain = open(cb, &s, echostr, &checks)?;
    s.fresh(now_secs)?;
    // WeCom's echostr holds a short random string. An `Encrypt` of a captured message passed
    // as the echostr would come back decrypted (a suite ticket, a message's text): an answer
    // that is a message is refused.
    if plain.len() > ECHOSTR_MAX || plain.contains('<') {
        return Err(Refusal::BadMessage(
            "the echostr holds a message, not a URL check's string".into(),
        ));
    }
    Ok(plain)
}

/// The longest URL check plaintext answered (WeCom's are about twenty digits).
const ECHOSTR_MAX: usize = 128;

/// `POST`: a message or an event, decrypted and parsed.
pub fn message(
    cb: &Callback,
    query: &[u8],
    body: &[u8],
    now_secs: u64,
) -> Result<(String, XmlMessage), Refusal> {
    message_for(cb, query, body, now_secs, &[])
}

/// [`message`], also taking the receive ids `extra_ids` (a suite's installed corps).
pub fn message_for(
    cb: &Callback,
    query: &[u8],
    body: &[u8],
    now_secs: u64,
    extra_ids: &[&str],
) -> Result<(String, XmlMessage), Refusal> {
    if body.len() > MAX_BODY {
        return Err(Refusal::TooLarge);
    }
    let s = Signed::parse(query)?;
    let body = std::str::from_utf8(body)
        .map_err(|_| CryptoError::BadEnvelope("the body is not UTF-8".into()))?;
    let encrypt = envelope_encrypt(body)?;
    let plain = open(cb, &s, &encrypt, extra_ids)?;
    s.fresh(now_secs)?;
    let parsed = XmlMessage::parse(&plain).map_err(|e| Refusal::BadMessage(e.to_string()))?;
    if let Some(name) = repeated_field(&parsed) {
        return Err(Refusal::BadMessage(format!(
            "<{name}> appears more than once"
        )));
    }
    Ok((plain, parsed))
}

/// The fields the gateway reads and acts on, each of which WeCom writes once: a message with
/// two (`<UserID>a</UserID><UserID>b</UserID>`) would be acted on for the first while the CRM,
/// which gets the message as it came, may read the last.
const SINGLE_FIELDS: &[&str] = &[
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "MsgId",
    "Event",
    "ChangeType",
    "InfoType",
    "UserID",
    "NewUserID",
    "ExternalUserID",
    "AgentID",
    "SuiteId",
    "AuthCorpId",
    "AuthCode",
    "SuiteTicket",
    "TimeStamp",
];

fn repeated_field(msg: &XmlMessage) -> Option<&'static str> {
    SINGLE_FIELDS
        .iter()
        .find(|name| msg.fields.iter().filter(|(n, _)| n == *name).count() > 1)
        .copied()
}

fn open(cb: &Callback, s: &Signed, encrypt: &str, extra_ids: &[&str]) -> Result<String, Refusal> {
    let ids: Vec<&str> = cb
        .receive_ids
        .iter()
        .map(String::as_str)
        .chain(extra_ids.iter().copied())
        .collect();
    Ok(cb
        .crypto
        .open(&s.msg_signature, &s.timestamp, &s.nonce, encrypt, &ids)?)
}

#[cfg(test)]
mod tests;
