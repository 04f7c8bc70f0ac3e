//! Where every log line goes: a buffer per thread that its worker appends whole, clean lines
//! to, and a background thread that writes them out in batches (SPEC section 16: the access log
//! never blocks a worker on the terminal or a pipe).
//!
//! Each thread has its own buffer and lock, so two workers logging at once never share a lock
//! or a cache line: a shared buffer cost each request the lock's and the buffer's cache lines
//! passing between cores (nginx's workers each buffer their own `access_log ... buffer=` too).
//! A worker wakes the writer only when the writer sleeps with nothing to write; the writer,
//! after each batch that is not a big one, lets lines gather for a moment (longer after a busy
//! batch), so under load the output is a few `write`s and one wake-up per batch, not per line.
//! One thread's lines keep their order; lines of two threads within one batch are written one
//! thread after the other. If the output cannot keep up and a thread's buffer holds
//! [`BUFFER_MAX`] bytes, its further lines are dropped, counted and reported rather than
//! stalling the proxy. [`Sink::close`] writes out everything and stops the thread; what is
//! logged after that is written directly.

use std::cell::RefCell;
use std::io::{self, Write};
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How much the writer writes at a time (a batch under load is up to [`BIG_BATCH`] and more).
const WRITE_PIECE: usize = 64 * 1024;
/// The most a stop waits for a writer that goes on writing (a reader taking a few KiB a
/// second would hold it for minutes): as long as a stop waits for requests in flight.
const CLOSE_WAIT_MOST: Duration = Duration::from_secs(30);
/// How long a close waits for its writer once a second stop signal came: time for the last
/// lines (that signal's own) on a reader keeping up, none for one that does not.
const HURRIED_WAIT: Duration = Duration::from_secs(1);
/// When a second stop signal came.
static HURRIED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// A second stop signal: every close waits for its writer [`HURRIED_WAIT`] more at most.
pub fn hurry() {
    let _ = HURRIED.set(std::time::Instant::now());
}

/// The moment a close stops waiting for its writer, given its own deadline.
fn give_up_at(deadline: std::time::Instant) -> std::time::Instant {
    match HURRIED.get() {
        Some(&at) => deadline.min(at + HURRIED_WAIT),
        None => deadline,
    }
}

/// How long a stop waits for the log's writer once it writes nothing.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Bytes one thread's buffer holds at most (lines are bounded to a few KiB before they queue).
const BUFFER_MAX: usize = 8 * 1024 * 1024;
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

/// One thread's lines waiting for the writer.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
    dropped: usize,
}

/// A thread's buffer; the thread holds one reference, the sink the other. Aligned so that two
/// threads' buffers never share a cache line.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<Lines>);

