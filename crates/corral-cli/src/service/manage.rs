//! `corral service install|uninstall|start|stop`: what an administrator
//! does with the SCM, each verb waiting (bounded) until the service is in
//! the state it asked for.

use super::account::{Account, PASSWORD_VAR};
use super::scm::{self, Handle, NewService, ScmError, DELETE, WRITE_DAC};
use super::{cmdline, InstallArgs, SERVICE_SDDL};
use crate::exit::error;
use crate::supervise::{load, FAILED};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{
    ERROR_INVALID_LEVEL, ERROR_SERVICE_ALREADY_RUNNING, ERROR_SERVICE_CANNOT_ACCEPT_CTRL, ERROR_SERVICE_DOES_NOT_EXIST,
    ERROR_SERVICE_NOT_ACTIVE, ERROR_SERVICE_SPECIFIC_ERROR, TRUE,
};
use windows_sys::Win32::System::Services::{
    SC_ACTION, SC_ACTION_RESTART, SC_MANAGER_CONNECT, SC_MANAGER_CREATE_SERVICE, SERVICE_CHANGE_CONFIG,
    SERVICE_CONFIG_DESCRIPTION, SERVICE_CONFIG_FAILURE_ACTIONS, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG,
    SERVICE_CONFIG_SERVICE_SID_INFO, SERVICE_DESCRIPTIONW, SERVICE_FAILURE_ACTIONSW, SERVICE_FAILURE_ACTIONS_FLAG,
    SERVICE_QUERY_CONFIG, SERVICE_QUERY_STATUS, SERVICE_RUNNING, SERVICE_SID_INFO, SERVICE_SID_TYPE_UNRESTRICTED,
    SERVICE_START, SERVICE_START_PENDING, SERVICE_STATUS_PROCESS, SERVICE_STOP, SERVICE_STOPPED,
};

/// How long `start` waits for the API to listen.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long `stop` waits for the checkpoint to move before it gives up;
/// the service ticks every second while its services stop.
const STOP_STALL_LIMIT: Duration = Duration::from_secs(30);
/// How long `stop` waits in all.
const STOP_LIMIT: Duration = Duration::from_secs(600);

fn fail(e: impl std::fmt::Display) -> u8 {
    error(e);
    FAILED
}

