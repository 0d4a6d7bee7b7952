//! One folder watched for changes on the runtime's own event loop (Linux:
//! an inotify fd under tokio's `AsyncFd`), where the `notify` crate runs a
//! thread of its own for every watcher. The config watcher (`watch.rs`)
//! is on in every daemon, so that thread was one of every daemon's few.
//!
//! Traps: inotify watches the folder's inode, so a folder renamed or
//! removed stops reporting (`IN_IGNORED`); the caller's slow safety poll
//! covers that, as it covers `notify`'s own gaps. A full event queue
//! (`IN_Q_OVERFLOW`) may have hidden a change: it is reported as one.

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use std::ffi::OsStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Bytes read at once: room for dozens of events with their names.
const BUF: usize = 4096;

/// What changes a folder's entries or a file's content. A file's content
/// counts once its writer closes it (`CLOSE_WRITE`), not at each write
/// (`MODIFY`): a service's log or any busy file beside the config woke
/// the daemon for every line written to it, and a config still being
/// written was read half-done. A writer that keeps the file open is left
/// to the caller's safety poll.
fn interesting() -> WatchFlags {
    WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::ATTRIB
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
}

/// An inotify watch on one folder (not below it).
pub(crate) struct FolderWatch {
    fd: AsyncFd<OwnedFd>,
    buf: Box<[MaybeUninit<u8>]>,
}

impl FolderWatch {
    /// Watches `folder`; must be called inside the runtime.
    pub(crate) fn new(folder: &Path) -> io::Result<FolderWatch> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        inotify::add_watch(&fd, folder, interesting() | WatchFlags::ONLYDIR)?;
        // SAFETY: `fd` is an inotify fd this watch owns; it is neither
        // replaced nor closed while the `AsyncFd` holds it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(FolderWatch { fd, buf: vec![MaybeUninit::uninit(); BUF].into_boxed_slice() })
    }

    /// Waits for events and returns once one names `name` (any entry,
    /// when `None`), or may have been lost. An error means the watch no
    /// longer works.
    pub(crate) async fn changed(&mut self, name: Option<&OsStr>) -> io::Result<()> {
        loop {
            let mut ready = self.fd.readable().await?;
            let mut reader = inotify::Reader::new(ready.get_inner(), &mut self.buf[..]);
            let mut hit = false;
            loop {
                match reader.next() {
                    Ok(e) => {
                        let flags = e.events();
                        let named = match (name, e.file_name()) {
                            (None, _) => true,
                            (Some(want), Some(got)) => OsStr::from_bytes(got.to_bytes()) == want,
                            (Some(_), None) => false,
                        };
                        hit |= named || flags.intersects(ReadFlags::QUEUE_OVERFLOW | ReadFlags::IGNORED);
                    }
                    Err(rustix::io::Errno::AGAIN) => {
                        ready.clear_ready();
                        break;
                    }
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            if hit {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    #[tokio::test]
    async fn a_file_written_beside_is_news_when_closed_not_at_each_write() {
        let dir = tempfile::tempdir().unwrap();
        // Opened before the watch: its creation is no news of it.
        let mut busy = std::fs::File::create(dir.path().join("app.log")).unwrap();
        let mut w = FolderWatch::new(dir.path()).unwrap();
        for i in 0..200 {
            writeln!(busy, "line {i}").unwrap();
        }
        let quiet = tokio::time::timeout(Duration::from_millis(300), w.changed(None)).await;
        assert!(quiet.is_err(), "200 writes to an open file woke the watch");
        drop(busy);
        let closed = tokio::time::timeout(Duration::from_secs(5), w.changed(None)).await;
        assert!(matches!(closed, Ok(Ok(()))), "closing the written file is news: {closed:?}");
        // A config written whole (the usual edit) is news too.
        std::fs::write(dir.path().join("corral.toml"), "[services]\n").unwrap();
        let named = tokio::time::timeout(Duration::from_secs(5), w.changed(Some(OsStr::new("corral.toml")))).await;
        assert!(matches!(named, Ok(Ok(()))), "{named:?}");
    }
}
