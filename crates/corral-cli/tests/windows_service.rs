//! `corral service` on Windows, for real (under Wine in CI, whose
//! services.exe is a Service Control Manager): a uniquely named service
//! for a temp config is installed, read back from the SCM, started,
//! reached over its pipe, stopped leaving no process, and uninstalled;
//! bad input registers nothing.
//!
//! Every pid is opened by the test itself as soon as it is known and must
//! have ended at the end. Every service is uninstalled by a Drop guard.
//! What Wine does not implement is checked on real Windows only, and the
//! test says so ("SKIPPED under Wine: ...").

#![cfg(windows)]

use std::ffi::c_void;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use windows_sys::Win32::Foundation::{
    CloseHandle, LocalFree, ERROR_INSUFFICIENT_BUFFER, ERROR_SERVICE_DOES_NOT_EXIST, NO_ERROR,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, GetSecurityInfo, SDDL_REVISION_1, SE_KERNEL_OBJECT,
};
use windows_sys::Win32::Security::{DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR};
use windows_sys::Win32::Storage::FileSystem::{CreateFileW, OPEN_EXISTING, READ_CONTROL};
use windows_sys::Win32::System::Services::{
    CloseServiceHandle, OpenSCManagerW, OpenServiceW, QueryServiceConfigW, QueryServiceObjectSecurity,
    QueryServiceStatusEx, QUERY_SERVICE_CONFIGW, SC_HANDLE, SC_MANAGER_CONNECT, SC_STATUS_PROCESS_INFO,
    SERVICE_AUTO_START, SERVICE_QUERY_CONFIG, SERVICE_QUERY_STATUS, SERVICE_RUNNING, SERVICE_STATUS_PROCESS,
    SERVICE_STOPPED, SERVICE_WIN32_OWN_PROCESS,
};

mod windows_support;

use windows_support::*;

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

/// # Safety
/// `p` is null or a NUL-terminated UTF-16 string.
unsafe fn from_wide(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: NUL-terminated, as promised.
    let len = (0..).take_while(|i| unsafe { *p.add(*i) } != 0).count();
    // SAFETY: `len` units are readable.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) })
}

/// An SCM or service handle, closed on drop.
struct Sc(SC_HANDLE);

impl Drop for Sc {
    fn drop(&mut self) {
        // SAFETY: opened by us, closed once.
        unsafe { CloseServiceHandle(self.0) };
    }
}

/// Opens the service `name` for queries; the OS error when that fails.
fn open_service(name: &str) -> Result<Sc, u32> {
    // SAFETY: null machine and database: the local one.
    let m = unsafe { OpenSCManagerW(std::ptr::null(), std::ptr::null(), SC_MANAGER_CONNECT) };
    assert!(!m.is_null(), "OpenSCManagerW: {}", std::io::Error::last_os_error());
    let m = Sc(m);
    let w = wide(name);
    // SAFETY: an open SCM handle and a NUL-terminated name.
    let h = unsafe { OpenServiceW(m.0, w.as_ptr(), SERVICE_QUERY_CONFIG | SERVICE_QUERY_STATUS | READ_CONTROL) };
    if h.is_null() {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as u32);
    }
    Ok(Sc(h))
}

fn assert_gone(name: &str) {
    match open_service(name) {
        Ok(_) => panic!("service {name} still exists"),
        Err(code) => assert_eq!(code, ERROR_SERVICE_DOES_NOT_EXIST, "OpenServiceW({name}) failed otherwise"),
    }
}

/// What QueryServiceConfigW says.
struct Registration {
    service_type: u32,
    start_type: u32,
    binary_path: String,
    account: String,
    display_name: String,
}

fn registration(s: &Sc) -> Registration {
    let mut needed = 0u32;
    // SAFETY: asking for the size only.
    unsafe { QueryServiceConfigW(s.0, std::ptr::null_mut(), 0, &mut needed) };
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(ERROR_INSUFFICIENT_BUFFER as i32));
    let mut buf = vec![0u64; (needed as usize).div_ceil(8)];
    let cfg = buf.as_mut_ptr().cast::<QUERY_SERVICE_CONFIGW>();
    // SAFETY: `buf` is writable for `needed` bytes and aligned.
    assert!(unsafe { QueryServiceConfigW(s.0, cfg, needed, &mut needed) } != 0);
    // SAFETY: filled by the call; the strings point into `buf`.
    unsafe {
        Registration {
            service_type: (*cfg).dwServiceType,
            start_type: (*cfg).dwStartType,
            binary_path: from_wide((*cfg).lpBinaryPathName),
            account: from_wide((*cfg).lpServiceStartName),
            display_name: from_wide((*cfg).lpDisplayName),
        }
    }
}

