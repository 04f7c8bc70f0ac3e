//! Logging with `tracing`: human text by default, one JSON object a line with
//! `--log-format json`; every line redacted and bounded (see [`crate::redact`]).
//!
//! Lines are cleaned on the thread that logs them and queued whole in [`sink`], whose
//! background thread writes them in batches (SPEC section 16: the access log never blocks a
//! worker on the terminal or a pipe); [`flush`] writes out the rest at a clean stop, so no line
//! is lost. The per-request lines are written by [`line`] straight into bytes; every other
//! event goes through `tracing-subscriber`'s formatter.

pub mod files;
mod line;
pub mod sink;

use std::io::{self, Write};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::redact;
pub use line::Line;
use sink::{Sink, Stderr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

static SINK: OnceLock<Arc<Sink<Stderr>>> = OnceLock::new();
static JSON: OnceLock<bool> = OnceLock::new();
/// Whether the filter takes the `access` and the `qyapi` lines. The filter is fixed for the
/// process's life: decided once the subscriber is in place, rather than asking `tracing` (a
/// dispatcher lookup) on every request.
static PER_REQUEST: OnceLock<(bool, bool)> = OnceLock::new();

pub fn init(format: LogFormat) {
    // pingora logs its own connection-level noise at info; keep it at warn unless asked.
    let default = || EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn,pingora=warn");
    let filter = match std::env::var("WGW_LOG") {
        Ok(v) => EnvFilter::try_new(&v).unwrap_or_else(|e| {
            // Said before anything is logged, on stderr where the log goes: an operator who
            // asked for debug lines must not wonder why there are none.
            eprintln!("WGW_LOG={v:?} is not a filter ({e}): the default one is used");
            default()
        }),
        Err(_) => default(),
    };
    if SINK.set(Sink::start(Stderr)).is_err() {
        return;
    }
    let _ = JSON.set(format == LogFormat::Json);
    // No colour codes: they would sit between a field's name and its value and hide it from
    // the redaction every line goes through.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Cleaned);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    let _ = PER_REQUEST.set((
        tracing::enabled!(target: "access", tracing::Level::INFO),
        tracing::enabled!(target: "qyapi", tracing::Level::INFO),
    ));
    route_panics();
}

/// A request's `access` line, unless the filter (`WGW_LOG`) leaves that target out.
pub fn access() -> Option<Line> {
    PER_REQUEST
        .get()
        .is_some_and(|p| p.0)
        .then(|| start("access"))
}

/// A qyapi call's line, unless the filter leaves the `qyapi` target out.
pub fn qyapi() -> Option<Line> {
    PER_REQUEST
        .get()
        .is_some_and(|p| p.1)
        .then(|| start("qyapi"))
}

fn start(target: &'static str) -> Line {
    Line::start(*JSON.get().unwrap_or(&false), target, SystemTime::now())
}

/// Queues one clean line; before [`init`] (unit tests) it goes nowhere.
fn write_line(line: &[u8]) {
    if let Some(sink) = SINK.get() {
        sink.push(line);
    }
}

/// Why `run` could not start (a configuration, a port taken): plain text for a person, or
/// under `--log-format json` one `ERROR` line like the others, so that a pipeline reading the
/// log as JSON gets the reason instead of a line it cannot parse.
pub fn fatal(why: &str) {
    if *JSON.get().unwrap_or(&false) {
        tracing::error!(error = why, "wecom-gateway could not start");
    } else {
        eprintln!("{why}");
    }
}

/// Writes out every line logged so far and stops the background writer; lines logged after
/// this are lost, so it is the last thing a stopping process does.
pub fn flush() {
    files::close_all();
    if let Some(sink) = SINK.get() {
        sink.close();
    }
}

/// [`flush`] for a second stop signal: a second at most for the log's last lines, however
/// slowly it is read (a first stop waiting on its writer gives up as soon).
pub fn flush_now() {
    sink::hurry();
    files::close_all();
    if let Some(sink) = SINK.get() {
        sink.close();
    }
}

/// A panic's message goes through the log, redacted like any line, instead of straight to
/// stderr; the process then stops as it would have.
fn route_panics() {
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(target: "panic", "{info}");
    }));
}

/// `tracing-subscriber` writes each formatted event in one piece: it is cleaned (redacted,
/// bounded) here, on the thread that logged it, and queued.
struct Cleaned;

impl<'a> MakeWriter<'a> for Cleaned {
    type Writer = Cleaned;

    fn make_writer(&'a self) -> Self::Writer {
        Cleaned
    }
}

impl Write for Cleaned {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let line = String::from_utf8_lossy(buf);
        write_line(redact::clean(&line).as_bytes());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How many lines the log dropped so far because its output did not keep up.
pub fn dropped_lines() -> usize {
    SINK.get().map_or(0, |s| s.dropped())
}
