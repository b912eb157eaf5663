//! Prometheus metrics: one recorder per process, installed on first use.
//!
//! Histograms whose name ends in `_seconds`, `db_batch_size` and
//! `consumer_ack_batch_size` get
//! explicit buckets so they are exported as real histograms (aggregatable
//! across replicas), not summaries.
//!
//! Every series carries the global label `replica` (`<hostname>-<pid>`: the
//! container id under compose, unique per process on one machine), so an
//! operator sees how work splits across replicas of one service. A service
//! binary also adds the global label `service` ([`install_for`]); in-process
//! tests run several services on one recorder and go without it. Not named
//! `instance`: Prometheus sets that label itself to the scrape address and
//! would rename ours to `exported_instance`.
//!
//! The metric names and labels are listed in README.md ("Metrics"); keep the
//! table and [`describe`] in step with the code.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Items per batched statement, up to `db::batch::MAX_BATCH`.
const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// Deliveries per ack frame, up to the largest prefetch in use.
const ACK_BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Installs the global recorder (idempotent), labelled with the replica only.
/// Services call it at build time; in-process tests get this one.
pub fn install() -> &'static PrometheusHandle {
    install_with(None)
}

/// Installs the global recorder with the global labels `service` and
/// `replica`, and sets [`service_info`]. A service binary calls it first
/// thing, before anything records a metric; a recorder already installed is
/// kept as it is.
pub fn install_for(service: &'static str) -> &'static PrometheusHandle {
    let handle = install_with(Some(service));
    service_info(service);
    handle
}

fn install_with(service: Option<&'static str>) -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let mut builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .expect("static bucket list is not empty")
            .set_buckets_for_metric(Matcher::Full("db_batch_size".into()), BATCH_SIZE_BUCKETS)
            .expect("static bucket list is not empty")
            .set_buckets_for_metric(
                Matcher::Full("consumer_ack_batch_size".into()),
                ACK_BATCH_BUCKETS,
            )
            .expect("static bucket list is not empty")
            .add_global_label("replica", replica());
        if let Some(service) = service {
            builder = builder.add_global_label("service", service);
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // A second recorder in the same process (tests) keeps the first one.
        if metrics::set_global_recorder(recorder).is_ok() {
            describe();
        }
        handle
    })
}

/// `service_info{service, version} 1`: one series per running service, so
/// `count by (service) (service_info)` is the number of replicas up.
pub fn service_info(service: &'static str) {
    metrics::gauge!("service_info", "service" => service, "version" => env!("CARGO_PKG_VERSION"))
        .set(1.0);
}

/// `service_ready 1` while every `/ready` check passes, else 0.
pub fn record_ready(ready: bool) {
    ::metrics::gauge!("service_ready").set(if ready { 1.0 } else { 0.0 });
}

/// This process's identity: `$HOSTNAME` (else the kernel's host name), a
/// dash, and the process id.
pub fn replica() -> String {
    static REPLICA: OnceLock<String> = OnceLock::new();
    REPLICA
        .get_or_init(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "unknown".to_owned());
            format!("{host}-{}", std::process::id())
        })
        .clone()
}

/// The current metrics in Prometheus text format.
pub fn render() -> String {
    install().render()
}

/// `# HELP` texts for the metrics recorded across the workspace.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

    describe_gauge!(
        "service_info",
        "1 per running service process; labels service and version"
    );
    describe_gauge!(
        "service_ready",
        "1 while every /ready check passes, else 0 (as of the last scrape)"
    );
    describe_gauge!(
        "db_pool_connections_in_use",
        "Connections of the service's PostgreSQL pool taken by a statement now"
    );
    describe_gauge!(
        "db_pool_max_connections",
        "The most connections the service's PostgreSQL pool opens (DATABASE_MAX_CONNECTIONS)"
    );
    // HTTP (runtime::http)
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by service, method, route template and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency, by service, method and route template"
    );
    // Group commit (messaging::db::batch)
    describe_histogram!("db_batch_size", "Items per batched statement, by statement");
    describe_counter!(
        "db_batch_fallbacks_total",
        "Batched statements that failed and were retried item by item, by statement"
    );
    // Consumers (messaging::consumer)
    describe_counter!(
        "messages_consumed_total",
        "Deliveries taken from a work queue (label queue)"
    );
    describe_counter!(
        "messages_processed_total",
        "Deliveries finished, by queue and outcome: acked, retried (sent to a retry queue), \
         parked (dead-lettered), requeued (handed back to the broker)"
    );
    describe_gauge!(
        "messages_in_flight",
        "Deliveries being processed now, by queue"
    );
    describe_histogram!(
        "message_processing_seconds",
        Unit::Seconds,
        "Time from delivery to ack, retry or park, by queue and outcome"
    );
    describe_histogram!(
        "consumer_ack_batch_size",
        "Deliveries settled per ack frame (one multiple ack covers a run), by queue"
    );
    describe_counter!(
        "acks_not_sent_total",
        "Acks lost with their channel; the broker redelivers, by queue"
    );
    describe_counter!(
        "consumer_restarts_total",
        "Consumer channels rebuilt after a failure, by queue"
    );
    describe_counter!(
        "duplicate_deliveries_total",
        "Deliveries recognised as already processed, by consumer"
    );
    // Outbox (messaging::outbox)
    describe_counter!(
        "outbox_published_total",
        "Outbox events published and confirmed by the broker, by app"
    );
    describe_counter!(
        "outbox_publish_failures_total",
        "Outbox events the broker did not confirm (retried), by app"
    );
    describe_histogram!(
        "outbox_publish_lag_seconds",
        Unit::Seconds,
        "Age of the oldest row of each published batch, by app"
    );
    describe_gauge!(
        "outbox_pending_events",
        "Outbox rows not yet published, by app (every replica reports the shared table)"
    );
    describe_gauge!(
        "outbox_oldest_pending_age_seconds",
        Unit::Seconds,
        "Age of the oldest unpublished outbox row (0 when none), by app"
    );
    // Connections and supervision
    describe_gauge!(
        "amqp_connection_up",
        "1 while the RabbitMQ connection is up, else 0"
    );
    describe_gauge!(
        "amqp_connection_node",
        "1 for the RabbitMQ node (host:port of RABBITMQ_URL's list) the connection is on, 0 for the others"
    );
    describe_counter!(
        "service_restarts_total",
        "In-place restarts of the service after a failure, by service"
    );
    // Business
    describe_counter!("orders_created_total", "Orders accepted by order-service");
    describe_counter!(
        "orders_settled_total",
        "Orders moved to paid or failed, by payment_status"
    );
    describe_counter!(
        "payments_total",
        "Payments stored, by status (completed, failed) and reason (none, card_declined, \
         amount_exceeds_limit)"
    );
    describe_counter!(
        "emails_total",
        "Email sends, by kind (confirmation, payment_failed, cancelled, refund) and status (sent, failed, deferred)"
    );
    describe_histogram!(
        "email_send_duration_seconds",
        Unit::Seconds,
        "SMTP send time, by status"
    );
    describe_gauge!(
        "smtp_up",
        "1 while the SMTP server answers the periodic probe, else 0"
    );
    describe_counter!(
        "gateway_rate_limited_total",
        "Requests the gateway refused with 429 (per-client rate limit)"
    );
    describe_counter!(
        "gateway_upstream_requests_total",
        "Gateway calls to order-service, by operation and outcome"
    );
    describe_histogram!(
        "gateway_upstream_request_duration_seconds",
        Unit::Seconds,
        "Gateway calls to order-service, latency by operation"
    );
}
