//! # common — the shared library of the checkout pipeline
//!
//! Every service of the workspace (`gateway`, `order-service`,
//! `payment-service`, `email-service`) is built from these parts, so they all
//! have the same shape and the same guarantees:
//!
//! - [`events`]: the event contract on the wire (`order.order.created`,
//!   `payment.payment.processed`).
//! - [`api`]: the public HTTP shapes (order, status, product), with their
//!   OpenAPI schemas.
//! - [`checkout`] and [`problem`]: the checkout request with its validation, and
//!   RFC 9457 problem details, shared by the gateway and order-service.
//! - [`config`], [`telemetry`], [`shutdown`], [`health`], [`metrics`]: env-var
//!   configuration whose errors name the variable, logging, SIGTERM handling,
//!   `/health` + `/ready` + `/metrics`.
//! - [`db`]: the PostgreSQL pool, database created if missing and migrated.
//! - [`messaging`]: the RabbitMQ runtime: topology, confirmed publishing,
//!   supervised consumers with retries and dead-lettering, transactional outbox
//!   and inbox.
//! - [`timeline`]: each service's part of an order's timeline.
//! - [`service`]: runs a service's tasks and shuts them down in order.
//! - `testing` (feature `test-utils`): fresh databases, unique broker names,
//!   an in-process SMTP server and bounded polling for the services' tests.

pub mod config;
pub mod db;
pub mod failpoint;
pub mod health;
pub mod http;
pub mod messaging;
pub mod metrics;
pub mod service;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "test-utils")]
pub mod testing;
pub mod timeline;
pub mod trace_context;
