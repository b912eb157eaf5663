//! Orders, products, the operational endpoints and the problem answers for
//! paths and methods that do not exist.

use serde_json::Value;

use crate::helpers::{Upstream, assert_problem, closed_port_url, spawn_app, spawn_with};

#[tokio::test]
async fn a_known_order_and_its_status_are_answered_as_order_service_answers_them() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;
    let id = upstream.known_order;

    let order = app.get(&format!("/api/orders/{id}")).await;
    let status = app.get(&format!("/api/orders/{id}/status")).await;

    assert_eq!(order.status().as_u16(), 200);
    let order: Value = order.json().await.unwrap();
    assert_eq!(order["id"], id.to_string());
    assert_eq!(status.status().as_u16(), 200);
    let status: Value = status.json().await.unwrap();
    assert_eq!(status["status"], "pending");
    assert!(status["payment"].is_null());
    let paths: Vec<String> = upstream.calls().into_iter().map(|c| c.path).collect();
    assert_eq!(
        paths,
        [format!("/orders/{id}"), format!("/orders/{id}/status")]
    );
}

#[tokio::test]
async fn an_unknown_order_is_a_404_problem() {
    let (app, _upstream) = spawn_with(Upstream::Healthy).await;

    let response = app
        .get(&format!("/api/orders/{}", uuid::Uuid::new_v4()))
        .await;

    assert_problem(response, 404).await;
}

#[tokio::test]
async fn an_order_id_in_another_uuid_spelling_is_forwarded_in_canonical_form() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;
    let id = upstream.known_order;

    let response = app
        .get(&format!(
            "/api/orders/{}",
            id.simple().to_string().to_uppercase()
        ))
        .await;

    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(upstream.calls()[0].path, format!("/orders/{id}"));
}

#[tokio::test]
async fn malformed_ids_are_400_problems_that_never_reach_order_service() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;

    for path in [
        "/api/orders/42",
        "/api/orders/not-a-uuid",
        "/api/orders/..%2F..%2Fadmin",
        "/api/orders/%FF%FE",
        "/api/orders/1/status",
        "/api/products/abc",
        "/api/products/0",
        "/api/products/-1",
        "/api/products/+1",
        "/api/products/99999999999999999999",
    ] {
        let problem = assert_problem(app.get(path).await, 400).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("malformed id"),
            "{path}: {problem}"
        );
    }
    assert_eq!(upstream.calls().len(), 0);
}

#[tokio::test]
async fn the_catalog_is_answered_as_order_service_answers_it() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;

    let list = app.get("/api/products").await;
    let one = app.get("/api/products/1").await;
    let unknown = app.get("/api/products/2").await;

    assert_eq!(list.status().as_u16(), 200);
    let list: Value = list.json().await.unwrap();
    assert_eq!(list[0]["name"], "Gaming Laptop");
    assert_eq!(one.status().as_u16(), 200);
    assert_problem(unknown, 404).await;
    assert_eq!(upstream.calls().len(), 3);
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let (app, _upstream) = spawn_with(Upstream::Healthy).await;

    for path in ["/nope", "/api", "/api/orders", "/api/orders/"] {
        assert_problem(app.get(path).await, 404).await;
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;

    let get_checkout = app.get("/api/checkout").await;
    let delete_order = app
        .client
        .delete(format!(
            "{}/api/orders/{}",
            app.address, upstream.known_order
        ))
        .send()
        .await
        .unwrap();

    assert_eq!(get_checkout.headers()["allow"], "POST");
    assert_problem(get_checkout, 405).await;
    assert_problem(delete_order, 405).await;
    assert_eq!(upstream.calls().len(), 0);
}

#[tokio::test]
async fn health_and_metrics_answer_without_order_service() {
    let app = spawn_app(closed_port_url()).await;

    let health = app.get("/health").await;
    let metrics = app.get("/metrics").await;

    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(metrics.status().as_u16(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
}

#[tokio::test]
async fn ready_says_whether_order_service_is_reachable() {
    let (up, _upstream) = spawn_with(Upstream::Healthy).await;
    let down = spawn_app(closed_port_url()).await;

    let ready = up.get("/ready").await;
    let not_ready = down.get("/ready").await;

    assert_eq!(ready.status().as_u16(), 200);
    assert_eq!(not_ready.status().as_u16(), 503);
    let report: Value = not_ready.json().await.unwrap();
    assert_eq!(
        report["checks"]["order_service"],
        "order-service unreachable"
    );
}
