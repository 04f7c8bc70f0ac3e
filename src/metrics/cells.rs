//! Counts of every request, kept per thread and summed when `/metrics` is read.
//!
//! A count shared by the workers is a cache line that every request moves from one core to the
//! other (prometheus' `IntCounter` is one atomic, its `Histogram` four, all shared): each worker
//! here adds to a line of its own, and the reader adds the lines up. Nothing is lost or delayed:
//! a read sees every count made before it, as with one shared atomic.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Lines per count. Threads take a line in turn as they first count, so up to this many
/// counting threads (the workers) never share one; more share, still counting right.
pub const SHARDS: usize = 16;

/// One shard's value alone on its cache lines (two: the prefetcher pulls lines in pairs).
#[repr(align(128))]
struct Padded<T>(T);

/// This thread's shard.
pub fn shard() -> usize {
    thread_local! {
        static MINE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    MINE.with(|mine| {
        let n = mine.get();
        if n != usize::MAX {
            return n;
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
        mine.set(n);
        n
    })
}

/// A monotonic count.
pub struct Counter([Padded<AtomicU64>; SHARDS]);

impl Counter {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Counter([const { Padded(AtomicU64::new(0)) }; SHARDS])
    }

    pub fn inc(&self) {
        self.0[shard()].0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// A value that goes up and down, such as requests in flight. A decrease is made on the shard
/// of its increase (whatever thread makes it), so no shard ever reads below zero and a sum that
/// reads zero means nothing that began before the read is still going.
pub struct Gauge([Padded<AtomicI64>; SHARDS]);

impl Gauge {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Gauge([const { Padded(AtomicI64::new(0)) }; SHARDS])
    }

    /// Adds one on this thread's shard; returns the shard for [`Gauge::dec`].
    pub fn inc(&self) -> usize {
        let at = shard();
        self.0[at].0.fetch_add(1, Ordering::SeqCst);
        at
    }

    pub fn dec(&self, at: usize) {
        self.0[at % SHARDS].0.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn get(&self) -> i64 {
        self.0.iter().map(|s| s.0.load(Ordering::SeqCst)).sum()
    }
}

/// Upper bounds of the request duration buckets, in seconds (`le`).
pub const DURATION_BOUNDS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The same bounds in nanoseconds, compared without floating point.
const DURATION_BOUNDS_NS: [u64; 15] = {
    let mut ns = [0; 15];
    let mut i = 0;
    while i < ns.len() {
        ns[i] = (DURATION_BOUNDS[i] * 1e9) as u64;
        i += 1;
    }
    ns
};

/// One thread's durations: a count per bucket (the last past every bound) and their sum.
struct Durations {
    buckets: [AtomicU64; DURATION_BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

/// A histogram of request durations over [`DURATION_BOUNDS`].
pub struct Histogram(Box<[Padded<Durations>]>);

/// What a [`Histogram`] holds when read: cumulative counts per bound, the count and the sum.
pub struct Read {
    pub cumulative: [u64; DURATION_BOUNDS.len()],
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn new() -> Self {
        Histogram(
            (0..SHARDS)
                .map(|_| {
                    Padded(Durations {
                        buckets: [const { AtomicU64::new(0) }; DURATION_BOUNDS.len() + 1],
                        sum_ns: AtomicU64::new(0),
                    })
                })
                .collect(),
        )
    }

    pub fn observe(&self, d: Duration) {
        // A day at most, so that no sum of them overflows.
        let ns = u64::try_from(d.as_nanos())
            .unwrap_or(u64::MAX)
            .min(86_400 * 1_000_000_000);
        let bucket = DURATION_BOUNDS_NS
            .iter()
            .position(|&bound| ns <= bound)
            .unwrap_or(DURATION_BOUNDS_NS.len());
        let mine = &self.0[shard()].0;
        mine.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        mine.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn read(&self) -> Read {
        let mut per_bucket = [0u64; DURATION_BOUNDS.len() + 1];
        let mut sum_ns: u128 = 0;
        for s in self.0.iter() {
            for (total, b) in per_bucket.iter_mut().zip(&s.0.buckets) {
                *total += b.load(Ordering::Relaxed);
            }
            sum_ns += u128::from(s.0.sum_ns.load(Ordering::Relaxed));
        }
        let mut cumulative = [0u64; DURATION_BOUNDS.len()];
        let mut running = 0;
        for (c, n) in cumulative.iter_mut().zip(per_bucket) {
            running += n;
            *c = running;
        }
        Read {
            cumulative,
            count: per_bucket.iter().sum(),
            sum_seconds: sum_ns as f64 / 1e9,
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        static COUNTER: Counter = Counter::new();
        static GAUGE: Gauge = Gauge::new();
        let histogram = std::sync::Arc::new(Histogram::new());
        // More threads than shards: some share one.
        let threads: Vec<_> = (0..SHARDS + 4)
            .map(|_| {
                let histogram = histogram.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        COUNTER.inc();
                        let at = GAUGE.inc();
                        histogram.observe(Duration::from_micros(i * 10));
                        GAUGE.dec(at);
                    }
                    GAUGE.inc()
                })
            })
            .collect();
        let held: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let n = (SHARDS as u64 + 4) * 1000;
        assert_eq!(COUNTER.get(), n);
        assert_eq!(GAUGE.get(), SHARDS as i64 + 4, "one still held per thread");
        // Released from another thread than the one that took it.
        for at in held {
            GAUGE.dec(at);
        }
        assert_eq!(GAUGE.get(), 0);
        let read = histogram.read();
        assert_eq!(read.count, n);
        // 0, 10, ..., 500 µs are within the first bound (`le`, inclusive): 51 per thread.
        assert_eq!(read.cumulative[0], (SHARDS as u64 + 4) * 51);
        assert_eq!(read.cumulative[1], (SHARDS as u64 + 4) * 101);
        assert_eq!(read.cumulative[DURATION_BOUNDS.len() - 1], n);
        let expected_sum = (SHARDS as f64 + 4.0) * (0..1000).map(|i| i as f64 * 1e-5).sum::<f64>();
        assert!(
            (read.sum_seconds - expected_sum).abs() < 1e-6,
            "{}",
            read.sum_seconds
        );
    }

    #[test]
    fn a_duration_past_every_bound_is_counted_but_in_no_bucket() {
        let histogram = Histogram::new();
        histogram.observe(Duration::from_secs(31));
        histogram.observe(Duration::MAX);
        let read = histogram.read();
        assert_eq!(read.count, 2);
        assert_eq!(read.cumulative, [0; DURATION_BOUNDS.len()]);
        assert_eq!(read.sum_seconds, 31.0 + 86_400.0);
    }
}
