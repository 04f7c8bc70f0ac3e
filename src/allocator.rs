//! glibc's allocator, tuned by measurement (bench/README.md, "The engine"): one setting at
//! start, and free memory handed back after a burst.
//!
//! glibc hands the free top of a thread's heap back to the kernel (`madvise(MADV_DONTNEED)`) as
//! soon as it passes 128 KiB. A proxied response of 100 KB allocates and frees body buffers of
//! about that size on every request, so the same pages were given back and faulted in again,
//! zeroed, per request: on the benchmark's 100 KB rows ~14 µs of page faults per request and
//! about a third of the throughput. Keeping up to [`TRIM_THRESHOLD`] free at the top of each
//! heap ends that churn; what a burst leaves beyond it is still returned. 1 MiB did as well as
//! 4 MiB on those rows; the full benchmark run with 4 MiB measured 152 MiB at 10,000
//! connections (134 MiB the run before), over SPEC 16's 150, so the smaller bound is kept.

use std::time::Duration;

/// Free bytes a heap keeps before glibc returns its top to the kernel.
pub const TRIM_THRESHOLD: usize = 1 << 20;

/// Free bytes the heaps may gain or lose before the trimmer hands free memory back again.
pub const SLACK: usize = 8 << 20;

/// How often the trimmer looks at the free bytes.
const LOOK_EVERY: Duration = Duration::from_secs(10);

/// Applies [`TRIM_THRESHOLD`], unless the operator set glibc's own knob
/// (`MALLOC_TRIM_THRESHOLD_`, or `trim_threshold` in `GLIBC_TUNABLES`), which then wins.
pub fn tune() {
    let set_by_operator = std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("trim_threshold"));
    if set_by_operator {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a number inside glibc's allocator; it is called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
    }
}

/// Starts a thread that, every [`LOOK_EVERY`], hands free memory back to the kernel when the
/// heaps' free bytes have moved by more than [`SLACK`] since the last trim (`malloc_trim`).
///
/// glibc returns only the free top of a heap; what a burst leaves free in the middle (a thousand
/// connections served at once, then closed) stays resident for good: the benchmark's gateway
/// held 33 MiB after its qyapi stampede, 21 MiB once trimmed. The look is one `mallinfo2`, a
/// walk of the free lists; the trim runs only when that much was freed or reused since the last
/// one, so an idle process is trimmed once and a steady load rarely.
pub fn start_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::thread::Builder::new()
            .name("wgw-trim".into())
            .spawn(|| {
                let mut trimmer = Trimmer::default();
                loop {
                    std::thread::sleep(LOOK_EVERY);
                    trimmer.look(SLACK);
                }
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "the memory trimmer did not start; free memory stays resident");
        }
    }
}

/// Remembers what was free right after the last trim. glibc still counts trimmed memory as
/// free (only its pages went back), so the free bytes alone would trim an idle process again
/// and again for nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[derive(Default)]
pub struct Trimmer {
    free_after_last: usize,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
impl Trimmer {
    /// Trims if more than `slack` bytes are free and the free bytes moved by more than
    /// `slack` since the last trim. Returns whether it trimmed.
    pub fn look(&mut self, slack: usize) -> bool {
        let free = free_bytes();
        if free <= slack || free.abs_diff(self.free_after_last) <= slack {
            return false;
        }
        // SAFETY: releases pages of glibc's own free chunks, under its arena locks.
        unsafe {
            libc::malloc_trim(0);
        }
        self.free_after_last = free_bytes();
        true
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn free_bytes() -> usize {
    // SAFETY: reads glibc's statistics of its own arenas, under their locks.
    unsafe { libc::mallinfo2() }.fordblks
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    fn resident_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    /// Memory freed in the middle of the heap, pinned there by blocks still in use, stays
    /// resident until a trim; the trim gives it back. (Each test runs in its own process.)
    #[test]
    fn a_trim_returns_what_a_burst_left_free_in_the_middle_of_the_heap() {
        let mut trimmer = Trimmer::default();
        assert!(!trimmer.look(usize::MAX));
        let mut blocks: Vec<Vec<u8>> = (0..16_384).map(|i| vec![i as u8; 4000]).collect();
        // Keep every sixteenth block: the freed ones lie between blocks in use.
        let kept: Vec<Vec<u8>> = blocks
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| i % 16 == 0)
            .map(|(_, b)| std::mem::take(b))
            .collect();
        drop(blocks);
        let before = resident_bytes();
        assert!(trimmer.look(SLACK), "60 MB free is more than the slack");
        let after = resident_bytes();
        assert!(
            before - after > 32 << 20,
            "resident {before} -> {after} bytes: the free middle was not returned"
        );
        assert!(kept.iter().enumerate().all(|(i, b)| b[0] == (i * 16) as u8));
        assert!(
            !trimmer.look(SLACK),
            "nothing was freed since: no second trim"
        );
        drop(kept);
        assert!(
            trimmer.look(0),
            "what the kept blocks held is new free memory"
        );
    }
}
