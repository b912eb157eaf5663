//! The public HTTP shapes of the API (the order object of `docs/architecture.md`, the order
//! status and the catalog), shared by order-service, which serialises them,
//! and the gateway, whose OpenAPI document is generated from these very types
//! (`utoipa::ToSchema`), so the documentation cannot drift from what is sent.
//!
//! Only public fields: nothing internal (outbox state, event ids, idempotency
//! records) is ever part of these types.

pub mod headers;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Where an order is in the pipeline: `pending` until the payment result
/// arrives, then `paid` or `failed` (final); a `pending` order may be
/// `cancelled` (final); a `paid` order the customer cancels is
/// `refund_pending` until its charge is refunded, then `refunded` (final).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    Pending,
    Paid,
    Failed,
    Cancelled,
    RefundPending,
    Refunded,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Pending => "pending",
            OrderState::Paid => "paid",
            OrderState::Failed => "failed",
            OrderState::Cancelled => "cancelled",
            OrderState::RefundPending => "refund_pending",
            OrderState::Refunded => "refunded",
        }
    }
}

/// Why an order was cancelled: `customer` or `payment_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelReasonSchema {
    Customer,
    PaymentTimeout,
}

/// A refund of the order's charge, once payment-service has made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RefundSummary {
    /// `RFD-` and 12 upper-case hex digits.
    #[schema(example = "RFD-0A1B2C3D4E5F", pattern = "^RFD-[0-9A-F]{12}$")]
    pub transaction_id: String,
    #[schema(value_type = String, example = "1299.99")]
    pub amount: Decimal,
    pub processed_at: DateTime<Utc>,
}

/// One line of an order, priced from the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderLine {
    #[schema(minimum = 1, example = 1)]
    pub product_id: i64,
    #[schema(example = "Gaming Laptop")]
    pub name: String,
    /// The catalog price of one unit when the order was placed.
    #[schema(value_type = String, example = "1299.99")]
    pub unit_price: Decimal,
    #[schema(minimum = 1, maximum = 100, example = 1)]
    pub quantity: i32,
    /// `unit_price × quantity`.
    #[schema(value_type = String, example = "1299.99")]
    pub line_total: Decimal,
}

/// The payment result, once payment-service has processed the order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PaymentSummary {
    /// `completed` or `failed`.
    #[schema(example = "completed")]
    pub status: String,
    /// `TXN-` and 12 upper-case hex digits; `null` when the payment failed.
    #[schema(example = "TXN-9423F6A26202", pattern = "^TXN-[0-9A-F]{12}$")]
    pub transaction_id: Option<String>,
    #[schema(value_type = Option<String>, example = "1299.99")]
    pub amount: Option<Decimal>,
    pub processed_at: Option<DateTime<Utc>>,
    /// Why the payment failed (`card_declined`, `amount_exceeds_limit`, ...);
    /// absent when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "card_declined")]
    pub failure_reason: Option<String>,
}

/// An order (`POST /api/checkout`, `GET /api/orders/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Order {
    /// A random UUID: unguessable, never sequential.
    pub id: Uuid,
    #[schema(value_type = OrderState)]
    pub status: String,
    #[schema(minimum = 1, example = 1)]
    pub user_id: i64,
    #[schema(example = "test@example.com")]
    pub user_email: String,
    /// The sum of the line totals, computed by the server.
    #[schema(value_type = String, example = "1299.99")]
    pub total_amount: Decimal,
    #[schema(example = "USD")]
    pub currency: String,
    pub items: Vec<OrderLine>,
    /// `null` until the payment result has arrived.
    pub payment: Option<PaymentSummary>,
    /// `null` unless the order was cancelled (`customer` or `payment_timeout`).
    #[schema(value_type = Option<CancelReasonSchema>)]
    pub cancel_reason: Option<String>,
    /// `null` unless the order's charge was refunded.
    pub refund: Option<RefundSummary>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// How long order-service took to price and store the order.
    #[schema(example = 3.2)]
    pub processing_duration_ms: f64,
}

/// `GET /api/orders/{id}/status`: the order's state and payment only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderStatus {
    pub id: Uuid,
    #[schema(value_type = OrderState)]
    pub status: String,
    pub payment: Option<PaymentSummary>,
}

impl From<Order> for OrderStatus {
    fn from(order: Order) -> Self {
        Self {
            id: order.id,
            status: order.status,
            payment: order.payment,
        }
    }
}

/// A catalog entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    #[schema(minimum = 1, example = 1)]
    pub id: i64,
    #[schema(example = "Gaming Laptop")]
    pub name: String,
    pub description: String,
    #[schema(value_type = String, example = "1299.99")]
    pub price: Decimal,
    #[schema(example = "USD")]
    pub currency: String,
    /// Units available to order now; `null` when the product's stock is not
    /// tracked (any quantity is accepted).
    #[schema(minimum = 0, example = 1000000)]
    pub stock: Option<i64>,
}

/// One step of an order's way through the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineStep {
    pub at: DateTime<Utc>,
    /// The service that took the step.
    #[schema(example = "payment-service")]
    pub service: String,
    /// `order.created`, `stock.reserved`, `event.published`,
    /// `payment.completed`, `payment.failed`, `order.paid`, `order.failed`,
    /// `order.cancelled`, `stock.released`, `refund.requested`,
    /// `refund.completed`, `order.refunded`, `email.sent`, `email.sending`,
    /// `email.failed`, `message.retry_scheduled`, `message.dead_lettered`.
    #[schema(example = "payment.completed")]
    pub step: String,
    /// What a person needs to know about it (amount, transaction id, decline
    /// code, email kind). A service's own `/timeline/{id}` (internal port)
    /// also gives retry and dead-letter causes; the public timeline replaces
    /// them with a fixed wording.
    #[schema(example = "TXN-9423F6A26202")]
    pub detail: Option<String>,
}

/// `GET /api/orders/{id}/timeline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderTimeline {
    pub order_id: Uuid,
    #[schema(value_type = OrderState)]
    pub status: String,
    /// Every step known so far, oldest first.
    pub steps: Vec<TimelineStep>,
    /// Services whose part could not be read just now (the steps shown are
    /// then only part of the story); empty normally.
    #[schema(example = json!([]))]
    pub incomplete: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_states_serialise_lowercase() {
        assert_eq!(
            serde_json::to_value(OrderState::Pending).unwrap(),
            serde_json::json!("pending")
        );
        assert_eq!(
            serde_json::from_value::<OrderState>(serde_json::json!("paid")).unwrap(),
            OrderState::Paid
        );
        assert_eq!(
            serde_json::to_value(OrderState::RefundPending).unwrap(),
            serde_json::json!("refund_pending")
        );
        for state in [
            OrderState::Pending,
            OrderState::Paid,
            OrderState::Failed,
            OrderState::Cancelled,
            OrderState::RefundPending,
            OrderState::Refunded,
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
    }
}
