use order_service::{Application, Settings};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
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
    let app = Application::build(settings).await?;
    app.run_until_stopped(common::shutdown::on_signal()).await
}
