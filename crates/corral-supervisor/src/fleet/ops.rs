//! The operator's verbs (`corral fleet …`): they talk to etcd directly,
//! so no daemon is needed, and check everything before writing anything.
//! Each change is one transaction, with its audit event in `events/`.

use super::keys::Keys;
use super::registration::NodeValue;
use super::rollout::{self, Rollout, RolloutState};
use super::spec::{Desired, Previous, MAX_SPEC_BYTES};
use super::status::InstanceValue;
use super::{connect, now_ms};
use crate::config::FleetAuth;
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Which fleet, and how to reach it.
#[derive(Debug, Clone)]
pub struct Target {
    /// etcd endpoints (already checked).
    pub endpoints: Vec<String>,
    /// The cluster.
    pub cluster: String,
    /// TLS and credentials.
    pub auth: FleetAuth,
}

/// An audit event under `events/`. Its field names are the daemon's
/// events' own (`actor`, `ts`), so one reader reads both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Who: `via = "fleet"` and the etcd user, client certificate
    /// (`cert:<CN>`) or OS user (`<user>@<host>`) as `user`.
    pub actor: crate::api::Actor,
    /// When (RFC 3339 UTC).
    pub ts: String,
    /// What: `apply`, `scale`.
    pub action: String,
    /// Services changed, with their new revision.
    pub services: BTreeMap<String, u64>,
}

/// What `apply` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Applied {
    /// Services written, with their new revision.
    pub changed: BTreeMap<String, u64>,
    /// Services whose spec was already the one in etcd.
    pub unchanged: Vec<String>,
}

/// `--canary C% --step S% --pause D --auto-rollback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gray {
    /// The first step's share of nodes.
    pub canary: u8,
    /// Added by each next step.
    pub step: u8,
    /// How long a step must be healthy before the next.
    pub pause: std::time::Duration,
    /// Roll back by itself when a step fails.
    pub auto_rollback: bool,
}

/// `corral fleet apply -f FILE`: checks the whole file (errors with
/// file:line:column, nothing written), then writes the services that
/// differ, each with its revision bumped, in one transaction. With
/// `gray`, a changed service that exists becomes a rollout instead.
pub async fn apply(t: &Target, file: &Path, gray: Option<Gray>) -> Result<Applied, String> {
    retried(|| apply_once(t, file, gray)).await
}

async fn apply_once(t: &Target, file: &Path, gray: Option<Gray>) -> Result<Applied, String> {
    let src = std::fs::read_to_string(file).map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let parts = super::spec::split(&src, file).map_err(|e| e.to_string())?;
    if parts.is_empty() {
        return Err(format!("{}: no [services.NAME] to apply", file.display()));
    }
    if let Some((name, text)) = parts.iter().find(|(_, t)| t.len() > MAX_SPEC_BYTES / 2) {
        return Err(format!("service `{name}` is {} bytes of TOML, over {}", text.len(), MAX_SPEC_BYTES / 2));
    }
    let mut client = connect::connect(&t.endpoints, &t.auth).await?;
    let keys = Keys::new(&t.cluster);
    let who = connect::who(&t.auth);
    let mut out = Applied::default();
    let (mut checks, mut puts) = (Vec::new(), Vec::new());
    for (name, spec) in parts {
        let key = keys.service(&name);
        let (old, mod_rev) = current(&mut client, &key).await?;
        if old.as_ref().is_some_and(|o| o.spec == spec) {
            out.unchanged.push(name);
            continue;
        }
        if old.as_ref().is_some_and(|o| o.previous.is_some()) {
            return Err(format!("a rollout of `{name}` is in progress: promote, abort or roll it back first"));
        }
        let revision = old.as_ref().map_or(1, |o| o.revision + 1);
        checks.push(Compare::mod_revision(key.as_str(), CompareOp::Equal, mod_rev));
        let mut value = Desired::new(revision, spec, who.clone());
        if let (Some(g), Some(old)) = (gray, old) {
            value.previous = Some(Previous { revision: old.revision, spec: old.spec.clone() });
            value.canary = Some(Vec::new());
            let mut r = Rollout {
                from: old.revision,
                to: revision,
                from_spec: old.spec,
                steps: rollout::steps(g.canary, g.step),
                step: 0,
                state: RolloutState::Running,
                pause_ms: g.pause.as_millis() as u64,
                auto_rollback: g.auto_rollback,
                reason: None,
                driver: None,
                history: Vec::new(),
            };
            r.note(&who, format!("revision {} -> {revision}, steps {:?}%", r.from, r.steps));
            puts.push(TxnOp::put(keys.rollout(&name), serde_json::to_vec(&r).unwrap_or_default(), None));
        }
        puts.push(TxnOp::put(key.as_str(), serde_json::to_vec(&value).unwrap_or_default(), None));
        out.changed.insert(name, revision);
    }
    if !out.changed.is_empty() {
        commit(&mut client, &keys, &who, "apply", &out.changed, checks, puts).await?;
    }
    Ok(out)
}

