//! payment-service's integration tests (one test binary): in process
//! against the real PostgreSQL and RabbitMQ, and the real binary for crashes
//! and scaling.

mod app;
mod batched_statements;
mod consumer_timeout;
mod crash;
mod database_outage;
mod payments;
mod refund_races;
mod refunds;
mod replicas;
mod scaling;
mod support;
