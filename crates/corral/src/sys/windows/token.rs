//! The leader's access token: a restricted or low-integrity copy of
//! corral's own (what each means: `crate::isolation::Token`).
//!
//! Traps:
//! - `CreateRestrictedToken` ignores SIDs to disable that the token does
//!   not hold, so Administrators is named whether corral is elevated or not.
//! - Restricting SIDs apply to every access check, the leader's own
//!   process object, window station and desktop included: without the
//!   user and the logon SID among them the leader cannot even start.
//! - The integrity label is set on the new token afterwards
//!   (`TokenIntegrityLevel`); lowering it needs no privilege.
//! - The new token has the access of the handle it is made from: that
//!   handle asks for what `CreateProcessAsUserW` needs
//!   (`ASSIGN_PRIMARY | DUPLICATE | QUERY`) and `ADJUST_DEFAULT` for the label.

use super::handle::{self, check, raw};
use crate::Token;
use std::io;
use std::mem::size_of;
use std::os::windows::io::OwnedHandle;
use windows_sys::Win32::Security::{
    CopySid, CreateRestrictedToken, CreateWellKnownSid, GetLengthSid, GetTokenInformation, SetTokenInformation,
    TokenGroups, TokenIntegrityLevel, TokenUser, WinBuiltinAdministratorsSid, WinBuiltinUsersSid,
    WinLocalAccountAndAdministratorSid, WinLowLabelSid, WinRestrictedCodeSid, WinWorldSid, DISABLE_MAX_PRIVILEGE, PSID,
    SECURITY_MAX_SID_SIZE, SID_AND_ATTRIBUTES, TOKEN_ADJUST_DEFAULT, TOKEN_ASSIGN_PRIMARY, TOKEN_DUPLICATE,
    TOKEN_GROUPS, TOKEN_INFORMATION_CLASS, TOKEN_MANDATORY_LABEL, TOKEN_QUERY, TOKEN_USER, WELL_KNOWN_SID_TYPE,
};
use windows_sys::Win32::System::SystemServices::{SE_GROUP_INTEGRITY, SE_GROUP_LOGON_ID};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// The access the leader's token is made with (see the traps).
const ACCESS: u32 = TOKEN_ASSIGN_PRIMARY | TOKEN_DUPLICATE | TOKEN_QUERY | TOKEN_ADJUST_DEFAULT;

/// A SID of corral's own, in a buffer aligned for its sub-authorities.
struct Sid(Vec<u32>);

impl Sid {
    fn ptr(&self) -> PSID {
        self.0.as_ptr() as PSID
    }

    fn well_known(kind: WELL_KNOWN_SID_TYPE) -> io::Result<Sid> {
        let mut buf = vec![0u32; SECURITY_MAX_SID_SIZE as usize / 4];
        let mut len = SECURITY_MAX_SID_SIZE;
        // SAFETY: `buf` is writable for `len` bytes; no domain SID is
        // needed for these kinds.
        check(unsafe { CreateWellKnownSid(kind, std::ptr::null_mut(), buf.as_mut_ptr().cast(), &mut len) })?;
        Ok(Sid(buf))
    }

    /// A copy of a SID that lives in a buffer the OS filled.
    ///
    /// # Safety
    /// `sid` points to a valid SID.
    unsafe fn copy(sid: PSID) -> io::Result<Sid> {
        // SAFETY: the caller promises a valid SID.
        let len = unsafe { GetLengthSid(sid) };
        let mut buf = vec![0u32; (len as usize).div_ceil(4)];
        // SAFETY: `buf` holds `len` bytes; `sid` is valid.
        check(unsafe { CopySid(len, buf.as_mut_ptr().cast(), sid) })?;
        Ok(Sid(buf))
    }

    fn entry(&self, attributes: u32) -> SID_AND_ATTRIBUTES {
        SID_AND_ATTRIBUTES { Sid: self.ptr(), Attributes: attributes }
    }
}

/// The token the leader gets for `kind`.
pub(super) fn for_leader(kind: Token) -> io::Result<OwnedHandle> {
    let own = own_token()?;
    match kind {
        Token::Restricted => restricted(&own),
        Token::LowIntegrity => {
            let t = filtered(&own, &[], &[])?;
            set_low_integrity(&t)?;
            Ok(t)
        }
        // `Token` is non-exhaustive for users, never for corral itself.
        #[allow(unreachable_patterns)]
        other => Err(io::Error::new(io::ErrorKind::Unsupported, format!("no {other} token on Windows yet"))),
    }
}

fn own_token() -> io::Result<OwnedHandle> {
    let mut h = std::ptr::null_mut();
    // SAFETY: the pseudo handle of the current process is always valid;
    // `h` is writable.
    check(unsafe { OpenProcessToken(GetCurrentProcess(), ACCESS, &mut h) })?;
    handle::from_null(h)
}

/// `DISABLE_MAX_PRIVILEGE`, with these SIDs deny-only and these
/// restricting SIDs.
fn filtered(own: &OwnedHandle, deny: &[Sid], restrict: &[Sid]) -> io::Result<OwnedHandle> {
    let deny: Vec<SID_AND_ATTRIBUTES> = deny.iter().map(|s| s.entry(0)).collect();
    let restrict: Vec<SID_AND_ATTRIBUTES> = restrict.iter().map(|s| s.entry(0)).collect();
    let mut new = std::ptr::null_mut();
    // SAFETY: the arrays and the SIDs they point to live across the call;
    // counts match; `new` is writable.
    check(unsafe {
        CreateRestrictedToken(
            raw(own),
            DISABLE_MAX_PRIVILEGE,
            deny.len() as u32,
            if deny.is_empty() { std::ptr::null() } else { deny.as_ptr() },
            0,
            std::ptr::null(),
            restrict.len() as u32,
            if restrict.is_empty() { std::ptr::null() } else { restrict.as_ptr() },
            &mut new,
        )
    })?;
    handle::from_null(new)
}

