//! Command-line parsing, by hand: the CLI is small and the binary should stay
//! free of dependencies so that it builds fast for every target.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The most processes one invocation may plan to create. pid_max on the test
/// machines is 32768 and several tests run at once, so a typo must not be able
/// to exhaust it.
pub const MAX_PROCS: u64 = 2100;

/// Fork-bomb depth is clamped here: 2^(10+1) - 2 = 2046 processes, which fits
/// under `MAX_PROCS`; depth 11 would mean 4094.
pub const MAX_BOMB_DEPTH: u32 = 10;

/// `--fork-paced` depth is clamped here: 3 + 9 + 27 + 81 = 120 processes.
pub const MAX_PACED_DEPTH: u32 = 4;

/// The longest any `--sleep` or `--spin` may be, so that nothing outlives a
/// forgotten test run by more than a day.
const MAX_SECS: f64 = 86_400.0;

/// The default lifetime of every process the testkit makes.
pub const DEFAULT_SLEEP: Duration = Duration::from_millis(30_500);

pub const USAGE: &str = "\
usage: corral-testkit [OPTIONS]
  --children N          spawn N direct children (sleepers)
  --grandchildren N     each direct child spawns N children of its own
  --setsid N            spawn N children that escape with setsid()
                        (Windows: CREATE_NEW_PROCESS_GROUP|DETACHED_PROCESS)
  --double-fork N       spawn N daemons via an intermediate that exits at once
  --ignore-term         ignore SIGTERM in every process (Windows: ctrl events
                        and CORRAL_STOP_EVENT)
  --fork-bomb DEPTH     after ready: every process forks 2, DEPTH levels (max 10)
  --fork-chain N        after ready: fork a child and exit, N generations, 1 ms apart
  --fork-loop N         after ready: fork N children in a tight loop, each lives 2 s
  --fork-paced DEPTH    after ready: every process forks 3 children 20 ms apart,
                        DEPTH levels (max 4: 120 processes), then sleeps (Unix)
  --alloc MIB           after ready: allocate and touch MIB MiB, then sleep
  --spin SECS           after ready: busy-loop for at most SECS seconds
  --sleep SECS          lifetime of every process (default 30.5)
  --exit CODE           exit code of the top process (default 0)
  --lines N             after ready: print N lines `line <i> <pid>` to stdout
                        (64 KiB writes of whole lines)
  --stderr-lines N      same to stderr
  --line-every-ms MS    pause MS ms between two --lines lines, each written
                        whole with its own write (at most 60000)
  --http-port N         serve HTTP on 127.0.0.1:N (0: any free port) before
                        ready: GET /health is 200, or 503 while the
                        --http-fail-file exists
  --http-port-file PATH write the port to PATH (implies --http-port 0)
  --http-fail-file PATH /health fails while PATH exists
  --http-body-file PATH /health answers 200 with the bytes in PATH, read at
                        each request (a JSON body as application/json)
  --exec-child PROG ARGS...  spawn PROG with ARGS (must be last)
modes (first argument):
  numbered N [--long-every K] [--long-bytes B]   N numbered lines to stdout and
                        to stderr at once, every K-th B bytes long (numbered.rs)
  notify | ready-fd FD | activated-http | bound-http PORT   (Unix; protocols.rs)
  late-escape TRIGGER SECS   once the file TRIGGER exists, start a child that
                        calls setsid; all ends after SECS (max 120) (Unix; late_escape.rs)
  announced-http PORT FILE NAME [--sleep S]   serve GET /health (200) on
                        127.0.0.1:PORT, then append `NAME PID` to FILE (announced_http.rs)
";

/// Which part of the tree this process plays. Only `Top` is started by a test;
/// the others are started by the testkit itself through the hidden `--role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Top,
    /// A direct child: spawns `--grandchildren` sleepers, reports, sleeps.
    Child,
    /// Reports and sleeps. Also plays the setsid child and the daemon.
    Sleeper,
    /// The middle of a double fork: spawns a daemon, reports it, exits.
    Intermediate,
    /// Windows has no fork: a fork-bomb node is a spawned process.
    #[cfg(windows)]
    Bomb,
    /// Windows has no fork: a fork-chain link is a spawned process.
    #[cfg(windows)]
    Chain,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Top => "top",
            Role::Child => "child",
            Role::Sleeper => "sleeper",
            Role::Intermediate => "intermediate",
            #[cfg(windows)]
            Role::Bomb => "bomb",
            #[cfg(windows)]
            Role::Chain => "chain",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "top" => Role::Top,
            "child" => Role::Child,
            "sleeper" => Role::Sleeper,
            "intermediate" => Role::Intermediate,
            #[cfg(windows)]
            "bomb" => Role::Bomb,
            #[cfg(windows)]
            "chain" => Role::Chain,
            _ => return None,
        })
    }
}

#[derive(Debug)]
pub struct Opts {
    pub role: Role,
    pub children: u32,
    pub grandchildren: u32,
    pub setsid: u32,
    pub double_fork: u32,
    pub ignore_term: bool,
    pub fork_bomb: u32,
    pub fork_chain: u32,
    pub fork_loop: u32,
    pub fork_paced: u32,
    pub alloc_mib: u32,
    pub spin: Option<Duration>,
    pub sleep: Option<Duration>,
    pub exit: Option<i32>,
    pub lines: u32,
    /// Pause between two `--lines` lines (each then goes out on its own).
    pub line_every: Option<Duration>,
    pub stderr_lines: u32,
    /// `--http-port`, or 0 with `--http-port-file` alone.
    pub http_port: Option<u16>,
    pub http_port_file: Option<PathBuf>,
    pub http_fail_file: Option<PathBuf>,
    pub http_body_file: Option<PathBuf>,
    /// `--exec-child PROG ARGS...`; empty when absent.
    pub exec: Vec<OsString>,
    pub help: bool,
}

