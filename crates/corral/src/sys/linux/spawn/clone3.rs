//! The raw `clone3` call, in two shapes.
//!
//! - On x86_64, `CLONE_VM | CLONE_VFORK` on a stack of the child's own
//!   (glibc's `posix_spawn` does the same through `__clone`): no page
//!   tables are copied, so a spawn costs the same in a daemon with a big
//!   heap as in a small tool. The child shares this process's memory, so
//!   it may only read the prepared [`super::plan::Plan`] and make raw
//!   syscalls until `exec`; the calling thread sleeps until then.
//! - Elsewhere, a fork-like `clone3` (copy-on-write memory) that returns
//!   twice, like `fork`.
//!
//! A Rust function cannot return into a frame on another stack, hence the
//! few lines of assembly: in the child they call the entry point on the
//! new stack and never return.

use std::io;

/// `struct clone_args` of `<linux/sched.h>`, version 2 (with `cgroup`).
#[repr(C)]
#[derive(Debug, Default)]
pub(super) struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

pub(super) const CLONE_VM: u64 = libc::CLONE_VM as u64;
pub(super) const CLONE_VFORK: u64 = libc::CLONE_VFORK as u64;
pub(super) const CLONE_PIDFD: u64 = 0x1000;
pub(super) const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Whether this build starts children on their own stack (vfork-like).
pub(super) const SHARES_MEMORY: bool = cfg!(target_arch = "x86_64");

/// The child's entry point: never returns (it execs or `_exit`s).
pub(super) type Entry = extern "C" fn(*const libc::c_void) -> !;

/// A child stack: mapped on demand, with a guard page below it, unmapped on
/// drop. Untouched pages cost nothing, so it can be generous.
///
/// Each spawning thread keeps its last one ([`with_stack`]): the thread
/// sleeps while its child runs on it (`CLONE_VFORK`), so it is free again
/// once `clone3` returns, and reusing it spares a map, a guard, an unmap
/// (which flushes the other CPUs' TLBs for a multi-threaded process) and
/// the child's faults on fresh pages, at every spawn.
pub(super) struct Stack {
    base: *mut libc::c_void,
    len: usize,
}

const STACK_LEN: usize = 256 * 1024;

