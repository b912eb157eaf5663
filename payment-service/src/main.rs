use payment_service::{Application, Settings};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
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
