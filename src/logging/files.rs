//! The access log files an nginx configuration names (`access_log PATH ...`): each path is
//! opened once for the process's life, in append mode, and written by a [`Sink`] of its own,
//! off the workers like the gateway's own log. SIGUSR1 reopens every file before its next
//! write, as nginx's `reopen` does: logrotate renames the file and signals, and the lines
//! after the signal go to a new file at the old name.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::sink::Sink;

/// One open access log, shared by every configuration (the first and each reload) naming it.
pub type LogFile = Arc<Sink<Reopening>>;

/// Every file opened so far, by path; never closed before [`close_all`], so a reload that
/// names a file again keeps writing it, in order, through the same writer.
static OPEN: Mutex<Vec<(PathBuf, LogFile)>> = Mutex::new(Vec::new());
/// Counts SIGUSR1s; a file whose count is behind is reopened before it is written.
static REOPENS: AtomicU64 = AtomicU64::new(0);

/// The file at `path`, opened (created if missing) when first named. An error is the
/// configuration's: nginx does not start when it cannot open a log either.
pub fn open(path: &Path) -> io::Result<LogFile> {
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, f)) = open.iter().find(|(p, _)| p == path) {
        return Ok(f.clone());
    }
    let file = Reopening {
        file: append(path)?,
        path: path.to_owned(),
        seen: REOPENS.load(Ordering::SeqCst),
        failed: wecom_api::Throttle::per_minute(),
    };
    let sink = Sink::start(file);
    open.push((path.to_owned(), sink.clone()));
    Ok(sink)
}

/// SIGUSR1: every file is reopened at its path before its next write.
pub fn reopen() {
    REOPENS.fetch_add(1, Ordering::SeqCst);
}

/// Writes out every file's queued lines; the last thing a stopping process does.
pub fn close_all() {
    let open = std::mem::take(&mut *OPEN.lock().unwrap_or_else(|e| e.into_inner()));
    for (_, f) in open {
        f.close();
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// An append-mode file that reopens itself after a SIGUSR1.
pub struct Reopening {
    file: File,
    path: PathBuf,
    seen: u64,
    /// When a failed write was last said (nginx's error log says each one).
    failed: wecom_api::Throttle<()>,
}

impl Write for Reopening {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let now = REOPENS.load(Ordering::SeqCst);
        if now != self.seen {
            self.seen = now;
            match append(&self.path) {
                Ok(f) => self.file = f,
                // The old file stays: lines go on somewhere rather than nowhere.
                Err(e) => tracing::error!(
                    path = %self.path.display(),
                    error = %e,
                    "access log: reopening failed, writing on to the file open before"
                ),
            }
        }
        let written = self.file.write(buf);
        // A full disk, a file gone read-only: lines are lost, and said so (once a minute).
        if let Err(e) = &written {
            if self.failed.due((), crate::clock::clock().now_ms()) {
                tracing::error!(
                    path = %self.path.display(),
                    error = %e,
                    "access log: a write failed, its lines are lost (logged once a minute)"
                );
            }
        }
        written
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
