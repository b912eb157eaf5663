//! From an event to the email, as a lettre [`Message`]. Each consumed event
//! says what its email holds through [`EmailEvent`] (`events.rs`); the
//! [`Composer`] turns that into the message. Pure: nothing here touches the
//! network or the database, so every way an event can be unusable is found
//! before a row is written or an SMTP connection opened, and reported as a
//! [`ComposeError`] (permanent: the message is parked).
//!
//! Never let a value make lettre panic: the recipient is parsed as a
//! [`lettre::Address`] (CR/LF and other junk are rejected there), and a display
//! name, should one ever be used, goes through [`safe_mailbox`], because
//! lettre panics on CR, LF or NUL in a display name (S6 in `docs/guarantees.md`).

use contract::events::OrderCreatedItem;
use lettre::{
    Address, Message,
    message::{
        Mailbox, MultiPart,
        header::{Header, HeaderName, HeaderValue},
    },
};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::templates::{self, Branding, Line, Outcome, View};

mod events;
#[cfg(test)]
mod tests;

pub use events::{EmailEvent, Letter};

/// Which email it is. An order gets at most one of each (`email_log`'s key
/// is the order and the kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The payment went through (`payment.payment.processed`, completed).
    Confirmation,
    /// The payment was declined (`payment.payment.processed`, failed).
    PaymentFailed,
    /// The order was cancelled before it was paid (`order.order.cancelled`).
    Cancelled,
    /// The order's charge was given back (`payment.refund.processed`).
    Refund,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Confirmation,
        Kind::PaymentFailed,
        Kind::Cancelled,
        Kind::Refund,
    ];

    /// The `email_log.kind` value and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Confirmation => "confirmation",
            Kind::PaymentFailed => "payment_failed",
            Kind::Cancelled => "cancelled",
            Kind::Refund => "refund",
        }
    }

    /// The email an outcome makes.
    pub fn of(outcome: &Outcome) -> Kind {
        match outcome {
            Outcome::Paid { .. } => Kind::Confirmation,
            Outcome::PaymentFailed { .. } => Kind::PaymentFailed,
            Outcome::Cancelled { .. } => Kind::Cancelled,
            Outcome::Refunded { .. } => Kind::Refund,
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
    #[error("rendering the message: {0}")]
    Render(#[from] askama::Error),
}

/// `Auto-Submitted: auto-generated` (RFC 3834): sent by a program, so
/// auto-responders (out of office, vacation) do not answer it.
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// Builds emails from the configured sender, in the shop's layout.
#[derive(Debug, Clone)]
pub struct Composer {
    from: Mailbox,
    /// `EMAIL_REPLY_TO`: where a customer's answer goes, when set.
    reply_to: Option<Mailbox>,
    branding: Branding,
}

impl Composer {
    pub fn new(from: Mailbox, reply_to: Option<Mailbox>, branding: Branding) -> Self {
        Self {
            from,
            reply_to,
            branding,
        }
    }

    /// Derived from the order and the kind alone, so every copy of one email
    /// (a redelivery, a re-published event, a W6 duplicate) carries the same
    /// id and mail clients show it once, while the order's other emails never
    /// share it: `<order-{order_id}@{domain of EMAIL_FROM}>` for the payment's
    /// result (confirmation or payment failed, as before there were other
    /// kinds), `<order-{order_id}-cancelled@…>` and `<order-{order_id}-refund@…>`.
    pub fn message_id(&self, order_id: Uuid, kind: Kind) -> String {
        let suffix = match kind {
            Kind::Confirmation | Kind::PaymentFailed => "",
            Kind::Cancelled => "-cancelled",
            Kind::Refund => "-refund",
        };
        format!("<order-{order_id}{suffix}@{}>", self.from.email.domain())
    }

    pub fn compose<E: EmailEvent>(&self, event: &E) -> Result<Email, ComposeError> {
        let letter = event.letter();
        let recipient: Address = letter
            .recipient
            .trim()
            .parse()
            .map_err(ComposeError::InvalidRecipient)?;
        let outcome = cleaned(letter.outcome);
        let kind = Kind::of(&outcome);
        let view = View {
            order_id: letter.order_id,
            lines: lines(letter.items)?,
            total: letter.amount,
            currency: clean(letter.currency),
            outcome,
        };
        let message_id = self.message_id(letter.order_id, kind);
        // Transactional: no List-Unsubscribe (that is for mailing lists).
        // lettre adds Date and MIME-Version; the text part comes first.
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(safe_mailbox(None, recipient.clone()))
            .subject(templates::subject(&view))
            .message_id(Some(message_id.clone()))
            .header(AutoSubmitted);
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        let message = builder.multipart(MultiPart::alternative_plain_html(
            templates::text(&view, &self.branding)?,
            templates::html(&view, &self.branding)?,
        ))?;
        Ok(Email {
            kind,
            recipient,
            message_id,
            message,
        })
    }
}

fn lines(items: &[OrderCreatedItem]) -> Result<Vec<Line>, ComposeError> {
    items
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

/// The outcome with every value from the event [`clean`]ed.
fn cleaned(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Paid { transaction_id } => Outcome::Paid {
            transaction_id: clean(&transaction_id),
        },
        Outcome::PaymentFailed { reason } => Outcome::PaymentFailed {
            reason: clean(&reason),
        },
        Outcome::Cancelled { reason } => Outcome::Cancelled { reason },
        Outcome::Refunded {
            transaction_id,
            refund_transaction_id,
        } => Outcome::Refunded {
            transaction_id: clean(&transaction_id),
            refund_transaction_id: clean(&refund_transaction_id),
        },
    }
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
