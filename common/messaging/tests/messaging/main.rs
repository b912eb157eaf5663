//! The messaging runtime's integration tests, against the real local
//! PostgreSQL and RabbitMQ (one test binary for the crate).

mod acks;
mod batch;
mod broker;
mod migrations;
mod pools;
mod topology;
