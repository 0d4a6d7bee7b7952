//! corral's supervisor: `corral up -q -c corral.toml` in the foreground (as
//! `corral up -d` runs it: no echo of the services' output), with its state
//! dir, socket and logs in a temp dir; the CLI for the rest.

use super::{files_with_prefix, run_cli, spawn_logged, wait_child, Liveness, Policy, Service, Supervisor};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct CorralUp {
    bin: PathBuf,
    dir: PathBuf,
    daemon: Option<Child>,
}

impl CorralUp {
    pub fn new(bin: PathBuf, dir: PathBuf) -> CorralUp {
        CorralUp { bin, dir, daemon: None }
    }
    fn config(&self) -> PathBuf {
        self.dir.join("corral.toml")
    }
    fn cli(&self, verb: &str) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg(verb).arg("-c").arg(self.config());
        c
    }
}

/// A TOML basic string (JSON's escapes are a subset TOML accepts for ASCII).
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

pub fn config_text(services: &[Service]) -> String {
    let mut s = String::from("[daemon]\nstate_dir = \"state\"\n");
    for svc in services {
        let argv: Vec<String> = svc.argv.iter().map(|a| toml_str(a)).collect();
        let _ = write!(
            s,
            "\n[services.{}]\ncommand = [{}]\nrestart = \"{}\"\nstop = {{ signal = \"TERM\", grace = \"5s\" }}\n",
            svc.name,
            argv.join(", "),
            if svc.policy == Policy::Once { "no" } else { "always" }
        );
        if let Some(max) = svc.log_max {
            // One file that never reaches its rotation size in the run.
            let _ = writeln!(s, "logs = {{ max_size = {max}, keep = 1 }}");
        }
        // "Never give up": a start limit no run reaches (10000 starts in a
        // second; the most the config takes), so that only the
        // backoff (or its absence) paces the restarts.
        s.push_str("start_limit = { burst = 10000, interval = \"1s\" }\n");
        if svc.policy == Policy::Immediate {
            s.push_str("backoff = { initial = \"0s\", max = \"0s\" }\n");
        }
        match &svc.liveness {
            Some(Liveness::Exec(probe)) => {
                let argv: Vec<String> = probe.iter().map(|a| toml_str(a)).collect();
                let _ = write!(s, "\n[services.{}.health.liveness]\nexec = [{}]\n", svc.name, argv.join(", "));
            }
            Some(Liveness::Http(url)) => {
                let _ = write!(s, "\n[services.{}.health.liveness]\nhttp = {}\n", svc.name, toml_str(url));
            }
            None => {}
        }
    }
    s
}

impl Supervisor for CorralUp {
    fn launch(&mut self, services: &[Service]) -> Result<(), String> {
        std::fs::write(self.config(), config_text(services)).map_err(|e| e.to_string())?;
        let mut cmd = self.cli("up");
        // As `corral up -d` runs: the services' output goes to log_dir only.
        cmd.arg("--quiet");
        self.daemon = Some(spawn_logged(&mut cmd, &self.dir.join("up.log"))?);
        Ok(())
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let mut c = self.cli("status");
            c.arg("--json");
            if run_cli(c, &self.dir.join("cli.log"), timeout).map(|s| s.success()).unwrap_or(false) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err("corral up did not answer `corral status`".into())
    }

    fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(|c| c.id())
    }

    fn stop_cli(&self, name: &str) -> Command {
        let mut c = self.cli("stop");
        c.arg(name);
        c
    }

    fn log_files(&self, name: &str) -> Vec<PathBuf> {
        // `log_dir` defaults to `<state_dir>/logs`: `<service>/<instance>.log`
        // and its rotations `<instance>.log.N`.
        files_with_prefix(&self.dir.join("state").join("logs").join(name), "")
    }

    fn shutdown(&mut self) {
        if let Some(d) = self.daemon.take() {
            let _ = run_cli(self.cli("down"), &self.dir.join("cli.log"), Duration::from_secs(30));
            if wait_child(d, Duration::from_secs(15)).is_none() {
                eprintln!("corral-bench: corral up did not exit after `corral down`; killed it");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for CorralUp {
    fn drop(&mut self) {
        self.shutdown();
    }
}
