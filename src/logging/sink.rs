//! Where every log line goes: one in-memory buffer that workers append whole, clean lines to,
//! and a background thread that writes it out in batches (SPEC section 16: the access log never
//! blocks a worker on the terminal or a pipe).
//!
//! A worker holds the lock only to copy its line in, and wakes the writer only when the writer
//! sleeps on an empty buffer; the writer, after each batch that is not a big one, lets lines
//! gather for a moment (longer after a busy batch), so under load the output is a `write` per
//! batch and a wake-up per batch, not per line (nginx's `access_log ... buffer=`). If the
//! output cannot keep up and the buffer holds [`BUFFER_MAX`] bytes, further lines are dropped,
//! counted and reported rather than stalling the proxy. [`Sink::close`] writes out everything
//! and stops the thread; what is logged after that is written directly.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes waiting for the writer at most (lines are bounded to a few KiB before they queue).
const BUFFER_MAX: usize = 32 * 1024 * 1024;
/// A batch at least this big shows lines coming fast: the next ones gather for [`GATHER_BUSY`].
const BUSY_BATCH: usize = 4 * 1024;
/// A batch at least this big shows the writer falling behind: it writes the next at once.
const BIG_BATCH: usize = 256 * 1024;
/// How long lines gather after a batch of a quiet moment, so that a line is on its way within
/// about a millisecond while the writer is woken at most a thousand times a second.
const GATHER_QUIET: Duration = Duration::from_millis(1);
/// How long lines gather after a busy batch: the most a line waits for a busy writer. Each
/// round wakes the writer, and on a loaded machine a wake-up takes a core from a worker: at
/// 1 ms the log cost the public route ~1.3 µs of CPU per request at ~50k requests a second,
/// at 10 ms about a fifth of that (nginx's buffered `access_log` holds lines until its buffer
/// fills, unless `flush=` sets a time).
const GATHER_BUSY: Duration = Duration::from_millis(10);

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    /// The writer waits on an empty buffer: the next line wakes it.
    sleeping: bool,
    closed: bool,
    dropped: usize,
}

pub struct Sink<W: Write + Send + 'static> {
    state: Mutex<State>,
    wake: Condvar,
    out: Mutex<W>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl<W: Write + Send + 'static> Sink<W> {
    /// Starts the writer thread, writing to `out`.
    pub fn start(out: W) -> Arc<Sink<W>> {
        let sink = Arc::new(Sink {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            out: Mutex::new(out),
            writer: Mutex::new(None),
        });
        let s = sink.clone();
        let handle = std::thread::Builder::new()
            .name("wgw-log".into())
            .spawn(move || s.run())
            .expect("the log writer thread starts");
        *lock(&sink.writer) = Some(handle);
        sink
    }

    /// Queues one whole line (already redacted and bounded).
    pub fn push(&self, line: &[u8]) {
        let mut st = lock(&self.state);
        if st.closed {
            drop(st);
            let mut out = lock(&self.out);
            let _ = out.write_all(line);
            let _ = out.flush();
            return;
        }
        if st.buf.len() + line.len() > BUFFER_MAX {
            st.dropped += 1;
            return;
        }
        st.buf.extend_from_slice(line);
        if st.sleeping {
            st.sleeping = false;
            drop(st);
            self.wake.notify_one();
        }
    }

    /// Lines dropped so far because the output did not keep up.
    pub fn dropped(&self) -> usize {
        lock(&self.state).dropped
    }

    /// Writes out every queued line and stops the writer thread.
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.wake.notify_one();
        if let Some(h) = lock(&self.writer).take() {
            let _ = h.join();
        }
    }

    fn run(&self) {
        let mut batch = Vec::new();
        let mut reported = 0;
        loop {
            let (closed, dropped) = {
                let mut st = lock(&self.state);
                while st.buf.is_empty() && !st.closed {
                    st.sleeping = true;
                    st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                st.sleeping = false;
                std::mem::swap(&mut st.buf, &mut batch);
                (st.closed, st.dropped)
            };
            let gather = match batch.len() {
                n if n >= BIG_BATCH => None,
                n if n >= BUSY_BATCH => Some(GATHER_BUSY),
                _ => Some(GATHER_QUIET),
            };
            {
                let mut out = lock(&self.out);
                let _ = out.write_all(&batch);
                if dropped > reported {
                    let _ = writeln!(
                        out,
                        "WARN log: {} lines dropped because the log output did not keep up",
                        dropped - reported
                    );
                    reported = dropped;
                }
                let _ = out.flush();
            }
            batch.clear();
            if batch.capacity() > 4 * BIG_BATCH {
                batch.shrink_to(BIG_BATCH);
            }
            if closed && lock(&self.state).buf.is_empty() {
                return;
            }
            if let Some(pause) = gather.filter(|_| !closed) {
                std::thread::sleep(pause);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The process's standard error, written without its own lock and line buffering.
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stderr().lock().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_pushed_from_many_threads_is_written_whole_by_close() {
        let out = Shared::default();
        let sink = Sink::start(out.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        sink.push(format!("line {t}-{i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        sink.close();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: std::collections::BTreeSet<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        for t in 0..4 {
            assert!(lines.contains(format!("line {t}-4999").as_str()));
        }
        // After close a line is written at once.
        sink.push(b"late\n");
        assert!(String::from_utf8_lossy(&out.0.lock().unwrap()).ends_with("late\n"));
    }

    /// An output that blocks until released: a terminal or pipe nobody reads. The gate holds
    /// (released, a write is waiting).
    struct Stuck(Arc<(Mutex<(bool, bool)>, Condvar)>, Shared);

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (m, c) = &*self.0;
            let mut g = m.lock().unwrap();
            g.1 = true;
            c.notify_all();
            while !g.0 {
                g = c.wait(g).unwrap();
            }
            self.1.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_output_drops_and_reports_lines_instead_of_blocking_the_caller() {
        let gate = Arc::new((Mutex::new((false, false)), Condvar::new()));
        let out = Shared::default();
        let sink = Sink::start(Stuck(gate.clone(), out.clone()));
        // The writer takes a first line and blocks writing it.
        sink.push(b"first\n");
        {
            let mut g = gate.0.lock().unwrap();
            while !g.1 {
                g = gate.1.wait(g).unwrap();
            }
        }
        let mut line = vec![b'x'; 4095];
        line.push(b'\n');
        // Twice what the buffer holds; every push returns although nothing can be written.
        let fit = BUFFER_MAX / line.len();
        for _ in 0..2 * fit {
            sink.push(&line);
        }
        assert_eq!(
            sink.dropped(),
            fit,
            "the buffer took what it holds, no more"
        );
        gate.0.lock().unwrap().0 = true;
        gate.1.notify_all();
        sink.close();
        let text = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
        assert!(text.contains("lines dropped because the log output did not keep up"));
    }
}
