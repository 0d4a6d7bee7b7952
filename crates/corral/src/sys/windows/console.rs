//! The polite half of a stop: Windows has no signals, so corral asks in
//! the three ways a Windows program may listen.
//!
//! 1. The group's stop event, `Local\corral-stop-<id>`, a manual-reset
//!    event whose name reaches every member in `CORRAL_STOP_EVENT`.
//!    Programs that cooperate wait on it. It is the only way that works
//!    for every program regardless of console or window, and the only one
//!    that works under Wine. Once set it stays set, so a member that starts
//!    during the stop sees it at once.
//! 2. `CTRL_BREAK_EVENT` to the leader's console process group (the leader
//!    is started with `CREATE_NEW_PROCESS_GROUP`, which also makes it
//!    ignore CTRL_C). It reaches only members that share corral's console
//!    and did not start their own group.
//! 3. `WM_CLOSE` to the visible top-level windows that members own, as
//!    `taskkill` without `/F` does.
//!
//! Trap: `GenerateConsoleCtrlEvent` given a pid that is not the id of a
//! live process group acts on the caller's whole console, corral included.
//! It is sent only while the leader is alive, which corral knows from the
//! leader's handle (that handle also keeps the pid from being reused).

use super::handle::{self, check, raw};
use std::collections::HashSet;
use std::io;
use std::os::windows::io::OwnedHandle;
use windows_sys::Win32::Foundation::{BOOL, HWND, LPARAM, TRUE};
use windows_sys::Win32::System::Console::{GenerateConsoleCtrlEvent, GetConsoleProcessList, CTRL_BREAK_EVENT};
use windows_sys::Win32::System::Threading::{CreateEventW, SetEvent};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    EnumWindows, GetWindow, GetWindowThreadProcessId, IsWindowVisible, PostMessageW, GW_OWNER, WM_CLOSE,
};

/// The group's named stop event, closed on drop.
pub(super) struct StopEvent {
    handle: OwnedHandle,
    name: String,
}

impl StopEvent {
    pub(super) fn create(id: &str) -> io::Result<StopEvent> {
        // A stale event of a dead controller with the same pid may still be
        // held by its leftovers: never share it (a stop would reach them).
        // SAFETY: the name is NUL-terminated; null attributes make the
        // handle non-inheritable (members open the event by name).
        let (handle, name) = handle::create_named(&format!(r"Local\corral-stop-{id}"), |w| unsafe {
            CreateEventW(std::ptr::null(), TRUE, 0, w)
        })?;
        Ok(StopEvent { handle, name })
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn set(&self) -> io::Result<()> {
        // SAFETY: the handle is live and has EVENT_MODIFY_STATE.
        check(unsafe { SetEvent(raw(&self.handle)) })
    }
}

/// Whether this process has a console that CTRL_BREAK could travel on.
pub(super) fn has_console() -> bool {
    let mut pids = [0u32; 4];
    // SAFETY: `pids` is writable for the count given.
    unsafe { GetConsoleProcessList(pids.as_mut_ptr(), pids.len() as u32) != 0 }
}

/// Sends CTRL_BREAK to the console process group `group` (the leader's
/// pid). The caller guarantees that the leader is alive.
pub(super) fn ctrl_break(group: u32) -> io::Result<()> {
    if group == 0 {
        // 0 would mean every process on our console, corral included.
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no process group"));
    }
    // SAFETY: no memory is passed.
    check(unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, group) })
}

struct Search<'a> {
    pids: &'a HashSet<u32>,
    posted: usize,
}

unsafe extern "system" fn visit(hwnd: HWND, lparam: LPARAM) -> BOOL {
    // SAFETY: `lparam` is the `&mut Search` that `close_windows` passed and
    // that outlives the EnumWindows call this callback runs in.
    let search = unsafe { &mut *(lparam as *mut Search<'_>) };
    let mut pid = 0u32;
    // SAFETY: `hwnd` comes from EnumWindows; `pid` is writable.
    unsafe { GetWindowThreadProcessId(hwnd, &mut pid) };
    // SAFETY: plain queries on a window handle EnumWindows gave us.
    let top = unsafe { GetWindow(hwnd, GW_OWNER).is_null() && IsWindowVisible(hwnd) != 0 };
    // SAFETY: posting is asynchronous and takes no pointers.
    if top && search.pids.contains(&pid) && unsafe { PostMessageW(hwnd, WM_CLOSE, 0, 0) } != 0 {
        search.posted += 1;
    }
    TRUE
}

/// Posts WM_CLOSE to every visible, unowned top-level window of `pids`.
/// Returns how many windows were asked.
pub(super) fn close_windows(pids: &HashSet<u32>) -> usize {
    if pids.is_empty() {
        return 0;
    }
    let mut search = Search { pids, posted: 0 };
    // SAFETY: `visit` only dereferences `lparam` as the `Search` that lives
    // on this stack frame until EnumWindows returns.
    unsafe { EnumWindows(Some(visit), &mut search as *mut Search<'_> as LPARAM) };
    search.posted
}
