//! # gateway — the public entry point of the checkout pipeline
//!
//! Clients (curl, browsers, the seed scripts) talk only to the gateway, on
//! port 9000. It owns no data: it checks every request as far as it can
//! without the catalog, then calls order-service over HTTP and answers with
//! what order-service said.
//!
//! ```text
//! client ──HTTP──► gateway ──HTTP──► order-service ──► PostgreSQL, RabbitMQ, …
//! ```
//!
//! A tour of the crate, in the order a request meets it:
//!
//! - [`startup`]: binds the port, builds the router (the public API plus
//!   `/health`, `/ready`, `/metrics` and the standard request-id, tracing and
//!   metrics layers from `runtime`) and serves until shutdown.
//! - [`routes`]: the handlers. [`routes::checkout`] rejects a bad checkout
//!   and [`routes::cancel`] a bad cancel (`415`, `413`, `400`, `422`) before
//!   any network hop, using the same validation as order-service
//!   (`contract::checkout`, `contract::cancel`).
//! - [`rate_limit`]: per-client request limits on every route but the
//!   probes (`429` with `Retry-After`).
//! - [`openapi`]: the OpenAPI document (`/api/openapi.json`) and its Swagger
//!   UI page (`/docs`), generated from the handlers and types.
//! - [`order_client`]: the one pooled HTTP client for order-service, with
//!   connect and request timeouts, and the mapping of its answers: 2xx and
//!   4xx passed through, unreachable `503`, too slow `504`, anything else
//!   `502`; at most `ORDER_SERVICE_MAX_CONCURRENCY` calls in flight.
//! - [`error`]: the one error enum; every variant is an RFC 9457 problem, and
//!   `runtime::http` turns any other error answer (a library route's, a
//!   layer's) into one too, so no answer of the gateway is plain text and no
//!   5xx shows internals. The exception is a request hyper cannot parse
//!   (`400`, `414`, `431`): hyper answers it itself, with an empty body,
//!   before any of our code runs.
//! - [`config`]: `BIND_ADDR`, `ORDER_SERVICE_*`, `RATE_LIMIT_*`.

pub mod config;
pub mod error;
pub mod openapi;
pub mod order_client;
pub mod rate_limit;
pub mod routes;
pub mod startup;

pub use config::Settings;
pub use startup::Application;
