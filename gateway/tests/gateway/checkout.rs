//! `POST /api/checkout`: what is forwarded, and what is refused before it
//! could reach order-service.

use serde_json::{Value, json};

use crate::helpers::{SEED_CHECKOUT, Upstream, assert_problem, seed_checkout, spawn_with};

#[tokio::test]
async fn the_seed_checkout_is_forwarded_and_answered_201_with_a_location() {
    // Arrange
    let (app, upstream) = spawn_with(Upstream::Healthy).await;

    // Act
    let response = app.post_checkout(SEED_CHECKOUT).await;

    // Assert
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.headers()["content-type"], "application/json");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/orders/{}", order["id"].as_str().unwrap())
    );
    assert_eq!(order["status"], "pending");

    let calls = upstream.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "POST");
    assert_eq!(calls[0].path, "/orders");
    assert_eq!(calls[0].headers["content-type"], "application/json");
    assert_eq!(calls[0].json(), seed_checkout());
}

#[tokio::test]
async fn the_request_id_is_forwarded_to_order_service_and_echoed_to_the_client() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;

    let response = app
        .client
        .post(format!("{}/api/checkout", app.address))
        .header("content-type", "application/json")
        .header("x-request-id", "req-from-client-1")
        .body(SEED_CHECKOUT)
        .send()
        .await
        .unwrap();
    let generated = app.post_checkout(SEED_CHECKOUT).await;

    assert_eq!(response.headers()["x-request-id"], "req-from-client-1");
    let generated_id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        uuid::Uuid::parse_str(&generated_id).is_ok(),
        "{generated_id}"
    );
    let calls = upstream.calls();
    assert_eq!(calls[0].headers["x-request-id"], "req-from-client-1");
    assert_eq!(calls[1].headers["x-request-id"], generated_id.as_str());
}

#[tokio::test]
async fn the_idempotency_key_is_forwarded_only_when_the_client_sent_one() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;

    app.client
        .post(format!("{}/api/checkout", app.address))
        .header("content-type", "application/json")
        .header("idempotency-key", "checkout-7f3a")
        .body(SEED_CHECKOUT)
        .send()
        .await
        .unwrap();
    app.post_checkout(SEED_CHECKOUT).await;

    let calls = upstream.calls();
    assert_eq!(calls[0].headers["idempotency-key"], "checkout-7f3a");
    assert!(!calls[1].headers.contains_key("idempotency-key"));
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_a_400_problem_that_never_reaches_order_service() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;

    for key in ["k".repeat(256), "two words".to_owned()] {
        let response = app
            .client
            .post(format!("{}/api/checkout", app.address))
            .header("content-type", "application/json")
            .header("idempotency-key", key.as_str())
            .body(SEED_CHECKOUT)
            .send()
            .await
            .unwrap();
        assert_problem(response, 400).await;
    }
    assert_eq!(upstream.calls().len(), 0);
}

/// The seed body with one change applied.
fn seed_with(change: impl FnOnce(&mut Value)) -> String {
    let mut body = seed_checkout();
    change(&mut body);
    body.to_string()
}

