//! PostgreSQL going away under order-service (faults D1/D3 in `docs/guarantees.md`): the
//! database is reached through a proxy the test cuts.

use std::time::Duration;

use test_support::{self, FaultProxy, eventually};

use crate::helpers::{TestApp, seed_checkout};

#[tokio::test]
async fn a_checkout_during_a_database_outage_is_a_503_with_retry_after_and_stores_nothing() {
    let proxy = FaultProxy::start(test_support::socket_addr_of(
        &test_support::admin_database_url(),
    ))
    .await;
    let mut database = test_support::fresh_database("order");
    database.url = proxy.rewrite_url(&database.url);
    let app = TestApp::spawn_with_database(database).await;
    assert_eq!(app.post_order(&seed_checkout()).await.status(), 201);

    proxy.cut();
    let during = app.post_order(&seed_checkout()).await;
    let ready = app.get("/ready").await;

    assert_eq!(during.status(), 503);
    assert_eq!(during.headers()["retry-after"], "1");
    assert_eq!(during.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = during.json().await.unwrap();
    assert!(problem["request_id"].is_string(), "{problem}");
    assert!(
        !problem.to_string().contains("5432"),
        "no internals leak: {problem}"
    );
    assert_eq!(ready.status(), 503, "not ready while the database is down");
    let metrics = test_support::Metrics::parse(&app.get("/metrics").await.text().await.unwrap());
    assert_eq!(
        metrics.sum("service_ready", &[]),
        0.0,
        "the scrape says so too"
    );

    proxy.restore();
    eventually(
        Duration::from_secs(15),
        "checkouts to succeed again",
        || async { (app.post_order(&seed_checkout()).await.status() == 201).then_some(()) },
    )
    .await;
    // Checkouts run on the insert's own pool: this one may still hold a
    // connection the cut broke, and its first statement fails (messaging::db).
    let stored = eventually(Duration::from_secs(5), "the orders counted", || async {
        test_support::count_rows(&app.pool, "orders").await.ok()
    })
    .await;
    assert_eq!(stored, 2, "the 503 stored nothing");
    app.stop().await;
}
