//! RabbitMQ going away in the middle of a burst of checkouts (reliability
//! matrix M4/M5, per test through a proxy so other tests are not disturbed):
//! checkouts keep being accepted (the outbox holds the events), connections
//! recover by themselves, and every accepted order ends paid with exactly one
//! payment and one email.

use std::{collections::HashSet, sync::Arc, time::Duration};

use common::testing::{self, eventually};
use e2e::{Options, Pipeline};
use serde_json::json;
use tokio::sync::Mutex;

const ORDERS: usize = 120;
const CLIENTS: usize = 8;

async fn scalar(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn a_broker_outage_during_a_burst_loses_and_duplicates_nothing() {
    let mut pipeline = Pipeline::start_with(Options { broker_proxy: true, ..Default::default() }).await;
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let statuses = Arc::new(Mutex::new(Vec::<u16>::new()));

    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (http, base) = (pipeline.http.clone(), pipeline.gateway.clone());
        let (accepted, statuses) = (accepted.clone(), statuses.clone());
        clients.push(tokio::spawn(async move {
            for i in 0..ORDERS / CLIENTS {
                let body = json!({"user_id": client * 1000 + i + 1, "user_email": format!("c{client}-{i}@example.com"),
                                  "items": [{"product_id": 2, "quantity": 1}]});
                let response = http.post(format!("{base}/api/checkout")).json(&body).send().await.unwrap();
                let status = response.status().as_u16();
                statuses.lock().await.push(status);
                if status == 201 {
                    let order: serde_json::Value = response.json().await.unwrap();
                    accepted.lock().await.push(order["id"].as_str().unwrap().to_owned());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    eventually(Duration::from_secs(30), "a third of the burst accepted", || async {
        (accepted.lock().await.len() >= ORDERS / 3).then_some(())
    })
    .await;
    let proxy = pipeline.broker.as_ref().unwrap();
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let accepted_during_outage = accepted.lock().await.len();
    proxy.restore();
    for client in clients {
        client.await.unwrap();
    }

    let accepted = accepted.lock().await.clone();
    let statuses = statuses.lock().await.clone();
    assert!(statuses.iter().all(|s| *s == 201), "every checkout accepted, no 5xx: {statuses:?}");
    assert_eq!(accepted.len(), ORDERS);
    assert!(accepted_during_outage > ORDERS / 3, "checkouts kept being accepted while the broker was away");

    let mails = pipeline.smtp.wait_for(ORDERS, Duration::from_secs(90)).await;
    eventually(Duration::from_secs(30), "every order paid", || async {
        (scalar(&pipeline.order_db, "SELECT count(*) FROM orders WHERE status = 'paid'").await == ORDERS as i64)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // late duplicates would show now
    assert_eq!(pipeline.smtp.messages().len(), ORDERS, "exactly one email per order");
    let subjects: HashSet<String> = mails.iter().map(|m| m["subject"].as_str().unwrap().to_owned()).collect();
    assert_eq!(subjects.len(), ORDERS, "one distinct email per order");
    assert_eq!(scalar(&pipeline.payment_db, "SELECT count(*) FROM payments").await, ORDERS as i64);
    assert_eq!(scalar(&pipeline.payment_db, "SELECT count(DISTINCT order_id) FROM payments").await, ORDERS as i64);
    for pool in [&pipeline.order_db, &pipeline.payment_db] {
        assert_eq!(scalar(pool, "SELECT count(*) FROM outbox WHERE published_at IS NULL").await, 0);
    }
    let conn = testing::test_connection().await;
    for queue in ["payment_service_queue", "email_service_queue", "order_service_queue"] {
        let prefixed = |suffix: &str| format!("{}{queue}{suffix}", pipeline.amqp.prefix);
        assert_eq!(testing::queue_depth(&conn, &prefixed("")).await, 0, "{queue} drained");
        assert_eq!(testing::queue_depth(&conn, &prefixed(".dlq")).await, 0, "{queue}.dlq empty");
    }
    pipeline.stop().await;
}
