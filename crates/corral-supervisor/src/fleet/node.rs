//! The daemon's side of a fleet: one task that registers the node, keeps
//! its lease alive, follows the desired services, applies this node's
//! share through the supervisor's reload, and publishes instance status.
//!
//! When etcd goes away nothing is stopped: the services keep running as
//! they are, the link says `disconnected since …`, and the task retries
//! with a bounded backoff. On return it resumes the watch where it left
//! off (or resyncs), so what changed meanwhile is applied.

use super::keys::Keys;
use super::registration::{NodeValue, Registration};
use super::spec::Checked;
use super::watch::{self, Desired, Update};
use super::{cache, connect, driver, emit, now_ms, status, AbortOnDrop, Link};
use crate::config::FleetConfig;
use crate::supervisor::Supervisor;
use etcd_client::{Client, DeleteOptions, PutOptions};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Retry delays after a lost link: doubled from the first to the last.
const RETRY: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));
/// At most this many desired services are considered.
const MAX_SERVICES: usize = 1000;

pub(crate) struct Node {
    sup: Supervisor,
    cfg: FleetConfig,
    keys: Keys,
    desired: Desired,
    /// The last good value (and its check) of every desired service.
    good: BTreeMap<String, (Vec<u8>, Checked)>,
    /// Malformed values already reported.
    bad: BTreeMap<String, Vec<u8>>,
    /// Revisions of the fleet services this node runs.
    revisions: BTreeMap<String, u64>,
    /// Status as etcd holds it under the current lease.
    published: BTreeMap<String, String>,
    client: Option<(Client, i64)>,
    started: String,
}

impl Node {
    pub(crate) fn new(sup: Supervisor, cfg: FleetConfig) -> Node {
        let keys = Keys::new(&cfg.cluster);
        let link = Link {
            cluster: cfg.cluster.clone(),
            node: cfg.node.clone(),
            connected: false,
            since: crate::time::now_rfc3339(),
            since_ms: now_ms(),
            error: Some("not connected yet".into()),
            reconnects: 0,
            endpoint: None,
        };
        sup.fleet().link = Some(link);
        Node {
            sup,
            cfg,
            keys,
            desired: Desired::default(),
            good: BTreeMap::new(),
            bad: BTreeMap::new(),
            revisions: BTreeMap::new(),
            published: BTreeMap::new(),
            client: None,
            started: crate::time::now_rfc3339(),
        }
    }

    /// Applies the cached state, so a daemon that starts while etcd is
    /// away runs what it ran.
    pub(crate) async fn preload(&mut self) {
        let dir = self.sup.config().daemon.state_dir;
        if let Some(d) = cache::load(&dir) {
            self.desired = d;
            self.apply().await;
        }
    }

    /// Runs until `stop`; then leaves the fleet (revokes the lease, so the
    /// node and its status go at once).
    pub(crate) async fn run(mut self, stop: Arc<Notify>) {
        let mut delay = RETRY.0;
        // When a working link was lost: until its lease would have run
        // out, failures to get it back are retried quietly (an etcd member
        // died and the others elect a leader); only the metrics count it.
        let mut lost: Option<(u64, std::time::Instant)> = None;
        loop {
            let (why, lasted) = tokio::select! {
                why = self.session() => why,
                _ = stop.notified() => return self.leave().await,
            };
            self.client = None;
            if lasted {
                lost = Some((now_ms(), std::time::Instant::now()));
                delay = RETRY.0;
                if let Some(l) = self.sup.fleet().link.as_mut() {
                    l.reconnects += 1;
                }
            }
            let connected = self.sup.fleet().link.as_ref().is_some_and(|l| l.connected);
            let quiet = connected && lost.is_some_and(|(_, at)| at.elapsed() < self.cfg.ttl);
            if !quiet {
                self.set_link(false, Some(why), lost.map(|(ms, _)| ms));
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.notified() => return,
            }
            if !quiet {
                delay = (delay * 2).min(RETRY.1);
            }
        }
    }

