//! `gateway.toml`: read once, checked once, compiled into a typed runtime model.
//!
//! [`file`] is the format as written; [`compile`] checks what needs more than one value and
//! builds [`model::Config`], the only form the rest of the gateway sees. A problem is a
//! [`ConfigError`] that names `file:line:col`, the key path and what was expected.

mod app;
mod callback;
mod checked;
mod compile;
mod describe;
mod error;
mod file;
pub mod model;
pub mod rules;
mod snapshot;
mod values;

use std::path::Path;

pub use error::ConfigError;
pub use file::{AppKind, ExternalContactMode, LoginMode, RewriteFlag, StoreBackend};
pub use model::Config;
pub use snapshot::Snapshot;
pub use values::parse_duration;

/// Reads and compiles a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(&name, &e))?;
    load_str(&name, &text, path.parent().unwrap_or(Path::new(".")))
}

/// Compiles config text; `name` is used in error messages and `dir` resolves relative paths
/// (nginx includes).
pub fn load_str(name: &str, text: &str, dir: &Path) -> Result<Config, ConfigError> {
    let parsed = parse(name, text)?;
    compile::compile(parsed, &error::Source { name, text }, dir)
}

fn parse(name: &str, text: &str) -> Result<file::File, ConfigError> {
    let de =
        toml::Deserializer::parse(text).map_err(|e| ConfigError::from_toml(name, text, "", &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = error::format_path(e.path());
        ConfigError::from_toml(name, text, &path, e.inner())
    })
}
