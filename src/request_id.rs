//! Request ids: 32 hex characters from a fast per-thread generator; kept from the client when
//! sane (see [`crate::headers::sane_request_id`]).

use rand::Rng;

pub fn generate() -> String {
    let n: u128 = rand::rng().random();
    format!("{n:032x}")
}
