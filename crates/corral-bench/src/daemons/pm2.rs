//! PM2 with a private `PM2_HOME` in a temp dir and no network: the version
//! check is disabled (`PM2_DISABLE_VERSION_CHECK=1`, and `PM2_HOME/touch`
//! exists so the first run does not try to phone home). Its daemon ("God")
//! detaches from the CLI; it is re-parented to this process (a subreaper),
//! which reaps it after `pm2 kill`.

use super::{run_cli, Policy, Service, Supervisor};
use crate::sys::Pidfd;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Pm2 {
    bin: PathBuf,
    dir: PathBuf,
    god: Option<Pidfd>,
}

impl Pm2 {
    pub fn new(bin: PathBuf, dir: PathBuf) -> Pm2 {
        Pm2 { bin, dir, god: None }
    }
    fn home(&self) -> PathBuf {
        self.dir.join("home")
    }
    fn cli(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("PM2_HOME", self.home())
            .env("PM2_DISABLE_VERSION_CHECK", "1")
            .env("PM2_SILENT", "true")
            // PM2 stops with SIGINT by default; the others send TERM.
            .env("PM2_KILL_SIGNAL", "SIGTERM");
        c
    }
    fn read_god(&mut self) {
        if self.god.is_none() {
            let pid = std::fs::read_to_string(self.home().join("pm2.pid")).ok().and_then(|s| s.trim().parse().ok());
            self.god = pid.and_then(|p| Pidfd::open(p).ok());
        }
    }
}

impl Supervisor for Pm2 {
    fn launch(&mut self, services: &[Service]) -> Result<(), String> {
        std::fs::create_dir_all(self.home()).map_err(|e| e.to_string())?;
        std::fs::write(self.home().join("touch"), "").map_err(|e| e.to_string())?;
        let log = self.dir.join("cli.log");
        let mut cmd = self.cli();
        if services.is_empty() {
            cmd.arg("ping");
        } else {
            let apps: Vec<serde_json::Value> = services
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "name": s.name,
                        "script": s.argv[0],
                        "args": s.argv[1..],
                        "interpreter": "none",
                        "autorestart": s.policy != Policy::Once,
                        // PM2's default delay is none; only its restart
                        // budget is raised, so that it never gives up.
                        "restart_delay": 0,
                        "max_restarts": 1_000_000,
                        "min_uptime": if s.policy == Policy::Immediate { 0 } else { 1000 },
                        "kill_timeout": 5000,
                        "treekill": true,
                    })
                })
                .collect();
            let eco = self.dir.join("ecosystem.json");
            std::fs::write(&eco, serde_json::json!({ "apps": apps }).to_string()).map_err(|e| e.to_string())?;
            cmd.arg("start").arg(&eco);
        }
        let st = run_cli(cmd, &log, Duration::from_secs(60))?;
        self.read_god();
        if !st.success() {
            return Err(format!("pm2 failed ({st}); see {}", log.display()));
        }
        Ok(())
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.read_god();
            if self.god.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("PM2 wrote no pm2.pid".into())
    }

    fn daemon_pid(&self) -> Option<u32> {
        self.god.as_ref().map(|g| g.pid)
    }

    fn stop_cli(&self, name: &str) -> Command {
        let mut c = self.cli();
        c.arg("stop").arg(name);
        c
    }

    fn log_files(&self, name: &str) -> Vec<PathBuf> {
        super::files_with_prefix(&self.home().join("logs"), &format!("{name}-out"))
    }

    fn shutdown(&mut self) {
        self.read_god();
        if self.home().exists() {
            let mut c = self.cli();
            c.arg("kill");
            let _ = run_cli(c, &self.dir.join("cli.log"), Duration::from_secs(60));
        }
        if let Some(g) = self.god.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !g.exited() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if !g.exited() {
                eprintln!("corral-bench: the PM2 daemon outlived `pm2 kill`; killing it");
                let _ = g.signal(libc::SIGKILL);
                while !g.exited() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            g.reap();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Pm2 {
    fn drop(&mut self) {
        self.shutdown();
    }
}
