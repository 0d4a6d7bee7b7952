//! corral as a child subreaper: orphans of a group are re-parented to this
//! process instead of to PID 1, so corral can find them and reap them.
//!
//! PID 1 on many hosts (containers, CI VMs) reaps orphans late or never;
//! left alone, the zombies of killed trees pile up against `pid_max`. So
//! "gone" means "reaped", and corral does the reaping.
//!
//! Only zombies that can be attributed to one of this process's groups are
//! reaped (by cgroup path, process group, or a pid seen as a member), so a
//! library user's own children keep their exit statuses. A program that owns
//! its process can widen this with `reap_all_orphans(true)`.
//!
//! Leaders are reaped by their own group's monitor. The spawn lock keeps the
//! sweep from reaping a leader that has exited before it was registered
//! (and std's own `waitpid` after a failed `exec`).
//!
//! The background thread does not poll: it blocks in `waitid(WNOWAIT)` until
//! some child is a zombie, so an idle process with many children is never
//! woken for it. A zombie it must leave alone (a leader, whose monitor reaps
//! it, or a child no group claims) would wake it again at once, so after one
//! it waits `SWEEP_EVERY` before looking again: while zombies last it sweeps
//! as often as it used to, and it never spins.
//!
//! It also waits `SETTLE` between a zombie's wake and the sweep: orphans
//! die in bursts (a tree killed at once), and a sweep reads the stat of
//! every child. Sweeping at the first death raced the rest of the burst
//! for the CPU, one pass per few deaths (eight passes during a kill of a
//! tree of 100 on two cores); after the wait, one pass reaps the burst.
//! Nothing waits for this thread: a group's teardown reaps its own.

use super::procfs;
use crate::sys::unix::{try_reap, Rusage};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard};
use std::time::Duration;

/// How long the background sweep waits before looking again after a zombie
/// it could not reap, or when this process has no child to wait for.
/// Teardown does not wait for it: it sweeps its own group directly.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// How long the sweep lets a burst of deaths finish before it reads the
/// children: longer than a kill of a tree of a hundred takes on a 2-core
/// host (7–8 ms), about what one of a thousand takes (65–110 ms). A
/// longer burst is swept once per `SETTLE` while it lasts.
const SETTLE: Duration = Duration::from_millis(100);

/// What a group registers so that its orphans can be told apart.
#[derive(Debug, Default)]
pub(crate) struct Owner {
    /// The cgroup leaf name (the group id), if the group is in a cgroup.
    pub cgroup_leaf: Option<String>,
    /// The process group of the leader.
    pub pgid: u32,
    /// pid -> start time, of processes seen as members.
    pub known: Mutex<HashMap<u32, u64>>,
    /// What reaped members used (for backends without group accounting).
    pub reaped: Mutex<Rusage>,
    /// The clock tick (`/proc`'s start time unit) before the leader was
    /// started; 0 for a group that took over running processes. No member
    /// started before it, so a child of this process that did (the
    /// program's own, another group's) is told apart from its stat alone,
    /// without reading its cgroups.
    pub since: u64,
}

impl Owner {
    fn claims(&self, pid: u32, stat: &procfs::Stat, cgroups: impl FnOnce() -> Vec<String>) -> bool {
        if stat.starttime < self.since {
            return false;
        }
        if self.pgid != 0 && stat.pgid == self.pgid {
            return true;
        }
        // By pid and start time: with pid_max at 32768 a pid comes round
        // again within minutes of spawning, and a pid alone would hand
        // another group's zombie (its usage too), or a library user's own
        // child, to this group.
        if self.known.lock().is_ok_and(|k| k.get(&pid) == Some(&stat.starttime)) {
            return true;
        }
        // Last, as it costs a read: where the process is (a v1 zombie
        // shows the root, which no leaf matches).
        self.cgroup_leaf
            .as_ref()
            .is_some_and(|leaf| cgroups().iter().any(|cg| cg.rsplit('/').next() == Some(leaf.as_str())))
    }
}

struct Reaper {
    spawn_lock: RwLock<()>,
    leaders: Mutex<HashSet<u32>>,
    owners: Mutex<Vec<Arc<Owner>>>,
}

static REAPER: OnceLock<Reaper> = OnceLock::new();
static REAP_ALL: AtomicBool = AtomicBool::new(false);

pub(crate) fn set_reap_all(yes: bool) {
    REAP_ALL.store(yes, Ordering::Relaxed);
}

