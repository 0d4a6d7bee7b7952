//! Who may open one more connection: every listener has a cap on its open
//! connections in all and on those of one peer address, and all of them
//! share the clients' fd budget ([`super::budget`]). A connection over any
//! of them is closed as soon as it is accepted, never queued, so one peer
//! that floods a listener cannot keep another peer out, and clients can
//! never take the fds a spawn needs.
//!
//! A connection's [`Slot`] travels with it ([`Admitted`]) and gives its
//! place back when the connection is dropped, whoever drops it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The caps of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Open connections at once.
    pub total: usize,
    /// Open connections at once from one peer (an IPv4 address or an IPv6 /64).
    pub per_peer: usize,
}

impl Caps {
    /// The local socket or pipe: its peers are the daemon's own user, so
    /// only the total counts.
    pub const LOCAL: Caps = Caps { total: 64, per_peer: usize::MAX };
    /// `[daemon.tcp]`. A peer's share (16) is a quarter of the TLS
    /// handshakes that may run at once (64), so one address cannot take
    /// every handshake slot.
    pub const TCP: Caps = Caps { total: 256, per_peer: 16 };
    /// `metrics_listen`: scrapers open one connection at a time.
    pub const METRICS: Caps = Caps { total: 32, per_peer: 8 };
}

/// Whom a per-peer cap counts together: an IPv4 address, or an IPv6 /64,
/// since one host is usually handed a whole /64 and could otherwise take a
/// new address per connection. Local clients are one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    /// The local socket or pipe.
    Local,
    /// An IPv4 address.
    V4(u32),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
}

impl Peer {
    /// The peer of a TCP client at `ip` (an IPv4-mapped IPv6 address is
    /// its IPv4 address).
    pub fn of(ip: IpAddr) -> Peer {
        match ip {
            IpAddr::V4(v4) => Peer::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Peer::V4(v4.into()),
                None => Peer::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The listener's total cap is reached.
    Total,
    /// This peer's cap is reached.
    PerPeer,
    /// The clients' fd budget (every listener together) is spent.
    Budget,
}

impl Refused {
    fn index(self) -> usize {
        match self {
            Refused::Total => 0,
            Refused::PerPeer => 1,
            Refused::Budget => 2,
        }
    }
}

/// The open connections of one listener.
#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_peer: HashMap<Peer, usize>,
}

/// The decision, pure: may one more connection from `peer` open, with
/// `budget_used` of `budget` fds already taken by clients?
fn decide(open: &Open, caps: Caps, peer: Peer, budget_used: usize, budget: usize) -> Result<(), Refused> {
    if open.by_peer.get(&peer).copied().unwrap_or(0) >= caps.per_peer {
        return Err(Refused::PerPeer);
    }
    if open.total >= caps.total {
        return Err(Refused::Total);
    }
    if budget_used >= budget {
        return Err(Refused::Budget);
    }
    Ok(())
}

/// What every listener shares: the clients' fd budget and how long a
/// client may stay silent.
#[derive(Debug, Clone)]
pub struct Clients {
    budget: Arc<Budget>,
    timeout: Duration,
}

#[derive(Debug)]
struct Budget {
    max: usize,
    used: AtomicUsize,
}

impl Clients {
    /// At most `budget` connections over every listener; `timeout` for a
    /// TLS handshake, a request head, and the quiet between two requests.
    pub fn new(budget: usize, timeout: Duration) -> Clients {
        Clients { budget: Arc::new(Budget { max: budget, used: AtomicUsize::new(0) }), timeout }
    }

    /// The client timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The gate of one listener, named `listener` in warnings.
    pub(crate) fn gate(&self, listener: &'static str, caps: Caps) -> Gate {
        Gate {
            inner: Arc::new(GateInner {
                listener,
                caps,
                open: Mutex::new(Open::default()),
                budget: self.budget.clone(),
                warned: Default::default(),
            }),
        }
    }
}

/// One listener's admission.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    inner: Arc<GateInner>,
}

#[derive(Debug)]
struct GateInner {
    listener: &'static str,
    caps: Caps,
    open: Mutex<Open>,
    budget: Arc<Budget>,
    /// Each kind of refusal is reported once, not once per connection.
    warned: [AtomicBool; 3],
}

impl Gate {
    /// A slot for one more connection from `peer`, or why not.
    pub(crate) fn admit(&self, peer: Peer) -> Result<Slot, Refused> {
        let g = &self.inner;
        let mut open = g.open.lock().unwrap_or_else(|p| p.into_inner());
        let verdict = decide(&open, g.caps, peer, g.budget.used.load(Ordering::Acquire), g.budget.max);
        if let Err(why) = verdict {
            drop(open);
            self.warn_once(why);
            return Err(why);
        }
        // Only gates take from the budget, each under its own lock: two
        // gates may both pass `decide` with one fd left, so the budget is
        // taken with a check of its own.
        let took =
            g.budget.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| (u < g.budget.max).then(|| u + 1));
        if took.is_err() {
            drop(open);
            self.warn_once(Refused::Budget);
            return Err(Refused::Budget);
        }
        open.total += 1;
        *open.by_peer.entry(peer).or_insert(0) += 1;
        Ok(Slot { gate: self.inner.clone(), peer })
    }

    /// What a refused plain-HTTP client is told, written at once (it
    /// fits in any socket buffer) before the connection is dropped: a 503
    /// with `{"error": …}` naming the cap.
    pub(crate) fn refusal(&self, why: Refused) -> String {
        let g = &self.inner;
        let error = match why {
            Refused::Total => format!(
                "the daemon has {} connections open on {}, its cap; try again when one closes",
                g.caps.total, g.listener
            ),
            Refused::PerPeer => format!(
                "your address has {} connections open on {}, its cap; close one and try again",
                g.caps.per_peer, g.listener
            ),
            Refused::Budget => format!(
                "the daemon's clients hold all {} fds its open-file limit leaves them; try again when one closes",
                g.budget.max
            ),
        };
        let body = serde_json::json!({ "error": error }).to_string();
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn warn_once(&self, why: Refused) {
        let g = &self.inner;
        if g.warned[why.index()].swap(true, Ordering::Relaxed) {
            return;
        }
        let what = match why {
            Refused::Total => format!("{} connections are open, its cap", g.caps.total),
            Refused::PerPeer => format!("one address has {} connections open, its cap", g.caps.per_peer),
            Refused::Budget => format!("clients hold {} fds, all the open-file limit leaves them", g.budget.max),
        };
        eprintln!("corral: {}: {what}; further connections are closed at once (said once)", g.listener);
    }
}

