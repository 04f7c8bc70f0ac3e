//! Encrypted cookie values: AES-256-GCM through the `cookie` crate's private jar. The cookie
//! name is the associated data, so a value sealed for one cookie never opens as another.

use cookie::{Cookie, CookieJar, Key};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The encrypted value of cookie `name` carrying `payload`.
pub fn seal<T: Serialize>(key: &Key, name: &str, payload: &T) -> String {
    let json = serde_json::to_string(payload).expect("plain data serialises");
    let mut jar = CookieJar::new();
    jar.private_mut(key).add(Cookie::new(name.to_owned(), json));
    jar.get(name)
        .map(|c| c.value().to_owned())
        .expect("the cookie was just added")
}

/// The payload of cookie `name`, or `None` when the value was not sealed with `key` for that
/// name, was altered, or does not hold a `T`.
pub fn open<T: DeserializeOwned>(key: &Key, name: &str, value: &str) -> Option<T> {
    let jar = CookieJar::new();
    let plain = jar
        .private(key)
        .decrypt(Cookie::new(name.to_owned(), value.to_owned()))?;
    serde_json::from_str(plain.value()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct P {
        a: String,
    }

    fn key(s: &str) -> Key {
        Key::derive_from(format!("{s:0>32}").as_bytes())
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_name() {
        let p = P {
            a: "zhangsan".into(),
        };
        let v = seal(&key("k1"), "wgw_session", &p);
        assert!(!v.contains("zhangsan"), "the payload is not readable");
        assert_eq!(open::<P>(&key("k1"), "wgw_session", &v), Some(p));
        assert_eq!(
            open::<P>(&key("k2"), "wgw_session", &v),
            None,
            "foreign key"
        );
        assert_eq!(
            open::<P>(&key("k1"), "other", &v),
            None,
            "other cookie name"
        );
        let mut bytes = v.clone().into_bytes();
        let i = bytes.len() / 2;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            open::<P>(&key("k1"), "wgw_session", &tampered),
            None,
            "tampered"
        );
        assert_eq!(open::<P>(&key("k1"), "wgw_session", ""), None);
        assert_eq!(open::<P>(&key("k1"), "wgw_session", "!!notbase64"), None);
    }
}
