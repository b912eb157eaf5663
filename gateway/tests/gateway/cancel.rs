//! `POST /api/orders/{id}/cancel`: what is forwarded, how order-service's
//! answers come back, what is refused before it could reach order-service,
//! and that a cancel is never sent twice once it may have arrived.

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{
    HangingUpOrderService, Upstream, assert_problem, closed_port_url, spawn_app, spawn_with,
};

const CANCEL: &str = r#"{"user_id":1}"#;

/// The cancels order-service received, as (path, body).
fn cancels(upstream: &crate::helpers::FakeOrderService) -> Vec<(String, String)> {
    upstream
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/cancel"))
        .map(|c| (c.path, String::from_utf8(c.body.to_vec()).unwrap()))
        .collect()
}

#[tokio::test]
async fn a_cancel_is_forwarded_with_the_canonical_id_body_and_request_id() {
    // Arrange
    let (app, upstream) = spawn_with(Upstream::Healthy).await;
    let id = upstream.known_order;
    let spelled = id.simple().to_string().to_uppercase();

    // Act: another spelling of the id, the body with spaces and a newline.
    let response = app
        .client
        .post(format!("{}/api/orders/{spelled}/cancel", app.address))
        .header("content-type", "application/json; charset=utf-8")
        .header("x-request-id", "req-cancel-1")
        .body("{ \"user_id\" :   1 }\n")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-request-id"], "req-cancel-1");
    let calls = upstream.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "POST");
    assert_eq!(calls[0].path, format!("/orders/{id}/cancel"));
    assert_eq!(calls[0].headers["content-type"], "application/json");
    assert_eq!(calls[0].headers["x-request-id"], "req-cancel-1");
    assert_eq!(calls[0].body, CANCEL.as_bytes(), "the canonical body");
}

#[tokio::test]
async fn a_pending_order_is_answered_200_and_a_paid_one_202_as_order_service_answers() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;
    let (pending, paid) = (upstream.known_order, upstream.paid_order);

    let cancelled = app.post_cancel(&pending.to_string(), CANCEL).await;
    let refunding = app.post_cancel(&paid.to_string(), CANCEL).await;
    let again = app.post_cancel(&paid.to_string(), CANCEL).await;

    assert_eq!(cancelled.status().as_u16(), 200);
    assert_eq!(cancelled.headers()["content-type"], "application/json");
    let order: Value = cancelled.json().await.unwrap();
    assert_eq!(order["id"], pending.to_string());
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancel_reason"], "customer");
    for response in [refunding, again] {
        assert_eq!(response.status().as_u16(), 202);
        assert_eq!(response.headers()["content-type"], "application/json");
        let order: Value = response.json().await.unwrap();
        assert_eq!(order["id"], paid.to_string());
        assert_eq!(order["status"], "refund_pending");
    }
    assert_eq!(
        cancels(&upstream),
        [
            (format!("/orders/{pending}/cancel"), CANCEL.to_owned()),
            (format!("/orders/{paid}/cancel"), CANCEL.to_owned()),
            (format!("/orders/{paid}/cancel"), CANCEL.to_owned()),
        ]
    );
}

#[tokio::test]
async fn order_service_404_and_409_problems_are_passed_through_unchanged() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;
    let id = upstream.known_order.to_string();

    let unknown = app.post_cancel(&Uuid::new_v4().to_string(), CANCEL).await;
    let another_user = app.post_cancel(&id, r#"{"user_id":2}"#).await;
    let first = app.post_cancel(&id, CANCEL).await;
    let second = app.post_cancel(&id, CANCEL).await;

    assert_problem(unknown, 404).await;
    assert_problem(another_user, 404).await;
    assert_eq!(first.status().as_u16(), 200);
    let problem = assert_problem(second, 409).await;
    assert_eq!(problem["type"], "/problems/order-not-cancellable");
    assert_eq!(problem["order_status"], "cancelled", "{problem}");
    assert_eq!(
        problem["detail"], "a cancelled order cannot be cancelled",
        "order-service's own words"
    );
    let forwarded: Vec<String> = cancels(&upstream).into_iter().map(|(_, b)| b).collect();
    assert_eq!(forwarded, [CANCEL, r#"{"user_id":2}"#, CANCEL, CANCEL]);
}

#[tokio::test]
async fn malformed_order_ids_are_400_problems_that_never_reach_order_service() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;

    for id in ["42", "not-a-uuid", "..%2F..%2Fadmin", "%FF%FE", "1"] {
        let problem = assert_problem(app.post_cancel(id, CANCEL).await, 400).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("malformed id"),
            "{id}: {problem}"
        );
    }
    assert_eq!(upstream.calls().len(), 0);
}

