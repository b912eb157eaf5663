use common::{
    events::{Event, PaymentProcessed},
    messaging::{dead_letters, topology::ORDER_QUEUE},
};
use futures::FutureExt;
use order_service::{Application, Settings};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("dlq") => dlq(&args[1..]).await,
        _ => run().await,
    };
    if let Err(e) = result {
        tracing::error!(
            error = format!("{e:#}"),
            "order-service stopped with an error"
        );
        eprintln!("order-service: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    common::telemetry::init("order-service")?;
    let settings = Settings::from_env()?;
    // A first start that fails (bad configuration, port taken) ends the
    // process; a failure after that restarts the service in place.
    let app = Application::build(settings.clone()).await?;
    let shutdown = common::shutdown::on_signal();
    let first = app.run_until_stopped(shutdown.clone());
    let token = shutdown.clone();
    let restart = move || {
        let (settings, token) = (settings.clone(), token.clone());
        async move {
            Application::build(settings)
                .await?
                .run_until_stopped(token)
                .await
        }
        .boxed()
    };
    common::service::keep_running("order-service", shutdown, first, restart).await
}

/// `order-service dlq …`: inspect, replay or purge this service's parked messages
/// (`order-service dlq --help`). Needs only RabbitMQ: no database, no HTTP server.
async fn dlq(args: &[String]) -> anyhow::Result<()> {
    // The service's own broker settings (RABBITMQ_URL and its defaults).
    let settings = Settings::from_env()?.amqp;
    dead_letters::cli::run(
        args.to_vec(),
        settings,
        ORDER_QUEUE,
        PaymentProcessed::ROUTING_KEY,
    )
    .await
}
