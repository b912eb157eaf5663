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
//! Every call waits `PAYMENT_DELAY_MS`, like the seed's `sleep(1)`.

use contract::events::OrderCreated;
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
        if !self.settings.delay.is_zero() {
            tokio::time::sleep(self.settings.delay).await;
        }
        self.decide(order, attempt)
    }

    fn decide(&self, order: &OrderCreated, attempt: u32) -> Result<Charge, ProviderUnavailable> {
        let local_part = order
            .user_email
            .rsplit_once('@')
            .map_or("", |(local, _)| local);
        if local_part.ends_with("+flaky") && attempt < 2 {
            return Err(ProviderUnavailable { attempt });
        }
        if local_part.ends_with("+decline") {
            return Ok(Charge::Declined {
                reason: "card_declined",
            });
        }
        if order.total_amount > self.settings.decline_above {
            return Ok(Charge::Declined {
                reason: "amount_exceeds_limit",
            });
        }
        Ok(Charge::Approved {
            transaction_id: transaction_id(),
        })
    }
}

/// `TXN-` + 12 upper-case hex digits, random (unguessable, never sequential).
fn transaction_id() -> String {
    let hex = Uuid::new_v4().simple().to_string().to_uppercase();
    format!("TXN-{}", &hex[..12])
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

    #[test]
    fn an_ordinary_order_is_approved_with_a_well_formed_transaction_id() {
        let Ok(Charge::Approved { transaction_id }) =
            provider().decide(&order("a@example.com", "1299.99"), 0)
        else {
            panic!("expected approval");
        };
        assert_eq!(transaction_id.len(), 16);
        assert!(transaction_id.starts_with("TXN-"));
        assert!(
            transaction_id[4..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
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
}
