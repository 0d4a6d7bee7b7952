//! Ending every capture at a clean point before the daemon re-executes
//! itself (`corral daemon restart`): each capture stops between two reads,
//! once what it read is on disk, and leaves the rest in the pipe for the
//! next image (which gets the read ends back from the log holder).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Shared by every capture of one daemon.
pub(crate) struct Handover {
    stop: watch::Sender<bool>,
    active: Arc<AtomicUsize>,
}

impl Default for Handover {
    fn default() -> Self {
        Handover { stop: watch::Sender::new(false), active: Arc::new(AtomicUsize::new(0)) }
    }
}

/// A running capture; counted until dropped.
pub(crate) struct Active {
    active: Arc<AtomicUsize>,
    pub stop: watch::Receiver<bool>,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Handover {
    /// A capture starts.
    pub fn begin(&self) -> Active {
        self.active.fetch_add(1, Ordering::SeqCst);
        Active { active: self.active.clone(), stop: self.stop.subscribe() }
    }

    /// Asks every capture to stop, and waits (at most `limit`) until none
    /// runs. False if some still did.
    #[cfg_attr(target_os = "macos", allow(dead_code))] // a re-exec is Linux and Windows only
    pub async fn stop_all(&self, limit: Duration) -> bool {
        self.stop.send_replace(true);
        let end = corral::deadline::after(Instant::now(), limit);
        while self.active.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

/// How long the last read of a stopping capture may take on Windows: a
/// cancelled read returns at once; this bounds a host that does not cancel.
#[cfg(windows)]
const LAST_READ: Duration = Duration::from_millis(200);

/// Windows: the last read of a stopping capture. tokio reads a child's
/// pipe in a thread of its own, so a read is in flight whenever the
/// capture waits, and it would take the next chunk after the stop (lost
/// with this image). It is cancelled (`CancelIoEx`), and whatever it had
/// already taken is returned; anything later stays in the pipe for the
/// next daemon.
#[cfg(windows)]
pub(crate) async fn last_read<R>(r: &mut Option<R>, buf: &mut [u8]) -> Option<usize>
where
    R: tokio::io::AsyncRead + Unpin + std::os::windows::io::AsRawHandle,
{
    use tokio::io::AsyncReadExt;
    let r = r.as_mut()?;
    // Twice: a stream with no read in flight starts one here, which the
    // second cancel ends.
    for _ in 0..2 {
        crate::sys::cancel_read::cancel(&*r);
        match tokio::time::timeout(LAST_READ, r.read(buf)).await {
            Ok(Ok(n)) if n > 0 => return Some(n),
            Ok(_) => return None,
            Err(_) => continue,
        }
    }
    None
}

/// Resolves once a stop was asked for.
pub(crate) async fn asked(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        // The hub is gone: never resolve, the capture ends with its pipes.
        std::future::pending::<()>().await;
    }
}
