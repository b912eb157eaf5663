//! SQL, one statement per small function.

pub mod orders;
pub mod products;
