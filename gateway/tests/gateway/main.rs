//! The gateway over real HTTP: the real application on port 0, in front of a
//! small fake order-service (these tests are about how the gateway treats its
//! upstream, so the upstream's answers are scripted).

mod cancel;
mod checkout;
mod docs;
mod hardening;
mod helpers;
mod limits;
mod reads;
mod upstream_failures;
