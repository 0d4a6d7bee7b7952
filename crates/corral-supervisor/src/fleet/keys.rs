//! The key layout of a cluster, in one place:
//!
//! ```text
//! /corral/<cluster>/nodes/<node>                     registration (under the node's lease)
//! /corral/<cluster>/services/<service>               desired spec (JSON around TOML text)
//! /corral/<cluster>/status/<node>/<service>/<i>      one instance (under the node's lease)
//! /corral/<cluster>/rollouts/<service>               a gray release: steps, state, history
//! /corral/<cluster>/locks/rollouts/<service>/…       who drives it (etcd lock, under a lease)
//! /corral/<cluster>/events/<unix ms>-<who>-<n>       audit: who changed what, when
//! ```
//!
//! Every name is a plain segment (letters, digits, `-`, `_`, `.`), checked
//! before it becomes part of a key, so no name can reach another's keys.

/// The keys of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    root: String,
}

impl Keys {
    /// Keys under `/corral/<cluster>/`.
    pub fn new(cluster: &str) -> Keys {
        Keys { root: format!("/corral/{cluster}/") }
    }

    /// Prefix of every key of the cluster.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Prefix of every registration.
    pub fn nodes(&self) -> String {
        format!("{}nodes/", self.root)
    }

    /// One node's registration.
    pub fn node(&self, node: &str) -> String {
        format!("{}{node}", self.nodes())
    }

    /// Prefix of every desired service.
    pub fn services(&self) -> String {
        format!("{}services/", self.root)
    }

    /// One desired service.
    pub fn service(&self, name: &str) -> String {
        format!("{}{name}", self.services())
    }

    /// Prefix of every instance status (or one node's, with `node`).
    pub fn status(&self, node: Option<&str>) -> String {
        match node {
            Some(n) => format!("{}status/{n}/", self.root),
            None => format!("{}status/", self.root),
        }
    }

    /// One instance's status.
    pub fn instance(&self, node: &str, service: &str, index: u32) -> String {
        format!("{}{service}/{index}", self.status(Some(node)))
    }

    /// Prefix of the rollouts.
    pub fn rollouts(&self) -> String {
        format!("{}rollouts/", self.root)
    }

    /// One service's rollout.
    pub fn rollout(&self, service: &str) -> String {
        format!("{}{service}", self.rollouts())
    }

    /// The lock whose holder drives a service's rollout.
    pub fn rollout_lock(&self, service: &str) -> String {
        format!("{}locks/rollouts/{service}", self.root)
    }

    /// Prefix of the audit events.
    pub fn events(&self) -> String {
        format!("{}events/", self.root)
    }

    /// One audit event: sorted by time (zero-padded milliseconds).
    pub fn event(&self, unix_ms: u64, who: &str, n: u32) -> String {
        let who: String = who.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
        format!("{}{unix_ms:016}-{who}-{n}", self.events())
    }

    /// The rest of `key` after `prefix`, when it is one plain segment.
    pub fn leaf<'k>(prefix: &str, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(prefix).filter(|n| crate::config::valid_segment(n))
    }

    /// `(node, service, index)` of a status key.
    pub fn parse_instance<'k>(&self, key: &'k str) -> Option<(&'k str, &'k str, u32)> {
        let mut parts = key.strip_prefix(&self.status(None))?.split('/');
        let (node, service, index) = (parts.next()?, parts.next()?, parts.next()?.parse().ok()?);
        parts.next().is_none().then_some((node, service, index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_the_documented_one() {
        let k = Keys::new("prod");
        assert_eq!(k.node("web-1"), "/corral/prod/nodes/web-1");
        assert_eq!(k.service("api"), "/corral/prod/services/api");
        assert_eq!(k.instance("web-1", "api", 2), "/corral/prod/status/web-1/api/2");
        assert_eq!(k.parse_instance("/corral/prod/status/web-1/api/2"), Some(("web-1", "api", 2)));
        assert_eq!(k.parse_instance("/corral/prod/status/web-1/api/x"), None);
        assert_eq!(k.event(42, "ann@h", 0), "/corral/prod/events/0000000000000042-ann_h-0");
        assert_eq!(Keys::leaf(&k.services(), "/corral/prod/services/api"), Some("api"));
        assert_eq!(Keys::leaf(&k.services(), "/corral/prod/services/a/b"), None);
    }
}
