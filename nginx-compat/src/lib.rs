//! A subset of nginx's configuration language evaluated with nginx's semantics.
//!
//! Pure: no I/O, no sockets, no clock. The gateway feeds it requests and acts on the
//! decisions: [`uri`] normalises paths, [`location`] selects locations, [`parse`] reads nginx
//! configuration (includes resolved by the caller), [`eval`] runs a request through nginx's
//! phases to an [`Action`] (an answer, a file over the caller's [`FileSystem`], a request to
//! proxy, or a closed connection), and answers the questions a proxied request raises later
//! (`proxy_redirect`, an upstream's error and `error_page`, `add_header`/`expires`); [`mime`]
//! gives the answers nginx makes itself their `Content-Type` (`types`, `default_type`).

pub mod autoindex;
pub mod escape;
pub mod eval;
pub mod gzip;
pub mod location;
pub mod log;
pub mod mime;
pub mod parse;
pub mod regex;
mod request;
pub mod uri;
pub mod vars;

pub use eval::{
    special_page, Action, Body, FileAnswer, FileKind, FileSystem, HeaderEdit, HeaderMode, NoFiles,
    Proxy, Response, State,
};
pub use location::{Location, LocationError, LocationSet, Match, Modifier};
pub use mime::MimeTypes;
pub use parse::model::{
    AccessLogFile, Config, Head, HeaderBuffers, LocConf, LocRef, ModifiedSince, Server, Settings,
    Unsupported,
};
pub use parse::{Directive, ParseError};
pub use request::Request;
pub use uri::{normalize_path, parse_path, split_request_uri, ParsedPath, UriError};
