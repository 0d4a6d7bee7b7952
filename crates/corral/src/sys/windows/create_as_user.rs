//! Starting the leader under a token of corral's choosing
//! (`CreateProcessAsUserW`). std's `Command` cannot take a token, so this
//! file builds what std would: the command line, the environment block,
//! the stdio handles; the caller assigns the suspended process to the job
//! and resumes it, as for every leader (`spawn.rs`).
//!
//! Traps:
//! - The child inherits exactly the handles listed in
//!   `PROC_THREAD_ATTRIBUTE_HANDLE_LIST`, and those must be inheritable.
//!   corral's copies for the child are made inheritable only for the call
//!   and closed right after it. A std spawn on another thread in that
//!   instant (which inherits every inheritable handle) could get one too:
//!   std closes that race with a lock code outside std cannot take.
//! - Names in the environment differ by case only once (`Path` is `PATH`),
//!   and the block is sorted case-insensitively, as Windows expects.
//! - Quoting follows the rules programs use to split their command line
//!   (`CommandLineToArgvW`, the C runtime): backslashes are literal unless
//!   they precede a quote.

use super::handle::{self, check, raw, wide};
use crate::command::{Stdio, StdioKind};
use std::ffi::{OsStr, OsString};
use std::io;
use std::mem::{size_of, zeroed};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::OwnedHandle;
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdin, ChildStdout};
use windows_sys::Win32::Foundation::{
    DuplicateHandle, SetHandleInformation, DUPLICATE_SAME_ACCESS, GENERIC_READ, GENERIC_WRITE, HANDLE,
    HANDLE_FLAG_INHERIT, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{CreateFileW, FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING};
use windows_sys::Win32::System::Console::{GetStdHandle, STD_ERROR_HANDLE, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE};
use windows_sys::Win32::System::Threading::{
    CreateProcessAsUserW, DeleteProcThreadAttributeList, GetCurrentProcess, InitializeProcThreadAttributeList,
    UpdateProcThreadAttribute, CREATE_UNICODE_ENVIRONMENT, EXTENDED_STARTUPINFO_PRESENT, PROCESS_INFORMATION,
    PROC_THREAD_ATTRIBUTE_HANDLE_LIST, STARTF_USESTDHANDLES, STARTUPINFOEXW,
};

/// A process created suspended, with corral's ends of its pipes.
pub(super) struct Created {
    pub pid: u32,
    pub process: OwnedHandle,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
}

/// Creates `cmd` suspended under `token`, with `extra` set over its
/// environment and `flags` added to the creation flags.
pub(super) fn create_suspended(
    token: &OwnedHandle,
    cmd: crate::Command,
    extra: &[(&str, &str)],
    flags: u32,
) -> io::Result<Created> {
    let base: Vec<(OsString, OsString)> = if cmd.env_clear { Vec::new() } else { std::env::vars_os().collect() };
    let mut env = apply_env(base, &cmd.env);
    for (k, v) in extra {
        env = apply_env(env, &[(OsString::from(k), Some(OsString::from(v)))]);
    }
    let path_var = env.iter().find(|(k, _)| eq_name(k, OsStr::new("PATH"))).map(|(_, v)| v.clone());
    let app = resolve_program(&cmd.program, path_var.as_deref()).map(wide);
    let mut line = command_line(&cmd.program, &cmd.args);
    let block = env_block(env);
    let cwd = cmd.cwd.as_deref().map(wide);

    let (child_in, ours_in) = endpoint(cmd.stdin, STD_INPUT_HANDLE, true)?;
    let (child_out, ours_out) = endpoint(cmd.stdout, STD_OUTPUT_HANDLE, false)?;
    let (child_err, ours_err) = endpoint(cmd.stderr, STD_ERROR_HANDLE, false)?;
    let inherited: Vec<HANDLE> = [&child_in, &child_out, &child_err].into_iter().flatten().map(raw).collect();
    let attrs = HandleList::new(&inherited)?;

    // SAFETY: plain C struct; zeroes are "nothing set".
    let mut si: STARTUPINFOEXW = unsafe { zeroed() };
    si.StartupInfo.cb = size_of::<STARTUPINFOEXW>() as u32;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    let or_null = |h: &Option<OwnedHandle>| h.as_ref().map_or(std::ptr::null_mut(), raw);
    si.StartupInfo.hStdInput = or_null(&child_in);
    si.StartupInfo.hStdOutput = or_null(&child_out);
    si.StartupInfo.hStdError = or_null(&child_err);
    si.lpAttributeList = attrs.as_ref().map_or(std::ptr::null_mut(), |a| a.0.as_ptr() as *mut _);
    for h in &inherited {
        // SAFETY: `h` is a live handle of ours.
        check(unsafe { SetHandleInformation(*h, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT) })?;
    }
    // SAFETY: plain C struct, filled by the call.
    let mut pi: PROCESS_INFORMATION = unsafe { zeroed() };
    // SAFETY: every string is NUL-terminated and lives across the call,
    // `line` is writable (the API may change it in place), the block ends
    // in two NULs, `si` is a STARTUPINFOEXW whose size is in `cb` (as
    // EXTENDED_STARTUPINFO_PRESENT says), and `pi` is writable.
    let ok = unsafe {
        CreateProcessAsUserW(
            raw(token),
            app.as_ref().map_or(std::ptr::null(), |a| a.as_ptr()),
            line.as_mut_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            i32::from(!inherited.is_empty()),
            flags | CREATE_UNICODE_ENVIRONMENT | EXTENDED_STARTUPINFO_PRESENT,
            block.as_ptr().cast(),
            cwd.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            &si.StartupInfo,
            &mut pi,
        )
    };
    let created = check(ok);
    // The child's copies close with this scope: only the child holds them now.
    drop((child_in, child_out, child_err, attrs));
    created?;
    // The thread handle is not needed: the leader resumes by its process.
    drop(handle::from_null(pi.hThread));
    Ok(Created {
        pid: pi.dwProcessId,
        process: handle::from_null(pi.hProcess)?,
        stdin: ours_in.map(ChildStdin::from),
        stdout: ours_out.map(ChildStdout::from),
        stderr: ours_err.map(ChildStderr::from),
    })
}

/// The child's handle for one stream and corral's end of it (a pipe's).
/// Neither is inheritable yet.
fn endpoint(s: Stdio, which: u32, input: bool) -> io::Result<(Option<OwnedHandle>, Option<OwnedHandle>)> {
    Ok(match s.0 {
        StdioKind::Inherit => {
            // SAFETY: no pointers; a null or invalid answer means "none".
            let h = unsafe { GetStdHandle(which) };
            if h.is_null() || h == INVALID_HANDLE_VALUE {
                (None, None)
            } else {
                (Some(duplicate(h)?), None)
            }
        }
        StdioKind::Null => (Some(null_device()?), None),
        StdioKind::File(f) => (Some(OwnedHandle::from(f)), None),
        StdioKind::Piped => {
            let (r, w) = std::io::pipe()?;
            let (r, w) = (OwnedHandle::from(r), OwnedHandle::from(w));
            if input {
                (Some(r), Some(w))
            } else {
                (Some(w), Some(r))
            }
        }
    })
}

fn duplicate(h: HANDLE) -> io::Result<OwnedHandle> {
    let mut dup = std::ptr::null_mut();
    // SAFETY: `h` is this process's live standard handle; `dup` is
    // writable; the copy is not inheritable.
    check(unsafe {
        DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &mut dup, 0, 0, DUPLICATE_SAME_ACCESS)
    })?;
    handle::from_null(dup)
}

