//! The names on the broker that services and operators share. How each queue
//! is declared (quorum, retry tiers, dead-lettering) is the messaging
//! runtime's business (`messaging::topology`).

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

/// Every work queue, in the order of the pipeline.
pub const WORK_QUEUES: [&str; 3] = [PAYMENT_QUEUE, EMAIL_QUEUE, ORDER_QUEUE];

/// The routing key work queue `queue` is bound to: the event its service
/// consumes.
pub fn routing_key_of(queue: &str) -> Option<&'static str> {
    use crate::events::{Event, OrderCreated, PaymentProcessed};
    match queue {
        PAYMENT_QUEUE => Some(OrderCreated::ROUTING_KEY),
        EMAIL_QUEUE | ORDER_QUEUE => Some(PaymentProcessed::ROUTING_KEY),
        _ => None,
    }
}
