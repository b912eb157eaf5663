//! What every service binary does, so each `main.rs` is one call: read the
//! configuration, start the service, restart it in place after a failure,
//! stop on SIGTERM; or, for `<binary> dlq …`, run the dead-letter tool.

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use super::keep_running;
use crate::messaging::{AmqpSettings, dead_letters};

/// A service as its binary and the tests start it.
#[async_trait::async_trait]
pub trait Service: Sized + Send + 'static {
    type Settings: Clone + Send + Sync + 'static;
    /// Binary name, log field, AMQP `app_id`.
    const NAME: &'static str;

    /// Binds the port and connects to the service's dependencies.
    async fn build(settings: Self::Settings) -> anyhow::Result<Self>;
    /// Runs until `shutdown`, then drains.
    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()>;
}

/// The queue a consuming service's `dlq` command works on.
pub struct DeadLetters<S> {
    pub queue_base: &'static str,
    pub routing_key: &'static str,
    pub amqp: fn(&S) -> AmqpSettings,
}

/// The whole `main` of a service binary. Exits non-zero on a failure.
pub async fn main<S: Service>(
    settings: fn() -> Result<S::Settings, crate::config::ConfigError>,
    dead_letters: Option<DeadLetters<S::Settings>>,
) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match (args.first().map(String::as_str), dead_letters) {
        (Some("dlq"), Some(dlq)) => run_dead_letter_tool(&args[1..], settings, dlq).await,
        _ => run::<S>(settings).await,
    };
    if let Err(e) = &result {
        tracing::error!(
            error = format!("{e:#}"),
            "{} stopped with an error",
            S::NAME
        );
        eprintln!("{}: {e:#}", S::NAME);
    }
    // Send the spans still buffered for OTLP (nothing to do without export).
    let _ = tokio::task::spawn_blocking(crate::telemetry::shutdown).await;
    if result.is_err() {
        std::process::exit(1);
    }
}

async fn run<S: Service>(
    settings: fn() -> Result<S::Settings, crate::config::ConfigError>,
) -> anyhow::Result<()> {
    crate::telemetry::init(S::NAME)?;
    // Before anything records a metric: every series gets `service` and `replica`.
    crate::metrics::install_for(S::NAME);
    let settings = settings()?;
    // A first start that fails (bad configuration, port taken) ends the
    // process; a failure after that restarts the service in place.
    let service = S::build(settings.clone()).await?;
    let shutdown = crate::shutdown::on_signal();
    supervise::<S>(service, settings, shutdown).await
}

/// Runs a built service, restarting it from `settings` after a failure
/// ([`keep_running`]); the tests' harness uses it too.
pub async fn supervise<S: Service>(
    service: S,
    settings: S::Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let first = service.run_until_stopped(shutdown.clone());
    let token = shutdown.clone();
    let restart = move || {
        let (settings, token) = (settings.clone(), token.clone());
        async move { S::build(settings).await?.run_until_stopped(token).await }.boxed()
    };
    keep_running(S::NAME, shutdown, first, restart).await
}

/// `<binary> dlq …`: inspect, replay or purge the service's parked messages
/// (`<binary> dlq --help`). Needs only RabbitMQ: no database, no HTTP server.
async fn run_dead_letter_tool<T>(
    args: &[String],
    settings: fn() -> Result<T, crate::config::ConfigError>,
    dlq: DeadLetters<T>,
) -> anyhow::Result<()> {
    let amqp = (dlq.amqp)(&settings()?);
    dead_letters::cli::run(args.to_vec(), amqp, dlq.queue_base, dlq.routing_key).await
}