fn null_device() -> io::Result<OwnedHandle> {
    let name = wide("NUL");
    // SAFETY: NUL-terminated name; no security attributes (not inheritable).
    handle::from_invalid(unsafe {
        CreateFileW(
            name.as_ptr(),
            GENERIC_READ | GENERIC_WRITE,
            FILE_SHARE_READ | FILE_SHARE_WRITE,
            std::ptr::null(),
            OPEN_EXISTING,
            0,
            std::ptr::null_mut(),
        )
    })
}

/// A `PROC_THREAD_ATTRIBUTE_HANDLE_LIST` of the handles the child may
/// inherit (none: no list, nothing inherited).
struct HandleList(Vec<usize>);

impl HandleList {
    fn new(handles: &[HANDLE]) -> io::Result<Option<HandleList>> {
        if handles.is_empty() {
            return Ok(None);
        }
        let mut size = 0usize;
        // SAFETY: a size probe with no list; fails by design.
        unsafe { InitializeProcThreadAttributeList(std::ptr::null_mut(), 1, 0, &mut size) };
        let mut buf = vec![0usize; size.div_ceil(size_of::<usize>())];
        // SAFETY: `buf` is writable for `size` bytes, aligned for the list.
        check(unsafe { InitializeProcThreadAttributeList(buf.as_mut_ptr().cast(), 1, 0, &mut size) })?;
        let list = HandleList(buf);
        // SAFETY: the list was initialised for one attribute; `handles`
        // outlives it (the caller keeps them until after the spawn).
        check(unsafe {
            UpdateProcThreadAttribute(
                list.0.as_ptr() as *mut _,
                0,
                PROC_THREAD_ATTRIBUTE_HANDLE_LIST as usize,
                handles.as_ptr().cast(),
                std::mem::size_of_val(handles),
                std::ptr::null_mut(),
                std::ptr::null(),
            )
        })?;
        Ok(Some(list))
    }
}

