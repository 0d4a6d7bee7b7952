//! A fleet: desired state in etcd, applied by every daemon that joins it.
//!
//! - [`keys`]: the key layout under `/corral/<cluster>/`.
//! - [`spec`]: a desired service (the `[services.*]` schema plus
//!   [`placement`]) as etcd holds it.
//! - [`placement`]: which services a node runs (pure).
//! - `deps`: fleet services held back on a node that lacks a dependency.
//! - [`connect`]: TLS, credentials and one-line errors.
//! - `registration` (lease + keep-alive), `watch` (desired state,
//!   resumed or resynced), `status` (published on change only), `cache`
//!   (the last applied state in state_dir), `node` (the daemon's loop).
//! - [`ops`]: the operator's verbs (`corral fleet …`).

#[cfg(feature = "fleet")]
mod cache;
#[cfg(feature = "fleet")]
pub mod connect;
mod deps;
#[cfg(feature = "fleet")]
mod driver;
pub mod keys;
#[cfg(feature = "fleet")]
pub(crate) mod node;
#[cfg(feature = "fleet")]
pub mod ops;
pub mod placement;
#[cfg(feature = "fleet")]
pub mod registration;
pub mod rollout;
pub mod spec;
pub mod status;
#[cfg(feature = "fleet")]
mod watch;

pub use placement::Placement;

use crate::config::{Config, Specs};
use crate::event::{Event, EventKind, EventLog};
use std::collections::{BTreeMap, BTreeSet};

/// The fleet's share of the daemon's services.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    /// What the fleet wants this node to run.
    pub services: Specs,
    /// Those of them in the config in force (a local name wins).
    pub applied: BTreeSet<String>,
    /// How the node's link to etcd is.
    pub link: Option<Link>,
    /// Fleet services not run here, with why (a dependency this node
    /// lacks); reported once per change.
    pub held: BTreeMap<String, String>,
}

impl Overlay {
    /// `config` (the local services) with the fleet's added. A name in
    /// both is a config error: the local service stays and the fleet's
    /// is reported, never run.
    pub(crate) fn merge_into(&mut self, mut config: Config, events: &EventLog) -> Config {
        self.applied.clear();
        for (name, spec) in &self.services {
            if config.services.contains_key(name) {
                emit(
                    events,
                    name,
                    format!(
                        "fleet: service `{name}` is also a local service in the config file; the fleet's is ignored"
                    ),
                );
                continue;
            }
            config.services.insert(name.clone(), spec.clone());
            self.applied.insert(name.clone());
        }
        let held = deps::hold_back(&mut config.services, &self.applied);
        for (name, why) in &held {
            self.applied.remove(name);
            if self.held.get(name) != Some(why) {
                emit(events, name, format!("fleet: service `{name}` is not started on this node: {why}"));
            }
        }
        self.held = held;
        config
    }
}

/// The node's link to etcd, for `corral status`, events and metrics.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Link {
    /// The cluster joined.
    pub cluster: String,
    /// This node's name in it.
    pub node: String,
    /// True while etcd answers.
    pub connected: bool,
    /// Since when (RFC 3339 UTC).
    pub since: String,
    /// Since when, in milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// Why it is disconnected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Working links lost: back within the ttl (an etcd member went away,
    /// another answered) that is no disconnection, only this count.
    #[serde(default)]
    pub reconnects: u64,
    /// The endpoint of the last connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (c, n) = (&self.cluster, &self.node);
        match (&self.connected, &self.error) {
            (true, _) => write!(f, "fleet: connected since {} (cluster {c}, node {n})", self.since),
            (false, Some(e)) => write!(f, "fleet: disconnected since {} (cluster {c}, node {n}): {e}", self.since),
            (false, None) => write!(f, "fleet: disconnected since {} (cluster {c}, node {n})", self.since),
        }
    }
}

impl prometheus_client::collector::Collector for Link {
    fn encode(&self, mut enc: prometheus_client::encoding::DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::{gauge::ConstGauge, MetricType};
        let m =
            enc.encode_descriptor("corral_fleet_connected", "1 while etcd answers, else 0", None, MetricType::Gauge)?;
        ConstGauge::new(i64::from(self.connected)).encode(m)?;
        let m = enc.encode_descriptor(
            "corral_fleet_link_since_seconds",
            "When the link to etcd last changed (Unix seconds)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new((self.since_ms / 1000) as i64).encode(m)?;
        let m = enc.encode_descriptor(
            "corral_fleet_reconnects",
            "Working links to etcd that were lost (reported as a disconnection only past the ttl)",
            None,
            MetricType::Counter,
        )?;
        prometheus_client::metrics::counter::ConstCounter::new(self.reconnects).encode(m)
    }
}

/// A fleet event in events.jsonl (kind `fleet`; `service` is the service
/// concerned, or `fleet`).
pub(crate) fn emit(events: &EventLog, service: &str, reason: String) {
    let ms = now_ms();
    events.emit(Event {
        ts: crate::time::format_millis(ms as i64),
        unix_ms: ms,
        service: service.to_string(),
        instance: 0,
        from: crate::State::Stopped,
        to: crate::State::Stopped,
        reason,
        pid: None,
        exit: None,
        kind: EventKind::Fleet,
        ready: None,
        probe: None,
        alert: None,
        hook: None,
        actor: None,
    });
}

/// A task that ends with its owner.
#[cfg(feature = "fleet")]
pub(crate) struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

#[cfg(feature = "fleet")]
impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_name_in_both_keeps_the_local_service_and_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let events = EventLog::open(dir.path(), crate::config::LogPolicy::default()).unwrap();
        let local = crate::config::parse("[services.web]\ncommand = [\"local\"]\n", Path::new("/tmp/c.toml")).unwrap();
        let (fleet, _) = crate::config::parse_fleet_spec(
            "[services.web]\ncommand = [\"fleet\"]\n[services.api]\ncommand = [\"api\"]\n",
            Path::new("s.toml"),
        )
        .unwrap();
        let mut o = Overlay { services: fleet, ..Default::default() };
        let merged = o.merge_into(local, &events);
        assert_eq!(merged.services["web"].command, ["local"]);
        assert_eq!(merged.services["api"].command, ["api"]);
        assert_eq!(o.applied.iter().collect::<Vec<_>>(), ["api"]);
        let log = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        assert!(log.contains("\"kind\":\"fleet\"") && log.contains("also a local service"), "{log}");
    }

    #[test]
    fn the_link_reads_as_one_line() {
        let mut l = Link {
            cluster: "prod".into(),
            node: "n1".into(),
            connected: false,
            since: "2026-01-01T00:00:00Z".into(),
            since_ms: 0,
            error: Some("cannot reach etcd".into()),
            reconnects: 0,
            endpoint: None,
        };
        assert_eq!(
            l.to_string(),
            "fleet: disconnected since 2026-01-01T00:00:00Z (cluster prod, node n1): cannot reach etcd"
        );
        l.connected = true;
        assert_eq!(l.to_string(), "fleet: connected since 2026-01-01T00:00:00Z (cluster prod, node n1)");
    }
}
