//! Request ids: 32 hex characters from a fast per-thread generator; kept from the client when
//! sane (see [`crate::headers::sane_request_id`]).
//!
//! An id must be unique, not secret: a client may send its own, and it is echoed back,
//! logged and signed into the assertion as `rid`; nothing is granted for knowing one. So each
//! thread draws from its own wyrand stream (a 64-bit counter stepped by an odd constant and
//! mixed by a 128-bit multiply), seeded from the operating system's generator: a few
//! instructions per id where the cryptographic generator took a few hundred.

use std::cell::Cell;

use rand::Rng;

pub fn generate() -> String {
    // Into a buffer, not `hex::encode`, which collects the digits one `char` at a time.
    let mut digits = [0u8; 32];
    hex::encode_to_slice(next_u128().to_be_bytes(), &mut digits)
        .expect("16 bytes are 32 hex digits");
    std::str::from_utf8(&digits)
        .expect("hex digits are ASCII")
        .to_owned()
}

fn next_u128() -> u128 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(rand::rng().random());
    }
    STATE.with(|state| {
        let (a, s) = wyrand(state.get());
        let (b, s) = wyrand(s);
        state.set(s);
        (u128::from(a) << 64) | u128::from(b)
    })
}

/// One step of wyrand: the next output and state.
fn wyrand(state: u64) -> (u64, u64) {
    let s = state.wrapping_add(0xa076_1d64_78bd_642f);
    let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
    ((t >> 64) as u64 ^ t as u64, s)
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

    #[test]
    fn ids_do_not_repeat_within_a_thread_or_across_threads() {
        let ids: std::collections::HashSet<String> = (0..4)
            .map(|_| {
                std::thread::spawn(|| (0..50_000).map(|_| super::generate()).collect::<Vec<_>>())
            })
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(ids.len(), 200_000);
        // Every digit position takes many values: the bits are mixed, not a visible counter.
        for pos in 0..32 {
            let seen: std::collections::HashSet<u8> =
                ids.iter().take(1000).map(|id| id.as_bytes()[pos]).collect();
            assert!(seen.len() >= 12, "position {pos}: {seen:?}");
        }
    }
}
