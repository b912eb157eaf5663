//! The email bodies: a plain-text and an HTML rendering of the same [`View`].
//!
//! Small Rust functions instead of a template engine: the compiler checks every
//! placeholder, and there is exactly one place where a value enters HTML
//! ([`escape`]), so nothing from an event is ever placed in HTML unescaped.

use rust_decimal::Decimal;
use uuid::Uuid;

/// What an email says, already computed and sanitised.
#[derive(Debug, Clone)]
pub struct View {
    pub order_id: Uuid,
    pub lines: Vec<Line>,
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

/// Paid or not, with what the customer needs to know about it.
#[derive(Debug, Clone)]
pub enum Outcome {
    Paid { transaction_id: String },
    PaymentFailed { reason: String },
}

/// `Order Confirmation - Order #<id>` (the seed's subject) or `Payment Failed - Order #<id>`.
pub fn subject(view: &View) -> String {
    match view.outcome {
        Outcome::Paid { .. } => format!("Order Confirmation - Order #{}", view.order_id),
        Outcome::PaymentFailed { .. } => format!("Payment Failed - Order #{}", view.order_id),
    }
}

pub fn text(view: &View) -> String {
    let currency = &view.currency;
    let mut out = String::new();
    match &view.outcome {
        Outcome::Paid { .. } => out.push_str("Thank you for your order! Your payment was received.\n\n"),
        Outcome::PaymentFailed { .. } => {
            out.push_str("Unfortunately the payment for your order could not be completed, so the order was not placed.\n\n")
        }
    }
    out.push_str(&format!("Order: {}\n\n", view.order_id));
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
    out.push_str(&format!("Total: {} {currency}\n", money(view.total)));
    match &view.outcome {
        Outcome::Paid { transaction_id } => {
            out.push_str(&format!("Transaction ID: {transaction_id}\n"))
        }
        Outcome::PaymentFailed { reason } => out.push_str(&format!(
            "Reason: {reason}\n\nNo money was taken. You are welcome to place the order again.\n"
        )),
    }
    out
}

pub fn html(view: &View) -> String {
    let currency = escape(&view.currency);
    let (heading, intro) = match &view.outcome {
        Outcome::Paid { .. } => (
            "Order Confirmation",
            "Thank you for your order! Your payment was received.",
        ),
        Outcome::PaymentFailed { .. } => (
            "Payment Failed",
            "Unfortunately the payment for your order could not be completed, so the order was not placed.",
        ),
    };
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
    let outcome = match &view.outcome {
        Outcome::Paid { transaction_id } => format!(
            "<p>Transaction ID: <code>{}</code></p>",
            escape(transaction_id)
        ),
        Outcome::PaymentFailed { reason } => format!(
            "<p>Reason: {}</p>\n<p>No money was taken. You are welcome to place the order again.</p>",
            escape(reason)
        ),
    };
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{heading}</title></head>\n<body>\n\
         <h1>{heading}</h1>\n<p>{intro}</p>\n<p>Order: <code>{order_id}</code></p>\n{items}\
         <p><strong>Total: {total} {currency}</strong></p>\n{outcome}\n</body></html>\n",
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

    fn view(outcome: Outcome) -> View {
        View {
            order_id: Uuid::from_u128(7),
            lines: vec![Line {
                name: "<b>Gaming</b> Laptop & \"Co\"".into(),
                quantity: 2,
                unit_price: Decimal::from_str("1299.99").unwrap(),
                line_total: Decimal::from_str("2599.98").unwrap(),
            }],
            total: Decimal::from_str("2599.98").unwrap(),
            currency: "USD".into(),
            outcome,
        }
    }

    #[test]
    fn every_value_placed_in_html_is_escaped() {
        let html = html(&view(Outcome::PaymentFailed {
            reason: "<script>alert(1)</script>".into(),
        }));
        assert!(
            html.contains("&lt;b&gt;Gaming&lt;/b&gt; Laptop &amp; &quot;Co&quot;"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
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
    fn amounts_always_show_two_decimal_places() {
        assert_eq!(money(Decimal::from(5)), "5.00");
        assert_eq!(money(Decimal::from_str("1299.9").unwrap()), "1299.90");
    }
}
