use gateway::{config::Settings, startup::Application};

#[tokio::main]
async fn main() {
    if let Err(e) = common::telemetry::init("gateway") {
        eprintln!("gateway: {e}");
        std::process::exit(1);
    }
    if let Err(e) = run().await {
        tracing::error!(error = format!("{e:#}"), "gateway stopped with an error");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let app = Application::build(settings).await?;
    app.run_until_stopped(common::shutdown::on_signal()).await
}