    /// One connection's life; returns why it ended, and whether it got
    /// as far as following the desired state.
    async fn session(&mut self) -> (String, bool) {
        let mut client = match connect::connect_any(&self.cfg.endpoints, &self.cfg.auth).await {
            Ok((c, endpoint)) => {
                if let Some(l) = self.sup.fleet().link.as_mut() {
                    l.endpoint = Some(endpoint);
                }
                c
            }
            Err(e) => return (e, false),
        };
        let value = NodeValue {
            labels: self.cfg.labels.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            address: self.sup.config().daemon.socket.display().to_string(),
            started: self.started.clone(),
            pid: std::process::id(),
        };
        let mut reg = match Registration::new(&mut client, &self.keys, &self.cfg, &value).await {
            Ok(r) => r,
            Err(e) => return (format!("cannot register: {e}"), false),
        };
        let lease = reg.lease;
        self.client = Some((client.clone(), lease));
        // A new lease: every status key is written again under it.
        self.published.clear();
        let keep = AbortOnDrop(tokio::spawn(async move { reg.keep_alive().await }));
        let drives = driver::run(client.clone(), self.keys.clone(), self.cfg.node.clone(), lease, self.sup.clone());
        let _drives = AbortOnDrop(tokio::spawn(drives));
        let mut stream = match self.follow(&mut client).await {
            Ok(s) => s,
            Err(e) => return (e, false),
        };
        self.set_link(true, None, None);
        (self.following(&mut client, &mut stream, keep, lease).await, true)
    }

    /// Follows the desired state and publishes status until something fails.
    async fn following(
        &mut self,
        client: &mut Client,
        stream: &mut etcd_client::WatchStream,
        keep: AbortOnDrop<String>,
        lease: i64,
    ) -> String {
        let mut events = self.sup.subscribe();
        if let Err(e) = self.publish(client, lease).await {
            return e;
        }
        let mut keep = keep;
        loop {
            tokio::select! {
                why = &mut keep.0 => return why.unwrap_or_else(|e| e.to_string()),
                u = watch::next(stream, &self.keys, &mut self.desired) => match u {
                    Ok(Update::Changed) => {
                        self.apply().await;
                        // A change that leaves this node's spec alone (say,
                        // another node's placement) still moves the revision
                        // it runs; no instance event would publish it.
                        if let Err(e) = self.publish(client, lease).await {
                            return e;
                        }
                    }
                    Ok(Update::Compacted) => {
                        emit(self.sup.events(), "fleet", "fleet: the last revision seen was compacted: resync".into());
                        self.desired.revision = 0;
                        *stream = match self.follow(client).await {
                            Ok(s) => s,
                            Err(e) => return e,
                        };
                    }
                    Err(e) => return format!("the watch failed: {e}"),
                },
                e = events.recv() => {
                    if matches!(e, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        return "the daemon is stopping".into();
                    }
                    if let Err(e) = self.publish(client, lease).await {
                        return e;
                    }
                }
            }
        }
    }

    /// Opens the watch: from the revision after the last one seen, or
    /// after a full read when there is none (first start, or compacted).
    async fn follow(&mut self, client: &mut Client) -> Result<etcd_client::WatchStream, String> {
        if self.desired.revision > 0 {
            // Resumed: a compacted revision is told by the stream.
            return watch::open(client, &self.keys, &self.desired).await.map_err(|e| e.to_string());
        }
        self.desired = watch::resync(client, &self.keys).await.map_err(|e| format!("cannot read services: {e}"))?;
        self.apply().await;
        watch::open(client, &self.keys, &self.desired).await.map_err(|e| e.to_string())
    }

