use common::{
    events::{Event, OrderCreated},
    messaging::{dead_letters, topology::PAYMENT_QUEUE},
};
use futures::FutureExt;
use payment_service::{Application, Settings};

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
            "payment-service stopped with an error"
        );
        eprintln!("payment-service: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    common::telemetry::init("payment-service")?;
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
    common::service::keep_running("payment-service", shutdown, first, restart).await
}

/// `payment-service dlq …`: inspect, replay or purge this service's parked messages
/// (`payment-service dlq --help`). Needs only RabbitMQ: no database, no HTTP server.
async fn dlq(args: &[String]) -> anyhow::Result<()> {
    // The service's own broker settings (RABBITMQ_URL and its defaults).
    let settings = Settings::from_env()?.amqp;
    dead_letters::cli::run(
        args.to_vec(),
        settings,
        PAYMENT_QUEUE,
        OrderCreated::ROUTING_KEY,
    )
    .await
}
