//! # payment-service
//!
//! Second step of the checkout flow. Consumes `order.order.created` from
//! `payment_service_queue` (competing consumers: run as many replicas as you
//! like), charges the simulated [`provider`], stores exactly one payment per
//! order and, in the same transaction, the `payment.payment.processed` event in
//! its outbox; the relay publishes it for email-service and order-service.
//!
//! - [`config`]: environment variables.
//! - [`startup`]: wires database, broker, consumer, relay and HTTP health.
//! - [`handler`]: one `order.order.created` in, one payment out (idempotent).
//! - [`provider`]: the deterministic payment simulator.
//! - [`db`]: the SQL.

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