/// `corral fleet scale SERVICE N`: instances per node.
pub async fn scale(t: &Target, service: &str, n: u32) -> Result<u64, String> {
    retried(|| scale_once(t, service, n)).await
}

async fn scale_once(t: &Target, service: &str, n: u32) -> Result<u64, String> {
    if !crate::config::valid_segment(service) {
        return Err(format!("`{service}` is not a service name"));
    }
    let mut client = connect::connect(&t.endpoints, &t.auth).await?;
    let keys = Keys::new(&t.cluster);
    let key = keys.service(service);
    let (old, mod_rev) = current(&mut client, &key).await?;
    let old = old.ok_or_else(|| format!("the fleet `{}` has no service `{service}`", t.cluster))?;
    if old.previous.is_some() {
        return Err(format!("a rollout of `{service}` is in progress: promote, abort or roll it back first"));
    }
    let mut doc: toml_edit::DocumentMut = old.spec.parse().map_err(|e| format!("service `{service}`: {e}"))?;
    doc["services"][service]["instances"] = toml_edit::value(i64::from(n));
    let spec = doc.to_string();
    // The new spec is checked like any other before it is written.
    super::spec::split(&spec, Path::new(&format!("{service} with instances = {n}"))).map_err(|e| e.to_string())?;
    let who = connect::who(&t.auth);
    let revision = old.revision + 1;
    let value = Desired::new(revision, spec, who.clone());
    let checks = vec![Compare::mod_revision(key.as_str(), CompareOp::Equal, mod_rev)];
    let puts = vec![TxnOp::put(key.as_str(), serde_json::to_vec(&value).unwrap_or_default(), None)];
    let changed = BTreeMap::from([(service.to_string(), revision)]);
    commit(&mut client, &keys, &who, "scale", &changed, checks, puts).await?;
    Ok(revision)
}

/// The value under `key` and its mod revision (0: none). A malformed
/// value counts as none, so `apply` repairs it.
async fn current(client: &mut Client, key: &str) -> Result<(Option<Desired>, i64), String> {
    let r = client.get(key, None).await.map_err(|e| format!("cannot read {key}: {e}"))?;
    Ok(match r.kvs().first() {
        Some(kv) => (serde_json::from_slice(kv.value()).ok(), kv.mod_revision()),
        None => (None, 0),
    })
}

async fn commit(
    client: &mut Client,
    keys: &Keys,
    who: &str,
    action: &str,
    changed: &BTreeMap<String, u64>,
    checks: Vec<Compare>,
    mut puts: Vec<TxnOp>,
) -> Result<(), String> {
    let at = crate::time::now_rfc3339();
    let ev =
        AuditEvent { actor: crate::api::Actor::fleet(who), ts: at, action: action.into(), services: changed.clone() };
    puts.push(TxnOp::put(keys.event(now_ms(), who, 0), serde_json::to_vec(&ev).unwrap_or_default(), None));
    let r = client.txn(Txn::new().when(checks).and_then(puts)).await.map_err(|e| format!("cannot write: {e}"))?;
    if !r.succeeded() {
        return Err("someone else changed these services meanwhile; nothing was written: run it again".into());
    }
    Ok(())
}

