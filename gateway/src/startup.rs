//! Building and running the gateway: `build` binds the port and wires the
//! router (tests pass `127.0.0.1:0` and read [`Application::port`]), then
//! `run_until_stopped` serves until the shutdown token fires and in-flight
//! requests have finished.

use anyhow::Context;
use axum::{Router, extract::DefaultBodyLimit, middleware};
use contract::api::headers::MAX_CHECKOUT_BODY_BYTES;
use runtime::{health::Readiness, service::Tasks};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Settings,
    error, openapi,
    order_client::OrderClient,
    rate_limit::{self, Limiter, RateLimit},
    routes::{self, AppState, timeline::TimelinePeers},
};

pub struct Application {
    listener: TcpListener,
    router: Router,
    port: u16,
}

impl Application {
    /// The port actually bound (useful when `BIND_ADDR` asked for port 0).
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// The whole HTTP surface: the public API, its OpenAPI document and docs
/// page, `/health`, `/ready` (order-service reachable), `/metrics`, and
/// problem+json for unknown paths and methods. When `rate_limit` is set,
/// every request but the probes counts against its client's limit, whether
/// its route exists or not. The standard layers (request id, trace span,
/// metrics) wrap all of it.
pub fn router(state: AppState, rate_limit: Option<RateLimit>) -> Router {
    let readiness = Readiness::default().with("order_service", state.orders.clone());
    let mut app = routes::api()
        .with_state(state)
        .merge(openapi::router())
        .merge(runtime::health::router(readiness))
        .fallback(error::no_route)
        // After every route is in place: it is set on each existing route.
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_CHECKOUT_BODY_BYTES));
    if let Some(limit) = rate_limit {
        // Last, so it covers the fallbacks too.
        app = app.layer(middleware::from_fn_with_state(
            Limiter::new(limit),
            rate_limit::enforce,
        ));
    }
    runtime::http::with_standard_layers(app, "gateway")
}

#[async_trait::async_trait]
impl runtime::service::Service for Application {
    type Settings = Settings;
    const NAME: &'static str = "gateway";

    async fn build(settings: Settings) -> anyhow::Result<Self> {
        runtime::metrics::install();
        let client =
            OrderClient::new(&settings).context("cannot build the order-service client")?;
        let timeline_peers =
            TimelinePeers::new(&settings).context("cannot build the timeline client")?;
        let listener = TcpListener::bind(settings.bind_addr)
            .await
            .with_context(|| format!("cannot listen on BIND_ADDR {}", settings.bind_addr))?;
        let port = listener.local_addr()?.port();
        tracing::info!(
            addr = %listener.local_addr()?,
            order_service = %settings.order_service_url,
            rate_limit = ?settings.rate_limit,
            "gateway listening"
        );
        Ok(Self {
            listener,
            router: router(
                AppState {
                    orders: client,
                    timeline_peers,
                },
                settings.rate_limit,
            ),
            port,
        })
    }

    /// Serves HTTP until `shutdown` is cancelled, then drains in-flight
    /// requests. An error means the server failed on its own.
    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            listener, router, ..
        } = self;
        let mut tasks = Tasks::new();
        tasks.intake("http", move |stop| {
            runtime::http::serve(listener, router, stop)
        });
        tasks.run(shutdown).await
    }
}