fn status(s: &Sc) -> SERVICE_STATUS_PROCESS {
    // SAFETY: all-zero is a valid SERVICE_STATUS_PROCESS.
    let mut st: SERVICE_STATUS_PROCESS = unsafe { std::mem::zeroed() };
    let mut needed = 0u32;
    // SAFETY: `st` is writable for its size.
    let ok = unsafe {
        QueryServiceStatusEx(
            s.0,
            SC_STATUS_PROCESS_INFO,
            (&mut st as *mut SERVICE_STATUS_PROCESS).cast(),
            std::mem::size_of::<SERVICE_STATUS_PROCESS>() as u32,
            &mut needed,
        )
    };
    assert!(ok != 0, "QueryServiceStatusEx: {}", std::io::Error::last_os_error());
    st
}

/// A security descriptor's DACL as SDDL.
fn dacl_sddl(sd: PSECURITY_DESCRIPTOR) -> String {
    let mut s: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sd` is valid; `s` receives a LocalAlloc'ed string.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut s,
            std::ptr::null_mut(),
        )
    };
    assert!(ok != 0, "{}", std::io::Error::last_os_error());
    // SAFETY: NUL-terminated output of the call above.
    let text = unsafe { from_wide(s) };
    // SAFETY: allocated by the API with LocalAlloc.
    unsafe { LocalFree(s.cast()) };
    text
}

/// The service object's DACL, as the SCM holds it.
fn service_dacl(s: &Sc) -> String {
    let mut buf = vec![0u64; 1024];
    let mut needed = 0u32;
    // SAFETY: `buf` is writable for its size in bytes.
    let ok = unsafe {
        QueryServiceObjectSecurity(
            s.0,
            DACL_SECURITY_INFORMATION,
            buf.as_mut_ptr().cast::<c_void>(),
            (buf.len() * 8) as u32,
            &mut needed,
        )
    };
    assert!(ok != 0, "QueryServiceObjectSecurity: {}", std::io::Error::last_os_error());
    dacl_sddl(buf.as_mut_ptr().cast())
}

/// The DACL of the pipe `name`, read through a client handle opened for
/// READ_CONTROL only.
fn pipe_dacl(name: &str) -> String {
    let w = wide(name);
    // SAFETY: NUL-terminated name; no security attributes or template.
    let h =
        unsafe { CreateFileW(w.as_ptr(), READ_CONTROL, 0, std::ptr::null(), OPEN_EXISTING, 0, std::ptr::null_mut()) };
    assert!(h as isize != -1, "open {name}: {}", std::io::Error::last_os_error());
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: an open handle with READ_CONTROL; `sd` receives a LocalAlloc'ed descriptor.
    let rc = unsafe {
        GetSecurityInfo(
            h,
            SE_KERNEL_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    // SAFETY: opened above, closed once.
    unsafe { CloseHandle(h) };
    assert_eq!(rc, 0, "GetSecurityInfo: {}", std::io::Error::from_raw_os_error(rc as i32));
    let text = dacl_sddl(sd);
    // SAFETY: allocated by GetSecurityInfo.
    unsafe { LocalFree(sd) };
    text
}

fn corral(args: &[&str]) -> Output {
    output(Command::new(CORRAL).args(args).stdin(Stdio::null()))
}

/// A temp folder with a config, and the service installed for it (if
/// any), uninstalled and removed on drop, also when the test fails.
struct Fixture {
    name: String,
    dir: PathBuf,
    cfg: PathBuf,
}

impl Fixture {
    fn new(tag: &str, toml: &str) -> Fixture {
        let name = format!("corral-test-{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("corral.toml");
        std::fs::write(&cfg, toml).unwrap();
        Fixture { name, dir, cfg }
    }

    fn cfg(&self) -> &str {
        self.cfg.to_str().unwrap()
    }

    /// `corral service <verb> --name <name> [extra...]`.
    fn service(&self, verb: &str, extra: &[&str]) -> Output {
        let mut args = vec!["service", verb, "--name", &self.name];
        args.extend_from_slice(extra);
        corral(&args)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if open_service(&self.name).is_ok() {
            let out = self.service("uninstall", &[]);
            if !out.status.success() {
                eprintln!("cleanup: uninstall {}: {}", self.name, text(&out.stderr));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sleeper_toml() -> String {
    let kit = corral_testkit::binary();
    format!(
        "[services.app]\ncommand = ['{}', '--children', '1', '--sleep', '120']\nstop = {{ grace = \"5s\" }}\n",
        kit.display()
    )
}

/// Installs, or says why it cannot be tested here and returns false.
fn install(f: &Fixture, extra: &[&str]) -> bool {
    let mut args = vec!["-c", f.cfg()];
    args.extend_from_slice(extra);
    let out = f.service("install", &args);
    let err = text(&out.stderr);
    if !out.status.success() && err.contains("access denied") && !wine() {
        eprintln!("SKIPPED: installing a service needs an elevated prompt: {err}");
        return false;
    }
    assert!(out.status.success(), "install: {}{err}", text(&out.stdout));
    true
}

#[test]
fn a_service_runs_the_daemon_and_stops_leaving_nothing() {
    let f = Fixture::new("life", &sleeper_toml());
    // LocalSystem: the default LocalService may not read a config in the
    // test user's profile on real Windows (Wine ignores the account).
    if !install(&f, &["--account", "LocalSystem"]) {
        return;
    }
    let svc = open_service(&f.name).expect("the service is registered");
    let reg = registration(&svc);
    assert_eq!(reg.service_type & SERVICE_WIN32_OWN_PROCESS, SERVICE_WIN32_OWN_PROCESS);
    assert_eq!(reg.start_type, SERVICE_AUTO_START);
    assert!(reg.account.eq_ignore_ascii_case("LocalSystem"), "account: {}", reg.account);
    // `"<this corral.exe>" service run -c <config>`, the config quoted when
    // it has spaces.
    let (program, args) = reg.binary_path[1..].split_once('"').unwrap_or_else(|| panic!("{}", reg.binary_path));
    assert!(reg.binary_path.starts_with('"'), "the program is quoted: {}", reg.binary_path);
    assert_eq!(std::fs::canonicalize(program).unwrap(), std::fs::canonicalize(CORRAL).unwrap(), "this corral");
    let quoted = if f.cfg().contains(' ') { format!("\"{}\"", f.cfg()) } else { f.cfg().to_string() };
    assert_eq!(args, format!(" service run -c {quoted}"), "for this config");
    assert_eq!(status(&svc).dwCurrentState, SERVICE_STOPPED, "installed, not started");

    let out = f.service("start", &[]);
    assert!(out.status.success(), "start: {}{}", text(&out.stdout), text(&out.stderr));
    let st = status(&svc);
    assert_eq!(st.dwCurrentState, SERVICE_RUNNING, "start returns once the service runs");
    let daemon = Proc::open(st.dwProcessId);

    // The API answers on the pipe, to the client verbs of this user.
    let instance = until(30, "app running", || {
        let out = corral(&["status", "-c", f.cfg(), "--json"]);
        assert!(out.status.success(), "status: {}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let i = v["instances"].as_array()?.first()?.clone();
        (i["state"] == "running").then_some(i)
    });
    let state_dir = f.dir.join(".corral");
    let app_log = state_dir.join("logs").join("app").join("0.log");
    let pids = until(30, "the testkit's ready line", || ready_pids(&app_log, 0));
    assert_eq!(Some(u64::from(pids[0])), instance["pid"].as_u64());
    assert_eq!(pids.len(), 2, "the leader and one child: {pids:?}");
    let procs: Vec<Proc> = pids.iter().map(|p| Proc::open(*p)).collect();

    // The daemon's output goes to state_dir/daemon.log (no console).
    let log = std::fs::read_to_string(state_dir.join("daemon.log")).expect("daemon.log");
    let pipe = log
        .lines()
        .find_map(|l| l.strip_prefix("corral: listening on "))
        .unwrap_or_else(|| panic!("daemon.log names the pipe: {log}"))
        .trim()
        .to_string();
    // In service mode the pipe also admits SYSTEM and Administrators.
    let dacl = pipe_dacl(&pipe);
    assert!(dacl.starts_with("D:P"), "a protected DACL: {dacl}");
    assert!(dacl.contains(";;;SY)") && dacl.contains(";;;BA)"), "SYSTEM and Administrators: {dacl}");
    assert_eq!(dacl.matches("(A;").count(), 3, "the daemon's user, SYSTEM, Administrators: {dacl}");

    // A second start is no error; a second daemon for the config is refused.
    let out = f.service("start", &[]);
    assert!(out.status.success() && text(&out.stdout).contains("already running"), "{}", text(&out.stderr));
    assert!(procs.iter().all(Proc::running), "nothing was restarted");

    // Stop: every service stops gracefully, then the daemon, then the process.
    let out = f.service("stop", &[]);
    assert!(out.status.success(), "stop: {}{}", text(&out.stdout), text(&out.stderr));
    let st = status(&svc);
    assert_eq!(st.dwCurrentState, SERVICE_STOPPED);
    assert_eq!(st.dwWin32ExitCode, NO_ERROR, "a clean stop: {}", st.dwWin32ExitCode);
    for p in &procs {
        assert!(!p.running(), "process {} survived the service stop", p.pid);
    }
    until(10, "the service process to exit", || (!daemon.running()).then_some(()));
    let log = std::fs::read_to_string(state_dir.join("daemon.log")).unwrap();
    assert!(log.contains("corral: stopping every service"), "{log}");
    assert!(log.contains(&format!("corral: service `{}` stopped", f.name)), "{log}");
    let out = corral(&["status", "-c", f.cfg()]);
    assert_eq!(out.status.code(), Some(1), "no daemon any more");

    // Stopping a stopped service is no error.
    let out = f.service("stop", &[]);
    assert!(out.status.success() && text(&out.stdout).contains("not running"), "{}", text(&out.stderr));

    // `corral down` ends the service as well, cleanly.
    let out = f.service("start", &[]);
    assert!(out.status.success(), "start again: {}{}", text(&out.stdout), text(&out.stderr));
    let daemon = Proc::open(status(&svc).dwProcessId);
    let pids = until(30, "the second run's ready line", || ready_pids(&app_log, 1));
    let procs: Vec<Proc> = pids.iter().map(|p| Proc::open(*p)).collect();
    let out = corral(&["down", "-c", f.cfg()]);
    assert!(out.status.success(), "down: {}", text(&out.stderr));
    let st = until(30, "the service to stop after corral down", || {
        let st = status(&svc);
        (st.dwCurrentState == SERVICE_STOPPED).then_some(st)
    });
    assert_eq!(st.dwWin32ExitCode, NO_ERROR, "corral down is a clean stop");
    for p in &procs {
        assert!(!p.running(), "process {} survived corral down", p.pid);
    }
    until(10, "the service process to exit", || (!daemon.running()).then_some(()));

    drop(svc);
    let out = f.service("uninstall", &[]);
    assert!(out.status.success(), "uninstall: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("removed"), "{}", text(&out.stdout));
    assert_gone(&f.name);
}

#[test]
fn install_defaults_to_local_service_with_the_service_acl() {
    let f = Fixture::new("dflt", &sleeper_toml());
    if !install(&f, &[]) {
        return;
    }
    let svc = open_service(&f.name).expect("the service is registered");
    let reg = registration(&svc);
    assert!(reg.account.eq_ignore_ascii_case(r"NT AUTHORITY\LocalService"), "account: {}", reg.account);
    assert_eq!(reg.start_type, SERVICE_AUTO_START);
    assert_eq!(reg.display_name, format!("corral supervisor ({})", f.name));
    let dacl = service_dacl(&svc);
    if wine() && dacl == "D:" {
        // Measured: SetServiceObjectSecurity succeeds, and the ACL read
        // back is always this fixed, empty one.
        eprintln!(
            "SKIPPED under Wine: the service ACL; Wine 8 does not store it (QueryServiceObjectSecurity reads back `D:`)"
        );
    } else {
        for want in ["(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;SY)", "(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;BA)", "(A;;CCLCRC;;;IU)"]
        {
            assert!(dacl.contains(want), "{want} in {dacl}");
        }
        assert_eq!(dacl.matches("(A;").count(), 3, "nobody else: {dacl}");
    }

    // Installing the same name again says so and changes nothing.
    let out = f.service("install", &["-c", f.cfg()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("service `{}` already exists", f.name)), "{err}");
    assert!(err.contains("corral service uninstall"), "the fix is named: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(open_service(&f.name).is_ok(), "the first registration stays");

    drop(svc);
    let out = f.service("uninstall", &[]);
    assert!(out.status.success(), "uninstall: {}", text(&out.stderr));
    assert_gone(&f.name);
}

#[test]
fn bad_input_registers_nothing() {
    // A config that does not load: exit 2, every error shown, no service.
    let f = Fixture::new("bad", "[services.app]\ncomand = ['x']\n");
    let out = f.service("install", &["-c", f.cfg()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("unknown key `comand`"), "{}", text(&out.stderr));
    assert_gone(&f.name);

    // An unknown account: exit 1, no service.
    std::fs::write(&f.cfg, sleeper_toml()).unwrap();
    let out = f.service("install", &["-c", f.cfg(), "--account", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown account `nobody`"), "{}", text(&out.stderr));
    assert_gone(&f.name);

    // Verbs on a service that does not exist name it and the fix.
    for verb in ["start", "stop", "uninstall"] {
        let out = f.service(verb, &[]);
        assert_eq!(out.status.code(), Some(1), "{verb}");
        let err = text(&out.stderr);
        assert!(err.contains(&format!("no service `{}`", f.name)) && err.contains("corral service install"), "{err}");
    }

    // Started by hand, `service run` says it is for the SCM.
    let out = corral(&["service", "run", "-c", f.cfg()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is for the Service Control Manager"), "{}", text(&out.stderr));
}
