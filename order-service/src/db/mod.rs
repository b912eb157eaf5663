//! SQL, one statement per small function.

pub mod idempotency;
pub mod orders;
pub mod products;
pub mod settlement;
