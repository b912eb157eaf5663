//! `dlq`: see `dlq --help`. Usage errors exit with 2 (clap), failures with 1.

use std::process::ExitCode;

use clap::Parser;
use dead_letters::cli::{self, Cli};
use messaging::AmqpSettings;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Cli::parse();
    let result = async {
        let settings = AmqpSettings::from_env(1, &[])?;
        cli::run(&settings, &args.queue, args.command).await
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dlq: {e:#}");
            ExitCode::FAILURE
        }
    }
}
