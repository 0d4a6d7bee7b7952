//! The daemon's C allocator (glibc only).
//!
//! glibc gives every thread that allocates while another holds the main
//! heap's lock an arena of its own, up to eight per core. Each arena keeps
//! its freed pages resident (its trim threshold is per arena), so a daemon
//! whose worker threads, event loop and short-lived helper threads each
//! allocated once carries several hundred KiB per arena for nothing: a
//! supervisor allocates little, and rarely at once from two threads.
//! musl, macOS and Windows have no such arenas; there this does nothing.

/// Arenas the daemon's threads share.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 1;

/// Limits the daemon to [`ARENAS`] malloc arenas. Called before the
/// runtime starts any thread: arenas made before it stay.
pub(crate) fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt with an integer parameter, before other threads run.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// How long after a burst of work (the start of every service, a reload)
/// [`trim_after_burst`] waits: the instances' starts it set off run in
/// that time (100 services start in about 160 ms), and their transient
/// allocations are freed by then.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Gives the pages malloc keeps free back to the system, once the work
/// that was just asked for has settled.
///
/// Why: glibc returns memory only from the top of its heap. A start of a
/// hundred services frees most of what it allocated (config parsing,
/// spawn buffers, first reads) in between blocks that stay, and those
/// free pages stay resident for the daemon's life: 0.7 MiB of a 3.4 MiB
/// heap with 100 services. `malloc_trim` releases every free page, not
/// only the top; it walks one arena ([`ARENAS`]) of a few MiB, well under
/// a millisecond, once per burst. Elsewhere this does nothing.
pub(crate) fn trim_after_burst() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async {
            tokio::time::sleep(SETTLE).await;
            // SAFETY: malloc_trim takes the arena locks itself; any thread
            // may call it at any time.
            unsafe {
                libc::malloc_trim(0);
            }
        });
    }
}
