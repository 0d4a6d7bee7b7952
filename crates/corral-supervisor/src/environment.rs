//! A service's environment, built on purpose rather than inherited: the
//! daemon often runs as root with tokens and cloud credentials in its own
//! environment, and none of that is a service's business unless the
//! config says so (`inherit_env`).
//!
//! Layers, each one overriding the one before (as systemd does):
//! 1. the base: `PATH` (a fixed safe default on Unix) and `LANG` from the
//!    daemon if it has one; on Windows the system variables without which
//!    programs do not start (`SystemRoot`, `PATH`, `TEMP`, ...);
//! 2. what `inherit_env` lets through from the daemon;
//! 3. `HOME`, `USER`, `LOGNAME`, `SHELL` of the account the service runs as
//!    (`user =`, else the daemon's own), from its passwd entry;
//! 4. the service's `env_file`s, in order (read at each start);
//! 5. the config's `env`;
//! 6. `CORRAL_SERVICE` and `CORRAL_INSTANCE`.
//!
//! The library adds its own tag (`CORRAL_GROUP`, `CORRAL_STOP_EVENT` on
//! Windows) at spawn.

use crate::config::ServiceSpec;
use crate::user::Account;
use std::ffi::OsString;

/// systemd's default `PATH` for services.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The daemon's variables every service gets on Windows: the system's own
/// locations, and the account's (services run as the daemon's account).
const WINDOWS_BASE: &[&str] = &[
    "SystemRoot",
    "SystemDrive",
    "windir",
    "ComSpec",
    "PATH",
    "PATHEXT",
    "TEMP",
    "TMP",
    "ProgramData",
    "ProgramFiles",
    "ProgramFiles(x86)",
    "ProgramW6432",
    "CommonProgramFiles",
    "CommonProgramFiles(x86)",
    "CommonProgramW6432",
    "NUMBER_OF_PROCESSORS",
    "PROCESSOR_ARCHITECTURE",
    "OS",
    "COMPUTERNAME",
    "USERNAME",
    "USERDOMAIN",
    "USERPROFILE",
    "HOMEDRIVE",
    "HOMEPATH",
    "APPDATA",
    "LOCALAPPDATA",
    "PUBLIC",
];

/// The environment of one instance (or of a probe run like it), in layer
/// order: where a name comes twice, the later value wins (as with
/// `Command::envs`). `daemon` is the daemon's own environment.
pub(crate) fn build(
    spec: &ServiceSpec,
    instance: u32,
    account: Option<&Account>,
    files: &[(String, String)],
    daemon: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    let mut out: Vec<(OsString, OsString)> = Vec::new();
    if !cfg!(windows) {
        out.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    let daemon: Vec<(OsString, OsString)> = daemon.into_iter().collect();
    out.extend(daemon.iter().filter(|(k, _)| in_base(k)).cloned());
    out.extend(daemon.into_iter().filter(|(k, _)| k.to_str().is_some_and(|k| spec.inherit_env.passes(k))));
    if let Some(a) = account {
        for (k, v) in [("HOME", &a.home), ("USER", &a.name), ("LOGNAME", &a.name), ("SHELL", &a.shell)] {
            out.push((k.into(), v.into()));
        }
    }
    out.extend(files.iter().map(|(k, v)| (k.into(), v.into())));
    out.extend(spec.env.iter().map(|(k, v)| (k.into(), v.into())));
    out.push(("CORRAL_SERVICE".into(), spec.name.clone().into()));
    out.push(("CORRAL_INSTANCE".into(), instance.to_string().into()));
    out
}

/// Whether a daemon variable belongs to every service's base.
fn in_base(name: &OsString) -> bool {
    let Some(name) = name.to_str() else { return false };
    if cfg!(windows) {
        WINDOWS_BASE.iter().any(|b| b.eq_ignore_ascii_case(name))
    } else {
        name == "LANG"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InheritEnv;

    fn spec(inherit: InheritEnv) -> ServiceSpec {
        let toml = r#"
            [services.web]
            command = ["web"]
            env = { APP = "1", PATH = "/opt/web/bin" }
        "#;
        let config = crate::config::parse(toml, std::path::Path::new("/etc/corral.toml")).unwrap();
        let mut s = config.services["web"].as_ref().clone();
        s.env.remove("PATH");
        s.inherit_env = inherit;
        s
    }

    fn daemon() -> Vec<(OsString, OsString)> {
        [("PATH", "/root/bin:/usr/bin"), ("LANG", "C.UTF-8"), ("AWS_SECRET_ACCESS_KEY", "s3cr3t"), ("TZ", "UTC")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }

    fn get(env: &[(OsString, OsString)], k: &str) -> Option<String> {
        env.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.to_string_lossy().into_owned())
    }

    fn nobody() -> Account {
        Account {
            uid: 65534,
            gid: 65534,
            name: "nobody".into(),
            home: "/nonexistent".into(),
            shell: "/usr/sbin/nologin".into(),
        }
    }

    #[cfg(unix)]
    #[test]
    fn by_default_nothing_of_the_daemon_but_lang() {
        let env = build(&spec(InheritEnv::Nothing), 2, None, &[], daemon());
        assert_eq!(get(&env, "PATH").as_deref(), Some(DEFAULT_PATH));
        assert_eq!(get(&env, "LANG").as_deref(), Some("C.UTF-8"));
        assert_eq!(get(&env, "AWS_SECRET_ACCESS_KEY"), None);
        assert_eq!(get(&env, "TZ"), None);
        assert_eq!(get(&env, "HOME"), None);
        assert_eq!(get(&env, "APP").as_deref(), Some("1"));
        assert_eq!(get(&env, "CORRAL_SERVICE").as_deref(), Some("web"));
        assert_eq!(get(&env, "CORRAL_INSTANCE").as_deref(), Some("2"));
    }

    #[cfg(unix)]
    #[test]
    fn inherit_env_passes_all_or_the_listed_names() {
        let all = build(&spec(InheritEnv::All), 0, None, &[], daemon());
        assert_eq!(get(&all, "AWS_SECRET_ACCESS_KEY").as_deref(), Some("s3cr3t"));
        assert_eq!(get(&all, "PATH").as_deref(), Some("/root/bin:/usr/bin"));
        let some = build(&spec(InheritEnv::Only(vec!["TZ".into()])), 0, None, &[], daemon());
        assert_eq!(get(&some, "TZ").as_deref(), Some("UTC"));
        assert_eq!(get(&some, "AWS_SECRET_ACCESS_KEY"), None);
        assert_eq!(get(&some, "PATH").as_deref(), Some(DEFAULT_PATH));
    }

    #[test]
    fn the_account_and_the_config_win_over_the_daemon() {
        let mut s = spec(InheritEnv::All);
        let daemon = daemon().into_iter().chain([("HOME".into(), "/root".into())]);
        s.env.insert("SHELL".into(), "/bin/dash".into());
        let files = [("SHELL".to_string(), "/bin/zsh".to_string()), ("FROM_FILE".to_string(), "1".to_string())];
        let env = build(&s, 0, Some(&nobody()), &files, daemon);
        assert_eq!(get(&env, "HOME").as_deref(), Some("/nonexistent"));
        assert_eq!(get(&env, "USER").as_deref(), Some("nobody"));
        assert_eq!(get(&env, "LOGNAME").as_deref(), Some("nobody"));
        assert_eq!(get(&env, "SHELL").as_deref(), Some("/bin/dash"), "env wins over an env file");
        assert_eq!(get(&env, "FROM_FILE").as_deref(), Some("1"));
    }
}
