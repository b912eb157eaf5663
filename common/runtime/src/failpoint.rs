//! Fail points: the process aborts at a named point when the environment
//! variable `FAIL_POINT` names it. Crash tests use them to kill a service at the
//! exact moment a failure window opens (after its commit but before its ack,
//! after a publisher confirm but before the outbox row is marked), which a
//! `kill -9` from outside could only hit by luck.
//!
//! Only builds with the `test-hooks` feature read `FAIL_POINT`: the test
//! builds (`test-support`, a dev-dependency, turns it on). A release build ignores
//! it, so no environment variable can make a production process abort.
//!
//! | name | where |
//! | --- | --- |
//! | `consumer-before-handle` | a delivery arrived; nothing done yet |
//! | `consumer-after-handle` | the handler committed; the ack is not sent |
//! | `relay-before-publish` | the outbox relay holds committed events; none is published |
//! | `relay-after-confirm` | the broker confirmed; the outbox row is not marked |
//! | `email-after-send` | the SMTP server accepted an email; it is not recorded as sent |
//! | `consumer-unknown-ack` | acks a delivery tag the broker never sent (once per process): the broker closes the consumer's channel |

use std::sync::{
    OnceLock,
    atomic::{AtomicBool, Ordering},
};

static ARMED: OnceLock<Option<String>> = OnceLock::new();
static FIRED: AtomicBool = AtomicBool::new(false);

fn armed() -> Option<&'static str> {
    ARMED
        .get_or_init(|| {
            if cfg!(feature = "test-hooks") {
                std::env::var("FAIL_POINT").ok().filter(|v| !v.is_empty())
            } else {
                None
            }
        })
        .as_deref()
}

/// True the first time it is called with the armed fail point's name: for
/// fail points that misbehave once instead of aborting.
pub fn fire_once(name: &str) -> bool {
    armed() == Some(name) && !FIRED.swap(true, Ordering::SeqCst)
}

/// Aborts the process (as SIGKILL would: no unwinding, no cleanup) if `name`
/// is the armed fail point.
pub fn hit(name: &str) {
    if armed() == Some(name) {
        eprintln!("fail point {name} hit: aborting");
        std::process::abort();
    }
}
