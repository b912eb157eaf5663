//! The simulated payment provider. Deterministic, so demos and tests can ask
//! for each outcome (`docs/architecture.md`):
//!
//! - amounts above `PAYMENT_DECLINE_ABOVE` are declined (`amount_exceeds_limit`);
//! - an email whose local part ends in `+decline` is declined (`card_declined`);
//! - one ending in `+flaky` fails transiently on its first two attempts and
//!   succeeds on the third (it exercises the retry path); the attempt number
//!   travels with the message, so this holds across replicas and restarts;
//! - everything else is approved with a `TXN-` + 12 hex digits transaction id.
//!
//! Refunds ([`Provider::refund`]) are never declined: a `+flaky` address
//! fails transiently on the first two attempts as for charges, and anything
//! else is refunded with a `RFD-` + 12 hex digits refund id.
//!
//! Every call waits `PAYMENT_DELAY_MS`, like the seed's `sleep(1)`.

use contract::events::{OrderCreated, RefundRequested};

/// Why a charge is declined: `card_declined` (a `+decline` address),
/// `amount_exceeds_limit` (above `PAYMENT_DECLINE_ABOVE`).
pub const DECLINE_REASONS: [&str; 2] = ["card_declined", "amount_exceeds_limit"];
use uuid::Uuid;

use crate::config::ProviderSettings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    Approved { transaction_id: String },
    Declined { reason: &'static str },
}

/// The provider could not answer this time; the charge may be retried.
#[derive(Debug, thiserror::Error)]
#[error("payment provider unavailable (simulated transient failure on attempt {attempt})")]
pub struct ProviderUnavailable {
    pub attempt: u32,
}

#[derive(Debug, Clone)]
pub struct Provider {
    settings: ProviderSettings,
}

impl Provider {
    pub fn new(settings: ProviderSettings) -> Self {
        Self { settings }
    }

    /// Charges `order`; `attempt` is 0 on the first try.
    pub async fn charge(
        &self,
        order: &OrderCreated,
        attempt: u32,
    ) -> Result<Charge, ProviderUnavailable> {
        self.wait().await;
        self.decide(order, attempt)
    }

    /// Refunds the charge `request` names; `attempt` is 0 on the first try.
    /// Returns the refund's id at the provider (`RFD-…`).
    pub async fn refund(
        &self,
        request: &RefundRequested,
        attempt: u32,
    ) -> Result<String, ProviderUnavailable> {
        self.wait().await;
        decide_refund(request, attempt)
    }

    async fn wait(&self) {
        if !self.settings.delay.is_zero() {
            tokio::time::sleep(self.settings.delay).await;
        }
    }

    fn decide(&self, order: &OrderCreated, attempt: u32) -> Result<Charge, ProviderUnavailable> {
        let local_part = local_part(&order.user_email);
        flaky(local_part, attempt)?;
        if local_part.ends_with("+decline") {
            return Ok(Charge::Declined {
                reason: DECLINE_REASONS[0],
            });
        }
        if order.total_amount > self.settings.decline_above {
            return Ok(Charge::Declined {
                reason: DECLINE_REASONS[1],
            });
        }
        Ok(Charge::Approved {
            transaction_id: provider_id("TXN"),
        })
    }
}

fn decide_refund(request: &RefundRequested, attempt: u32) -> Result<String, ProviderUnavailable> {
    flaky(local_part(&request.user_email), attempt)?;
    Ok(provider_id("RFD"))
}

/// The local part of an email address (`""` without an `@`).
fn local_part(email: &str) -> &str {
    email.rsplit_once('@').map_or("", |(local, _)| local)
}

/// A `+flaky` address fails transiently on its first two attempts.
fn flaky(local_part: &str, attempt: u32) -> Result<(), ProviderUnavailable> {
    if local_part.ends_with("+flaky") && attempt < 2 {
        return Err(ProviderUnavailable { attempt });
    }
    Ok(())
}