/// Makes this process a child subreaper and starts the sweep, once.
fn reaper() -> &'static Reaper {
    REAPER.get_or_init(|| {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let _ = std::thread::Builder::new().name("corral-reaper".into()).spawn(watch);
        Reaper { spawn_lock: RwLock::new(()), leaders: Mutex::new(HashSet::new()), owners: Mutex::new(Vec::new()) }
    })
}

/// The background thread: sweeps each time a child becomes a zombie.
fn watch() {
    loop {
        let rest = match next_zombie_child() {
            // Its own monitor reaps a leader (the sweep would skip it): give
            // it the time, then sweep for members that died with it.
            Ok(pid) if is_leader(pid) => {
                std::thread::sleep(SWEEP_EVERY);
                sweep(None);
                false
            }
            // Nothing reaped: the zombie is nobody's (or was reaped meanwhile).
            Ok(_) => {
                std::thread::sleep(SETTLE);
                sweep(None) == 0
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => false,
            // ECHILD (no child to wait for) or an unexpected failure.
            Err(_) => true,
        };
        if rest {
            std::thread::sleep(SWEEP_EVERY);
        }
    }
}

/// Blocks until some child of ours is a zombie and returns its pid,
/// leaving it unreaped.
fn next_zombie_child() -> std::io::Result<u32> {
    peek_child(libc::WEXITED | libc::WNOWAIT)
}

/// `waitid(P_ALL, …)` that reaps nothing (callers pass `WNOWAIT`): the
/// pid of a child that has exited, 0 for none yet (with `WNOHANG`).
fn peek_child(options: libc::c_int) -> std::io::Result<u32> {
    // SAFETY: zeroed siginfo is a valid out-parameter.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: info is valid for writes.
    if unsafe { libc::waitid(libc::P_ALL, 0, &mut info, options) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: si_pid is valid to read after waitid filled the struct.
    Ok(unsafe { info.si_pid() } as u32)
}

fn is_leader(pid: u32) -> bool {
    reaper().leaders.lock().unwrap_or_else(|p| p.into_inner()).contains(&pid)
}

/// Whether this process is a subreaper (for `doctor`).
/// True in reap-all mode (the process owns every child it has).
pub(crate) fn reaping_all() -> bool {
    REAP_ALL.load(Ordering::Relaxed)
}

pub(crate) fn is_subreaper() -> bool {
    let mut v: libc::c_int = 0;
    // SAFETY: v is valid for writes.
    unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut v as *mut libc::c_int, 0, 0, 0) };
    v != 0
}

/// Held while a leader is spawned and registered.
pub(crate) fn spawning() -> RwLockReadGuard<'static, ()> {
    reaper().spawn_lock.read().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn register(leader: u32, owner: Arc<Owner>) {
    let r = reaper();
    r.leaders.lock().unwrap_or_else(|p| p.into_inner()).insert(leader);
    r.owners.lock().unwrap_or_else(|p| p.into_inner()).push(owner);
}

pub(crate) fn unregister(leader: u32, owner: &Arc<Owner>) {
    let r = reaper();
    r.leaders.lock().unwrap_or_else(|p| p.into_inner()).remove(&leader);
    r.owners.lock().unwrap_or_else(|p| p.into_inner()).retain(|o| !Arc::ptr_eq(o, owner));
}

pub(crate) fn ensure() {
    reaper();
}

/// True if some child of ours is a zombie, without reaping it.
fn has_zombie_child() -> bool {
    peek_child(libc::WEXITED | libc::WNOHANG | libc::WNOWAIT).is_ok_and(|pid| pid != 0)
}

/// True if this process has any child at all, running or a zombie,
/// whatever its exit signal (`__WALL`).
pub(crate) fn has_children() -> bool {
    // ECHILD is the only answer that means "none"; any other failure is
    // read as "maybe", which sends the caller the slow way.
    let r = peek_child(libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL);
    !r.is_err_and(|e| e.raw_os_error() == Some(libc::ECHILD))
}

