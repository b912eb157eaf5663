//! The order domain: pricing from the catalog (pure, unit-tested) and the
//! order's public JSON shape.

pub mod order;
pub mod pricing;
