//! The environment a leader starts with, built once per spawn as the
//! `envp` array `execve` takes.
//!
//! One pass over the controller's environment, read in place, keeps
//! every entry whose name the command neither sets nor removes; then come
//! the command's own values, then the pid slots (`passing.rs`). Every
//! entry lands in one buffer. `std::env::vars_os` copied each of the forty
//! variables of a shell's environment into two fresh strings on every
//! spawn (eighty allocations, half of a spawn's), only for them to be
//! copied once more into that buffer.

use super::passing::PidVar;
use crate::command::Command;
use std::ffi::{CStr, OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;

/// The environment of a leader with pid variables: plain entries, then
/// the slots (a slot replaces a plain entry of the same name).
pub(crate) struct Envp {
    /// Every plain entry as `K=V\0`, one after the other: one buffer for
    /// the whole environment, not one per variable, and the same buffer
    /// spawn after spawn on a thread ([`SPARE`]).
    plain: Vec<u8>,
    pub pid_vars: Vec<PidVar>,
    pub ptrs: Vec<*const libc::c_char>,
}

// SAFETY: the pointers point into the buffers this value owns.
unsafe impl Send for Envp {}
// SAFETY: as above; shared only to be read, or written by a child (PidVar).
unsafe impl Sync for Envp {}

thread_local! {
    /// The last spawn's entry buffer, for the next spawn on this thread. A
    /// shell's environment is a kilobyte or two, which malloc serves from
    /// its large-block lists after consolidating every small free block
    /// first: a walk over its free lists on every spawn.
    static SPARE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A bigger buffer is not kept: an odd spawn with a huge environment does
/// not pin its memory to the thread.
const SPARE_AT_MOST: usize = 64 << 10;

impl Drop for Envp {
    fn drop(&mut self) {
        let plain = std::mem::take(&mut self.plain);
        if plain.capacity() <= SPARE_AT_MOST {
            // A thread being torn down keeps nothing.
            let _ = SPARE.try_with(|s| s.set(plain));
        }
    }
}

/// A source of inherited `KEY=VALUE` entries: calls its argument with each.
type Inherited<'a> = &'a dyn Fn(&mut dyn FnMut(&[u8]));

/// One change: a name, and its new value (`None`: removed).
type Change<'a> = (&'a [u8], Option<&'a [u8]>);

impl Envp {
    /// What `cmd` gives its leader, with `extra` set over it, and the
    /// `PATH` its program is searched in: std's rule, the child's when the
    /// command sets one, else the controller's.
    pub(crate) fn of_command(cmd: &Command, extra: &[(&str, &str)]) -> io::Result<(Envp, Option<OsString>)> {
        let changes: Vec<Change> = cmd
            .env
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_deref().map(OsStr::as_bytes)))
            .chain(extra.iter().map(|(k, v)| (k.as_bytes(), Some(v.as_bytes()))))
            .collect();
        let path = match cmd.env.iter().rev().find(|(k, _)| k == "PATH") {
            Some((_, v)) => v.clone(),
            None => std::env::var_os("PATH"),
        };
        let inherited: Option<Inherited> = (!cmd.env_clear).then_some(&each_inherited);
        Ok((Envp::build(inherited, &changes, &cmd.pid_vars)?, path))
    }

    /// The entries of `inherited` whose names no change and no slot takes,
    /// then the last value of each name `changes` sets (in the order of
    /// those last changes), then a slot per `pid_keys`.
    fn build(inherited: Option<Inherited>, changes: &[Change], pid_keys: &[OsString]) -> io::Result<Envp> {
        // The last change of each name wins: sorted by name, latest first,
        // the first of each name is kept; then back in the changes' order.
        let mut last: Vec<usize> = (0..changes.len()).collect();
        last.sort_unstable_by(|&a, &b| changes[a].0.cmp(changes[b].0).then(b.cmp(&a)));
        last.dedup_by(|later, kept| changes[*later].0 == changes[*kept].0);
        last.sort_unstable();
        let is_slot = |k: &[u8]| pid_keys.iter().any(|p| p.as_bytes() == k);
        // The names no inherited entry keeps, sorted to be searched.
        let mut taken: Vec<&[u8]> =
            last.iter().map(|&i| changes[i].0).chain(pid_keys.iter().map(|k| k.as_bytes())).collect();
        taken.sort_unstable();

        let mut plain = SPARE.try_with(|s| s.take()).unwrap_or_default();
        plain.clear();
        let mut starts = Vec::new();
        if let Some(each) = inherited {
            let (mut bytes, mut count) = (0, 0);
            each(&mut |e| {
                bytes += e.len() + 1;
                count += 1;
            });
            plain.reserve(bytes + changes.iter().map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len) + 2).sum::<usize>());
            starts.reserve(count + last.len());
            each(&mut |e| {
                // glibc's and std's rule: the name ends at the first `=`
                // after its first byte; an entry without one is skipped.
                let Some(eq) = e.iter().skip(1).position(|&b| b == b'=').map(|p| p + 1) else { return };
                if taken.binary_search(&&e[..eq]).is_err() {
                    starts.push(plain.len());
                    plain.extend_from_slice(e);
                    plain.push(0);
                }
            });
        }
        for &i in &last {
            let (k, Some(v)) = changes[i] else { continue };
            if is_slot(k) {
                continue;
            }
            if k.contains(&0) || v.contains(&0) {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the environment"));
            }
            starts.push(plain.len());
            plain.extend_from_slice(k);
            plain.push(b'=');
            plain.extend_from_slice(v);
            plain.push(0);
        }
        let pid_vars = pid_keys.iter().map(|k| PidVar::new(k)).collect::<io::Result<Vec<_>>>()?;
        // Taken once `plain` is complete: it never grows again, and moving
        // the Vec into the Envp does not move its buffer.
        let base = plain.as_ptr();
        let ptrs = starts
            .iter()
            // SAFETY: every start is an offset inside `plain`.
            .map(|&at| unsafe { base.add(at) }.cast::<libc::c_char>())
            .chain(pid_vars.iter().map(PidVar::as_ptr))
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        Ok(Envp { plain, pid_vars, ptrs })
    }

    /// Fills every pid variable with the calling process's pid. In the child.
    pub(crate) fn fill_pids(&self) {
        if self.pid_vars.is_empty() {
            return;
        }
        // SAFETY: a raw getpid on Linux (no cache that a clone could leave
        // stale); macOS's getpid is a plain syscall.
        #[cfg(target_os = "linux")]
        let pid = unsafe { libc::syscall(libc::SYS_getpid) } as i32;
        // SAFETY: getpid has no preconditions.
        #[cfg(not(target_os = "linux"))]
        let pid = unsafe { libc::getpid() };
        for v in &self.pid_vars {
            v.fill(pid);
        }
    }
}

