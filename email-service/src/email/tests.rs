use super::*;
use chrono::Utc;
use contract::events::{
    CancelReason, Event, OrderCancelled, PaymentProcessed, PaymentStatus, RefundProcessed,
};
use std::str::FromStr;

fn laptop() -> Vec<OrderCreatedItem> {
    vec![OrderCreatedItem {
        product_id: 1,
        name: "Gaming Laptop".into(),
        quantity: 1,
        price: Decimal::from_str("1299.99").unwrap(),
    }]
}

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
        items: laptop(),
    }
}

fn cancelled(email: &str) -> OrderCancelled {
    OrderCancelled {
        event_type: OrderCancelled::EVENT_TYPE.into(),
        event_id: Uuid::new_v4(),
        timestamp: Utc::now(),
        schema_version: 1,
        order_id: Uuid::from_u128(42),
        user_id: 1,
        user_email: email.into(),
        total_amount: Decimal::from_str("1299.99").unwrap(),
        currency: "USD".into(),
        items: laptop(),
        reason: CancelReason::PaymentTimeout,
    }
}

fn refunded(email: &str) -> RefundProcessed {
    RefundProcessed {
        event_type: RefundProcessed::EVENT_TYPE.into(),
        event_id: Uuid::new_v4(),
        timestamp: Utc::now(),
        schema_version: 1,
        refund_id: Uuid::new_v4(),
        payment_id: Uuid::new_v4(),
        order_id: Uuid::from_u128(42),
        user_id: 1,
        user_email: email.into(),
        amount: Decimal::from_str("1299.99").unwrap(),
        currency: "USD".into(),
        transaction_id: "TXN-0123456789AB".into(),
        refund_transaction_id: "RFD-BA9876543210".into(),
        items: laptop(),
    }
}

fn composer() -> Composer {
    Composer::new(
        "noreply@ecommerce.com".parse().unwrap(),
        None,
        Branding::defaults("noreply@ecommerce.com"),
    )
}

fn raw(email: &Email) -> String {
    String::from_utf8(email.message.formatted()).unwrap()
}

#[test]
fn the_message_id_derives_from_the_order_and_the_sender_domain() {
    let email = composer().compose(&event("test@example.com")).unwrap();
    assert_eq!(
        email.message_id,
        format!("<order-{}@ecommerce.com>", Uuid::from_u128(42))
    );
    let raw = raw(&email);
    assert!(
        raw.contains(&format!("Message-ID: {}", email.message_id)),
        "{raw}"
    );
    assert!(raw.contains("multipart/alternative"), "{raw}");
}

#[test]
fn each_kind_of_email_of_one_order_has_its_own_message_id_and_subject() {
    let order = Uuid::from_u128(42);
    let composer = composer();
    let emails = [
        composer.compose(&event("a@example.com")).unwrap(),
        composer.compose(&cancelled("a@example.com")).unwrap(),
        composer.compose(&refunded("a@example.com")).unwrap(),
    ];
    let expected = [
        (
            Kind::Confirmation,
            format!("<order-{order}@ecommerce.com>"),
            format!("Order Confirmation - Order #{order}"),
        ),
        (
            Kind::Cancelled,
            format!("<order-{order}-cancelled@ecommerce.com>"),
            format!("Order Cancelled - Order #{order}"),
        ),
        (
            Kind::Refund,
            format!("<order-{order}-refund@ecommerce.com>"),
            format!("Refund Processed - Order #{order}"),
        ),
    ];
    for (email, (kind, message_id, subject)) in emails.iter().zip(expected) {
        assert_eq!(email.kind, kind);
        assert_eq!(email.message_id, message_id);
        let raw = raw(email);
        assert!(raw.contains(&format!("Message-ID: {message_id}")), "{raw}");
        assert!(raw.contains(&format!("Subject: {subject}")), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
    }
    // A redelivered event (a new event id) gets the same id again.
    let again = composer.compose(&refunded("a@example.com")).unwrap();
    assert_eq!(again.message_id, emails[2].message_id);
}

#[test]
fn a_recipient_with_crlf_or_no_domain_is_a_compose_error_not_a_panic() {
    for bad in [
        "a@b.com\r\nBcc: x@evil.com",
        "not-an-address",
        "",
        "a\0@b.com",
    ] {
        let errors = [
            composer().compose(&event(bad)).unwrap_err(),
            composer().compose(&cancelled(bad)).unwrap_err(),
            composer().compose(&refunded(bad)).unwrap_err(),
        ];
        for err in errors {
            assert!(
                matches!(err, ComposeError::InvalidRecipient(_)),
                "{bad:?}: {err}"
            );
        }
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
    let mut bad = cancelled("a@example.com");
    bad.items[0].quantity = -1;
    assert!(matches!(
        composer().compose(&bad),
        Err(ComposeError::LineOutOfRange(1))
    ));
    let mut bad = refunded("a@example.com");
    bad.items[0].price = Decimal::MAX;
    bad.items[0].quantity = 2;
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
    assert_eq!(
        email.message_id,
        format!("<order-{}@ecommerce.com>", Uuid::from_u128(42))
    );
    let raw = raw(&email);
    assert!(
        raw.contains(&format!(
            "Subject: Payment Failed - Order #{}",
            Uuid::from_u128(42)
        )),
        "{raw}"
    );
}

#[test]
fn every_kind_has_its_own_log_value() {
    let values: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        values,
        ["confirmation", "payment_failed", "cancelled", "refund"]
    );
}

/// What real providers expect of transactional mail: a date, a mark that a
/// program sent it (so auto-responders stay quiet), no List-Unsubscribe (it
/// is not a mailing list), a Reply-To only when one is configured, and the
/// plain text before the HTML in a multipart/alternative.
#[test]
fn the_headers_are_those_of_transactional_mail() {
    let raw = raw(&composer().compose(&event("test@example.com")).unwrap());
    let headers = raw.split("\r\n\r\n").next().unwrap();
    assert!(headers.contains("\r\nDate: "), "{headers}");
    assert!(
        headers.contains("Auto-Submitted: auto-generated"),
        "{headers}"
    );
    assert!(!headers.contains("List-Unsubscribe"), "{headers}");
    assert!(!headers.contains("Reply-To"), "{headers}");
    assert!(headers.contains("multipart/alternative"), "{headers}");
    let text = raw.find("Content-Type: text/plain").expect("a text part");
    let html = raw.find("Content-Type: text/html").expect("an HTML part");
    assert!(text < html, "the text part first: {raw}");

    let with_reply_to = Composer::new(
        "noreply@ecommerce.com".parse().unwrap(),
        Some("Support <help@ecommerce.com>".parse().unwrap()),
        Branding::defaults("noreply@ecommerce.com"),
    );
    let replied = self::raw(&with_reply_to.compose(&event("test@example.com")).unwrap());
    assert!(
        replied.contains("Reply-To: Support <help@ecommerce.com>"),
        "{replied}"
    );
}
