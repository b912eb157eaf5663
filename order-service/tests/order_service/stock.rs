//! Stock: reserved with the order, never oversold, given back by a declined
//! payment.

use std::time::Duration;

use contract::events::PaymentStatus;
use futures::future::join_all;
use serde_json::{Value, json};
use test_support::eventually;
use uuid::Uuid;

use order_service::db::stock::store_orders;

use crate::helpers::{TestApp, payment_for};

fn laptops(quantity: i64) -> Value {
    json!({"user_id": 1, "user_email": "test@example.com",
           "items": [{"product_id": 1, "quantity": quantity}]})
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

async fn order_id(response: reqwest::Response) -> Uuid {
    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.unwrap();
    order["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_fresh_catalog_tracks_the_laptop_and_shows_stock() {
    let app = TestApp::spawn().await;
    let laptop: Value = app.get("/products/1").await.json().await.unwrap();
    assert_eq!(laptop["stock"], 1_000_000);
    let listing: Value = app.get("/products").await.json().await.unwrap();
    assert_eq!(listing[0]["stock"], 1_000_000);
    assert_eq!(listing[1]["stock"], Value::Null, "product 2 is not tracked");

    order_id(app.post_order(&laptops(3)).await).await;
    let laptop: Value = app.get("/products/1").await.json().await.unwrap();
    assert_eq!(
        laptop["stock"], 999_997,
        "stock is read live, not from the catalog cache"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_hundred_concurrent_checkouts_for_ten_units_sell_exactly_ten() {
    let app = TestApp::spawn().await;
    app.set_stock(1, Some(10)).await;

    let body = laptops(1);
    let answers = join_all((0..100).map(|_| app.post_order(&body))).await;

    let mut created = 0;
    for answer in answers {
        match answer.status().as_u16() {
            201 => created += 1,
            409 => {
                let problem: Value = answer.json().await.unwrap();
                assert!(
                    problem["type"]
                        .as_str()
                        .unwrap()
                        .ends_with("insufficient-stock")
                );
                assert_eq!(problem["available"], json!({"1": 0}));
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 10);
    assert_eq!(app.stock(1).await, Some(0));
    assert_eq!(count(&app, "SELECT count(*) FROM orders").await, 10);
    assert_eq!(
        count(&app, "SELECT count(*) FROM order_items WHERE reserved").await,
        10
    );
    app.stop().await;
}

#[tokio::test]
async fn a_short_checkout_stores_and_publishes_nothing_even_under_an_idempotency_key() {
    let app = TestApp::spawn().await;
    app.set_stock(1, Some(3)).await;
    let body = json!({"user_id": 1, "user_email": "test@example.com",
        "items": [{"product_id": 2, "quantity": 1}, {"product_id": 1, "quantity": 5}]});

    for key in [None, Some("short-1")] {
        let mut request = app.http.post(format!("{}/orders", app.base)).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 409);
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
        let problem: Value = answer.json().await.unwrap();
        assert_eq!(problem["available"], json!({"1": 3}));
    }
    assert_eq!(app.stock(1).await, Some(3));
    assert_eq!(count(&app, "SELECT count(*) FROM orders").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM outbox").await, 0);
    assert_eq!(
        count(&app, "SELECT count(*) FROM idempotency_keys").await,
        0
    );

    // The key was not used up: with stock back, the same request succeeds.
    app.set_stock(1, Some(5)).await;
    let answer = app
        .http
        .post(format!("{}/orders", app.base))
        .header("Idempotency-Key", "short-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    order_id(answer).await;
    assert_eq!(app.stock(1).await, Some(0));
    app.stop().await;
}

#[tokio::test]
async fn a_declined_payment_gives_the_units_back_and_a_paid_one_keeps_them() {
    let app = TestApp::spawn().await;
    app.set_stock(1, Some(10)).await;
    let declined = order_id(app.post_order(&laptops(4)).await).await;
    let paid = order_id(app.post_order(&laptops(3)).await).await;
    assert_eq!(app.stock(1).await, Some(3));

    let decline = payment_for(declined, PaymentStatus::Failed);
    app.publish_payment(&decline).await;
    app.publish_payment(&payment_for(paid, PaymentStatus::Completed))
        .await;
    // Redelivered: the units come back once.
    app.publish_payment(&decline).await;

    eventually(Duration::from_secs(10), "both orders settled", || async {
        (app.order_status(declined).await == "failed" && app.order_status(paid).await == "paid")
            .then_some(())
    })
    .await;
    app.wait_for_handled(2).await;
    assert_eq!(app.stock(1).await, Some(7));
    app.stop().await;
}

#[tokio::test]
async fn units_given_back_are_only_those_the_order_took() {
    let app = TestApp::spawn().await;
    // Not tracked when ordered: nothing taken, so nothing to give back
    // after tracking starts.
    app.set_stock(1, None).await;
    let order = order_id(app.post_order(&laptops(2)).await).await;
    app.set_stock(1, Some(5)).await;
    app.publish_payment(&payment_for(order, PaymentStatus::Failed))
        .await;
    eventually(Duration::from_secs(10), "the order failed", || async {
        (app.order_status(order).await == "failed").then_some(())
    })
    .await;
    assert_eq!(app.stock(1).await, Some(5));
    app.stop().await;
}

/// Takes the last unit of product 1 in a transaction left open, runs
/// `second` meanwhile, commits once `second` waits for the product's row,
/// and answers what `second` answered.
async fn while_the_last_unit_is_taken<T: Send + 'static>(
    app: &TestApp,
    second: impl Future<Output = T> + Send + 'static,
) -> T {
    app.set_stock(1, Some(1)).await;
    let mut first = app.pool.begin().await.unwrap();
    let stored = store_orders(&mut first, &[crate::helpers::order_write(1)])
        .await
        .unwrap();
    assert_eq!(stored, [Ok(())]);
    let second = tokio::spawn(second);
    app.wait_for_a_lock_waiter().await;
    first.commit().await.unwrap();
    second.await.unwrap()
}

/// Two transactions storing orders for the last unit: the second waits for
/// the first's lock on the product's row and then finds nothing left (not
/// an error, and not a sale of a unit that is gone).
#[tokio::test]
async fn the_second_of_two_transactions_for_the_last_unit_waits_and_finds_none() {
    use order_service::db::stock::Shortage;
    let app = TestApp::spawn().await;
    let pool = app.pool.clone();
    let stored = while_the_last_unit_is_taken(&app, async move {
        let mut tx = pool.begin().await.unwrap();
        let stored = store_orders(&mut tx, &[crate::helpers::order_write(2)]).await;
        tx.commit().await.unwrap();
        stored
    })
    .await
    .expect("a shortage is not an error");
    assert_eq!(
        stored,
        [Err(Shortage {
            available: [(1, 0)].into()
        })]
    );
    assert_eq!(app.stock(1).await, Some(0));
    app.stop().await;
}

/// Checkouts arriving together are stored by one statement only if the
/// stock covers all of them; otherwise it stores and takes nothing, not
/// even the units of the products that would have fitted.
#[tokio::test]
async fn one_statement_stores_a_batch_only_if_the_stock_covers_all_of_it() {
    use order_service::db::orders::insert_orders_if_stocked;
    let app = TestApp::spawn().await;
    app.set_stock(1, Some(10)).await;
    app.set_stock(2, Some(1)).await;
    // Each order: one unit of product 1 and one of product 2.
    let batch = [
        crate::helpers::order_write(1),
        crate::helpers::order_write(2),
    ];

    let stored = insert_orders_if_stocked(&app.pool, &batch.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(!stored, "two units of product 2 asked, one left");
    assert_eq!(app.stock(1).await, Some(10));
    assert_eq!(app.stock(2).await, Some(1));
    assert_eq!(count(&app, "SELECT count(*) FROM orders").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM outbox").await, 0);

    let stored = insert_orders_if_stocked(&app.pool, &[&batch[0]])
        .await
        .unwrap();
    assert!(stored);
    assert_eq!(app.stock(1).await, Some(9));
    assert_eq!(app.stock(2).await, Some(0));
    assert_eq!(
        count(&app, "SELECT count(*) FROM order_items WHERE reserved").await,
        2
    );
    app.stop().await;
}

/// The one-statement store waits for a transaction holding the product's
/// row and then sees the units it took: it stores nothing, and does not
/// take a unit that is gone.
#[tokio::test]
async fn one_statement_waits_for_the_rows_lock_and_then_finds_the_last_unit_gone() {
    use order_service::db::orders::insert_orders_if_stocked;
    let app = TestApp::spawn().await;
    let pool = app.pool.clone();
    let stored = while_the_last_unit_is_taken(&app, async move {
        let write = crate::helpers::order_write(2);
        insert_orders_if_stocked(&pool, &[&write]).await
    })
    .await
    .expect("a shortage is not an error");
    assert!(!stored);
    assert_eq!(app.stock(1).await, Some(0));
    assert_eq!(count(&app, "SELECT count(*) FROM orders").await, 1);
    app.stop().await;
}
