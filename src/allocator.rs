//! One setting of glibc's allocator, chosen by measurement (bench/README.md, "The engine").
//!
//! glibc hands the free top of a thread's heap back to the kernel (`madvise(MADV_DONTNEED)`) as
//! soon as it passes 128 KiB. A proxied response of 100 KB allocates and frees body buffers of
//! about that size on every request, so the same pages were given back and faulted in again,
//! zeroed, per request: on the benchmark's 100 KB rows ~14 µs of page faults per request and
//! about a third of the throughput. Keeping up to [`TRIM_THRESHOLD`] free at the top of each
//! heap ends that churn; what a burst leaves beyond it is still returned. 1 MiB did as well as
//! 4 MiB on those rows; the full benchmark run with 4 MiB measured 152 MiB at 10,000
//! connections (134 MiB the run before), over SPEC 16's 150, so the smaller bound is kept.

/// Free bytes a heap keeps before glibc returns its top to the kernel.
pub const TRIM_THRESHOLD: usize = 1 << 20;

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
