//! The port answers from the first second. While a service connects to its
//! database and broker (which can take as long as they are down), a start-up
//! server on its port answers `/health` (`200`, `{"status": "starting"}`:
//! the process is alive), `/ready` (`503`, naming what it waits for) and
//! `/metrics`; any other path gets a `503` problem. Once connected, the
//! service takes the port over.

use std::sync::Arc;

use axum::{Router, http::StatusCode, response::IntoResponse};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use contract::problem::Problem;

use crate::health::StartupProgress;

pub struct StartupServer {
    listener: Arc<TcpListener>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl StartupServer {
    /// Starts answering on `listener` for `service`.
    pub fn start(listener: TcpListener, service: &'static str, progress: StartupProgress) -> Self {
        let listener = Arc::new(listener);
        let stop = CancellationToken::new();
        let router = crate::http::with_standard_layers(router(progress), service);
        let task = tokio::spawn({
            let (listener, stop) = (listener.clone(), stop.clone());
            async move { crate::http::serve_borrowed(&listener, router, stop).await }
        });
        Self {
            listener,
            stop,
            task,
        }
    }

    /// Stops answering (requests in flight finish) and hands the port back.
    pub async fn finish(self) -> anyhow::Result<TcpListener> {
        self.stop.cancel();
        self.task.await?;
        Arc::try_unwrap(self.listener)
            .map_err(|_| anyhow::anyhow!("the start-up server still holds the port"))
    }
}

fn router(progress: StartupProgress) -> Router {
    crate::health::startup_router(progress).fallback(starting)
}

async fn starting() -> impl IntoResponse {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "starting",
        "Starting",
        "the service is starting; try again shortly",
    )
}
