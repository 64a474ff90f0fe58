//! One process-wide allocator setting for programs that move megabyte frames: the broker,
//! the benchmark and the CLI call [`keep_freed_memory`] first thing in `main`.

/// Makes malloc keep freed memory in the process instead of giving it back to the kernel.
///
/// By default glibc serves each ~1 MiB buffer (a request frame, a fetch buffer, a producer
/// batch) from a fresh mapping, or trims the freed heap top, and the next one faults its
/// pages in again: ~45 000 page faults in a 5-second broker produce run, at ~15 µs each on a
/// VM whose freed pages go back to the host; the benchmark's producer spent ~10 % more CPU
/// per byte without it. With mmap only above 32 MiB (glibc's largest dynamic threshold) and
/// trimming only above 256 MiB free at the heap top, the same broker run faults ~7 000
/// times. The cost is that RSS stays at its high-water mark, which the programs' own
/// buffer bounds limit. Call it before other threads start; elsewhere than glibc it does
/// nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD_BYTES: libc::c_int = 32 * 1024 * 1024;
        const TRIM_THRESHOLD_BYTES: libc::c_int = 256 * 1024 * 1024;
        // SAFETY: mallopt only sets allocator parameters (documented as callable at any
        // time; called before other threads exist). A refusal (returns 0) leaves glibc's
        // defaults, which are correct too.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
        }
    }
}
