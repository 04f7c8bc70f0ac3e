//! Request ids: 32 hex characters from a fast per-thread generator; kept from the client when
//! sane (see [`crate::headers::sane_request_id`]).

use rand::Rng;

pub fn generate() -> String {
    // Into a buffer, not `hex::encode`, which collects the digits one `char` at a time.
    let mut digits = [0u8; 32];
    hex::encode_to_slice(rand::rng().random::<u128>().to_be_bytes(), &mut digits)
        .expect("16 bytes are 32 hex digits");
    std::str::from_utf8(&digits)
        .expect("hex digits are ASCII")
        .to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_32_lowercase_hex_digits_and_differ() {
        let a = super::generate();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(a, super::generate());
    }
}
