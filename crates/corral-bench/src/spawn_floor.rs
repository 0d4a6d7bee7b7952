//! The kernel's floor for measure 1: the same containment as corral's
//! group, without corral.
//!
//! Made once, before the rounds: a v2 leaf and v1 `memory` and `pids`
//! directories with the same limits (what a hybrid group is), or only
//! what corral's backend in this run uses. Each sample then does what no
//! containing spawner can skip: a vfork-like `clone3` straight into the
//! v2 leaf (`CLONE_INTO_CGROUP`), a child that takes its own process
//! group and joins each v1 hierarchy by writing `0` to its `tasks`, then
//! execs `/bin/true`, and a `waitpid`. No group object, no event loop, no
//! accounting, no teardown: what corral adds to this is corral's own.
//!
//! x86_64 only (the child starts on a stack of its own, which takes a few
//! lines of assembly); elsewhere it is reported as not measured.

use corral::BackendKind;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// The limits the corral contender sets (memory 256 MiB, 64 processes).
const MEMORY: u64 = 256 << 20;
const PIDS: u32 = 64;

pub struct Floor {
    /// The v2 leaf the child is cloned into.
    leaf: Option<OwnedFd>,
    /// The v1 `tasks` files the child writes itself into.
    joins: Vec<fs::File>,
    /// Every directory made, removed on drop (deepest last made first).
    dirs: Vec<PathBuf>,
    program: CString,
    what: String,
}

impl Floor {
    /// Makes the cgroups `backend` would use for a group with limits.
    pub fn new(backend: BackendKind) -> Result<Floor, String> {
        if !cfg!(target_arch = "x86_64") {
            return Err("the floor's vfork-like clone3 is written for x86_64 only".into());
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        let own = fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
        let name = format!("corral-bench-floor-{}", std::process::id());
        let mut me = Floor {
            leaf: None,
            joins: Vec::new(),
            dirs: Vec::new(),
            program: CString::new("/bin/true").expect("no NUL"),
            what: String::new(),
        };
        let (v2, v1): (bool, &[&str]) = match backend {
            BackendKind::Hybrid => (true, &["memory", "pids"]),
            BackendKind::CgroupV2 => (true, &[]),
            BackendKind::CgroupV1 => (false, &["memory", "pids", "freezer", "cpuacct"]),
            _ => (false, &[]),
        };
        let mut parts = Vec::new();
        if v2 {
            let mount = mount_of(&mountinfo, None).ok_or("no cgroup2 mount")?;
            let dir = mount.join(own_path(&own, None).trim_start_matches('/')).join(&name);
            me.make(&dir)?;
            // Limits where this v2 tree has the controllers (not on a hybrid host).
            let _ = fs::write(dir.join("memory.max"), MEMORY.to_string());
            let _ = fs::write(dir.join("pids.max"), PIDS.to_string());
            let fd = fs::File::open(&dir).map_err(|e| format!("opening {}: {e}", dir.display()))?;
            me.leaf = Some(fd.into());
            parts.push("a v2 leaf (CLONE_INTO_CGROUP)".to_string());
        }
        for c in v1 {
            let mount = mount_of(&mountinfo, Some(c)).ok_or(format!("no v1 {c} mount"))?;
            let dir = mount.join(own_path(&own, Some(c)).trim_start_matches('/')).join(&name);
            if me.dirs.contains(&dir) {
                continue;
            }
            me.make(&dir)?;
            match *c {
                "memory" => fs::write(dir.join("memory.limit_in_bytes"), MEMORY.to_string()),
                "pids" => fs::write(dir.join("pids.max"), PIDS.to_string()),
                _ => Ok(()),
            }
            .map_err(|e| format!("limiting {}: {e}", dir.display()))?;
            let tasks = dir.join("tasks");
            let f = fs::OpenOptions::new().write(true).open(&tasks).map_err(|e| format!("{}: {e}", tasks.display()))?;
            me.joins.push(f);
            parts.push(format!("v1 {c} (`tasks`)"));
        }
        parts.push("its own process group".into());
        me.what = parts.join(" + ");
        Ok(me)
    }

    /// What the floor's child joins, for the table.
    pub fn what(&self) -> &str {
        &self.what
    }

    fn make(&mut self, dir: &std::path::Path) -> Result<(), String> {
        fs::create_dir(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        self.dirs.push(dir.to_path_buf());
        Ok(())
    }

    /// One spawn+wait of `/bin/true`.
    pub fn once(&self) -> Result<(), String> {
        let argv = [self.program.as_ptr(), std::ptr::null()];
        let joins: Vec<RawFd> = self.joins.iter().map(|f| f.as_raw_fd()).collect();
        let child = Child { program: self.program.as_ptr(), argv: argv.as_ptr(), joins: &joins };
        let pid = clone_into(self.leaf.as_ref().map(|f| f.as_raw_fd()), &child).map_err(|e| format!("clone3: {e}"))?;
        let mut status = 0;
        // SAFETY: waits for our own child; status is valid for writes.
        if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
            return Err(format!("waitpid: {}", io::Error::last_os_error()));
        }
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ok(())
        } else {
            Err(format!("floor: /bin/true ended with status {status:#x}"))
        }
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.joins.clear();
        self.leaf = None;
        for d in self.dirs.iter().rev() {
            // Empty: every child was waited for. A few tries while the
            // kernel finishes the last exit.
            for _ in 0..50 {
                if fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}

/// The mount point of cgroup2 (`None`), else of the v1 hierarchy that
/// holds `controller`.
fn mount_of(mountinfo: &str, controller: Option<&str>) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let Some(point) = left.split(' ').nth(4) else { continue };
        let mut r = right.split(' ');
        let (fstype, _, opts) = (r.next()?, r.next(), r.next().unwrap_or(""));
        let hit = match controller {
            None => fstype == "cgroup2",
            Some(c) => fstype == "cgroup" && opts.split(',').any(|o| o == c),
        };
        if hit {
            found.push(PathBuf::from(point));
        }
    }
    // A hybrid host's cgroup2 is at /sys/fs/cgroup/unified; prefer the usual places.
    found.iter().find(|p| p.as_path() == std::path::Path::new("/sys/fs/cgroup")).or(found.first()).cloned()
}

/// This process's own cgroup in the v2 tree (`None`) or in `controller`'s.
fn own_path(own: &str, controller: Option<&str>) -> String {
    own.lines()
        .find_map(|line| {
            let mut p = line.splitn(3, ':');
            let (_, ctls, path) = (p.next()?, p.next()?, p.next()?);
            let hit = match controller {
                None => ctls.is_empty(),
                Some(c) => ctls.split(',').any(|x| x == c),
            };
            hit.then(|| path.to_string())
        })
        .unwrap_or_else(|| "/".into())
}

/// What the child needs, prepared by the parent: it only reads it.
struct Child<'a> {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    joins: &'a [RawFd],
}

