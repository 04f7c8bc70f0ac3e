//! What both the gateway and the emulator need of the WeCom and WeChat APIs, and nothing of
//! either: the callback crypto (WXBizMsgCrypt) and the callback XML.

pub mod callback;
pub mod xml;

pub use callback::{CallbackCrypto, CryptoError, Plaintext, Sealed};
pub use xml::{XmlError, XmlMessage, XmlValue};
