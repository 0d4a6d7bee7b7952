//! `pre_start`, `post_start`, `pre_stop`, `post_stop` (systemd's
//! `ExecStartPre=`, `ExecStartPost=`, `ExecStop=` before the stop signal,
//! `ExecStopPost=`) and `reload_signal` / `reload` (`ExecReload=`).
//!
//! Each command is `["program", "arg", …]` or `{ cmd = [...], timeout =
//! "30s" }`; it is never run through a shell unless the user writes one.
//! At load, the program of each command is checked: an absolute path must
//! be an executable file; a bare name must be found in the `PATH` the
//! service gets (its `env.PATH`, else the default one); a relative path
//! with a `/` is checked against the service's `cwd` when it has one (else
//! it depends on where the daemon runs, and is left to the run).

use super::diagnostic::Sink;
use super::raw::Dur;
use super::validate::{key_span, Span};
use serde::de::IntoDeserializer;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml_edit::{Item, TableLike};

/// A hook's timeout when the config does not say.
pub const HOOK_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// The timeouts accepted: a hook holds up a start or a stop while it runs.
pub const HOOK_TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(3600));
/// The most arguments of a hook command.
pub const MAX_HOOK_ARGS: usize = 4096;

/// One hook or reload command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCommand {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Its group is killed whole past this.
    pub timeout: Duration,
}

/// The hooks of a service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    /// Before each start; a failure or a timeout fails the start.
    pub pre_start: Option<HookCommand>,
    /// Once the group is spawned; a failure is an event only.
    pub post_start: Option<HookCommand>,
    /// Before the stop signal, when corral stops a running instance.
    pub pre_stop: Option<HookCommand>,
    /// After the group is gone, however the run ended.
    pub post_stop: Option<HookCommand>,
}

/// How `corral reload-service` reloads a running instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadAction {
    /// `reload_signal = "HUP"`: the signal to each instance's leader.
    Signal(corral::Signal),
    /// `reload = [...]`: a command run like a hook, with `MAINPID`.
    Command(HookCommand),
}

/// The hooks and the reload action of a service's table.
pub(super) fn hooks(
    sink: &mut Sink<'_>,
    what: &str,
    table: &dyn TableLike,
    path_var: Option<&str>,
    cwd: Option<&Path>,
) -> (Hooks, Option<ReloadAction>) {
    let mut one = |key: &str| {
        let item = table.get(key)?;
        let cmd = command(sink, what, key, item, key_span(table, key))?;
        if let Err(e) = check_program(&cmd.argv[0], path_var, cwd) {
            let at = item.as_array().and_then(|a| a.get(0)).and_then(|v| v.span()).or(key_span(table, key));
            sink.push(at, format!("{what}: `{key}`: {e}"), None, None);
            return None;
        }
        Some(cmd)
    };
    let hooks = Hooks {
        pre_start: one("pre_start"),
        post_start: one("post_start"),
        pre_stop: one("pre_stop"),
        post_stop: one("post_stop"),
    };
    let reload_cmd = one("reload");
    let reload = match (table.get("reload_signal"), reload_cmd) {
        (Some(_), _) if table.contains_key("reload") => {
            sink.push(
                key_span(table, "reload_signal"),
                format!("{what}: both `reload_signal` and `reload`"),
                Some("one of them: a signal to the leader, or a command".into()),
                None,
            );
            None
        }
        (Some(_), _) if cfg!(windows) => {
            sink.push(
                key_span(table, "reload_signal"),
                format!("{what}: `reload_signal` needs Unix signals"),
                Some("`reload = [\"program\", ...]` on Windows".into()),
                None,
            );
            None
        }
        (Some(item), _) => {
            let sig = item.as_value().map(|v| super::raw::Sig::deserialize(v.clone().into_deserializer()));
            match sig {
                Some(Ok(s)) => Some(ReloadAction::Signal(s.0)),
                Some(Err(e)) => {
                    sink.push(key_span(table, "reload_signal"), format!("{what}: {}", e.message().trim()), None, None);
                    None
                }
                None => {
                    sink.push(
                        key_span(table, "reload_signal"),
                        format!("{what}: `reload_signal` must be a signal name like \"HUP\" or a number"),
                        None,
                        None,
                    );
                    None
                }
            }
        }
        (None, cmd) => cmd.map(ReloadAction::Command),
    };
    (hooks, reload)
}

const FORM: &str = "[\"program\", \"arg\", ...] or { cmd = [\"program\", ...], timeout = \"30s\" }";

/// Reads one command in either form.
fn command(sink: &mut Sink<'_>, what: &str, key: &str, item: &Item, span: Span) -> Option<HookCommand> {
    let mut bad = |m: String| {
        sink.push(span.clone(), format!("{what}: `{key}` {m}"), Some(FORM.into()), None);
        None
    };
    let (argv, timeout) = if let Some(a) = item.as_array() {
        (a.clone(), None)
    } else if let Some(t) = item.as_table_like() {
        if let Some(other) = t.iter().map(|(k, _)| k).find(|k| !matches!(*k, "cmd" | "timeout")) {
            return bad(format!("has an unknown key `{other}`: only `cmd` and `timeout`"));
        }
        let Some(cmd) = t.get("cmd").and_then(Item::as_array) else {
            return bad("needs `cmd`, an array of strings".into());
        };
        (cmd.clone(), t.get("timeout"))
    } else if item.as_str().is_some() {
        return bad("is a string, and a hook is never run through a shell unless you write one: \
                    [\"sh\", \"-c\", \"...\"]"
            .into());
    } else {
        return bad("must be an array of strings or a table".into());
    };
    if argv.len() > MAX_HOOK_ARGS {
        return bad(format!("has more than {MAX_HOOK_ARGS} arguments"));
    }
    let argv: Option<Vec<String>> = argv.iter().map(|v| v.as_str().map(str::to_string)).collect();
    let Some(argv) = argv.filter(|a| a.first().is_some_and(|p| !p.trim().is_empty())) else {
        return bad("must hold the program and its arguments, all strings".into());
    };
    let timeout = match timeout.and_then(Item::as_value) {
        None if timeout.is_some() => return bad("timeout must be a duration like \"30s\"".into()),
        None => HOOK_TIMEOUT_DEFAULT,
        Some(v) => match Dur::deserialize(v.clone().into_deserializer()) {
            Ok(d) => d.0,
            Err(e) => return bad(format!("timeout: {}", e.message().trim())),
        },
    };
    let (shortest, longest) = HOOK_TIMEOUT_RANGE;
    if !(shortest..=longest).contains(&timeout) {
        let fmt = corral::units::format_duration;
        return bad(format!("timeout {} is out of range ({} to {})", fmt(timeout), fmt(shortest), fmt(longest)));
    }
    Some(HookCommand { argv, timeout })
}

