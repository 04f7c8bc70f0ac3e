//! A subset of nginx's configuration language evaluated with nginx's semantics.
//!
//! Pure: no I/O, no sockets. The gateway feeds it requests and acts on the decisions:
//! [`uri`] normalises paths, [`location`] selects locations, [`parse`] reads nginx
//! configuration (includes resolved by the caller), [`eval`] decides what nginx would answer,
//! [`content`] carries static outcomes through `try_files`/`index` over a caller's file system.

pub mod content;
pub mod escape;
pub mod eval;
pub mod location;
pub mod parse;
pub mod regex;
mod request;
pub mod uri;
pub mod vars;

pub use content::{Content, FileKind, FileSystem};
pub use eval::{ExpandedFallback, ExpandedTryFiles, Outcome};
pub use location::{Location, LocationError, LocationSet, Match, Modifier};
pub use parse::model::{Config, LocConf, Server, Settings, Unsupported};
pub use parse::{Directive, ParseError};
pub use request::Request;
pub use uri::{normalize_path, split_request_uri, UriError};
