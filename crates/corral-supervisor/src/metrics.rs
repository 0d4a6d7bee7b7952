//! `GET /metrics` in the Prometheus text format (or OpenMetrics when the
//! scraper asks for it), encoded by `prometheus-client`.
//!
//! Counters that events drive (restarts by reason, probe failures, probe
//! durations, alerts) live here and only grow; the state of each instance
//! (up, ready, CPU, memory, processes) is read from the supervisor at
//! scrape time, so a scrape costs one `usage()` per instance and nothing
//! is sampled in between.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `corral_instance_up` | gauge | service, instance |
//! | `corral_instance_ready` | gauge | service, instance |
//! | `corral_instance_restarts_total` | counter | service, instance, reason (`exit`, `liveness`, `startup`, `alert`, `health`) |
//! | `corral_instance_cpu_seconds_total` | counter (of the current run) | service, instance |
//! | `corral_instance_memory_bytes` | gauge | service, instance |
//! | `corral_instance_processes` | gauge | service, instance |
//! | `corral_probe_duration_seconds` | histogram | service, instance, probe |
//! | `corral_probe_failures_total` | counter | service, instance, probe |
//! | `corral_alerts_total` | counter | service, instance, metric, action |
//! | `corral_log_holds_total` | counter | service, instance |
//! | `corral_log_held` | gauge (1 while held) | service, instance |
//! | `corral_log_ship_dropped_total` | counter | service, instance, sink (`journald`, `syslog-udp`, …) |
//! | `process_resident_memory_bytes` | gauge | (the daemon; Linux) |
//! | `process_cpu_seconds_total` | counter | (the daemon; Unix) |

use crate::health::ProbeKind;
use crate::state::{InstanceStatus, State};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::time::Duration;

type Labels = Vec<(&'static str, String)>;

/// Probe durations fall in these buckets, in seconds.
const PROBE_BUCKETS: [f64; 11] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

fn probe_histogram() -> Histogram {
    Histogram::new(PROBE_BUCKETS)
}

/// The text formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4, the default.
    Prometheus,
    /// OpenMetrics 1.0 text, when the `Accept` header asks for it.
    OpenMetrics,
}

impl Format {
    /// From an `Accept` header.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The `Content-Type` of the answer.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The counters and histograms that events drive.
#[derive(Debug)]
pub struct Metrics {
    probe_duration: Family<Labels, Histogram, fn() -> Histogram>,
    probe_failures: Family<Labels, Counter>,
    restarts: Family<Labels, Counter>,
    alerts: Family<Labels, Counter>,
    log_holds: Family<Labels, Counter>,
    log_held: Family<Labels, Gauge>,
    log_ship_dropped: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            probe_duration: Family::new_with_constructor(probe_histogram as fn() -> Histogram),
            probe_failures: Family::default(),
            restarts: Family::default(),
            alerts: Family::default(),
            log_holds: Family::default(),
            log_held: Family::default(),
            log_ship_dropped: Family::default(),
        }
    }
}

fn labels(service: &str, instance: u32) -> Labels {
    vec![("service", service.to_string()), ("instance", instance.to_string())]
}

impl Metrics {
    /// One check finished. The failure counter exists from the first
    /// check on, so a scraper sees it move from 0.
    pub(crate) fn probe(&self, service: &str, instance: u32, probe: ProbeKind, took: Duration, ok: bool) {
        let mut l = labels(service, instance);
        l.push(("probe", probe.as_str().to_string()));
        self.probe_duration.get_or_create(&l).observe(took.as_secs_f64());
        let failures = self.probe_failures.get_or_create(&l);
        if !ok {
            failures.inc();
        }
    }

    /// An instance was started again; `reason` is what ended the run.
    pub(crate) fn restart(&self, service: &str, instance: u32, reason: &str) {
        let mut l = labels(service, instance);
        l.push(("reason", reason.to_string()));
        self.restarts.get_or_create(&l).inc();
    }

    /// An alert fired.
    pub(crate) fn alert(&self, service: &str, instance: u32, metric: &str, action: &str) {
        let mut l = labels(service, instance);
        l.push(("metric", metric.to_string()));
        l.push(("action", action.to_string()));
        self.alerts.get_or_create(&l).inc();
    }

    /// An instance's log began (`true`) or ended (`false`) a hold: its
    /// output waits for the disk.
    pub(crate) fn log_held(&self, service: &str, instance: u32, held: bool) {
        let l = labels(service, instance);
        if held {
            self.log_holds.get_or_create(&l).inc();
        }
        self.log_held.get_or_create(&l).set(i64::from(held));
    }

    /// A line of an instance's output was not shipped to `sink`.
    pub(crate) fn log_ship_dropped(&self, service: &str, instance: u32, sink: &str) {
        let mut l = labels(service, instance);
        l.push(("sink", sink.to_string()));
        self.log_ship_dropped.get_or_create(&l).inc();
    }

