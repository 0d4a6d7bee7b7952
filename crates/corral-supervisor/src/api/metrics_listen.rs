//! `[daemon] metrics_listen`: plain TCP that serves `GET /metrics` only
//! ([`super::metrics_router`]), within its caps ([`super::admit`]) and
//! with the client timeout, so scrapers cannot be crowded out and a
//! half-sent request is dropped.

use super::admit::{Admitted, Caps, Clients, Gate, Peer};
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
        let listener = Capped { inner: self.listener, gate: clients.gate("metrics_listen", Caps::METRICS) };
        tokio::spawn(super::serve::serve(listener, app, clients.timeout(), stop))
    }
}

/// Plain TCP connections within the caps; the rest are closed at once.
struct Capped {
    inner: TcpListener,
    gate: Gate,
}

impl Listener for Capped {
    type Io = Admitted<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((s, peer)) => {
                    let Ok(slot) = self.gate.admit(Peer::of(peer.ip())) else { continue };
                    let _ = s.set_nodelay(true);
                    return (Admitted::new(s, slot), peer);
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
