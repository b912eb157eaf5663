//! One RabbitMQ connection per process, recovering by itself, watched.
//!
//! lapin's auto-recovery reconnects and replays the topology, QoS and
//! consumers declared on each channel. Two of its verified failure modes are
//! closed here (see `shared/notes/lapin-4.md` §3.3): a bounded backoff gives up
//! silently and leaves the process alive but disconnected, so the backoff is
//! unbounded; and recovery is invisible to consumers, so a watchdog polls the
//! connection state, drives `/ready`, and fails the service if the broker stays
//! unreachable longer than `max_disconnected`, for a supervisor to restart it.

use std::time::{Duration, Instant};

use anyhow::Context;
use lapin::{Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use super::AmqpSettings;
use crate::health::Flag;

/// Connects to the broker; with recovery on, lapin retries the initial
/// connection too, so this waits for a broker that is not up yet (or until
/// `shutdown`).
pub async fn connect(
    settings: &AmqpSettings,
    name: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default()
        .with_connection_name(name.into())
        .enable_auto_recover()
        .configure_backoff(|b| {
            b.with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_jitter()
                .without_max_times()
        });
    let url = with_heartbeat(&settings.url);
    tokio::select! {
        _ = shutdown.cancelled() => anyhow::bail!("shut down while connecting to RabbitMQ"),
        conn = Connection::connect(&url, properties) => {
            conn.with_context(|| format!("connecting to RabbitMQ at {}", crate::config::redact_url(&settings.url)))
        }
    }
}

/// A 10 s heartbeat detects a dead peer (half-open TCP) in about 20 s; the
/// broker's default is 60 s.
fn with_heartbeat(url: &str) -> String {
    if url.contains("heartbeat=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&heartbeat=10")
    } else {
        format!("{url}?heartbeat=10")
    }
}

/// Keeps `connected` in step with the connection and returns an error when it
/// has been down longer than `max_disconnected` (whether lapin is still
/// reconnecting or has given up: the two look alike from outside).
pub async fn watch(
    conn: std::sync::Arc<Connection>,
    connected: Flag,
    max_disconnected: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut down_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let up = conn.status().connected();
        connected.set(up);
        metrics::gauge!("amqp_connection_up").set(if up { 1.0 } else { 0.0 });
        if up {
            if let Some(since) = down_since.take() {
                tracing::info!(after = ?since.elapsed(), "RabbitMQ connection recovered");
            }
            continue;
        }
        let since = *down_since.get_or_insert_with(|| {
            tracing::warn!("RabbitMQ connection lost; recovering");
            Instant::now()
        });
        if since.elapsed() > max_disconnected {
            anyhow::bail!(
                "RabbitMQ unreachable for more than {max_disconnected:?}; exiting for a restart"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_is_added_unless_given() {
        assert_eq!(with_heartbeat("amqp://h/%2f"), "amqp://h/%2f?heartbeat=10");
        assert_eq!(
            with_heartbeat("amqp://h/%2f?x=1"),
            "amqp://h/%2f?x=1&heartbeat=10"
        );
        assert_eq!(
            with_heartbeat("amqp://h/%2f?heartbeat=5"),
            "amqp://h/%2f?heartbeat=5"
        );
    }
}
