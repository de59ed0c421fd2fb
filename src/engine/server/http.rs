//! The HTTP server's accept loop: HTTP/1.1 connections served by hyper with the limits a public
//! webhook endpoint needs, which `axum::serve` does not set.
//!
//! - A connection limit ([`Limits::max_connections`]): a connection over it is answered `503`
//!   at once and closed, so that slow or idle clients cannot use up the process's file
//!   descriptors and starve real deliveries and `/healthz`.
//! - A header read timeout ([`Limits::header_timeout`]): a client that does not send a
//!   complete request head within it (including an idle kept-alive connection) is
//!   disconnected.
//! - The body read timeout is applied per request by the webhook routes (see
//!   `receiver::guard`), which answer `408` and close the connection.
//!
//! Shutdown stops accepting, lets every open connection finish the request it is on, and
//! returns once all have closed.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Connections one server keeps open at most (default of [`Limits::max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// How long a client may take to send a request head (default of [`Limits::header_timeout`]).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request body (default of the receiver's body timeout).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Time allowed for a complete request head, from the moment the server waits for one.
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
        }
    }
}

/// What a connection over the limit gets before it is closed.
fn busy() -> Vec<u8> {
    let body = r#"{"error":"too many connections; try again soon"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then waits for the open
/// connections to finish their requests. Fails only when accepting fails for good.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(100);
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (mut stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) if transient_accept_error(&e) => {
                tracing::warn!(target: "tandem::server", "could not accept a connection: {e}");
                // Out of file descriptors and the like: give the open connections a moment.
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            ::metrics::counter!(super::metrics::CONNECTIONS_REFUSED).increment(1);
            tracing::warn!(
                target: "tandem::server",
                "refused a connection from {peer}: {max} connections are open already"
            );
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), stream.write_all(&busy())).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        // Handlers may ask for the peer's address (`ConnectInfo`), as with axum's own server.
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(target: "tandem::server", "connection from {peer} ended: {e}");
            }
            drop(slot);
        });
    }
    // Every connection holds a slot until it has closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    Ok(())
}

/// Accept errors that concern one connection or a passing shortage (file descriptors,
/// memory), after which accepting goes on.
fn transient_accept_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    ) || matches!(e.raw_os_error(), Some(23 | 24 | 12 | 105))
}
