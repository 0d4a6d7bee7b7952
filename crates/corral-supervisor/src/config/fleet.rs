//! `[fleet]` (joining a fleet whose desired state is in etcd) and the
//! `placement` of a fleet service, read and checked like every other table.

use super::diagnostic::Sink;
use super::paths::anchor;
use super::raw::RawFleet;
use super::validate::{key_span, read_table, Span};
use crate::fleet::placement::Placement;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lease TTL when `ttl` is not set.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// Bounds of `ttl`: below 2 s a busy node would lose its lease between two
/// keep-alives; above 5 min a dead node would be listed for too long.
pub const TTL_RANGE: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(300));
/// At most this many endpoints and labels.
const MAX_ENDPOINTS: usize = 16;
const MAX_LABELS: usize = 32;
/// Names that become etcd key segments: cluster, node, label keys.
const MAX_NAME: usize = 64;

/// `[fleet]`: where the fleet's etcd is and who this node is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// etcd endpoints, `http://` or `https://` URLs.
    pub endpoints: Vec<String>,
    /// The cluster: every key is under `/corral/<cluster>/`.
    pub cluster: String,
    /// This node's name (default: the host name).
    pub node: String,
    /// This node's labels, matched by placement selectors.
    pub labels: BTreeMap<String, String>,
    /// The registration lease's time to live.
    pub ttl: Duration,
    /// How to reach and log into etcd.
    pub auth: FleetAuth,
}

/// TLS and credentials for etcd (shared by the daemon and `corral fleet`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetAuth {
    /// PEM CA that signed the etcd servers' certificates.
    pub ca: Option<PathBuf>,
    /// PEM client certificate (with `key`).
    pub cert: Option<PathBuf>,
    /// PEM client key.
    pub key: Option<PathBuf>,
    /// etcd user (with `password_file`).
    pub user: Option<String>,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
}