    /// Everything, with the instances as they are now.
    pub fn render(&self, instances: Vec<InstanceStatus>, fleet: Option<crate::fleet::Link>, format: Format) -> String {
        let mut reg = Registry::default();
        if let Some(link) = fleet {
            reg.register_collector(Box::new(link));
        }
        reg.register_collector(Box::new(Instances(instances)));
        reg.register(
            "corral_instance_restarts",
            "Restarts of the instance, by what ended the run before",
            self.restarts.clone(),
        );
        reg.register("corral_probe_duration_seconds", "How long health checks took", self.probe_duration.clone());
        reg.register("corral_probe_failures", "Health checks that failed", self.probe_failures.clone());
        reg.register("corral_alerts", "Resource alerts that fired", self.alerts.clone());
        reg.register(
            "corral_log_holds",
            "Times the instance's log could not be written and its output was held",
            self.log_holds.clone(),
        );
        reg.register("corral_log_held", "1 while the instance's output is held for the disk", self.log_held.clone());
        reg.register(
            "corral_log_ship_dropped",
            "Lines of the instance's output a log sink did not take (full queue, absent or failing sink)",
            self.log_ship_dropped.clone(),
        );
        reg.register_collector(Box::new(Daemon));
        let mut out = String::new();
        let r = match format {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::encode(&mut out, &reg),
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &reg),
        };
        // Writing to a String cannot fail; an encoder bug shows as a short answer.
        if let Err(e) = r {
            out.push_str(&format!("# encoding failed: {e}\n"));
        }
        out
    }
}

/// The instances' state at scrape time.
#[derive(Debug)]
struct Instances(Vec<InstanceStatus>);

impl Instances {
    fn gauge(
        &self,
        enc: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: impl Fn(&InstanceStatus) -> Option<f64>,
    ) -> Result<(), std::fmt::Error> {
        let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for i in &self.0 {
            if let Some(v) = value(i) {
                let l = labels(&i.service, i.instance);
                ConstGauge::new(v).encode(m.encode_family(&l)?)?;
            }
        }
        Ok(())
    }
}

impl Collector for Instances {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let running = |i: &InstanceStatus| i.state == State::Running;
        self.gauge(&mut enc, "corral_instance_up", "1 while the instance's group runs", |i| {
            Some(if running(i) { 1.0 } else { 0.0 })
        })?;
        self.gauge(&mut enc, "corral_instance_ready", "1 while the instance runs and is ready", |i| {
            Some(if running(i) && i.ready { 1.0 } else { 0.0 })
        })?;
        self.gauge(&mut enc, "corral_instance_memory_bytes", "Memory of the whole group now", |i| {
            i.memory_bytes.map(|b| b as f64)
        })?;
        self.gauge(&mut enc, "corral_instance_processes", "Processes alive in the group", |i| {
            i.processes.map(|p| p as f64)
        })?;
        let mut m = enc.encode_descriptor(
            "corral_instance_cpu_seconds",
            "CPU time of the whole group in the current run (user + system)",
            None,
            MetricType::Counter,
        )?;
        for i in &self.0 {
            if let Some(ms) = i.cpu_ms {
                let l = labels(&i.service, i.instance);
                ConstCounter::new(ms as f64 / 1000.0).encode(m.encode_family(&l)?)?;
            }
        }
        Ok(())
    }
}

/// The daemon's own process.
#[derive(Debug)]
struct Daemon;

impl Collector for Daemon {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (cpu, rss) = own_usage();
        if let Some(cpu) = cpu {
            let m = enc.encode_descriptor(
                "process_cpu_seconds",
                "CPU time of the corral daemon (user + system)",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(m)?;
        }
        if let Some(rss) = rss {
            let m = enc.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory of the corral daemon",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(rss as f64).encode(m)?;
        }
        Ok(())
    }
}

/// The daemon's CPU seconds and resident bytes, where the OS tells.
#[cfg(target_os = "linux")]
fn own_usage() -> (Option<f64>, Option<u64>) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return (None, None) };
    // Fields after the command (which may hold spaces), from field 3 on.
    let Some((_, rest)) = stat.rsplit_once(") ") else { return (None, None) };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    // SAFETY: sysconf has no preconditions.
    let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
    let cpu = match (num(14), num(15)) {
        (Some(u), Some(s)) if ticks > 0 => Some((u + s) as f64 / ticks as f64),
        _ => None,
    };
    let rss = num(24).filter(|_| page > 0).map(|p| p * page as u64);
    (cpu, rss)
}

#[cfg(all(unix, not(target_os = "linux")))]
fn own_usage() -> (Option<f64>, Option<u64>) {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let cpu = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut ru) == 0).then(|| {
            let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
            t(ru.ru_utime) + t(ru.ru_stime)
        })
    };
    (cpu, None)
}

#[cfg(not(unix))]
fn own_usage() -> (Option<f64>, Option<u64>) {
    (None, None)
}
