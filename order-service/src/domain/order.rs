//! The order as the API shows it. The types are `contract::api`'s (shared with
//! the gateway's OpenAPI document); this module builds them from a priced
//! checkout.

use chrono::{DateTime, Utc};
use contract::{
    checkout::CheckoutRequest,
    events::{Event, OrderCreated, OrderCreatedItem, SCHEMA_VERSION},
};
use uuid::Uuid;

use super::pricing::PricedOrder;

pub use contract::api::{Order, OrderLine, OrderStatus, PaymentSummary, RefundSummary};

/// A just-created order, as it is stored (timestamps must already be
/// truncated to PostgreSQL's microseconds, so a later read matches).
pub fn pending_order(
    id: Uuid,
    request: &CheckoutRequest,
    priced: &PricedOrder,
    created_at: DateTime<Utc>,
    processing_duration_ms: f64,
) -> Order {
    Order {
        id,
        status: "pending".to_owned(),
        user_id: request.user_id,
        user_email: request.user_email.clone(),
        total_amount: priced.total,
        currency: priced.currency.clone(),
        items: priced
            .lines
            .iter()
            .map(|l| OrderLine {
                product_id: l.product_id,
                name: l.name.clone(),
                unit_price: l.unit_price,
                quantity: l.quantity,
                line_total: l.line_total,
            })
            .collect(),
        payment: None,
        cancel_reason: None,
        refund: None,
        created_at,
        updated_at: created_at,
        processing_duration_ms,
    }
}

/// The `order.order.created` event of a just-priced order: what payment-service
/// charges and email-service later lists.
pub fn created_event(
    order_id: Uuid,
    request: &CheckoutRequest,
    priced: &PricedOrder,
    timestamp: DateTime<Utc>,
) -> OrderCreated {
    OrderCreated {
        event_type: OrderCreated::EVENT_TYPE.to_owned(),
        event_id: Uuid::new_v4(),
        timestamp,
        schema_version: SCHEMA_VERSION,
        order_id,
        user_id: request.user_id,
        user_email: request.user_email.clone(),
        total_amount: priced.total,
        currency: priced.currency.clone(),
        items: priced
            .lines
            .iter()
            .map(|l| OrderCreatedItem {
                product_id: l.product_id,
                name: l.name.clone(),
                quantity: l.quantity,
                price: l.unit_price,
            })
            .collect(),
    }
}
