//! A node's registration: `nodes/<node>` under a lease of `ttl`, kept
//! alive every third of it. A node that dies stops the keep-alives, and
//! etcd deletes its registration and its status with the lease.

use super::keys::Keys;
use crate::config::FleetConfig;
use etcd_client::{Client, LeaseKeepAliveStream, LeaseKeeper, PutOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The value under `nodes/<node>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeValue {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// corral's version.
    pub version: String,
    /// Where its control API listens (on that host).
    pub address: String,
    /// When the daemon started (RFC 3339 UTC).
    pub started: String,
    /// The daemon's pid.
    pub pid: u32,
}

pub(crate) struct Registration {
    pub lease: i64,
    keeper: LeaseKeeper,
    answers: LeaseKeepAliveStream,
    period: Duration,
}

impl Registration {
    /// Grants a lease and writes the registration under it.
    pub(crate) async fn new(
        client: &mut Client,
        keys: &Keys,
        cfg: &FleetConfig,
        value: &NodeValue,
    ) -> Result<Registration, etcd_client::Error> {
        let lease = client.lease_grant(cfg.ttl.as_secs() as i64, None).await?.id();
        let json = serde_json::to_string(value).unwrap_or_default();
        client.put(keys.node(&cfg.node), json, Some(PutOptions::new().with_lease(lease))).await?;
        let (keeper, answers) = client.lease_keep_alive(lease).await?;
        Ok(Registration { lease, keeper, answers, period: cfg.ttl / 3 })
    }

    /// Keeps the lease alive; returns why it could not.
    pub(crate) async fn keep_alive(&mut self) -> String {
        let mut tick = tokio::time::interval(self.period);
        loop {
            tick.tick().await;
            if let Err(e) = self.keeper.keep_alive().await {
                return format!("keep-alive failed: {e}");
            }
            match tokio::time::timeout(super::connect::REQUEST_TIMEOUT, self.answers.message()).await {
                Ok(Ok(Some(r))) if r.ttl() > 0 => {}
                Ok(Ok(Some(_))) => return "the lease expired".into(),
                Ok(Ok(None)) => return "the keep-alive stream ended".into(),
                Ok(Err(e)) => return format!("keep-alive failed: {e}"),
                Err(_) => return "no keep-alive answer in time".into(),
            }
        }
    }
}
