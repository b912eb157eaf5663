//! order-service's HTTP API and consumer against the real PostgreSQL and
//! RabbitMQ.

use std::time::Duration;

use contract::{events::PaymentStatus, names::ORDER_QUEUE};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use test_support::{self, eventually};
use uuid::Uuid;

use crate::helpers::{self, TestApp, payment_for, seed_checkout};

#[tokio::test]
async fn the_seed_checkout_is_priced_stored_and_announced() {
    let app = TestApp::spawn().await;

    let response = app.post_order(&seed_checkout()).await;

    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = response.json().await.unwrap();
    let id: Uuid = order["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id.get_version_num(), 4, "ids are random UUIDs");
    assert_eq!(location, format!("/api/orders/{id}"));
    assert_eq!(order["status"], "pending");
    assert_eq!(order["total_amount"], "1299.99");
    assert_eq!(order["currency"], "USD");
    assert_eq!(order["payment"], Value::Null);
    assert_eq!(
        order["items"],
        json!([{"product_id": 1, "name": "Gaming Laptop", "unit_price": "1299.99", "quantity": 1, "line_total": "1299.99"}])
    );
    assert!(order["processing_duration_ms"].as_f64().unwrap() >= 0.0);

    let events = app.order_created_events(1).await;
    assert_eq!(events[0].order_id, id);
    assert_eq!(events[0].total_amount, Decimal::new(129999, 2));
    assert_eq!(events[0].items[0].name, "Gaming Laptop");
    eventually(
        Duration::from_secs(5),
        "the outbox row to be marked published",
        || async {
            (test_support::pending_outbox_rows(&app.pool).await.unwrap() == 0).then_some(())
        },
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn totals_are_computed_from_the_catalog_not_the_client() {
    let app = TestApp::spawn().await;

    let response = app
        .post_order(&json!({"user_id": 7, "user_email": "a@example.com",
            "items": [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 3}]}))
        .await;

    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["total_amount"], "2749.95");
    assert_eq!(order["items"][1]["line_total"], "149.97");
    app.stop().await;
}

#[tokio::test]
async fn a_tampered_price_is_refused_with_the_current_price_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let mut body = seed_checkout();
    body["items"][0]["price"] = json!("0.01");

    let response = app.post_order(&body).await;

    assert_eq!(response.status(), 409);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["current_prices"]["1"], "1299.99");
    assert_eq!(problem["errors"][0]["field"], "items[0].price");
    assert_eq!(
        test_support::count_rows(&app.pool, "orders").await.unwrap(),
        0
    );
    assert_eq!(
        test_support::pending_outbox_rows(&app.pool).await.unwrap(),
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_checkouts_are_refused_and_leave_nothing_behind() {
    let app = TestApp::spawn().await;
    let mut unknown = seed_checkout();
    unknown["items"][0]["product_id"] = json!(999);
    let mut zero = seed_checkout();
    zero["items"][0]["quantity"] = json!(0);

    for (body, status, field) in [
        (unknown, 422, "items[0].product_id"),
        (zero, 422, "items[0].quantity"),
    ] {
        let response = app.post_order(&body).await;
        assert_eq!(response.status(), status);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let malformed = app
        .http
        .post(format!("{}/orders", app.base))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(
        test_support::count_rows(&app.pool, "orders").await.unwrap(),
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn orders_and_products_can_be_read_back() {
    let app = TestApp::spawn().await;
    let order: Value = app.post_order(&seed_checkout()).await.json().await.unwrap();
    let id = order["id"].as_str().unwrap();

    let fetched: Value = app
        .get(&format!("/orders/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, order);
    let status: Value = app
        .get(&format!("/orders/{id}/status"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        status,
        json!({"id": id, "status": "pending", "payment": null})
    );
    assert_eq!(app.get("/orders/not-a-uuid").await.status(), 400);
    assert_eq!(
        app.get(&format!("/orders/{}", Uuid::new_v4()))
            .await
            .status(),
        404
    );

    let products: Value = app.get("/products").await.json().await.unwrap();
    assert_eq!(products[0]["name"], "Gaming Laptop");
    assert_eq!(products[0]["price"], "1299.99");
    let laptop: Value = app.get("/products/1").await.json().await.unwrap();
    assert_eq!(laptop["currency"], "USD");
    assert_eq!(app.get("/products/999").await.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn a_payment_result_settles_the_order_once() {
    let app = TestApp::spawn().await;
    let paid: Value = app.post_order(&seed_checkout()).await.json().await.unwrap();
    let declined: Value = app.post_order(&seed_checkout()).await.json().await.unwrap();
    let paid_id: Uuid = paid["id"].as_str().unwrap().parse().unwrap();
    let declined_id: Uuid = declined["id"].as_str().unwrap().parse().unwrap();

    let completed = payment_for(paid_id, PaymentStatus::Completed);
    app.publish_payment(&completed).await;
    eventually(Duration::from_secs(10), "the order paid", || async {
        (app.order_status(paid_id).await == "paid").then_some(())
    })
    .await;
    app.publish_payment(&completed).await; // redelivered
    // A contradicting late result (new event id) does not flip a settled order.
    app.publish_payment(&payment_for(paid_id, PaymentStatus::Failed))
        .await;
    app.publish_payment(&payment_for(declined_id, PaymentStatus::Failed))
        .await;
    eventually(
        Duration::from_secs(10),
        "the other order failed",
        || async { (app.order_status(declined_id).await == "failed").then_some(()) },
    )
    .await;
    // Consumers run concurrently: wait until the queue is drained before asserting.
    let queue = format!("{}{ORDER_QUEUE}", app.amqp.prefix);
    eventually(Duration::from_secs(10), "the queue drained", || async {
        (test_support::queue_depth(&app.conn, &queue).await == 0).then_some(())
    })
    .await;
    let order: Value = app
        .get(&format!("/orders/{paid_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order["status"], "paid");
    assert_eq!(order["payment"]["status"], "completed");
    assert_eq!(
        order["payment"]["transaction_id"],
        completed.transaction_id.unwrap()
    );
    assert_eq!(order["payment"]["amount"], "1299.99");
    let declined: Value = app
        .get(&format!("/orders/{declined_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(declined["payment"]["failure_reason"], "card_declined");
    assert_eq!(declined["payment"]["transaction_id"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn a_payment_for_an_unknown_order_is_parked() {
    let app = TestApp::spawn().await;
    let stray = payment_for(Uuid::new_v4(), PaymentStatus::Completed);

    app.publish_payment(&stray).await;

    let dlq = format!("{}{ORDER_QUEUE}.dlq", app.amqp.prefix);
    let parked = test_support::take_messages(&app.conn, &dlq, 1, Duration::from_secs(10)).await;
    let reason =
        messaging::headers::get_str(&parked[0].delivery.properties, "x-park-reason").unwrap();
    assert!(reason.contains("unknown order"), "{reason}");
    app.stop().await;
}

/// The settlement statement, many results at once (as the handler's batcher
/// sends them): each gets the answer it would get alone.
#[tokio::test]
async fn one_settlement_statement_answers_each_result_as_if_it_ran_alone() {
    use order_service::db::settlement::{Settlement, settle_orders};
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let order: Value = app.post_order(&seed_checkout()).await.json().await.unwrap();
        ids.push(order["id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    let consumer = "order-service";
    let settled_before = [
        payment_for(ids[0], PaymentStatus::Completed),
        payment_for(ids[3], PaymentStatus::Completed),
    ];
    assert_eq!(
        settle_orders(&app.pool, consumer, &settled_before)
            .await
            .unwrap(),
        [Settlement::Settled; 2]
    );

    // Distinct orders and event ids, as the handler's batcher sends them.
    let results = [
        payment_for(ids[1], PaymentStatus::Completed),
        settled_before[0].clone(), // redelivered
        payment_for(Uuid::new_v4(), PaymentStatus::Completed), // unknown order
        payment_for(ids[3], PaymentStatus::Failed), // late, contradicting
        payment_for(ids[2], PaymentStatus::Failed),
    ];
    let answers = settle_orders(&app.pool, consumer, &results).await.unwrap();
    assert_eq!(
        answers,
        [
            Settlement::Settled,
            Settlement::Duplicate,
            Settlement::UnknownOrder,
            Settlement::AlreadySettled,
            Settlement::Settled
        ]
    );
    assert_eq!(app.order_status(ids[0]).await, "paid");
    assert_eq!(app.order_status(ids[1]).await, "paid");
    assert_eq!(app.order_status(ids[2]).await, "failed");
    assert_eq!(app.order_status(ids[3]).await, "paid");
    // The unknown order left nothing in the inbox: it can be replayed.
    let inbox: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM processed_messages WHERE message_id = $1)",
    )
    .bind(results[2].event_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(!inbox);
    app.stop().await;
}

/// Checkouts arriving together share one insert statement: each order must
/// come back with exactly its own lines, and each gets its own event.
#[tokio::test]
async fn concurrent_checkouts_each_store_exactly_their_own_lines_and_event() {
    let app = TestApp::spawn().await;
    let bodies: Vec<Value> = (0..24)
        .map(|i| {
            let items: Vec<Value> = (0..=i % 3)
                .map(|line| json!({"product_id": 1 + (i + line) % 6, "quantity": 1 + (i + line) % 5}))
                .collect();
            json!({"user_id": 100 + i, "user_email": format!("buyer{i}@example.com"), "items": items})
        })
        .collect();
    let answers = futures::future::join_all(bodies.iter().map(|b| app.post_order(b))).await;
    let mut created = Vec::new();
    for answer in answers {
        assert_eq!(answer.status(), 201);
        created.push(answer.json::<Value>().await.unwrap());
    }
    for (body, order) in bodies.iter().zip(&created) {
        let stored: Value = app
            .get(&format!("/orders/{}", order["id"].as_str().unwrap()))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(stored["user_id"], body["user_id"]);
        assert_eq!(
            stored["items"], order["items"],
            "the lines read back are the order's"
        );
        assert_eq!(stored["total_amount"], order["total_amount"]);
    }
    let events = app.order_created_events(created.len()).await;
    for order in &created {
        let id: Uuid = order["id"].as_str().unwrap().parse().unwrap();
        let mine: Vec<_> = events.iter().filter(|e| e.order_id == id).collect();
        assert_eq!(mine.len(), 1, "one order.order.created per order");
        assert_eq!(
            mine[0].items.len(),
            order["items"].as_array().unwrap().len()
        );
    }
    app.stop().await;
}

/// The checkout's statements run on connections that keep PostgreSQL's cached
/// plans (`startup::insert_pool`). That is safe only while every plan of the
/// statements, its foreign-key checks and the stock lock included, is an
/// index lookup even when made on empty tables, as a service's first plans
/// are: forced generic here, on a fresh database, they must scan no table
/// whole.
#[tokio::test]
async fn the_checkout_insert_scans_no_table_even_with_generic_plans() {
    use order_service::db::{orders::insert_orders_if_stocked, stock::store_orders};
    let app = TestApp::spawn().await;
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan")
        .execute(&mut *tx)
        .await
        .unwrap();
    // This view also holds what the connection did before and has not yet
    // reported, so only the difference counts.
    let before = sequential_scans(&mut tx).await;
    for n in 0..8 {
        let write = helpers::order_write(n);
        let stored = store_orders(&mut tx, std::slice::from_ref(&write))
            .await
            .unwrap();
        assert_eq!(stored, [Ok(())]);
        // The batch's usual path: the same statement without the lock taken
        // before it.
        let write = helpers::order_write(n);
        assert!(insert_orders_if_stocked(&mut *tx, &[&write]).await.unwrap());
    }
    let after = sequential_scans(&mut tx).await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM order_items")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(stored, 32, "two lines per order");
    assert_eq!(
        before, after,
        "sequential scans per table, before and after"
    );
    tx.rollback().await.unwrap();
    app.stop().await;
}

async fn sequential_scans(tx: &mut sqlx::PgConnection) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT relname::text, seq_scan FROM pg_stat_xact_user_tables \
         WHERE relname IN ('orders', 'order_items', 'products', 'outbox') ORDER BY relname",
    )
    .fetch_all(tx)
    .await
    .unwrap()
}
