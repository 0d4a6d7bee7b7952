//! Groups left behind by a controller that died (SIGKILL, OOM, power cut)
//! outlive it in their cgroups. The next corral process that creates a
//! group finds them by name (`<controller pid>-<seq>`, controller gone),
//! kills what they hold, and removes them.

use super::cgroup_v1::CgroupV1;
use super::cgroup_v2::{read_pids, CgroupV2};
use super::hierarchy::Layout;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The controller pid encoded in a group directory name. A group meant to
/// outlive its controller (`…-outlive`) names none: it is its next
/// controller's to take back or reap, never a sweep's.
fn owner_pid(name: &str) -> Option<u32> {
    let (pid, seq) = name.split_once('-')?;
    seq.parse::<u64>().ok()?;
    pid.parse().ok()
}

fn stale_names(root: &Path) -> Vec<String> {
    let me = std::process::id();
    let Ok(rd) = fs::read_dir(root) else { return vec![] };
    rd.flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| matches!(owner_pid(n), Some(p) if p == me || !Path::new(&format!("/proc/{p}")).exists()))
        .collect()
}

/// Kills and removes every stale group under the layout's roots. Returns
/// the names reaped.
///
/// Runs once per process image, before its first group is made: a group
/// named after this very pid is then a previous image's (a daemon that
/// re-executed itself in place keeps its pid, and its pooled leaves and
/// groups outlive the exec), and its names would collide with this
/// image's, which count from 1 again.
pub(crate) fn sweep(layout: &Layout) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    if let Some(r) = &layout.v2_root {
        names.extend(stale_names(r));
    }
    for (_, r) in &layout.v1_roots {
        for n in stale_names(r) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    for name in &names {
        if let Some(r) = &layout.v2_root {
            let dir = r.join(name);
            if dir.exists() {
                let cg = CgroupV2::at(dir);
                let _ = if cg.has_kill() { cg.kill() } else { kill_listed(&cg.file("cgroup.procs")) };
                wait_empty(&cg.file("cgroup.procs"));
                let _ = cg.remove();
            }
        }
        let dirs: Vec<(String, PathBuf)> =
            layout.v1_roots.iter().map(|(c, r)| (c.clone(), r.join(name))).filter(|(_, d)| d.exists()).collect();
        if !dirs.is_empty() {
            let v1 = CgroupV1::adopt(dirs);
            let _ = v1.kill(|_| {});
            if let Some(d) = v1.dir("pids").or_else(|| v1.dir("freezer")) {
                wait_empty(&d.join("cgroup.procs"));
            }
            let _ = v1.remove_all();
        }
    }
    names
}

fn kill_listed(procs: &Path) -> std::io::Result<()> {
    for p in read_pids(procs)? {
        let _ = crate::sys::unix::kill(p, libc::SIGKILL);
    }
    Ok(())
}

fn wait_empty(procs: &Path) {
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        match read_pids(procs) {
            Ok(p) if !p.is_empty() => std::thread::sleep(Duration::from_millis(2)),
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_encode_the_controller() {
        assert_eq!(owner_pid("1234-7"), Some(1234));
        assert_eq!(owner_pid("corral-ctl"), None);
        assert_eq!(owner_pid("12-x"), None);
        assert_eq!(owner_pid("1234-7-outlive"), None, "a group meant to outlive its controller is never stale");
    }
}
