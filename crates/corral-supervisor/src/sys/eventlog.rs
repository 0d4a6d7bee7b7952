//! Windows: the Event Log, through `RegisterEventSourceW("corral")` and
//! `ReportEventW`, as the seed's controller did with `Write-EventLog`.
//!
//! Traps: the source `corral` is not registered under
//! `HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application` (that
//! needs an administrator and a message DLL), so the Event Viewer shows
//! each record with a note that the description was not found, followed by
//! the text; the text itself is intact. `RegisterEventSourceW` works
//! without the registration (it falls back to the Application log). Under
//! Wine both calls succeed and the records go nowhere visible: that the
//! Event Viewer shows them needs real Windows.

use std::io;
use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::EventLog::{
    DeregisterEventSource, RegisterEventSourceW, ReportEventW, EVENTLOG_INFORMATION_TYPE, EVENTLOG_WARNING_TYPE,
};

/// The longest text one record takes (ReportEventW's limit is 31839
/// characters per string); longer text is cut.
const MAX_CHARS: usize = 31_000;

/// An event source handle, deregistered on drop.
#[derive(Debug)]
pub(crate) struct EventSource(HANDLE);

// SAFETY: an event log handle is not tied to the thread that opened it;
// ReportEventW may be called from any thread.
unsafe impl Send for EventSource {}

impl EventSource {
    /// Registers the source `corral` on this machine.
    pub(crate) fn open() -> io::Result<EventSource> {
        let name: Vec<u16> = "corral".encode_utf16().chain([0]).collect();
        // SAFETY: `name` is NUL-terminated UTF-16; a null server is this machine.
        let h = unsafe { RegisterEventSourceW(std::ptr::null(), name.as_ptr()) };
        if h.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(EventSource(h))
    }

    /// Writes one record: information, or a warning (`warning`, for
    /// stderr lines).
    pub(crate) fn report(&self, text: &str, warning: bool) -> io::Result<()> {
        let wide: Vec<u16> = text.encode_utf16().take(MAX_CHARS).chain([0]).collect();
        let strings = [wide.as_ptr()];
        let kind = if warning { EVENTLOG_WARNING_TYPE } else { EVENTLOG_INFORMATION_TYPE };
        // SAFETY: an open source; one NUL-terminated string that outlives
        // the call; no SID and no raw data.
        let ok =
            unsafe { ReportEventW(self.0, kind, 0, 0, std::ptr::null_mut(), 1, 0, strings.as_ptr(), std::ptr::null()) };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for EventSource {
    fn drop(&mut self) {
        // SAFETY: registered by `open`, deregistered once.
        unsafe { DeregisterEventSource(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under Wine this proves the calls succeed; that the Event Viewer
    /// shows the records needs real Windows.
    #[test]
    fn records_are_reported_under_the_corral_source() {
        let s = EventSource::open().expect("RegisterEventSourceW(\"corral\")");
        s.report("corral test: an information record", false).expect("ReportEventW information");
        s.report("corral test: a warning record", true).expect("ReportEventW warning");
        s.report(&"x".repeat(40_000), false).expect("a long text is cut, not refused");
    }
}
