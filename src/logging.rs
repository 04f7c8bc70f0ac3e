//! Logging with `tracing`: human text by default, one JSON object a line with
//! `--log-format json`; every line redacted and bounded (see [`crate::redact`]).
//!
//! A worker formats its event and hands the bytes to a background thread, which redacts them
//! and writes them (SPEC section 16: the access log never blocks a worker on the terminal or a
//! pipe). [`flush`] drains that thread at a clean stop, so no line is lost. If the sink cannot
//! keep up for [`BUFFERED_LINES`] lines, further lines are dropped, counted and reported rather
//! than stalling the proxy.

use std::io::{self, Write};
use std::sync::{Mutex, OnceLock};

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::redact::{self, RedactingWriter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Lines waiting for the background writer at most: with lines bounded to
/// [`redact::LINE_MAX`] before they queue, at most 128 MiB, usually a few MiB.
const BUFFERED_LINES: usize = 16 * 1024;

static GUARD: Mutex<Option<WorkerGuard>> = Mutex::new(None);
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

pub fn init(format: LogFormat) {
    // pingora logs its own connection-level noise at info; keep it at warn unless asked.
    let filter = EnvFilter::try_from_env("WGW_LOG").unwrap_or_else(|_| {
        EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn,pingora=warn")
    });
    let sink = RedactingWriter(DropReport {
        out: io::BufWriter::with_capacity(64 * 1024, io::stderr()),
        reported: 0,
    });
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("wgw-log")
        .finish(sink);
    let _ = DROPPED.set(writer.error_counter());
    *GUARD.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
    // No colour codes: they would sit between a field's name and its value and hide it from
    // the redaction every line goes through.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(BoundLong(writer));
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    route_panics();
}

/// Writes out every line logged so far and stops the background writer; lines logged after
/// this are lost, so it is the last thing a stopping process does.
pub fn flush() {
    let guard = GUARD.lock().unwrap_or_else(|e| e.into_inner()).take();
    drop(guard);
}

/// A panic's message goes through the log, redacted like any line, instead of straight to
/// stderr; the process then stops as it would have.
fn route_panics() {
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(target: "panic", "{info}");
    }));
}

/// Lines longer than a line may be are cleaned on the caller's thread before they queue, so a
/// flood of huge request targets cannot fill memory while the sink is slow; the rest are
/// cleaned on the background thread.
struct BoundLong(NonBlocking);

impl<'a> MakeWriter<'a> for BoundLong {
    type Writer = BoundLongWriter;

    fn make_writer(&'a self) -> Self::Writer {
        BoundLongWriter(self.0.clone())
    }
}

struct BoundLongWriter(NonBlocking);

impl Write for BoundLongWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > redact::LINE_MAX {
            let line = String::from_utf8_lossy(buf);
            self.0.write_all(redact::clean(&line).as_bytes())?;
            Ok(buf.len())
        } else {
            self.0.write(buf)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The background writer's sink: says how many lines were dropped since it last could.
struct DropReport<W: Write> {
    out: W,
    reported: usize,
}

impl<W: Write> Write for DropReport<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let dropped = DROPPED.get().map_or(0, ErrorCounter::dropped_lines);
        if dropped > self.reported {
            let lost = dropped - self.reported;
            self.reported = dropped;
            let _ = writeln!(
                self.out,
                "WARN log: {lost} lines dropped because the log output did not keep up"
            );
        }
        self.out.flush()
    }
}

/// How many lines the log dropped so far (for tests and `/metrics` if wanted).
pub fn dropped_lines() -> usize {
    DROPPED.get().map_or(0, ErrorCounter::dropped_lines)
}