/// Whether `program` can be found as the service will look for it.
fn check_program(program: &str, path_var: Option<&str>, cwd: Option<&Path>) -> Result<(), String> {
    let has_sep = program.contains('/') || (cfg!(windows) && program.contains('\\'));
    if has_sep {
        let p = Path::new(program);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else if let Some(dir) = cwd {
            dir.join(p)
        } else {
            return Ok(());
        };
        return if runnable(&full) {
            Ok(())
        } else {
            Err(format!("the program {} does not exist or is not executable", full.display()))
        };
    }
    let default =
        if cfg!(windows) { std::env::var("PATH").unwrap_or_default() } else { crate::environment::DEFAULT_PATH.into() };
    let search = path_var.map(str::to_string).unwrap_or(default);
    let sep = if cfg!(windows) { ';' } else { ':' };
    let exts: &[&str] = if cfg!(windows) { &["", ".exe", ".cmd", ".bat", ".com"] } else { &[""] };
    let found = search
        .split(sep)
        .filter(|d| !d.is_empty())
        .flat_map(|d| exts.iter().map(move |e| PathBuf::from(d).join(format!("{program}{e}"))))
        .any(|p| runnable(&p));
    if found {
        Ok(())
    } else {
        Err(format!("the program `{program}` is not found in PATH ({search})"))
    }
}

#[cfg(unix)]
fn runnable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn runnable(p: &Path) -> bool {
    p.is_file()
}

// Every hook test runs real programs' paths of a Unix host.
#[cfg(all(test, unix))]
mod tests {
    use crate::config::{parse, ReloadAction};
    use std::path::Path;

    fn load(extra: &str) -> Result<crate::config::ServiceSpec, String> {
        let toml = format!("[services.web]\ncommand = [\"web\"]\n{extra}\n");
        parse(&toml, Path::new("/x/corral.toml")).map(|c| c.services["web"].as_ref().clone()).map_err(|e| e.to_string())
    }

    #[cfg(unix)]
    #[test]
    fn both_forms_with_a_bounded_timeout() {
        let s =
            load("pre_start = [\"true\"]\npost_stop = { cmd = [\"/bin/sh\", \"-c\", \"exit 0\"], timeout = \"2s\" }")
                .unwrap();
        assert_eq!(s.hooks.pre_start.as_ref().unwrap().argv, ["true"]);
        assert_eq!(s.hooks.pre_start.as_ref().unwrap().timeout, super::HOOK_TIMEOUT_DEFAULT);
        assert_eq!(s.hooks.post_stop.as_ref().unwrap().timeout, std::time::Duration::from_secs(2));
        let e = load("pre_stop = { cmd = [\"true\"], timeout = \"2h\" }").unwrap_err();
        assert!(e.contains("timeout 2h is out of range"), "{e}");
        let e = load("pre_stop = { cmd = [\"true\"], tmeout = \"2s\" }").unwrap_err();
        assert!(e.contains("unknown key `tmeout`"), "{e}");
        let e = load("pre_stop = \"echo hi\"").unwrap_err();
        assert!(e.contains("never run through a shell"), "{e}");
        let e = load("pre_stop = []").unwrap_err();
        assert!(e.contains("must hold the program"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_missing_program_is_an_error_at_its_place() {
        let e = load("pre_start = [\"/no/such/program\", \"x\"]").unwrap_err();
        assert!(e.contains("/x/corral.toml:3:14: service `web`: `pre_start`: the program /no/such/program"), "{e}");
        let e = load("post_start = [\"corral-no-such-program\"]").unwrap_err();
        assert!(e.contains("`corral-no-such-program` is not found in PATH"), "{e}");
        // The service's own PATH is the one searched.
        let e = load("env = { PATH = \"/nowhere\" }\npost_start = [\"sh\"]").unwrap_err();
        assert!(e.contains("not found in PATH (/nowhere)"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn reload_is_a_signal_or_a_command_not_both() {
        assert_eq!(load("reload_signal = \"HUP\"").unwrap().reload, Some(ReloadAction::Signal(corral::Signal::HUP)));
        assert!(matches!(load("reload = [\"true\"]").unwrap().reload, Some(ReloadAction::Command(_))));
        let e = load("reload_signal = \"HUP\"\nreload = [\"true\"]").unwrap_err();
        assert!(e.contains("both `reload_signal` and `reload`"), "{e}");
        let e = load("reload_signal = \"BOGUS\"").unwrap_err();
        assert!(e.contains("invalid signal 'BOGUS'"), "{e}");
    }
}
