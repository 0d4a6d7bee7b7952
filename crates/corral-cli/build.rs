//! Link-time choices for the `corral` binary, both about the daemon's
//! resident memory: a daemon stays up for months, and what its binary
//! keeps mapped counts in its RSS (BENCHMARKS.md §3).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if packs_relative_relocations() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    if let Some(script) = hot_code_order() {
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}

fn var(key: &str) -> String {
    std::env::var(key).unwrap_or_default()
}

/// Whether to link with `-z pack-relative-relocs` (DT_RELR): a native
/// build for a glibc of 2.36 or later.
///
/// Why: a position-independent binary carries a table of relative
/// relocations that the loader reads once at start. corral's is 1 MB in
/// the classic form (58,000 entries of 24 bytes), and its pages stay
/// resident in the daemon for good; packed, the same table is 20 KiB.
/// What the loader writes into `.data.rel.ro` does not change.
///
/// Only glibc 2.36 and later load the packed form; the linker then
/// records that need (`GLIBC_ABI_DT_RELR`), so an older glibc refuses the
/// binary by name instead of running it unrelocated. The build host's
/// glibc stands for the target's only in a native build, so a cross build
/// keeps the classic table.
fn packs_relative_relocations() -> bool {
    let target = var("TARGET");
    if target != var("HOST") || !target.ends_with("-linux-gnu") {
        return false;
    }
    host_glibc().is_some_and(|(major, minor)| (major, minor) >= (2, 36))
}

/// The version of the glibc this build script runs on.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn host_glibc() -> Option<(u32, u32)> {
    extern "C" {
        fn gnu_get_libc_version() -> *const std::ffi::c_char;
    }
    // SAFETY: returns a static NUL-terminated string such as "2.36".
    let v = unsafe { std::ffi::CStr::from_ptr(gnu_get_libc_version()) }.to_str().ok()?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn host_glibc() -> Option<(u32, u32)> {
    None
}

/// A linker script that puts the functions the daemon runs
/// (`link/hot-code.txt`) next to each other, ahead of the rest of the
/// code: a release build for x86_64 Linux with glibc, unless
/// `CORRAL_LINK_ORDER=off`.
///
/// Why: the kernel maps a binary's code in 64 KiB windows around each
/// page a process touches (`fault_around_bytes`). The daemon runs about
/// 2,500 of the binary's 11,000 functions, spread over all of its 5.6 MB
/// of code, so 4.6 MiB of that code was resident; packed, 1.8 MiB.
///
/// The list names functions as the symbol table does, with the hash that
/// ties a name to one toolchain and one build of each dependency. Each is
/// placed twice: by its exact name first (the functions the profile saw),
/// then by its name with any hash (a new toolchain or dependency changes
/// the hashes; the same functions still land in the hot part, with the
/// other instances of their generic code, a larger but still compact
/// part). A name no longer in the binary matches nothing: a stale list
/// makes the layout less compact, never wrong. Only the layout changes,
/// not the code. Release only: a debug build has ten times the sections
/// and no one measures its memory.
///
/// x86_64-unknown-linux-gnu links with rust-lld by default, which reads a
/// script that only adds to its layout (`INSERT BEFORE`); GNU ld does too.
/// A build that links with another linker (mold) sets
/// `CORRAL_LINK_ORDER=off`.
fn hot_code_order() -> Option<PathBuf> {
    println!("cargo:rerun-if-changed=link/hot-code.txt");
    println!("cargo:rerun-if-env-changed=CORRAL_LINK_ORDER");
    if var("PROFILE") != "release" || var("TARGET") != "x86_64-unknown-linux-gnu" || var("CORRAL_LINK_ORDER") == "off" {
        return None;
    }
    // Without the list or the script the binary is the same, laid out as
    // the linker likes: said, not fatal.
    let list = PathBuf::from(var("CARGO_MANIFEST_DIR")).join("link/hot-code.txt");
    let list = std::fs::read_to_string(&list)
        .map_err(|e| println!("cargo:warning=no hot-code order: cannot read {}: {e}", list.display()))
        .ok()?;
    let script = PathBuf::from(var("OUT_DIR")).join("hot-code.ld");
    std::fs::write(&script, linker_script(&list))
        .map_err(|e| println!("cargo:warning=no hot-code order: cannot write {}: {e}", script.display()))
        .ok()?;
    Some(script)
}

/// The script for a list of mangled names (`#` lines are comments).
fn linker_script(list: &str) -> String {
    let names: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        // Only what a symbol may hold; anything else would be script syntax.
        .filter(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b"_$.".contains(&b)))
        .collect();
    let mut out = String::from("SECTIONS {\n  .text.hot : {\n");
    let mut seen = std::collections::HashSet::new();
    let exact = names.iter().map(|n| n.to_string());
    let any_hash = names.iter().filter_map(|n| without_hash(n));
    for pattern in exact.chain(any_hash) {
        if seen.insert(pattern.clone()) {
            // LLVM puts a function it deems cold in `.text.unlikely.NAME`.
            out.push_str(&format!("    *(.text.{pattern} .text.unlikely.{pattern})\n"));
        }
    }
    out.push_str("  }\n}\nINSERT BEFORE .text;\n");
    out
}

/// `name` with its toolchain-specific parts as wildcards: the hash of a
/// legacy Rust symbol (`…17h<16 hex digits>E`), the crate disambiguators
/// of a v0 one (`Cs<base62>_`, the standard library's), and a local
/// clone's suffix (`.1234`). `None` for a name without them.
fn without_hash(name: &str) -> Option<String> {
    let base = match name.rsplit_once('.') {
        Some((b, n)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => b,
        _ => name,
    };
    let generic = if let Some(stem) = base.strip_prefix("_ZN") {
        let hash = stem.len().checked_sub(20).filter(|&at| {
            let tail = &stem.as_bytes()[at..];
            tail.starts_with(b"17h") && tail.ends_with(b"E") && tail[3..19].iter().all(u8::is_ascii_hexdigit)
        })?;
        format!("_ZN{}17h*", &stem[..hash])
    } else if base.starts_with("_R") {
        let mut s = String::new();
        let mut rest = base;
        while let Some(at) = rest.find("Cs") {
            let after = &rest[at + 2..];
            let end = after.find('_').filter(|&e| e > 0 && after[..e].bytes().all(|b| b.is_ascii_alphanumeric()));
            match end {
                Some(e) => {
                    s.push_str(&rest[..at]);
                    s.push_str("Cs*_");
                    rest = &after[e + 1..];
                }
                None => {
                    s.push_str(&rest[..at + 2]);
                    rest = after;
                }
            }
        }
        s.push_str(rest);
        s
    } else {
        return None;
    };
    (generic != name).then_some(generic)
}
