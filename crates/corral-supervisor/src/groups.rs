//! Group names to ids, for `group` and `supplementary_groups` (Unix).

/// Resolves a group name or a numeric gid that exists.
#[cfg(unix)]
pub fn lookup(group: &str) -> Result<u32, String> {
    use std::ffi::CString;
    let mut grp: libc::group = unsafe {
        // SAFETY: group is plain old data; all-zero is a valid value that
        // getgrnam_r overwrites.
        std::mem::zeroed()
    };
    // Large groups list many members: grow the buffer on ERANGE, bounded.
    let mut len = 16 * 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = if let Ok(gid) = group.parse::<u32>() {
            // SAFETY: every pointer is valid for the call and buf's length is passed.
            unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) }
        } else {
            let c = CString::new(group).map_err(|_| format!("invalid group name {group:?}"))?;
            // SAFETY: as above; `c` is NUL-terminated.
            unsafe { libc::getgrnam_r(c.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) }
        };
        if rc == libc::ERANGE && len < 1 << 20 {
            len *= 4;
            continue;
        }
        if rc != 0 || result.is_null() {
            return Err(format!("no such group `{group}`"));
        }
        return Ok(grp.gr_gid);
    }
}

/// Groups are a Unix notion; the config check refuses them elsewhere.
#[cfg(not(unix))]
pub fn lookup(_group: &str) -> Result<u32, String> {
    Err("groups are supported on Unix only".to_string())
}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn names_and_numbers_resolve_and_unknown_ones_do_not() {
        assert_eq!(super::lookup("0"), Ok(0));
        assert_eq!(super::lookup("root"), Ok(0));
        assert!(super::lookup("corral-no-such-group").unwrap_err().contains("no such group"));
    }
}
