//! email-service's integration tests (one test binary), against the real
//! PostgreSQL and RabbitMQ and an in-process SMTP server.

mod batched_statements;
mod browser;
mod crash;
mod database_outage;
mod emails;
mod fake_smtp;
mod kinds;
mod kinds_once;
mod smtp_failures;
mod support;
