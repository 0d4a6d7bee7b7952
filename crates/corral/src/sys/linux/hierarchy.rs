//! Where the cgroup hierarchies are, and which subtree corral owns in each.
//!
//! Hosts come in three shapes: pure v2 (`/sys/fs/cgroup` is cgroup2), pure
//! v1, and hybrid (v1 controllers plus a controller-less cgroup2 mount,
//! usually at `/sys/fs/cgroup/unified`). This module only finds things; it
//! creates nothing.
//!
//! The subtree corral owns, in order: `CORRAL_CGROUP_ROOT` (one path; the
//! same relative path is used in every hierarchy), else `<own cgroup>/corral`
//! in each hierarchy. Running as root in the root cgroup, that is `/corral`.

use std::fs;
use std::path::{Path, PathBuf};

/// The controllers corral uses from v1.
pub(crate) const V1_CONTROLLERS: [&str; 6] = ["memory", "pids", "cpu", "cpuacct", "freezer", "blkio"];

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub path: PathBuf,
    pub v2: bool,
    /// v1: the controllers bound to it (`cpu,cpuacct` mounts hold two).
    pub controllers: Vec<String>,
}

/// Parses `/proc/self/mountinfo` for cgroup mounts.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let Some(mount_point) = left.split(' ').nth(4) else { continue };
        let mut r = right.split(' ');
        let fstype = r.next().unwrap_or("");
        let _source = r.next();
        let opts = r.next().unwrap_or("");
        let path = PathBuf::from(unescape(mount_point));
        match fstype {
            "cgroup2" => out.push(Mount { path, v2: true, controllers: vec![] }),
            "cgroup" => {
                let controllers =
                    opts.split(',').filter(|o| V1_CONTROLLERS.contains(o)).map(str::to_string).collect::<Vec<_>>();
                if !controllers.is_empty() {
                    out.push(Mount { path, v2: false, controllers });
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether the cgroup2 mount at `path` was mounted with `favordynmods`;
/// `None` when there is no such mount in `mountinfo`.
///
/// Without it, every write to a v2 `cgroup.procs` takes the kernel's
/// global threadgroup lock for writing, which first waits for an RCU grace
/// period: a group start pays 5–20 ms on an idle host. With it, that wait
/// is gone, at a small cost to every fork and exit on the host.
pub(crate) fn v2_favors_dynmods(mountinfo: &str, path: &Path) -> Option<bool> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mount_point = left.split(' ').nth(4)?;
        let mut r = right.split(' ');
        if r.next()? != "cgroup2" || Path::new(&unescape(mount_point)) != path {
            return None;
        }
        let _source = r.next();
        Some(r.next().unwrap_or("").split(',').any(|o| o == "favordynmods"))
    })
}

/// mountinfo escapes spaces and such as `\040`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The hierarchies of this host and corral's subtree in each.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    /// corral's v2 subtree, if a v2 mount exists.
    pub v2_root: Option<PathBuf>,
    /// The v2 mount point (for reading `/proc/<pid>/cgroup` paths).
    pub v2_mount: Option<PathBuf>,
    /// Controllers enabled-able at the v2 root (`cgroup.controllers` of its parent).
    pub v2_controllers: Vec<String>,
    /// corral's subtree per v1 controller.
    pub v1_roots: Vec<(String, PathBuf)>,
    /// Why cgroups cannot be used, when `CORRAL_CGROUP_ROOT` rules them out.
    pub override_problem: Option<String>,
}

impl Layout {
    pub(crate) fn v1_root(&self, controller: &str) -> Option<&Path> {
        self.v1_roots.iter().find(|(c, _)| c == controller).map(|(_, p)| p.as_path())
    }
}

/// Reads the layout of this host for this process.
pub(crate) fn discover() -> Layout {
    let mounts = parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default());
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let over = std::env::var_os("CORRAL_CGROUP_ROOT").filter(|v| !v.is_empty()).map(PathBuf::from);
    layout(&mounts, &own, over.as_deref())
}