fn restricted(own: &OwnedHandle) -> io::Result<OwnedHandle> {
    let mut deny = vec![Sid::well_known(WinBuiltinAdministratorsSid)?];
    // Windows 8.1 and later (and not Wine 8) know this one.
    deny.extend(Sid::well_known(WinLocalAccountAndAdministratorSid).ok());
    let mut restrict = vec![
        Sid::well_known(WinWorldSid)?,
        Sid::well_known(WinBuiltinUsersSid)?,
        Sid::well_known(WinRestrictedCodeSid)?,
        user_sid(own)?,
    ];
    restrict.extend(logon_sid(own)?);
    filtered(own, &deny, &restrict)
}

fn set_low_integrity(t: &OwnedHandle) -> io::Result<()> {
    let low = Sid::well_known(WinLowLabelSid)?;
    let label = TOKEN_MANDATORY_LABEL { Label: low.entry(SE_GROUP_INTEGRITY as u32) };
    // SAFETY: the SID the label points to lives across the call; the size
    // counts the SID as the API asks.
    let size = size_of::<TOKEN_MANDATORY_LABEL>() as u32 + unsafe { GetLengthSid(low.ptr()) };
    // SAFETY: `label` is valid for the class; `t` has TOKEN_ADJUST_DEFAULT.
    check(unsafe {
        SetTokenInformation(raw(t), TokenIntegrityLevel, (&label as *const TOKEN_MANDATORY_LABEL).cast(), size)
    })
}

/// One class of token information, in a buffer aligned for its structure.
fn query(t: &OwnedHandle, class: TOKEN_INFORMATION_CLASS) -> io::Result<Vec<usize>> {
    let mut need = 0u32;
    // SAFETY: a size probe: no buffer, `need` is writable. It fails with
    // ERROR_INSUFFICIENT_BUFFER by design.
    unsafe { GetTokenInformation(raw(t), class, std::ptr::null_mut(), 0, &mut need) };
    let mut buf = vec![0usize; (need as usize).div_ceil(size_of::<usize>()).max(1)];
    let bytes = (buf.len() * size_of::<usize>()) as u32;
    // SAFETY: `buf` is writable for `bytes` bytes and aligned for the class.
    check(unsafe { GetTokenInformation(raw(t), class, buf.as_mut_ptr().cast(), bytes, &mut need) })?;
    Ok(buf)
}

fn user_sid(t: &OwnedHandle) -> io::Result<Sid> {
    let buf = query(t, TokenUser)?;
    // SAFETY: the buffer starts with a TOKEN_USER whose SID points into it.
    unsafe { Sid::copy((*buf.as_ptr().cast::<TOKEN_USER>()).User.Sid) }
}

/// The logon session's SID; a service's token may have none.
fn logon_sid(t: &OwnedHandle) -> io::Result<Option<Sid>> {
    let buf = query(t, TokenGroups)?;
    let groups = buf.as_ptr().cast::<TOKEN_GROUPS>();
    // SAFETY: the buffer starts with a TOKEN_GROUPS whose GroupCount
    // entries follow it in the same buffer.
    let all = unsafe { std::slice::from_raw_parts((*groups).Groups.as_ptr(), (*groups).GroupCount as usize) };
    let logon = SE_GROUP_LOGON_ID as u32;
    match all.iter().find(|g| g.Attributes & logon == logon) {
        // SAFETY: the entry's SID points into the buffer, still alive.
        Some(g) => unsafe { Sid::copy(g.Sid) }.map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use windows_sys::Win32::Security::{GetSidSubAuthority, GetSidSubAuthorityCount, IsTokenRestricted};

    fn integrity(t: &OwnedHandle) -> u32 {
        let buf = query(t, TokenIntegrityLevel).unwrap();
        // SAFETY: the buffer starts with a TOKEN_MANDATORY_LABEL whose SID
        // points into it.
        unsafe {
            let sid = (*buf.as_ptr().cast::<TOKEN_MANDATORY_LABEL>()).Label.Sid;
            *GetSidSubAuthority(sid, u32::from(*GetSidSubAuthorityCount(sid)) - 1)
        }
    }

    /// The tokens as made, before any process runs with them. Wine makes
    /// them but keeps neither the label nor the restricting SIDs.
    #[test]
    fn the_made_tokens_are_low_or_restricted() {
        let wine = super::super::ntdll::wine_version().is_some();
        let low = for_leader(Token::LowIntegrity).unwrap();
        let restricted = for_leader(Token::Restricted).unwrap();
        // SAFETY: live token with TOKEN_QUERY.
        let is_restricted = unsafe { IsTokenRestricted(raw(&restricted)) } != 0;
        let (low_level, own_level) = (integrity(&low), integrity(&own_token().unwrap()));
        if wine && (low_level != 0x1000 || !is_restricted) {
            eprintln!(
                "SKIPPED under Wine (real Windows only): made tokens say Low={low_level:#x} (own {own_level:#x}), \
                 restricted={is_restricted}"
            );
            return;
        }
        assert_eq!(low_level, 0x1000);
        assert!(is_restricted);
        assert_eq!(integrity(&restricted), own_level, "restricted keeps the caller's level");
    }
}
