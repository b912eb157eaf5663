//! The names on the broker that services and operators share. How each queue
//! is declared (quorum, retry tiers, dead-lettering) is the messaging
//! runtime's business (`messaging::topology`).
//!
//! One work queue per event a service consumes: a queue carries one event
//! type, so each has its own retries, dead-letter queue and depth.

/// The topic exchange every event is published to.
pub const EXCHANGE: &str = "ecommerce_events";
/// Where parked messages go, routed by their work queue's name.
pub const DEAD_LETTER_EXCHANGE: &str = "ecommerce_events.dlx";

/// payment-service's work queue: `order.order.created`.
pub const PAYMENT_QUEUE: &str = "payment_service_queue";
/// email-service's work queue: `payment.payment.processed`.
pub const EMAIL_QUEUE: &str = "email_service_queue";
/// order-service's work queue: `payment.payment.processed`.
pub const ORDER_QUEUE: &str = "order_service_queue";
/// payment-service's refunds: `order.refund.requested`.
pub const PAYMENT_REFUND_QUEUE: &str = "payment_service_refund_queue";
/// order-service's refund results: `payment.refund.processed`.
pub const ORDER_REFUND_QUEUE: &str = "order_service_refund_queue";
/// email-service's refund emails: `payment.refund.processed`.
pub const EMAIL_REFUND_QUEUE: &str = "email_service_refund_queue";
/// email-service's cancellation emails: `order.order.cancelled`.
pub const EMAIL_CANCELLATION_QUEUE: &str = "email_service_cancellation_queue";

/// Every work queue, in the order of the pipeline.
pub const WORK_QUEUES: [&str; 7] = [
    PAYMENT_QUEUE,
    EMAIL_QUEUE,
    ORDER_QUEUE,
    EMAIL_CANCELLATION_QUEUE,
    PAYMENT_REFUND_QUEUE,
    ORDER_REFUND_QUEUE,
    EMAIL_REFUND_QUEUE,
];

/// The routing key work queue `queue` is bound to: the event its service
/// consumes.
pub fn routing_key_of(queue: &str) -> Option<&'static str> {
    use crate::events::{
        Event, OrderCancelled, OrderCreated, PaymentProcessed, RefundProcessed, RefundRequested,
    };
    match queue {
        PAYMENT_QUEUE => Some(OrderCreated::ROUTING_KEY),
        EMAIL_QUEUE | ORDER_QUEUE => Some(PaymentProcessed::ROUTING_KEY),
        EMAIL_CANCELLATION_QUEUE => Some(OrderCancelled::ROUTING_KEY),
        PAYMENT_REFUND_QUEUE => Some(RefundRequested::ROUTING_KEY),
        ORDER_REFUND_QUEUE | EMAIL_REFUND_QUEUE => Some(RefundProcessed::ROUTING_KEY),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_work_queue_has_an_event() {
        for queue in WORK_QUEUES {
            assert!(routing_key_of(queue).is_some(), "{queue}");
        }
        assert_eq!(routing_key_of("nope"), None);
    }
}
