//! The whole pipeline in one process, against the real PostgreSQL, RabbitMQ
//! and an in-process SMTP server: one module per scenario; and the
//! repository's own checks (`repository`, `layout`). One test binary.

mod broker_alarm;
mod broker_outage;
mod broker_restart;
mod checkout_flow;
mod cluster;
mod compose_config;
mod deployment;
mod idempotency;
mod kubernetes;
mod layout;
mod least_privilege;
mod metrics;
mod otlp;
mod postgres_crash;
mod prometheus;
mod repository;
mod saga;
mod saga_faults;
mod schemathesis;
mod timeline;
mod traces;
