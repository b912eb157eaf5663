//! The email bodies: a plain-text and an HTML rendering of the same [`Page`],
//! one layout for every kind of email (`templates/email.txt` and
//! `templates/email.html`).
//!
//! The templates are compiled (askama): the compiler checks every
//! placeholder, and the HTML one escapes every value it places, so nothing
//! from an event reaches the HTML unescaped. What each kind of email says
//! around the order lines is written once ([`Wording`]) and rendered by both
//! parts.

use askama::Template;
use contract::events::CancelReason;
use rust_decimal::Decimal;
use uuid::Uuid;

/// What an email says, already computed and sanitised.
#[derive(Debug, Clone)]
pub struct View {
    pub order_id: Uuid,
    pub lines: Vec<Line>,
    /// The order's total; for a refund, the amount refunded.
    pub total: Decimal,
    pub currency: String,
    pub outcome: Outcome,
}

/// One order line.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub quantity: i32,
    pub unit_price: Decimal,
    pub line_total: Decimal,
}

/// What happened to the order, with what the customer needs to know about it.
#[derive(Debug, Clone)]
pub enum Outcome {
    Paid {
        transaction_id: String,
    },
    PaymentFailed {
        reason: String,
    },
    Cancelled {
        reason: CancelReason,
    },
    Refunded {
        /// The refunded charge's `TXN-` id.
        transaction_id: String,
        /// The refund's own `RFD-` id.
        refund_transaction_id: String,
    },
}

/// `Order Confirmation - Order #<id>` (the seed's subject), `Payment Failed -
/// Order #<id>`, `Order Cancelled - Order #<id>` or `Refund Processed - Order #<id>`.
pub fn subject(view: &View) -> String {
    format!("{} - Order #{}", wording(view).heading, view.order_id)
}

/// The sentences of one kind of email; `facts` are values from the event.
struct Wording<'a> {
    heading: &'static str,
    intro: &'static str,
    /// What the amount under the lines is.
    total_label: &'static str,
    /// Label and value, one line each, after the total.
    facts: Vec<(&'static str, &'a str)>,
    closing: Option<&'static str>,
}

fn wording(view: &View) -> Wording<'_> {
    match &view.outcome {
        Outcome::Paid { transaction_id } => Wording {
            heading: "Order Confirmation",
            intro: "Thank you for your order! Your payment was received.",
            total_label: "Total",
            facts: vec![("Transaction ID", transaction_id)],
            closing: None,
        },
        Outcome::PaymentFailed { reason } => Wording {
            heading: "Payment Failed",
            intro: "Unfortunately the payment for your order could not be completed, so the order was not placed.",
            total_label: "Total",
            facts: vec![("Reason", reason)],
            closing: Some("No money was taken. You are welcome to place the order again."),
        },
        Outcome::Cancelled { reason } => Wording {
            heading: "Order Cancelled",
            intro: match reason {
                CancelReason::Customer => "Your order was cancelled, as you asked.",
                CancelReason::PaymentTimeout => {
                    "Your order was cancelled because its payment did not arrive in time."
                }
            },
            total_label: "Total",
            facts: Vec::new(),
            closing: Some(
                "Nothing is kept for this order: any payment for it that still arrives will be refunded to you in full.",
            ),
        },
        Outcome::Refunded {
            transaction_id,
            refund_transaction_id,
        } => Wording {
            heading: "Refund Processed",
            intro: "The payment for your order has been refunded.",
            total_label: "Amount refunded",
            facts: vec![
                ("Refunded charge", transaction_id),
                ("Refund ID", refund_transaction_id),
            ],
            closing: None,
        },
    }
}

/// What every email shows besides the order: the shop, where the order is
/// seen, who sent it and whom to ask (`SHOP_NAME`, `ORDER_URL_TEMPLATE`,
/// `EMAIL_FROM`, `SUPPORT_EMAIL`).
#[derive(Debug, Clone)]
pub struct Branding {
    pub shop_name: String,
    /// A URL with `{id}` where the order id goes.
    pub order_url_template: String,
    /// The sender's address, as the footer shows it.
    pub sender: String,
    pub support: String,
}

impl Branding {
    /// The defaults for mail from `sender`: `E-commerce`, the gateway's
    /// order on localhost, and the sender as the support address.
    pub fn defaults(sender: &str) -> Self {
        Self {
            shop_name: "E-commerce".into(),
            order_url_template: "http://localhost:9000/api/orders/{id}".into(),
            sender: sender.into(),
            support: sender.into(),
        }
    }
}

/// Everything the layout shows, as text; the HTML template escapes it.
struct Page<'a> {
    shop_name: &'a str,
    heading: &'static str,
    /// The order's status in words.
    status: &'static str,
    intro: &'static str,
    order_id: String,
    order_url: String,
    lines: Vec<PageLine<'a>>,
    currency: &'a str,
    total_label: &'static str,
    total: String,
    facts: Vec<(&'static str, &'a str)>,
    closing: Option<&'static str>,
    sender: &'a str,
    support: &'a str,
}

struct PageLine<'a> {
    name: &'a str,
    quantity: i32,
    unit_price: String,
    line_total: String,
}

#[derive(Template)]
#[template(path = "email.txt")]
struct TextPart<'a> {
    page: &'a Page<'a>,
}

#[derive(Template)]
#[template(path = "email.html")]
struct HtmlPart<'a> {
    page: &'a Page<'a>,
}

fn page<'a>(view: &'a View, branding: &'a Branding) -> Page<'a> {
    let Wording {
        heading,
        intro,
        total_label,
        facts,
        closing,
    } = wording(view);
    let status = match view.outcome {
        Outcome::Paid { .. } => "Paid",
        Outcome::PaymentFailed { .. } => "Payment failed",
        Outcome::Cancelled { .. } => "Cancelled",
        Outcome::Refunded { .. } => "Refunded",
    };
    Page {
        shop_name: &branding.shop_name,
        heading,
        status,
        intro,
        order_id: view.order_id.to_string(),
        order_url: branding
            .order_url_template
            .replace("{id}", &view.order_id.to_string()),
        lines: view
            .lines
            .iter()
            .map(|line| PageLine {
                name: &line.name,
                quantity: line.quantity,
                unit_price: money(line.unit_price),
                line_total: money(line.line_total),
            })
            .collect(),
        currency: &view.currency,
        total_label,
        total: money(view.total),
        facts,
        closing,
        sender: &branding.sender,
        support: &branding.support,
    }
}

/// The plain-text part.
pub fn text(view: &View, branding: &Branding) -> Result<String, askama::Error> {
    TextPart {
        page: &page(view, branding),
    }
    .render()
}

/// The HTML part.
pub fn html(view: &View, branding: &Branding) -> Result<String, askama::Error> {
    HtmlPart {
        page: &page(view, branding),
    }
    .render()
}

/// Two decimal places, as prices are shown everywhere else.
fn money(amount: Decimal) -> String {
    format!("{:.2}", amount)
}

#[cfg(test)]
mod tests;
