//! One RabbitMQ connection per process, recovering by itself, watched.
//!
//! lapin's auto-recovery reconnects and replays the topology, QoS and
//! consumers declared on each channel. Two of its verified failure modes are
//! closed here: a bounded backoff gives up silently and leaves the process
//! alive but disconnected, so the backoff is unbounded; and recovery is
//! invisible to consumers, so a watchdog polls the connection state, drives
//! `/ready`, and fails the service if the broker stays unreachable longer
//! than `max_disconnected`, so the service restarts itself in process with a
//! fresh connection.

use std::time::{Duration, Instant};

use anyhow::Context;
use lapin::{Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use super::AmqpSettings;
use runtime::health::{Flag, StartupProgress};

/// How often a connection that is still being attempted is reported: in
/// `progress` on each tick, in the log at most every [`WARN_EVERY`].
const REPORT_EVERY: Duration = Duration::from_secs(2);
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Connects to the broker. With recovery on, lapin retries the initial
/// connection too, silently and for as long as it takes, so this waits for a
/// broker that is not up yet; meanwhile it says why in `progress` and, at
/// warn level, in the log.
pub async fn connect(
    settings: &AmqpSettings,
    name: &str,
    progress: &StartupProgress,
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
    let shown = runtime::config::redact_url(&settings.url);
    let started = Instant::now();
    let mut last_warned: Option<Instant> = None;
    let connecting = Connection::connect(&url, properties);
    tokio::pin!(connecting);
    let mut report =
        tokio::time::interval_at(tokio::time::Instant::now() + REPORT_EVERY, REPORT_EVERY);
    loop {
        tokio::select! {
            conn = &mut connecting => {
                if last_warned.is_some() {
                    tracing::info!(broker = %shown, after = ?started.elapsed(), "connected to RabbitMQ");
                }
                return conn.with_context(|| format!("connecting to RabbitMQ at {shown}"));
            }
            _ = report.tick() => {
                let reason = match probe(&settings.url).await {
                    Ok(()) => "the port answers but the AMQP handshake has not succeeded \
                        (user, password, vhost or TLS?)".to_owned(),
                    Err(reason) => reason,
                };
                let waited = started.elapsed().as_secs();
                progress.set(format!("waiting for RabbitMQ at {shown} for {waited} s: {reason}"));
                if last_warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    last_warned = Some(Instant::now());
                    tracing::warn!(broker = %shown, waited_s = waited, %reason, "RabbitMQ not reachable yet; still trying");
                }
            }
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

/// How long the broker may be reachable again while lapin still has not
/// recovered before the connection is declared wedged.
const WEDGED_AFTER: Duration = Duration::from_secs(10);

/// Keeps `connected` in step with the connection and returns an error when it
/// has been down longer than `max_disconnected`, or when the broker has been
/// reachable again for [`WEDGED_AFTER`] while lapin still has not reconnected.
/// The second case is lapin's recovery wedging in `Reconnecting` after a broker
/// restart (seen in about one outage in eight here, and in most real
/// `stop_app`/`start_app` restarts); failing fast lets the service restart
/// itself with a fresh connection instead of waiting out the full limit.
pub async fn watch(
    conn: std::sync::Arc<Connection>,
    broker_url: String,
    connected: Flag,
    max_disconnected: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut down_since: Option<Instant> = None;
    let mut reachable_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
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
            reachable_since = None;
            continue;
        }
        let since = *down_since.get_or_insert_with(|| {
            tracing::warn!("RabbitMQ connection lost; recovering");
            Instant::now()
        });
        if since.elapsed() > max_disconnected {
            anyhow::bail!("RabbitMQ unreachable for more than {max_disconnected:?}; restarting");
        }
        if broker_accepts_connections(&broker_url).await {
            let reachable = *reachable_since.get_or_insert_with(Instant::now);
            if reachable.elapsed() > WEDGED_AFTER {
                anyhow::bail!(
                    "RabbitMQ is reachable again but the connection has not recovered; restarting"
                );
            }
        } else {
            reachable_since = None;
        }
    }
}

/// Closes `conn` as soon as lapin's recovery brings it back, in a task of its
/// own. For a connection its service has given up on while it was down
/// (`Connection::close` refuses a connection that is not connected): its
/// recovery would otherwise go on, and once the broker is back it would
/// re-subscribe the old consumers. Their deliveries would sit unread and
/// unacked for as long as the process lives; closed, the broker requeues them
/// for the service's new connection. The task ends when the connection is
/// closed or lapin gives it up; a connection whose recovery wedged for good
/// keeps its task polling (every 200 ms, nothing else) as it keeps lapin's
/// own thread retrying.
pub fn close_when_recovered(conn: std::sync::Arc<Connection>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            let status = conn.status();
            if status.closed() || status.errored() {
                return;
            }
            if status.connected() {
                let close = conn.close(200, "replaced by a new connection".into());
                if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(5), close).await {
                    tracing::info!("closed a replaced RabbitMQ connection once it recovered");
                    return;
                }
            }
        }
    });
}

/// Whether the broker's host and port accept a TCP connection (within 1 s).
async fn broker_accepts_connections(url: &str) -> bool {
    probe(url).await.is_ok()
}

/// `Ok` if the broker's host and port accept a TCP connection within 1 s,
/// else why not.
async fn probe(url: &str) -> Result<(), String> {
    let Some(address) = host_and_port(url) else {
        return Err("the URL names no host".to_owned());
    };
    let connect = tokio::net::TcpStream::connect(&address);
    match tokio::time::timeout(Duration::from_secs(1), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(format!("{address}: {error}")),
        Err(_) => Err(format!("{address}: no answer within 1 s")),
    }
}

/// `host:port` of an `amqp://` or `amqps://` URL.
fn host_and_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let default_port = if scheme == "amqps" { 5671 } else { 5672 };
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !host_port.ends_with(']');
    Some(if has_port {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_address_is_read_from_the_url() {
        assert_eq!(
            host_and_port("amqp://guest:guest@127.0.0.1:5672/%2f").as_deref(),
            Some("127.0.0.1:5672")
        );
        assert_eq!(
            host_and_port("amqp://rabbitmq/%2f").as_deref(),
            Some("rabbitmq:5672")
        );
        assert_eq!(
            host_and_port("amqps://u:p@mq.example.com?heartbeat=5").as_deref(),
            Some("mq.example.com:5671")
        );
    }

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
