//! The checkout's two events: `order.order.created` and
//! `payment.payment.processed`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Event, check, rfc3339};

/// `order.order.created`: an order was committed and waits for payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCreated {
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
}

/// One line of an order as carried by [`OrderCreated`]; `price` is the unit price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCreatedItem {
    pub product_id: i64,
    pub name: String,
    pub quantity: i32,
    pub price: Decimal,
}

/// Outcome of a payment attempt, as carried by [`PaymentProcessed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    Completed,
    Failed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Completed => "completed",
            PaymentStatus::Failed => "failed",
        }
    }
}

impl std::str::FromStr for PaymentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "completed" => Ok(PaymentStatus::Completed),
            "failed" => Ok(PaymentStatus::Failed),
            other => Err(format!("unknown payment status {other:?}")),
        }
    }
}

/// `payment.payment.processed`: the final outcome of charging an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentProcessed {
    pub event_type: String,
    pub event_id: Uuid,
    #[serde(with = "rfc3339")]
    pub timestamp: DateTime<Utc>,
    pub schema_version: u32,
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub user_id: i64,
    pub user_email: String,
    pub amount: Decimal,
    pub currency: String,
    pub status: PaymentStatus,
    /// `TXN-` + 12 upper-case hex digits when completed, `null` when failed.
    pub transaction_id: Option<String>,
    pub failure_reason: Option<String>,
    /// The order lines, so the email can list them without calling
    /// order-service. An addition to the seed's fields: tolerant readers ignore
    /// it, and a producer that omits it is still accepted.
    #[serde(default)]
    pub items: Vec<OrderCreatedItem>,
}

impl Event for OrderCreated {
    const ROUTING_KEY: &'static str = "order.order.created";
    const EVENT_TYPE: &'static str = "order.created";
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

impl Event for PaymentProcessed {
    const ROUTING_KEY: &'static str = "payment.payment.processed";
    const EVENT_TYPE: &'static str = "payment.processed";
    fn event_id(&self) -> Uuid {
        self.event_id
    }
    fn order_id(&self) -> Uuid {
        self.order_id
    }
    fn check_contract(&self) -> Result<(), String> {
        check(&self.event_type, Self::EVENT_TYPE, self.schema_version)?;
        match (self.status, &self.transaction_id) {
            (PaymentStatus::Completed, None) => {
                Err("completed payment without transaction_id".into())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::str::FromStr;

    fn order_created() -> OrderCreated {
        OrderCreated {
            event_type: OrderCreated::EVENT_TYPE.into(),
            event_id: Uuid::from_u128(1),
            timestamp: DateTime::parse_from_rfc3339("2026-11-23T10:00:00.5+00:00")
                .unwrap()
                .into(),
            schema_version: 1,
            order_id: Uuid::from_u128(2),
            user_id: 1,
            user_email: "test@example.com".into(),
            total_amount: Decimal::from_str("2599.98").unwrap(),
            currency: "USD".into(),
            items: vec![OrderCreatedItem {
                product_id: 1,
                name: "Gaming Laptop".into(),
                quantity: 2,
                price: Decimal::from_str("1299.99").unwrap(),
            }],
        }
    }

    #[test]
    fn order_created_wire_format_is_pinned() {
        let wire = serde_json::to_value(order_created()).unwrap();
        assert_eq!(
            wire,
            json!({
                "event_type": "order.created",
                "event_id": "00000000-0000-0000-0000-000000000001",
                "timestamp": "2026-11-23T10:00:00.500000+00:00",
                "schema_version": 1,
                "order_id": "00000000-0000-0000-0000-000000000002",
                "user_id": 1,
                "user_email": "test@example.com",
                "total_amount": "2599.98",
                "currency": "USD",
                "items": [{"product_id": 1, "name": "Gaming Laptop", "quantity": 2, "price": "1299.99"}]
            })
        );
    }

    #[test]
    fn payment_processed_wire_format_is_pinned() {
        let event = PaymentProcessed {
            event_type: PaymentProcessed::EVENT_TYPE.into(),
            event_id: Uuid::from_u128(3),
            timestamp: DateTime::parse_from_rfc3339("2026-11-23T10:00:01+00:00")
                .unwrap()
                .into(),
            schema_version: 1,
            payment_id: Uuid::from_u128(4),
            order_id: Uuid::from_u128(2),
            user_id: 1,
            user_email: "test@example.com".into(),
            amount: Decimal::from_str("1299.99").unwrap(),
            currency: "USD".into(),
            status: PaymentStatus::Failed,
            transaction_id: None,
            failure_reason: Some("card_declined".into()),
            items: vec![],
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({
                "event_type": "payment.processed",
                "event_id": "00000000-0000-0000-0000-000000000003",
                "timestamp": "2026-11-23T10:00:01.000000+00:00",
                "schema_version": 1,
                "payment_id": "00000000-0000-0000-0000-000000000004",
                "order_id": "00000000-0000-0000-0000-000000000002",
                "user_id": 1,
                "user_email": "test@example.com",
                "amount": "1299.99",
                "currency": "USD",
                "status": "failed",
                "transaction_id": null,
                "failure_reason": "card_declined",
                "items": []
            })
        );
    }

    #[test]
    fn a_seed_style_body_with_extra_fields_and_z_offset_is_accepted() {
        let mut wire = serde_json::to_value(order_created()).unwrap();
        wire["timestamp"] = json!("2026-11-23T10:00:00Z");
        wire["added_later"] = json!(true);
        let event: OrderCreated = serde_json::from_value(wire).unwrap();
        assert!(event.check_contract().is_ok());
    }

    #[test]
    fn a_wrong_event_type_or_schema_version_breaks_the_contract() {
        let mut event = order_created();
        event.schema_version = 2;
        assert!(
            event
                .check_contract()
                .unwrap_err()
                .contains("schema_version")
        );
        let mut event = order_created();
        event.event_type = "payment.processed".into();
        assert!(event.check_contract().unwrap_err().contains("event_type"));
    }
}
