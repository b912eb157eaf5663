//! The events that become emails, and what each one's email holds: the one
//! place that knows their fields. The handler and the composer are written
//! once, for any [`EmailEvent`].

use contract::events::{
    Event, OrderCancelled, OrderCreatedItem, PaymentProcessed, PaymentStatus, RefundProcessed,
};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::templates::Outcome;

/// An event that asks for one email to the customer.
pub trait EmailEvent: Event {
    /// What the email holds, as the event has it (the composer checks and
    /// cleans it).
    fn letter(&self) -> Letter<'_>;
}

/// What the [`Composer`](super::Composer) needs from an event.
#[derive(Debug, Clone)]
pub struct Letter<'a> {
    pub order_id: Uuid,
    /// The customer's address, not parsed yet.
    pub recipient: &'a str,
    pub items: &'a [OrderCreatedItem],
    /// The amount under the lines: the order's total, or the amount refunded.
    pub amount: Decimal,
    pub currency: &'a str,
    /// What happened; it decides the kind of email.
    pub outcome: Outcome,
}

/// A confirmation when the payment completed, a payment-failed email when
/// it did not.
impl EmailEvent for PaymentProcessed {
    fn letter(&self) -> Letter<'_> {
        let outcome = match self.status {
            PaymentStatus::Completed => Outcome::Paid {
                // check_contract guarantees it for completed payments.
                transaction_id: self.transaction_id.as_deref().unwrap_or("-").to_owned(),
            },
            PaymentStatus::Failed => Outcome::PaymentFailed {
                reason: self
                    .failure_reason
                    .as_deref()
                    .unwrap_or("unknown")
                    .to_owned(),
            },
        };
        Letter {
            order_id: self.order_id,
            recipient: &self.user_email,
            items: &self.items,
            amount: self.amount,
            currency: &self.currency,
            outcome,
        }
    }
}

/// The order was cancelled before it was paid: why, and what it held.
impl EmailEvent for OrderCancelled {
    fn letter(&self) -> Letter<'_> {
        Letter {
            order_id: self.order_id,
            recipient: &self.user_email,
            items: &self.items,
            amount: self.total_amount,
            currency: &self.currency,
            outcome: Outcome::Cancelled {
                reason: self.reason,
            },
        }
    }
}

/// The order's charge was refunded: how much, which charge, which refund.
impl EmailEvent for RefundProcessed {
    fn letter(&self) -> Letter<'_> {
        Letter {
            order_id: self.order_id,
            recipient: &self.user_email,
            items: &self.items,
            amount: self.amount,
            currency: &self.currency,
            outcome: Outcome::Refunded {
                transaction_id: self.transaction_id.clone(),
                refund_transaction_id: self.refund_transaction_id.clone(),
            },
        }
    }
}
