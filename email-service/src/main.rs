use common::{
    events::{Event, PaymentProcessed},
    messaging::{AmqpSettings, dead_letters, topology::EMAIL_QUEUE},
};
use email_service::{Application, Settings};

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
            "email-service stopped with an error"
        );
        eprintln!("email-service: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    common::telemetry::init("email-service")?;
    let settings = Settings::from_env()?;
    let app = Application::build(settings).await?;
    app.run_until_stopped(common::shutdown::on_signal()).await
}

/// `email-service dlq …`: inspect, replay or purge this service's parked messages
/// (`email-service dlq --help`). Needs only RabbitMQ: no database, no HTTP server.
async fn dlq(args: &[String]) -> anyhow::Result<()> {
    // The same RABBITMQ_URL and defaults as config.rs.
    let settings = AmqpSettings::from_env(20, &[10_000, 60_000, 300_000])?;
    dead_letters::cli::run(
        args.to_vec(),
        settings,
        EMAIL_QUEUE,
        PaymentProcessed::ROUTING_KEY,
    )
    .await
}
