//! Reload when the config file changes (`[daemon] watch_config`, on by
//! default).
//!
//! The folder that holds the file is watched for filesystem events
//! (inotify on the runtime's own event loop on Linux, see
//! `sys::folder_watch`; kqueue and ReadDirectoryChangesW through `notify`,
//! which runs a thread per watcher), so an idle daemon does not wake to
//! poll. The folder and not the file: editors save
//! by writing a new file and renaming it over the old one, which a watch on
//! the old inode would never see. Events are only a hint to look again:
//! what counts is the content. A change is applied once two reads
//! [`SETTLE`] apart agree, so a save in progress is never read half-written.
//! Content equal to what was last acted on is no change, so `touch` does
//! nothing; a config that does not load is refused (and said so) once.
//! Content that loads to the services in force is no change either: the
//! daemon started with it, or `corral reload` applied it first.
//!
//! With `include`, the folders its patterns search are watched too, and
//! the content compared is the main file with every included file (their
//! names and bytes): an edit there, or a file added to `conf.d/`, reloads.
//!
//! Some changes raise no event here: a network mount changed by another
//! host, or a symlinked config whose target is swapped elsewhere. A slow
//! poll ([`SAFETY_POLL`]) catches those; where no watcher can be set up at
//! all (inotify watches exhausted), the file is polled every [`POLL`]. A
//! poll reads the file once and settles only content that differs from
//! what was acted on: the poll is nearly all an idle daemon does, and a
//! save that starts just after its read raises an event or meets the next
//! poll.

use crate::supervisor::Supervisor;
use notify::Watcher;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the file is read when no watcher could be set up.
const POLL: Duration = Duration::from_millis(500);
/// How often the file is read anyway while a watcher runs.
const SAFETY_POLL: Duration = Duration::from_secs(10);
/// How long content must stay the same before it is taken.
const SETTLE: Duration = Duration::from_millis(150);
/// Reads before giving up on a file that keeps changing (the next event
/// or poll looks again).
const SETTLE_ROUNDS: u32 = 20;

/// Runs until aborted.
pub(crate) async fn config_file(sup: Supervisor) {
    // Only the paths are kept: a whole config held for the daemon's life
    // was a second copy of every service's spec (0.3 MiB for 100).
    let (path, folders) = {
        let config = sup.config();
        (config.path, config.included.folders)
    };
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let watcher = watch_folder(&path, tx.clone());
    // Dropped with the task; the folders of the includes in force at start
    // (a new pattern is seen by the safety poll, then by a restart).
    let _included: Vec<_> = folders.iter().filter_map(|(f, deep)| watch_any(f, *deep, tx.clone())).collect();
    let idle = if watcher.is_some() { SAFETY_POLL } else { POLL };
    // Nothing acted on yet: the first settled content is compared with the
    // config in force, so a save made while the daemon started counts.
    let mut applied: Option<Vec<u8>> = None;
    let mut event = true;
    loop {
        // At start and after an event, settle; after a poll, only if one
        // read is not the content last acted on.
        if event || read(&path).await != applied {
            if let Some(now) = settled(&path, &mut rx).await {
                if applied.as_ref() != Some(&now) {
                    applied = Some(now);
                    crate::daemon::reload(&sup, "the config file changed", true).await;
                }
            }
        }
        event = tokio::select! {
            _ = rx.recv() => true,
            _ = tokio::time::sleep(idle) => false,
        };
    }
}

/// The file's content once two reads [`SETTLE`] apart agree; `None` while
/// it is missing (mid-rename, or deleted: no new config) or keeps changing.
async fn settled(path: &Path, events: &mut mpsc::Receiver<()>) -> Option<Vec<u8>> {
    let mut last = read(path).await;
    for _ in 0..SETTLE_ROUNDS {
        tokio::time::sleep(SETTLE).await;
        // Events raised by the change being settled are part of it.
        while events.try_recv().is_ok() {}
        let now = read(path).await;
        if now == last {
            return now;
        }
        last = now;
    }
    None
}

/// The config loader's own bounded reads (regular files of at most 1 MiB,
/// the included ones too), off the runtime: a FIFO or a device put in the
/// config's place must neither block nor balloon the daemon.
async fn read(path: &Path) -> Option<Vec<u8>> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || crate::config::include::snapshot(&path)).await.ok().flatten()
}

/// A watch in force; dropping it ends it.
enum Watch {
    /// On the runtime's event loop (Linux, one folder deep).
    #[cfg(target_os = "linux")]
    Folder(tokio::task::JoinHandle<()>),
    /// On a thread of `notify`'s (other OSes, and `**` includes).
    #[allow(dead_code)] // held for its drop only
    Notify(notify::RecommendedWatcher),
}

impl Drop for Watch {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Watch::Folder(task) = self {
            task.abort();
        }
    }
}

/// Watches `folder` (not below it) on the runtime: a wake-up for every
/// event that names `name` (any entry: `None`). Ends when the watch fails.
#[cfg(target_os = "linux")]
fn watch_here(folder: &Path, name: Option<std::ffi::OsString>, wake: mpsc::Sender<()>) -> Option<Watch> {
    let mut w = crate::sys::folder_watch::FolderWatch::new(folder).ok()?;
    Some(Watch::Folder(tokio::spawn(async move {
        while w.changed(name.as_deref()).await.is_ok() {
            // A full channel already holds a wake-up; one is enough.
            let _ = wake.try_send(());
        }
    })))
}

/// Watches an include pattern's folder (and below it for a `**` pattern
/// only: a `*.toml` beside the config must not wake on every log line
/// written under `.corral/`): any event in it may be a change.
fn watch_any(folder: &Path, deep: bool, wake: mpsc::Sender<()>) -> Option<Watch> {
    #[cfg(target_os = "linux")]
    if !deep {
        return watch_here(folder, None, wake);
    }
    let mut watcher = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
        let _ = wake.try_send(());
    })
    .ok()?;
    let mode = if deep { notify::RecursiveMode::Recursive } else { notify::RecursiveMode::NonRecursive };
    watcher.watch(folder, mode).ok()?;
    Some(Watch::Notify(watcher))
}

/// Watches the folder of `path` and sends a wake-up for every event that
/// names the file. `None` where the OS gives no watcher.
fn watch_folder(path: &Path, wake: mpsc::Sender<()>) -> Option<Watch> {
    let name = path.file_name()?.to_owned();
    let folder: PathBuf = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    #[cfg(target_os = "linux")]
    {
        watch_here(&folder, Some(name), wake)
    }
    #[cfg(not(target_os = "linux"))]
    {
        notify_folder(&folder, name, wake)
    }
}

#[cfg(not(target_os = "linux"))]
fn notify_folder(folder: &Path, name: std::ffi::OsString, wake: mpsc::Sender<()>) -> Option<Watch> {
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        // An error (an overflowed queue) may hide a change: look again.
        let ours = ev.map(|e| e.paths.iter().any(|p| p.file_name() == Some(&name))).unwrap_or(true);
        if ours {
            // A full channel already holds a wake-up; one is enough.
            let _ = wake.try_send(());
        }
    })
    .ok()?;
    watcher.watch(folder, notify::RecursiveMode::NonRecursive).ok()?;
    Some(Watch::Notify(watcher))
}
