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
