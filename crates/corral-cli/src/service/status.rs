//! The running service's side of the SCM protocol: its status reports
//! and its control handler.
//!
//! The SCM gives a pending state as long as the service's checkpoint keeps
//! moving within the wait hint, so the service ticks while it starts and
//! while its services stop, however long their grace periods are.

use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Notify;
use windows_sys::Win32::Foundation::{ERROR_CALL_NOT_IMPLEMENTED, ERROR_SERVICE_SPECIFIC_ERROR, NO_ERROR};
use windows_sys::Win32::System::Services::{
    RegisterServiceCtrlHandlerExW, SetServiceStatus, SERVICE_ACCEPT_SHUTDOWN, SERVICE_ACCEPT_STOP,
    SERVICE_CONTROL_INTERROGATE, SERVICE_CONTROL_SHUTDOWN, SERVICE_CONTROL_STOP, SERVICE_RUNNING,
    SERVICE_START_PENDING, SERVICE_STATUS, SERVICE_STATUS_CURRENT_STATE, SERVICE_STOPPED, SERVICE_STOP_PENDING,
    SERVICE_WIN32_OWN_PROCESS,
};

/// How long the SCM should wait for the next checkpoint. Ticks come every
/// second; the margin covers a busy machine.
const WAIT_HINT_MS: u32 = 10_000;

/// The service's status and the stop request, shared with the control
/// handler, which the SCM calls on the dispatcher thread.
pub struct Reporter {
    handle: AtomicPtr<c_void>,
    status: Mutex<SERVICE_STATUS>,
    /// Notified on SERVICE_CONTROL_STOP or SHUTDOWN.
    pub stop: Arc<Notify>,
}

// One service per process: the handler finds it here, so no pointer
// crosses the FFI boundary as context.
static REPORTER: OnceLock<Reporter> = OnceLock::new();

impl Reporter {
    /// Registers the control handler for the service `name` and reports
    /// start-pending.
    pub fn register(name: &str) -> std::io::Result<&'static Reporter> {
        let r = REPORTER.get_or_init(|| Reporter {
            handle: AtomicPtr::new(std::ptr::null_mut()),
            status: Mutex::new(SERVICE_STATUS {
                dwServiceType: SERVICE_WIN32_OWN_PROCESS,
                dwCurrentState: SERVICE_START_PENDING,
                dwControlsAccepted: 0,
                dwWin32ExitCode: NO_ERROR,
                dwServiceSpecificExitCode: 0,
                dwCheckPoint: 0,
                dwWaitHint: WAIT_HINT_MS,
            }),
            stop: Arc::new(Notify::new()),
        });
        let w = super::scm::wide(name);
        // SAFETY: NUL-terminated name; `handler` lives as long as the
        // process and takes no context.
        let h = unsafe { RegisterServiceCtrlHandlerExW(w.as_ptr(), Some(handler), std::ptr::null()) };
        if h.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        r.handle.store(h, Ordering::SeqCst);
        r.set(SERVICE_START_PENDING, 0);
        Ok(r)
    }

    /// Reports `state`; pending states advance the checkpoint.
    fn set(&self, state: SERVICE_STATUS_CURRENT_STATE, accepted: u32) {
        let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        // A stop already under way is never reported as running again.
        if st.dwCurrentState == SERVICE_STOP_PENDING && state == SERVICE_RUNNING {
            return;
        }
        let pending = state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING;
        st.dwCheckPoint = if pending && st.dwCurrentState == state { st.dwCheckPoint + 1 } else { u32::from(pending) };
        st.dwWaitHint = if pending { WAIT_HINT_MS } else { 0 };
        st.dwCurrentState = state;
        st.dwControlsAccepted = accepted;
        self.report(&st);
    }

    fn report(&self, st: &SERVICE_STATUS) {
        // SAFETY: the handle from RegisterServiceCtrlHandlerExW, usable from
        // any thread; `st` is a complete status.
        unsafe { SetServiceStatus(self.handle.load(Ordering::SeqCst), st) };
    }

    /// The daemon listens: running, and stop and shutdown are accepted.
    pub fn running(&self) {
        self.set(SERVICE_RUNNING, SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN);
    }

    /// Re-reports a pending state with the next checkpoint; a no-op
    /// otherwise.
    pub fn tick(&self) {
        let state = self.status.lock().unwrap_or_else(|e| e.into_inner()).dwCurrentState;
        if state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING {
            self.set(state, 0);
        }
    }

    /// Stop-pending, and the daemon is told to stop.
    fn stop_requested(&self) {
        self.set(SERVICE_STOP_PENDING, 0);
        self.stop.notify_one();
    }

    /// The last report: stopped, with `Err(code)` as a service-specific
    /// exit code (1 the daemon failed, 2 bad config).
    pub fn stopped(&self, result: Result<(), u32>) {
        let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        st.dwCurrentState = SERVICE_STOPPED;
        st.dwControlsAccepted = 0;
        st.dwCheckPoint = 0;
        st.dwWaitHint = 0;
        (st.dwWin32ExitCode, st.dwServiceSpecificExitCode) = match result {
            Ok(()) => (NO_ERROR, 0),
            Err(code) => (ERROR_SERVICE_SPECIFIC_ERROR, code),
        };
        self.report(&st);
    }
}

/// Called by the SCM on the dispatcher thread; must return at once.
unsafe extern "system" fn handler(control: u32, _event: u32, _data: *mut c_void, _context: *mut c_void) -> u32 {
    let Some(r) = REPORTER.get() else { return ERROR_CALL_NOT_IMPLEMENTED };
    match control {
        SERVICE_CONTROL_STOP | SERVICE_CONTROL_SHUTDOWN => {
            r.stop_requested();
            NO_ERROR
        }
        SERVICE_CONTROL_INTERROGATE => NO_ERROR,
        _ => ERROR_CALL_NOT_IMPLEMENTED,
    }
}