pub fn install(a: InstallArgs) -> u8 {
    // A config that does not load is never registered (exit 2).
    let config = match load(&a.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let account = match Account::parse(&a.account) {
        Ok(acc) => acc,
        Err(e) => return fail(e),
    };
    let password = match account.needs_password() {
        true => match std::env::var(PASSWORD_VAR) {
            Ok(p) => Some(p),
            Err(_) => return fail(format!("{} needs a password: set {PASSWORD_VAR}", account.start_name())),
        },
        false => None,
    };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return fail(format!("cannot find corral.exe itself: {e}")),
    };
    let cfg = std::path::absolute(&config.path).unwrap_or(config.path.clone());
    let name = a.name.name.as_str();
    let binary_path = cmdline::service_command(&exe, &cfg);
    let display_name = if name == super::DEFAULT_NAME {
        "corral supervisor".to_string()
    } else {
        format!("corral supervisor ({name})")
    };
    let new = NewService {
        name,
        display_name: &display_name,
        binary_path: &binary_path,
        account: account.start_name(),
        password: password.as_deref(),
    };
    let created = scm::manager(SC_MANAGER_CREATE_SERVICE).and_then(|m| {
        m.create(&new, SERVICE_CHANGE_CONFIG | SERVICE_QUERY_CONFIG | SERVICE_START | WRITE_DAC | DELETE)
    });
    let svc = match created {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if let Err(e) = configure(&svc, &cfg) {
        // Half a service is worse than none.
        let _ = svc.delete();
        return fail(e);
    }
    println!("corral: installed service `{name}` ({}, automatic start): {binary_path}", account.start_name());
    println!(
        "corral: it must be able to read {} and write {}; start it with `corral service start --name {name}`",
        cfg.display(),
        config.daemon.state_dir.display()
    );
    0
}

/// Description, recovery, service SID and ACL of a new service.
fn configure(svc: &Handle, cfg: &std::path::Path) -> Result<(), ScmError> {
    let mut text =
        scm::wide(&format!("Keeps the services of {} alive (corral up as a Windows service).", cfg.display()));
    let description = SERVICE_DESCRIPTIONW { lpDescription: text.as_mut_ptr() };
    optional("a description", svc.set_config2(SERVICE_CONFIG_DESCRIPTION, &description, "describe"))?;
    // Restart the daemon 5 s after it fails, twice, then every 60 s; a day
    // without failure resets the count.
    let mut actions = [
        SC_ACTION { Type: SC_ACTION_RESTART, Delay: 5_000 },
        SC_ACTION { Type: SC_ACTION_RESTART, Delay: 5_000 },
        SC_ACTION { Type: SC_ACTION_RESTART, Delay: 60_000 },
    ];
    let failure = SERVICE_FAILURE_ACTIONSW {
        dwResetPeriod: 24 * 60 * 60,
        lpRebootMsg: std::ptr::null_mut(),
        lpCommand: std::ptr::null_mut(),
        cActions: actions.len() as u32,
        lpsaActions: actions.as_mut_ptr(),
    };
    optional(
        "recovery actions",
        svc.set_config2(SERVICE_CONFIG_FAILURE_ACTIONS, &failure, "set the recovery actions of"),
    )?;
    // A daemon that stops with an error (not only a crash) is restarted too.
    let flag = SERVICE_FAILURE_ACTIONS_FLAG { fFailureActionsOnNonCrashFailures: TRUE };
    optional(
        "recovery after an error exit",
        svc.set_config2(SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, &flag, "set the recovery actions of"),
    )?;
    // Its own SID, NT SERVICE\<name>, in its token: files can be shared
    // with this service alone.
    let sid = SERVICE_SID_INFO { dwServiceSidType: SERVICE_SID_TYPE_UNRESTRICTED };
    optional("a service SID", svc.set_config2(SERVICE_CONFIG_SERVICE_SID_INFO, &sid, "give a service SID to"))?;
    svc.set_dacl(SERVICE_SDDL)
}

/// A setting this SCM does not know (ERROR_INVALID_LEVEL: Wine, or an
/// old Windows) is left out with a note; the service works without it.
fn optional(setting: &str, r: Result<(), ScmError>) -> Result<(), ScmError> {
    match r {
        Err(e) if e.code == ERROR_INVALID_LEVEL => {
            eprintln!("corral: note: this Service Control Manager does not support {setting}; installed without it");
            Ok(())
        }
        r => r,
    }
}

pub fn start(name: &str) -> u8 {
    let svc = match scm::manager(SC_MANAGER_CONNECT)
        .and_then(|m| m.open(name, SERVICE_START | SERVICE_QUERY_STATUS | SERVICE_QUERY_CONFIG))
    {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match svc.start() {
        Ok(()) => {}
        Err(e) if e.code == ERROR_SERVICE_ALREADY_RUNNING => {
            println!("corral: service `{name}` is already running");
            return 0;
        }
        Err(e) => return fail(e),
    }
    let end = Instant::now() + START_LIMIT;
    loop {
        let st = match svc.status() {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        match st.dwCurrentState {
            SERVICE_RUNNING => {
                println!("corral: service `{name}` is running (pid {})", st.dwProcessId);
                return 0;
            }
            SERVICE_STOPPED => return fail(why_stopped(&svc, name, &st)),
            _ if Instant::now() > end => {
                return fail(format!(
                    "service `{name}` did not report running within {}s; see its daemon.log{}",
                    START_LIMIT.as_secs(),
                    log_hint(&svc)
                ))
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Why a service that was started stopped again, from its exit codes.
fn why_stopped(svc: &Handle, name: &str, st: &SERVICE_STATUS_PROCESS) -> String {
    let config = config_of(svc);
    let shown = config.as_ref().map_or("its config".to_string(), |c| c.display().to_string());
    match (st.dwWin32ExitCode, st.dwServiceSpecificExitCode) {
        (ERROR_SERVICE_SPECIFIC_ERROR, 2) => {
            format!("service `{name}` stopped at once: {shown} does not load; `corral check -c {shown}` says why")
        }
        (ERROR_SERVICE_SPECIFIC_ERROR, code) => {
            format!("service `{name}` stopped at once (exit code {code}); see its daemon.log{}", log_hint(svc))
        }
        (code, _) => format!(
            "service `{name}` stopped at once: {}; see its daemon.log{}",
            std::io::Error::from_raw_os_error(code as i32),
            log_hint(svc)
        ),
    }
}

/// The config a service runs, read back from its command line.
fn config_of(svc: &Handle) -> Option<PathBuf> {
    let reg = svc.registration().ok()?;
    cmdline::config_of(&reg.binary_path).map(PathBuf::from)
}

/// ` (<state_dir>\daemon.log)` when the service's config says where.
fn log_hint(svc: &Handle) -> String {
    config_of(svc)
        .and_then(|c| corral_supervisor::config::load(&c).ok())
        .map(|c| format!(" ({})", c.daemon.state_dir.join("daemon.log").display()))
        .unwrap_or_default()
}

pub fn stop(name: &str) -> u8 {
    let svc = match scm::manager(SC_MANAGER_CONNECT).and_then(|m| m.open(name, SERVICE_STOP | SERVICE_QUERY_STATUS)) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match stop_and_wait(&svc, name) {
        Ok(true) => {
            println!("corral: service `{name}` stopped");
            0
        }
        Ok(false) => {
            println!("corral: service `{name}` is not running");
            0
        }
        Err(e) => fail(e),
    }
}

/// Sends stop and waits until the service has stopped. `Ok(false)`: it
/// was not running.
fn stop_and_wait(svc: &Handle, name: &str) -> Result<bool, String> {
    let start = Instant::now();
    loop {
        match svc.control_stop() {
            Ok(()) => break,
            Err(e) if e.code == ERROR_SERVICE_NOT_ACTIVE => return Ok(false),
            // Still starting (it accepts stop once it runs), or already
            // stopping (then wait for it like for our own request).
            Err(e) if e.code == ERROR_SERVICE_CANNOT_ACCEPT_CTRL => {
                if svc.status().map_err(|e| e.to_string())?.dwCurrentState != SERVICE_START_PENDING {
                    break;
                }
                if start.elapsed() > START_LIMIT {
                    return Err(format!(
                        "service `{name}` is still starting after {}s; try again",
                        START_LIMIT.as_secs()
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let mut last = (Instant::now(), u32::MAX);
    loop {
        let st = svc.status().map_err(|e| e.to_string())?;
        if st.dwCurrentState == SERVICE_STOPPED {
            return Ok(true);
        }
        if st.dwCheckPoint != last.1 {
            last = (Instant::now(), st.dwCheckPoint);
        }
        if last.0.elapsed() > STOP_STALL_LIMIT || start.elapsed() > STOP_LIMIT {
            return Err(format!(
                "service `{name}` did not stop within {}s (still stopping); see its daemon.log, or try again",
                start.elapsed().as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn uninstall(name: &str) -> u8 {
    let manager = match scm::manager(SC_MANAGER_CONNECT) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let svc = match manager.open(name, DELETE | SERVICE_STOP | SERVICE_QUERY_STATUS) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    // Stop first: a deleted service that still runs lingers until it ends.
    let stopped = match svc.status() {
        Ok(st) if st.dwCurrentState != SERVICE_STOPPED => match stop_and_wait(&svc, name) {
            Ok(s) => s,
            Err(e) => return fail(e),
        },
        Ok(_) => false,
        Err(e) => return fail(e),
    };
    if let Err(e) = svc.delete() {
        return fail(e);
    }
    drop(svc);
    // The SCM removes it once the last handle is closed; tools such as
    // services.msc may hold one.
    let end = Instant::now() + Duration::from_secs(5);
    let gone = loop {
        match manager.open(name, SERVICE_QUERY_STATUS) {
            Err(e) if e.code == ERROR_SERVICE_DOES_NOT_EXIST => break true,
            _ if Instant::now() > end => break false,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let how = if stopped { "stopped and removed" } else { "removed" };
    if gone {
        println!("corral: service `{name}` {how}");
    } else {
        println!("corral: service `{name}` {how}; it disappears once other tools (services.msc) close it");
    }
    0
}