/// Calls `f` with each `KEY=VALUE` entry of the controller's environment,
/// read in place.
///
/// Without the lock std takes around its own readers and writers: the
/// contract of `std::env::set_var` (an `unsafe fn` since Rust 2024, the
/// same rule before) forbids a call while any other thread may read the
/// environment by other means, libc's `getenv` and every spawn included,
/// so a program that keeps it has no writer here to race.
fn each_inherited(f: &mut dyn FnMut(&[u8])) {
    // SAFETY: `environ` is null or a null-terminated array of C strings,
    // which no thread changes meanwhile (see above).
    unsafe {
        let mut p = environ();
        if p.is_null() {
            return;
        }
        while !(*p).is_null() {
            f(CStr::from_ptr(*p).to_bytes());
            p = p.add(1);
        }
    }
}

#[cfg(target_os = "macos")]
unsafe fn environ() -> *const *const libc::c_char {
    // SAFETY: the libSystem call that stands for `environ` in a binary.
    unsafe { *libc::_NSGetEnviron() as *const *const libc::c_char }
}

#[cfg(not(target_os = "macos"))]
unsafe fn environ() -> *const *const libc::c_char {
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: reads the pointer libc keeps; see `each_inherited`.
    unsafe { environ }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(e: &Envp) -> Vec<String> {
        e.ptrs[..e.ptrs.len() - 1]
            .iter()
            // SAFETY: each pointer points at a NUL-terminated entry `e` owns.
            .map(|&p| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
            .collect()
    }

    fn build(base: &[&str], changes: &[(&str, Option<&str>)], slots: &[&str]) -> io::Result<Vec<String>> {
        let each = |f: &mut dyn FnMut(&[u8])| base.iter().for_each(|e| f(e.as_bytes()));
        let changes: Vec<Change> = changes.iter().map(|(k, v)| (k.as_bytes(), v.map(str::as_bytes))).collect();
        let slots: Vec<OsString> = slots.iter().map(OsString::from).collect();
        let e = Envp::build(Some(&each), &changes, &slots)?;
        assert!(e.ptrs.last().is_some_and(|p| p.is_null()), "the array ends with a null");
        Ok(entries(&e))
    }

    #[test]
    fn inherited_entries_stay_in_order_unless_a_change_or_a_slot_takes_their_name() {
        let got = build(
            &["A=1", "PATH=/bin", "B=x=y", "LISTEN_PID=stale", "C=3", "A=dup"],
            &[("C", None), ("B", Some("new")), ("D", Some(""))],
            &["LISTEN_PID"],
        )
        .unwrap();
        assert_eq!(got, ["A=1", "PATH=/bin", "A=dup", "B=new", "D=", "LISTEN_PID=0"]);
    }

    #[test]
    fn the_last_change_of_a_name_wins_in_the_order_of_the_last_changes() {
        let got =
            build(&[], &[("A", Some("1")), ("B", Some("2")), ("A", None), ("B", Some("3")), ("A", Some("4"))], &[])
                .unwrap();
        assert_eq!(got, ["B=3", "A=4"]);
        // As many changes as a large service file sets.
        let many: Vec<(String, Option<String>)> =
            (0..100).map(|i| (format!("K{}", i % 40), Some(format!("v{i}")))).collect();
        let many: Vec<(&str, Option<&str>)> = many.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        let got = build(&["K5=old", "OTHER=1"], &many, &[]).unwrap();
        assert_eq!(got.len(), 41);
        assert_eq!(got[0], "OTHER=1");
        assert!(got.contains(&"K5=v85".to_string()) && !got.contains(&"K5=old".to_string()));
    }

    #[test]
    fn a_buffer_kept_from_the_last_spawn_holds_only_the_new_entries() {
        let long = format!("LONG={}", "x".repeat(3000));
        assert_eq!(build(&[&long, "A=1"], &[], &[]).unwrap().len(), 2);
        // The same thread, its spare buffer: nothing of the last one shows.
        assert_eq!(build(&["B=2"], &[("C", Some("3"))], &[]).unwrap(), ["B=2", "C=3"]);
        let spare = SPARE.with(|s| {
            let v = s.take();
            let cap = v.capacity();
            s.set(v);
            cap
        });
        assert!(spare >= long.len(), "the buffer went back for the next spawn");
    }

    #[test]
    fn malformed_inherited_entries_are_skipped_as_std_skips_them() {
        let got = build(&["NOEQUALS", "=C:=x", "E=1"], &[], &[]).unwrap();
        assert_eq!(got, ["=C:=x", "E=1"], "a name may start with '=' (glibc's rule); one without '=' is dropped");
    }

    #[test]
    fn a_nul_in_a_set_value_is_refused_and_a_removed_name_needs_no_check() {
        assert!(build(&[], &[("A", Some("1\u{0}2"))], &[]).is_err());
        assert_eq!(build(&["A=1"], &[("A\u{0}", None)], &[]).unwrap(), ["A=1"]);
    }

    #[test]
    fn a_command_gets_what_stds_resolution_of_the_same_changes_gives() {
        let mut c = Command::new("x");
        c.env("CORRAL_ENVP_TEST", "v").env_remove("HOME").env("PATH", "/nowhere");
        let (e, path) = Envp::of_command(&c, &[("CORRAL_GROUP", "g1")]).unwrap();
        let mut got = entries(&e);
        let mut want: Vec<String> = c
            .resolved_env()
            .into_iter()
            .filter(|(k, _)| k != "CORRAL_GROUP")
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .chain(["CORRAL_GROUP=g1".to_string()])
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(path.as_deref(), Some(OsStr::new("/nowhere")), "the child's PATH is searched");
        let mut c = Command::new("x");
        c.env_clear().env("A", "1");
        let (e, path) = Envp::of_command(&c, &[]).unwrap();
        assert_eq!(entries(&e), ["A=1"]);
        assert_eq!(path, std::env::var_os("PATH"), "without one of its own, the controller's PATH is searched");
    }
}