impl Stack {
    pub(super) fn new() -> io::Result<Stack> {
        // SAFETY: an anonymous private mapping with no address hint.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base, len: STACK_LEN };
        // A fork of this process (the program's own, or a library's) leaves
        // these pages alone: no copy in the forked child (which gets them
        // zeroed, still a valid stack should it spawn from this thread),
        // and none of the write protection that would make the next child
        // here take a copy-on-write fault on every stack page it touches.
        // Only a hint: a kernel without it (before 4.14) just copies.
        // SAFETY: advice on the private anonymous mapping just made.
        unsafe { libc::madvise(base, STACK_LEN, libc::MADV_WIPEONFORK) };
        // The lowest page traps an overflow instead of writing past the map.
        // SAFETY: the page lies inside the mapping just made.
        if unsafe { libc::mprotect(base, page_size(), libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Runs `f` with this thread's child stack, mapping one the first time.
fn with_stack<R>(f: impl FnOnce(&Stack) -> R) -> io::Result<R> {
    thread_local! {
        static KEPT: std::cell::Cell<Option<Stack>> = const { std::cell::Cell::new(None) };
    }
    let stack = match KEPT.with(|k| k.take()) {
        Some(s) => s,
        None => Stack::new()?,
    };
    let r = f(&stack);
    // Put back (a nested spawn on this thread, which cannot happen while
    // the thread sleeps in `clone3`, would only have mapped its own).
    KEPT.with(|k| k.set(Some(stack)));
    Ok(r)
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, which nothing
        // uses any more (the child has exec'd or exited before clone3
        // returned, CLONE_VFORK).
        // At a thread's exit for a kept one.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Starts the child; returns its pid in the parent. `share_memory: false`
/// asks for the fork-like shape even where the vfork-like one exists.
///
/// # Safety
/// `arg` must stay valid until the child execs or exits, and `entry` may
/// only make async-signal-safe calls. In the fork-like shape, `entry` runs
/// in a copy of this process that must not return into Rust code.
pub(super) unsafe fn clone3(
    args: &mut CloneArgs,
    entry: Entry,
    arg: *const libc::c_void,
    share_memory: bool,
) -> io::Result<libc::pid_t> {
    // SAFETY: the caller upholds the contract above.
    unsafe {
        let size = std::mem::size_of::<CloneArgs>();
        let ret = if share_memory { imp(args, size, entry, arg) } else { fork_like(args, size, entry, arg) };
        if ret < 0 {
            return Err(io::Error::from_raw_os_error(-ret as i32));
        }
        Ok(ret as libc::pid_t)
    }
}

#[cfg(target_arch = "x86_64")]
unsafe fn imp(args: &mut CloneArgs, size: usize, entry: Entry, arg: *const libc::c_void) -> isize {
    let run = |stack: &Stack| {
        args.flags |= CLONE_VM | CLONE_VFORK;
        args.stack = stack.base as u64;
        // A multiple of the page size, so the top the kernel starts the child
        // at is 16-byte aligned, as `call` needs.
        args.stack_size = stack.len as u64;
        let ret: isize;
        // SAFETY: the syscall returns in both tasks. The parent goes on at
        // label 2 with the result in rax. The child (rax 0) is on the new
        // stack with r12/r13 intact (the kernel keeps all but rax, rcx, r11):
        // it calls `entry(arg)`, which never returns; `ud2` would trap if it
        // did. CLONE_VFORK: once the parent goes on, the child has exec'd or
        // exited, so the stack is free for the next spawn.
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
                in("rdi") &mut *args as *mut CloneArgs,
                in("rsi") size,
                in("r12") arg,
                in("r13") entry,
                out("rcx") _,
                out("r11") _,
                options(nostack),
            );
        }
        ret
    };
    with_stack(run).unwrap_or_else(|e| -(e.raw_os_error().unwrap_or(libc::ENOMEM) as isize))
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn imp(args: &mut CloneArgs, size: usize, entry: Entry, arg: *const libc::c_void) -> isize {
    // SAFETY: the caller upholds `clone3`'s contract.
    unsafe { fork_like(args, size, entry, arg) }
}

/// `clone3` that returns twice, like `fork`: the child runs `entry` on a
/// copy of this task's stack.
unsafe fn fork_like(args: &mut CloneArgs, size: usize, entry: Entry, arg: *const libc::c_void) -> isize {
    // SAFETY: the caller upholds `clone3`'s contract.
    unsafe {
        let ret = libc::syscall(libc::SYS_clone3, args as *mut CloneArgs, size);
        if ret == 0 {
            entry(arg);
        }
        if ret < 0 {
            -(*libc::__errno_location() as isize)
        } else {
            ret as isize
        }
    }
}

/// Whether the kernel (and any seccomp policy) lets `clone3` through at
/// all, without starting anything: a call too small to be valid answers
/// EINVAL where clone3 exists, ENOSYS or EPERM where it is refused.
pub(super) fn available() -> Result<(), io::Error> {
    // SAFETY: a null, zero-sized argument is rejected before any use.
    let r = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null_mut::<CloneArgs>(), 0usize) };
    let e = io::Error::last_os_error();
    match (r, e.raw_os_error()) {
        (_, Some(libc::EINVAL)) => Ok(()),
        (r, _) if r >= 0 => Ok(()),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The VmFlags of the mapping that starts at `addr`, from smaps.
    fn vm_flags(addr: usize) -> Option<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        // A mapping's header line starts `<start>-<end> `, in hex.
        let mut lines = smaps
            .lines()
            .skip_while(|l| l.split_once('-').and_then(|(a, _)| usize::from_str_radix(a, 16).ok()) != Some(addr));
        lines.next()?;
        lines.find_map(|l| l.strip_prefix("VmFlags:").map(str::to_string))
    }

    /// A fork elsewhere in the process neither copies the child stack nor
    /// write-protects it (which made the next spawn's child take a
    /// copy-on-write fault on each stack page it touched); the guard page
    /// still traps.
    #[test]
    fn the_child_stack_is_wiped_on_fork_and_guarded() {
        let s = Stack::new().expect("stack");
        let usable = s.base as usize + page_size();
        let flags = vm_flags(usable).expect("the stack's mapping in smaps");
        assert!(flags.split_whitespace().any(|f| f == "wf"), "no wipe-on-fork: {flags}");
        let guard = vm_flags(s.base as usize).expect("the guard page's mapping in smaps");
        assert!(!guard.split_whitespace().any(|f| f == "wr"), "the guard page is writable: {guard}");
    }
}
