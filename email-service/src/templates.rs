//! The email bodies: a plain-text and an HTML rendering of the same [`View`].
//!
//! Small Rust functions instead of a template engine: the compiler checks every
//! placeholder, and there is exactly one place where a value enters HTML
//! ([`escape`]), so nothing from an event is ever placed in HTML unescaped.
//! What each kind of email says around the order lines is written once
//! ([`Wording`]) and rendered by both parts.

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

pub fn text(view: &View) -> String {
    let words = wording(view);
    let currency = &view.currency;
    let mut out = format!("{}\n\nOrder: {}\n\n", words.intro, view.order_id);
    if !view.lines.is_empty() {
        out.push_str("Items:\n");
        for line in &view.lines {
            out.push_str(&format!(
                "  - {}: {} x {} {currency} = {} {currency}\n",
                line.name,
                line.quantity,
                money(line.unit_price),
                money(line.line_total)
            ));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "{}: {} {currency}\n",
        words.total_label,
        money(view.total)
    ));
    for (label, value) in &words.facts {
        out.push_str(&format!("{label}: {value}\n"));
    }
    if let Some(closing) = words.closing {
        out.push_str(&format!("\n{closing}\n"));
    }
    out
}

pub fn html(view: &View) -> String {
    let Wording {
        heading,
        intro,
        total_label,
        facts,
        closing,
    } = wording(view);
    let currency = escape(&view.currency);
    let mut rows = String::new();
    for line in &view.lines {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{} {currency}</td><td>{} {currency}</td></tr>\n",
            escape(&line.name),
            line.quantity,
            money(line.unit_price),
            money(line.line_total)
        ));
    }
    let items = if rows.is_empty() {
        String::new()
    } else {
        format!(
            "<table>\n<thead><tr><th>Item</th><th>Quantity</th><th>Unit price</th><th>Line total</th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n"
        )
    };
    let mut after = String::new();
    for (label, value) in facts {
        after.push_str(&format!("<p>{label}: <code>{}</code></p>\n", escape(value)));
    }
    if let Some(closing) = closing {
        after.push_str(&format!("<p>{closing}</p>\n"));
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{heading}</title></head>\n<body>\n\
         <h1>{heading}</h1>\n<p>{intro}</p>\n<p>Order: <code>{order_id}</code></p>\n{items}\
         <p><strong>{total_label}: {total} {currency}</strong></p>\n{after}</body></html>\n",
        order_id = view.order_id,
        total = money(view.total),
    )
}