/// Reaps the zombie children that can be attributed: to `only` if given,
/// else to any group (or to none, in reap-all mode). Returns how many.
pub(crate) fn sweep(only: Option<&Arc<Owner>>) -> usize {
    // Only zombies are reaped, and one `waitid` says whether there is any:
    // cheaper than listing the children (a daemon's services are its
    // children: each exec probe's teardown listed them all).
    if !has_zombie_child() {
        return 0;
    }
    let r = reaper();
    let _no_spawns = r.spawn_lock.write().unwrap_or_else(|p| p.into_inner());
    let leaders = r.leaders.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let owners = r.owners.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut n = 0;
    for pid in procfs::own_children() {
        if leaders.contains(&pid) {
            continue;
        }
        let Some(stat) = procfs::stat(pid) else { continue };
        if !stat.is_zombie() {
            continue;
        }
        // Read once, and only if some owner gets that far.
        let cgroups = std::cell::OnceCell::new();
        let owner =
            owners.iter().find(|o| o.claims(pid, &stat, || cgroups.get_or_init(|| procfs::cgroup_paths(pid)).clone()));
        let take = match (only, owner) {
            (Some(want), Some(o)) => Arc::ptr_eq(want, o),
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => REAP_ALL.load(Ordering::Relaxed),
        };
        if !take {
            continue;
        }
        if let Ok(Some((_, ru))) = try_reap(pid) {
            n += 1;
            if let Some(o) = owner {
                o.reaped.lock().unwrap_or_else(|p| p.into_inner()).add(&ru);
            }
        }
    }
    n
}

/// The children of this process that `owner` claims, zombies or not,
/// other groups' leaders aside. Once a group's cgroup is empty, these are
/// all that can be left of it: a member's orphans come to this subreaper,
/// and a member no longer in its cgroup is still exiting. Reads this
/// process's children only, not the host's process table.
///
/// `orphans_only`: the group's leader is reaped, so what is left of it
/// can only be orphans re-parented here, which the kernel gives to one
/// thread ([`procfs::orphans_of_this_process`]); the children of the
/// other threads (other groups' leaders, the program's own children) are
/// not read.
pub(crate) fn unreaped_children(owner: &Owner, orphans_only: bool) -> Vec<u32> {
    let children = match orphans_only {
        true => procfs::orphans_of_this_process().unwrap_or_else(procfs::own_children),
        false => procfs::own_children(),
    };
    let leaders = reaper().leaders.lock().unwrap_or_else(|p| p.into_inner()).clone();
    children
        .into_iter()
        .filter(|pid| *pid == owner.pgid || !leaders.contains(pid))
        .filter(|&pid| procfs::stat(pid).is_some_and(|st| owner.claims(pid, &st, || procfs::cgroup_paths(pid))))
        .collect()
}

/// In reap-all mode, also reaps zombies no group claims (teardown calls
/// this so the process can exit without leaving them to PID 1).
pub(crate) fn sweep_unattributed_if_reaping_all() {
    if REAP_ALL.load(Ordering::Relaxed) {
        sweep(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(pid: u32, pgid: u32, starttime: u64) -> procfs::Stat {
        procfs::Stat { pid, state: b'Z', ppid: 1, pgid, sid: 1, utime: 0, stime: 0, starttime }
    }

    #[test]
    fn a_known_pid_is_claimed_only_with_its_start_time() {
        let o = Owner { pgid: 500, known: Mutex::new(HashMap::from([(700, 42)])), ..Owner::default() };
        let none = Vec::new;
        assert!(o.claims(700, &stat(700, 1, 42), none), "the member it saw");
        assert!(!o.claims(700, &stat(700, 1, 43), none), "another process that got the pid since");
        assert!(o.claims(701, &stat(701, 500, 9), none), "its process group");
        assert!(!o.claims(702, &stat(702, 1, 9), || vec!["/memory/other".into()]), "nothing of it");
        let leaf = Owner { cgroup_leaf: Some("12-3".into()), ..Owner::default() };
        assert!(leaf.claims(703, &stat(703, 1, 9), || vec!["/corral/12-3".into()]));
        assert!(!leaf.claims(703, &stat(703, 1, 9), || vec!["/corral/12-30".into()]));
    }

    #[test]
    fn a_process_older_than_the_group_is_never_its_member() {
        let o = Owner { pgid: 500, cgroup_leaf: Some("12-3".into()), since: 1000, ..Owner::default() };
        let read = std::cell::Cell::new(false);
        let cgroups = || {
            read.set(true);
            vec!["/corral/12-3".into()]
        };
        assert!(!o.claims(701, &stat(701, 500, 999), cgroups), "started before the leader");
        assert!(!read.get(), "told from its stat alone");
        assert!(o.claims(701, &stat(701, 500, 1000), Vec::new), "started in the tick of the spawn");
        assert!(o.claims(702, &stat(702, 1, 1001), cgroups), "an escapee of the process group, in the leaf");
        assert!(read.get());
    }
}
