//! The file's shape, as serde reads it. Every table denies unknown keys;
//! values are checked here as far as one value allows, and across values
//! in `validate`.

use serde::{de, Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    pub socket: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub log_dir: Option<PathBuf>,
    pub tcp: Option<RawTcp>,
    pub metrics_listen: Option<Addr>,
    pub watch_config: Option<bool>,
    pub client_timeout: Option<Dur>,
    pub events: Option<RawLogs>,
    /// Read on its own from the document (`config/web.rs`): a string or a table.
    #[allow(dead_code)]
    pub web: Option<de::IgnoredAny>,
    pub logs: Option<super::log_output::RawDaemonLogs>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTcp {
    pub listen: Addr,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
}

/// Every key is optional here so that each one can be checked on its own
/// and all errors are reported at once; `validate` demands `command`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub command: Option<RawCommand>,
    pub shell: Option<bool>,
    pub env: Option<BTreeMap<String, String>>,
    pub inherit_env: Option<super::InheritEnv>,
    pub cwd: Option<PathBuf>,
    pub instances: Option<u32>,
    pub restart: Option<RawRestart>,
    pub success_exit_codes: Option<Vec<i32>>,
    pub backoff: Option<RawBackoff>,
    pub start_limit: Option<RawStartLimit>,
    pub stop: Option<RawStop>,
    pub limits: Option<RawLimits>,
    pub depends_on: Option<BTreeMap<String, RawCondition>>,
    pub logs: Option<super::log_output::RawServiceLogs>,
    pub user: Option<String>,
    pub trace: Option<bool>,
    /// Readiness by notification and socket activation (`protocols.rs`).
    pub notify: Option<bool>,
    pub notify_fd: Option<i64>,
    pub watchdog: Option<Dur>,
    pub start_timeout: Option<Dur>,
    pub sockets: Option<Vec<String>>,
    /// Read on their own from the document (`probes.rs`), so that their
    /// errors carry their own place; here the keys are only known.
    #[allow(dead_code)]
    pub health: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    pub alerts: Option<de::IgnoredAny>,
    /// Read on its own (`config/isolate.rs`).
    #[allow(dead_code)]
    pub isolate: Option<de::IgnoredAny>,
    /// Read on their own (`config/schedule.rs`).
    #[allow(dead_code)]
    pub schedule: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    pub every: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    pub schedule_tz: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    pub max_concurrent: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    pub on_overlap: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    pub cron_restart: Option<de::IgnoredAny>,
    /// Read on its own (`config/watch_restart.rs`).
    #[allow(dead_code)]
    pub watch: Option<de::IgnoredAny>,
    /// Fleet specs only; read on its own (`config/fleet.rs`).
    #[allow(dead_code)]
    pub placement: Option<de::IgnoredAny>,
    /// Read on their own from the document (`env_file.rs`, `identity.rs`,
    /// `hooks.rs`), so that their errors carry their own place.
    #[allow(dead_code)]
    pub env_file: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    pub umask: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    pub group: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    pub supplementary_groups: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    pub pre_start: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    pub post_start: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    pub pre_stop: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    pub post_stop: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    pub reload_signal: Option<de::IgnoredAny>,
    #[allow(dead_code)]
    pub reload: Option<de::IgnoredAny>,
}

/// `[fleet]`, checked in `config/fleet.rs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFleet {
    pub endpoints: Option<Vec<String>>,
    pub cluster: Option<String>,
    pub node: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub ttl: Option<Dur>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    pub insecure: Option<bool>,
}

#[derive(Debug, Clone)]
pub(crate) enum RawCommand {
    Line(String),
    Argv(Vec<String>),
}