/// Pure part of [`discover`], for tests.
pub(crate) fn layout(mounts: &[Mount], own_cgroup: &str, over: Option<&Path>) -> Layout {
    let mut l = Layout::default();
    // Prefer the mount at /sys/fs/cgroup, then /sys/fs/cgroup/unified, then any.
    let v2 = mounts
        .iter()
        .filter(|m| m.v2)
        .min_by_key(|m| (m.path != Path::new("/sys/fs/cgroup"), m.path != Path::new("/sys/fs/cgroup/unified")));

    // The relative path of corral's subtree, per hierarchy.
    let rel_override: Option<String> = match over {
        None => None,
        Some(p) => match mounts.iter().filter(|m| p.starts_with(&m.path)).max_by_key(|m| m.path.as_os_str().len()) {
            Some(m) => Some(format!("/{}", p.strip_prefix(&m.path).unwrap_or(Path::new("")).display())),
            None => {
                l.override_problem = Some(format!("CORRAL_CGROUP_ROOT={} is not inside a cgroup mount", p.display()));
                return l;
            }
        },
    };
    let own_path = |selector: &dyn Fn(&str) -> bool| -> String {
        own_cgroup
            .lines()
            .find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let _id = parts.next()?;
                let ctls = parts.next()?;
                let path = parts.next()?;
                selector(ctls).then(|| path.to_string())
            })
            .unwrap_or_else(|| "/".into())
    };
    let subtree = |mount: &Path, own: String| -> PathBuf {
        let rel = match &rel_override {
            Some(r) => r.clone(),
            None => format!("{}/corral", own.trim_end_matches('/')),
        };
        mount.join(rel.trim_start_matches('/'))
    };
    if let Some(m) = v2 {
        let own = own_path(&|c: &str| c.is_empty());
        let root = subtree(&m.path, own);
        let parent = root.parent().map(Path::to_path_buf).unwrap_or_else(|| m.path.clone());
        l.v2_controllers = fs::read_to_string(parent.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        l.v2_mount = Some(m.path.clone());
        l.v2_root = Some(root);
    }
    for m in mounts.iter().filter(|m| !m.v2) {
        for c in &m.controllers {
            let own = own_path(&|ctls: &str| ctls.split(',').any(|x| x == c));
            l.v1_roots.push((c.clone(), subtree(&m.path, own)));
        }
    }
    l
}

/// Can this process create cgroups under `root`? Creates `root` if missing.
///
/// A yes is remembered for the life of the process: the backend is chosen
/// for every group, and asking again cost a `mkdir`, a `stat` and an
/// `access` per hierarchy on each spawn. A root that another corral
/// removes since (at its exit, when empty) is made again where a group's
/// cgroup is created; a root whose permissions are taken away makes that
/// creation fail with its own hint. A no is asked again each time.
pub(crate) fn writable(root: &Path) -> Result<(), String> {
    static KNOWN: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    if known.iter().any(|k| k == root) {
        return Ok(());
    }
    check_writable(root)?;
    known.push(root.to_path_buf());
    Ok(())
}

fn check_writable(root: &Path) -> Result<(), String> {
    if let Err(e) = fs::create_dir_all(root) {
        return Err(format!("cannot create {}: {e}", root.display()));
    }
    let c = std::ffi::CString::new(root.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: c is a valid path for the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        return Err(format!("{} is not writable: {}", root.display(), std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
";

    #[test]
    fn favordynmods_is_read_from_the_cgroup2_mount_only() {
        let unified = Path::new("/sys/fs/cgroup/unified");
        assert_eq!(v2_favors_dynmods(HYBRID, unified), Some(false));
        let tuned = HYBRID.replace("cgroup2 cgroup2 rw", "cgroup2 cgroup2 rw,nsdelegate,favordynmods");
        assert_eq!(v2_favors_dynmods(&tuned, unified), Some(true));
        assert_eq!(v2_favors_dynmods(HYBRID, Path::new("/sys/fs/cgroup/memory")), None);
    }

    #[test]
    fn hybrid_mounts_are_found() {
        let m = parse_mountinfo(HYBRID);
        assert_eq!(m.len(), 4);
        assert!(m[0].v2 && m[0].path == Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(m[2].controllers, vec!["cpu", "cpuacct"]);
    }

    #[test]
    fn subtrees_nest_under_own_cgroup() {
        let m = parse_mountinfo(HYBRID);
        let own = "4:memory:/session/abc\n3:pids:/\n2:cpu,cpuacct:/\n0::/\n";
        let l = layout(&m, own, None);
        assert_eq!(l.v2_root.as_deref(), Some(Path::new("/sys/fs/cgroup/unified/corral")));
        assert_eq!(l.v1_root("memory"), Some(Path::new("/sys/fs/cgroup/memory/session/abc/corral")));
        assert_eq!(l.v1_root("cpuacct"), Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/corral")));
    }

    #[test]
    fn override_applies_to_every_hierarchy() {
        let m = parse_mountinfo(HYBRID);
        let l = layout(&m, "0::/\n", Some(Path::new("/sys/fs/cgroup/unified/ci/x")));
        assert_eq!(l.v2_root.as_deref(), Some(Path::new("/sys/fs/cgroup/unified/ci/x")));
        assert_eq!(l.v1_root("pids"), Some(Path::new("/sys/fs/cgroup/pids/ci/x")));
        let bad = layout(&m, "0::/\n", Some(Path::new("/tmp/nope")));
        assert!(bad.override_problem.unwrap().contains("not inside a cgroup mount"));
    }

    #[test]
    fn octal_escapes_are_decoded() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
    }
}
