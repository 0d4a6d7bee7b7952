//! The desired services as the node last saw them, kept current by one
//! watch on `services/`. After a disconnection the watch resumes from the
//! revision after the last one seen; when etcd has compacted that
//! revision away, the node reads everything again (a resync).

use super::keys::Keys;
use etcd_client::{Client, EventType, GetOptions, WatchOptions, WatchStream};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Desired services by name (raw values, checked when applied) and the
/// store revision they reflect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Desired {
    pub revision: i64,
    pub values: BTreeMap<String, Vec<u8>>,
}

/// What the next watch message did.
pub(crate) enum Update {
    /// Desired state changed (or only the revision moved).
    Changed,
    /// The revision to resume from is gone: read everything again.
    Compacted,
}

/// Reads every desired service.
pub(crate) async fn resync(client: &mut Client, keys: &Keys) -> Result<Desired, etcd_client::Error> {
    let prefix = keys.services();
    let resp = client.get(prefix.as_str(), Some(GetOptions::new().with_prefix())).await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let values = resp
        .kvs()
        .iter()
        .filter_map(|kv| Some((Keys::leaf(&prefix, kv.key_str().ok()?)?.to_string(), kv.value().to_vec())))
        .collect();
    Ok(Desired { revision, values })
}

/// Watches `services/` from the revision after `desired.revision`.
pub(crate) async fn open(
    client: &mut Client,
    keys: &Keys,
    desired: &Desired,
) -> Result<WatchStream, etcd_client::Error> {
    let opts = WatchOptions::new().with_prefix().with_start_revision(desired.revision + 1);
    client.watch(keys.services(), Some(opts)).await
}

/// Waits for the next message and folds it into `desired`.
pub(crate) async fn next(stream: &mut WatchStream, keys: &Keys, desired: &mut Desired) -> Result<Update, String> {
    let msg = stream.message().await.map_err(|e| e.to_string())?.ok_or("the watch ended")?;
    if msg.compact_revision() > 0 {
        return Ok(Update::Compacted);
    }
    if msg.canceled() {
        return Err(format!("the watch was cancelled: {}", msg.cancel_reason()));
    }
    let prefix = keys.services();
    for ev in msg.events() {
        let Some(kv) = ev.kv() else { continue };
        let Some(name) = kv.key_str().ok().and_then(|k| Keys::leaf(&prefix, k)) else { continue };
        match ev.event_type() {
            EventType::Put => desired.values.insert(name.to_string(), kv.value().to_vec()),
            EventType::Delete => desired.values.remove(name),
        };
        desired.revision = desired.revision.max(kv.mod_revision());
    }
    if let Some(h) = msg.header() {
        desired.revision = desired.revision.max(h.revision());
    }
    Ok(Update::Changed)
}