#[tokio::test]
async fn bad_cancel_bodies_are_refused_and_never_reach_order_service() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;
    let id = upstream.known_order.to_string();

    for body in [
        r#"{"user_id": 1,"#,
        "",
        "nope",
        r#"{"user_id": 1} trailing"#,
        r#"{"user_id": 1, "user_id": 2}"#,
    ] {
        assert_problem(app.post_cancel(&id, body).await, 400).await;
    }
    for (body, field) in [
        ("{}", "user_id"),
        (r#"{"user_id": null}"#, "user_id"),
        (r#"{"user_id": 0}"#, "user_id"),
        (r#"{"user_id": -1}"#, "user_id"),
        (r#"{"user_id": "1"}"#, "user_id"),
        (r#"{"user_id": 1.5}"#, "user_id"),
        (r#"{"user_id": 99999999999999999999}"#, "user_id"),
        (r#"{"user_id": 1, "reason": "changed my mind"}"#, "reason"),
        ("[1]", ""),
    ] {
        let problem = assert_problem(app.post_cancel(&id, body).await, 422).await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}: no errors array in {problem}"))
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{body}");
    }
    for content_type in [Some("text/plain"), None] {
        let mut request = app
            .client
            .post(format!("{}/api/orders/{id}/cancel", app.address))
            .body(CANCEL);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        assert_problem(request.send().await.unwrap(), 415).await;
    }
    let huge = format!(r#"{{"user_id":1,"pad":"{}"}}"#, "x".repeat(100 * 1024));
    assert_problem(app.post_cancel(&id, huge).await, 413).await;

    assert_eq!(
        upstream.calls().len(),
        0,
        "a rejected cancel reached order-service"
    );
}

#[tokio::test]
async fn a_cancel_is_only_a_post() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;

    let get = app
        .get(&format!("/api/orders/{}/cancel", upstream.known_order))
        .await;

    assert_eq!(get.headers()["allow"], "POST");
    assert_problem(get, 405).await;
    assert_eq!(upstream.calls().len(), 0);
}

#[tokio::test]
async fn a_cancel_that_times_out_is_a_504_and_never_sent_twice() {
    let (app, upstream) = spawn_with(Upstream::SlowFirstWrite(Duration::from_secs(5))).await;

    let response = app
        .post_cancel(&upstream.known_order.to_string(), CANCEL)
        .await;

    assert_problem(response, 504).await;
    assert_eq!(
        cancels(&upstream).len(),
        1,
        "the order may be cancelled already: no second attempt"
    );
}

#[tokio::test]
async fn a_cancel_whose_connection_breaks_is_a_502_and_never_sent_twice() {
    let upstream = HangingUpOrderService::start().await;
    let app = spawn_app(upstream.url()).await;
    let id = Uuid::new_v4();

    let response = app.post_cancel(&id.to_string(), CANCEL).await;

    assert_problem(response, 502).await;
    assert_eq!(upstream.received(), 1, "no second attempt");
    // The same failure on a read is sent once more: the count would show a
    // retry.
    assert_problem(app.get(&format!("/api/orders/{id}")).await, 502).await;
    assert_eq!(upstream.received(), 3);
}

#[tokio::test]
async fn order_service_down_or_unavailable_for_a_cancel_is_a_503_problem_with_retry_after() {
    let down = spawn_app(closed_port_url()).await;
    let (app, upstream) = spawn_with(Upstream::Overloaded).await;
    let id = Uuid::new_v4().to_string();

    let unreachable = down.post_cancel(&id, CANCEL).await;
    let unavailable = app.post_cancel(&id, CANCEL).await;

    assert_eq!(unreachable.headers()["retry-after"], "1");
    assert_problem(unreachable, 503).await;
    assert_eq!(unavailable.headers()["retry-after"], "7");
    let problem = assert_problem(unavailable, 503).await;
    assert!(!problem.to_string().contains("hunter2"), "{problem}");
    assert_eq!(upstream.calls().len(), 1);
}
