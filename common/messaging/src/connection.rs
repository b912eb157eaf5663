//! One RabbitMQ connection per process, kept up by its own supervisor.
//!
//! lapin's automatic recovery is off. [`connect`] opens the first
//! connection, waiting for a broker that is not up yet; the [`Supervisor`]
//! task then watches it and, when it fails (the broker closed it, the socket
//! broke, heartbeats went unanswered), opens a new one with jittered
//! backoff, for as long as it takes. Everything built on the connection
//! holds a [`Link`]: consumers wait on it for the next connection and
//! rebuild their channel, topology and consumer there; publishers open
//! their channel on whatever connection is current. So a broker restart
//! never needs the service to restart, and a connection that failed is
//! never left recovering behind the service's back.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use lapin::{Connection, ConnectionProperties, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::AmqpSettings;
use runtime::health::{Flag, StartupProgress};

/// How often a connection that is still being attempted is reported: in
/// `progress` on each tick, in the log at most every [`WARN_EVERY`].
const REPORT_EVERY: Duration = Duration::from_secs(2);
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The reconnect backoff: from [`MIN_BACKOFF`], doubling up to
/// [`MAX_BACKOFF`], each pause drawn between half and all of it, so that the
/// replicas of a service do not all knock at once. The ceiling is low
/// because a broker that is back should be in use again within seconds.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How often the supervisor looks at the connection's state, besides
/// lapin's error events.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// The connection a service's channels are opened on, as it is now. Cheap to
/// clone; every clone sees the supervisor's replacements.
#[derive(Clone)]
pub struct Link {
    current: watch::Receiver<Option<Arc<Connection>>>,
}

impl Link {
    /// A link to one connection that nobody replaces (the dead-letter tool,
    /// tests).
    pub fn fixed(conn: Arc<Connection>) -> Self {
        let (_, current) = watch::channel(Some(conn));
        Self { current }
    }

    /// The connection, if it is up now.
    pub fn current(&self) -> Option<Arc<Connection>> {
        self.current
            .borrow()
            .as_ref()
            .filter(|conn| conn.status().connected())
            .cloned()
    }

    /// Waits for a connection that is up; `None` once `stop` is cancelled,
    /// or when nothing will ever replace a failed connection.
    pub async fn wait(&self, stop: &CancellationToken) -> Option<Arc<Connection>> {
        let mut current = self.current.clone();
        loop {
            if let Some(conn) = self.current() {
                return Some(conn);
            }
            let supervised = tokio::select! {
                _ = stop.cancelled() => return None,
                changed = current.changed() => changed.is_ok(),
            };
            if !supervised {
                // A fixed link: nothing replaces its connection, so wait
                // only while it may still come up.
                let failed = self.current.borrow().as_ref().is_none_or(|conn| {
                    let status = conn.status();
                    status.closed() || status.errored()
                });
                if failed {
                    return None;
                }
                tokio::time::sleep(POLL_EVERY).await;
            }
        }
    }
}

/// Why the broker blocks this connection's publishers (a memory or disk
/// alarm), while it does: publishes wait, confirms do not come, and the
/// outbox holds the events meanwhile. Cheap to clone.
#[derive(Clone, Default)]
pub struct Blocked(Arc<Mutex<Option<String>>>);

impl Blocked {
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, reason: Option<String>) {
        metrics::gauge!("amqp_connection_blocked").set(if reason.is_some() { 1.0 } else { 0.0 });
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = reason;
    }
}

/// Keeps the connection up: see the module docs. Run it as a background
/// task ([`Supervisor::run`]).
pub struct Supervisor {
    settings: AmqpSettings,
    name: String,
    current: watch::Sender<Option<Arc<Connection>>>,
    /// Up while a connection is established (drives `/ready`).
    connected: Flag,
    blocked: Blocked,
}