/// Checks one endpoint: an `http://` or `https://` URL with a host and a
/// port; plain http only to loopback unless `insecure`.
pub fn check_endpoint(url: &str, insecure: bool) -> Result<(), String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("endpoint `{url}` has no scheme"))?;
    let hostport = rest.trim_end_matches('/');
    let host = match hostport.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h.trim_start_matches('[').trim_end_matches(']'),
        _ => return Err(format!("endpoint `{url}` has no port")),
    };
    if host.is_empty() || hostport.contains('/') {
        return Err(format!("endpoint `{url}` is not scheme://host:port"));
    }
    match scheme {
        "https" => Ok(()),
        "http" if insecure || is_loopback(host) => Ok(()),
        "http" => Err(format!(
            "endpoint `{url}` is plain http to a non-loopback host: etcd traffic (and its password) would cross the network in clear"
        )),
        other => Err(format!("endpoint `{url}` has scheme `{other}`")),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// True for a name that can be one etcd key segment.
pub(crate) fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s != "."
        && s != ".."
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

const SEGMENT: &str = "letters, digits, `-`, `_` and `.`, at most 64";

/// The host name, the default node name.
pub fn host_name() -> Option<String> {
    let n = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let n = n.trim().to_string();
    (!n.is_empty()).then_some(n)
}

pub(super) fn fleet_config(
    sink: &mut Sink<'_>,
    item: &toml_edit::Item,
    span: Span,
    base: &Path,
) -> Option<FleetConfig> {
    if !cfg!(feature = "fleet") {
        sink.push(
            span,
            "[fleet]: this corral was built without fleet support",
            Some(
                "a corral built with `--features fleet` (building it needs protoc: apt install protobuf-compiler)"
                    .into(),
            ),
            None,
        );
        return None;
    }
    let raw: RawFleet = read_table(sink, item, span.clone(), "[fleet]")?;
    let table = item.as_table_like()?;
    let before = sink.out.len();
    let mut bad = |key: &str, msg: String, expected: &str| {
        sink.push(key_span(table, key).or(span.clone()), format!("[fleet] {msg}"), Some(expected.into()), None)
    };
    let insecure = raw.insecure.unwrap_or(false);
    let endpoints = raw.endpoints.unwrap_or_default();
    if endpoints.is_empty() || endpoints.len() > MAX_ENDPOINTS {
        bad("endpoints", format!("needs 1 to {MAX_ENDPOINTS} endpoints"), "endpoints = [\"https://10.0.0.1:2379\"]");
    }
    for e in &endpoints {
        if let Err(why) = check_endpoint(e, insecure) {
            bad("endpoints", why, "https://HOST:PORT, or http:// to loopback, or insecure = true");
        }
    }
    let cluster = raw.cluster.unwrap_or_default();
    if !valid_segment(&cluster) {
        bad("cluster", format!("cluster `{cluster}` is missing or not a plain name"), SEGMENT);
    }
    let node = raw.node.or_else(host_name).unwrap_or_default();
    if !valid_segment(&node) {
        bad("node", format!("node name `{node}` is not a plain name (the host name is the default)"), SEGMENT);
    }
    let labels = raw.labels.unwrap_or_default();
    if labels.len() > MAX_LABELS || labels.iter().any(|(k, v)| !valid_segment(k) || !valid_segment(v)) {
        bad("labels", "labels must be at most 32 plain names and values".into(), SEGMENT);
    }
    let ttl = raw.ttl.map_or(DEFAULT_TTL, |d| d.0);
    if ttl < TTL_RANGE.0 || ttl > TTL_RANGE.1 {
        bad("ttl", format!("ttl {} is out of range", corral::units::format_duration(ttl)), "from \"2s\" to \"5m\"");
    }
    if raw.cert.is_some() != raw.key.is_some() {
        bad("cert", "`cert` and `key` go together".into(), "both cert = \"client.pem\" and key = \"client-key.pem\"");
    }
    if raw.user.is_some() != raw.password_file.is_some() {
        bad(
            "user",
            "`user` and `password_file` go together".into(),
            "user = \"corral\" and password_file = \"etcd.pass\"",
        );
    }
    if (raw.ca.is_some() || raw.cert.is_some()) && endpoints.iter().any(|e| e.starts_with("http://")) {
        bad("ca", "`ca`/`cert` need https:// endpoints".into(), "https://HOST:PORT endpoints");
    }
    if sink.out.len() > before {
        return None;
    }
    let at = |p: Option<PathBuf>| p.map(|p| anchor(base, &p));
    Some(FleetConfig {
        endpoints,
        cluster,
        node,
        labels,
        ttl,
        auth: FleetAuth {
            ca: at(raw.ca),
            cert: at(raw.cert),
            key: at(raw.key),
            user: raw.user,
            password_file: at(raw.password_file),
        },
    })
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlacement {
    labels: Option<BTreeMap<String, String>>,
    nodes: Option<String>,
}

/// `placement = { labels = { zone = "a" }, nodes = "50%" }` of a fleet
/// service: `None` (and an error) when it is bad.
pub(super) fn placement(sink: &mut Sink<'_>, what: &str, table: &dyn toml_edit::TableLike) -> Option<Placement> {
    let Some(item) = table.get("placement") else { return Some(Placement::default()) };
    let span = key_span(table, "placement");
    let raw: RawPlacement = read_table(sink, item, span.clone(), &format!("{what}: placement"))?;
    let percent = match raw.nodes.as_deref().map(|s| s.strip_suffix('%').map(str::parse::<u8>)) {
        None => 100,
        Some(Some(Ok(p))) if (1..=100).contains(&p) => p,
        _ => {
            sink.push(
                span,
                format!("{what}: placement nodes must be a percentage"),
                Some("\"1%\" to \"100%\"".into()),
                None,
            );
            return None;
        }
    };
    Some(Placement { labels: raw.labels.unwrap_or_default(), percent })
}

#[cfg(all(test, not(feature = "fleet")))]
mod without_the_feature {
    #[test]
    fn a_fleet_table_is_refused_with_the_way_to_get_it() {
        let e =
            crate::config::parse("[fleet]\nendpoints = [\"http://127.0.0.1:2379\"]\n", std::path::Path::new("c.toml"))
                .unwrap_err()
                .to_string();
        assert!(e.contains("built without fleet support") && e.contains("--features fleet"), "{e}");
    }
}

#[cfg(all(test, feature = "fleet"))]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_for_loopback_unless_insecure() {
        assert!(check_endpoint("http://127.0.0.1:2379", false).is_ok());
        assert!(check_endpoint("http://[::1]:2379", false).is_ok());
        assert!(check_endpoint("http://localhost:2379", false).is_ok());
        assert!(check_endpoint("https://10.0.0.1:2379", false).is_ok());
        let e = check_endpoint("http://10.0.0.1:2379", false).unwrap_err();
        assert!(e.contains("plain http to a non-loopback host"), "{e}");
        assert!(check_endpoint("http://10.0.0.1:2379", true).is_ok());
        assert!(check_endpoint("10.0.0.1:2379", false).is_err());
        assert!(check_endpoint("http://10.0.0.1", true).is_err());
        assert!(check_endpoint("ftp://10.0.0.1:21", true).is_err());
    }

    fn parse(toml: &str) -> Result<crate::config::Config, String> {
        crate::config::parse(toml, Path::new("/tmp/c.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_fleet_table_has_defaults_and_anchored_paths() {
        let c = parse("[fleet]\nendpoints = [\"http://127.0.0.1:2379\"]\ncluster = \"prod\"\nnode = \"n1\"\n").unwrap();
        let f = c.fleet.unwrap();
        assert_eq!((f.cluster.as_str(), f.node.as_str(), f.ttl), ("prod", "n1", DEFAULT_TTL));
        let c = parse(
            "[fleet]\nendpoints = [\"https://e:2379\"]\ncluster = \"p\"\nnode = \"n\"\nca = \"ca.pem\"\nuser = \"u\"\npassword_file = \"pw\"\n",
        )
        .unwrap();
        let f = c.fleet.unwrap();
        // Anchored to the config's folder, like every other path.
        let base = crate::config::paths::base_dir(Path::new("/tmp/c.toml"));
        assert_eq!(f.auth.ca, Some(base.join("ca.pem")));
        assert_eq!(f.auth.password_file, Some(base.join("pw")));
    }

    #[test]
    fn bad_fleet_keys_are_one_line_each_with_their_place() {
        let e = parse(
            "[fleet]\nendpoints = [\"http://10.0.0.1:2379\"]\ncluster = \"a/b\"\nnode = \"n\"\nttl = \"1s\"\ncert = \"c.pem\"\n",
        )
        .unwrap_err();
        assert!(e.contains("/tmp/c.toml:2:13: [fleet] endpoint `http://10.0.0.1:2379` is plain http"), "{e}");
        assert!(e.contains("/tmp/c.toml:3:11: [fleet] cluster `a/b` is missing or not a plain name"), "{e}");
        assert!(e.contains("/tmp/c.toml:5:7: [fleet] ttl 1s is out of range"), "{e}");
        assert!(e.contains("/tmp/c.toml:6:8: [fleet] `cert` and `key` go together"), "{e}");
        let e = parse("[fleet]\nendpoint = []\n").unwrap_err();
        assert!(e.contains("unknown key `endpoint`") && e.contains("did you mean `endpoints`"), "{e}");
        assert!(parse(
            "[fleet]\nendpoints = [\"http://10.0.0.1:2379\"]\ncluster = \"c\"\nnode = \"n\"\ninsecure = true\n"
        )
        .is_ok());
    }

    #[test]
    fn placement_belongs_to_fleet_specs() {
        let e = parse("[services.a]\ncommand = [\"a\"]\nplacement = { labels = { zone = \"a\" } }\n").unwrap_err();
        assert!(e.contains("/tmp/c.toml:3:13: service `a`: `placement` is for fleet services"), "{e}");
        let (_, p) = crate::config::parse_fleet_spec(
            "[services.a]\ncommand = [\"a\"]\nplacement = { labels = { zone = \"a\" }, nodes = \"50%\" }\n",
            Path::new("s.toml"),
        )
        .unwrap();
        assert_eq!((p["a"].labels["zone"].as_str(), p["a"].percent), ("a", 50));
        let e = crate::config::parse_fleet_spec(
            "[services.a]\ncommand = [\"a\"]\nplacement = { nodes = \"0%\" }\n",
            Path::new("s.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("s.toml:3:13: service `a`: placement nodes must be a percentage"), "{e}");
    }

    #[test]
    fn segments_are_plain_names() {
        assert!(valid_segment("web-1.a_b"));
        assert!(!valid_segment("a/b"));
        assert!(!valid_segment(".."));
        assert!(!valid_segment(""));
        assert!(!valid_segment(&"x".repeat(65)));
    }
}
