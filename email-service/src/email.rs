//! From a `payment.payment.processed` event to the email, as a lettre
//! [`Message`]. Pure: nothing here touches the network or the database, so
//! every way an event can be unusable is found before a row is written or an
//! SMTP connection opened, and reported as a [`ComposeError`] (permanent: the
//! message is parked).
//!
//! Never let a value make lettre panic: the recipient is parsed as a
//! [`lettre::Address`] (CR/LF and other junk are rejected there), and a display
//! name, should one ever be used, goes through [`safe_mailbox`], because
//! lettre panics on CR, LF or NUL in a display name (S6 in `docs/guarantees.md`).

use contract::events::{PaymentProcessed, PaymentStatus};
use lettre::{
    Address, Message,
    message::{Mailbox, MultiPart},
};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::templates::{self, Line, Outcome, View};

/// Which email an order gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Confirmation,
    PaymentFailed,
}

impl Kind {
    /// The `email_log.kind` value and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Confirmation => "confirmation",
            Kind::PaymentFailed => "payment_failed",
        }
    }
}

/// A composed email, ready to send.
#[derive(Debug, Clone)]
pub struct Email {
    pub kind: Kind,
    pub recipient: Address,
    pub message_id: String,
    pub message: Message,
}

/// Why an event cannot become an email; none of these improves with a retry.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("invalid recipient address: {0}")]
    InvalidRecipient(lettre::address::AddressError),
    #[error("order line {0} has a quantity or amount out of range")]
    LineOutOfRange(usize),
    #[error("building the message: {0}")]
    Build(#[from] lettre::error::Error),
}

/// Builds emails from the configured sender.
#[derive(Debug, Clone)]
pub struct Composer {
    from: Mailbox,
}

impl Composer {
    pub fn new(from: Mailbox) -> Self {
        Self { from }
    }

    /// `<order-{order_id}@{domain of EMAIL_FROM}>`: derived from the order
    /// alone, so every copy of an order's email (a W6 duplicate included)
    /// carries the same id and mail clients show it once.
    pub fn message_id(&self, order_id: Uuid) -> String {
        format!("<order-{order_id}@{}>", self.from.email.domain())
    }

    pub fn compose(&self, event: &PaymentProcessed) -> Result<Email, ComposeError> {
        let recipient: Address = event
            .user_email
            .trim()
            .parse()
            .map_err(ComposeError::InvalidRecipient)?;
        let (kind, outcome) = match event.status {
            PaymentStatus::Completed => (
                Kind::Confirmation,
                Outcome::Paid {
                    // check_contract guarantees it for completed payments.
                    transaction_id: clean(event.transaction_id.as_deref().unwrap_or("-")),
                },
            ),
            PaymentStatus::Failed => (
                Kind::PaymentFailed,
                Outcome::PaymentFailed {
                    reason: clean(event.failure_reason.as_deref().unwrap_or("unknown")),
                },
            ),
        };
        let view = View {
            order_id: event.order_id,
            lines: lines(event)?,
            total: event.amount,
            currency: clean(&event.currency),
            outcome,
        };
        let message_id = self.message_id(event.order_id);
        let message = Message::builder()
            .from(self.from.clone())
            .to(safe_mailbox(None, recipient.clone()))
            .subject(templates::subject(&view))
            .message_id(Some(message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(
                templates::text(&view),
                templates::html(&view),
            ))?;
        Ok(Email {
            kind,
            recipient,
            message_id,
            message,
        })
    }
}

fn lines(event: &PaymentProcessed) -> Result<Vec<Line>, ComposeError> {
    event
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let line_total = (item.quantity > 0)
                .then(|| item.price.checked_mul(Decimal::from(item.quantity)))
                .flatten()
                .ok_or(ComposeError::LineOutOfRange(i + 1))?;
            Ok(Line {
                name: clean(&item.name),
                quantity: item.quantity,
                unit_price: item.price,
                line_total,
            })
        })
        .collect()
}

