//! Allocator settings for training.
//!
//! Every training step allocates the same large activation and gradient buffers (tens of MB
//! each) and frees them again. glibc's default serves such sizes with fresh `mmap`s and returns
//! them on free, so every step pays for the kernel zeroing those pages again: a profile of
//! DenseNet-40-12 showed ~19 % of the time in `clear_page`. Keeping freed memory in the heap lets
//! the next step reuse it (see BENCHMARKS.md for the measured effect).

/// Make glibc keep freed memory for reuse: no `mmap` for large blocks, no trimming, one arena
/// (worker threads then share one pool instead of each holding its own). A no-op elsewhere.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before the worker threads
    // start allocating, and the values are in the documented ranges.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
