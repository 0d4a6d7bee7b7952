//! `corral service run -c FILE`: the process the Service Control Manager
//! starts. It connects to the SCM, runs the daemon with its output in
//! `state_dir/daemon.log` (a service has no console), reports running once
//! the API listens, and on a stop or shutdown request stops every service
//! the way `corral down` does before it reports stopped.

use super::status::Reporter;
use super::RunArgs;
use crate::supervise::{BAD_CONFIG, FAILED};
use corral_supervisor::api::Access;
use corral_supervisor::config::{self, Config};
use corral_supervisor::daemon::{self, Options};
use std::os::windows::io::IntoRawHandle;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;
use windows_sys::core::PWSTR;
use windows_sys::Win32::Foundation::ERROR_FAILED_SERVICE_CONTROLLER_CONNECT;
use windows_sys::Win32::System::Console::{SetStdHandle, STD_ERROR_HANDLE, STD_OUTPUT_HANDLE};
use windows_sys::Win32::System::Services::{StartServiceCtrlDispatcherW, SERVICE_TABLE_ENTRYW};

/// The config, for the service's main function, which the SCM calls with
/// the service's name only.
static CONFIG: OnceLock<PathBuf> = OnceLock::new();
/// The process's exit code, set by the service's main function.
static EXIT: AtomicU8 = AtomicU8::new(0);

pub fn main(a: RunArgs) -> u8 {
    let path = a.config.config.unwrap_or_else(config::default_config_path);
    let _ = CONFIG.set(std::path::absolute(&path).unwrap_or(path));
    // The name is not checked for a service that owns its process, but it
    // must not be null.
    let mut name = [0u16; 1];
    let table = [
        SERVICE_TABLE_ENTRYW { lpServiceName: name.as_mut_ptr(), lpServiceProc: Some(service_main) },
        SERVICE_TABLE_ENTRYW { lpServiceName: std::ptr::null_mut(), lpServiceProc: None },
    ];
    // SAFETY: a table ended by a null entry, alive until the call returns,
    // which it does once the service has stopped.
    if unsafe { StartServiceCtrlDispatcherW(table.as_ptr()) } == 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT as i32) {
            crate::exit::error(
                "`corral service run` is for the Service Control Manager; use `corral service start`, or `corral up` in a console",
            );
        } else {
            crate::exit::error(format!("cannot connect to the Service Control Manager: {e}"));
        }
        return FAILED;
    }
    EXIT.load(Ordering::SeqCst)
}

/// The service's main function, on a thread of the SCM dispatcher.
unsafe extern "system" fn service_main(argc: u32, argv: *mut PWSTR) {
    // argv[0] is the name the service was started under.
    let name = if argc > 0 && !argv.is_null() {
        // SAFETY: the SCM passes `argc` valid NUL-terminated strings.
        unsafe { super::scm::from_wide(*argv) }
    } else {
        super::DEFAULT_NAME.to_string()
    };
    let r = match Reporter::register(&name) {
        Ok(r) => r,
        Err(e) => {
            // Nobody reads this (no console), but a debugger might.
            eprintln!("corral: cannot register the service control handler: {e}");
            EXIT.store(FAILED, Ordering::SeqCst);
            return;
        }
    };
    let result = serve(r, &name);
    if let Err(code) = result {
        EXIT.store(code as u8, Ordering::SeqCst);
    }
    r.stopped(result);
}

/// Runs the daemon until it ends; `Err` is the exit code.
fn serve(r: &'static Reporter, name: &str) -> Result<(), u32> {
    let path = CONFIG.get().cloned().unwrap_or_default();
    // The SCM has no place for these lines; `corral service start` names
    // the exit code and tells to run `corral check`.
    let config = config::load(&path).map_err(|_| u32::from(BAD_CONFIG))?;
    log_to(&config).map_err(|_| u32::from(FAILED))?;
    eprintln!("corral: service `{name}` starting (pid {}, config {})", std::process::id(), path.display());
    // The same runtime as `corral up`'s: sized for a daemon, and on Windows
    // with room for a blocking read per pipe of every instance.
    let rt = corral_supervisor::runtime::daemon().map_err(|e| {
        eprintln!("corral: cannot start the daemon's runtime: {e}");
        u32::from(FAILED)
    })?;
    let result = rt.block_on(async {
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                r.tick();
            }
        });
        let listening = Arc::new(Notify::new());
        let opts = Options {
            echo: None,
            access: Access::OwnerAndAdministrators,
            stop: Some(r.stop.clone()),
            listening: Some(listening.clone()),
        };
        let mut daemon = tokio::spawn(daemon::run(config, opts));
        let result = tokio::select! {
            _ = listening.notified() => {
                r.running();
                (&mut daemon).await
            }
            result = &mut daemon => result,
        };
        ticker.abort();
        result
    });
    // Whatever is left (a request still streaming) must not hold up the
    // report: the SCM may end the process once it reads "stopped".
    rt.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(Ok(())) => {
            eprintln!("corral: service `{name}` stopped");
            Ok(())
        }
        Ok(Err(e)) => {
            eprintln!("corral: {e}");
            Err(u32::from(FAILED))
        }
        Err(e) => {
            eprintln!("corral: the daemon failed: {e}");
            Err(u32::from(FAILED))
        }
    }
}

/// Points this process's stdout and stderr at `state_dir/daemon.log`
/// (appended), as `corral up -d` does: std looks the handles up at each
/// write, so every later line lands there.
fn log_to(config: &Config) -> std::io::Result<()> {
    let file = corral_supervisor::daemon::open_daemon_log(&config.daemon.state_dir)?;
    // The handle stays open for the life of the process.
    let h = file.into_raw_handle();
    // SAFETY: `h` is an open file handle owned by nobody else now.
    unsafe {
        SetStdHandle(STD_OUTPUT_HANDLE, h);
        SetStdHandle(STD_ERROR_HANDLE, h);
    }
    Ok(())
}
