//! The order as the API shows it (DESIGN.md's order object). Only public
//! fields: nothing internal (outbox state, event ids) is ever serialised.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OrderLine {
    pub product_id: i64,
    pub name: String,
    pub unit_price: Decimal,
    pub quantity: i32,
    pub line_total: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaymentSummary {
    pub status: String,
    pub transaction_id: Option<String>,
    pub amount: Option<Decimal>,
    pub processed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Order {
    pub id: Uuid,
    pub status: String,
    pub user_id: i64,
    pub user_email: String,
    pub total_amount: Decimal,
    pub currency: String,
    pub items: Vec<OrderLine>,
    pub payment: Option<PaymentSummary>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub processing_duration_ms: f64,
}

impl Order {
    /// A just-created order, as it is stored (timestamps must already be
    /// truncated to PostgreSQL's microseconds, so a later read matches).
    pub fn pending(
        id: Uuid,
        request: &common::checkout::CheckoutRequest,
        priced: &super::pricing::PricedOrder,
        created_at: DateTime<Utc>,
        processing_duration_ms: f64,
    ) -> Self {
        Self {
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
            created_at,
            updated_at: created_at,
            processing_duration_ms,
        }
    }
}

/// `GET /orders/{id}/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderStatus {
    pub id: Uuid,
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
