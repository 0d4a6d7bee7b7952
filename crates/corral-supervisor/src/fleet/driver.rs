//! Gray release, the effects: every node offers to drive each active
//! rollout, and etcd's lock (bound to the node's lease) lets one at a
//! time. The driver moves the canary list of `services/<name>` step by
//! step, waits until each step is healthy for `pause`, and finishes or
//! rolls back. Every write it makes is a transaction that holds only while
//! it still owns the lock and the rollout is as it read it, so two drivers
//! never act at once, and an operator's `pause` or `abort` wins. When the
//! driver dies its lease expires, and another node takes over from the
//! state recorded in etcd.

use super::keys::Keys;
use super::rollout::{judge, pick, Rollout, RolloutState, Verdict};
use super::spec::Desired;
use super::status::InstanceValue;
use super::{emit, now_ms, AbortOnDrop};
use crate::event::EventLog;
use crate::supervisor::Supervisor;
use etcd_client::{Client, Compare, CompareOp, GetOptions, LockOptions, Txn, TxnOp, WatchOptions};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A step whose instances are not all ready by then has failed.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// Drives every active rollout this node wins, until the session ends.
pub(crate) async fn run(mut client: Client, keys: Keys, node: String, lease: i64, sup: Supervisor) {
    // Dropped with this task: the drives end with the session.
    let mut driving: BTreeMap<String, AbortOnDrop<()>> = BTreeMap::new();
    loop {
        let active = match read_all(&mut client, &keys).await {
            Ok(a) => a,
            Err(_) => return,
        };
        driving.retain(|_, t| !t.0.is_finished());
        for service in active {
            if driving.contains_key(&service) {
                continue;
            }
            let (c, k, n, e) = (client.clone(), keys.clone(), node.clone(), sup.clone());
            let s = service.clone();
            driving.insert(service, AbortOnDrop(tokio::spawn(async move { drive(c, k, s, n, lease, e).await })));
        }
        // Woken by any change of a rollout.
        let Ok(mut w) = client.watch(keys.rollouts(), Some(etcd_client::WatchOptions::new().with_prefix())).await
        else {
            return;
        };
        if !matches!(w.message().await, Ok(Some(_))) {
            return;
        }
        while let Ok(Ok(Some(_))) = tokio::time::timeout(Duration::from_millis(1), w.message()).await {}
    }
}

/// The services with an active rollout.
async fn read_all(client: &mut Client, keys: &Keys) -> Result<Vec<String>, etcd_client::Error> {
    let prefix = keys.rollouts();
    let r = client.get(prefix.as_str(), Some(GetOptions::new().with_prefix())).await?;
    Ok(r.kvs()
        .iter()
        .filter_map(|kv| {
            let r: Rollout = serde_json::from_slice(kv.value()).ok()?;
            r.state.is_active().then(|| Keys::leaf(&prefix, kv.key_str().ok()?).map(str::to_string))?
        })
        .collect())
}

