//! The events of cancellation and refunds: `order.order.cancelled`,
//! `order.refund.requested` and `payment.refund.processed`.
//!
//! An order that is cancelled before it was paid gets `order.order.cancelled`
//! (its units are back in stock). A charge that must be given back, because
//! the customer cancelled a paid order or because the payment arrived for an
//! order already cancelled, gets `order.refund.requested`; payment-service
//! refunds it and answers `payment.refund.processed`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Event, OrderCreatedItem, check, rfc3339};

/// Why an order was cancelled (the order's `cancel_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The customer asked (`POST /api/orders/{id}/cancel`).
    Customer,
    /// No payment result within `ORDER_PAYMENT_TIMEOUT_SECS`.
    PaymentTimeout,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::Customer => "customer",
            CancelReason::PaymentTimeout => "payment_timeout",
        }
    }
}

impl std::str::FromStr for CancelReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "customer" => Ok(CancelReason::Customer),
            "payment_timeout" => Ok(CancelReason::PaymentTimeout),
            other => Err(format!("unknown cancel reason {other:?}")),
        }
    }
}

/// `order.order.cancelled`: a pending order was cancelled; its units are
/// available again. Nothing was charged for it so far; a charge that
/// arrives later is refunded (`order.refund.requested`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub event_type: String,
    pub event_id: Uuid,
    #[serde(with = "rfc3339")]
    pub timestamp: DateTime<Utc>,
    pub schema_version: u32,
    pub order_id: Uuid,
    pub user_id: i64,
    pub user_email: String,
    pub total_amount: Decimal,
    pub currency: String,
    pub items: Vec<OrderCreatedItem>,
    pub reason: CancelReason,
}

/// `order.refund.requested`: give back the charge of an order (a paid
/// order the customer cancelled, or a charge for an order cancelled
/// before it arrived).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundRequested {
    pub event_type: String,
    pub event_id: Uuid,
    #[serde(with = "rfc3339")]
    pub timestamp: DateTime<Utc>,
    pub schema_version: u32,
    pub order_id: Uuid,
    /// The charge to refund, from its `payment.payment.processed`.
    pub payment_id: Uuid,
    pub transaction_id: String,
    pub user_id: i64,
    pub user_email: String,
    pub amount: Decimal,
    pub currency: String,
    pub items: Vec<OrderCreatedItem>,
    pub reason: CancelReason,
}

/// `payment.refund.processed`: the charge of an order was refunded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundProcessed {
    pub event_type: String,
    pub event_id: Uuid,
    #[serde(with = "rfc3339")]
    pub timestamp: DateTime<Utc>,
    pub schema_version: u32,
    pub refund_id: Uuid,
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub user_id: i64,
    pub user_email: String,
    pub amount: Decimal,
    pub currency: String,
    /// The refunded charge's `TXN-` id.
    pub transaction_id: String,
    /// The refund's own id at the provider: `RFD-` + 12 upper-case hex digits.
    pub refund_transaction_id: String,
    pub items: Vec<OrderCreatedItem>,
}

macro_rules! event {
    ($type:ty, $routing_key:literal, $event_type:literal) => {
        impl Event for $type {
            const ROUTING_KEY: &'static str = $routing_key;
            const EVENT_TYPE: &'static str = $event_type;
            fn event_id(&self) -> Uuid {
                self.event_id
            }
            fn order_id(&self) -> Uuid {
                self.order_id
            }
            fn check_contract(&self) -> Result<(), String> {
                check(&self.event_type, Self::EVENT_TYPE, self.schema_version)
            }
        }
    };
}

