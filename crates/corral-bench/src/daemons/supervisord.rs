//! supervisord in the foreground (`-n`) with a private config, socket, pid
//! file and logs in a temp dir; `supervisorctl` for the rest.

use super::{files_with_prefix, run_cli, spawn_logged, wait_child, Policy, Service, Supervisor};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct Supervisord {
    daemon_bin: PathBuf,
    ctl_bin: PathBuf,
    dir: PathBuf,
    daemon: Option<Child>,
}

impl Supervisord {
    pub fn new(daemon_bin: PathBuf, ctl_bin: PathBuf, dir: PathBuf) -> Supervisord {
        Supervisord { daemon_bin, ctl_bin, dir, daemon: None }
    }
    fn config(&self) -> PathBuf {
        self.dir.join("supervisord.conf")
    }
    fn ctl(&self) -> Command {
        let mut c = Command::new(&self.ctl_bin);
        c.arg("-c").arg(self.config());
        c
    }
}

/// One argument quoted for supervisord's shlex split; `%` is its own
/// expansion character.
fn quote(a: &str) -> String {
    format!("'{}'", a.replace('\'', r#"'"'"'"#).replace('%', "%%"))
}

impl Supervisor for Supervisord {
    fn launch(&mut self, services: &[Service]) -> Result<(), String> {
        let d = self.dir.display();
        std::fs::create_dir_all(self.dir.join("logs")).map_err(|e| e.to_string())?;
        let mut s = format!(
            "[unix_http_server]\nfile={d}/supervisor.sock\n\n\
             [supervisord]\nnodaemon=true\nlogfile={d}/supervisord.log\npidfile={d}/supervisord.pid\nchildlogdir={d}/logs\n\n\
             [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
             [supervisorctl]\nserverurl=unix://{d}/supervisor.sock\n"
        );
        for svc in services {
            let cmd: Vec<String> = svc.argv.iter().map(|a| quote(a)).collect();
            let _ = write!(
                s,
                "\n[program:{}]\ncommand={}\nautostart=true\n\
                 stopsignal=TERM\nstopwaitsecs=5\nstopasgroup=true\nkillasgroup=true\n",
                svc.name,
                cmd.join(" ")
            );
            if svc.policy == Policy::Once {
                // Run once; a run shorter than startsecs would count as a
                // failed start and be retried.
                s.push_str("autorestart=false\nstartsecs=0\nstartretries=0\n");
            } else {
                s.push_str("autorestart=true\nstartretries=1000000\n");
            }
            if svc.log_max.is_some() {
                // One file, never rotated (maxbytes=0 turns rotation off).
                let _ = write!(s, "stdout_logfile={d}/logs/{}.out\nstdout_logfile_maxbytes=0\n", svc.name);
            }
            if svc.policy == Policy::Immediate {
                // Otherwise a run shorter than 1 s counts as a failed start
                // and is retried after a backoff.
                s.push_str("startsecs=0\n");
            }
        }
        std::fs::write(self.config(), s).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.daemon_bin);
        cmd.arg("-n").arg("-c").arg(self.config());
        self.daemon = Some(spawn_logged(&mut cmd, &self.dir.join("out.log"))?);
        Ok(())
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let mut c = self.ctl();
            c.arg("pid");
            if run_cli(c, &self.dir.join("cli.log"), timeout).map(|s| s.success()).unwrap_or(false) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("supervisord did not answer `supervisorctl pid`".into())
    }

    fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(|c| c.id())
    }

    fn stop_cli(&self, name: &str) -> Command {
        let mut c = self.ctl();
        c.arg("stop").arg(name);
        c
    }

    fn log_files(&self, name: &str) -> Vec<PathBuf> {
        files_with_prefix(&self.dir.join("logs"), &format!("{name}.out"))
    }

    fn shutdown(&mut self) {
        if let Some(d) = self.daemon.take() {
            let mut c = self.ctl();
            c.arg("shutdown");
            let _ = run_cli(c, &self.dir.join("cli.log"), Duration::from_secs(30));
            if wait_child(d, Duration::from_secs(20)).is_none() {
                eprintln!("corral-bench: supervisord did not exit after `shutdown`; killed it");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Supervisord {
    fn drop(&mut self) {
        self.shutdown();
    }
}
