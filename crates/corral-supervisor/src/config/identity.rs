//! `umask`, `group` and `supplementary_groups`: who a service's processes
//! are besides their user, applied in the child before `exec` by the
//! library (`corral::Command::umask`, `gid`, `groups`). Names are checked
//! at load (an unknown group is an error with its place) and resolved
//! again at each start, like `user`. Unix only: on Windows each key is
//! refused at load.

use super::diagnostic::Sink;
use super::validate::key_span;
use toml_edit::TableLike;

/// The most `supplementary_groups` (Linux allows 65536; a service needing
/// more than a few is a mistake).
pub const MAX_SUPPLEMENTARY_GROUPS: usize = 256;

/// A service's identity settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The file mode creation mask, `0` to `0o777`.
    pub umask: Option<u32>,
    /// The primary group (a name or a gid), instead of the user's.
    pub group: Option<String>,
    /// Exactly these supplementary groups (default: none when `user` is
    /// set, the daemon's otherwise).
    pub supplementary_groups: Option<Vec<String>>,
}

/// Reads and checks the three keys of a service's table.
pub(super) fn identity(sink: &mut Sink<'_>, what: &str, table: &dyn TableLike) -> Identity {
    let mut id = Identity::default();
    for key in ["umask", "group", "supplementary_groups"] {
        if cfg!(windows) && table.contains_key(key) {
            sink.push(
                key_span(table, key),
                format!("{what}: `{key}` is supported on Unix only"),
                Some("remove it on Windows: services run as the daemon's account".into()),
                None,
            );
        }
    }
    if cfg!(windows) {
        return id;
    }
    if let Some(item) = table.get("umask") {
        let span = key_span(table, "umask");
        match item.as_str().map(parse_umask) {
            Some(Ok(m)) => id.umask = Some(m),
            Some(Err(e)) => sink.push(span, format!("{what}: {e}"), Some(UMASK.into()), None),
            None => sink.push(span, format!("{what}: `umask` must be a string"), Some(UMASK.into()), None),
        }
    }
    if let Some(item) = table.get("group") {
        let span = key_span(table, "group");
        match item.as_str() {
            Some(g) => match crate::groups::lookup(g) {
                Ok(_) => id.group = Some(g.to_string()),
                Err(e) => sink.push(span, format!("{what}: {e}"), Some(GROUP.into()), None),
            },
            None => sink.push(span, format!("{what}: `group` must be a string"), Some(GROUP.into()), None),
        }
    }
    if let Some(item) = table.get("supplementary_groups") {
        let span = key_span(table, "supplementary_groups");
        let expected = || Some("an array of group names or gids like [\"adm\", \"www-data\"]".to_string());
        match item.as_array() {
            Some(a) if a.len() > MAX_SUPPLEMENTARY_GROUPS => sink.push(
                span,
                format!("{what}: more than {MAX_SUPPLEMENTARY_GROUPS} supplementary groups"),
                expected(),
                None,
            ),
            Some(a) => {
                let mut names = Vec::new();
                for v in a.iter() {
                    let at = v.span().or(span.clone());
                    match v.as_str() {
                        Some(g) => match crate::groups::lookup(g) {
                            Ok(_) => names.push(g.to_string()),
                            Err(e) => sink.push(at, format!("{what}: {e}"), Some(GROUP.into()), None),
                        },
                        None => sink.push(at, format!("{what}: every group is a string"), expected(), None),
                    }
                }
                id.supplementary_groups = Some(names);
            }
            None => sink.push(span, format!("{what}: `supplementary_groups` must be an array"), expected(), None),
        }
    }
    id
}

const UMASK: &str = "an octal string like \"0027\" or \"077\" (at most 0777)";
const GROUP: &str = "an existing group name or numeric gid";

/// `"0027"`, `"027"`, `"27"`: one to four octal digits, at most 0777.
pub(crate) fn parse_umask(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || digits.len() > 4 || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err(format!("invalid umask {s:?}"));
    }
    let m = u32::from_str_radix(digits, 8).map_err(|_| format!("invalid umask {s:?}"))?;
    if m > 0o777 {
        return Err(format!("umask {s:?} is above 0777 (only permission bits can be masked)"));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umask_is_octal_and_bounded() {
        assert_eq!(parse_umask("0027"), Ok(0o027));
        assert_eq!(parse_umask("77"), Ok(0o077));
        assert_eq!(parse_umask("0o022"), Ok(0o022));
        assert!(parse_umask("0028").is_err());
        assert!(parse_umask("").is_err());
        assert!(parse_umask("1777").unwrap_err().contains("above 0777"));
        assert!(parse_umask("77777").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn groups_must_exist() {
        let toml = "[services.web]\ncommand = [\"web\"]\ngroup = \"root\"\nsupplementary_groups = [\"0\", \"corral-nope\"]\numask = 27\n";
        let e = crate::config::parse(toml, std::path::Path::new("/x/corral.toml")).unwrap_err().to_string();
        assert!(e.contains("/x/corral.toml:4:30: service `web`: no such group `corral-nope`"), "{e}");
        assert!(e.contains("/x/corral.toml:5:9: service `web`: `umask` must be a string"), "{e}");
        let ok =
            "[services.web]\ncommand = [\"web\"]\ngroup = \"0\"\nsupplementary_groups = [\"root\"]\numask = \"0027\"\n";
        let c = crate::config::parse(ok, std::path::Path::new("/x/corral.toml")).unwrap();
        let id = &c.services["web"].identity;
        assert_eq!(id.umask, Some(0o027));
        assert_eq!(id.group.as_deref(), Some("0"));
        assert_eq!(id.supplementary_groups, Some(vec!["root".to_string()]));
    }
}
