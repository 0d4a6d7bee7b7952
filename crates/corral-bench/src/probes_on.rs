//! Measure 4b: corral's idle CPU with the 100 services of measure 4 and a
//! liveness probe on each at the default period (10 s). The goal's row is
//! the issue's: an `http` probe, each service serving HTTP on a loopback
//! port of its own (`corral-testkit announced-http`). The `exec` row
//! (`/bin/true`) is for information: what a probe that starts a process
//! costs.

use crate::daemons::{Fifo, Liveness, Policy, Service};
use crate::report::{Section, Verdict};
use crate::stats::secs;
use crate::Opts;
use std::net::TcpListener;

/// One probes-on row of the footprint table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbesOn {
    Http,
    Exec,
}

impl ProbesOn {
    pub const ALL: [ProbesOn; 2] = [ProbesOn::Http, ProbesOn::Exec];

    /// For progress lines.
    pub fn name(self) -> &'static str {
        match self {
            ProbesOn::Http => "corral (http probes)",
            ProbesOn::Exec => "corral (exec probes)",
        }
    }

    /// The row's label in the report.
    pub fn label(self) -> &'static str {
        match self {
            ProbesOn::Http => {
                "corral, probes on: a liveness `http` probe (GET on the service's own loopback port, every 10 s) per service"
            }
            ProbesOn::Exec => {
                "corral, probes on (for information): a liveness `exec` probe (`/bin/true`, every 10 s) per service"
            }
        }
    }

    /// The `n` services of this row, announcing themselves on `fifo`.
    pub fn services(self, opts: &Opts, fifo: &Fifo, n: usize) -> Result<Vec<Service>, String> {
        match self {
            ProbesOn::Exec => Ok((0..n)
                .map(|i| {
                    let mut s =
                        Service::shell(&format!("s{i}"), "/bin/sh", &fifo.path, "exec sleep 300", Policy::Defaults);
                    s.liveness = Some(Liveness::Exec(vec!["/bin/true".into()]));
                    s
                })
                .collect()),
            ProbesOn::Http => {
                let tk = opts.bins.testkit.display().to_string();
                let at = fifo.path.display().to_string();
                Ok(free_ports(n)?
                    .into_iter()
                    .enumerate()
                    .map(|(i, port)| {
                        let name = format!("s{i}");
                        let argv = [&tk, "announced-http", &port.to_string(), &at, &name, "--sleep", "300"];
                        let mut s = Service::direct(&name, argv.map(String::from).to_vec(), Policy::Defaults);
                        s.liveness = Some(Liveness::Http(format!("http://127.0.0.1:{port}/health")));
                        s
                    })
                    .collect())
            }
        }
    }
}

/// The probes' period (the default), and so the shortest window that
/// sees every service's probe run.
pub const PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

/// The goal's bound: this many times supervisord's idle figure (issue 11).
const GOAL_TIMES_SUPERVISORD: f64 = 2.0;

/// The 4b paragraph and verdict. `cpu` holds the daemon's CPU per 30 s of
/// each row of [`ProbesOn::ALL`], in order; `idle` corral's without
/// probes, `supervisord` supervisord's.
pub fn judge(sec: &mut Section, cpu: &[f64], idle: f64, supervisord: Option<f64>) {
    let of = |p: ProbesOn| cpu[ProbesOn::ALL.iter().position(|&q| q == p).unwrap_or(0)];
    let (http, exec) = (of(ProbesOn::Http), of(ProbesOn::Exec));
    // 100 services, one check each per 10 s: 300 checks per 30 s.
    let per_check = |v: f64| secs((v - idle).max(0.0) / 300.0);
    sec.para(&format!(
        "**4b, probes on.** The same 100 services, each with a liveness probe at the default period (10 s) and \
         timeout (1 s): 300 checks per 30 s. The goal's row is the issue's, an `http` probe: each service is \
         `corral-testkit announced-http PORT`, which serves `GET /health` (200) on its own loopback port (free ports \
         below the ephemeral range) and announces itself once it answers. The `exec` row (`/bin/true`) is for \
         information: each run is a process in a corral group of its own. Per check, the daemon spends about {} \
         (http) and {} (exec) above its idle figure. Where it goes, and the kernel's floor for an http check \
         (about supervisord's whole idle figure for 300 checks), is in \"Probes on (4b)\" above.",
        per_check(http),
        per_check(exec),
    ));
    let goal = format!(
        "idle CPU with 100 services and an http liveness probe per service every 10 s ≤ {GOAL_TIMES_SUPERVISORD} × \
         supervisord's idle figure"
    );
    let exec_note = format!("(exec probes instead: {})", secs(exec));
    sec.verdicts.push(match supervisord {
        Some(sv) => Verdict::new(
            "4b",
            &goal,
            format!("{} vs {} per 30 s ({:.1} ×) {exec_note}", secs(http), secs(sv), http / sv),
            Some(http <= GOAL_TIMES_SUPERVISORD * sv),
        ),
        None => Verdict::new("4b", &goal, format!("{} per 30 s; supervisord missing {exec_note}", secs(http)), None),
    });
}

/// Where the services' ports are looked for: below Linux's default
/// ephemeral range (32768–60999), so that the probes' own client ports
/// never take one before its server binds it.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// `n` loopback ports that are free now, found by binding each in turn
/// (from an offset of this process's pid, so that two benches started
/// together look in different places); at most one pass over [`PORTS`].
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let span = u32::from(PORTS.end - PORTS.start);
    let from = std::process::id() % span;
    let mut found = Vec::with_capacity(n);
    for k in 0..span {
        if found.len() == n {
            break;
        }
        let port = PORTS.start + ((from + k) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            found.push(port);
        }
    }
    if found.len() < n {
        return Err(format!("only {} free loopback ports in {PORTS:?}; {n} needed", found.len()));
    }
    Ok(found)
}
