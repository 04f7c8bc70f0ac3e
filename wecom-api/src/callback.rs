//! WXBizMsgCrypt: how WeCom signs and encrypts the callbacks it sends (WECOM_API.md, "Callback
//! encryption"). Pure: no clock, no sockets; the random prefix is injectable.
//!
//! - `msg_signature = sha1(concat(sort([token, timestamp, nonce, encrypt])))`, hex;
//! - key = base64(EncodingAESKey + "="), 32 bytes; AES-256-CBC with IV = key[..16];
//! - plaintext = 16 random bytes + 4-byte big-endian length + message + receive id;
//! - PKCS#7 padding to **32-byte** blocks (a 16-byte unpadder rejects valid messages: the
//!   official sample ends in 30 bytes of padding).

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::xml::{XmlMessage, XmlValue};

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// The padding block WeCom uses (twice AES's block).
const PAD_BLOCK: usize = 32;
/// Random prefix and length field in front of the message.
const HEADER: usize = 20;
/// The largest `Encrypt` (base64 characters) accepted: WeCom's messages are a few KB, so
/// anything near this is an attack, refused before any decoding work.
pub const MAX_ENCRYPTED_LEN: usize = 1 << 20;

/// EncodingAESKeys are 43 characters whose last one carries 2 unused bits: WeCom's own keys do
/// not always leave them zero, so the key decoder must not insist (the ciphertext's does).
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);
const BASE64: GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("EncodingAESKey must be 43 base64 characters (32 bytes)")]
    InvalidAesKey,
    #[error("msg_signature does not match")]
    BadSignature,
    #[error("the encrypted message is not valid base64")]
    BadBase64,
    #[error("the encrypted message is empty or not a whole number of AES blocks")]
    BadLength,
    #[error("the decrypted message has bad PKCS#7 padding")]
    BadPadding,
    #[error("the length inside the decrypted message is out of range")]
    BadMessageLength,
    #[error("the message is not UTF-8")]
    NotUtf8,
    #[error("receive id {0:?} is not one this callback expects")]
    WrongReceiveId(String),
    #[error("the encrypted message is larger than {MAX_ENCRYPTED_LEN} bytes")]
    TooLarge,
    #[error("the callback body: {0}")]
    BadEnvelope(String),
}

/// `sha1` of the four strings sorted and concatenated, hex lowercase.
pub fn signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypt];
    parts.sort_unstable();
    let mut sha = Sha1::new();
    for p in parts {
        sha.update(p.as_bytes());
    }
    hex::encode(sha.finalize())
}

/// A decrypted message and the receive id it ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plaintext {
    pub message: String,
    pub receive_id: String,
}

/// What a sender puts in the query string and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub encrypt: String,
    pub msg_signature: String,
    pub timestamp: String,
    pub nonce: String,
}

/// The credentials of one callback URL: its Token and EncodingAESKey.
#[derive(Clone)]
pub struct CallbackCrypto {
    token: String,
    key: [u8; 32],
}

impl std::fmt::Debug for CallbackCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackCrypto { .. }")
    }
}

