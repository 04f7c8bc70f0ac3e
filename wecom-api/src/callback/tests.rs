//! The vectors of WECOM_API.md ("Test vectors"), then everything a forger or a broken sender
//! could send.

use super::*;

const SAMPLE_TOKEN: &str = "QDG6eK";
const SAMPLE_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const SAMPLE_CORP: &str = "wx5823bf96d3bd56c7";

const ECHOSTR: &str =
    "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
const SAMPLE_ENCRYPT: &str = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";

const DET_KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
const DET_RECEIVE_ID: &str = "wx49f0ab532d5d035a";
const DET_MESSAGE: &str = "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>";
const DET_ENCRYPT: &str = "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3";

fn sample() -> CallbackCrypto {
    CallbackCrypto::new(SAMPLE_TOKEN, SAMPLE_KEY).unwrap()
}

#[test]
fn official_url_verification() {
    let echo = sample()
        .open(
            "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
            "1409659589",
            "263014780",
            ECHOSTR,
            &[SAMPLE_CORP],
        )
        .unwrap();
    assert_eq!(echo, "1616140317555161061");
}

#[test]
fn official_sample_message() {
    let message = sample()
        .open(
            "477715d11cdb4164915debcba66cb864d751f3e6",
            "1409659813",
            "1372623149",
            SAMPLE_ENCRYPT,
            &[SAMPLE_CORP],
        )
        .unwrap();
    let m = XmlMessage::parse(&message).unwrap();
    assert_eq!(m.get("FromUserName"), Some("mycreate"));
    assert_eq!(m.get("MsgType"), Some("text"));
    assert_eq!(m.get("Content"), Some("hello"));
    assert_eq!(m.get("MsgId"), Some("4561255354251345929"));
    assert_eq!(m.get("AgentID"), Some("218"));
}

#[test]
fn the_official_sample_is_padded_to_32_byte_blocks() {
    // 30 bytes of padding: what a 16-byte PKCS#7 unpadder refuses.
    let raw = BASE64.decode(SAMPLE_ENCRYPT).unwrap();
    let mut buf = raw.clone();
    let c = sample();
    let plain = Decryptor::new(&c.key.into(), c.iv().into())
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .unwrap();
    assert_eq!(*plain.last().unwrap(), 30);
}

#[test]
fn deterministic_encryption_vector() {
    let c = CallbackCrypto::new("123456", DET_KEY).unwrap();
    let encrypt = c.encrypt_with_random(b"1234567890123456", DET_MESSAGE, DET_RECEIVE_ID);
    assert_eq!(encrypt, DET_ENCRYPT);
    assert_eq!(
        c.signature("1411525903", "461056294", &encrypt),
        "407518b7649e86ef23978113f92d27afa9296533"
    );
    let back = c.decrypt(&encrypt).unwrap();
    assert_eq!(back.message, DET_MESSAGE);
    assert_eq!(back.receive_id, DET_RECEIVE_ID);
}

#[test]
fn seal_then_open_round_trips_with_fresh_random_prefixes() {
    let c = sample();
    let a = c.seal("<xml><A>1</A></xml>", SAMPLE_CORP, "1700000000", "42");
    let b = c.seal("<xml><A>1</A></xml>", SAMPLE_CORP, "1700000000", "42");
    assert_ne!(
        a.encrypt, b.encrypt,
        "the random prefix changes the ciphertext"
    );
    for s in [a, b] {
        let m = c
            .open(
                &s.msg_signature,
                &s.timestamp,
                &s.nonce,
                &s.encrypt,
                &[SAMPLE_CORP],
            )
            .unwrap();
        assert_eq!(m, "<xml><A>1</A></xml>");
    }
    // Every length around the 32-byte boundary pads and unpads.
    for n in 0..70 {
        let msg = "x".repeat(n);
        assert_eq!(
            c.decrypt(&c.encrypt(&msg, "id")).unwrap().message,
            msg,
            "{n}"
        );
    }
}

/// Encrypts raw plaintext bytes (already padded to whole AES blocks) with the sample key.
fn raw_encrypt(plain: &[u8]) -> String {
    let c = sample();
    let mut buf = plain.to_vec();
    let n = buf.len();
    let out = Encryptor::new(&c.key.into(), c.iv().into())
        .encrypt_padded_mut::<NoPadding>(&mut buf, n)
        .unwrap();
    BASE64.encode(out)
}

