//! The CPU a checkout costs inside order-service, without I/O: what runs per
//! `POST /orders` between reading the body and sending the statement, and
//! what payment-service does to the event it receives.
//!
//! `cargo bench -p order-service --bench checkout`. The figures are per
//! checkout of two lines (the load generator's shape) against a catalog of
//! 1 000 products; see README "Performance" for what they were on the
//! project's machine. A regression here shows before any load test.

use std::{collections::HashMap, hint::black_box};

use chrono::{SubsecRound, Utc};
use contract::{
    api::Product,
    checkout::parse_checkout,
    events::{Event, OrderCreated},
};
use criterion::{Criterion, criterion_group, criterion_main};
use messaging::outbox::OutboxRow;
use order_service::domain::{order, pricing::price_order};
use rust_decimal::Decimal;
use uuid::Uuid;

const BODY: &[u8] = br#"{"user_id":42,"user_email":"lg-bench-1@example.com",
    "items":[{"product_id":1,"quantity":1,"price":"1299.99"},{"product_id":2,"quantity":2}]}"#;

fn catalog() -> HashMap<i64, Product> {
    (1..=1000)
        .map(|id| {
            let product = Product {
                id,
                name: format!("Product {id}"),
                description: "A product of the benchmark's catalog".into(),
                price: if id == 1 {
                    Decimal::new(129_999, 2)
                } else {
                    Decimal::new(id * 100 + 99, 2)
                },
                currency: "USD".into(),
                stock: None,
            };
            (id, product)
        })
        .collect()
}

/// Body to stored-and-answered: what `routes::orders::create_order` computes.
fn accept(body: &[u8], catalog: &HashMap<i64, Product>) -> (OutboxRow, String) {
    let request = parse_checkout(body).unwrap();
    let priced = price_order(&request, catalog).unwrap();
    let id = Uuid::new_v4();
    let created_at = Utc::now().trunc_subsecs(6);
    let pending = order::pending_order(id, &request, &priced, created_at, 0.1);
    let event = OutboxRow::of(&order::created_event(id, &request, &priced, created_at));
    let answer = serde_json::to_string(&pending).unwrap();
    (event, answer)
}

fn checkout(c: &mut Criterion) {
    let catalog = catalog();
    c.bench_function("checkout: parse, validate, price, event, answer", |b| {
        b.iter(|| accept(black_box(BODY), &catalog))
    });

    c.bench_function("checkout: parse_checkout alone (bytes to request)", |b| {
        b.iter(|| parse_checkout(black_box(BODY)).unwrap())
    });

    let (event, _) = accept(BODY, &catalog);
    let payload = event.payload.into_bytes();
    c.bench_function(
        "order.order.created: decode and check, as a consumer does",
        |b| {
            b.iter(|| {
                let event: OrderCreated = serde_json::from_slice(black_box(&payload)).unwrap();
                event.check_contract().unwrap();
                event
            })
        },
    );
}

criterion_group!(benches, checkout);
criterion_main!(benches);
