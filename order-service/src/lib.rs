//! # order-service
//!
//! First step of the checkout flow, behind the gateway. For `POST /orders` it
//! prices the order from its own catalog (a client price is only checked,
//! never used), then stores the order, its items and the
//! `order.order.created` event in one statement (transactional outbox); the
//! relay publishes the event for payment-service. It also consumes
//! `payment.payment.processed` from `order_service_queue` and moves the order
//! to `paid` or `failed`.
//!
//! - [`config`]: environment variables.
//! - [`startup`]: wires database, broker, relay, consumer and the HTTP API.
//! - [`routes`]: the internal HTTP API the gateway calls; [`error`]: its errors.
//! - [`catalog`]: the products, held in memory and refreshed.
//! - [`domain`]: pricing (pure) and the order's JSON shape.
//! - [`handler`]: applies payment results (idempotent).
//! - [`db`]: the SQL.
//! - [`stock_command`]: the binary's command line and `stock set|show`.

pub mod catalog;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod expiry;
pub mod handler;
pub mod routes;
pub mod startup;
pub mod stock_command;
pub mod timeline;

pub use config::Settings;
pub use startup::Application;

/// Name used as AMQP `app_id`, consumer name and log field.
pub const SERVICE: &str = "order-service";