async fn drive(mut client: Client, keys: Keys, service: String, node: String, lease: i64, sup: Supervisor) {
    let events = Some(sup.events());
    // Blocks until this node holds the lock (or the session ends).
    let Ok(lock) = client.lock(keys.rollout_lock(&service), Some(LockOptions::new().with_lease(lease))).await else {
        return;
    };
    let mine = lock.key().to_vec();
    let by = format!("driver on {node}");
    let mut first = true;
    loop {
        let Ok(Some((mut r, rrev))) = read_rollout(&mut client, &keys, &service).await else { break };
        if !r.state.is_active() {
            break;
        }
        let Ok(Some((d, drev))) = read_desired(&mut client, &keys, &service).await else { break };
        let guard = vec![
            Compare::version(mine.clone(), CompareOp::Greater, 0),
            Compare::mod_revision(keys.rollout(&service), CompareOp::Equal, rrev),
            Compare::mod_revision(keys.service(&service), CompareOp::Equal, drev),
        ];
        if first || r.driver.as_deref() != Some(node.as_str()) {
            first = false;
            r.driver = Some(node.clone());
            r.note(&by, format!("{node} drives from step {} of {}", r.step + 1, r.steps.len()));
            let _ = write(&mut client, &keys, &service, Some(&r), None, guard, &by, events).await;
            continue;
        }
        if r.state == RolloutState::Paused {
            // Until an operator moves it: the next write of the rollout.
            let from = WatchOptions::new().with_start_revision(rrev + 1);
            let Ok(mut w) = client.watch(keys.rollout(&service), Some(from)).await else { break };
            if !matches!(w.message().await, Ok(Some(_))) {
                break;
            }
            continue;
        }
        let percent = r.steps[r.step.min(r.steps.len() - 1)];
        let nodes = match placed_nodes(&mut client, &keys, &d).await {
            Ok(n) => n,
            Err(_) => break,
        };
        let chosen = pick(&nodes, percent);
        if d.canary.as_ref() != Some(&chosen) {
            let mut nd = d.clone();
            nd.canary = Some(chosen.clone());
            r.note(&by, format!("step {} of {}: {percent}% = {}", r.step + 1, r.steps.len(), chosen.join(", ")));
            let _ = write(&mut client, &keys, &service, Some(&r), Some(&nd), guard, &by, events).await;
            continue;
        }
        match gate(&mut client, &keys, &service, (&d, &chosen, percent), &r, rrev).await {
            Gate::Changed => continue,
            Gate::Lost => break,
            Gate::Healthy if r.step + 1 >= r.steps.len() => {
                let (r, d) = finish(r, d, &by);
                let _ = write(&mut client, &keys, &service, Some(&r), Some(&d), guard, &by, events).await;
            }
            Gate::Healthy => {
                r.step += 1;
                r.note(&by, format!("step {} healthy for {} ms", r.step, r.pause_ms));
                let _ = write(&mut client, &keys, &service, Some(&r), None, guard, &by, events).await;
            }
            Gate::Failed(why) if r.auto_rollback => {
                let (r, d) = roll_back(r, d, &by, &why);
                let _ = write(&mut client, &keys, &service, Some(&r), Some(&d), guard, &by, events).await;
            }
            Gate::Failed(why) => {
                r.state = RolloutState::Paused;
                r.reason = Some(why.clone());
                r.note(&by, format!("paused: {why}"));
                let _ = write(&mut client, &keys, &service, Some(&r), None, guard, &by, events).await;
            }
        }
    }
    let _ = client.unlock(mine).await;
}

enum Gate {
    Healthy,
    Failed(String),
    /// The rollout changed (an operator, or a new step): read it again.
    Changed,
    Lost,
}

