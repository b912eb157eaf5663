//! Serving a router over HTTP/1.1 with connection timeouts and graceful
//! shutdown.

use std::{net::SocketAddr, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Request},
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// How long a client has to send a request's headers, from the moment the
/// connection is open or the previous answer is sent: a slow or idle client
/// (slowloris) cannot hold a connection and its task forever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client of our servers keeps an idle keep-alive connection.
/// Shorter than [`HEADER_READ_TIMEOUT`], after which the server closes an
/// idle connection: with a longer one (reqwest's default is 90 s) a request
/// sent on a connection just as the server closes it is reset, and a
/// checkout without an `Idempotency-Key` cannot be retried (it surfaced as
/// 502s under load).
pub const CLIENT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
const _: () = assert!(CLIENT_POOL_IDLE_TIMEOUT.as_millis() < HEADER_READ_TIMEOUT.as_millis());

/// How long in-flight requests may take to finish once shutdown has begun.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `router` over HTTP/1.1 until `stop`, then lets in-flight requests
/// finish (bounded by 20 s) and closes idle keep-alive connections.
///
/// The same as `axum::serve` plus what it does not do: a header read timeout
/// on every connection ([`HEADER_READ_TIMEOUT`]), and the peer address in
/// each request's extensions as `ConnectInfo<SocketAddr>` (per-client rate
/// limiting keys on it).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let connections = accept_until_stopped(&listener, router, &stop).await;
    // Refuse new connections at once while the open ones drain.
    drop(listener);
    drain(connections).await;
    Ok(())
}

/// [`serve`] on a listener that outlives it: the start-up server answers on
/// the port while the service connects, then hands the port over.
pub(crate) async fn serve_borrowed(
    listener: &TcpListener,
    router: Router,
    stop: CancellationToken,
) {
    let connections = accept_until_stopped(listener, router, &stop).await;
    drain(connections).await;
}

async fn accept_until_stopped(
    listener: &TcpListener,
    router: Router,
    stop: &CancellationToken,
) -> GracefulShutdown {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connections = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or the peer gave up before the
                    // accept: not fatal. Pause so a full fd table is not a busy loop.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small request/answer pairs: send each answer at once.
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(ConnectInfo::<SocketAddr>(peer));
                    request.map(Body::new)
                });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // Client resets, header timeouts, malformed requests.
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    connections
}

/// Lets in-flight requests finish (bounded by [`DRAIN_TIMEOUT`]) and closes
/// idle keep-alive connections.
async fn drain(connections: GracefulShutdown) {
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {DRAIN_TIMEOUT:?}; closing");
    }
}
