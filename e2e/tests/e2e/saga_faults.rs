//! Cancellation and expiry while payment-service is down: the four real
//! binaries on a vhost of the machine's broker ([`ProcessPipeline`]),
//! payment-service killed at a fail point or stopped, each run ended by the
//! audit (one charge and at most one refund per order, charges − refunds =
//! paid orders, the stock ledger, the emails of each final state).

use std::time::Duration;

use e2e::processes::{ProcessPipeline, Setup};
use lapin::{Connection, ConnectionProperties};
use serde_json::{Value, json};
use test_support::{TestVhost, eventually};

async fn checkout(pipeline: &ProcessPipeline, user: u64, email: &str) -> String {
    let body = json!({"user_id": user, "user_email": email,
                      "items": [{"product_id": 1, "quantity": 1}]});
    let (status, order) = pipeline.post("/api/checkout", &body).await;
    assert_eq!(status, 201, "{order}");
    order["id"].as_str().unwrap().to_owned()
}

async fn order(pipeline: &ProcessPipeline, id: &str) -> Value {
    pipeline.get(&format!("/api/orders/{id}")).await
}

async fn scalar(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn broker(vhost: &TestVhost) -> Connection {
    Connection::connect(&vhost.url, ConnectionProperties::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_whose_publish_was_cut_by_a_crash_is_refunded_once_after_the_cancel_that_waited() {
    let vhost = TestVhost::create();
    let mut pipeline = ProcessPipeline::start(Setup::on(vhost.url.clone())).await;
    // Aborts once its payment and outcome are committed, before the outcome
    // is published (needs the test build's fail points).
    pipeline
        .payment(0)
        .start(&[("FAIL_POINT", "relay-before-publish".into())]);

    let id = checkout(&pipeline, 7, "crash@example.com").await;
    let exit = pipeline
        .payment(0)
        .running()
        .wait_exit(Duration::from_secs(30))
        .await;
    assert!(!exit.success(), "the fail point aborted payment-service");
    assert_eq!(
        scalar(&pipeline.payment_db, "SELECT count(*) FROM payments").await,
        1
    );
    assert_eq!(order(&pipeline, &id).await["status"], "pending");

    let (status, cancelled) = pipeline
        .post(&format!("/api/orders/{id}/cancel"), &json!({"user_id": 7}))
        .await;
    assert_eq!(
        status, 200,
        "a pending order is cancelled at once: {cancelled}"
    );

    pipeline.payment(0).start(&[]);
    let broker = broker(&vhost).await;
    pipeline.audit(std::slice::from_ref(&id), &broker).await;

    let order = order(&pipeline, &id).await;
    assert_eq!(order["status"], "cancelled", "{order}");
    assert_eq!(order["cancel_reason"], "customer");
    assert_eq!(
        scalar(&pipeline.payment_db, "SELECT count(*) FROM payments").await,
        1
    );
    assert_eq!(
        scalar(&pipeline.payment_db, "SELECT count(*) FROM refunds").await,
        1,
        "the charge published after the cancel is refunded, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_expire_while_payment_service_is_down_and_its_late_charges_are_refunded() {
    let vhost = TestVhost::create();
    let mut pipeline = ProcessPipeline::start(Setup {
        order_env: vec![("ORDER_PAYMENT_TIMEOUT_SECS", "1".into())],
        ..Setup::on(vhost.url.clone())
    })
    .await;
    pipeline.payment(0).kill();

    let mut ids = Vec::new();
    for i in 0..5 {
        let email = if i == 0 {
            "d+decline@example.com".to_owned()
        } else {
            format!("x{i}@example.com")
        };
        ids.push(checkout(&pipeline, i + 1, &email).await);
    }
    for id in &ids {
        let expired = eventually(Duration::from_secs(30), "the order expired", || async {
            let order = order(&pipeline, id).await;
            (order["status"] == "cancelled").then_some(order)
        })
        .await;
        assert_eq!(expired["cancel_reason"], "payment_timeout");
    }
    let stock = scalar(
        &pipeline.order_db,
        "SELECT stock FROM products WHERE id = 1",
    )
    .await;
    assert_eq!(stock, 1_000_000, "every expired order's unit is back");

    pipeline.payment(0).start(&[]);
    let broker = broker(&vhost).await;
    pipeline.audit(&ids, &broker).await;
    assert_eq!(
        scalar(&pipeline.payment_db, "SELECT count(*) FROM refunds").await,
        4,
        "each late charge refunded once; the declined payment has nothing to refund"
    );
    for id in &ids {
        assert_eq!(order(&pipeline, id).await["status"], "cancelled");
    }
}
