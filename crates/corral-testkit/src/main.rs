//! corral-testkit: the misbehaving child used by corral's tests.
//!
//! The top process spawns its tree by re-executing itself with a hidden
//! `--role`. Every spawned process reports on a pipe to its parent once it is
//! set up (signals ignored, own children reported), so the top prints its one
//! readiness line only when the whole tree exists: tests never sleep to
//! synchronise. Every process exits by itself when `--sleep` expires.

mod announced_http;
mod args;
mod http;
#[cfg(unix)]
mod late_escape;
#[cfg(unix)]
mod protocols;

#[cfg(unix)]
#[path = "unix.rs"]
mod sys;
#[cfg(windows)]
#[path = "windows.rs"]
mod sys;

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use args::{Opts, Role};

fn main() {
    let words: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    if let Some(code) = corral_testkit::numbered::dispatch(&words) {
        std::process::exit(code);
    }
    if let Some(code) = announced_http::dispatch(&words) {
        std::process::exit(code);
    }
    #[cfg(unix)]
    if let Some(code) = late_escape::dispatch(&words) {
        std::process::exit(code);
    }
    #[cfg(unix)]
    if let Some(code) = protocols::dispatch(&words) {
        std::process::exit(code);
    }
    let opts = match args::parse(std::env::args_os().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("corral-testkit: {e}");
            std::process::exit(2);
        }
    };
    if opts.help {
        print!("{}", args::USAGE);
        return;
    }
    let start = Instant::now();
    let lifetime = match opts.sleep {
        Some(s) => s,
        None if opts.role == Role::Top && opts.exit.is_some() && !opts.has_action() => Duration::ZERO,
        None => args::DEFAULT_SLEEP,
    };
    let deadline = start + lifetime;
    sys::init(opts.ignore_term, deadline);

    let result = match opts.role {
        Role::Top => run_top(&opts, deadline),
        Role::Child => run_child(&opts, deadline),
        Role::Sleeper => run_sleeper(deadline),
        Role::Intermediate => run_intermediate(&opts, deadline),
        #[cfg(windows)]
        Role::Bomb | Role::Chain => sys::run_fork_role(&opts, deadline),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("corral-testkit ({}): {e}", opts.role.name());
            std::process::exit(1);
        }
    }
}

/// The pids the top process reports, by kind.
#[derive(Default)]
struct Tree {
    children: Vec<u32>,
    grandchildren: Vec<u32>,
    setsid: Vec<u32>,
    daemons: Vec<u32>,
    exec: Vec<u32>,
}

impl Tree {
    fn ready_line(&self) -> String {
        let all: Vec<u32> = [&self.children, &self.grandchildren, &self.setsid, &self.daemons, &self.exec]
            .into_iter()
            .flatten()
            .copied()
            .collect();
        format!(
            r#"{{"ready":true,"pid":{},"children":{},"grandchildren":{},"setsid":{},"daemons":{},"exec":{},"all":{}}}"#,
            std::process::id(),
            json_list(&self.children),
            json_list(&self.grandchildren),
            json_list(&self.setsid),
            json_list(&self.daemons),
            json_list(&self.exec),
            json_list(&all),
        )
    }
}

fn json_list(pids: &[u32]) -> String {
    let items: Vec<String> = pids.iter().map(u32::to_string).collect();
    format!("[{}]", items.join(","))
}

