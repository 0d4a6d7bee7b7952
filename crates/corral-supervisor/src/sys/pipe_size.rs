//! A pipe's capacity (Linux `F_SETPIPE_SZ`). A default pipe holds 64 KiB,
//! so a service that floods its output wakes the daemon once per 64 KiB
//! and blocks in `write` in between; a bigger pipe lets it run ahead and
//! the daemon read in fewer, larger steps.
//!
//! Traps: the kernel charges a pipe's capacity to the user who made it
//! (`fs.pipe-user-pages-soft`, 64 MiB by default), and once that user is
//! over the soft limit every new pipe it makes holds one page; a user
//! without `CAP_SYS_RESOURCE` may not go past `fs.pipe-max-size` (1 MiB).
//! The caller keeps its own total well below both (`logs::read_buf`).

/// Asks `pipe` to hold `bytes`; the capacity the kernel gave, which may be
/// more (it rounds up to a power of two pages).
#[cfg(target_os = "linux")]
pub(crate) fn set(pipe: impl std::os::fd::AsFd, bytes: usize) -> std::io::Result<usize> {
    Ok(rustix::pipe::fcntl_setpipe_size(pipe, bytes)?)
}

/// Elsewhere a pipe's capacity is the system's.
#[cfg(not(target_os = "linux"))]
pub(crate) fn set<P>(_pipe: P, _bytes: usize) -> std::io::Result<usize> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn a_pipe_grows_to_1_mib() {
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert_eq!(rustix::pipe::fcntl_getpipe_size(&r).unwrap(), 64 * 1024);
        assert_eq!(super::set(&r, 1 << 20).unwrap(), 1 << 20);
        assert_eq!(rustix::pipe::fcntl_getpipe_size(&r).unwrap(), 1 << 20);
    }
}
