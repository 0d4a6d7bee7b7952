//! `include = ["conf.d/*.toml"]`: services kept in files of their own.
//!
//! Only the main config may include, and an included file holds only
//! `[services.*]`: the daemon's settings stay in one place, an include can
//! never include (so there is no cycle to detect), and a file dropped into
//! `conf.d/` can add services but cannot move the socket or the state.
//!
//! Each pattern is a glob (`globset`) relative to the main file's folder;
//! its matches are read in sorted order, each once, the main file itself
//! never. A pattern without a wildcard names one file, which must exist; a
//! wildcard that matches nothing is an empty `conf.d/`, not an error. Every
//! file is read with the main file's bounds (a regular file of at most
//! 1 MiB), and together they are bounded by [`MAX_INCLUDED_FILES`] and
//! [`MAX_INCLUDED_BYTES`].

use super::diagnostic::Sink;
use super::paths::anchor;
use std::path::{Path, PathBuf};
use toml_edit::{Item, Table};

/// Most files one config may include.
pub const MAX_INCLUDED_FILES: usize = 128;
/// Most bytes all included files may hold together (8 MiB).
pub const MAX_INCLUDED_BYTES: u64 = 8 << 20;
/// Most folder entries looked at while expanding the patterns: a `**`
/// over a large tree is refused instead of walked for minutes.
const MAX_SCANNED: usize = 10_000;
/// How deep a `**` reaches below the pattern's folder.
const MAX_DEPTH: usize = 8;

/// One included file, read.
pub(crate) struct Source {
    /// As errors name it: the main file's folder as the user wrote it,
    /// joined with the match.
    pub shown: String,
    pub text: String,
}

/// What the patterns name: the files, and the folders to watch for new ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Included {
    /// Every included file, in the order read.
    pub files: Vec<PathBuf>,
    /// The folder each pattern searches (a new match appears there), and
    /// whether it searches below it too (a `**` pattern).
    pub folders: Vec<(PathBuf, bool)>,
}

/// Reads the files the main document's `include` names; a problem with
/// the key itself or with a file that cannot be read is reported at the
/// key, in the main file.
pub(crate) fn read(sink: &mut Sink<'_>, root: &Table, main: &Path, base: &Path) -> (Vec<Source>, Included) {
    let mut out = (Vec::new(), Included::default());
    let Some((key, item)) = root.get_key_value("include") else { return out };
    let span = item.span().or_else(|| key.span());
    let Some(patterns) = patterns(item) else {
        sink.push(
            span,
            "`include` must be an array of file patterns",
            Some("include = [\"conf.d/*.toml\"]".into()),
            None,
        );
        return out;
    };
    // Each file once, by what it really is: two patterns, or a symlink and
    // its target, that name one file read it once; the main file never.
    let mut seen: std::collections::HashSet<PathBuf> = std::fs::canonicalize(main).into_iter().collect();
    let shown_base = main.parent().filter(|p| !p.as_os_str().is_empty());
    let mut total = 0u64;
    for pattern in patterns {
        let (folder, files) = match expand(base, &pattern) {
            Ok(found) => found,
            Err(e) => {
                sink.push(span.clone(), format!("include `{pattern}`: {e}"), None, None);
                continue;
            }
        };
        out.1.folders.push((folder, pattern.contains("**")));
        for path in files {
            if !seen.insert(std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone())) {
                continue;
            }
            if out.0.len() == MAX_INCLUDED_FILES {
                let hint = Some(format!("at most {MAX_INCLUDED_FILES} files; merge some"));
                sink.push(span, format!("include: more than {MAX_INCLUDED_FILES} files"), hint, None);
                return out;
            }
            let bytes = match super::file::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    sink.push(span.clone(), format!("include `{pattern}`: {}: {e}", path.display()), None, None);
                    continue;
                }
            };
            total += bytes.len() as u64;
            if total > MAX_INCLUDED_BYTES {
                let hint = Some(format!("included files of at most {} MiB together", MAX_INCLUDED_BYTES >> 20));
                sink.push(span, "include: the included files are too large together", hint, None);
                return out;
            }
            let Ok(text) = String::from_utf8(bytes) else {
                sink.push(span.clone(), format!("include: {} is not UTF-8 text", path.display()), None, None);
                continue;
            };
            let rel = path.strip_prefix(base).unwrap_or(&path);
            let shown = match shown_base {
                Some(b) if rel.is_relative() => b.join(rel),
                _ => rel.to_path_buf(),
            };
            out.1.files.push(path);
            out.0.push(Source { shown: shown.display().to_string(), text });
        }
    }
    out
}

