//! `watch = { paths, ignore, debounce, action }`: restart (or signal) a
//! service when files it depends on change, once per burst of changes.
//!
//! One `notify` watcher per started service (inotify, kqueue,
//! ReadDirectoryChangesW), filtered on notify's own thread: an event
//! whose path matches an `ignore` glob (`globset`), or lies in the
//! daemon's own state or log folder (the service's logs would otherwise
//! restart it forever), is dropped there. What passes goes through a
//! channel of at most [`MAX_BUFFERED`] events; when it is full the rest of
//! the burst is only counted, since one action covers the whole burst
//! anyway. A burst ends once no event came for `debounce`, or after
//! [`MAX_BURST_DEBOUNCES`] debounces at most, so a file rewritten without
//! pause still restarts the service now and then rather than never.

use crate::event::{Event, EventKind};
use crate::supervisor::WeakSupervisor;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Events held between the watcher's thread and the service's task.
pub const MAX_BUFFERED: usize = 1024;
/// The longest burst, in debounces.
pub const MAX_BURST_DEBOUNCES: u32 = 20;

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchAction {
    /// Stop and start each instance gracefully, one after the other.
    Restart,
    /// Send this signal to every member of each instance's group (a
    /// program that reloads on SIGHUP).
    Signal(corral::Signal),
    /// The service's own reload (`reload_signal` or `reload`), as
    /// `corral reload-service` does.
    Reload,
}

/// A service's `watch`.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSpec {
    /// Absolute files or folders (folders are watched recursively).
    pub paths: Vec<PathBuf>,
    /// Globs of paths to leave alone, matched against the path relative
    /// to the config's folder, to the watched folder, and the file name.
    pub ignore: Vec<String>,
    /// The quiet time that ends a burst.
    pub debounce: Duration,
    /// What a burst does.
    pub action: WatchAction,
    /// The config's folder, for `ignore`.
    pub base: PathBuf,
}

impl WatchSpec {
    /// Most `paths` and most `ignore` globs.
    pub const MAX_PATHS: usize = 64;
    /// `debounce` accepted.
    pub const DEBOUNCE_RANGE: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(3600));
    /// `debounce` when not given.
    pub const DEBOUNCE_DEFAULT: Duration = Duration::from_millis(300);

    /// The `ignore` globs as one matcher (each was checked at load).
    fn ignore_set(&self) -> globset::GlobSet {
        let mut b = globset::GlobSetBuilder::new();
        for g in &self.ignore {
            if let Ok(g) = globset::Glob::new(g) {
                b.add(g);
            }
        }
        b.build().unwrap_or_else(|_| globset::GlobSet::empty())
    }
}

/// Whether a changed path is left alone: under one of `skip` (the
/// daemon's own folders), or matching an ignore glob seen from the
/// config's folder, from a watched folder, or by its name alone.
pub(crate) fn ignored(
    path: &Path,
    spec_base: &Path,
    roots: &[PathBuf],
    set: &globset::GlobSet,
    skip: &[PathBuf],
) -> bool {
    if skip.iter().any(|s| path.starts_with(s)) {
        return true;
    }
    let mut views: Vec<&Path> = vec![path];
    views.extend(path.strip_prefix(spec_base).ok());
    views.extend(roots.iter().filter_map(|r| path.strip_prefix(r).ok()));
    views.extend(path.file_name().map(Path::new));
    views.iter().any(|v| !v.as_os_str().is_empty() && set.is_match(v))
}