impl CallbackCrypto {
    pub fn new(token: &str, encoding_aes_key: &str) -> Result<CallbackCrypto, CryptoError> {
        if encoding_aes_key.len() != 43 {
            return Err(CryptoError::InvalidAesKey);
        }
        let key = KEY_BASE64
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| CryptoError::InvalidAesKey)?;
        let key: [u8; 32] = key.try_into().map_err(|_| CryptoError::InvalidAesKey)?;
        Ok(CallbackCrypto {
            token: token.to_string(),
            key,
        })
    }

    pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        signature(&self.token, timestamp, nonce, encrypt)
    }

    /// Constant time: the comparison must not tell an attacker how many leading characters of
    /// a forged signature were right.
    pub fn verify_signature(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<(), CryptoError> {
        let expected = self.signature(timestamp, nonce, encrypt);
        let given = msg_signature.to_ascii_lowercase();
        if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            Ok(())
        } else {
            Err(CryptoError::BadSignature)
        }
    }

    /// Encrypts with 16 fresh random bytes in front.
    pub fn encrypt(&self, message: &str, receive_id: &str) -> String {
        self.encrypt_with_random(&rand::random::<[u8; 16]>(), message, receive_id)
    }

    /// Deterministic encryption, for the published vector and for tests.
    pub fn encrypt_with_random(
        &self,
        random: &[u8; 16],
        message: &str,
        receive_id: &str,
    ) -> String {
        let len = HEADER + message.len() + receive_id.len();
        let pad = PAD_BLOCK - len % PAD_BLOCK;
        let mut buf = Vec::with_capacity(len + pad);
        buf.extend_from_slice(random);
        buf.extend_from_slice(&(message.len() as u32).to_be_bytes());
        buf.extend_from_slice(message.as_bytes());
        buf.extend_from_slice(receive_id.as_bytes());
        buf.resize(len + pad, pad as u8);
        let total = buf.len();
        let cipher = Encryptor::new(&self.key.into(), self.iv().into())
            .encrypt_padded_mut::<NoPadding>(&mut buf, total)
            .expect("the buffer is padded to whole blocks");
        BASE64.encode(cipher)
    }

    pub fn decrypt(&self, encrypt: &str) -> Result<Plaintext, CryptoError> {
        if encrypt.len() > MAX_ENCRYPTED_LEN {
            return Err(CryptoError::TooLarge);
        }
        let mut buf = BASE64.decode(encrypt).map_err(|_| CryptoError::BadBase64)?;
        if buf.is_empty() || buf.len() % 16 != 0 {
            return Err(CryptoError::BadLength);
        }
        let plain = Decryptor::new(&self.key.into(), self.iv().into())
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::BadLength)?;
        let pad = *plain.last().ok_or(CryptoError::BadPadding)? as usize;
        if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
            return Err(CryptoError::BadPadding);
        }
        let (body, padding) = plain.split_at(plain.len() - pad);
        if padding.iter().any(|&b| b as usize != pad) {
            return Err(CryptoError::BadPadding);
        }
        if body.len() < HEADER {
            return Err(CryptoError::BadMessageLength);
        }
        let len = u32::from_be_bytes(body[16..20].try_into().expect("4 bytes")) as usize;
        let rest = &body[HEADER..];
        if len > rest.len() {
            return Err(CryptoError::BadMessageLength);
        }
        let (message, receive_id) = rest.split_at(len);
        Ok(Plaintext {
            message: String::from_utf8(message.to_vec()).map_err(|_| CryptoError::NotUtf8)?,
            receive_id: String::from_utf8(receive_id.to_vec()).map_err(|_| CryptoError::NotUtf8)?,
        })
    }

    /// The receiving side, whole: signature first (nothing is decrypted for a forger), then
    /// decryption, then the receive id against the ones this URL may expect.
    pub fn open(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
        receive_ids: &[&str],
    ) -> Result<String, CryptoError> {
        if encrypt.len() > MAX_ENCRYPTED_LEN {
            return Err(CryptoError::TooLarge);
        }
        self.verify_signature(msg_signature, timestamp, nonce, encrypt)?;
        let plain = self.decrypt(encrypt)?;
        if !receive_ids.iter().any(|id| *id == plain.receive_id) {
            return Err(CryptoError::WrongReceiveId(plain.receive_id));
        }
        Ok(plain.message)
    }

    /// The sending side: encrypt and sign for one attempt.
    pub fn seal(&self, message: &str, receive_id: &str, timestamp: &str, nonce: &str) -> Sealed {
        let encrypt = self.encrypt(message, receive_id);
        Sealed {
            msg_signature: self.signature(timestamp, nonce, &encrypt),
            encrypt,
            timestamp: timestamp.to_string(),
            nonce: nonce.to_string(),
        }
    }

    fn iv(&self) -> &[u8; 16] {
        self.key[..16].try_into().expect("16 bytes")
    }
}

/// The body WeCom POSTs: `<xml><ToUserName/><AgentID/><Encrypt/></xml>`.
pub fn envelope(to_user: &str, agent_id: &str, encrypt: &str) -> String {
    XmlMessage::from_pairs([
        ("ToUserName", to_user),
        ("AgentID", agent_id),
        ("Encrypt", encrypt),
    ])
    .to_xml()
}

/// The `Encrypt` of a POSTed body (what the signature covers).
pub fn envelope_encrypt(body: &str) -> Result<String, CryptoError> {
    if body.len() > MAX_ENCRYPTED_LEN + 4096 {
        return Err(CryptoError::TooLarge);
    }
    let message = XmlMessage::parse(body).map_err(|e| CryptoError::BadEnvelope(e.to_string()))?;
    message
        .fields
        .into_iter()
        .find_map(|(name, value)| match value {
            XmlValue::Text(t) if name == "Encrypt" => Some(t),
            _ => None,
        })
        .ok_or_else(|| CryptoError::BadEnvelope("no <Encrypt>".into()))
}

#[cfg(test)]
mod tests;
