//! order-service's outbox relay killed between the broker's confirm and
//! marking the row published (faults D5, failure window W3 in `docs/guarantees.md`).

use std::time::Duration;

use contract::{
    events::{Event, OrderCreated},
    names::PAYMENT_QUEUE,
};
use lapin::{Connection, ConnectionProperties};
use messaging::{AmqpSettings, topology::Topology};
use serde_json::json;
use sqlx::PgPool;
use test_support::{self, ServiceProcess, TestVhost, eventually};

const BINARY: &str = env!("CARGO_BIN_EXE_order-service");

fn start(
    port: u16,
    database_url: &str,
    amqp_url: &str,
    fail_point: Option<&str>,
) -> ServiceProcess {
    let mut env = vec![
        ("BIND_ADDR", format!("127.0.0.1:{port}")),
        ("DATABASE_URL", database_url.to_owned()),
        ("RABBITMQ_URL", amqp_url.to_owned()),
    ];
    if let Some(point) = fail_point {
        env.push(("FAIL_POINT", point.to_owned()));
    }
    ServiceProcess::spawn(BINARY, &env)
}

async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn a_relay_killed_after_the_confirm_republishes_and_loses_nothing() {
    let vhost = TestVhost::create();
    let database_url = test_support::fresh_database("order").url;
    let conn = Connection::connect(&vhost.url, ConnectionProperties::default())
        .await
        .unwrap();
    let mut settings = AmqpSettings::local(String::new());
    settings.url = vhost.url.clone();
    let topology = Topology::new(&settings);
    let channel = conn.create_channel().await.unwrap();
    topology
        .declare_queue(
            &channel,
            &topology.queue(PAYMENT_QUEUE, OrderCreated::ROUTING_KEY),
        )
        .await
        .unwrap();

    let port = test_support::free_port();
    let mut crashing = start(port, &database_url, &vhost.url, Some("relay-after-confirm"));
    let checkout = json!({"user_id": 1, "user_email": "test@example.com",
                          "items": [{"product_id": 1, "quantity": 1}]});
    let http = reqwest::Client::new();
    eventually(
        Duration::from_secs(30),
        "order-service to take the checkout",
        || async {
            // Not listening yet, or still starting (`503`, nothing stored): try
            // again. Any other outcome means the request got in (the process
            // may die before it answers; the database tells).
            match http
                .post(format!("http://127.0.0.1:{port}/orders"))
                .json(&checkout)
                .send()
                .await
            {
                Err(e) if e.is_connect() => None,
                Ok(answer) if answer.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => None,
                _ => Some(()),
            }
        },
    )
    .await;
    assert!(
        !crashing.wait_exit(Duration::from_secs(30)).await.success(),
        "the fail point aborted it"
    );

    let pool = PgPool::connect(&database_url).await.unwrap();
    assert_eq!(scalar(&pool, "SELECT count(*) FROM orders").await, 1);
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        .await,
        1,
        "confirmed but unmarked"
    );

    let port = test_support::free_port();
    let mut service = start(port, &database_url, &vhost.url, None);
    eventually(
        Duration::from_secs(30),
        "the relay to republish the row",
        || async {
            (scalar(
                &pool,
                "SELECT count(*) FROM outbox WHERE published_at IS NULL",
            )
            .await
                == 0)
                .then_some(())
        },
    )
    .await;
    assert!(service.terminate(Duration::from_secs(30)).await.success());

    let copies = test_support::take_messages(&conn, PAYMENT_QUEUE, 2, Duration::from_secs(5)).await;
    assert_eq!(copies.len(), 2, "published twice: at-least-once");
    let ids: Vec<_> = copies
        .iter()
        .map(|m| m.delivery.properties.message_id().clone())
        .collect();
    assert_eq!(
        ids[0], ids[1],
        "both copies carry the event id, so consumers dedupe them"
    );
    assert!(ids[0].is_some());
}