fn run_top(opts: &Opts, deadline: Instant) -> Result<i32, String> {
    let mut spawned: Vec<Child> = Vec::new();
    let tree = spawn_tree(opts, deadline, &mut spawned).inspect_err(|_| {
        // Do not leave a half-built tree running for the whole --sleep.
        for c in &mut spawned {
            let _ = c.kill();
        }
    })?;
    // Dropping a std Child neither kills nor waits; reaping is left to linger.
    drop(spawned);
    if let Some(port) = opts.http_port {
        http::serve(port, opts.http_port_file.as_deref(), opts.http_fail_file.clone(), opts.http_body_file.clone())?;
    }
    {
        let mut out = io::stdout().lock();
        writeln!(out, "{}", tree.ready_line()).map_err(|e| format!("stdout: {e}"))?;
        out.flush().map_err(|e| format!("stdout: {e}"))?;
    }

    match opts.line_every {
        Some(pause) => print_paced_lines(opts.lines, pause, deadline),
        None => print_lines(&mut io::stdout().lock(), opts.lines),
    }
    print_lines(&mut io::stderr().lock(), opts.stderr_lines);
    if opts.fork_loop > 0 {
        let (forked, failed) = sys::fork_loop(opts.fork_loop, deadline);
        let mut out = io::stdout().lock();
        // A closed reader is the test's business, not an error of ours.
        let _ = writeln!(out, r#"{{"fork_loop":{{"forked":{forked},"failed":{failed}}}}}"#).and_then(|()| out.flush());
    }
    if opts.fork_chain > 0 {
        sys::fork_chain(opts.fork_chain, deadline);
    }
    if opts.fork_bomb > 0 {
        sys::fork_bomb(opts.fork_bomb, deadline);
    }
    #[cfg(unix)]
    if opts.fork_paced > 0 {
        sys::fork_paced(opts.fork_paced, deadline);
    }
    let memory = alloc(opts.alloc_mib, deadline);
    if let Some(spin) = opts.spin {
        spin_until(deadline.min(Instant::now() + spin));
    }
    sys::linger(deadline);
    std::hint::black_box(&memory);
    Ok(opts.exit.unwrap_or(0))
}

/// Spawns everything first and collects the reports after, so the children
/// start in parallel.
fn spawn_tree(opts: &Opts, deadline: Instant, spawned: &mut Vec<Child>) -> Result<Tree, String> {
    let spawn = |role: Role, escape: bool, spawned: &mut Vec<Child>| -> Result<(), String> {
        let mut cmd = role_command(role, opts.ignore_term, deadline);
        if role == Role::Child {
            cmd.arg("--grandchildren").arg(opts.grandchildren.to_string());
        }
        if escape {
            sys::escape(&mut cmd);
        }
        let child = cmd.spawn().map_err(|e| format!("spawning a {} process: {e}", role.name()))?;
        spawned.push(child);
        Ok(())
    };
    for _ in 0..opts.children {
        spawn(Role::Child, false, spawned)?;
    }
    for _ in 0..opts.setsid {
        spawn(Role::Sleeper, true, spawned)?;
    }
    for _ in 0..opts.double_fork {
        spawn(Role::Intermediate, true, spawned)?;
    }

    let mut tree = Tree::default();
    let (children, rest) = spawned.split_at_mut(opts.children as usize);
    let (setsid, intermediates) = rest.split_at_mut(opts.setsid as usize);
    for c in children {
        tree.children.push(c.id());
        tree.grandchildren.extend(read_report(c)?);
    }
    for c in setsid {
        read_report(c)?;
        tree.setsid.push(c.id());
    }
    for c in intermediates {
        tree.daemons.extend(read_report(c)?);
        // Reap the intermediate so that, by the ready line, its daemon is
        // already re-parented and the intermediate is not a zombie.
        c.wait().map_err(|e| format!("waiting for an intermediate: {e}"))?;
    }
    if let Some((prog, rest)) = opts.exec.split_first() {
        // Null stdio: the exec child must not print before the ready line, nor
        // hold the top's stdout open.
        let child = Command::new(prog)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawning {prog:?}: {e}"))?;
        tree.exec.push(child.id());
        spawned.push(child);
    }
    Ok(tree)
}

/// A command that re-executes this binary in `role`, living until `deadline`.
/// Its stdout is a pipe for the report; stdin and stderr are null so that no
/// descendant keeps the top's stdio open.
fn role_command(role: Role, ignore_term: bool, deadline: Instant) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| "corral-testkit".into());
    let mut cmd = Command::new(exe);
    let left = deadline.saturating_duration_since(Instant::now());
    cmd.arg("--role")
        .arg(role.name())
        .arg("--sleep")
        .arg(format!("{:.3}", left.as_secs_f64()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if ignore_term {
        cmd.arg("--ignore-term");
    }
    cmd
}

/// Reads a child's one report line, `ok [PID...]`, then drops the pipe.
fn read_report(child: &mut Child) -> Result<Vec<u32>, String> {
    let pid = child.id();
    let pipe = child.stdout.take().ok_or_else(|| format!("process {pid} has no report pipe"))?;
    let mut line = String::new();
    BufReader::new(pipe).read_line(&mut line).map_err(|e| format!("reading the report of process {pid}: {e}"))?;
    let mut words = line.split_whitespace();
    if words.next() != Some("ok") {
        return Err(format!("process {pid} failed to start (report {line:?})"));
    }
    words.map(|w| w.parse().map_err(|_| format!("bad report from {pid}: {line:?}"))).collect()
}

/// Prints the report line on the pipe to the parent, then points stdio at
/// null so a parent that stopped reading is never written to again.
fn report(pids: &[u32]) -> Result<(), String> {
    let mut line = String::from("ok");
    for p in pids {
        line.push(' ');
        line.push_str(&p.to_string());
    }
    let mut out = io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|e| format!("report: {e}"))?;
    drop(out);
    sys::quiet_stdio();
    Ok(())
}

