//! The programs the benchmarks run: corral's own binaries (built here in
//! release if needed) and the peers (installed by `scripts/install-peers.sh`
//! into a private prefix when missing), plus what the report says about the
//! machine and the versions.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root, fixed at compile time.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| "../..".into())
}

/// corral's binaries in the same target directory as this one.
#[derive(Debug, Clone)]
pub struct Bins {
    pub corral: PathBuf,
    pub testkit: PathBuf,
}

/// Builds `corral` and `corral-testkit` in release next to this binary (a
/// no-op when they are fresh), unless `CORRAL_BIN` and `CORRAL_TESTKIT`
/// point at them.
pub fn bins() -> Result<Bins, String> {
    if let (Some(c), Some(t)) = (std::env::var_os("CORRAL_BIN"), std::env::var_os("CORRAL_TESTKIT")) {
        return Ok(Bins { corral: c.into(), testkit: t.into() });
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = exe.parent().ok_or("no exe dir")?.to_path_buf();
    let target = dir.parent().ok_or("no target dir")?.to_path_buf();
    let profile = dir.file_name().and_then(|s| s.to_str()).unwrap_or("release").to_string();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", "corral-cli", "-p", "corral-testkit", "--manifest-path"])
        .arg(workspace().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
    // The fleet part (12) needs corral's `fleet` feature, whose build needs
    // protoc; every other part runs without it.
    if std::env::var_os("PROTOC").is_some() || Command::new("protoc").arg("--version").output().is_ok() {
        cmd.args(["--features", "corral-cli/fleet"]);
    }
    if profile == "release" {
        cmd.arg("--release");
    } else {
        eprintln!("corral-bench: WARNING: built in {profile}, not release; figures mean little");
    }
    eprintln!("corral-bench: building corral and corral-testkit ({profile})");
    let st = cmd.status().map_err(|e| format!("running cargo: {e}"))?;
    let b = Bins { corral: dir.join("corral"), testkit: dir.join("corral-testkit") };
    if !st.success() {
        if b.corral.exists() && b.testkit.exists() {
            eprintln!(
                "corral-bench: WARNING: the build failed; using the corral binaries already in {}",
                dir.display()
            );
        } else {
            return Err(format!("cargo build of corral-cli and corral-testkit failed: {st}"));
        }
    }
    for p in [&b.corral, &b.testkit] {
        if !p.exists() {
            return Err(format!("{} is missing after the build", p.display()));
        }
    }
    Ok(b)
}

/// The supervisor peers; `None` when one could not be installed.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    pub supervisord: Option<PathBuf>,
    pub supervisorctl: Option<PathBuf>,
    pub pm2: Option<PathBuf>,
}

/// Where peers are installed: `CORRAL_BENCH_PEERS`, else a cache folder.
fn peers_prefix() -> PathBuf {
    if let Some(p) = std::env::var_os("CORRAL_BENCH_PEERS") {
        return p.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("corral-bench")
}

/// Runs the install script (which only installs what is missing).
pub fn peers() -> Peers {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-peers.sh");
    let out = Command::new("sh").arg(&script).arg(peers_prefix()).stderr(Stdio::inherit()).output();
    let mut p = Peers::default();
    let Ok(out) = out else {
        eprintln!("corral-bench: could not run {}", script.display());
        return p;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(v) = line.strip_prefix("supervisord=").filter(|v| !v.is_empty()) {
            let d = PathBuf::from(v);
            let ctl = d.with_file_name("supervisorctl");
            p.supervisorctl = ctl.exists().then_some(ctl);
            p.supervisord = Some(d);
        }
        if let Some(v) = line.strip_prefix("pm2=").filter(|v| !v.is_empty()) {
            p.pm2 = Some(v.into());
        }
    }
    if p.supervisorctl.is_none() {
        p.supervisord = None;
    }
    p
}

fn first_line(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().lines().next()?.to_string();
    (!s.is_empty()).then_some(s)
}

/// The version of a crate as resolved in the workspace's Cargo.lock.
fn locked_version(name: &str) -> String {
    let lock = std::fs::read_to_string(workspace().join("Cargo.lock")).unwrap_or_default();
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == format!("name = \"{name}\"") {
            if let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = ")) {
                return v.trim_matches('"').to_string();
            }
        }
    }
    "?".into()
}

/// The pm2 package's version, read from its package.json (running `pm2`
/// could start a daemon).
fn pm2_version(pm2: &Path) -> String {
    let real = pm2.canonicalize().unwrap_or_else(|_| pm2.to_path_buf());
    for dir in real.ancestors().skip(1).take(3) {
        if let Ok(s) = std::fs::read_to_string(dir.join("package.json")) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&s) {
                if v["name"] == "pm2" {
                    return v["version"].as_str().unwrap_or("?").to_string();
                }
            }
        }
    }
    "?".into()
}

/// The machine and versions section of the report.
pub fn environment(peers: &Peers) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0)))
        .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| "?".into());
    let cgroups = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "cgroup v2 (unified)"
    } else if Path::new("/sys/fs/cgroup/unified").exists() {
        "hybrid: cgroup v1 controllers + an empty cgroup2 at /sys/fs/cgroup/unified"
    } else {
        "cgroup v1"
    };
    let rev = first_line(Command::new("git").arg("-C").arg(workspace()).args(["describe", "--always", "--dirty"]))
        .unwrap_or_else(|| "?".into());
    let corral_backend = corral::host_report().chosen.map(|b| format!("{b:?}")).unwrap_or_else(|| "?".into());
    let rustc = first_line(Command::new("rustc").arg("--version")).unwrap_or_else(|| "?".into());
    let supervisord = peers
        .supervisord
        .as_ref()
        .and_then(|p| first_line(Command::new(p).arg("--version")))
        .map(|v| format!("supervisor {v} (PyPI)"))
        .unwrap_or_else(|| "not available".into());
    let python = peers
        .supervisord
        .as_ref()
        .and_then(|p| first_line(Command::new(p.with_file_name("python3")).arg("--version")))
        .unwrap_or_default();
    let pm2 =
        peers.pm2.as_ref().map(|p| format!("pm2 {} (npm)", pm2_version(p))).unwrap_or_else(|| "not available".into());
    let node = first_line(Command::new("node").arg("--version")).unwrap_or_default();
    let mut s = String::new();
    s.push_str("| | |\n|---|---|\n");
    for (k, v) in [
        ("CPU", format!("{cpu}, {cores} cores")),
        ("memory", mem),
        ("OS", format!("{os}, Linux {kernel}")),
        ("cgroups", cgroups.to_string()),
        ("corral", format!("{} at `{rev}`, default backend here: {corral_backend}", env!("CARGO_PKG_VERSION"))),
        ("rustc", rustc),
        ("process-wrap", format!("{} (crates.io; std, ProcessGroup)", locked_version("process-wrap"))),
        ("processkit", format!("{} (crates.io)", locked_version("processkit"))),
        ("kill_tree", format!("{} (crates.io, blocking)", locked_version("kill_tree"))),
        ("supervisord", format!("{supervisord}, {python}")),
        ("PM2", format!("{pm2}, node {node}")),
    ] {
        s.push_str(&format!("| {k} | {v} |\n"));
    }
    s
}
