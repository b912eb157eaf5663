//! `order-service` runs the service; `order-service stock …` is an operator
//! command on its database instead (see `order-service --help`).

use std::process::ExitCode;

use clap::Parser;
use order_service::{
    Application, Settings,
    stock_command::{self, Cli, Command},
};

#[tokio::main]
async fn main() -> ExitCode {
    // Help, version and usage errors (exit 2) are answered here, so the
    // service's own parse below only ever sees an empty command line.
    match Cli::parse().command {
        None => {
            runtime::service::main::<Application>(Settings::from_env).await;
            ExitCode::SUCCESS
        }
        Some(Command::Stock(command)) => stock_command::main(command).await,
    }
}