impl<'de> Deserialize<'de> for RawCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = RawCommand;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of strings like [\"python3\", \"-m\", \"http.server\"]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawCommand, E> {
                Ok(RawCommand::Line(v.to_string()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawCommand, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(RawCommand::Argv(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawRestart {
    No,
    OnFailure,
    Always,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawCondition {
    Started,
    Healthy,
    Completed,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackoff {
    pub initial: Option<Dur>,
    pub max: Option<Dur>,
    pub factor: Option<f64>,
    pub reset_after: Option<Dur>,
    pub jitter: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStartLimit {
    pub burst: Option<u32>,
    pub interval: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStop {
    pub signal: Option<Sig>,
    pub grace: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub memory: Option<Size>,
    pub memory_per_process: Option<Size>,
    pub max_procs: Option<u32>,
    pub cpus: Option<f64>,
    pub cpu_time: Option<Dur>,
    pub cpu_time_per_process: Option<Dur>,
    pub timeout: Option<Dur>,
    pub on_limit: Option<super::on_limit::RawOnLimit>,
    pub io: Option<Vec<super::io_limits::RawIo>>,
    pub working_set: Option<super::working_set::RawWorkingSet>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogs {
    pub max_size: Option<Size>,
    pub keep: Option<u32>,
}

const DURATION: &str = "a duration like \"30s\", \"1m30s\", \"500ms\" or a number of seconds";
const SIZE: &str = "a size like \"512MiB\", \"1.5G\", \"64M\" or a number of bytes";

/// A duration written the human way (`"30s"`, `"1m30s"`) or as seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use corral::units::{duration_from_secs, duration_range_error, parse_duration};
        // Every form is bounded here, so no field can hold a duration that
        // overflows a deadline (`from_secs_f64` would panic on 1e300).
        match NumOrStr::read(d, DURATION)? {
            NumOrStr::Str(s) => parse_duration(&s).map(Dur).map_err(de::Error::custom),
            NumOrStr::Int(n) => duration_from_secs(n as f64)
                .filter(|_| n >= 0)
                .map(Dur)
                .ok_or_else(|| de::Error::custom(duration_range_error(&n.to_string()))),
            NumOrStr::Float(f) => {
                duration_from_secs(f).map(Dur).ok_or_else(|| de::Error::custom(duration_range_error(&short(f))))
            }
        }
    }
}

/// A float as a person wrote it: `1e300`, not three hundred digits.
pub(crate) fn short(f: f64) -> String {
    if f.is_finite() && f.abs() >= 1e15 {
        format!("{f:e}")
    } else {
        f.to_string()
    }
}

/// A size written the human way (`"512MiB"`, `"1.5G"`) or as bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumOrStr::read(d, SIZE)? {
            NumOrStr::Str(s) => corral::units::parse_size(&s).map(Size).map_err(de::Error::custom),
            NumOrStr::Int(n) if n >= 0 && n as u64 <= corral::units::MAX_SIZE => Ok(Size(n as u64)),
            NumOrStr::Int(n) => Err(de::Error::custom(corral::units::size_range_error(&n.to_string()))),
            _ => Err(de::Error::custom(format!("invalid size: expected {SIZE}"))),
        }
    }
}

/// A signal name like `"TERM"` or a number.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sig(pub corral::Signal);

impl<'de> Deserialize<'de> for Sig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = match NumOrStr::read(d, "a signal name like \"TERM\" or a number")? {
            NumOrStr::Str(s) => s,
            NumOrStr::Int(n) => n.to_string(),
            NumOrStr::Float(f) => f.to_string(),
        };
        s.parse().map(Sig).map_err(de::Error::custom)
    }
}

/// A socket address like `"127.0.0.1:7070"`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Addr(pub std::net::SocketAddr);

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map(Addr)
            .map_err(|_| de::Error::custom(format!("invalid address '{s}': expected IP:PORT like \"127.0.0.1:7070\"")))
    }
}

enum NumOrStr {
    Str(String),
    Int(i64),
    Float(f64),
}

impl NumOrStr {
    /// Reads a string or a number; anything else is an error that names
    /// the expected form.
    fn read<'de, D: Deserializer<'de>>(d: D, expecting: &'static str) -> Result<Self, D::Error> {
        struct V(&'static str);
        impl de::Visitor<'_> for V {
            type Value = NumOrStr;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Str(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Int(v.min(i64::MAX as u64) as i64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumOrStr, E> {
                Ok(NumOrStr::Float(v))
            }
        }
        d.deserialize_any(V(expecting))
    }
}
