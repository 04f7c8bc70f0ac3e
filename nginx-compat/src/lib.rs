//! A subset of nginx's configuration language evaluated with nginx's semantics.
//!
//! Pure: no I/O, no sockets. The gateway feeds it requests and acts on the decisions.

pub mod location;
pub mod regex;
pub mod uri;

pub use location::{Location, LocationError, LocationSet, Match, Modifier};
pub use uri::{normalize_path, split_request_uri, UriError};