/// The `include` patterns of a main file's content. The config watcher
/// snapshots the file every few seconds while nothing changes: the last
/// content's patterns are kept, so an unchanged file is compared, not
/// parsed again (a parse of a hundred services is most of an idle
/// daemon's CPU).
fn include_patterns(content: &[u8]) -> Option<Vec<String>> {
    type Last = (Vec<u8>, Option<Vec<String>>);
    static LAST: std::sync::Mutex<Option<Last>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, found)) = last.as_ref().filter(|(seen, _)| seen == content) {
        return found.clone();
    }
    let found = std::str::from_utf8(content)
        .ok()
        .and_then(|s| toml_edit::ImDocument::parse(s.to_string()).ok())
        .and_then(|doc| doc.as_table().get("include").and_then(patterns));
    *last = Some((content.to_vec(), found.clone()));
    found
}

fn patterns(item: &Item) -> Option<Vec<String>> {
    let array = item.as_array()?;
    array.iter().map(|v| v.as_str().map(str::to_string)).collect()
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// The folder a pattern searches, and its matches in sorted order.
pub(crate) fn expand(base: &Path, pattern: &str) -> Result<(PathBuf, Vec<PathBuf>), String> {
    if pattern.trim().is_empty() {
        return Err("an empty pattern".into());
    }
    let full = anchor(base, Path::new(pattern));
    if !is_glob(pattern) {
        let folder = full.parent().map(Path::to_path_buf).unwrap_or_else(|| base.to_path_buf());
        return match std::fs::metadata(&full) {
            Ok(m) if m.is_file() => Ok((folder, vec![full])),
            Ok(_) => Err(format!("{} is not a regular file", full.display())),
            Err(_) => Err(format!("{} does not exist (a pattern without a wildcard names one file)", full.display())),
        };
    }
    // The literal folders before the first wildcard are where to look.
    let mut folder = PathBuf::new();
    let mut rest: Vec<String> = Vec::new();
    for c in full.components() {
        let s = c.as_os_str().to_string_lossy();
        if rest.is_empty() && !is_glob(&s) {
            folder.push(c);
        } else {
            rest.push(s.into_owned());
        }
    }
    let glob = globset::GlobBuilder::new(&rest.join("/"))
        .literal_separator(true)
        .build()
        .map_err(|e| format!("not a valid pattern: {}", e.kind()))?
        .compile_matcher();
    if !folder.is_dir() {
        return Err(format!("the folder {} does not exist", folder.display()));
    }
    let depth = if rest.iter().any(|r| r.contains("**")) { MAX_DEPTH } else { rest.len() };
    let mut found = Vec::new();
    let mut scanned = 0usize;
    walk(&folder, "", depth, &glob, &mut found, &mut scanned)?;
    found.sort();
    Ok((folder, found))
}

fn walk(
    dir: &Path,
    rel: &str,
    depth: usize,
    glob: &globset::GlobMatcher,
    found: &mut Vec<PathBuf>,
    scanned: &mut usize,
) -> Result<(), String> {
    if depth == 0 {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        *scanned += 1;
        if *scanned > MAX_SCANNED {
            return Err(format!("more than {MAX_SCANNED} entries to look at: a narrower pattern"));
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let here = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        // A symlinked folder is not entered: a link back up would loop.
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            walk(&entry.path(), &here, depth - 1, glob, found, scanned)?;
        } else if glob.is_match(&here) {
            found.push(entry.path());
        }
    }
    Ok(())
}

/// The main file, then each included file's name and bytes, as they are
/// now: what the config watcher compares, so that an edit to an included
/// file, or a file added to or removed from `conf.d/`, is a change. `None`
/// when the main file cannot be read.
pub(crate) fn snapshot(main: &Path) -> Option<Vec<u8>> {
    let mut out = super::file::read(main).ok()?;
    let Some(patterns) = include_patterns(&out) else { return Some(out) };
    let base = super::paths::base_dir(main);
    let mut files = 0;
    for p in patterns {
        for path in expand(&base, &p).map(|(_, f)| f).unwrap_or_default() {
            files += 1;
            if files > MAX_INCLUDED_FILES {
                return Some(out);
            }
            out.extend_from_slice(b"\0");
            out.extend_from_slice(path.to_string_lossy().as_bytes());
            out.extend_from_slice(b"\0");
            out.extend(super::file::read(&path).unwrap_or_default());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_matches_in_sorted_order_within_its_folder_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("conf.d");
        std::fs::create_dir_all(d.join("deeper")).unwrap();
        for f in ["b.toml", "a.toml", "c.txt", "deeper/z.toml"] {
            std::fs::write(d.join(f), "").unwrap();
        }
        let (folder, found) = expand(dir.path(), "conf.d/*.toml").unwrap();
        assert_eq!(folder, d);
        assert_eq!(found, [d.join("a.toml"), d.join("b.toml")]);
        let (_, deep) = expand(dir.path(), "conf.d/**/*.toml").unwrap();
        assert_eq!(deep, [d.join("a.toml"), d.join("b.toml"), d.join("deeper/z.toml")]);
        assert!(expand(dir.path(), "conf.d/*.yaml").unwrap().1.is_empty());
    }

    #[test]
    fn a_missing_file_or_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(expand(dir.path(), "web.toml").unwrap_err().contains("does not exist"));
        assert!(expand(dir.path(), "nope/*.toml").unwrap_err().contains("folder"));
        assert!(expand(dir.path(), "conf.d/[.toml").is_err());
    }

    fn setup(main: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let main_path = dir.path().join("corral.toml");
        std::fs::write(&main_path, main).unwrap();
        (dir, main_path)
    }

    fn errors(main: &Path) -> Vec<String> {
        // One separator in the assertions, whatever the platform's.
        super::super::load(main).unwrap_err().0.iter().map(|d| d.to_string().replace('\\', "/")).collect()
    }

    #[test]
    fn services_from_included_files_join_the_main_ones_and_may_depend_on_them() {
        let (_d, main) = setup(
            "include = [\"conf.d/*.toml\"]\n[services.db]\ncommand = [\"db\"]\n",
            &[("conf.d/web.toml", "[services.web]\ncommand = [\"web\"]\ndepends_on = { db = \"started\" }\n")],
        );
        let c = super::super::load(&main).unwrap();
        assert_eq!(c.services.keys().collect::<Vec<_>>(), ["db", "web"]);
        assert_eq!(c.included.files.len(), 1);
    }

    #[test]
    fn an_error_in_an_included_file_is_located_in_that_file() {
        let (_d, main) = setup(
            "include = [\"conf.d/*.toml\"]\n",
            &[("conf.d/web.toml", "# web\n[services.web]\ncommand = [\"web\"]\ninstances = \"two\"\n")],
        );
        let e = errors(&main);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("conf.d/web.toml:4:13: service `web`"), "{e:?}");
    }

    #[test]
    fn a_service_defined_twice_names_both_places() {
        let (_d, main) = setup(
            "include = [\"conf.d/*.toml\"]\n[services.web]\ncommand = [\"a\"]\n",
            &[("conf.d/web.toml", "\n[services.web]\ncommand = [\"b\"]\n")],
        );
        let e = errors(&main);
        assert!(e[0].contains("conf.d/web.toml:2:11: service `web` is defined twice"), "{e:?}");
        assert!(e[0].contains("corral.toml:2:11"), "{e:?}");
    }

    #[test]
    fn an_included_file_holds_only_services_and_cannot_include() {
        let (_d, main) = setup(
            "include = [\"conf.d/*.toml\"]\n",
            &[("conf.d/x.toml", "include = [\"y.toml\"]\n[daemon]\nsocket = \"/tmp/s\"\n")],
        );
        let e = errors(&main);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("conf.d/x.toml:1:1: an included file holds only services, not `include`"), "{e:?}");
        assert!(e[1].contains("conf.d/x.toml:2:2: an included file holds only services, not `daemon`"), "{e:?}");
    }

    #[test]
    fn a_missing_include_is_an_error_at_the_key() {
        let (_d, main) = setup("include = [\"extra.toml\"]\n[services.a]\ncommand = [\"a\"]\n", &[]);
        let e = errors(&main);
        assert!(e[0].contains("corral.toml:1:11: include `extra.toml`:") && e[0].contains("does not exist"), "{e:?}");
    }

    #[test]
    fn the_snapshot_changes_when_an_included_file_does() {
        let (d, main) = setup("include = [\"conf.d/*.toml\"]\n", &[("conf.d/a.toml", "")]);
        let before = snapshot(&main).unwrap();
        std::fs::write(d.path().join("conf.d/b.toml"), "").unwrap();
        let added = snapshot(&main).unwrap();
        assert_ne!(before, added);
        std::fs::write(d.path().join("conf.d/a.toml"), "# edited").unwrap();
        assert_ne!(added, snapshot(&main).unwrap());
    }

    #[test]
    fn the_snapshot_follows_new_include_patterns_not_the_last_ones_kept() {
        let (d, main) =
            setup("include = [\"conf.d/a.toml\"]\n", &[("conf.d/a.toml", "# one"), ("conf.d/b.toml", "# two")]);
        let one = snapshot(&main).unwrap();
        assert_eq!(one, snapshot(&main).unwrap(), "unchanged content, same snapshot");
        assert!(one.ends_with(b"# one"), "{}", String::from_utf8_lossy(&one));
        std::fs::write(&main, "include = [\"conf.d/b.toml\"]\n").unwrap();
        let two = snapshot(&main).unwrap();
        assert!(two.ends_with(b"# two"), "{}", String::from_utf8_lossy(&two));
        std::fs::write(&main, "# no includes\n").unwrap();
        assert_eq!(snapshot(&main).unwrap(), b"# no includes\n");
        drop(d);
    }
}
