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
mod glob;
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
        let mut err = ConfigError::from_toml(name, text, &path, e.inner());
        // One run names every variable the environment lacks, not one per run.
        if err.message.starts_with("environment variable ") && err.message.ends_with(" is not set")
        {
            let named = err.message.split(' ').nth(2).unwrap_or("").to_owned();
            let others: Vec<String> = missing_variables(text)
                .into_iter()
                .filter(|(_, name)| *name != named)
                .map(|(line, name)| format!("{name} (line {line})"))
                .collect();
            if !others.is_empty() {
                err.message = format!("{}; not set either: {}", err.message, others.join(", "));
            }
        }
        err
    })
}

/// Every whole-value `"${NAME}"` of `text` whose variable is not set, with its line, in file
/// order (comments and all: a reference in a comment is not one).
fn missing_variables(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split('#').next().unwrap_or("");
        // Either TOML string quote: `${NAME}` is read from the environment in both.
        let mut found = Vec::new();
        for quote in ['"', '\''] {
            let (open, close) = (format!("{quote}${{"), format!("}}{quote}"));
            let mut rest = code;
            while let Some(at) = rest.find(&open) {
                let after = &rest[at + 3..];
                let Some(end) = after.find(&close) else { break };
                let name = &after[..end];
                let plain = !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if plain && std::env::var_os(name).is_none() {
                    found.push((at + (code.len() - rest.len()), name.to_owned()));
                }
                rest = &after[end + 2..];
            }
        }
        found.sort();
        out.extend(found.into_iter().map(|(_, name)| (n + 1, name)));
    }
    out
}
