//! # corral-supervisor
//!
//! Keeps declared services alive, each instance as one corral
//! [`Group`](corral::Group), so stopping or restarting a service never
//! leaves a grandchild behind.
//!
//! - [`config`]: `corral.toml`, checked whole (every error with
//!   file:line:column) before anything starts.
//! - [`policy`]: the decisions (restart, backoff, start limit, order) as
//!   pure functions.
//! - [`Supervisor`]: instance tasks walking the state machine
//!   ([`State`]), with events in `state_dir/events.jsonl`.
//! - [`health`]: startup, readiness and liveness probes.
//! - [`alerts`]: memory and CPU thresholds on the whole group, sampled on
//!   one shared timer.
//! - [`metrics`]: `GET /metrics` for Prometheus.
//! - [`logs`]: capture, rotation, tail and follow.
//! - [`api`] and [`client`]: HTTP/1.1 + JSON on a local socket, or over
//!   TLS with a bearer token.
//! - [`tls`]: whom a TLS client trusts (https probes, the verbs over TCP).
//! - [`fleet`]: desired state in etcd for many daemons (`[fleet]`).
//! - [`tree`]: process trees and lineage traces, as text, JSON, DOT,
//!   mermaid and SVG.
//! - [`web`]: the dashboard, served when `[daemon] web` asks.
//! - [`daemon`]: `corral up`.

#![warn(missing_docs)]

pub mod activation;
pub mod alerts;
pub mod api;
mod asked;
pub mod client;
pub mod config;
pub mod daemon;
pub mod diff;
mod environment;
mod event;
pub mod fleet;
mod groups;
pub mod health;
pub mod holder;
pub mod hooks;
mod instance;
mod live_limits;
pub mod logs;
pub mod metrics;
mod persist;
pub mod policy;
mod reattach;
pub mod reexec;
pub mod runtime;
pub mod schedule;
pub mod sd_notify;
mod spawn;
mod state;
mod supervisor;
mod sys;
pub mod time;
pub mod tls;
pub mod tree;
mod user;
mod watch;
pub mod watch_restart;
pub mod web;

pub use event::{Event, EventKind, EventLog};
pub use live_limits::{LimitChange, LimitResult};
pub use persist::{GroupRecord, Leftovers};
pub use state::{InstanceStatus, LastExit, State};
pub use supervisor::{
    DumpResult, Health, OpError, ReloadError, Reloaded, Signalled, Supervisor, Target, UnknownService,
};
