//! `env_file = ["app.env", "-local.env"]`: variables from dotenv files
//! (syntax in `dotenv.rs`), as systemd's `EnvironmentFile=`.
//!
//! - Later files win over earlier ones, and the service's own `env` wins
//!   over every file.
//! - A leading `-` makes a file optional: a missing one is skipped. Any
//!   other problem (it does not parse, it is a directory) is an error
//!   either way, as in systemd.
//! - Relative paths start at the config file's folder.
//! - The files are checked at load (an error names the env file's
//!   line:column and the config's place of the entry; nothing starts), and
//!   read again at every start of an instance, as systemd does: an edited
//!   file takes effect at the next (re)start, without a reload. A file
//!   that has become unreadable fails that start like a missing program.

use super::diagnostic::Sink;
use super::paths::anchor;
use super::validate::key_span;
use std::path::{Path, PathBuf};
use toml_edit::TableLike;

/// The largest env file read: a thousand times a large real one.
pub const MAX_ENV_FILE_BYTES: u64 = 1 << 20;

/// The most entries in `env_file`.
pub const MAX_ENV_FILES: usize = 64;

/// One entry of `env_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFile {
    /// Absolute, or relative to where the daemon runs when the config
    /// path was.
    pub path: PathBuf,
    /// Written with a leading `-`: a missing file is skipped.
    pub optional: bool,
}

/// Reads `env_file` of a service's table and checks every file now.
pub(super) fn env_files(sink: &mut Sink<'_>, what: &str, table: &dyn TableLike, base: &Path) -> Vec<EnvFile> {
    let Some(item) = table.get("env_file") else { return Vec::new() };
    let span = key_span(table, "env_file");
    let expected = || Some("an array of paths like [\"app.env\", \"-optional.env\"]".to_string());
    let Some(array) = item.as_array() else {
        sink.push(span, format!("{what}: `env_file` must be an array"), expected(), None);
        return Vec::new();
    };
    if array.len() > MAX_ENV_FILES {
        sink.push(span, format!("{what}: more than {MAX_ENV_FILES} env files"), expected(), None);
        return Vec::new();
    }
    let mut out = Vec::new();
    for v in array.iter() {
        let at = v.span().or(span.clone());
        let Some(s) = v.as_str() else {
            sink.push(at, format!("{what}: every `env_file` entry is a path string"), expected(), None);
            continue;
        };
        let (optional, rest) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s),
        };
        if rest.is_empty() {
            sink.push(at, format!("{what}: an empty `env_file` entry"), expected(), None);
            continue;
        }
        let file = EnvFile { path: anchor(base, Path::new(rest)), optional };
        if let Err(e) = read(&file) {
            sink.push(at, format!("{what}: {e}"), None, None);
            continue;
        }
        out.push(file);
    }
    out
}

/// The variables of every file, in order (later ones win when applied).
pub(crate) fn read_all(files: &[EnvFile]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for f in files {
        out.extend(read(f)?);
    }
    Ok(out)
}

/// One file's variables; an optional one that does not exist has none.
fn read(f: &EnvFile) -> Result<Vec<(String, String)>, String> {
    let shown = f.path.display();
    let bytes = match crate::sys::read_config::read_bounded(&f.path, MAX_ENV_FILE_BYTES) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && f.optional => return Ok(Vec::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "env file {shown} does not exist (write \"-{shown}\" to make it optional; \
                 relative paths start at the config's folder)"
            ))
        }
        Err(e) => return Err(format!("env file {shown}: {e}")),
    };
    let text = String::from_utf8(bytes).map_err(|_| format!("env file {shown} is not UTF-8 text"))?;
    super::dotenv::parse(&text).map_err(|e| format!("env file {shown}:{}:{}: {}", e.line, e.column, e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(dir: &Path, entries: &str) -> Result<crate::config::Config, String> {
        let toml = format!("[services.web]\ncommand = [\"web\"]\nenv_file = {entries}\n");
        crate::config::parse(&toml, &dir.join("corral.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn files_are_anchored_optional_ones_may_be_missing_and_later_ones_win() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a.env"), "A=1\nB=1\n").unwrap();
        std::fs::write(t.path().join("b.env"), "B=2\n").unwrap();
        let c = load(t.path(), r#"["a.env", "-missing.env", "b.env"]"#).unwrap();
        let files = &c.services["web"].env_files;
        assert_eq!(files.len(), 3);
        assert!(files[1].optional && files[0].path.is_absolute());
        let vars = read_all(files).unwrap();
        let get = |k: &str| vars.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!((get("A"), get("B")), (Some("1"), Some("2")));
    }

    #[test]
    fn a_bad_file_is_an_error_with_both_places() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("bad.env"), "A=1\nB=\"open\n").unwrap();
        let e = load(t.path(), r#"["bad.env"]"#).unwrap_err();
        let shown = t.path().join("bad.env");
        assert!(e.contains(&format!("corral.toml:3:13: service `web`: env file {}:2:3:", shown.display())), "{e}");
        assert!(e.contains("never closed"), "{e}");
        let e = load(t.path(), r#"["nope.env"]"#).unwrap_err();
        assert!(e.contains("nope.env does not exist"), "{e}");
        let e = load(t.path(), r#""a.env""#).unwrap_err();
        assert!(e.contains("`env_file` must be an array"), "{e}");
    }
}