/// A mailbox whose display name cannot make lettre panic: control characters
/// (CR, LF, NUL, tab, …) are removed, and an empty name is dropped.
pub fn safe_mailbox(name: Option<&str>, email: Address) -> Mailbox {
    let name = name.map(clean).filter(|n| !n.is_empty());
    Mailbox::new(name, email)
}

/// `raw` without control characters, trimmed: values from an event are shown
/// on one line each.
fn clean(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use contract::events::{Event, OrderCreatedItem};
    use std::str::FromStr;

    fn event(email: &str) -> PaymentProcessed {
        PaymentProcessed {
            event_type: PaymentProcessed::EVENT_TYPE.into(),
            event_id: Uuid::new_v4(),
            timestamp: Utc::now(),
            schema_version: 1,
            payment_id: Uuid::new_v4(),
            order_id: Uuid::from_u128(42),
            user_id: 1,
            user_email: email.into(),
            amount: Decimal::from_str("1299.99").unwrap(),
            currency: "USD".into(),
            status: PaymentStatus::Completed,
            transaction_id: Some("TXN-0123456789AB".into()),
            failure_reason: None,
            items: vec![OrderCreatedItem {
                product_id: 1,
                name: "Gaming Laptop".into(),
                quantity: 1,
                price: Decimal::from_str("1299.99").unwrap(),
            }],
        }
    }

    fn composer() -> Composer {
        Composer::new("noreply@ecommerce.com".parse().unwrap())
    }

    #[test]
    fn the_message_id_derives_from_the_order_and_the_sender_domain() {
        let email = composer().compose(&event("test@example.com")).unwrap();
        assert_eq!(
            email.message_id,
            format!("<order-{}@ecommerce.com>", Uuid::from_u128(42))
        );
        let raw = String::from_utf8(email.message.formatted()).unwrap();
        assert!(
            raw.contains(&format!("Message-ID: {}", email.message_id)),
            "{raw}"
        );
        assert!(raw.contains("multipart/alternative"), "{raw}");
    }

    #[test]
    fn a_recipient_with_crlf_or_no_domain_is_a_compose_error_not_a_panic() {
        for bad in [
            "a@b.com\r\nBcc: x@evil.com",
            "not-an-address",
            "",
            "a\0@b.com",
        ] {
            let err = composer().compose(&event(bad)).unwrap_err();
            assert!(
                matches!(err, ComposeError::InvalidRecipient(_)),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn control_characters_in_a_display_name_are_stripped_instead_of_panicking() {
        let address: Address = "a@example.com".parse().unwrap();
        let mailbox = safe_mailbox(Some("Eve\r\nBcc: x@evil.com\0"), address.clone());
        assert_eq!(mailbox.name.as_deref(), Some("EveBcc: x@evil.com"));
        let message = Message::builder()
            .from(mailbox)
            .to(safe_mailbox(Some("\r\n"), address))
            .subject("s")
            .body(String::from("b"))
            .unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
    }

    #[test]
    fn a_non_positive_quantity_is_a_compose_error() {
        let mut bad = event("a@example.com");
        bad.items[0].quantity = 0;
        assert!(matches!(
            composer().compose(&bad),
            Err(ComposeError::LineOutOfRange(1))
        ));
    }

    #[test]
    fn a_failed_payment_gets_its_own_subject_and_kind() {
        let mut failed = event("a@example.com");
        failed.status = PaymentStatus::Failed;
        failed.transaction_id = None;
        failed.failure_reason = Some("card_declined".into());
        let email = composer().compose(&failed).unwrap();
        assert_eq!(email.kind, Kind::PaymentFailed);
        let raw = String::from_utf8(email.message.formatted()).unwrap();
        assert!(
            raw.contains(&format!(
                "Subject: Payment Failed - Order #{}",
                Uuid::from_u128(42)
            )),
            "{raw}"
        );
    }
}