/// A node as `corral fleet nodes` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRow {
    /// Its name.
    pub node: String,
    /// Its registration.
    #[serde(flatten)]
    pub value: NodeValue,
}

/// A desired service as `corral fleet status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRow {
    /// Its desired revision.
    pub revision: u64,
    /// Who wrote it, and when.
    pub by: String,
    /// When.
    pub at: String,
}

/// An instance as `corral fleet status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceRow {
    /// Where it runs.
    pub node: String,
    /// Its service.
    pub service: String,
    /// Its index on that node.
    pub instance: u32,
    /// What the node published.
    #[serde(flatten)]
    pub value: InstanceValue,
}

/// `corral fleet status`: every node, every desired service, and which
/// revision runs where.
#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    /// Live nodes.
    pub nodes: Vec<NodeRow>,
    /// Desired services.
    pub services: BTreeMap<String, ServiceRow>,
    /// Instances, by node, service and index.
    pub instances: Vec<InstanceRow>,
}

/// Live nodes (their lease is alive).
pub async fn nodes(t: &Target) -> Result<Vec<NodeRow>, String> {
    retried(|| nodes_once(t)).await
}

async fn nodes_once(t: &Target) -> Result<Vec<NodeRow>, String> {
    let mut client = connect::connect(&t.endpoints, &t.auth).await?;
    read_nodes(&mut client, &Keys::new(&t.cluster)).await
}

async fn read_nodes(client: &mut Client, keys: &Keys) -> Result<Vec<NodeRow>, String> {
    let prefix = keys.nodes();
    let r = prefixed(client, &prefix).await?;
    Ok(r.iter()
        .filter_map(|(k, v)| {
            Some(NodeRow { node: Keys::leaf(&prefix, k)?.to_string(), value: serde_json::from_slice(v).ok()? })
        })
        .collect())
}

/// See [`FleetStatus`].
pub async fn status(t: &Target) -> Result<FleetStatus, String> {
    retried(|| status_once(t)).await
}

async fn status_once(t: &Target) -> Result<FleetStatus, String> {
    let mut client = connect::connect(&t.endpoints, &t.auth).await?;
    let keys = Keys::new(&t.cluster);
    let nodes = read_nodes(&mut client, &keys).await?;
    let sprefix = keys.services();
    let services = prefixed(&mut client, &sprefix)
        .await?
        .iter()
        .filter_map(|(k, v)| {
            let d: Desired = serde_json::from_slice(v).ok()?;
            Some((Keys::leaf(&sprefix, k)?.to_string(), ServiceRow { revision: d.revision, by: d.by, at: d.at }))
        })
        .collect();
    let instances = prefixed(&mut client, &keys.status(None))
        .await?
        .iter()
        .filter_map(|(k, v)| {
            let (node, service, instance) = keys.parse_instance(k)?;
            Some(InstanceRow {
                node: node.into(),
                service: service.into(),
                instance,
                value: serde_json::from_slice(v).ok()?,
            })
        })
        .collect();
    Ok(FleetStatus { nodes, services, instances })
}

/// At most this many keys are read under one prefix.
const MAX_KEYS: i64 = 100_000;

async fn prefixed(client: &mut Client, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let r = client
        .get(prefix, Some(GetOptions::new().with_prefix().with_limit(MAX_KEYS)))
        .await
        .map_err(|e| format!("cannot read {prefix}: {e}"))?;
    Ok(r.kvs().iter().filter_map(|kv| Some((kv.key_str().ok()?.to_string(), kv.value().to_vec()))).collect())
}

/// `corral fleet rollout VERB SERVICE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutVerb {
    /// Stop advancing.
    Pause,
    /// Advance again after a pause.
    Resume,
    /// Every node on the new revision now.
    Promote,
    /// Stop the rollout and put every node back on the old revision.
    Abort,
    /// Put every node back on the old revision, also after it is done.
    Rollback,
}

/// A service's rollout, as etcd holds it.
pub async fn rollout_status(t: &Target, service: &str) -> Result<Rollout, String> {
    retried(|| rollout_status_once(t, service)).await
}

