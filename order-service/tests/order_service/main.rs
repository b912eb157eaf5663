//! order-service's integration tests (one test binary): in process against
//! the real PostgreSQL and RabbitMQ, and the real binary for crashes and
//! trace propagation.

mod cancellation;
mod catalog;
mod crash;
mod database_outage;
mod helpers;
mod orders;
mod relay;
mod stock;
mod stock_command;
mod trace;
