//! # runtime — what every service process runs on
//!
//! The part of the shared code a service needs whether or not it talks to a
//! broker or a database (the gateway talks to neither), so every service has
//! the same shape:
//!
//! - [`service`]: the whole `main` of a service binary (`--help`,
//!   `--version`, restart in place after a failure, drain on SIGTERM), the
//!   [`service::Tasks`] it runs and the start-up server that answers probes
//!   while it connects.
//! - [`config`]: environment variables whose errors name the variable.
//! - [`telemetry`] and [`trace_context`]: JSON logs, W3C trace context,
//!   optional OTLP export.
//! - [`http`]: the HTTP stack every service serves with (request ids,
//!   problem answers, timeouts, metrics with bounded labels).
//! - [`health`] and [`metrics`]: `/health`, `/ready`, `/metrics`.
//! - [`shutdown`]: SIGTERM and Ctrl-C.
//! - [`failpoint`]: named crash points, compiled into test builds only.
//!
//! The broker and the database are in the `messaging` crate; the contract
//! (events, API shapes, problem details) in `contract`.

pub mod config;
pub mod failpoint;
pub mod health;
pub mod http;
pub mod metrics;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod trace_context;