#[tokio::test]
async fn invalid_checkouts_are_422_problems_naming_the_field_and_never_reach_order_service() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;
    let fifty_one: Vec<Value> = (1..=51)
        .map(|i| json!({"product_id": i, "quantity": 1}))
        .collect();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "negative quantity",
            seed_with(|b| b["items"][0]["quantity"] = json!(-1)),
            "items[0].quantity",
        ),
        (
            "zero quantity",
            seed_with(|b| b["items"][0]["quantity"] = json!(0)),
            "items[0].quantity",
        ),
        (
            "fractional quantity",
            seed_with(|b| b["items"][0]["quantity"] = json!(1.5)),
            "items[0].quantity",
        ),
        (
            "quantity as a string",
            seed_with(|b| b["items"][0]["quantity"] = json!("2")),
            "items[0].quantity",
        ),
        (
            "huge quantity",
            seed_with(|b| b["items"][0]["quantity"] = json!(1e20)),
            "items[0].quantity",
        ),
        ("no items", seed_with(|b| b["items"] = json!([])), "items"),
        (
            "51 items",
            seed_with(|b| b["items"] = Value::Array(fifty_one)),
            "items",
        ),
        (
            "invalid email",
            seed_with(|b| b["user_email"] = json!("not-an-email")),
            "user_email",
        ),
        (
            "CR/LF in the email",
            seed_with(|b| b["user_email"] = json!("test@example.com\r\nBcc: victim@example.org")),
            "user_email",
        ),
        (
            "client-supplied total",
            seed_with(|b| b["total_amount"] = json!("0.01")),
            "total_amount",
        ),
        (
            "zero user id",
            seed_with(|b| b["user_id"] = json!(0)),
            "user_id",
        ),
        ("a JSON array, not an object", "[1,2,3]".to_owned(), ""),
    ];

    for (case, body, field) in cases {
        let response = app.post_checkout(body).await;
        let problem = assert_problem(response, 422).await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{case}: no errors array in {problem}"))
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, vec![field], "{case}");
    }
    assert_eq!(
        upstream.calls().len(),
        0,
        "a rejected checkout reached order-service"
    );
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;

    for body in [r#"{"user_id": 1,"#, "", "nope", "{\"user_id\": 1} trailing"] {
        let response = app.post_checkout(body).await;
        assert_problem(response, 400).await;
    }
    assert_eq!(upstream.calls().len(), 0);
}

#[tokio::test]
async fn deeply_nested_json_is_a_400_problem_and_the_gateway_keeps_serving() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;
    // 60 000 levels fits in the 64 KiB limit; serde_json gives up at 128.
    let deep = "[".repeat(60_000);

    let response = app.post_checkout(deep).await;

    assert_problem(response, 400).await;
    assert_eq!(
        app.post_checkout(SEED_CHECKOUT).await.status().as_u16(),
        201
    );
    assert_eq!(upstream.calls().len(), 1);
}

#[tokio::test]
async fn json_nested_100000_deep_is_refused_without_a_crash() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;
    // 100 000 bytes: over the body limit, so refused before parsing.
    let deep = "[".repeat(100_000);

    let response = app.post_checkout(deep).await;

    assert_problem(response, 413).await;
    assert_eq!(
        app.post_checkout(SEED_CHECKOUT).await.status().as_u16(),
        201
    );
    assert_eq!(upstream.calls().len(), 1);
}

#[tokio::test]
async fn a_body_not_declared_as_json_is_a_415_problem() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;

    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = app
            .client
            .post(format!("{}/api/checkout", app.address))
            .body(SEED_CHECKOUT);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        assert_problem(request.send().await.unwrap(), 415).await;
    }
    assert_eq!(upstream.calls().len(), 0);
}

#[tokio::test]
async fn a_10_mb_body_is_a_413_problem() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;
    let huge = format!(
        r#"{{"user_id":1,"user_email":"test@example.com","items":[],"pad":"{}"}}"#,
        "x".repeat(10 * 1024 * 1024)
    );

    let response = app.post_checkout(huge).await;

    assert_problem(response, 413).await;
    assert_eq!(upstream.calls().len(), 0);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_a_413_problem() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (app, upstream) = spawn_with(Upstream::Healthy).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();

    // No Content-Length: the limit must hold while reading.
    let head = "POST /api/checkout HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n\
                transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "x".repeat(16 * 1024));
    for _ in 0..8 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break; // the gateway answered and closed early: fine
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;

    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert_eq!(upstream.calls().len(), 0);
}

#[tokio::test]
async fn order_service_409_and_422_problems_are_passed_through_unchanged() {
    for (behaviour, status, member) in [
        (Upstream::PriceChanged, 409, "current_price"),
        (Upstream::UnknownProduct, 422, "errors"),
    ] {
        let (app, upstream) = spawn_with(behaviour).await;

        let response = app.post_checkout(SEED_CHECKOUT).await;

        assert!(!response.headers().contains_key("location"));
        let problem = assert_problem(response, status).await;
        assert!(problem.get(member).is_some(), "{problem}");
        assert_eq!(upstream.calls().len(), 1);
    }
}