/// `<prefix>-` + 12 upper-case hex digits, random (unguessable, never
/// sequential): `TXN-` for charges, `RFD-` for refunds.
fn provider_id(prefix: &str) -> String {
    let hex = Uuid::new_v4().simple().to_string().to_uppercase();
    format!("{prefix}-{}", &hex[..12])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use rust_decimal::Decimal;
    use std::{str::FromStr, time::Duration};

    fn provider() -> Provider {
        Provider::new(ProviderSettings {
            delay: Duration::ZERO,
            decline_above: Decimal::from(10_000),
        })
    }

    fn order(email: &str, total: &str) -> OrderCreated {
        OrderCreated {
            event_type: "order.created".into(),
            event_id: Uuid::new_v4(),
            timestamp: Utc::now(),
            schema_version: 1,
            order_id: Uuid::new_v4(),
            user_id: 1,
            user_email: email.into(),
            total_amount: Decimal::from_str(total).unwrap(),
            currency: "USD".into(),
            items: vec![],
        }
    }

    fn refund_request(email: &str, amount: &str) -> RefundRequested {
        let order = order(email, amount);
        RefundRequested {
            event_type: "refund.requested".into(),
            event_id: Uuid::new_v4(),
            timestamp: Utc::now(),
            schema_version: 1,
            order_id: order.order_id,
            payment_id: Uuid::new_v4(),
            transaction_id: "TXN-0123456789AB".into(),
            user_id: 1,
            user_email: email.into(),
            amount: order.total_amount,
            currency: "USD".into(),
            items: vec![],
            reason: contract::events::CancelReason::Customer,
        }
    }

    /// `<prefix>-` + 12 upper-case hex digits.
    fn assert_well_formed(id: &str, prefix: &str) {
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.starts_with(&format!("{prefix}-")), "{id}");
        assert!(
            id[4..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
            "{id}"
        );
    }

    #[test]
    fn an_ordinary_order_is_approved_with_a_well_formed_transaction_id() {
        let Ok(Charge::Approved { transaction_id }) =
            provider().decide(&order("a@example.com", "1299.99"), 0)
        else {
            panic!("expected approval");
        };
        assert_well_formed(&transaction_id, "TXN");
    }

    #[test]
    fn decline_addresses_and_large_amounts_are_declined() {
        assert_eq!(
            provider()
                .decide(&order("a+decline@example.com", "1.00"), 0)
                .unwrap(),
            Charge::Declined {
                reason: "card_declined"
            }
        );
        assert_eq!(
            provider()
                .decide(&order("a@example.com", "10000.01"), 0)
                .unwrap(),
            Charge::Declined {
                reason: "amount_exceeds_limit"
            }
        );
        assert!(matches!(
            provider().decide(&order("a@example.com", "10000.00"), 0),
            Ok(Charge::Approved { .. })
        ));
    }

    #[test]
    fn flaky_addresses_fail_twice_then_succeed() {
        let flaky = order("a+flaky@example.com", "5.00");
        assert!(provider().decide(&flaky, 0).is_err());
        assert!(provider().decide(&flaky, 1).is_err());
        assert!(matches!(
            provider().decide(&flaky, 2),
            Ok(Charge::Approved { .. })
        ));
    }

    #[tokio::test]
    async fn a_refund_succeeds_with_a_well_formed_random_refund_id() {
        let request = refund_request("a@example.com", "1299.99");
        let first = provider().refund(&request, 0).await.unwrap();
        assert_well_formed(&first, "RFD");
        let second = provider().refund(&request, 0).await.unwrap();
        assert_well_formed(&second, "RFD");
        assert_ne!(first, second, "random, never repeated");
    }

    #[test]
    fn refunds_are_never_declined() {
        for (email, amount) in [
            ("a+decline@example.com", "1.00"),
            ("a@example.com", "10000.01"),
        ] {
            let refunded = decide_refund(&refund_request(email, amount), 0);
            assert!(refunded.is_ok(), "{email} {amount}: {refunded:?}");
        }
    }

    #[test]
    fn flaky_addresses_fail_two_refund_attempts_then_succeed() {
        let flaky = refund_request("a+flaky@example.com", "5.00");
        for attempt in [0, 1] {
            let failed = decide_refund(&flaky, attempt).unwrap_err();
            assert_eq!(failed.attempt, attempt);
        }
        assert_well_formed(&decide_refund(&flaky, 2).unwrap(), "RFD");
    }
}
