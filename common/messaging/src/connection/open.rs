//! Opening a connection to one of the broker's nodes: round the list from
//! a given node, each attempt bounded, with a jittered backoff between
//! rounds.

use std::time::{Duration, Instant};

use lapin::{Connection, ConnectionProperties};

use crate::address::BrokerAddress;

/// The reconnect backoff: from [`MIN_BACKOFF`], doubling up to
/// [`MAX_BACKOFF`], each pause drawn between half and all of it, so that the
/// replicas of a service do not all knock at once. The ceiling is low
/// because a broker that is back should be in use again within seconds.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One attempt's bound: a node whose host is gone answers no TCP handshake,
/// and the next node should not wait for the system's own timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a node that keeps failing is named in the log.
pub(super) const WARN_EVERY: Duration = Duration::from_secs(10);

/// A connection and the index of the node it is on.
pub(super) struct Opened {
    pub conn: Connection,
    pub index: usize,
}

/// Opens a connection, trying the nodes in turn from `first` until one
/// takes it; after each full round it backs off. A refused login is retried
/// too: credentials may be provisioned after the service starts. `warn`
/// says whether failures are logged (the startup path reports on its own).
pub(super) async fn open(
    addresses: &[BrokerAddress],
    first: usize,
    name: &str,
    warn: bool,
) -> Opened {
    let mut delay = MIN_BACKOFF;
    let mut last_warned = Instant::now();
    loop {
        for step in 0..addresses.len() {
            let index = (first + step) % addresses.len();
            let address = &addresses[index];
            match attempt(address, name).await {
                Ok(conn) => return Opened { conn, index },
                Err(error) => {
                    if warn && last_warned.elapsed() >= WARN_EVERY {
                        last_warned = Instant::now();
                        tracing::warn!(node = address.node(), %error, "RabbitMQ node not reachable; still trying");
                    }
                }
            }
        }
        let pause = delay.mul_f64(rand::random_range(0.5..=1.0));
        tokio::time::sleep(pause).await;
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}

async fn attempt(address: &BrokerAddress, name: &str) -> Result<Connection, String> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let url = with_heartbeat(address.url());
    match tokio::time::timeout(ATTEMPT_TIMEOUT, Connection::connect(&url, properties)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no connection within {ATTEMPT_TIMEOUT:?}")),
    }
}

/// Where a start node is drawn at random, so that the replicas of a
/// service spread across the nodes.
pub(super) fn random_start(addresses: &[BrokerAddress]) -> usize {
    rand::random_range(0..addresses.len().max(1))
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

/// Why each node does not take a connection, for a starting service's
/// `/ready` and log: whether its port answers a TCP connection within 1 s.
pub(super) async fn probe_all(addresses: &[BrokerAddress]) -> String {
    let reasons = futures::future::join_all(addresses.iter().map(|address| async move {
        let node = address.node();
        let connect = tokio::net::TcpStream::connect(node);
        match tokio::time::timeout(Duration::from_secs(1), connect).await {
            Ok(Ok(_)) => format!(
                "{node}: the port answers but the AMQP handshake has not succeeded \
                 (user, password, vhost or TLS?)"
            ),
            Ok(Err(error)) => format!("{node}: {error}"),
            Err(_) => format!("{node}: no answer within 1 s"),
        }
    }))
    .await;
    reasons.join("; ")
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

    #[tokio::test]
    async fn the_first_node_that_takes_a_connection_is_used() {
        // Nodes 1 and 2 refuse (nothing listens on port 1 or 2); node 3 is
        // the test broker. Whichever node the round starts from, it ends on 3.
        let broker = crate::address::parse(&test_url()).unwrap().remove(0);
        let list = crate::address::parse(&format!(
            "amqp://guest:guest@127.0.0.1:1/%2f,amqp://127.0.0.1:2,amqp://{}",
            broker.node()
        ))
        .unwrap();
        for first in 0..3 {
            let opened = open(&list, first, "open-test", false).await;
            assert_eq!(opened.index, 2);
            opened.conn.close(200, "done".into()).await.unwrap();
        }
        let reasons = probe_all(&list[..2]).await;
        assert!(reasons.contains("127.0.0.1:1: ") && reasons.contains("127.0.0.1:2: "));
    }

    fn test_url() -> String {
        std::env::var("TEST_RABBITMQ_URL")
            .unwrap_or_else(|_| crate::AmqpSettings::DEFAULT_URL.into())
    }
}
