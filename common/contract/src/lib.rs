//! # contract — what the outside world and the services agree on
//!
//! Everything here is a fact other programs rely on, and nothing here does
//! I/O, so the gateway and the tests can share it without a broker or a
//! database client:
//!
//! - [`events`]: the events on the wire (the checkout's, the cancellation's
//!   and the refund's) and their envelope.
//! - [`names`]: the exchanges and work queues on the broker.
//! - [`api`]: the public HTTP shapes (order, status, product, timeline) with
//!   their OpenAPI schemas, and [`api::headers`]: header names, their
//!   validation, the body limit, the `Location` of an order.
//! - [`checkout`]: the checkout request, read strictly and validated;
//!   [`cancel`]: the cancel request, read the same way.
//! - [`problem`]: RFC 9457 problem details, the one error shape of the API.

pub mod api;
pub mod cancel;
pub mod checkout;
pub mod events;
pub mod names;
pub mod problem;
