//! The dashboard's listener, `[daemon] web`: plain http when the config
//! allows it (loopback only, `config/web.rs`), else TLS with the same
//! rustls setup, handshake deadline and admission as `[daemon.tcp]`.
//! Connections are capped like every listener's ([`super::admit`],
//! [`Caps::WEB`]); a plain connection whose peer takes no byte of its
//! answer for the client timeout is cut ([`super::stall`]), so a tab that
//! stopped reading cannot hold a stream's buffers.
//!
//! Like the TCP listener, everything is read and bound before any service
//! starts: a bad certificate, token or address stops the daemon with one
//! line and nothing started.

use super::admit::{Caps, Clients};
use super::metrics_listen::Capped;
use super::tcp::{self, Admission, TlsListener};
use crate::config::WebConfig;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// The dashboard's bound port, not yet serving.
pub struct BoundWeb {
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
}

impl std::fmt::Debug for BoundWeb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundWeb").field("addr", &self.addr).field("tls", &self.tls.is_some()).finish()
    }
}

impl BoundWeb {
    /// Reads the certificate (when TLS) and binds. One line for a person
    /// on error.
    pub async fn bind(cfg: &WebConfig) -> Result<BoundWeb, String> {
        let tls = cfg.tls.as_ref().map(|(cert, key)| tcp::server_config(cert, key)).transpose()?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| format!("cannot listen on {} ([daemon] web): {e}", cfg.listen))?;
        let addr = listener.local_addr().unwrap_or(cfg.listen);
        Ok(BoundWeb { listener, addr, tls })
    }

    /// Where a browser finds the dashboard, with the real port.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/", self.addr)
    }

    /// Serves `app` (the dashboard's router, which does its own
    /// authentication) until `stop` completes.
    pub fn serve(
        self,
        app: axum::Router,
        clients: &Clients,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<std::io::Result<()>> {
        let gate = clients.gate("the dashboard", Caps::WEB);
        let timeout = clients.timeout();
        match self.tls {
            Some(tls) => {
                let admit = Admission { gate, acceptor: TlsAcceptor::from(tls), deadline: timeout };
                let listener = TlsListener::start(self.listener, self.addr, admit);
                tokio::spawn(super::serve::serve(listener, app, timeout, stop))
            }
            None => {
                let listener = Capped { inner: self.listener, gate, stall: timeout };
                tokio::spawn(super::serve::serve(listener, app, timeout, stop))
            }
        }
    }
}