/// Starts watching for `spec` of service `name`; `None` where no watcher
/// can be set up (said on stderr: the service runs, unwatched).
pub(crate) fn arm(
    sup: WeakSupervisor,
    name: String,
    spec: WatchSpec,
    skip: Vec<PathBuf>,
    token: u64,
) -> Option<tokio::task::JoinHandle<()>> {
    let (tx, rx) = mpsc::channel::<PathBuf>(MAX_BUFFERED);
    let set = spec.ignore_set();
    let (base, roots) = (spec.base.clone(), spec.paths.clone());
    let handler = move |ev: notify::Result<notify::Event>| {
        let Ok(ev) = ev else {
            // An overflowed kernel queue may hide a change: act on it.
            let _ = tx.try_send(PathBuf::new());
            return;
        };
        if matches!(ev.kind, notify::EventKind::Access(_)) {
            return;
        }
        for p in ev.paths {
            if !ignored(&p, &base, &roots, &set, &skip) {
                // A full channel already holds a burst; one action covers it.
                let _ = tx.try_send(p);
            }
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("corral: {name}: cannot watch files ({e}); it runs without `watch`");
            return None;
        }
    };
    use notify::Watcher;
    for p in &spec.paths {
        if let Err(e) = watcher.watch(p, notify::RecursiveMode::Recursive) {
            eprintln!("corral: {name}: cannot watch {} ({e})", p.display());
        }
    }
    Some(tokio::spawn(run(sup, name, spec, rx, watcher, token)))
}

async fn run(
    sup: WeakSupervisor,
    name: String,
    spec: WatchSpec,
    mut rx: mpsc::Receiver<PathBuf>,
    _watcher: notify::RecommendedWatcher,
    token: u64,
) {
    while let Some(first) = rx.recv().await {
        let burst_end = tokio::time::Instant::now() + spec.debounce * MAX_BURST_DEBOUNCES;
        let mut changed = 1u64;
        loop {
            tokio::select! {
                more = rx.recv() => match more {
                    Some(_) => changed += 1,
                    None => return,
                },
                _ = tokio::time::sleep(spec.debounce) => break,
                _ = tokio::time::sleep_until(burst_end) => break,
            }
        }
        let Some(strong) = sup.upgrade() else { return };
        let what = if first.as_os_str().is_empty() { "files".to_string() } else { first.display().to_string() };
        let act = match spec.action {
            WatchAction::Restart => "restarting".to_string(),
            WatchAction::Signal(s) => format!("sending {s}"),
            WatchAction::Reload => "reloading".to_string(),
        };
        let mut e = Event::daemon(format!("watch: {what} changed ({changed} event(s)); {act}"));
        e.service = name.clone();
        e.kind = EventKind::Watch;
        strong.emit(e);
        match spec.action {
            WatchAction::Restart => {
                drop(strong);
                crate::schedule::restart_slots(&sup, &name, token).await;
            }
            WatchAction::Signal(sig) => strong.signal_groups(&name, sig, token),
            WatchAction::Reload => {
                if let Err(e) = strong.reload_service(&name).await {
                    eprintln!("corral: {name}: the reload asked by `watch` failed: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(globs: &[&str]) -> globset::GlobSet {
        let mut b = globset::GlobSetBuilder::new();
        for g in globs {
            b.add(globset::Glob::new(g).unwrap());
        }
        b.build().unwrap()
    }

    #[test]
    fn ignore_globs_match_by_name_or_below_the_config_or_a_watched_folder() {
        let base = Path::new("/app");
        let roots = [PathBuf::from("/app/src")];
        let s = set(&["*.log", "target/**", "gen/*.rs"]);
        let skip = [PathBuf::from("/app/.corral")];
        assert!(ignored(Path::new("/app/src/deep/x.log"), base, &roots, &s, &skip));
        assert!(ignored(Path::new("/app/target/debug/a"), base, &roots, &s, &skip));
        assert!(ignored(Path::new("/app/src/gen/a.rs"), base, &roots, &s, &skip));
        assert!(ignored(Path::new("/app/.corral/logs/web/0.log"), base, &roots, &s, &skip));
        assert!(!ignored(Path::new("/app/src/main.rs"), base, &roots, &s, &skip));
        assert!(!ignored(Path::new("/app/config.yml"), base, &roots, &s, &skip));
    }
}