impl Opts {
    /// Whether the top process has anything to do besides printing. Without
    /// an action and without `--sleep`, `--exit N` exits right after ready.
    pub fn has_action(&self) -> bool {
        self.children > 0
            || self.setsid > 0
            || self.double_fork > 0
            || self.fork_bomb > 0
            || self.fork_chain > 0
            || self.fork_loop > 0
            || self.fork_paced > 0
            || self.alloc_mib > 0
            || self.spin.is_some()
            || self.http_port.is_some()
            || !self.exec.is_empty()
    }

    /// How many processes this invocation plans to create, at most.
    pub fn planned_procs(&self) -> u64 {
        let bomb = if self.fork_bomb == 0 { 0 } else { (1u64 << (self.fork_bomb + 1)) - 2 };
        u64::from(self.children) * (1 + u64::from(self.grandchildren))
            + u64::from(self.setsid)
            + 2 * u64::from(self.double_fork)
            + bomb
            + u64::from(self.fork_chain)
            + u64::from(self.fork_loop)
            + (1..=self.fork_paced).map(|l| 3u64.pow(l)).sum::<u64>()
            + u64::from(!self.exec.is_empty())
    }
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Opts, String> {
    let mut o = Opts {
        role: Role::Top,
        children: 0,
        grandchildren: 0,
        setsid: 0,
        double_fork: 0,
        ignore_term: false,
        fork_bomb: 0,
        fork_chain: 0,
        fork_loop: 0,
        fork_paced: 0,
        alloc_mib: 0,
        spin: None,
        sleep: None,
        exit: None,
        lines: 0,
        line_every: None,
        stderr_lines: 0,
        http_port: None,
        http_port_file: None,
        http_fail_file: None,
        http_body_file: None,
        exec: Vec::new(),
        help: false,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let arg = arg.into_string().map_err(|a| format!("argument is not UTF-8: {a:?}"))?;
        let mut value = || -> Result<String, String> {
            it.next()
                .ok_or_else(|| format!("{arg} needs a value"))?
                .into_string()
                .map_err(|v| format!("{arg}: value is not UTF-8: {v:?}"))
        };
        match arg.as_str() {
            "--children" => o.children = count(&arg, &value()?)?,
            "--grandchildren" => o.grandchildren = count(&arg, &value()?)?,
            "--setsid" => o.setsid = count(&arg, &value()?)?,
            "--double-fork" => o.double_fork = count(&arg, &value()?)?,
            "--ignore-term" => o.ignore_term = true,
            "--fork-bomb" => o.fork_bomb = count(&arg, &value()?)?.min(MAX_BOMB_DEPTH),
            "--fork-chain" => o.fork_chain = count(&arg, &value()?)?,
            "--fork-loop" => o.fork_loop = count(&arg, &value()?)?,
            "--fork-paced" if cfg!(unix) => o.fork_paced = count(&arg, &value()?)?.min(MAX_PACED_DEPTH),
            "--alloc" => o.alloc_mib = count(&arg, &value()?)?,
            "--spin" => o.spin = Some(secs(&arg, &value()?)?),
            "--sleep" => o.sleep = Some(secs(&arg, &value()?)?),
            "--exit" => o.exit = Some(exit_code(&value()?)?),
            "--lines" => o.lines = count(&arg, &value()?)?,
            "--line-every-ms" => o.line_every = Some(Duration::from_millis(count(&arg, &value()?)?.min(60_000).into())),
            "--stderr-lines" => o.stderr_lines = count(&arg, &value()?)?,
            "--http-port" => {
                let v = value()?;
                o.http_port = Some(v.parse().map_err(|_| format!("--http-port: expected a port 0-65535, got {v:?}"))?);
            }
            "--http-port-file" => {
                o.http_port_file = Some(value()?.into());
                o.http_port.get_or_insert(0);
            }
            "--http-fail-file" => o.http_fail_file = Some(value()?.into()),
            "--http-body-file" => o.http_body_file = Some(value()?.into()),
            "--role" => {
                let v = value()?;
                o.role = Role::parse(&v).ok_or_else(|| format!("unknown role {v:?}"))?;
            }
            "--exec-child" => {
                o.exec = it.by_ref().collect();
                if o.exec.is_empty() {
                    return Err("--exec-child needs a program".into());
                }
            }
            "-h" | "--help" => o.help = true,
            _ => return Err(format!("unknown argument {arg:?} (try --help)")),
        }
    }
    let planned = o.planned_procs();
    if planned > MAX_PROCS {
        return Err(format!("these options would create up to {planned} processes; the limit is {MAX_PROCS}"));
    }
    Ok(o)
}

fn count(name: &str, v: &str) -> Result<u32, String> {
    v.parse().map_err(|_| format!("{name}: expected a non-negative integer, got {v:?}"))
}

fn secs(name: &str, v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if (0.0..=MAX_SECS).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("{name}: expected seconds in 0..={MAX_SECS}, got {v:?}")),
    }
}

/// Only 0..=255 survives a round trip through every platform's wait status.
fn exit_code(v: &str) -> Result<i32, String> {
    match v.parse::<i32>() {
        Ok(c) if (0..=255).contains(&c) => Ok(c),
        _ => Err(format!("--exit: expected a code in 0..=255, got {v:?}")),
    }
}