impl Drop for HandleList {
    fn drop(&mut self) {
        // SAFETY: the list was initialised and is deleted once.
        unsafe { DeleteProcThreadAttributeList(self.0.as_mut_ptr().cast()) };
    }
}

/// Whether two variable names are the same variable (case-insensitive).
fn eq_name(a: &OsStr, b: &OsStr) -> bool {
    upper(a) == upper(b)
}

fn upper(s: &OsStr) -> Vec<u16> {
    // ASCII folding is what matters for names; others compare as written.
    s.encode_wide().map(|c| if (b'a' as u16..=b'z' as u16).contains(&c) { c - 32 } else { c }).collect()
}

/// `base` with `changes` applied in order (`None` removes), names
/// compared without case; a set keeps the spelling the change gave.
fn apply_env(
    mut base: Vec<(OsString, OsString)>,
    changes: &[(OsString, Option<OsString>)],
) -> Vec<(OsString, OsString)> {
    for (k, v) in changes {
        base.retain(|(bk, _)| !eq_name(bk, k));
        if let Some(v) = v {
            base.push((k.clone(), v.clone()));
        }
    }
    base
}

/// `NAME=value\0` per variable, sorted without case, then one more NUL.
fn env_block(mut env: Vec<(OsString, OsString)>) -> Vec<u16> {
    env.sort_by_key(|(k, _)| upper(k));
    let mut out = Vec::new();
    for (k, v) in env {
        out.extend(k.encode_wide());
        out.push(u16::from(b'='));
        out.extend(v.encode_wide());
        out.push(0);
    }
    if out.is_empty() {
        out.push(0);
    }
    out.push(0);
    out
}

/// The program's full path when it can be found the way std finds it (in
/// the child's `PATH`, with `.exe` added to a bare name); otherwise `None`,
/// and Windows searches its own way.
fn resolve_program(program: &OsStr, path: Option<&OsStr>) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.components().count() > 1 || p.is_absolute() {
        return Some(p.to_path_buf());
    }
    let names: Vec<PathBuf> = match p.extension() {
        Some(_) => vec![p.to_path_buf()],
        None => vec![p.with_extension("exe"), p.to_path_buf()],
    };
    std::env::split_paths(path?).flat_map(|dir| names.iter().map(move |n| dir.join(n))).find(|c| c.is_file())
}

