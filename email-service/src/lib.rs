//! # email-service
//!
//! Last step of the checkout flow. Consumes `payment.payment.processed` from
//! `email_service_queue` and sends the customer exactly one email per order
//! over SMTP: an order confirmation (subject `Order Confirmation - Order
//! #<order_id>`, the items, total and transaction id) when the payment
//! completed, a payment-failed email with the reason when it did not. Each has
//! a plain-text and an HTML part and a `Message-ID` derived from the order.
//!
//! It publishes nothing, so it has no outbox. "Exactly one email per order" is
//! the `email_log` row of the order, claimed for a lease before the SMTP
//! conversation and marked sent after it (see [`handler`] for the one window
//! left open, W6). An SMTP outage is retried through the retry tiers (10 s,
//! 60 s, 5 min by default); a mail the server refuses for good (5xx) is parked.
//!
//! - [`config`]: environment variables.
//! - [`startup`]: wires database, broker, SMTP, consumer and HTTP health.
//! - [`handler`]: one `payment.payment.processed` in, at most one email out.
//! - [`email`] and [`templates`]: the message, its text and HTML bodies.
//! - [`smtp`]: the lettre transport, error classification, the SMTP probe.
//! - [`db`]: the SQL.

pub mod config;
pub mod db;
pub mod email;
pub mod handler;
pub mod smtp;
pub mod startup;
pub mod templates;
pub mod timeline;

pub use config::Settings;
pub use startup::Application;

/// Name used as AMQP `app_id`, consumer name and log field.
pub const SERVICE: &str = "email-service";
