//! `corral startup systemd|openrc|launchd`: the unit, init script or
//! property list that runs `corral up -c <config>` at boot, printed, or
//! written into place with `--install`. Windows has `corral service`.
//!
//! The text is rendered by pure functions (`units.rs`) from absolute
//! paths; `install.rs` is the only part that touches the file system.

mod install;
mod units;

use crate::supervise::{ConfigArg, BAD_CONFIG, FAILED};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The init systems a boot entry can be written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Init {
    /// A systemd unit (`/etc/systemd/system`, or `~/.config/systemd/user` with --user).
    Systemd,
    /// An OpenRC script (`/etc/init.d`).
    Openrc,
    /// A launchd property list (`/Library/LaunchDaemons`, or `~/Library/LaunchAgents` with --user).
    Launchd,
}

/// `corral startup`.
#[derive(Debug, Args)]
pub struct StartupArgs {
    /// The init system to write for.
    #[arg(value_enum)]
    pub init: Init,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Write it where the init system looks, instead of printing it.
    #[arg(long)]
    pub install: bool,
    /// For your own user's service manager (systemd --user, a launchd agent), not the system's.
    #[arg(long)]
    pub user: bool,
    /// With --install: replace an existing file that differs.
    #[arg(long, requires = "install")]
    pub force: bool,
    /// The entry's name: `corral-NAME.service`, `/etc/init.d/corral-NAME`,
    /// `org.corral.NAME` [default: the config's folder name].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Install under this folder instead of `/` (tests, packaging).
    #[arg(long, value_name = "DIR", hide = true, requires = "install")]
    pub root: Option<PathBuf>,
}

/// What every entry needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// `corral-NAME` (systemd, OpenRC) or `org.corral.NAME` (launchd).
    pub name: String,
    /// The absolute path of this `corral`.
    pub exe: PathBuf,
    /// The absolute path of the config.
    pub config: PathBuf,
    /// How long a stop may take before the init system kills what is left:
    /// the services' graces added up (they stop in dependency order), plus
    /// a margin for corral itself.
    pub stop_timeout: Duration,
    pub user: bool,
}

/// Runs `corral startup`.
pub fn main(a: StartupArgs) -> u8 {
    match run(a) {
        Ok(code) => code,
        Err((code, msg)) => {
            crate::exit::error(msg);
            code
        }
    }
}

fn run(a: StartupArgs) -> Result<u8, (u8, String)> {
    if cfg!(windows) {
        return Err((
            FAILED,
            "on Windows the daemon starts at boot as a service: corral service install -c FILE".into(),
        ));
    }
    if a.user && a.init == Init::Openrc {
        return Err((FAILED, "OpenRC starts services for the system only: drop --user".into()));
    }
    // A boot entry for a config that does not load would fail at every boot.
    let config = crate::supervise::load(&a.config).map_err(|c| (c, "the config must load first".into()))?;
    let config_path = std::path::absolute(&config.path)
        .map_err(|e| (FAILED, format!("cannot make {} absolute: {e}", config.path.display())))?;
    let exe = std::env::current_exe().map_err(|e| (FAILED, format!("cannot find this corral's own path: {e}")))?;
    let name = match a.name {
        Some(n) => n,
        None => default_name(&config_path),
    };
    if !valid_name(&name) {
        return Err((
            BAD_CONFIG,
            format!("invalid name `{name}`: use 1 to 64 letters, digits, `-` and `_` (--name NAME)"),
        ));
    }
    let graces = config.services.values().fold(Duration::ZERO, |t, s| t.saturating_add(s.stop.grace));
    let entry = Entry {
        name: if a.init == Init::Launchd { format!("org.corral.{name}") } else { format!("corral-{name}") },
        exe,
        config: config_path,
        stop_timeout: graces.saturating_add(Duration::from_secs(30)).min(Duration::from_secs(24 * 3600)),
        user: a.user,
    };
    let text = match a.init {
        Init::Systemd => units::systemd(&entry),
        Init::Openrc => units::openrc(&entry),
        Init::Launchd => units::launchd(&entry),
    };
    if !a.install {
        return Ok(crate::exit::print(&text));
    }
    let dest = install::destination(a.init, &entry, a.root.as_deref()).map_err(|e| (FAILED, e))?;
    let mode = if a.init == Init::Openrc { 0o755 } else { 0o644 };
    match install::write(&dest, text.as_bytes(), mode, a.force).map_err(|e| (FAILED, e))? {
        install::Written::Same => println!("{} is already installed", dest.display()),
        install::Written::New => println!("installed {}", dest.display()),
    }
    println!("{}", units::next_step(a.init, &entry));
    Ok(0)
}

/// The config's folder name, made a valid entry name.
fn default_name(config: &Path) -> String {
    let folder = config.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
    let clean: String = folder
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .take(64)
        .collect();
    let clean = clean.trim_matches('-').to_string();
    if clean.is_empty() {
        "default".into()
    } else {
        clean
    }
}

fn valid_name(n: &str) -> bool {
    (1..=64).contains(&n.len()) && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_name_comes_from_the_config_folder() {
        assert_eq!(default_name(Path::new("/srv/my app/corral.toml")), "my-app");
        assert_eq!(default_name(Path::new("/corral.toml")), "default");
        assert!(valid_name("web_1-a") && !valid_name("a/b") && !valid_name(""));
    }
}
