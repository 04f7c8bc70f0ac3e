//! The official vectors of WECOM_API.md, and every way a callback is refused.

use super::*;
use crate::config::model::CallbackFormat;
use wecom_api::CallbackCrypto;

const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP: &str = "wx5823bf96d3bd56c7";
const ECHOSTR: &str =
    "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
const SAMPLE: &str = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";

fn callback(receive_ids: &[&str]) -> Callback {
    Callback {
        crypto: CallbackCrypto::new(TOKEN, KEY).unwrap(),
        token: wecom_api::Secret::new(TOKEN.into()),
        encoding_aes_key: wecom_api::Secret::new(KEY.into()),
        receive_ids: receive_ids.iter().map(|s| s.to_string()).collect(),
        check_ids: Vec::new(),
        forward: None,
        format: CallbackFormat::Xml,
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn envelope(encrypt: &str) -> String {
    format!("<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><AgentID><![CDATA[218]]></AgentID><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
}

/// A message signed with the sample's token at `timestamp`.
fn signed_query(encrypt: &str, timestamp: u64) -> String {
    let sig = wecom_api::callback::signature(TOKEN, &timestamp.to_string(), "1372623149", encrypt);
    format!("msg_signature={sig}&timestamp={timestamp}&nonce=1372623149")
}

#[test]
fn the_official_url_check_answers_its_plaintext() {
    let cb = callback(&[CORP]);
    let q = format!(
        "msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780&echostr={}",
        enc(ECHOSTR)
    );
    assert_eq!(
        verify_url(&cb, q.as_bytes(), 1409659589 + 5).unwrap(),
        "1616140317555161061"
    );
    // WeCom's own query keeps `+` and `/` raw: `+` is a plus, never a space.
    let raw = format!(
        "msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780&echostr={ECHOSTR}"
    );
    assert_eq!(
        verify_url(&cb, raw.as_bytes(), 1409659589).unwrap(),
        "1616140317555161061"
    );
}

/// A captured message's `Encrypt`, sent as a URL check's echostr with the message's own
/// signature, would come back decrypted: the check answers only what is not a message.
#[test]
fn a_message_passed_as_an_echostr_is_not_decrypted_back() {
    let cb = callback(&[CORP]);
    let q = format!(
        "msg_signature=477715d11cdb4164915debcba66cb864d751f3e6&timestamp=1409659813&nonce=1372623149&echostr={}",
        enc(SAMPLE)
    );
    match verify_url(&cb, q.as_bytes(), 1409659813) {
        Err(Refusal::BadMessage(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_official_message_opens_to_its_xml() {
    let cb = callback(&[CORP]);
    let q = "msg_signature=477715d11cdb4164915debcba66cb864d751f3e6&timestamp=1409659813&nonce=1372623149";
    let (plain, msg) = message(&cb, q.as_bytes(), envelope(SAMPLE).as_bytes(), 1409659813).unwrap();
    assert!(plain.starts_with("<xml>"), "{plain}");
    assert_eq!(msg.get("FromUserName"), Some("mycreate"));
    assert_eq!(msg.get("Content"), Some("hello"));
    assert_eq!(msg.get("MsgId"), Some("4561255354251345929"));
    assert_eq!(msg.get("AgentID"), Some("218"));
}

#[test]
fn every_bad_callback_is_refused_with_its_reason() {
    let now = 1_700_000_000;
    let cb = callback(&[CORP]);
    let crypto = CallbackCrypto::new(TOKEN, KEY).unwrap();
    let good = crypto.encrypt("<xml><MsgType><![CDATA[event]]></MsgType></xml>", CORP);
    let other_corp = crypto.encrypt("<xml><MsgType>event</MsgType></xml>", "wwOtherCorp");
    // The last block altered: decrypts to bytes whose padding is wrong.
    let bad_padding = {
        let mut raw = base64_decode(&good);
        let n = raw.len();
        raw[n - 20] ^= 0x55;
        base64_encode(&raw)
    };
    let truncated = good[..good.len() - 7].to_owned();
    let not_xml = crypto.encrypt("hello, not xml", CORP);
    let two_users = crypto.encrypt(
        "<xml><MsgType>event</MsgType><Event>change_contact</Event><ChangeType>delete_user</ChangeType><UserID>ghost</UserID><UserID>lisi</UserID></xml>",
        CORP,
    );
    let huge = "A".repeat(MAX_BODY + 1);
    let cases: &[(&str, String, String, &str)] = &[
        (
            "bad signature",
            format!("msg_signature={}&timestamp={now}&nonce=1", "0".repeat(40)),
            envelope(&good),
            "bad_signature",
        ),
        (
            "no signature",
            format!("timestamp={now}&nonce=1"),
            envelope(&good),
            "missing_param",
        ),
        (
            "wrong receive id",
            signed_query(&other_corp, now),
            envelope(&other_corp),
            "wrong_receive_id",
        ),
        (
            "bad padding",
            signed_query(&bad_padding, now),
            envelope(&bad_padding),
            "undecryptable",
        ),
        (
            "truncated base64",
            signed_query(&truncated, now),
            envelope(&truncated),
            "undecryptable",
        ),
        (
            "stale",
            signed_query(&good, now - WINDOW_SECS - 1),
            envelope(&good),
            "stale",
        ),
        (
            "from the future",
            signed_query(&good, now + WINDOW_SECS + 1),
            envelope(&good),
            "stale",
        ),
        (
            "not a message",
            signed_query(&not_xml, now),
            envelope(&not_xml),
            "bad_message",
        ),
        (
            "no envelope",
            signed_query(&good, now),
            good.clone(),
            "bad_envelope",
        ),
        ("oversize", signed_query(&good, now), huge, "too_large"),
        // Acted on for one, read by the CRM as the other.
        (
            "a field twice",
            signed_query(&two_users, now),
            envelope(&two_users),
            "bad_message",
        ),
        // A checker in front reading the first, this one the last.
        (
            "a signature twice",
            format!(
                "msg_signature={}&{}",
                "0".repeat(40),
                signed_query(&good, now)
            ),
            envelope(&good),
            "repeated_param",
        ),
    ];
    for (name, q, body, label) in cases {
        let got = message(&cb, q.as_bytes(), body.as_bytes(), now);
        assert_eq!(
            got.as_ref().err().map(Refusal::label),
            Some(*label),
            "{name}: {got:?}"
        );
    }
    assert!(message(
        &cb,
        signed_query(&good, now).as_bytes(),
        envelope(&good).as_bytes(),
        now
    )
    .is_ok());
    // A stale timestamp says how far off it is, so that a host whose clock is wrong shows.
    let behind = message(
        &cb,
        signed_query(&good, now - 3600).as_bytes(),
        envelope(&good).as_bytes(),
        now,
    );
    let said = behind.unwrap_err().to_string();
    assert!(said.contains("3600 s behind this host's clock"), "{said}");
    assert!(said.contains("check its time sync"), "{said}");
    let ahead = message(
        &cb,
        signed_query(&good, now + 601).as_bytes(),
        envelope(&good).as_bytes(),
        now,
    );
    assert!(ahead.unwrap_err().to_string().contains("601 s ahead"));
    let padding = message(
        &cb,
        signed_query(&bad_padding, now).as_bytes(),
        envelope(&bad_padding).as_bytes(),
        now,
    );
    assert_eq!(
        padding.err(),
        Some(Refusal::Crypto(CryptoError::BadPadding))
    );
    // A second receive id is accepted once the app expects it (a suite's URL, issue 20).
    let two = callback(&[CORP, "wwOtherCorp"]);
    assert!(message(
        &two,
        signed_query(&other_corp, now).as_bytes(),
        envelope(&other_corp).as_bytes(),
        now
    )
    .is_ok());
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}