fn run_sleeper(deadline: Instant) -> Result<i32, String> {
    report(&[])?;
    sys::linger(deadline);
    Ok(0)
}

fn run_child(opts: &Opts, deadline: Instant) -> Result<i32, String> {
    let mut kids = Vec::new();
    for _ in 0..opts.grandchildren {
        let kid = role_command(Role::Sleeper, opts.ignore_term, deadline)
            .spawn()
            .map_err(|e| format!("spawning a grandchild: {e}"))?;
        kids.push(kid);
    }
    let mut pids = Vec::new();
    for k in &mut kids {
        read_report(k)?;
        pids.push(k.id());
    }
    report(&pids)?;
    drop(kids);
    sys::linger(deadline);
    Ok(0)
}

/// Spawns the daemon, passes its pid up and exits at once, so the daemon is
/// re-parented (to init or the nearest subreaper).
fn run_intermediate(opts: &Opts, deadline: Instant) -> Result<i32, String> {
    let mut daemon = role_command(Role::Sleeper, opts.ignore_term, deadline)
        .spawn()
        .map_err(|e| format!("spawning the daemon: {e}"))?;
    read_report(&mut daemon)?;
    report(&[daemon.id()])?;
    Ok(0)
}

/// `line <i> <pid>` lines to stdout, each in one write, `pause` apart
/// (a steady writer for tests that take the reader away meanwhile).
fn print_paced_lines(n: u32, pause: Duration, deadline: Instant) {
    let pid = std::process::id();
    for i in 1..=n {
        if Instant::now() >= deadline {
            return;
        }
        let mut out = io::stdout().lock();
        if out.write_all(format!("line {i} {pid}\n").as_bytes()).and_then(|()| out.flush()).is_err() {
            return;
        }
        drop(out);
        std::thread::sleep(pause);
    }
}

fn print_lines(out: &mut impl Write, n: u32) {
    // A closed reader is the test's business, not an error of ours.
    let _ = corral_testkit::counted::write_lines(out, n.into(), std::process::id());
}

/// Allocates `mib` MiB in 1 MiB chunks and writes to every page so the memory
/// is really resident (a fresh zeroed allocation is not). The caller keeps the
/// returned chunks alive until it exits.
fn alloc(mib: u32, deadline: Instant) -> Vec<Vec<u8>> {
    const CHUNK: usize = 1 << 20;
    const PAGE: usize = 4096;
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(mib as usize);
    let mut out = io::stdout().lock();
    for k in 1..=mib {
        let mut chunk = vec![0u8; CHUNK];
        for i in (0..CHUNK).step_by(PAGE) {
            chunk[i] = 1;
        }
        chunks.push(std::hint::black_box(chunk));
        // The last count is always printed, so a test can wait for it.
        let last = k == mib || Instant::now() >= deadline;
        if k % 16 == 0 || last {
            let _ = writeln!(out, r#"{{"allocated_mib":{k}}}"#).and_then(|()| out.flush());
        }
        if last {
            break;
        }
    }
    chunks
}

fn spin_until(end: Instant) {
    let mut x: u64 = 1;
    while Instant::now() < end {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
}
