//! Kill on controller death: `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`.
//!
//! The controller is this test binary itself, started again to run the
//! ignored `controller` test with `CORRAL_TEST_CONTROLLER` set. It starts a
//! testkit tree, prints the pids and blocks; the test terminates it (so no
//! destructor runs) and then proves that the tree died with it.
//!
//! Wine was seen to end the children of a process that exits even without
//! any job. So the same tree is first run without corral as a control: if
//! the control tree dies with its parent as well, this host cannot tell
//! the job's doing from Wine's, and the test says so and skips.

#![cfg(windows)]

mod windows_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use windows_support::{command, Proc, Ready};

const MODE: &str = "CORRAL_TEST_CONTROLLER";
const TREE: &[&str] = &["--children", "2", "--grandchildren", "1", "--setsid", "1", "--sleep", "60"];

/// Runs in the child: starts the tree (in a group, or plainly as the
/// control), prints its ready line, and waits to be terminated.
#[test]
#[ignore = "helper: started by kill_on_controller_death with CORRAL_TEST_CONTROLLER set"]
fn controller() {
    let Ok(mode) = std::env::var(MODE) else { return };
    let mut cmd = command(TREE);
    let (line, _keep): (String, Box<dyn std::any::Any>) = if mode == "group" {
        let mut group = corral::Group::builder().kill_on_drop(true).spawn(cmd).expect("spawn in a group");
        let mut out = BufReader::new(group.take_stdout().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        (line, Box::new((group, out)))
    } else {
        let mut child = cmd.spawn().expect("spawn plainly");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        (line, Box::new((child, out)))
    };
    println!("TREE {}", line.trim());
    loop {
        std::thread::park();
    }
}

/// The controller process; terminated (and waited for) on drop.
struct Controller(Child);

impl Controller {
    /// TerminateProcess: no destructor, no kill_on_drop runs in it.
    fn terminate(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Starts the controller in `mode`, returns it and the tree it printed.
fn run_controller(mode: &str) -> (Controller, Ready, Vec<Proc>) {
    let exe = std::env::current_exe().unwrap();
    // Its stderr goes to a file, not a pipe: the tree inherits the handle,
    // so a pipe would not end with the controller. Read if it fails early.
    let err_path = std::env::temp_dir().join(format!("corral-controller-{}-{mode}.err", std::process::id()));
    let err = std::fs::File::create(&err_path).unwrap();
    let mut c = Controller(
        Command::new(exe)
            .args(["--exact", "controller", "--ignored", "--nocapture", "--test-threads", "1"])
            .env(MODE, mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(c.0.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let status = c.0.wait().unwrap();
            let err = std::fs::read_to_string(&err_path).unwrap_or_default();
            let _ = std::fs::remove_file(&err_path);
            panic!("the controller ended ({status}) without printing its tree: {err}");
        }
        // libtest prints `test controller ... ` before the test's output.
        if let Some(at) = line.find("TREE ") {
            let ready = Ready::parse(line[at + 5..].trim());
            let procs = ready.every_pid().into_iter().filter_map(Proc::open).collect();
            // Windows keeps an open file; the name goes once the controller's handle does.
            let _ = std::fs::remove_file(&err_path);
            return (c, ready, procs);
        }
    }
}

fn all_gone_within(procs: &[Proc], limit: Duration) -> bool {
    let end = std::time::Instant::now() + limit;
    loop {
        if procs.iter().all(|p| p.exit_code().is_some()) {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn terminate(procs: &[Proc]) {
    use windows_sys::Win32::System::Threading::{OpenProcess, TerminateProcess, PROCESS_TERMINATE};
    for p in procs {
        // SAFETY: no pointers; the handle is closed right after.
        unsafe {
            let h = OpenProcess(PROCESS_TERMINATE, 0, p.pid);
            if !h.is_null() {
                TerminateProcess(h, 1);
                windows_sys::Win32::Foundation::CloseHandle(h);
            }
        }
    }
}

#[test]
fn kill_on_controller_death() {
    // The control: no job. Does the tree outlive its parent here?
    let (mut c, _, control) = run_controller("plain");
    c.terminate();
    let control_died = all_gone_within(&control, Duration::from_secs(2));
    terminate(&control);
    if control_died {
        eprintln!(
            "SKIPPED: on this host (Wine) a tree dies with its parent even without a job, so the test cannot \
             show what KILL_ON_JOB_CLOSE adds"
        );
        return;
    }

    let (mut c, ready, procs) = run_controller("group");
    assert_eq!(procs.len(), 1 + ready.all.len());
    // Only the kernel closing the dead controller's job handle can end the
    // tree now.
    c.terminate();
    let died = all_gone_within(&procs, Duration::from_secs(10));
    terminate(&procs);
    assert!(died, "the tree survived its controller");
}