    /// Applies this node's share of the desired state.
    async fn apply(&mut self) {
        self.good.retain(|n, _| self.desired.values.contains_key(n));
        self.bad.retain(|n, _| self.desired.values.contains_key(n));
        for (name, value) in self.desired.values.iter().take(MAX_SERVICES) {
            if self.good.get(name).is_some_and(|(v, _)| v == value) {
                continue;
            }
            match super::spec::check(name, value, &self.cfg.node) {
                Ok(c) => {
                    self.good.insert(name.clone(), (value.clone(), c));
                    self.bad.remove(name);
                }
                Err(why) if self.bad.get(name) != Some(value) => {
                    let msg = format!("fleet: ignored a malformed value for `{name}` (the last good one stays): {why}");
                    eprintln!("corral: {msg}");
                    emit(self.sup.events(), name, msg);
                    self.bad.insert(name.clone(), value.clone());
                }
                Err(_) => {}
            }
        }
        let mine: BTreeMap<_, _> =
            self.good.iter().filter(|(_, (_, c))| c.placement.selects(&self.cfg.node, &self.cfg.labels)).collect();
        self.revisions = mine.iter().map(|(n, (_, c))| ((*n).clone(), c.revision)).collect();
        let services = mine.iter().map(|(n, (_, c))| ((*n).clone(), c.spec.clone())).collect();
        match self.sup.set_fleet_services(services).await {
            Ok(Some(d)) => {
                let by: std::collections::BTreeSet<&str> = d
                    .added
                    .iter()
                    .chain(&d.changed)
                    .chain(&d.scaled)
                    .chain(&d.retuned)
                    .filter_map(|n| self.good.get(n).map(|(_, c)| c.by.as_str()))
                    .collect();
                let by = by.into_iter().collect::<Vec<_>>().join(", ");
                let msg = format!(
                    "fleet: applied revision {} (by {}): {}",
                    self.desired.revision,
                    if by.is_empty() { "-" } else { &by },
                    serde_json::to_string(&d).unwrap_or_default()
                );
                eprintln!("corral: {msg}");
                emit(self.sup.events(), "fleet", msg);
            }
            Ok(None) => {}
            Err(e) => eprintln!("corral: fleet: not applied: {e}"),
        }
        let keep = Desired {
            revision: self.desired.revision,
            values: self.good.iter().map(|(n, (v, _))| (n.clone(), v.clone())).collect(),
        };
        let dir = self.sup.config().daemon.state_dir;
        if cache::load(&dir).as_ref() != Some(&keep) {
            if let Err(e) = cache::save(&dir, &keep) {
                eprintln!("corral: fleet: cannot write the cache in {}: {e}", dir.display());
            }
        }
    }

    /// Writes the status that changed since the last write.
    async fn publish(&mut self, client: &mut Client, lease: i64) -> Result<(), String> {
        let now = status::snapshot(&self.keys, &self.cfg.node, &self.sup.status(), &self.revisions);
        let (puts, deletes) = status::changes(&self.published, &now);
        for (k, v) in puts {
            client
                .put(k.as_str(), v.as_str(), Some(PutOptions::new().with_lease(lease)))
                .await
                .map_err(|e| e.to_string())?;
            self.published.insert(k, v);
        }
        for k in deletes {
            client.delete(k.as_str(), None::<DeleteOptions>).await.map_err(|e| e.to_string())?;
            self.published.remove(&k);
        }
        Ok(())
    }

    async fn leave(self) {
        if let Some((mut c, lease)) = self.client {
            let _ = tokio::time::timeout(connect::REQUEST_TIMEOUT, c.lease_revoke(lease)).await;
        }
    }

    /// Records a change of the link (and only a change): status, an
    /// event, a line on stderr.
    fn set_link(&self, connected: bool, error: Option<String>, since_ms: Option<u64>) {
        let link = {
            let mut f = self.sup.fleet();
            let Some(link) = f.link.as_mut() else { return };
            if link.connected == connected {
                if !connected {
                    link.error = error;
                }
                return;
            }
            let since_ms = since_ms.unwrap_or_else(now_ms);
            let since = crate::time::format_millis(since_ms as i64);
            *link = Link { connected, since, since_ms, error, ..link.clone() };
            link.clone()
        };
        eprintln!("corral: {link}");
        emit(self.sup.events(), "fleet", link.to_string());
    }
}