fn framed(message: &[u8], declared_len: u32, receive_id: &[u8], pad: &[u8]) -> Vec<u8> {
    let mut p = b"0123456789abcdef".to_vec();
    p.extend_from_slice(&declared_len.to_be_bytes());
    p.extend_from_slice(message);
    p.extend_from_slice(receive_id);
    p.extend_from_slice(pad);
    p
}

#[test]
fn refusals_table() {
    let c = sample();
    let good = c.seal("<xml/>", SAMPLE_CORP, "1700000000", "7");
    let sign = |encrypt: &str| c.signature("1700000000", "7", encrypt);
    let mut flipped = good.msg_signature.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    // "<xml/>" (6) + corp id (18) + header (20) = 44 bytes: pad 20 to 64.
    let body = |pad: &[u8]| framed(b"<xml/>", 6, SAMPLE_CORP.as_bytes(), pad);
    let pad20 = [20u8; 20];
    let mut inconsistent = pad20;
    inconsistent[3] = 19;
    let zero_pad = {
        let mut p = pad20;
        p[19] = 0;
        p
    };
    let mut pad36 = framed(b"<xml/>", 6, SAMPLE_CORP.as_bytes(), &[]);
    pad36.truncate(28); // header + 8 bytes: pad 36 to 64 (more than one 32-byte block)
    pad36.extend_from_slice(&[36u8; 36]);
    let too_long = framed(b"<xml/>", 60, SAMPLE_CORP.as_bytes(), &pad20);
    let short = {
        let mut p = vec![b'r'; 12];
        p.extend_from_slice(&[20u8; 20]);
        p
    };
    let not_utf8 = framed(
        &[0xff, 0xfe, b'<', b'x', b'/', b'>'],
        6,
        SAMPLE_CORP.as_bytes(),
        &pad20,
    );
    let cases: Vec<(&str, String, String, CryptoError)> = vec![
        (
            "flipped signature",
            flipped,
            good.encrypt.clone(),
            CryptoError::BadSignature,
        ),
        (
            "empty signature",
            String::new(),
            good.encrypt.clone(),
            CryptoError::BadSignature,
        ),
        (
            "another token's signature",
            signature("other", "1700000000", "7", &good.encrypt),
            good.encrypt.clone(),
            CryptoError::BadSignature,
        ),
        (
            "truncated base64",
            sign(&good.encrypt[..good.encrypt.len() - 1]),
            good.encrypt[..good.encrypt.len() - 1].to_string(),
            CryptoError::BadBase64,
        ),
        (
            "not base64",
            sign("!!!!"),
            "!!!!".into(),
            CryptoError::BadBase64,
        ),
        (
            "a partial AES block",
            sign(&good.encrypt[..good.encrypt.len() - 4]),
            good.encrypt[..good.encrypt.len() - 4].to_string(),
            CryptoError::BadLength,
        ),
        ("empty", sign(""), String::new(), CryptoError::BadLength),
        (
            "inconsistent padding",
            sign(&raw_encrypt(&body(&inconsistent))),
            raw_encrypt(&body(&inconsistent)),
            CryptoError::BadPadding,
        ),
        (
            "zero padding byte",
            sign(&raw_encrypt(&body(&zero_pad))),
            raw_encrypt(&body(&zero_pad)),
            CryptoError::BadPadding,
        ),
        (
            "padding over 32",
            sign(&raw_encrypt(&pad36)),
            raw_encrypt(&pad36),
            CryptoError::BadPadding,
        ),
        (
            "declared length beyond the message",
            sign(&raw_encrypt(&too_long)),
            raw_encrypt(&too_long),
            CryptoError::BadMessageLength,
        ),
        (
            "shorter than the header",
            sign(&raw_encrypt(&short)),
            raw_encrypt(&short),
            CryptoError::BadMessageLength,
        ),
        (
            "not UTF-8",
            sign(&raw_encrypt(&not_utf8)),
            raw_encrypt(&not_utf8),
            CryptoError::NotUtf8,
        ),
        (
            "oversize",
            sign(&"A".repeat(MAX_ENCRYPTED_LEN + 4)),
            "A".repeat(MAX_ENCRYPTED_LEN + 4),
            CryptoError::TooLarge,
        ),
    ];
    for (name, sig, encrypt, want) in cases {
        let got = c.open(&sig, "1700000000", "7", &encrypt, &[SAMPLE_CORP]);
        assert_eq!(got, Err(want), "{name}");
    }
    // The framing helper itself yields a valid message when the padding is right.
    let fine = raw_encrypt(&body(&pad20));
    assert_eq!(
        c.open(&sign(&fine), "1700000000", "7", &fine, &[SAMPLE_CORP])
            .unwrap(),
        "<xml/>"
    );
}

