//! order-service's outbox relay killed between the broker's confirm and
//! marking the row published (faults D5, failure window W3 in `docs/guarantees.md`).

use std::time::Duration;

use contract::{
    events::{Event, OrderCreated},
    names::PAYMENT_QUEUE,
};
use serde_json::json;
use sqlx::PgPool;
use test_support::{self, ProcessScenario, ServiceProcess, eventually};

const BINARY: &str = env!("CARGO_BIN_EXE_order-service");

/// order-service's binary on `port` in `scenario`, stopping at `fail_point`.
fn start(scenario: &ProcessScenario, port: u16, fail_point: Option<&str>) -> ServiceProcess {
    let env: Vec<_> = fail_point
        .map(|point| ("FAIL_POINT", point.to_owned()))
        .into_iter()
        .collect();
    scenario.start(BINARY, port, &env)
}

async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// The orders in the scenario's database; 0 while it or its tables do not
/// exist yet.
async fn stored_orders(scenario: &ProcessScenario) -> i64 {
    let Ok(pool) = PgPool::connect(&scenario.database_url).await else {
        return 0;
    };
    sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap_or(0)
}

#[tokio::test]
async fn a_relay_killed_after_the_confirm_republishes_and_loses_nothing() {
    let scenario =
        ProcessScenario::new("order", &[(PAYMENT_QUEUE, OrderCreated::ROUTING_KEY)]).await;

    let port = test_support::free_port();
    let mut crashing = start(&scenario, port, Some("relay-after-confirm"));
    let checkout = json!({"user_id": 1, "user_email": "test@example.com",
                          "items": [{"product_id": 1, "quantity": 1}]});
    let http = reqwest::Client::new();
    eventually(
        Duration::from_secs(30),
        "order-service to take the checkout",
        || async {
            // Still starting (`503`, nothing stored): try again. No answer
            // at all is either a process that died after storing the order
            // (the fail point) or a request that never got in (not
            // listening yet, or cut off as the startup server handed over
            // its port): the database tells which.
            match http
                .post(format!("http://127.0.0.1:{port}/orders"))
                .json(&checkout)
                .send()
                .await
            {
                Ok(answer) if answer.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => None,
                Ok(answer) => {
                    assert_eq!(answer.status(), reqwest::StatusCode::CREATED);
                    Some(())
                }
                Err(_) => (stored_orders(&scenario).await > 0).then_some(()),
            }
        },
    )
    .await;
    assert!(
        !crashing.wait_exit(Duration::from_secs(30)).await.success(),
        "the fail point aborted it"
    );

    let pool = scenario.pool().await;
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
    let mut service = start(&scenario, port, None);
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

    let copies =
        test_support::take_messages(&scenario.conn, PAYMENT_QUEUE, 2, Duration::from_secs(5)).await;
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
