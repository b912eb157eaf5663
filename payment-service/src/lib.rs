//! # payment-service
//!
//! Second step of the checkout flow. Consumes `order.order.created` from
//! `payment_service_queue` (competing consumers: run as many replicas as you
//! like), charges the simulated [`provider`], stores exactly one payment per
//! order and, in the same transaction, the `payment.payment.processed` event in
//! its outbox; the relay publishes it for email-service and order-service.
//!
//! It also refunds charges: it consumes `order.refund.requested` from
//! `payment_service_refund_queue` (sent by order-service when a paid order is
//! cancelled, or when a charge arrives for an order already cancelled),
//! refunds the order's completed payment at the provider, stores at most one
//! refund per order and, in the same statement, the
//! `payment.refund.processed` event in its outbox.
//!
//! - [`config`]: environment variables.
//! - [`startup`]: wires database, broker, the two consumers, relay and HTTP
//!   health.
//! - [`handler`]: one `order.order.created` in, one payment out; and
//!   [`handler::refund`]: one `order.refund.requested` in, at most one
//!   refund out (both idempotent).
//! - [`provider`]: the deterministic payment simulator (charges and refunds).
//! - [`db`]: the SQL; [`db::refunds`]: the refunds table.
//! - [`timeline`]: this service's part of an order's timeline (payment,
//!   refund).

pub mod config;
pub mod db;
pub mod handler;
pub mod provider;
pub mod startup;
pub mod timeline;

pub use config::Settings;
pub use startup::Application;

/// Name used as AMQP `app_id`, consumer name and log field.
pub const SERVICE: &str = "payment-service";
