//! The `dlq` command line: one work queue's dead-letter queue, from a shell.

use std::{io::Write, sync::Arc, time::Duration};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand, builder::PossibleValuesParser};
use contract::names::{WORK_QUEUES, routing_key_of};
use lapin::{Connection, ConnectionProperties};
use messaging::{
    AmqpSettings, address,
    topology::{QueueSpec, Topology},
};
use serde_json::Value;

use crate::render::{detail_json, detail_text, messages, table};

/// Default of `list --limit`.
pub const DEFAULT_LIST_LIMIT: usize = 50;

/// Inspect, replay and purge the messages a service parked in its work
/// queue's dead-letter queue (`<queue>.dlq`).
#[derive(Debug, Parser)]
#[command(
    name = "dlq",
    version,
    after_help = "It connects with RABBITMQ_URL (default amqp://guest:guest@127.0.0.1:5672/%2f; \
                  a comma-separated list of a cluster's nodes is tried in order).\n\
                  replay and purge need a message id or --all: they never apply to everything by default."
)]
pub struct Cli {
    /// The work queue whose parked messages to work on.
    #[arg(long, short, value_parser = PossibleValuesParser::new(WORK_QUEUES))]
    pub queue: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// List parked messages, oldest first. Nothing is removed.
    List {
        /// At most this many messages.
        #[arg(long, default_value_t = DEFAULT_LIST_LIMIT, value_parser = positive)]
        limit: usize,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the properties, headers and full body of the parked message(s)
    /// with this message_id (the event id).
    Show {
        message_id: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Publish the message with this id (every copy), or all of them, back to
    /// the work queue with x-retry-count 0. Each leaves the dead-letter queue
    /// only after the broker has confirmed its republish.
    Replay {
        #[command(flatten)]
        target: Target,
        /// At most this many messages.
        #[arg(long, value_parser = positive)]
        limit: Option<usize>,
    },
    /// Delete the message with this id (every copy), or all of them, for good.
    Purge {
        #[command(flatten)]
        target: Target,
    },
}

/// Which parked messages a replay or purge applies to: one id or `--all`,
/// never both, never neither.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// The message_id (event id) of the parked message.
    message_id: Option<String>,
    /// Every parked message.
    #[arg(long)]
    all: bool,
}

impl Target {
    pub fn one(message_id: impl Into<String>) -> Self {
        Self {
            message_id: Some(message_id.into()),
            all: false,
        }
    }

    pub fn all() -> Self {
        Self {
            message_id: None,
            all: true,
        }
    }

    /// The id to match, or `None` for every message.
    fn filter(&self) -> Option<&str> {
        self.message_id.as_deref()
    }
}

fn positive(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("must be a positive number, got {value:?}")),
    }
}

/// Runs `command` against the dead-letter queue of work queue `queue` (its
/// name without the settings' prefix) and prints the result to stdout.
pub async fn run(settings: &AmqpSettings, queue: &str, command: Command) -> anyhow::Result<()> {
    let output = execute(settings, queue, command).await?;
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
    settings: &AmqpSettings,
    queue: &str,
    command: Command,
) -> anyhow::Result<String> {
    let routing_key =
        routing_key_of(queue).with_context(|| format!("{queue} is not a work queue"))?;
    let queue = Topology::new(settings).queue(queue, routing_key);
    let conn = Arc::new(connect(settings).await?);
    let result = execute_on(&conn, settings, &queue, command).await;
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
    queue: &QueueSpec,
    command: Command,
) -> anyhow::Result<String> {
    let dlq = &queue.dead_letter_queue;
    match command {
        Command::List { limit, json } => {
            let total = crate::count(conn, queue).await?;
            let parked = crate::list(conn, queue, limit).await?;
            if json {
                Ok(format!("{}\n", serde_json::to_string_pretty(&parked)?))
            } else {
                Ok(table(dlq, total, &parked))
            }
        }
        Command::Show { message_id, json } => {
            let found = crate::show(conn, queue, &message_id).await?;
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
            let replayed = crate::replay(
                conn,
                settings,
                queue,
                target.filter(),
                limit.unwrap_or(usize::MAX),
            )
            .await?;
            if replayed == 0
                && let Some(id) = target.filter()
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
            let purged = crate::purge(conn, queue, target.filter()).await?;
            if purged == 0
                && let Some(id) = target.filter()
            {
                bail!("no parked message with message_id {id} in {dlq}");
            }
            Ok(format!("Purged {} from {dlq}.\n", messages(purged)))
        }
    }
}

/// A plain connection that fails fast: an operator tool should say the
/// broker is unreachable, not retry for minutes like a service. With a list
/// of nodes, each is tried once, in order.
async fn connect(settings: &AmqpSettings) -> anyhow::Result<Connection> {
    let addresses = address::parse(&settings.url).map_err(|e| anyhow!("RABBITMQ_URL: {e}"))?;
    let mut failures = Vec::new();
    for address in &addresses {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("dlq (pid {})", std::process::id()).into());
        let connect = Connection::connect(address.url(), properties);
        match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(error)) => failures.push(format!("{}: {error}", address.node())),
            Err(_) => failures.push(format!("{}: timed out", address.node())),
        }
    }
    bail!(
        "could not connect to RabbitMQ at {}: {}",
        address::redact_list(&settings.url),
        failures.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;

    fn parse(words: &str) -> Result<Command, ErrorKind> {
        let words = ["dlq", "--queue", "payment_service_queue"]
            .into_iter()
            .chain(words.split_whitespace());
        Cli::try_parse_from(words)
            .map(|cli| cli.command)
            .map_err(|e| e.kind())
    }

    #[test]
    fn list_takes_a_positive_limit_and_json() {
        let list = |limit, json| Ok(Command::List { limit, json });
        assert_eq!(parse("list"), list(DEFAULT_LIST_LIMIT, false));
        assert_eq!(parse("list --limit 5 --json"), list(5, true));
        assert_eq!(parse("list --limit=7"), list(7, false));
        assert_eq!(parse("list --limit 0"), Err(ErrorKind::ValueValidation));
        assert!(parse("list --limit").is_err());
        assert_eq!(parse("list extra"), Err(ErrorKind::UnknownArgument));
    }

    #[test]
    fn replay_and_purge_need_an_id_or_all_never_both() {
        assert_eq!(parse("purge"), Err(ErrorKind::MissingRequiredArgument));
        assert_eq!(parse("purge m-1 --all"), Err(ErrorKind::ArgumentConflict));
        assert_eq!(
            parse("purge m-1"),
            Ok(Command::Purge {
                target: Target::one("m-1")
            })
        );
        assert_eq!(
            parse("replay --all --limit 2"),
            Ok(Command::Replay {
                target: Target::all(),
                limit: Some(2)
            })
        );
        assert!(parse("show").is_err());
    }

    #[test]
    fn the_queue_is_one_of_the_work_queues() {
        let parsed = Cli::try_parse_from(["dlq", "--queue", "orders", "list"]);
        assert_eq!(parsed.unwrap_err().kind(), ErrorKind::InvalidValue);
        assert!(Cli::try_parse_from(["dlq", "list"]).is_err());
    }
}