/// One admitted connection's place; given back on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    gate: Arc<GateInner>,
    peer: Peer,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total -= 1;
        if let Some(n) = open.by_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.by_peer.remove(&self.peer);
            }
        }
        self.gate.budget.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection with its slot: closing it frees the slot.
#[derive(Debug)]
pub(crate) struct Admitted<S> {
    io: S,
    _slot: Slot,
}

impl<S> Admitted<S> {
    pub(crate) fn new(io: S, slot: Slot) -> Admitted<S> {
        Admitted { io, _slot: slot }
    }

    /// The connection itself (to ask who is at the other end).
    pub(crate) fn get_ref(&self) -> &S {
        &self.io
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Admitted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Admitted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Caps = Caps { total: 4, per_peer: 2 };

    fn ip(s: &str) -> Peer {
        Peer::of(s.parse().unwrap())
    }

    #[test]
    fn one_peer_gets_its_share_and_others_still_get_in() {
        let clients = Clients::new(100, Duration::from_secs(1));
        let gate = clients.gate("test", CAPS);
        let a1 = gate.admit(ip("10.0.0.1")).unwrap();
        let _a2 = gate.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(gate.admit(ip("10.0.0.1")).unwrap_err(), Refused::PerPeer);
        let _b1 = gate.admit(ip("10.0.0.2")).unwrap();
        let _b2 = gate.admit(ip("10.0.0.2")).unwrap();
        // Four open: the listener is full for everyone.
        assert_eq!(gate.admit(ip("10.0.0.3")).unwrap_err(), Refused::Total);
        drop(a1);
        assert!(gate.admit(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn the_budget_is_shared_by_every_listener() {
        let clients = Clients::new(3, Duration::from_secs(1));
        let local = clients.gate("socket", Caps::LOCAL);
        let tcp = clients.gate("tcp", Caps::TCP);
        let held: Vec<Slot> = (0..2).map(|_| local.admit(Peer::Local).unwrap()).collect();
        let t = tcp.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(tcp.admit(ip("10.0.0.2")).unwrap_err(), Refused::Budget);
        assert_eq!(local.admit(Peer::Local).unwrap_err(), Refused::Budget);
        drop(t);
        assert!(local.admit(Peer::Local).is_ok());
        drop(held);
        assert_eq!(clients.budget.used.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_refused_client_is_told_which_cap_in_json() {
        let clients = Clients::new(1, Duration::from_secs(1));
        let gate = clients.gate("the TCP listener", CAPS);
        let answer = gate.refusal(Refused::PerPeer);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 ") && head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            v["error"],
            "your address has 2 connections open on the TCP listener, its cap; close one and try again"
        );
        assert!(gate.refusal(Refused::Budget).contains("all 1 fds"));
        assert!(gate.refusal(Refused::Total).contains("4 connections open on the TCP listener"));
    }

    #[test]
    fn a_slot_frees_its_peer_entry() {
        let clients = Clients::new(10, Duration::from_secs(1));
        let gate = clients.gate("test", CAPS);
        drop(gate.admit(ip("10.0.0.1")).unwrap());
        let open = gate.inner.open.lock().unwrap();
        assert_eq!(open.total, 0);
        assert!(open.by_peer.is_empty(), "no entry is kept for a peer that left");
    }

    #[test]
    fn an_ipv6_64_is_one_peer_and_mapped_ipv4_is_its_ipv4() {
        assert_eq!(ip("2001:db8:1:2::1"), ip("2001:db8:1:2:ffff::9"));
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("::ffff:192.0.2.7"), ip("192.0.2.7"));
    }

    #[test]
    fn the_per_peer_cap_is_checked_first() {
        let mut open = Open { total: 4, ..Open::default() };
        open.by_peer.insert(Peer::Local, 2);
        assert_eq!(decide(&open, CAPS, Peer::Local, 0, 10), Err(Refused::PerPeer));
        assert_eq!(decide(&open, CAPS, Peer::V4(1), 0, 10), Err(Refused::Total));
        assert_eq!(decide(&Open::default(), CAPS, Peer::V4(1), 10, 10), Err(Refused::Budget));
        assert_eq!(decide(&Open::default(), CAPS, Peer::V4(1), 9, 10), Ok(()));
    }
}