/// The command line: the program and each argument, quoted where needed.
fn command_line(program: &OsStr, args: &[OsString]) -> Vec<u16> {
    let mut out = Vec::new();
    quote(program, &mut out);
    for a in args {
        out.push(u16::from(b' '));
        quote(a, &mut out);
    }
    out.push(0);
    out
}

fn quote(arg: &OsStr, out: &mut Vec<u16>) {
    let (quote_c, bs) = (u16::from(b'"'), u16::from(b'\\'));
    let w: Vec<u16> = arg.encode_wide().collect();
    let needs = w.is_empty() || w.iter().any(|c| [b' ', b'\t', b'\n', b'\x0b', b'"'].map(u16::from).contains(c));
    if !needs {
        out.extend(&w);
        return;
    }
    out.push(quote_c);
    let mut backslashes = 0usize;
    for &c in &w {
        if c == bs {
            backslashes += 1;
        } else {
            if c == quote_c {
                // Each backslash before a quote, and the quote, escaped.
                out.extend(std::iter::repeat_n(bs, backslashes + 1));
            }
            backslashes = 0;
        }
        out.push(c);
    }
    // Backslashes before the closing quote are doubled.
    out.extend(std::iter::repeat_n(bs, backslashes));
    out.push(quote_c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(program: &str, args: &[&str]) -> String {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let w = command_line(OsStr::new(program), &args);
        String::from_utf16(&w[..w.len() - 1]).unwrap()
    }

    #[test]
    fn arguments_are_quoted_as_programs_split_them() {
        let q = |s: &str| {
            let mut out = Vec::new();
            quote(OsStr::new(s), &mut out);
            String::from_utf16(&out).unwrap()
        };
        assert_eq!(q("plain"), "plain");
        assert_eq!(q(""), "\"\"");
        assert_eq!(q("two words"), "\"two words\"");
        assert_eq!(q(r"C:\dir\"), r"C:\dir\");
        assert_eq!(q(r"C:\my dir\"), r#""C:\my dir\\""#);
        assert_eq!(q(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(q(r#"a\"b"#), r#""a\\\"b""#);
        assert_eq!(line(r"C:\Program Files\x.exe", &["a b", "c"]), r#""C:\Program Files\x.exe" "a b" c"#);
    }

    #[test]
    fn env_names_are_one_variable_whatever_their_case_and_the_block_is_sorted() {
        let base = vec![("Path".into(), "C:\\old".into()), ("b".into(), "1".into()), ("A".into(), "2".into())];
        let env = apply_env(base, &[("PATH".into(), Some("C:\\new".into())), ("B".into(), None)]);
        assert_eq!(env, vec![("A".into(), "2".into()), ("PATH".into(), "C:\\new".into())]);
        let block = env_block(vec![("z".into(), "1".into()), ("A".into(), "2".into())]);
        assert_eq!(String::from_utf16(&block).unwrap(), "A=2\0z=1\0\0");
        assert_eq!(env_block(Vec::new()), vec![0, 0]);
    }

    #[test]
    fn a_bare_program_is_found_in_the_childs_path_with_exe_added() {
        let dir = std::env::temp_dir().join(format!("corral-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tool.exe"), b"").unwrap();
        let found = resolve_program(OsStr::new("tool"), Some(dir.as_os_str()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(found, Some(dir.join("tool.exe")));
        assert_eq!(resolve_program(OsStr::new("missing-tool"), Some(OsStr::new(r"C:\nowhere"))), None);
        assert_eq!(resolve_program(OsStr::new(r"C:\x\y.exe"), None), Some(PathBuf::from(r"C:\x\y.exe")));
    }
}
