//! The few OS effects the supervisor owns itself, behind one seam; the
//! rest of the crate stays platform-neutral. Process effects (groups,
//! leftovers) belong to the `corral` library, not here.

#[cfg(windows)]
pub(crate) mod cancel_read;
#[cfg(unix)]
pub(crate) mod euid;
#[cfg(windows)]
pub(crate) mod eventlog;
#[cfg(target_os = "linux")]
pub(crate) mod fd_pass;
#[cfg(target_os = "linux")]
pub(crate) mod folder_watch;
#[cfg(windows)]
pub(crate) mod holder_windows;
#[cfg(unix)]
pub(crate) mod listen_unix;
pub(crate) mod malloc;
pub(crate) mod nofile;
#[cfg(target_os = "linux")]
pub(crate) mod notify_socket;
pub(crate) mod pipe_size;
pub(crate) mod proc_usage;
pub(crate) mod read_config;
pub(crate) mod safe_fs;
pub(crate) mod signal;
#[cfg(target_os = "linux")]
pub(crate) mod take_fd;