/// The child, on its own stack, sharing our memory until it execs: raw
/// syscalls only, as in any vfork child.
extern "C" fn child_main(arg: *const libc::c_void) -> ! {
    // SAFETY: `arg` is the parent's `Child`, alive until the exec
    // (CLONE_VFORK); only async-signal-safe calls follow.
    unsafe {
        let c = &*(arg as *const Child);
        if libc::setpgid(0, 0) != 0 {
            libc::_exit(120);
        }
        for &fd in c.joins {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(121);
            }
        }
        libc::execve(c.program, c.argv, environ());
        libc::_exit(127)
    }
}

fn environ() -> *const *const libc::c_char {
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: glibc's `environ`, read once in the child before its exec.
    unsafe { environ }
}

/// `struct clone_args` (version 2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
const STACK: usize = 64 * 1024;

/// `clone3(CLONE_VM | CLONE_VFORK [| CLONE_INTO_CGROUP])` running
/// [`child_main`] on a fresh stack; returns once the child has exec'd.
#[cfg(target_arch = "x86_64")]
fn clone_into(cgroup: Option<RawFd>, child: &Child) -> io::Result<libc::pid_t> {
    // SAFETY: an anonymous private mapping, unmapped below.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let mut args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK) as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack as u64,
        stack_size: STACK as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // No handler of ours may run in the child (it shares our memory): all
    // signals, glibc's own too (hence the raw call), stay blocked until the
    // exec. posix_spawn would then reset each handler and restore the mask
    // in the child; /bin/true needs neither, so the floor skips them.
    // SAFETY: plain sigset_t values.
    let saved = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &all as *const _, &mut old as *mut _, 8usize);
        old
    };
    let ret: isize;
    // SAFETY: the syscall returns in both tasks. The parent goes on at
    // label 2; the child (rax 0) is on the new stack with r12/r13 kept by
    // the kernel, calls `child_main(child)`, which never returns.
    unsafe {
        core::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 as isize => ret,
            in("rdi") &mut args as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") child as *const Child as *const libc::c_void,
            in("r13") child_main as extern "C" fn(*const libc::c_void) -> !,
            out("rcx") _,
            out("r11") _,
            options(nostack),
        );
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &saved as *const _,
            std::ptr::null_mut::<libc::sigset_t>(),
            8usize,
        );
        // CLONE_VFORK: the child has exec'd or exited; its stack is free.
        libc::munmap(stack, STACK);
    }
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret as i32));
    }
    Ok(ret as libc::pid_t)
}

#[cfg(not(target_arch = "x86_64"))]
fn clone_into(_: Option<RawFd>, _: &Child) -> io::Result<libc::pid_t> {
    Err(io::ErrorKind::Unsupported.into())
}
