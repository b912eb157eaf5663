//! Events as the services publish them, for tests that feed a consumer or
//! compare what one published.

use chrono::Utc;
use contract::events::{
    Event, OrderCreated, OrderCreatedItem, PaymentProcessed, PaymentStatus, SCHEMA_VERSION,
};
use rust_decimal::Decimal;
use uuid::Uuid;

fn laptop() -> OrderCreatedItem {
    OrderCreatedItem {
        product_id: 1,
        name: "Gaming Laptop".into(),
        quantity: 1,
        price: Decimal::new(129_999, 2),
    }
}

/// An `order.order.created` event for a fresh order of one Gaming Laptop line
/// (1299.99), from `email`.
pub fn order_created(email: &str) -> OrderCreated {
    let price = laptop().price;
    OrderCreated {
        event_type: OrderCreated::EVENT_TYPE.into(),
        event_id: Uuid::new_v4(),
        timestamp: Utc::now(),
        schema_version: SCHEMA_VERSION,
        order_id: Uuid::new_v4(),
        user_id: 1,
        user_email: email.into(),
        total_amount: price,
        currency: "USD".into(),
        items: vec![laptop()],
    }
}

/// A completed payment for a fresh order of one Gaming Laptop and two
/// Wireless Mice (1359.97), from `email`.
pub fn payment_completed(email: &str) -> PaymentProcessed {
    PaymentProcessed {
        event_type: PaymentProcessed::EVENT_TYPE.into(),
        event_id: Uuid::new_v4(),
        timestamp: Utc::now(),
        schema_version: SCHEMA_VERSION,
        payment_id: Uuid::new_v4(),
        order_id: Uuid::new_v4(),
        user_id: 1,
        user_email: email.into(),
        amount: Decimal::new(135_997, 2),
        currency: "USD".into(),
        status: PaymentStatus::Completed,
        transaction_id: Some(format!(
            "TXN-{}",
            &Uuid::new_v4().simple().to_string().to_uppercase()[..12]
        )),
        failure_reason: None,
        items: vec![
            laptop(),
            OrderCreatedItem {
                product_id: 2,
                name: "Wireless Mouse".into(),
                quantity: 2,
                price: Decimal::new(2_999, 2),
            },
        ],
    }
}

/// [`payment_completed`], declined by the provider for `reason`.
pub fn payment_declined(email: &str, reason: &str) -> PaymentProcessed {
    PaymentProcessed {
        status: PaymentStatus::Failed,
        transaction_id: None,
        failure_reason: Some(reason.into()),
        ..payment_completed(email)
    }
}

/// The outcome `status` of order `order_id`, one Gaming Laptop (the seed
/// checkout) from `test@example.com`.
pub fn payment_for(order_id: Uuid, status: PaymentStatus) -> PaymentProcessed {
    let payment = match status {
        PaymentStatus::Completed => payment_completed("test@example.com"),
        PaymentStatus::Failed => payment_declined("test@example.com", "card_declined"),
    };
    PaymentProcessed {
        order_id,
        amount: laptop().price,
        items: vec![laptop()],
        ..payment
    }
}
