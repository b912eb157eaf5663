//! The consumers' business logic: payment results and refund results.

mod payments;
mod refunds;

pub use payments::PaymentResultHandler;
pub use refunds::RefundResultHandler;
