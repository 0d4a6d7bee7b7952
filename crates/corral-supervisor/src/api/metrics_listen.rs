//! `[daemon] metrics_listen`: plain TCP that serves `GET /metrics` only
//! ([`super::metrics_router`]), within its caps ([`super::admit`]) and
//! with the client timeout, both for sending the request and for taking
//! the answer ([`super::stall`]), so scrapers cannot be crowded out and a
//! peer that sends half a request, or reads nothing, is dropped.

use super::admit::{Admitted, Caps, Clients, Gate, Peer};
use super::stall::WriteDeadline;
use axum::serve::Listener;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The bound metrics port, not yet serving.
#[derive(Debug)]
pub struct BoundMetrics {
    listener: TcpListener,
    addr: SocketAddr,
}

impl BoundMetrics {
    /// Binds `addr`. One line for a person on error.
    pub async fn bind(addr: SocketAddr) -> Result<BoundMetrics, String> {
        let listener =
            TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr} (metrics_listen): {e}"))?;
        let addr = listener.local_addr().unwrap_or(addr);
        Ok(BoundMetrics { listener, addr })
    }

    /// The bound address, with the real port when the config said 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `app` until `stop` completes; then waits for open requests.
    pub fn serve(
        self,
        app: axum::Router,
        clients: &Clients,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<std::io::Result<()>> {
        let gate = clients.gate("metrics_listen", Caps::METRICS);
        let listener = Capped { inner: self.listener, gate, stall: clients.timeout() };
        tokio::spawn(super::serve::serve(listener, app, clients.timeout(), stop))
    }
}

/// Plain TCP connections within the caps; the rest are closed at once.
pub(super) struct Capped {
    pub(super) inner: TcpListener,
    pub(super) gate: Gate,
    /// How long a write may wait for the peer to take a byte.
    pub(super) stall: Duration,
}

impl Listener for Capped {
    type Io = Admitted<WriteDeadline<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((s, peer)) => {
                    let slot = match self.gate.admit(Peer::of(peer.ip())) {
                        Ok(slot) => slot,
                        // Over the caps: closed at once; told why when its
                        // request has come (read first, so that the close
                        // does not reset the answer away).
                        Err(why) => {
                            if s.try_read(&mut [0u8; 4096]).is_ok_and(|n| n > 0) {
                                let _ = s.try_write(self.gate.refusal(why).as_bytes());
                            }
                            continue;
                        }
                    };
                    let _ = s.set_nodelay(true);
                    return (Admitted::new(WriteDeadline::new(s, self.stall), slot), peer);
                }
                // Out of fds and the like: wait a little instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
