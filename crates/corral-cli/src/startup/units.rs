//! The boot entries as text, from absolute paths: pure, so each form is
//! tested without an init system.

use super::{Entry, Init};
use std::path::Path;

/// A systemd unit.
///
/// `KillMode=mixed`: at stop, systemd sends SIGTERM to corral alone, and
/// corral stops its services itself, dependants first, each with its own
/// stop signal and grace. The default (`control-group`) would signal every
/// process of every service at once, racing that order; `process` would,
/// if corral overran `TimeoutStopSec`, SIGKILL corral alone and leave its
/// services running until the next corral reaps them. `mixed` is both:
/// corral's own ordered teardown first, then systemd's SIGKILL to whatever
/// is left in the unit's cgroup, so nothing survives a stop.
///
/// `Delegate=yes` gives corral its unit's cgroup subtree, which it finds
/// and uses for one cgroup per service instance; without it systemd owns
/// that tree and may move or prune what corral creates there.
pub(crate) fn systemd(e: &Entry) -> String {
    let exe = systemd_quote(&e.exe);
    let cfg = systemd_quote(&e.config);
    let target = if e.user { "default.target" } else { "multi-user.target" };
    format!(
        "# Written by `corral startup systemd`.\n\
         [Unit]\n\
         Description=corral supervisor for {config}\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={exe} up -c {cfg}\n\
         ExecReload={exe} reload -c {cfg}\n\
         KillMode=mixed\n\
         Delegate=yes\n\
         TimeoutStopSec={stop}\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         \n\
         [Install]\n\
         WantedBy={target}\n",
        config = e.config.display().to_string().replace('%', "%%"),
        stop = e.stop_timeout.as_secs().max(1),
    )
}

/// An OpenRC script. `retry` gives corral the same time as systemd's
/// `TimeoutStopSec` before its KILL.
pub(crate) fn openrc(e: &Entry) -> String {
    let exe = sh_quote(&e.exe);
    let cfg = sh_quote(&e.config);
    format!(
        "#!/sbin/openrc-run\n\
         # Written by `corral startup openrc`.\n\
         description={desc}\n\
         command={exe}\n\
         command_args=\"up -c {cfg_args}\"\n\
         command_background=true\n\
         pidfile=\"/run/${{RC_SVCNAME}}.pid\"\n\
         retry=\"TERM/{stop}/KILL/5\"\n\
         extra_started_commands=\"reload\"\n\
         \n\
         depend() {{\n\
         \tneed localmount\n\
         \tafter net\n\
         }}\n\
         \n\
         reload() {{\n\
         \tebegin \"Reloading ${{RC_SVCNAME}}\"\n\
         \t{exe} reload -c {cfg}\n\
         \teend $?\n\
         }}\n",
        // OpenRC hands command_args to start-stop-daemon through `eval`,
        // so the quoted path is quoted once more for the double quotes.
        cfg_args = cfg.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$").replace('`', "\\`"),
        desc = sh_quote(Path::new(&format!("corral supervisor for {}", e.config.display()))),
        stop = e.stop_timeout.as_secs().max(1),
    )
}

/// A launchd property list: a daemon (`/Library/LaunchDaemons`) or, with
/// `--user`, an agent. `KeepAlive` on failure only: `corral down` is an
/// exit launchd must not undo.
pub(crate) fn launchd(e: &Entry) -> String {
    let x = |p: &Path| xml_escape(&p.display().to_string());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- Written by `corral startup launchd`. -->\n\
         <plist version=\"1.0\">\n\
         <dict>\n\
         \t<key>Label</key>\n\
         \t<string>{label}</string>\n\
         \t<key>ProgramArguments</key>\n\
         \t<array>\n\
         \t\t<string>{exe}</string>\n\
         \t\t<string>up</string>\n\
         \t\t<string>-c</string>\n\
         \t\t<string>{cfg}</string>\n\
         \t</array>\n\
         \t<key>RunAtLoad</key>\n\
         \t<true/>\n\
         \t<key>KeepAlive</key>\n\
         \t<dict>\n\
         \t\t<key>SuccessfulExit</key>\n\
         \t\t<false/>\n\
         \t</dict>\n\
         \t<key>ExitTimeOut</key>\n\
         \t<integer>{stop}</integer>\n\
         </dict>\n\
         </plist>\n",
        label = xml_escape(&e.name),
        exe = x(&e.exe),
        cfg = x(&e.config),
        stop = e.stop_timeout.as_secs().max(1),
    )
}

/// What to run after `--install`.
pub(crate) fn next_step(init: Init, e: &Entry) -> String {
    match (init, e.user) {
        (Init::Systemd, false) => format!("next: systemctl daemon-reload && systemctl enable --now {}", e.name),
        (Init::Systemd, true) => {
            format!("next: systemctl --user daemon-reload && systemctl --user enable --now {}", e.name)
        }
        (Init::Openrc, _) => format!("next: rc-update add {} default && rc-service {} start", e.name, e.name),
        (Init::Launchd, false) => format!("next: launchctl bootstrap system /Library/LaunchDaemons/{}.plist", e.name),
        (Init::Launchd, true) => {
            format!("next: launchctl bootstrap gui/$(id -u) ~/Library/LaunchAgents/{}.plist", e.name)
        }
    }
}

/// One word of a systemd command line: bare when it is plain, else in
/// double quotes; `%` and `$` are systemd's own specifiers and doubled.
fn systemd_quote(p: &Path) -> String {
    let s = p.display().to_string().replace('%', "%%").replace('$', "$$");
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:@,=".contains(c)) {
        return s;
    }
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One word for `sh`, in single quotes when it is not plain.
fn sh_quote(p: &Path) -> String {
    let s = p.display().to_string();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:@,=".contains(c)) {
        return s;
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(config: &str) -> Entry {
        Entry {
            name: "corral-x".into(),
            exe: "/usr/bin/corral".into(),
            config: config.into(),
            stop_timeout: Duration::from_secs(40),
            user: false,
        }
    }

    #[test]
    fn words_with_spaces_or_specifiers_are_quoted() {
        assert_eq!(systemd_quote(Path::new("/a/b.toml")), "/a/b.toml");
        assert_eq!(systemd_quote(Path::new("/my dir/100%.toml")), "\"/my dir/100%%.toml\"");
        assert_eq!(sh_quote(Path::new("/it's here")), "'/it'\\''s here'");
    }

    #[test]
    fn the_unit_starts_and_reloads_this_config() {
        let u = systemd(&entry("/srv/app/corral.toml"));
        assert!(u.contains("ExecStart=/usr/bin/corral up -c /srv/app/corral.toml\n"), "{u}");
        assert!(u.contains("ExecReload=/usr/bin/corral reload -c /srv/app/corral.toml\n"));
        assert!(u.contains("KillMode=mixed\n") && u.contains("TimeoutStopSec=40\n"));
        assert!(launchd(&entry("/a&b/c.toml")).contains("<string>/a&amp;b/c.toml</string>"));
    }
}
