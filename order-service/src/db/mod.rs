//! SQL, one statement per small function.

pub mod cancellation;
pub mod idempotency;
pub mod orders;
pub mod products;
pub mod refunds;
pub mod settlement;
pub mod stock;