thread_local! {
    /// This thread's buffer in each sink it logged to, by the sink's number (one in a process).
    static MINE: RefCell<Vec<(usize, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

pub struct Sink<W: Write + Send + 'static> {
    /// Tells this sink's buffers apart from another sink's in a thread's [`MINE`].
    number: usize,
    shards: Mutex<Vec<Arc<Shard>>>,
    /// Lines dropped by threads that have ended since.
    dropped_gone: AtomicUsize,
    /// The writer waits with nothing to write: the next line wakes it.
    sleeping: AtomicBool,
    closed: AtomicBool,
    wake_lock: Mutex<()>,
    wake: Condvar,
    out: Mutex<W>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Counts the pieces the writer has written: a close waits while it goes up.
    progress: AtomicUsize,
    /// The writer has written its last round and ended.
    done: AtomicBool,
}

impl<W: Write + Send + 'static> Sink<W> {
    /// Starts the writer thread, writing to `out`.
    pub fn start(out: W) -> Arc<Sink<W>> {
        static NUMBERS: AtomicUsize = AtomicUsize::new(0);
        let sink = Arc::new(Sink {
            number: NUMBERS.fetch_add(1, Ordering::Relaxed),
            shards: Mutex::new(Vec::new()),
            dropped_gone: AtomicUsize::new(0),
            sleeping: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            wake_lock: Mutex::new(()),
            wake: Condvar::new(),
            out: Mutex::new(out),
            writer: Mutex::new(None),
            progress: AtomicUsize::new(0),
            done: AtomicBool::new(false),
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
        let queued = MINE.try_with(|mine| {
            let mut mine = mine.borrow_mut();
            let shard = match mine.iter().position(|(n, _)| *n == self.number) {
                Some(i) => &mine[i].1,
                None => {
                    let shard = Arc::new(Shard::default());
                    lock(&self.shards).push(shard.clone());
                    mine.push((self.number, shard));
                    &mine[mine.len() - 1].1
                }
            };
            let mut lines = lock(&shard.0);
            // Read under the buffer's lock: the writer's last round takes this lock after the
            // flag is set, so a line queued here is either in that round or written directly.
            if self.closed.load(Ordering::SeqCst) {
                return false;
            }
            if lines.buf.len() + line.len() > BUFFER_MAX {
                lines.dropped += 1;
            } else {
                lines.buf.extend_from_slice(line);
            }
            true
        });
        if queued != Ok(true) {
            // The sink is closed, or this thread is ending and its buffer is gone. Not behind
            // a writer stuck on an output nobody reads (it holds the output): the line is lost
            // rather than the process held.
            let deadline = std::time::Instant::now() + Duration::from_millis(100);
            loop {
                match self.out.try_lock() {
                    Ok(mut out) => {
                        let _ = out.write_all(line);
                        let _ = out.flush();
                        return;
                    }
                    Err(std::sync::TryLockError::Poisoned(p)) => {
                        let mut out = p.into_inner();
                        let _ = out.write_all(line);
                        let _ = out.flush();
                        return;
                    }
                    Err(std::sync::TryLockError::WouldBlock)
                        if std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(std::sync::TryLockError::WouldBlock) => return,
                }
            }
        }
        // Either the writer, going to sleep, sees the line just queued, or this sees it asleep.
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::SeqCst) {
            let _held = lock(&self.wake_lock);
            self.wake.notify_one();
        }
    }

    /// Lines dropped so far because the output did not keep up.
    pub fn dropped(&self) -> usize {
        let live: usize = lock(&self.shards).iter().map(|s| lock(&s.0).dropped).sum();
        live + self.dropped_gone.load(Ordering::Relaxed)
    }

    /// Writes out every queued line and stops the writer thread, waiting for it as long as it
    /// writes (a slow reader gets every line), and [`CLOSE_WAIT`] at most once it writes
    /// nothing: an output nobody reads (`gateway | sleep`, a stuck log shipper) blocks the
    /// writer in its `write`, and a stop must not wait on it for ever.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.sleeping.store(false, Ordering::SeqCst);
        {
            let _held = lock(&self.wake_lock);
            self.wake.notify_one();
        }
        // Taken out first: a second close (a second stop signal) must not wait on this one's
        // lock; it waits for the writer to end, a little, instead.
        let writer = lock(&self.writer).take();
        let Some(h) = writer else {
            if HURRIED.get().is_some() {
                let at = give_up_at(std::time::Instant::now() + HURRIED_WAIT);
                while !self.done.load(Ordering::SeqCst) && std::time::Instant::now() < at {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            return;
        };
        let started = std::time::Instant::now();
        let mut deadline = started + CLOSE_WAIT;
        let mut seen = self.progress.load(Ordering::Relaxed);
        while !h.is_finished()
            && std::time::Instant::now() < give_up_at(deadline.min(started + CLOSE_WAIT_MOST))
        {
            std::thread::sleep(Duration::from_millis(5));
            let now = self.progress.load(Ordering::Relaxed);
            if now != seen {
                seen = now;
                deadline = std::time::Instant::now() + CLOSE_WAIT;
            }
        }
        if h.is_finished() {
            let _ = h.join();
        }
    }

    /// Takes every thread's lines, each buffer swapped for an empty one from `spare`, into
    /// `batches`; forgets the buffers of threads that have ended once they are empty. Returns
    /// the bytes taken and the lines dropped so far.
    fn collect(&self, batches: &mut Vec<Vec<u8>>, spare: &mut Vec<Vec<u8>>) -> (usize, usize) {
        let mut taken = 0;
        let mut dropped = 0;
        lock(&self.shards).retain(|shard| {
            let mut lines = lock(&shard.0);
            if !lines.buf.is_empty() {
                let mut batch = spare.pop().unwrap_or_default();
                std::mem::swap(&mut lines.buf, &mut batch);
                taken += batch.len();
                batches.push(batch);
            }
            dropped += lines.dropped;
            let ended = Arc::strong_count(shard) == 1;
            if ended {
                self.dropped_gone
                    .fetch_add(lines.dropped, Ordering::Relaxed);
            }
            !ended
        });
        (taken, dropped + self.dropped_gone.load(Ordering::Relaxed))
    }

    /// Whether any thread has a line queued.
    fn anything_queued(&self) -> bool {
        lock(&self.shards)
            .iter()
            .any(|s| !lock(&s.0).buf.is_empty())
    }

    fn run(&self) {
        let mut batches = Vec::new();
        let mut spare = Vec::new();
        let mut reported = 0;
        loop {
            let closed = self.closed.load(Ordering::SeqCst);
            let (taken, dropped) = self.collect(&mut batches, &mut spare);
            if taken > 0 || dropped > reported {
                let mut out = lock(&self.out);
                // In pieces, each counted: a close sees a slow reader still taking lines.
                for piece in batches.iter().flat_map(|b| b.chunks(WRITE_PIECE)) {
                    let _ = out.write_all(piece);
                    self.progress.fetch_add(1, Ordering::Relaxed);
                }
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
            for mut batch in batches.drain(..) {
                batch.clear();
                if batch.capacity() > 4 * BIG_BATCH {
                    batch.shrink_to(BIG_BATCH);
                }
                spare.push(batch);
            }
            if closed {
                self.done.store(true, Ordering::SeqCst);
                return;
            }
            if taken == 0 {
                self.sleeping.store(true, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                if !self.anything_queued() {
                    let mut held = lock(&self.wake_lock);
                    while self.sleeping.load(Ordering::SeqCst)
                        && !self.closed.load(Ordering::SeqCst)
                    {
                        held = self.wake.wait(held).unwrap_or_else(|e| e.into_inner());
                    }
                }
                self.sleeping.store(false, Ordering::SeqCst);
                continue;
            }
            std::thread::sleep(match taken {
                n if n >= BIG_BATCH => continue,
                n if n >= BUSY_BATCH => GATHER_BUSY,
                _ => GATHER_QUIET,
            });
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

    /// An output that hands each write to a channel.
    struct Told(std::sync::mpsc::Sender<Vec<u8>>);

    impl Write for Told {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.0.send(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_reaches_the_output_without_waiting_for_more_or_for_close() {
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Sink::start(Told(tx));
        // Each line alone: the writer has written the one before and may be going to sleep or
        // asleep when the next comes; the line must wake it either way.
        for i in 0..200 {
            if i % 2 == 1 {
                // Half of them once the writer has gone to sleep with nothing to write.
                while !sink.sleeping.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
            }
            let line = format!("line {i}\n");
            sink.push(line.as_bytes());
            let got = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("the line is written while the sink stays open");
            assert_eq!(got, line.as_bytes());
        }
        sink.close();
    }

    #[test]
    fn the_lines_of_threads_that_ended_are_written_and_their_buffers_let_go() {
        let out = Shared::default();
        let sink = Sink::start(out.clone());
        for t in 0..50 {
            let sink = sink.clone();
            std::thread::spawn(move || sink.push(format!("thread {t}\n").as_bytes()))
                .join()
                .unwrap();
        }
        sink.close();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        for t in 0..50 {
            assert!(text.contains(&format!("thread {t}\n")), "{t} in {text}");
        }
        assert_eq!(
            lock(&sink.shards).len(),
            0,
            "an ended thread's buffer is not kept"
        );
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
