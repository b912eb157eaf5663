use std::str::FromStr;

use super::*;

const HOSTILE: &str = "<b>Gaming</b> Laptop & \"Co\"";
const ESCAPED: &str = "&#60;b&#62;Gaming&#60;/b&#62; Laptop &#38; &#34;Co&#34;";

fn branding() -> Branding {
    Branding {
        shop_name: "Shop & <Co>".into(),
        order_url_template: "https://shop.example/orders/{id}".into(),
        sender: "noreply@shop.example".into(),
        support: "help@shop.example".into(),
    }
}

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

fn parts(view: &View) -> (String, String) {
    (
        text(view, &branding()).unwrap(),
        html(view, &branding()).unwrap(),
    )
}

/// The HTML's text as a reader sees it: tags dropped, entities of the test
/// data decoded, whitespace collapsed.
fn visible(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&middot;", "·");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn every_value_placed_in_html_is_escaped() {
    for outcome in every_outcome() {
        let (text, html) = parts(&view(outcome.clone()));
        assert!(html.contains(ESCAPED), "{outcome:?}: {html}");
        assert!(html.contains("Shop &#38; &#60;Co&#62;"), "{html}");
        for raw in ["<b>", "<i>", "<script>", "'&'", "<Co>"] {
            assert!(!html.contains(raw), "{outcome:?} shows {raw}: {html}");
        }
        assert!(text.contains(HOSTILE), "{outcome:?}: {text}");
        assert!(
            text.contains("2 x 1299.99 USD = 2599.98 USD"),
            "{outcome:?}: {text}"
        );
    }
}

#[test]
fn every_kind_shares_the_layout_shop_order_status_link_and_footer() {
    let order = Uuid::from_u128(7);
    for (outcome, status) in every_outcome().into_iter().zip([
        "Paid",
        "Payment failed",
        "Cancelled",
        "Cancelled",
        "Refunded",
    ]) {
        let (text, html) = parts(&view(outcome.clone()));
        let shown = visible(&html);
        for part in [&text, &shown] {
            for expected in [
                "Shop & <Co>".to_owned(),
                format!("Order #{order}"),
                status.to_owned(),
                "noreply@shop.example".to_owned(),
                "help@shop.example".to_owned(),
            ] {
                assert!(
                    part.contains(&expected),
                    "{outcome:?} lacks {expected:?}: {part}"
                );
            }
        }
        let link = format!("https://shop.example/orders/{order}");
        assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
        assert!(text.contains(&format!("Your order: {link}")), "{text}");
    }
}

#[test]
fn quantities_and_amounts_are_right_aligned_cells() {
    let (_, html) = parts(&view(Outcome::Paid {
        transaction_id: "TXN-0123456789AB".into(),
    }));
    for cell in [">2</td>", ">2599.98 USD</td>"] {
        let at = html.find(cell).unwrap_or_else(|| panic!("{cell}: {html}"));
        let opening = html[..at].rfind("<td").unwrap();
        assert!(
            html[opening..at].contains("text-align:right"),
            "{cell} is not right-aligned: {}",
            &html[opening..at]
        );
    }
}

#[test]
fn the_html_loads_nothing_from_outside() {
    for outcome in every_outcome() {
        let (_, html) = parts(&view(outcome));
        for needle in ["src=", "<link", "<script", "url(", "@import"] {
            assert!(!html.contains(needle), "{needle}: {html}");
        }
        let links: Vec<&str> = html
            .match_indices("http")
            .map(|(at, _)| &html[at..at + 30])
            .collect();
        assert!(
            links
                .iter()
                .all(|l| l.starts_with("https://shop.example/orders/")),
            "only the order's own link: {links:?}"
        );
    }
}

#[test]
fn both_parts_list_lines_total_and_transaction_id() {
    let view = view(Outcome::Paid {
        transaction_id: "TXN-0123456789AB".into(),
    });
    let (text, html) = parts(&view);
    assert!(text.contains("2 x 1299.99 USD = 2599.98 USD"), "{text}");
    assert!(text.contains("Total: 2599.98 USD"), "{text}");
    assert!(text.contains("Transaction ID: TXN-0123456789AB"), "{text}");
    let shown = visible(&html);
    for expected in [
        "1299.99 USD each 2 2599.98 USD",
        "Total 2599.98 USD",
        "Transaction ID TXN-0123456789AB",
    ] {
        assert!(shown.contains(expected), "{expected:?}: {shown}");
    }
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
        let (text, html) = parts(&view);
        let shown = visible(&html);
        assert!(shown.contains("Order Cancelled"), "{shown}");
        assert!(text.contains("Total: 2599.98 USD"), "{text}");
        assert!(shown.contains("Total 2599.98 USD"), "{shown}");
        for part in [text, shown] {
            for expected in [
                why,
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
    let (text, html) = parts(&view);
    assert!(text.contains("Amount refunded: 2599.98 USD"), "{text}");
    assert!(text.contains("Refunded charge: TXN-0123456789AB"), "{text}");
    assert!(text.contains("Refund ID: RFD-BA9876543210"), "{text}");
    let shown = visible(&html);
    for expected in [
        "Amount refunded 2599.98 USD",
        "Refunded charge TXN-0123456789AB",
        "Refund ID RFD-BA9876543210",
    ] {
        assert!(shown.contains(expected), "{expected:?}: {shown}");
    }
}

#[test]
fn amounts_always_show_two_decimal_places() {
    assert_eq!(money(Decimal::from(5)), "5.00");
    assert_eq!(money(Decimal::from_str("1299.9").unwrap()), "1299.90");
}