/// Two decimal places, as prices are shown everywhere else.
fn money(amount: Decimal) -> String {
    format!("{:.2}", amount)
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    const HOSTILE: &str = "<b>Gaming</b> Laptop & \"Co\"";
    const ESCAPED: &str = "&lt;b&gt;Gaming&lt;/b&gt; Laptop &amp; &quot;Co&quot;";

    fn view(outcome: Outcome) -> View {
        View {
            order_id: Uuid::from_u128(7),
            lines: vec![Line {
                name: HOSTILE.into(),
                quantity: 2,
                unit_price: Decimal::from_str("1299.99").unwrap(),
                line_total: Decimal::from_str("2599.98").unwrap(),
            }],
            total: Decimal::from_str("2599.98").unwrap(),
            currency: "USD".into(),
            outcome,
        }
    }

    fn every_outcome() -> [Outcome; 5] {
        [
            Outcome::Paid {
                transaction_id: "<i>TXN</i>".into(),
            },
            Outcome::PaymentFailed {
                reason: "<script>alert(1)</script>".into(),
            },
            Outcome::Cancelled {
                reason: CancelReason::Customer,
            },
            Outcome::Cancelled {
                reason: CancelReason::PaymentTimeout,
            },
            Outcome::Refunded {
                transaction_id: "<i>TXN</i>".into(),
                refund_transaction_id: "RFD-'&'".into(),
            },
        ]
    }

    #[test]
    fn every_value_placed_in_html_is_escaped() {
        let html = html(&view(Outcome::PaymentFailed {
            reason: "<script>alert(1)</script>".into(),
        }));
        assert!(html.contains(ESCAPED), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
    }

    #[test]
    fn every_kind_escapes_the_lines_and_its_own_values_in_html() {
        for outcome in every_outcome() {
            let html = html(&view(outcome.clone()));
            assert!(html.contains(ESCAPED), "{outcome:?}: {html}");
            for raw in ["<b>", "<i>", "<script>", "'&'"] {
                assert!(!html.contains(raw), "{outcome:?} shows {raw}: {html}");
            }
            let text = text(&view(outcome.clone()));
            assert!(text.contains(HOSTILE), "{outcome:?}: {text}");
            assert!(
                text.contains("2 x 1299.99 USD = 2599.98 USD"),
                "{outcome:?}: {text}"
            );
        }
    }

    #[test]
    fn both_parts_list_lines_total_and_transaction_id() {
        let view = view(Outcome::Paid {
            transaction_id: "TXN-0123456789AB".into(),
        });
        let text = text(&view);
        assert!(text.contains("2 x 1299.99 USD = 2599.98 USD"), "{text}");
        assert!(text.contains("Total: 2599.98 USD"), "{text}");
        assert!(text.contains("Transaction ID: TXN-0123456789AB"), "{text}");
        let html = html(&view);
        assert!(
            html.contains("<td>2</td><td>1299.99 USD</td><td>2599.98 USD</td>"),
            "{html}"
        );
        assert!(html.contains("Total: 2599.98 USD"), "{html}");
        assert!(html.contains("TXN-0123456789AB"), "{html}");
        assert_eq!(
            subject(&view),
            format!("Order Confirmation - Order #{}", Uuid::from_u128(7))
        );
    }

    #[test]
    fn a_cancellation_says_why_and_that_a_late_payment_is_refunded() {
        for (reason, why) in [
            (CancelReason::Customer, "as you asked"),
            (
                CancelReason::PaymentTimeout,
                "payment did not arrive in time",
            ),
        ] {
            let view = view(Outcome::Cancelled { reason });
            assert_eq!(
                subject(&view),
                format!("Order Cancelled - Order #{}", Uuid::from_u128(7))
            );
            let html = html(&view);
            assert!(html.contains("<h1>Order Cancelled</h1>"), "{html}");
            for part in [text(&view), html] {
                for expected in [
                    why,
                    "Total: 2599.98 USD",
                    "any payment for it that still arrives will be refunded",
                ] {
                    assert!(
                        part.contains(expected),
                        "{reason:?} lacks {expected:?}: {part}"
                    );
                }
                assert!(!part.contains("Transaction ID"), "{part}");
            }
        }
    }

    #[test]
    fn a_refund_shows_the_amount_the_charge_and_the_refund_ids() {
        let view = view(Outcome::Refunded {
            transaction_id: "TXN-0123456789AB".into(),
            refund_transaction_id: "RFD-BA9876543210".into(),
        });
        assert_eq!(
            subject(&view),
            format!("Refund Processed - Order #{}", Uuid::from_u128(7))
        );
        let text = text(&view);
        assert!(text.contains("Amount refunded: 2599.98 USD"), "{text}");
        assert!(text.contains("Refunded charge: TXN-0123456789AB"), "{text}");
        assert!(text.contains("Refund ID: RFD-BA9876543210"), "{text}");
        let html = html(&view);
        assert!(html.contains("Amount refunded: 2599.98 USD"), "{html}");
        assert!(
            html.contains("Refunded charge: <code>TXN-0123456789AB</code>"),
            "{html}"
        );
        assert!(
            html.contains("Refund ID: <code>RFD-BA9876543210</code>"),
            "{html}"
        );
    }

    #[test]
    fn amounts_always_show_two_decimal_places() {
        assert_eq!(money(Decimal::from(5)), "5.00");
        assert_eq!(money(Decimal::from_str("1299.9").unwrap()), "1299.90");
    }
}
