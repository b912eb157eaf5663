//! What every service binary does, so each `main.rs` is one call: read the
//! configuration, start the service, restart it in place after a failure,
//! stop on SIGTERM.

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use super::keep_running;

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

/// The whole `main` of a service binary. Exits non-zero on a failure; a
/// command line it does not know (a typo, an unknown option) prints the
/// usage and exits with 2 without starting anything, and `--help` and
/// `--version` answer and exit.
pub async fn main<S: Service>(settings: fn() -> Result<S::Settings, crate::config::ConfigError>) {
    // Only --help and --version: the configuration is the environment.
    command_line(S::NAME).get_matches();
    let result = run::<S>(settings).await;
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

/// `<binary>` runs the service (configured by the environment); anything
/// else on its command line is a usage error, never a second service.
fn command_line(name: &'static str) -> clap::Command {
    clap::Command::new(name)
        .version(env!("CARGO_PKG_VERSION"))
        .about("Runs the service. Its configuration comes from the environment (docs/configuration.md).")
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

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;

    fn parse(args: &[&str]) -> Result<clap::ArgMatches, ErrorKind> {
        command_line("order-service")
            .try_get_matches_from(std::iter::once("order-service").chain(args.iter().copied()))
            .map_err(|e| e.kind())
    }

    #[test]
    fn no_arguments_runs_the_service() {
        assert!(parse(&[]).is_ok());
    }

    #[test]
    fn help_version_and_typos_never_start_the_service() {
        assert_eq!(parse(&["--help"]).unwrap_err(), ErrorKind::DisplayHelp);
        assert_eq!(
            parse(&["--version"]).unwrap_err(),
            ErrorKind::DisplayVersion
        );
        assert_eq!(parse(&["dlq"]).unwrap_err(), ErrorKind::UnknownArgument);
        assert_eq!(
            parse(&["--port", "1"]).unwrap_err(),
            ErrorKind::UnknownArgument
        );
    }
}
