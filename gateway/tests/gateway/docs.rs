//! The OpenAPI document and the docs page. That the document matches what
//! the API really answers is checked by Schemathesis against the whole
//! pipeline (`e2e/tests/e2e/schemathesis.rs`); these tests check it is served
//! and states the contracts clients rely on.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Upstream, spawn_with};

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_the_problem_shape() {
    let (app, _upstream) = spawn_with(Upstream::Healthy).await;

    let response = app.get("/api/openapi.json").await;

    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/checkout",
        "/api/orders/{id}",
        "/api/orders/{id}/status",
        "/api/products",
        "/api/products/{id}",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    let checkout = &doc["paths"]["/api/checkout"]["post"];
    for status in [
        "201", "400", "409", "413", "415", "422", "429", "502", "503", "504",
    ] {
        assert!(
            checkout["responses"].get(status).is_some(),
            "checkout {status} undocumented"
        );
    }
    assert!(checkout["responses"]["422"]["content"]["application/problem+json"].is_object());
    let schemas = &doc["components"]["schemas"];
    // Unknown fields are refused, and the limits are stated.
    assert_eq!(schemas["CheckoutRequest"]["additionalProperties"], false);
    assert_eq!(
        schemas["CheckoutRequest"]["properties"]["items"]["maxItems"],
        50
    );
    assert_eq!(
        schemas["CheckoutItem"]["properties"]["quantity"]["maximum"],
        100
    );
    let problem = schemas["Problem"]["properties"].as_object().unwrap();
    for member in ["type", "title", "status", "detail", "errors", "request_id"] {
        assert!(problem.contains_key(member), "Problem.{member} missing");
    }
    let order = schemas["Order"]["properties"].as_object().unwrap();
    for field in [
        "id",
        "status",
        "user_id",
        "user_email",
        "total_amount",
        "currency",
        "items",
        "payment",
        "created_at",
        "updated_at",
        "processing_duration_ms",
    ] {
        assert!(order.contains_key(field), "Order.{field} missing");
    }
}

#[tokio::test]
async fn the_docs_page_is_served_without_network_access() {
    let (app, _upstream) = spawn_with(Upstream::Healthy).await;

    let page = app.get("/docs/").await;

    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Its script and the document it loads come from the gateway itself.
    let init = app.get("/docs/swagger-initializer.js").await;
    assert_eq!(init.status(), StatusCode::OK);
    assert!(init.text().await.unwrap().contains("/api/openapi.json"));
    let redirect = app.get("/docs").await;
    assert!(redirect.status().is_redirection() || redirect.status() == StatusCode::OK);
}
