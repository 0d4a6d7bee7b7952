//! A reference for log capture (measure 8): no supervisor at all, the
//! service's stdout piped straight into `cat > file`. Nothing is added to
//! the lines and nothing is parsed: what it costs is the pipe and the
//! file system's write path, which every capturing daemon pays too.

use super::{wait_child, Service, Supervisor};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct CatFloor {
    dir: PathBuf,
    writer: Option<Child>,
    cat: Option<Child>,
}

impl CatFloor {
    pub fn new(dir: PathBuf) -> CatFloor {
        CatFloor { dir, writer: None, cat: None }
    }
    fn file(&self) -> PathBuf {
        self.dir.join("cat.out")
    }
}

impl Supervisor for CatFloor {
    fn launch(&mut self, services: &[Service]) -> Result<(), String> {
        let [svc] = services else { return Err("the cat reference takes one service".into()) };
        let file = std::fs::File::create(self.file()).map_err(|e| e.to_string())?;
        let mut writer = Command::new(&svc.argv[0])
            .args(&svc.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", svc.argv[0]))?;
        let pipe = writer.stdout.take().ok_or("no stdout pipe")?;
        self.writer = Some(writer);
        self.cat = Some(Command::new("cat").stdin(pipe).stdout(file).spawn().map_err(|e| format!("cat: {e}"))?);
        Ok(())
    }

    fn wait_ready(&mut self, _timeout: Duration) -> Result<(), String> {
        Ok(())
    }

    fn daemon_pid(&self) -> Option<u32> {
        self.cat.as_ref().map(Child::id)
    }

    fn stop_cli(&self, _name: &str) -> Command {
        Command::new("true")
    }

    fn log_files(&self, _name: &str) -> Vec<PathBuf> {
        vec![self.file()]
    }

    fn shutdown(&mut self) {
        // Both end by themselves once the writer has written its lines;
        // killed (by pid) and reaped if not.
        for child in [self.writer.take(), self.cat.take()].into_iter().flatten() {
            let _ = wait_child(child, Duration::from_secs(10));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for CatFloor {
    fn drop(&mut self) {
        self.shutdown();
    }
}
