//! Logging with `tracing`: human text by default, one JSON object a line with
//! `--log-format json`; every line redacted (see [`crate::redact`]).

use tracing_subscriber::EnvFilter;

use crate::redact::RedactingWriter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat) {
    // pingora logs its own connection-level noise at info; keep it at warn unless asked.
    let filter = EnvFilter::try_from_env("WGW_LOG").unwrap_or_else(|_| {
        EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn,pingora=warn")
    });
    let writer = || RedactingWriter(std::io::stderr());
    // No colour codes: they would sit between a field's name and its value and hide it from
    // the redaction every line goes through.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