async fn rollout_status_once(t: &Target, service: &str) -> Result<Rollout, String> {
    let mut client = connect::connect(&t.endpoints, &t.auth).await?;
    let keys = Keys::new(&t.cluster);
    super::driver::read_rollout(&mut client, &keys, service)
        .await
        .map_err(|e| format!("cannot read the rollout: {e}"))?
        .map(|(r, _)| r)
        .ok_or_else(|| format!("`{service}` has no rollout in the fleet `{}`", t.cluster))
}

/// Acts on a service's rollout: one transaction, which fails (and changes
/// nothing) if the driver moved it meanwhile.
pub async fn rollout(t: &Target, service: &str, verb: RolloutVerb) -> Result<Rollout, String> {
    retried(|| rollout_once(t, service, verb)).await
}

async fn rollout_once(t: &Target, service: &str, verb: RolloutVerb) -> Result<Rollout, String> {
    let mut client = connect::connect(&t.endpoints, &t.auth).await?;
    let keys = Keys::new(&t.cluster);
    let who = connect::who(&t.auth);
    let read = |e: etcd_client::Error| format!("cannot read the rollout: {e}");
    let (r, rrev) = super::driver::read_rollout(&mut client, &keys, service)
        .await
        .map_err(read)?
        .ok_or_else(|| format!("`{service}` has no rollout in the fleet `{}`", t.cluster))?;
    let (d, drev) = super::driver::read_desired(&mut client, &keys, service)
        .await
        .map_err(read)?
        .ok_or_else(|| format!("the fleet `{}` has no service `{service}`", t.cluster))?;
    let active = r.state.is_active();
    let (r, d) = match verb {
        RolloutVerb::Pause | RolloutVerb::Resume if !active => {
            return Err(format!("the rollout of `{service}` is over ({:?})", r.state))
        }
        RolloutVerb::Pause => {
            let mut r = r;
            r.state = RolloutState::Paused;
            r.reason = Some(format!("paused by {who}"));
            r.note(&who, "paused");
            (r, None)
        }
        RolloutVerb::Resume => {
            let mut r = r;
            r.state = RolloutState::Running;
            r.reason = None;
            r.note(&who, "resumed");
            (r, None)
        }
        RolloutVerb::Promote if !active => return Err(format!("the rollout of `{service}` is over ({:?})", r.state)),
        RolloutVerb::Promote => {
            let (r, d) = super::driver::finish(r, d, &who);
            (r, Some(d))
        }
        RolloutVerb::Abort if !active => return Err(format!("the rollout of `{service}` is over ({:?})", r.state)),
        RolloutVerb::Abort | RolloutVerb::Rollback => {
            if r.state == RolloutState::RolledBack {
                return Err(format!("`{service}` is already back on revision {}", r.from));
            }
            let why = format!("{} by {who}", if verb == RolloutVerb::Abort { "aborted" } else { "rolled back" });
            let (r, d) = super::driver::roll_back(r, d, &who, &why);
            (r, Some(d))
        }
    };
    let guard = vec![
        Compare::mod_revision(keys.rollout(service), CompareOp::Equal, rrev),
        Compare::mod_revision(keys.service(service), CompareOp::Equal, drev),
    ];
    if !super::driver::write(&mut client, &keys, service, Some(&r), d.as_ref(), guard, &who, None).await? {
        return Err("the rollout moved meanwhile; nothing was written: run it again".into());
    }
    Ok(r)
}

/// Transient answers of a cluster that is electing a leader (a member
/// died): the whole verb is tried again, which is safe because each one
/// re-reads and writes in one guarded transaction.
const RETRIES: u32 = 5;

async fn retried<T, F: std::future::Future<Output = Result<T, String>>>(f: impl Fn() -> F) -> Result<T, String> {
    let mut n = 0;
    loop {
        match f().await {
            Err(e) if n < RETRIES && (e.contains("leader changed") || e.contains("no leader")) => {
                n += 1;
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            r => return r,
        }
    }
}
