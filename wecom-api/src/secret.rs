//! Key material that must never be printed.

use std::fmt;
use std::sync::Arc;

/// A secret from the configuration (an app secret, a contact secret, a Redis URL with its
/// password). `Debug` never shows it; [`Secret::expose`] is the one way to read it.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short, stable, non-reversible name for the secret, used in cache keys so that two
    /// apps of one corp never share a token (WECOM_API.md, pain 4).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_fingerprint_never_show_the_secret() {
        let s = Secret::new("hunter2-hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        let fp = s.fingerprint();
        assert_eq!(fp.len(), 16);
        assert!(!fp.contains("hunter2"));
        assert_eq!(fp, Secret::new("hunter2-hunter2".into()).fingerprint());
        assert_ne!(fp, Secret::new("hunter3-hunter3".into()).fingerprint());
    }
}
