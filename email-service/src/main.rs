use email_service::{Application, Settings};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
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
