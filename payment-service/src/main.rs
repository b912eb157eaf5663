use common::{
    events::{Event, OrderCreated},
    messaging::{AmqpSettings, dead_letters, topology::PAYMENT_QUEUE},
};
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
    let app = Application::build(settings).await?;
    app.run_until_stopped(common::shutdown::on_signal()).await
}

/// `payment-service dlq …`: inspect, replay or purge this service's parked messages
/// (`payment-service dlq --help`). Needs only RabbitMQ: no database, no HTTP server.
async fn dlq(args: &[String]) -> anyhow::Result<()> {
    // The same RABBITMQ_URL and defaults as config.rs.
    let settings = AmqpSettings::from_env(100, &[1_000, 5_000, 30_000])?;
    dead_letters::cli::run(
        args.to_vec(),
        settings,
        PAYMENT_QUEUE,
        OrderCreated::ROUTING_KEY,
    )
    .await
}
