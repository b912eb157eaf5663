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
        "/api/orders/{id}/cancel",
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
    let conflict = checkout["responses"]["409"]["description"]
        .as_str()
        .unwrap();
    for cause in [
        "current_prices",
        "/problems/insufficient-stock",
        "available",
    ] {
        assert!(
            conflict.contains(cause),
            "checkout 409 names {cause}: {conflict}"
        );
    }
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
        "cancel_reason",
        "refund",
    ] {
        assert!(order.contains_key(field), "Order.{field} missing");
    }
}

/// Resolves a local `$ref` (`#/components/schemas/X`) in `doc`.
fn resolve<'a>(doc: &'a Value, reference: &Value) -> &'a Value {
    let path = reference.as_str().expect("a $ref").trim_start_matches('#');
    doc.pointer(path)
        .unwrap_or_else(|| panic!("{path} is in the document"))
}

#[tokio::test]
async fn the_openapi_document_describes_cancelling_an_order() {
    let (app, _upstream) = spawn_with(Upstream::Healthy).await;

    let doc: Value = app.get("/api/openapi.json").await.json().await.unwrap();

    let cancel = &doc["paths"]["/api/orders/{id}/cancel"]["post"];
    assert!(
        cancel.is_object(),
        "POST /api/orders/{{id}}/cancel is documented"
    );
    let id = &cancel["parameters"][0];
    assert_eq!((&id["name"], &id["in"]), (&"id".into(), &"path".into()));
    assert_eq!(id["schema"]["format"], "uuid");
    let body = &cancel["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/CancelRequest");
    let responses = &cancel["responses"];
    for status in ["200", "202"] {
        assert_eq!(
            responses[status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Order",
            "cancel {status} is the order"
        );
    }
    for status in [
        "400", "404", "408", "409", "413", "415", "422", "429", "502", "503", "504",
    ] {
        assert_eq!(
            responses[status]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem",
            "cancel {status} is a problem"
        );
    }
    let documented: Vec<&String> = responses.as_object().unwrap().keys().collect();
    assert_eq!(documented.len(), 13, "{documented:?}");
    let conflict = responses["409"]["description"].as_str().unwrap();
    for member in ["/problems/order-not-cancellable", "order_status"] {
        assert!(
            conflict.contains(member),
            "cancel 409 names {member}: {conflict}"
        );
    }
    for status in ["429", "503"] {
        assert!(
            responses[status]["headers"]["Retry-After"].is_object(),
            "cancel {status} has Retry-After"
        );
    }

    let schemas = &doc["components"]["schemas"];
    let request = resolve(&doc, &body["$ref"]);
    assert_eq!(request["additionalProperties"], false);
    assert_eq!(request["required"], serde_json::json!(["user_id"]));
    assert_eq!(request["properties"]["user_id"]["minimum"], 1);
    let states = schemas["OrderState"]["enum"].as_array().unwrap();
    for state in ["cancelled", "refund_pending", "refunded"] {
        assert!(states.contains(&state.into()), "OrderState {state}");
    }
    assert_eq!(
        schemas["CancelReasonSchema"]["enum"],
        serde_json::json!(["customer", "payment_timeout"])
    );
    let refund = schemas["RefundSummary"]["properties"].as_object().unwrap();
    for field in ["transaction_id", "amount", "processed_at"] {
        assert!(refund.contains_key(field), "RefundSummary.{field} missing");
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
