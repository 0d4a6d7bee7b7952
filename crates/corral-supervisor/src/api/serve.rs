//! Serving HTTP/1.1 on the connections a listener hands out, with the
//! client timeout. This replaces `axum::serve`, which sets no timer, so a
//! peer that sends nothing, or half a request, held its connection (and an
//! fd) forever.
//!
//! hyper's header-read timeout is the one deadline: it runs while hyper
//! waits for a request head, which is from the connection's start and
//! again after each response (the quiet of a keep-alive connection), and
//! never while a response streams. So an event stream or a followed log
//! that is quiet for minutes stays open, while a silent or half-sent
//! request is dropped after `timeout`.

use super::actor::Identify;
use axum::serve::Listener;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// A request head here is a line, a few headers and a token; a longer
/// one is refused (431) before more of it is read.
const MAX_HEAD: usize = 16 * 1024;
/// What hyper may buffer for one connection either way (its default is
/// about 400 KiB); with the caps, this bounds what clients can make the
/// daemon hold.
const MAX_BUF: usize = 64 * 1024;

/// Serves `app` on every connection `listener` accepts until `stop`
/// completes; then stops accepting, lets each connection finish the
/// request it is on, and returns when all are closed (as `axum::serve`'s
/// graceful shutdown does).
pub(crate) async fn serve<L>(
    mut listener: L,
    app: axum::Router,
    timeout: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: Listener,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + Identify + 'static,
{
    let (stopping, stop_seen) = watch::channel(false);
    // Each connection holds a clone; `closed()` completes when all are gone.
    let (all_closed, open) = watch::channel(());
    let mut stop = std::pin::pin!(stop);
    loop {
        let (io, _) = tokio::select! {
            c = listener.accept() => c,
            _ = &mut stop => break,
        };
        // Who is at the other end, asked once per connection; every
        // request on it carries the answer to the handlers.
        let actor = io.actor();
        let inner = TowerToHyperService::new(app.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            if let Some(a) = &actor {
                req.extensions_mut().insert(a.clone());
            }
            inner.call(req)
        });
        let mut stop_seen = stop_seen.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .keep_alive(true)
                .max_header_size(MAX_HEAD)
                .max_buf_size(MAX_BUF);
            let conn = builder.serve_connection(TokioIo::new(io), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                // An error here is the peer's (a timeout, a reset, a
                // malformed request): the connection just ends.
                _ = conn.as_mut() => {}
                // The one change ever sent is the stop.
                _ = stop_seen.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(open);
    all_closed.closed().await;
    Ok(())
}
