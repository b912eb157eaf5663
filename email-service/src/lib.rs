//! # email-service
//!
//! Last step of the checkout flow, and the customer's news of what happened
//! to an order afterwards. Consumes three queues and sends the customer at
//! most one email of each kind per order over SMTP:
//!
//! - `payment.payment.processed` (`email_service_queue`): an order
//!   confirmation (subject `Order Confirmation - Order #<order_id>`, the
//!   items, total and transaction id) when the payment completed, a
//!   payment-failed email with the reason when it did not;
//! - `order.order.cancelled` (`email_service_cancellation_queue`): `Order
//!   Cancelled - Order #<order_id>`, why, the items and total, and that any
//!   payment still arriving for it is refunded;
//! - `payment.refund.processed` (`email_service_refund_queue`): `Refund
//!   Processed - Order #<order_id>`, the amount, the refunded charge's and the
//!   refund's ids, the items.
//!
//! Each has a plain-text and an HTML part and a `Message-ID` derived from the
//! order and the kind.
//!
//! It publishes nothing, so it has no outbox. "At most one email of a kind
//! per order" is the `email_log` row of the order and kind, claimed for a
//! lease before the SMTP conversation and marked sent after it (see
//! [`handler`] for the one window left open, W6). An SMTP outage is retried
//! through the retry tiers (10 s, 60 s, 5 min by default); a mail the server
//! refuses for good (5xx) is parked.
//!
//! - [`config`]: environment variables.
//! - [`startup`]: wires database, broker, SMTP, consumers and HTTP health.
//! - [`handler`]: one event in, at most one email out, for any event that
//!   asks for an email.
//! - [`email`] and [`templates`]: from an event to the message, its text and
//!   HTML bodies.
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
