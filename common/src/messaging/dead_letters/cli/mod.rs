//! `<binary> dlq …`: the dead-letter queue of one service from the command line.

mod args;
mod render;

use std::{io::Write, sync::Arc, time::Duration};

use anyhow::{Context, anyhow, bail};
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;

pub use args::{Command, DEFAULT_LIST_LIMIT, Target, parse, usage};
pub use render::table;

use args::short_usage;
use render::{detail_json, detail_text, messages};

use crate::messaging::{AmqpSettings, topology::Topology};

/// Runs `<binary> dlq <args…>` (`args` are the words after `dlq`) against
/// the dead-letter queue of work queue `queue_base` and prints the result
/// to stdout. Usage errors and failures are returned.
pub async fn run(
    args: impl IntoIterator<Item = String>,
    settings: AmqpSettings,
    queue_base: &str,
    routing_key: &'static str,
) -> anyhow::Result<()> {
    let output = execute(args, settings, queue_base, routing_key).await?;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // `… | head` closed the pipe: not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow!(e).context("writing to stdout"))
        }
        _ => Ok(()),
    }
}

/// [`run`], returning what it would print.
pub async fn execute(
    args: impl IntoIterator<Item = String>,
    settings: AmqpSettings,
    queue_base: &str,
    routing_key: &'static str,
) -> anyhow::Result<String> {
    let program = program_name(queue_base);
    let queue = Topology::new(&settings).queue(queue_base, routing_key);
    let args: Vec<String> = args.into_iter().collect();
    let command = match parse(&args) {
        Ok(command) => command,
        Err(message) => bail!(
            "{message}\n\n{}\nRun `{program} dlq --help` for details.",
            short_usage(&program)
        ),
    };
    if command == Command::Help {
        return Ok(usage(&program, &queue.name, &queue.dead_letter_queue));
    }
    let conn = Arc::new(connect(&settings, &program).await?);
    let result = execute_on(&conn, &settings, &queue, command).await;
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        conn.close(200, "dlq command done".into()),
    )
    .await;
    result
}

async fn execute_on(
    conn: &Arc<Connection>,
    settings: &AmqpSettings,
    queue: &crate::messaging::topology::QueueSpec,
    command: Command,
) -> anyhow::Result<String> {
    let dlq = &queue.dead_letter_queue;
    match command {
        Command::Help => unreachable!("answered without connecting"),
        Command::List { limit, json } => {
            let total = super::count(conn, queue).await?;
            let parked = super::list(conn, queue, limit).await?;
            if json {
                Ok(format!("{}\n", serde_json::to_string_pretty(&parked)?))
            } else {
                Ok(table(dlq, total, &parked))
            }
        }
        Command::Show { message_id, json } => {
            let found = super::show(conn, queue, &message_id).await?;
            if found.is_empty() {
                bail!("no parked message with message_id {message_id} in {dlq}");
            }
            if json {
                let all: Vec<Value> = found.iter().map(detail_json).collect();
                Ok(format!("{}\n", serde_json::to_string_pretty(&all)?))
            } else {
                Ok(found
                    .iter()
                    .enumerate()
                    .map(|(i, d)| detail_text(d, i + 1, found.len(), dlq))
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
        }
        Command::Replay { target, limit } => {
            let replayed = super::replay(conn, settings, queue, target.filter(), limit).await?;
            if replayed == 0
                && let Target::One(id) = &target
            {
                bail!("no parked message with message_id {id} in {dlq}");
            }
            Ok(format!(
                "Replayed {} from {dlq} to {} (retry count reset to 0).\n",
                messages(replayed),
                queue.name
            ))
        }
        Command::Purge { target } => {
            let purged = super::purge(conn, queue, target.filter()).await?;
            if purged == 0
                && let Target::One(id) = &target
            {
                bail!("no parked message with message_id {id} in {dlq}");
            }
            Ok(format!("Purged {} from {dlq}.\n", messages(purged)))
        }
    }
}

/// The binary's name (`payment-service`), else derived from the queue name.
fn program_name(queue_base: &str) -> String {
    std::env::args_os()
        .next()
        .and_then(|arg0| {
            std::path::Path::new(&arg0)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .filter(|name| name.ends_with("-service"))
        .unwrap_or_else(|| {
            queue_base
                .trim_end_matches("_queue")
                .replace('_', "-")
                .to_string()
        })
}

/// A plain connection that fails fast: an operator tool should say the
/// broker is unreachable, not retry for minutes like a service.
async fn connect(settings: &AmqpSettings, program: &str) -> anyhow::Result<Connection> {
    let url = crate::config::redact_url(&settings.url);
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("{program} dlq (pid {})", std::process::id()).into());
    tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(&settings.url, properties),
    )
    .await
    .map_err(|_| anyhow!("timed out connecting to RabbitMQ at {url}"))?
    .with_context(|| format!("connecting to RabbitMQ at {url}"))
}
