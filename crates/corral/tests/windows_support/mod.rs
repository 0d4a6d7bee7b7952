//! Support for the Windows tests: start the testkit in a group, parse its
//! ready line, and prove afterwards that every process it printed is gone.
//!
//! The proof is independent of corral: each printed pid is opened with
//! `OpenProcess` as soon as the ready line arrives (while the process
//! surely lives), and afterwards `GetExitCodeProcess` on that handle must
//! not say `STILL_ACTIVE`. Holding the handle keeps the pid from being
//! reused in between, which under Wine happens fast.

#![allow(dead_code)]

use corral::{Group, GroupBuilder};
use std::io::{BufRead, BufReader, Read};
use std::mem::{size_of, zeroed};
use std::path::PathBuf;
use std::process::{ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, STILL_ACTIVE, WAIT_OBJECT_0};
use windows_sys::Win32::System::JobObjects::{
    JobObjectBasicAccountingInformation, JobObjectBasicProcessIdList, OpenJobObjectW, QueryInformationJobObject,
    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION,
};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::SystemServices::JOB_OBJECT_QUERY;
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, OpenProcess, WaitForSingleObject, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE,
};

/// The testkit, built for this target next to the test binary's directory
/// (`.ci/windows.sh` builds it; `CORRAL_TESTKIT` overrides).
pub fn testkit() -> PathBuf {
    if let Some(p) = std::env::var_os("CORRAL_TESTKIT") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<triple>/debug/deps/windows_x-hash.exe -> target/<triple>/debug/
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join("corral-testkit.exe");
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build --target x86_64-pc-windows-gnu -p corral-testkit`",
        p.display()
    );
    p
}

/// Whether this runs under Wine (ntdll exports `wine_get_version` there).
pub fn wine() -> bool {
    let name: Vec<u16> = "ntdll.dll\0".encode_utf16().collect();
    // SAFETY: NUL-terminated name; ntdll is always loaded.
    let m = unsafe { GetModuleHandleW(name.as_ptr()) };
    // SAFETY: `m` is ntdll's handle (or null, which fails cleanly).
    !m.is_null() && unsafe { GetProcAddress(m, c"wine_get_version".as_ptr().cast()) }.is_some()
}

/// Prints why a test is skipped and says whether it must be.
pub fn skip_under_wine(why: &str) -> bool {
    if wine() {
        eprintln!("SKIPPED under Wine (needs real Windows): {why}");
        true
    } else {
        false
    }
}

/// A process handle opened by the test itself, closed on drop.
pub struct Proc {
    pub pid: u32,
    h: HANDLE,
}

// SAFETY: a process handle may be used from any thread.
unsafe impl Send for Proc {}

impl Proc {
    /// Opens `pid`, which the testkit printed as alive. `None` when it is
    /// already gone (a short-lived process on a loaded host): then there is
    /// nothing that could leak. A process found already ended is kept; its
    /// handle still answers.
    pub fn open(pid: u32) -> Option<Proc> {
        // SAFETY: no pointers; the result is checked.
        let h = unsafe { OpenProcess(PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
        if h.is_null() {
            eprintln!("process {pid} was gone before the test looked: {}", std::io::Error::last_os_error());
            return None;
        }
        Some(Proc { pid, h })
    }

    /// `None` while it runs (GetExitCodeProcess says STILL_ACTIVE and the
    /// handle is not signalled), else its exit code.
    pub fn exit_code(&self) -> Option<u32> {
        let mut code = 0u32;
        // SAFETY: `h` is a live handle we own; `code` is writable.
        let ok = unsafe { GetExitCodeProcess(self.h, &mut code) };
        assert!(ok != 0, "GetExitCodeProcess({}): {}", self.pid, std::io::Error::last_os_error());
        // SAFETY: as above. 259 is also a legal exit code, so the handle
        // decides in that case.
        if code == STILL_ACTIVE as u32 && unsafe { WaitForSingleObject(self.h, 0) } != WAIT_OBJECT_0 {
            None
        } else {
            Some(code)
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: we opened `h` and close it once.
        unsafe { CloseHandle(self.h) };
    }
}

/// The testkit's ready line, parsed by hand (no JSON crate in corral's
/// dev-dependencies).
#[derive(Debug, Default)]
pub struct Ready {
    pub pid: u32,
    pub children: Vec<u32>,
    pub grandchildren: Vec<u32>,
    pub setsid: Vec<u32>,
    pub daemons: Vec<u32>,
    pub all: Vec<u32>,
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let k = format!("\"{key}\":");
    let start = line.find(&k).unwrap_or_else(|| panic!("no {key} in {line}")) + k.len();
    let rest = &line[start..];
    let end = if rest.starts_with('[') { rest.find(']').unwrap() + 1 } else { rest.find([',', '}']).unwrap() };
    &rest[..end]
}

fn list(s: &str) -> Vec<u32> {
    s.trim_matches(['[', ']']).split(',').filter(|w| !w.is_empty()).map(|w| w.parse().unwrap()).collect()
}

impl Ready {
    pub fn parse(line: &str) -> Ready {
        assert!(line.contains("\"ready\":true"), "not a ready line: {line:?}");
        Ready {
            pid: field(line, "pid").parse().unwrap(),
            children: list(field(line, "children")),
            grandchildren: list(field(line, "grandchildren")),
            setsid: list(field(line, "setsid")),
            daemons: list(field(line, "daemons")),
            all: list(field(line, "all")),
        }
    }

    /// The top and everything it printed.
    pub fn every_pid(&self) -> Vec<u32> {
        let mut v = vec![self.pid];
        v.extend(&self.all);
        v
    }
}

/// A group running the testkit, with the test's own handles to every
/// process it printed.
pub struct Kit {
    pub group: Group,
    pub ready: Ready,
    pub procs: Vec<Proc>,
    pub stdout: BufReader<ChildStdout>,
}

/// A testkit command with `args`, stdout piped, stdin and stderr null.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(testkit());
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    cmd
}

/// Starts the testkit with `args` in a group built by `b`, and waits for
/// its ready line (never a sleep).
pub fn start(b: GroupBuilder, args: &[&str]) -> Kit {
    let mut group = b.spawn(command(args)).expect("spawn the testkit in a group");
    let mut stdout = BufReader::new(group.take_stdout().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read the ready line");
    let ready = Ready::parse(line.trim());
    assert_eq!(ready.pid, group.pid());
    let procs = ready.every_pid().into_iter().filter_map(Proc::open).collect();
    Kit { group, ready, procs, stdout }
}

impl Kit {
    /// Reads the rest of stdout (until every writer is gone).
    pub fn drain(&mut self) -> String {
        let mut s = String::new();
        let _ = self.stdout.read_to_string(&mut s);
        s
    }
}

/// Asserts that every process is gone, and returns their exit codes.
pub fn assert_all_gone(procs: &[Proc]) -> Vec<u32> {
    procs.iter().map(|p| p.exit_code().unwrap_or_else(|| panic!("process {} survived the group", p.pid))).collect()
}

/// Waits (bounded) until `f` holds; for conditions the OS settles a
/// moment after the event the test synchronised on.
pub fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The test's own handle to a group's job, opened by the name
/// `Group::location` gives.
pub struct JobView(HANDLE);

impl JobView {
    pub fn open(group: &Group) -> JobView {
        let name: Vec<u16> = group.location().encode_utf16().chain(Some(0)).collect();
        // SAFETY: NUL-terminated name; the result is checked.
        let h = unsafe { OpenJobObjectW(JOB_OBJECT_QUERY, 0, name.as_ptr()) };
        assert!(!h.is_null(), "OpenJobObjectW({}): {}", group.location(), std::io::Error::last_os_error());
        JobView(h)
    }

    /// One `JOBOBJECTINFOCLASS` of the job.
    pub fn query<T>(&self, class: i32) -> std::io::Result<T> {
        // SAFETY: T is a plain C struct matching `class`; zeroes are valid.
        let mut v: T = unsafe { zeroed() };
        // SAFETY: `v` is writable for its size.
        let ok = unsafe {
            QueryInformationJobObject(
                self.0,
                class,
                (&mut v as *mut T).cast(),
                size_of::<T>() as u32,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(v)
    }

    /// `(ActiveProcesses, TotalProcesses)`.
    pub fn accounting(&self) -> (u32, u32) {
        let a: JOBOBJECT_BASIC_ACCOUNTING_INFORMATION =
            self.query(JobObjectBasicAccountingInformation).expect("query the job's accounting");
        (a.ActiveProcesses, a.TotalProcesses)
    }

    /// The pids the job lists now (at most 1024, plenty for a test).
    pub fn pids(&self) -> Vec<usize> {
        #[repr(C)]
        struct List {
            assigned: u32,
            listed: u32,
            ids: [usize; 1024],
        }
        let l: List = self.query(JobObjectBasicProcessIdList).expect("query the job's process list");
        l.ids[..l.listed as usize].to_vec()
    }
}

impl Drop for JobView {
    fn drop(&mut self) {
        // SAFETY: opened above, closed once.
        unsafe { CloseHandle(self.0) };
    }
}