/// Connects to the broker as `name` (shown in the management UI), waiting
/// for a broker that is not up yet; meanwhile it says why in `progress` and,
/// at warn level, in the log. Returns the link to the connection and the
/// supervisor that will keep it up.
pub async fn connect(
    settings: &AmqpSettings,
    name: &str,
    connected: Flag,
    blocked: Blocked,
    progress: &StartupProgress,
) -> anyhow::Result<(Link, Supervisor)> {
    let shown = runtime::config::redact_url(&settings.url);
    let started = Instant::now();
    let mut last_warned: Option<Instant> = None;
    let connecting = open_with_backoff(settings, name, None);
    tokio::pin!(connecting);
    let mut report =
        tokio::time::interval_at(tokio::time::Instant::now() + REPORT_EVERY, REPORT_EVERY);
    let conn = loop {
        tokio::select! {
            conn = &mut connecting => break conn,
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
    };
    if last_warned.is_some() {
        tracing::info!(broker = %shown, after = ?started.elapsed(), "connected to RabbitMQ");
    }
    connected.set(true);
    metrics::gauge!("amqp_connection_up").set(1.0);
    metrics::counter!("amqp_reconnects_total").increment(0);
    blocked.set(None);
    let (current, link) = watch::channel(Some(Arc::new(conn)));
    let supervisor = Supervisor {
        settings: settings.clone(),
        name: name.to_owned(),
        current,
        connected,
        blocked,
    };
    Ok((Link { current: link }, supervisor))
}

impl Supervisor {
    /// Replaces the connection each time it fails, until `stop`. The last
    /// connection stays in place for the caller to close after everything
    /// built on it has stopped.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let shown = runtime::config::redact_url(&self.settings.url);
        loop {
            let Some(conn) = self.current.borrow().clone() else {
                anyhow::bail!("the supervisor has no connection");
            };
            let reason = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                reason = self.failure(&conn) => reason,
            };
            let lost = Instant::now();
            self.connected.set(false);
            self.blocked.set(None);
            metrics::gauge!("amqp_connection_up").set(0.0);
            metrics::counter!("amqp_reconnects_total").increment(1);
            tracing::warn!(broker = %shown, %reason, "RabbitMQ connection lost; reconnecting");
            self.current.send_replace(None);
            drop(conn);
            let opened = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                opened = open_with_backoff(&self.settings, &self.name, Some(&shown)) => opened,
            };
            self.current.send_replace(Some(Arc::new(opened)));
            self.connected.set(true);
            metrics::gauge!("amqp_connection_up").set(1.0);
            tracing::info!(broker = %shown, after = ?lost.elapsed(), "RabbitMQ connection re-established");
        }
    }

    /// Resolves when `conn` has failed, with why; meanwhile keeps
    /// [`Blocked`] in step with the broker's alarms.
    async fn failure(&self, conn: &Connection) -> String {
        let mut events = conn.events_listener();
        let mut poll = tokio::time::interval(POLL_EVERY);
        loop {
            let status = conn.status();
            if !status.connected() {
                let state = if status.closed() {
                    "closed"
                } else if status.errored() {
                    "failed"
                } else {
                    "no longer connected"
                };
                return format!("the connection is {state}");
            }
            tokio::select! {
                event = events.next() => match event {
                    Some(Event::Error(error)) => return error.to_string(),
                    Some(Event::ConnectionBlocked(reason)) => {
                        tracing::warn!(%reason, "RabbitMQ blocks publishing on this connection");
                        self.blocked.set(Some(reason));
                    }
                    Some(Event::ConnectionUnblocked) => {
                        tracing::info!("RabbitMQ unblocked publishing");
                        self.blocked.set(None);
                    }
                    Some(_) => {}
                    None => return "connection dropped".to_owned(),
                },
                _ = poll.tick() => {}
            }
        }
    }
}

/// Opens a connection, retrying with the jittered backoff until it succeeds
/// (a refused login too: credentials may be provisioned after the service
/// starts). `log_as` names the broker in a warning every [`WARN_EVERY`] (the startup
/// path reports on its own).
async fn open_with_backoff(
    settings: &AmqpSettings,
    name: &str,
    log_as: Option<&str>,
) -> Connection {
    let url = with_heartbeat(&settings.url);
    let mut delay = MIN_BACKOFF;
    let mut last_warned = Instant::now();
    loop {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        match Connection::connect(&url, properties).await {
            Ok(conn) => return conn,
            Err(error) => {
                if let Some(broker) = log_as
                    && last_warned.elapsed() >= WARN_EVERY
                {
                    last_warned = Instant::now();
                    tracing::warn!(%broker, %error, "RabbitMQ not reachable yet; still trying");
                }
            }
        }
        let pause = delay.mul_f64(rand::random_range(0.5..=1.0));
        tokio::time::sleep(pause).await;
        delay = (delay * 2).min(MAX_BACKOFF);
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
