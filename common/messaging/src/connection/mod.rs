//! One RabbitMQ connection per process, kept up by its own supervisor.
//!
//! lapin's automatic recovery is off. [`connect`] opens the first
//! connection, to a node of `RABBITMQ_URL`'s list drawn at random, waiting
//! for a broker that is not up yet; the [`Supervisor`] task then watches it
//! and, when it fails (the broker closed it, the node died, heartbeats went
//! unanswered), opens a new one, trying the other nodes first, with
//! jittered backoff, for as long as it takes. Everything built on the connection
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
use lapin::{Connection, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    AmqpSettings,
    address::{self, BrokerAddress},
};
use runtime::health::{Flag, StartupProgress};

mod open;
use open::{Opened, WARN_EVERY};

/// How often a connection that is still being attempted is reported: in
/// `progress` on each tick, in the log at most every [`WARN_EVERY`].
const REPORT_EVERY: Duration = Duration::from_secs(2);

/// How often the supervisor looks at the connection's state, besides
/// lapin's error events.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// The connection a service's channels are opened on, as it is now. Cheap to
/// clone; every clone sees the supervisor's replacements.
#[derive(Clone)]
pub struct Link {
    current: watch::Receiver<Option<Current>>,
}

/// A connection and the node (`host:port`) it is on.
#[derive(Clone)]
struct Current {
    conn: Arc<Connection>,
    node: Arc<str>,
}

impl Link {
    /// A link to one connection that nobody replaces (the dead-letter tool,
    /// tests).
    pub fn fixed(conn: Arc<Connection>) -> Self {
        let (_, current) = watch::channel(Some(Current {
            conn,
            node: "fixed".into(),
        }));
        Self { current }
    }

    /// The connection, if it is up now.
    pub fn current(&self) -> Option<Arc<Connection>> {
        self.current
            .borrow()
            .as_ref()
            .filter(|current| current.conn.status().connected())
            .map(|current| current.conn.clone())
    }

    /// The node (`host:port`) of the connection, if it is up now.
    pub fn node(&self) -> Option<String> {
        self.current
            .borrow()
            .as_ref()
            .filter(|current| current.conn.status().connected())
            .map(|current| current.node.to_string())
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
                let failed = self.current.borrow().as_ref().is_none_or(|current| {
                    let status = current.conn.status();
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
    addresses: Vec<BrokerAddress>,
    name: String,
    current: watch::Sender<Option<Current>>,
    /// The index in `addresses` of the node the connection is on.
    index: usize,
    /// Up while a connection is established (drives `/ready`).
    connected: Flag,
    blocked: Blocked,
}

/// Connects to the broker as `name` (shown in the management UI), to a
/// node of the list drawn at random, waiting for a broker that is not up
/// yet; meanwhile it says why in `progress` and, at warn level, in the log.
/// Returns the link to the connection and the supervisor that will keep it
/// up. Fails only on a list that cannot be read.
pub async fn connect(
    settings: &AmqpSettings,
    name: &str,
    connected: Flag,
    blocked: Blocked,
    progress: &StartupProgress,
) -> anyhow::Result<(Link, Supervisor)> {
    let addresses =
        address::parse(&settings.url).map_err(|error| anyhow::anyhow!("RABBITMQ_URL: {error}"))?;
    let shown = address::redact_list(&settings.url);
    let started = Instant::now();
    let mut last_warned: Option<Instant> = None;
    let Opened { conn, index } = {
        let connecting = open::open(&addresses, open::random_start(&addresses), name, false);
        tokio::pin!(connecting);
        let mut report =
            tokio::time::interval_at(tokio::time::Instant::now() + REPORT_EVERY, REPORT_EVERY);
        loop {
            tokio::select! {
                opened = &mut connecting => break opened,
                _ = report.tick() => {
                    let reason = open::probe_all(&addresses).await;
                    let waited = started.elapsed().as_secs();
                    progress.set(format!("waiting for RabbitMQ at {shown} for {waited} s: {reason}"));
                    if last_warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                        last_warned = Some(Instant::now());
                        tracing::warn!(broker = %shown, waited_s = waited, %reason, "RabbitMQ not reachable yet; still trying");
                    }
                }
            }
        }
    };
    let node = addresses[index].node().to_owned();
    tracing::info!(%node, after = ?started.elapsed(), "connected to RabbitMQ");
    connected.set(true);
    metrics::gauge!("amqp_connection_up").set(1.0);
    metrics::counter!("amqp_reconnects_total").increment(0);
    show_node(&addresses, index);
    blocked.set(None);
    let (current, link) = watch::channel(Some(Current {
        conn: Arc::new(conn),
        node: node.into(),
    }));
    let supervisor = Supervisor {
        name: name.to_owned(),
        current,
        index,
        addresses,
        connected,
        blocked,
    };
    Ok((Link { current: link }, supervisor))
}

/// `amqp_connection_node{node}`: 1 for the node the connection is on, 0 for
/// the list's other nodes.
fn show_node(addresses: &[BrokerAddress], index: usize) {
    for (i, address) in addresses.iter().enumerate() {
        let on = if i == index { 1.0 } else { 0.0 };
        metrics::gauge!("amqp_connection_node", "node" => address.node().to_owned()).set(on);
    }
}

impl Supervisor {
    /// Replaces the connection each time it fails, until `stop`. The last
    /// connection stays in place for the caller to close after everything
    /// built on it has stopped.
    pub async fn run(mut self, stop: CancellationToken) -> anyhow::Result<()> {
        loop {
            let Some(Current { conn, node }) = self.current.borrow().clone() else {
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
            metrics::gauge!("amqp_connection_node", "node" => node.to_string()).set(0.0);
            metrics::counter!("amqp_reconnects_total").increment(1);
            tracing::warn!(%node, %reason, "RabbitMQ connection lost; reconnecting");
            self.current.send_replace(None);
            drop(conn);
            // The other nodes first: the one just lost is likely still down.
            let first = (self.index + 1) % self.addresses.len();
            let opened = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                opened = open::open(&self.addresses, first, &self.name, true) => opened,
            };
            self.index = opened.index;
            let node = self.addresses[opened.index].node();
            self.current.send_replace(Some(Current {
                conn: Arc::new(opened.conn),
                node: node.into(),
            }));
            self.connected.set(true);
            metrics::gauge!("amqp_connection_up").set(1.0);
            show_node(&self.addresses, opened.index);
            tracing::info!(%node, after = ?lost.elapsed(), "RabbitMQ connection re-established");
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
