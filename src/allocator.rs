//! The allocator: mimalloc, chosen by measurement (bench/README.md, "The engine"), with one
//! setting at start and one at build time.
//!
//! Under callgrind it cut the instructions of a proxied request by 11-13% against glibc's
//! (the bare pingora proxy 87.3k → 75.7k, the public route 106.7k → 95.0k, an authenticated
//! request 156.2k → 141.1k), and two side-by-side native runs (4 and 6 rounds, the bare proxy
//! and the gateway alike) read 9-19% more requests per second. glibc kept needing care besides:
//! a trim threshold against page-fault churn on 100 KB bodies, and a trimming thread for what a
//! burst left free in the middle of a heap.
//!
//! - **Free pages go back to the kernel after [`PURGE_DELAY_MS`]**, not mimalloc's 1 s: a thread
//!   returns its free pages when its allocator next collects after the delay, and with 1 s the
//!   benchmark's gateway read 159 MiB with 10,000 connections after its qyapi rows and 1,000-call
//!   stampede (over SPEC 16's 150); 137 MiB with 100 ms. No delay at all read 106 MiB but
//!   returned pages the next requests needed at once.
//! - **No transparent huge pages** (mimalloc's `no_thp` feature, `Cargo.toml`): mimalloc asked
//!   for them (`madvise(MADV_HUGEPAGE)`) on the regions it reserves, so memory became resident
//!   2 MiB at a time: 28.5 MiB at start, 16.0 without.

/// The process's allocator; `main.rs` makes it the global one.
pub type Allocator = mimalloc::MiMalloc;
pub const ALLOCATOR: Allocator = mimalloc::MiMalloc;

/// mimalloc's `purge_delay`, in milliseconds: how long a free page stays resident before it is
/// returned. 0 returned pages that the next requests needed again at once (page faults and TLB
/// shoot-downs were ~4% of an authenticated request's samples); 100 ms leaves no trace in the
/// profile and holds SPEC 16's memory bounds.
pub const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// `mi_option_purge_delay` in mimalloc 3's list of options (`options.c`); the crate's bindings
/// do not name it. A test checks that this number is the option whose default is 1,000 ms.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Applies [`PURGE_DELAY_MS`], unless the operator set mimalloc's own knob
/// (`MIMALLOC_PURGE_DELAY`), which then wins.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets a number in mimalloc's table of options; it is read when pages are purged.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout};

    fn resident_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    /// Allocates `n` blocks of `size` bytes from mimalloc, each written, and frees them all;
    /// returns the resident bytes while they were held and after.
    fn burst(n: usize, size: usize) -> (usize, usize) {
        let layout = Layout::from_size_align(size, 8).unwrap();
        let blocks: Vec<*mut u8> = (0..n)
            .map(|i| {
                // SAFETY: a non-zero size; each block is written within its size and freed
                // once, with its layout, below.
                unsafe {
                    let p = ALLOCATOR.alloc(layout);
                    assert!(!p.is_null());
                    p.write_bytes(i as u8, size);
                    p
                }
            })
            .collect();
        let held = resident_bytes();
        for p in blocks {
            // SAFETY: allocated above with this layout, freed once.
            unsafe { ALLOCATOR.dealloc(p, layout) };
        }
        (held, resident_bytes())
    }

    /// Each test runs in its own process (nextest), so the option starts at its default here.
    #[test]
    fn the_option_set_is_purge_delay() {
        // SAFETY: reads and sets numbers in mimalloc's table of options.
        let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            default, 1000,
            "option {MI_OPTION_PURGE_DELAY} is not purge_delay"
        );
        tune();
        let now = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(now, PURGE_DELAY_MS);
    }

    /// What the delay bounds: once it has passed (here it is 0, so at once), a thread's
    /// collection hands its free pages back to the kernel and the resident set shrinks; with
    /// this build's settings a purge is a real decommit, not a hint the kernel may ignore.
    #[test]
    fn free_pages_leave_the_resident_set_once_the_delay_has_passed() {
        // SAFETY: sets a number in mimalloc's table of options.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
        let (held, freed) = burst(16_384, 4000);
        // SAFETY: collects this thread's free pages whose delay has passed.
        unsafe { libmimalloc_sys::mi_collect(false) };
        let after = resident_bytes();
        assert!(
            held.saturating_sub(after) > 48 << 20,
            "resident {held} -> {freed} when freed -> {after} bytes collected: the freed \
             burst stayed"
        );
    }
}
