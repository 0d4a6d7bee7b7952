//! `[services.NAME.isolate]`: namespaces, a private view of the
//! filesystem and dropped privileges, read key by key so that every bad
//! setting is reported at its place. What the library refuses (a missing
//! bind source, an unknown capability, a host without the namespace or
//! the privileges for it) is an error here too, at load: nothing starts.

use super::diagnostic::Sink;
use super::paths::anchor;
use super::validate::{key_span, read_table, Span};
use corral::{Bind, Isolation, Network, Seccomp, Token, UserMap};
use serde::{de, Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use toml_edit::TableLike;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIsolate {
    pid: Option<bool>,
    net: Option<String>,
    ipc: Option<bool>,
    uts: Option<Uts>,
    user: Option<UserKey>,
    private_tmp: Option<bool>,
    read_only: Option<Vec<PathBuf>>,
    bind: Option<Vec<RawBind>>,
    root: Option<PathBuf>,
    no_new_privileges: Option<bool>,
    capabilities: Option<Vec<String>>,
    seccomp: Option<RawSeccomp>,
    token: Option<String>,
}

/// `seccomp = "default"`, `{ deny = [...] }` or `{ allow = [...] }`.
#[derive(Debug)]
enum RawSeccomp {
    Default,
    Lists { deny: Option<Vec<String>>, allow: Option<Vec<String>> },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeccompLists {
    deny: Option<Vec<String>>,
    allow: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for RawSeccomp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = RawSeccomp;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"default\", { deny = [\"mount\", ...] } or { allow = [\"read\", ...] }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSeccomp, E> {
                match v {
                    "default" => Ok(RawSeccomp::Default),
                    other => Err(E::custom(format!(
                        "seccomp is {other:?}: expected \"default\", {{ deny = [...] }} or {{ allow = [...] }}"
                    ))),
                }
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawSeccomp, A::Error> {
                let l = SeccompLists::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawSeccomp::Lists { deny: l.deny, allow: l.allow })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBind {
    src: PathBuf,
    dst: PathBuf,
    #[serde(default)]
    read_only: bool,
}

/// `uts = "hostname"`, or `uts = true` to keep the host's name in a
/// namespace of its own.
#[derive(Debug)]
enum Uts {
    Flag(bool),
    Hostname(String),
}

impl<'de> Deserialize<'de> for Uts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Uts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a hostname like \"web-1\", or true")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Uts, E> {
                Ok(Uts::Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Uts, E> {
                Ok(Uts::Hostname(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `user = true` (root inside), `false`, `"root"` or `"self"`.
#[derive(Debug)]
enum UserKey {
    Flag(bool),
    Map(String),
}

impl<'de> Deserialize<'de> for UserKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = UserKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false, \"root\" or \"self\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<UserKey, E> {
                Ok(UserKey::Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<UserKey, E> {
                Ok(UserKey::Map(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The isolation of service `what`; the default (nothing) when there is
/// none or it has errors (which are in the sink). `base` anchors relative
/// bind sources.
pub(super) fn isolation(sink: &mut Sink<'_>, what: &str, table: &dyn TableLike, base: &Path) -> Isolation {
    let mut iso = Isolation::new();
    let Some((key, item)) = table.get_key_value("isolate") else { return iso };
    let iwhat = format!("{what}: isolate");
    let before = sink.out.len();
    let Some(raw) = read_table::<RawIsolate>(sink, item, key.span(), &iwhat) else { return iso };
    let Some(it) = item.as_table_like() else { return iso };
    let at = |k: &str| key_span(it, k).or(key.span());
    match raw.user {
        None => {}
        Some(UserKey::Flag(yes)) => iso = iso.user(yes),
        Some(UserKey::Map(m)) => match UserMap::parse(&m) {
            Some(map) => iso = iso.user_map(map),
            None => sink.push(
                at("user"),
                format!("{iwhat}.user is {m:?}"),
                Some("true or \"root\" (the service is root inside), \"self\" (it keeps its own ids), or false".into()),
                None,
            ),
        },
    }
    iso = iso.pid(raw.pid.unwrap_or(false)).ipc(raw.ipc.unwrap_or(false));
    iso = iso.private_tmp(raw.private_tmp.unwrap_or(false));
    iso = iso.no_new_privileges(raw.no_new_privileges.unwrap_or(false));
    match raw.net.as_deref() {
        None | Some("host") => {}
        Some("none") => iso = iso.network(Network::None),
        Some(p) if p.starts_with('/') => iso = iso.network(Network::Join(PathBuf::from(p))),
        Some(other) => sink.push(
            at("net"),
            format!("{iwhat}.net is {other:?}"),
            Some("\"none\" (loopback only), \"host\", or a namespace path like \"/run/netns/web\"".into()),
            None,
        ),
    }
    match raw.uts {
        Some(Uts::Flag(yes)) => iso = iso.uts(yes),
        Some(Uts::Hostname(h)) => iso = iso.hostname(h),
        None => {}
    }
    for p in raw.read_only.into_iter().flatten() {
        iso = iso.read_only(p);
    }
    for b in raw.bind.into_iter().flatten() {
        iso = iso.bind(Bind::new(anchor(base, &b.src), b.dst).read_only(b.read_only));
    }
    match raw.seccomp {
        None => {}
        Some(RawSeccomp::Default) => iso = iso.seccomp(Seccomp::Default),
        Some(RawSeccomp::Lists { deny: Some(d), allow: None }) => iso = iso.seccomp(Seccomp::Deny(d)),
        Some(RawSeccomp::Lists { deny: None, allow: Some(a) }) => iso = iso.seccomp(Seccomp::Allow(a)),
        Some(RawSeccomp::Lists { .. }) => sink.push(
            at("seccomp"),
            format!("{iwhat}.seccomp needs exactly one of `deny` and `allow`"),
            Some("seccomp = { deny = [\"mount\", \"ptrace\"] }".into()),
            None,
        ),
    }
    if let Some(r) = raw.root {
        iso = iso.root(anchor(base, &r));
    }
    if let Some(caps) = raw.capabilities {
        iso = iso.keep_capabilities(caps);
    }
    match raw.token.as_deref().map(str::parse::<Token>) {
        None => {}
        Some(Ok(t)) => iso = iso.token(t),
        Some(Err(e)) => sink.push(at("token"), format!("{iwhat}.{e}"), Some("Windows only".into()), None),
    }
    if sink.out.len() > before {
        return Isolation::new();
    }
    if let Err(e) = iso.check() {
        let span = blame(it, e.context()).or(key.span());
        sink.push(span, format!("{iwhat}: {}", e.context()), e.hint_text().map(String::from), None);
        return Isolation::new();
    }
    iso
}

/// The key a library error is about, found by the words of its message.
fn blame(it: &dyn TableLike, context: &str) -> Span {
    let key = if context.starts_with("bind ") {
        "bind"
    } else if context.starts_with("read-only path") {
        "read_only"
    } else if context.contains("capabilit") {
        "capabilities"
    } else if context.starts_with("network namespace") {
        "net"
    } else if context.contains("seccomp") {
        "seccomp"
    } else if context.starts_with("root") {
        "root"
    } else if context.starts_with("hostname") {
        "uts"
    } else if context.contains(" token ") {
        "token"
    } else if context.contains("user namespace") {
        "user"
    } else {
        return None;
    };
    key_span(it, key)
}

#[cfg(test)]
mod tests {
    use crate::config::test_errors::errors;

    #[test]
    #[cfg(unix)]
    fn a_missing_bind_source_is_an_error_at_its_key() {
        let e = errors(
            "[services.a]\ncommand = [\"a\"]\n[services.a.isolate]\npid = false\nbind = [{ src = \"/nonexistent/corral-x\", dst = \"/tmp\" }]\n",
        );
        assert!(
            e.contains("corral.toml:5:8: service `a`: isolate: bind source /nonexistent/corral-x cannot be used"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_capability_is_an_error_at_its_key() {
        let e = errors("[services.a]\ncommand = [\"a\"]\nisolate = { capabilities = [\"CAP_FLY\"] }\n");
        assert!(e.contains("corral.toml:3:"), "{e}");
        assert!(e.contains("unknown capability \"CAP_FLY\""), "{e}");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_root_without_a_shell_is_not_a_usable_root() {
        let e = errors("[services.a]\ncommand = [\"a\"]\n[services.a.isolate]\nroot = \"/proc\"\n");
        assert!(
            e.contains("corral.toml:4:8: service `a`: isolate: root /proc has no /bin/sh: it is not a usable root"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_net_value_names_the_forms() {
        let e = errors("[services.a]\ncommand = [\"a\"]\nisolate = { net = \"bridge\" }\n");
        assert!(e.contains("isolate.net is \"bridge\""), "{e}");
        assert!(e.contains("/run/netns/web"), "{e}");
    }

    #[test]
    fn an_unknown_key_is_refused_with_a_suggestion() {
        let e = errors("[services.a]\ncommand = [\"a\"]\nisolate = { private_temp = true }\n");
        assert!(e.contains("corral.toml:3:13: service `a`: isolate: unknown key `private_temp`"), "{e}");
        assert!(e.contains("did you mean `private_tmp`?"), "{e}");
    }

    #[test]
    fn a_user_value_is_a_flag_root_or_self() {
        let e = errors("[services.a]\ncommand = [\"a\"]\nisolate = { user = \"nobody\" }\n");
        assert!(e.contains("corral.toml:3:20: service `a`: isolate.user is \"nobody\""), "{e}");
        assert!(e.contains("\"self\" (it keeps its own ids)"), "{e}");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_user_namespace_that_cannot_join_a_network_namespace_is_refused_at_its_key() {
        let e = errors(
            "[services.a]\ncommand = [\"a\"]\n[services.a.isolate]\nnet = \"/proc/self/ns/net\"\nuser = \"self\"\n",
        );
        assert!(
            e.contains("corral.toml:4:7: service `a`: isolate: network namespace /proc/self/ns/net cannot be joined"),
            "{e}"
        );
    }

    #[test]
    fn a_token_is_one_of_two_names() {
        let e = errors("[services.a]\ncommand = [\"a\"]\nisolate = { token = \"low\" }\n");
        assert!(
            e.contains(
                "corral.toml:3:21: service `a`: isolate.token is \"low\": expected \"restricted\" or \"low-integrity\""
            ),
            "{e}"
        );
    }

    #[test]
    #[cfg(not(windows))]
    fn a_token_is_refused_off_windows_at_its_key() {
        let e = errors("[services.a]\ncommand = [\"a\"]\n[services.a.isolate]\ntoken = \"restricted\"\n");
        assert!(
            e.contains("corral.toml:4:9: service `a`: isolate: a restricted token is a Windows access token"),
            "{e}"
        );
    }

    #[test]
    #[cfg(windows)]
    fn a_token_reaches_the_isolation() {
        let c = crate::config::parse(
            "[services.a]\ncommand = [\"a\"]\nisolate = { token = \"low-integrity\" }\n",
            std::path::Path::new("corral.toml"),
        )
        .unwrap();
        assert_eq!(c.services["a"].isolate.token, Some(corral::Token::LowIntegrity));
    }

    #[test]
    fn a_seccomp_value_is_default_or_one_list() {
        let e = errors("[services.a]\ncommand = [\"a\"]\nisolate = { seccomp = \"strict\" }\n");
        assert!(e.contains("seccomp is \"strict\""), "{e}");
        let e =
            errors("[services.a]\ncommand = [\"a\"]\nisolate = { seccomp = { deny = [\"a\"], allow = [\"b\"] } }\n");
        assert!(e.contains("needs exactly one of `deny` and `allow`"), "{e}");
    }
}