/// Waits until the step's nodes are healthy for the whole pause, or fail.
/// A node that joins or leaves changes the step (read again).
async fn gate(
    client: &mut Client,
    keys: &Keys,
    service: &str,
    (d, nodes, percent): (&Desired, &[String], u8),
    r: &Rollout,
    rrev: i64,
) -> Gate {
    // Woken by any write in the cluster (status, nodes, the rollout),
    // never by a timer but for the pause's end and the deadline. Opened
    // before the first read, so no change falls between the two.
    let Ok(mut changes) = client.watch(keys.root(), Some(WatchOptions::new().with_prefix())).await else {
        return Gate::Lost;
    };
    let deadline = corral::deadline::after(Instant::now(), STEP_TIMEOUT);
    let pause = Duration::from_millis(r.pause_ms);
    let mut healthy_since: Option<Instant> = None;
    loop {
        match read_rollout(client, keys, service).await {
            Ok(Some((_, rev))) if rev == rrev => {}
            Ok(_) => return Gate::Changed,
            Err(_) => return Gate::Lost,
        }
        match placed_nodes(client, keys, d).await {
            Ok(live) if pick(&live, percent) == nodes => {}
            Ok(_) => return Gate::Changed,
            Err(_) => return Gate::Lost,
        }
        let Ok(st) = instances(client, keys, service).await else { return Gate::Lost };
        match judge(&st, nodes, r.to) {
            Verdict::Failed(why) => return Gate::Failed(why),
            Verdict::Healthy => {
                if healthy_since.get_or_insert_with(Instant::now).elapsed() >= pause {
                    return Gate::Healthy;
                }
            }
            Verdict::Waiting => {
                healthy_since = None;
                if Instant::now() > deadline {
                    return Gate::Failed(format!("step not ready within {}s", STEP_TIMEOUT.as_secs()));
                }
            }
        }
        let wake = healthy_since.map_or(deadline, |t| corral::deadline::after(t, pause).min(deadline));
        tokio::select! {
            m = changes.message() => {
                if !matches!(m, Ok(Some(_))) {
                    return Gate::Lost;
                }
                // A burst of writes (every instance of a step) is one look.
                while let Ok(Ok(Some(_))) = tokio::time::timeout(Duration::from_millis(5), changes.message()).await {}
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

/// Every node on the new revision: the plain value, and the rollout done.
pub(crate) fn finish(mut r: Rollout, d: Desired, by: &str) -> (Rollout, Desired) {
    r.state = RolloutState::Done;
    r.step = r.steps.len() - 1;
    r.note(by, format!("done: every node on revision {}", r.to));
    let done = Desired { previous: None, canary: None, at: crate::time::now_rfc3339(), ..d };
    (r, done)
}

/// Every node back on the old revision, and why.
pub(crate) fn roll_back(mut r: Rollout, d: Desired, by: &str, why: &str) -> (Rollout, Desired) {
    r.state = RolloutState::RolledBack;
    r.reason = Some(why.to_string());
    r.note(by, format!("rolled back to revision {}: {why}", r.from));
    let _ = d;
    let back = Desired::new(r.from, r.from_spec.clone(), format!("{by} (rollback)"));
    (r, back)
}

/// Writes the rollout (and the desired value) if `guard` holds, with an
/// audit event in etcd and in events.jsonl.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write(
    client: &mut Client,
    keys: &Keys,
    service: &str,
    r: Option<&Rollout>,
    d: Option<&Desired>,
    guard: Vec<Compare>,
    by: &str,
    events: Option<&EventLog>,
) -> Result<bool, String> {
    let mut ops = Vec::new();
    if let Some(r) = r {
        ops.push(TxnOp::put(keys.rollout(service), serde_json::to_vec(r).unwrap_or_default(), None));
    }
    if let Some(d) = d {
        ops.push(TxnOp::put(keys.service(service), serde_json::to_vec(d).unwrap_or_default(), None));
    }
    let what = r.and_then(|r| r.history.last()).map(|e| e.what.clone()).unwrap_or_default();
    let actor = crate::api::Actor::fleet(by);
    let audit = serde_json::json!({ "actor": actor, "ts": crate::time::now_rfc3339(), "action": "rollout", "service": service, "what": what });
    ops.push(TxnOp::put(keys.event(now_ms(), by, 0), audit.to_string(), None));
    let ok = client.txn(Txn::new().when(guard).and_then(ops)).await.map_err(|e| e.to_string())?.succeeded();
    if let (true, Some(events)) = (ok, events) {
        emit(events, service, format!("fleet: rollout of `{service}`: {what}"));
    }
    Ok(ok)
}

pub(crate) async fn read_rollout(
    client: &mut Client,
    keys: &Keys,
    service: &str,
) -> Result<Option<(Rollout, i64)>, etcd_client::Error> {
    let r = client.get(keys.rollout(service), None).await?;
    Ok(r.kvs().first().and_then(|kv| Some((serde_json::from_slice(kv.value()).ok()?, kv.mod_revision()))))
}

pub(crate) async fn read_desired(
    client: &mut Client,
    keys: &Keys,
    service: &str,
) -> Result<Option<(Desired, i64)>, etcd_client::Error> {
    let r = client.get(keys.service(service), None).await?;
    Ok(r.kvs().first().and_then(|kv| Some((serde_json::from_slice(kv.value()).ok()?, kv.mod_revision()))))
}

/// Live nodes that the new revision's placement selects.
async fn placed_nodes(client: &mut Client, keys: &Keys, d: &Desired) -> Result<Vec<String>, String> {
    let name = "placement";
    let (_, placements) =
        crate::config::parse_fleet_spec(&d.spec, std::path::Path::new(name)).map_err(|e| e.to_string())?;
    let placement = placements.into_values().next().unwrap_or_default();
    let prefix = keys.nodes();
    let r = client.get(prefix.as_str(), Some(GetOptions::new().with_prefix())).await.map_err(|e| e.to_string())?;
    Ok(r.kvs()
        .iter()
        .filter_map(|kv| {
            let node = Keys::leaf(&prefix, kv.key_str().ok()?)?.to_string();
            let v: super::registration::NodeValue = serde_json::from_slice(kv.value()).ok()?;
            placement.selects(&node, &v.labels).then_some(node)
        })
        .collect())
}

/// The published instances of `service`: `(node, index, value)`.
async fn instances(
    client: &mut Client,
    keys: &Keys,
    service: &str,
) -> Result<Vec<(String, u32, InstanceValue)>, etcd_client::Error> {
    let r = client.get(keys.status(None), Some(GetOptions::new().with_prefix())).await?;
    Ok(r.kvs()
        .iter()
        .filter_map(|kv| {
            let (node, s, i) = keys.parse_instance(kv.key_str().ok()?)?;
            (s == service).then(|| Some((node.to_string(), i, serde_json::from_slice(kv.value()).ok()?)))?
        })
        .collect())
}
