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

/// The whole `main` of a service binary. Exits non-zero on a failure; a
/// command line it does not know (a typo, an unknown option) prints the
/// usage and exits with 2 without starting anything, and `--help` and
/// `--version` answer and exit.
pub async fn main<S: Service>(
    settings: fn() -> Result<S::Settings, crate::config::ConfigError>,
    dead_letters: Option<DeadLetters<S::Settings>>,
) {
    let matches = command_line(S::NAME, dead_letters.is_some()).get_matches();
    let result = match (matches.subcommand(), dead_letters) {
        (Some(("dlq", dlq_args)), Some(dlq)) => {
            let args: Vec<String> = dlq_args
                .get_many::<String>("args")
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            run_dead_letter_tool(&args, settings, dlq).await
        }
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

/// `<binary>` runs the service (configured by the environment); a consuming
/// service also has `<binary> dlq …`, whose own arguments its tool reads.
fn command_line(name: &'static str, with_dead_letters: bool) -> clap::Command {
    let service = clap::Command::new(name)
        .version(env!("CARGO_PKG_VERSION"))
        .about("Runs the service. Its configuration comes from the environment (docs/configuration.md).");
    if !with_dead_letters {
        return service;
    }
    service.subcommand(
        clap::Command::new("dlq")
            .about("Inspect, replay or purge this service's parked messages (`dlq --help`)")
            .disable_help_flag(true)
            .arg(
                clap::Arg::new("args")
                    .num_args(0..)
                    .trailing_var_arg(true)
                    .allow_hyphen_values(true),
            ),
    )
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

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;

    fn parse(args: &[&str]) -> Result<clap::ArgMatches, ErrorKind> {
        command_line("order-service", true)
            .try_get_matches_from(std::iter::once("order-service").chain(args.iter().copied()))
            .map_err(|e| e.kind())
    }

    #[test]
    fn no_arguments_runs_the_service() {
        assert!(parse(&[]).unwrap().subcommand().is_none());
    }

    #[test]
    fn help_version_and_typos_never_start_the_service() {
        assert_eq!(parse(&["--help"]).unwrap_err(), ErrorKind::DisplayHelp);
        assert_eq!(
            parse(&["--version"]).unwrap_err(),
            ErrorKind::DisplayVersion
        );
        assert_eq!(parse(&["dql"]).unwrap_err(), ErrorKind::InvalidSubcommand);
        assert_eq!(
            parse(&["--port", "1"]).unwrap_err(),
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn the_dead_letter_tool_gets_its_own_arguments() {
        let matches = parse(&["dlq", "show", "--json", "abc"]).unwrap();
        let (name, dlq) = matches.subcommand().unwrap();
        assert_eq!(name, "dlq");
        let args: Vec<&String> = dlq.get_many::<String>("args").unwrap().collect();
        assert_eq!(args, ["show", "--json", "abc"]);
        assert!(parse(&["dlq", "--help"]).is_ok(), "the tool's own help");
    }

    #[test]
    fn a_service_without_a_dead_letter_queue_has_no_dlq_command() {
        let parsed = command_line("gateway", false)
            .try_get_matches_from(["gateway", "dlq", "list"])
            .map_err(|e| e.kind());
        assert!(parsed.is_err());
    }
}