event!(OrderCancelled, "order.order.cancelled", "order.cancelled");
event!(
    RefundRequested,
    "order.refund.requested",
    "refund.requested"
);
event!(
    RefundProcessed,
    "payment.refund.processed",
    "refund.processed"
);

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use serde_json::json;

    use super::*;

    fn at(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw).unwrap().into()
    }

    fn laptop() -> Vec<OrderCreatedItem> {
        vec![OrderCreatedItem {
            product_id: 1,
            name: "Gaming Laptop".into(),
            quantity: 1,
            price: Decimal::from_str("1299.99").unwrap(),
        }]
    }

    const LAPTOP: &str =
        r#"[{"product_id": 1, "name": "Gaming Laptop", "quantity": 1, "price": "1299.99"}]"#;

    #[test]
    fn order_cancelled_wire_format_is_pinned() {
        let event = OrderCancelled {
            event_type: OrderCancelled::EVENT_TYPE.into(),
            event_id: Uuid::from_u128(1),
            timestamp: at("2026-12-03T10:00:00+00:00"),
            schema_version: 1,
            order_id: Uuid::from_u128(2),
            user_id: 7,
            user_email: "test@example.com".into(),
            total_amount: Decimal::from_str("1299.99").unwrap(),
            currency: "USD".into(),
            items: laptop(),
            reason: CancelReason::PaymentTimeout,
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({
                "event_type": "order.cancelled",
                "event_id": "00000000-0000-0000-0000-000000000001",
                "timestamp": "2026-12-03T10:00:00.000000+00:00",
                "schema_version": 1,
                "order_id": "00000000-0000-0000-0000-000000000002",
                "user_id": 7,
                "user_email": "test@example.com",
                "total_amount": "1299.99",
                "currency": "USD",
                "items": serde_json::from_str::<serde_json::Value>(LAPTOP).unwrap(),
                "reason": "payment_timeout"
            })
        );
        assert!(event.check_contract().is_ok());
    }

    #[test]
    fn refund_requested_wire_format_is_pinned() {
        let event = RefundRequested {
            event_type: RefundRequested::EVENT_TYPE.into(),
            event_id: Uuid::from_u128(3),
            timestamp: at("2026-12-03T10:00:01+00:00"),
            schema_version: 1,
            order_id: Uuid::from_u128(2),
            payment_id: Uuid::from_u128(4),
            transaction_id: "TXN-9423F6A26202".into(),
            user_id: 7,
            user_email: "test@example.com".into(),
            amount: Decimal::from_str("1299.99").unwrap(),
            currency: "USD".into(),
            items: laptop(),
            reason: CancelReason::Customer,
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({
                "event_type": "refund.requested",
                "event_id": "00000000-0000-0000-0000-000000000003",
                "timestamp": "2026-12-03T10:00:01.000000+00:00",
                "schema_version": 1,
                "order_id": "00000000-0000-0000-0000-000000000002",
                "payment_id": "00000000-0000-0000-0000-000000000004",
                "transaction_id": "TXN-9423F6A26202",
                "user_id": 7,
                "user_email": "test@example.com",
                "amount": "1299.99",
                "currency": "USD",
                "items": serde_json::from_str::<serde_json::Value>(LAPTOP).unwrap(),
                "reason": "customer"
            })
        );
    }

    #[test]
    fn refund_processed_wire_format_is_pinned() {
        let event = RefundProcessed {
            event_type: RefundProcessed::EVENT_TYPE.into(),
            event_id: Uuid::from_u128(5),
            timestamp: at("2026-12-03T10:00:02+00:00"),
            schema_version: 1,
            refund_id: Uuid::from_u128(6),
            payment_id: Uuid::from_u128(4),
            order_id: Uuid::from_u128(2),
            user_id: 7,
            user_email: "test@example.com".into(),
            amount: Decimal::from_str("1299.99").unwrap(),
            currency: "USD".into(),
            transaction_id: "TXN-9423F6A26202".into(),
            refund_transaction_id: "RFD-0A1B2C3D4E5F".into(),
            items: laptop(),
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({
                "event_type": "refund.processed",
                "event_id": "00000000-0000-0000-0000-000000000005",
                "timestamp": "2026-12-03T10:00:02.000000+00:00",
                "schema_version": 1,
                "refund_id": "00000000-0000-0000-0000-000000000006",
                "payment_id": "00000000-0000-0000-0000-000000000004",
                "order_id": "00000000-0000-0000-0000-000000000002",
                "user_id": 7,
                "user_email": "test@example.com",
                "amount": "1299.99",
                "currency": "USD",
                "transaction_id": "TXN-9423F6A26202",
                "refund_transaction_id": "RFD-0A1B2C3D4E5F",
                "items": serde_json::from_str::<serde_json::Value>(LAPTOP).unwrap()
            })
        );
    }

    #[test]
    fn an_unknown_cancel_reason_is_refused() {
        let body = json!({
            "event_type": "order.cancelled", "event_id": Uuid::from_u128(1),
            "timestamp": "2026-12-03T10:00:00Z", "schema_version": 1,
            "order_id": Uuid::from_u128(2), "user_id": 7, "user_email": "a@example.com",
            "total_amount": "1.00", "currency": "USD", "items": [], "reason": "whim"
        });
        assert!(serde_json::from_value::<OrderCancelled>(body).is_err());
        assert_eq!(
            CancelReason::from_str("customer"),
            Ok(CancelReason::Customer)
        );
    }

    #[test]
    fn routing_keys_name_service_entity_and_verb() {
        for key in [
            OrderCancelled::ROUTING_KEY,
            RefundRequested::ROUTING_KEY,
            RefundProcessed::ROUTING_KEY,
        ] {
            assert_eq!(key.split('.').count(), 3, "{key}");
        }
    }
}