#[test]
fn a_signature_is_over_timestamp_and_nonce_too() {
    let c = sample();
    let s = c.seal("<xml/>", SAMPLE_CORP, "1700000000", "7");
    for (ts, nonce) in [("1700000001", "7"), ("1700000000", "8")] {
        assert_eq!(
            c.open(&s.msg_signature, ts, nonce, &s.encrypt, &[SAMPLE_CORP]),
            Err(CryptoError::BadSignature),
            "{ts} {nonce}"
        );
    }
}

#[test]
fn wrong_receive_id_is_refused_after_decryption() {
    let c = sample();
    let s = c.seal("<xml/>", "wwanothercorp", "1", "2");
    assert_eq!(
        c.open(&s.msg_signature, "1", "2", &s.encrypt, &[SAMPLE_CORP]),
        Err(CryptoError::WrongReceiveId("wwanothercorp".into()))
    );
    assert_eq!(
        c.open(&s.msg_signature, "1", "2", &s.encrypt, &[]),
        Err(CryptoError::WrongReceiveId("wwanothercorp".into())),
        "no expected id admits nothing"
    );
    // A suite's instruction URL expects the suite id, its data URL the corps' ids.
    assert!(c
        .open(
            &s.msg_signature,
            "1",
            "2",
            &s.encrypt,
            &["suite", "wwanothercorp"]
        )
        .is_ok());
}

#[test]
fn another_key_cannot_read_the_message() {
    let c = sample();
    let other = CallbackCrypto::new(SAMPLE_TOKEN, DET_KEY).unwrap();
    let s = c.seal("<xml><A>secret</A></xml>", SAMPLE_CORP, "1", "2");
    // Same token, so the signature holds; the key does not.
    let got = other.open(&s.msg_signature, "1", "2", &s.encrypt, &[SAMPLE_CORP]);
    assert!(got.is_err(), "{got:?}");
}

#[test]
fn aes_key_table() {
    let cases = [
        (SAMPLE_KEY, true),
        (DET_KEY, true),
        ("", false),
        (&SAMPLE_KEY[..42], false),
        ("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2CC", false),
        ("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2!", false),
    ];
    for (key, ok) in cases {
        assert_eq!(CallbackCrypto::new("t", key).is_ok(), ok, "{key:?}");
    }
}

#[test]
fn envelope_round_trip_and_refusals() {
    let body = envelope("wwcorp", "1000002", "abc+/=");
    assert_eq!(
        body,
        "<xml><ToUserName><![CDATA[wwcorp]]></ToUserName><AgentID>1000002</AgentID><Encrypt><![CDATA[abc+/=]]></Encrypt></xml>"
    );
    assert_eq!(envelope_encrypt(&body).unwrap(), "abc+/=");
    for bad in [
        "",
        "<xml></xml>",
        "<xml><Encrypt>a</Encrypt>",
        "{\"Encrypt\":\"a\"}",
    ] {
        assert!(
            matches!(envelope_encrypt(bad), Err(CryptoError::BadEnvelope(_))),
            "{bad:?}"
        );
    }
    let huge = format!(
        "<xml><Encrypt>{}</Encrypt></xml>",
        "A".repeat(MAX_ENCRYPTED_LEN + 5000)
    );
    assert_eq!(envelope_encrypt(&huge), Err(CryptoError::TooLarge));
}

#[test]
fn debug_never_shows_the_key_or_token() {
    assert_eq!(format!("{:?}", sample()), "CallbackCrypto { .. }");
}
