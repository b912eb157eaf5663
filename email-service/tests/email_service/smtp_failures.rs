//! email-service when the SMTP server is down, refuses, defers or hangs
//! (faults S1–S4 in `docs/guarantees.md`): retried when it may work later, parked at once
//! when it never will, never acked away and never sent twice.

use std::time::Duration;

use crate::{
    fake_smtp::{FakeSmtp, Quirks},
    support::{CONFIRMATION, TestApp},
};
use email_service::smtp::{Mailer, SendError};
use test_support::fixtures::payment_completed;
use test_support::{self, SmtpSink};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn an_smtp_outage_is_retried_until_the_server_is_back_and_then_one_email_is_sent() {
    // Nothing listens on the port yet: connections are refused (S1).
    let port = test_support::free_port();
    let mut settings = crate::support::settings(port);
    // Slow enough tiers that the outage ends before the retries run out.
    settings.amqp.retry_delays = vec![
        Duration::from_millis(300),
        Duration::from_secs(3),
        Duration::from_secs(5),
    ];
    let app = TestApp::spawn_with(settings).await;
    let event = payment_completed("test@example.com");

    app.publish(&event).await;
    let row = app
        .wait_for_log(event.order_id, CONFIRMATION, "a retried attempt", |r| {
            r.attempts >= 2
        })
        .await;
    assert_eq!(row.status, "sending");
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("onnect"),
        "{row:?}"
    );
    let mut sink = SmtpSink::start_on(port).await;

    let emails = sink.wait_for(1, WAIT).await;
    assert_eq!(
        emails[0]["subject"],
        format!("Order Confirmation - Order #{}", event.order_id)
    );
    let row = app
        .wait_for_log(event.order_id, CONFIRMATION, "the row to be sent", |r| {
            r.status == "sent"
        })
        .await;
    assert!(row.attempts >= 3, "{row:?}");
    app.wait_until_processed("acked", 1).await;
    assert_eq!(sink.messages().len(), 1, "exactly one email");
    assert_eq!(app.dlq_depth().await, 0, "nothing parked");
    app.stop().await;
}

#[tokio::test]
async fn a_permanent_smtp_refusal_is_parked_at_once_and_marked_failed() {
    let smtp = FakeSmtp::start(|_| "550 5.1.1 mailbox unavailable").await;
    let app = TestApp::spawn(smtp.port).await;
    let event = payment_completed("gone@example.com");

    app.publish(&event).await;

    let parked = app.parked(1).await;
    let (id, reason, retries) = &parked[0];
    assert_eq!(id, &event.event_id.to_string());
    assert!(reason.contains("550"), "{reason}");
    assert_eq!(*retries, 0, "parked without retrying");
    let row = app
        .wait_for_log(event.order_id, CONFIRMATION, "the row to be failed", |r| {
            r.status == "failed"
        })
        .await;
    assert_eq!(row.attempts, 1);
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("mailbox unavailable"),
        "{row:?}"
    );
    assert_eq!(smtp.rcpt_commands(), 1, "one SMTP attempt, no retry storm");
    assert_eq!(smtp.delivered(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_temporary_smtp_refusal_is_retried_until_the_server_accepts() {
    // 451 twice, then accepted (S2).
    let smtp = FakeSmtp::start(|n| {
        if n < 2 {
            "451 4.3.0 try again"
        } else {
            "250 2.1.5 ok"
        }
    })
    .await;
    let app = TestApp::spawn(smtp.port).await;
    let event = payment_completed("test@example.com");

    app.publish(&event).await;

    let row = app
        .wait_for_log(event.order_id, CONFIRMATION, "the row to be sent", |r| {
            r.status == "sent"
        })
        .await;
    assert_eq!(row.attempts, 3, "{row:?}");
    assert_eq!(smtp.rcpt_commands(), 3);
    assert_eq!(smtp.delivered(), 1);
    app.wait_until_processed("acked", 1).await;
    assert_eq!(app.processed("retried"), 2);
    assert_eq!(
        app.dlq_depth().await,
        0,
        "a 4xx is never parked while retries remain"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_smtp_server_that_never_answers_times_out_and_is_retried() {
    // Accepts TCP and stays silent (S4): the command timeout frees the delivery.
    let smtp = FakeSmtp::silent().await;
    let mut settings = crate::support::settings(smtp.port);
    settings.smtp.timeout = Duration::from_millis(300);
    let app = TestApp::spawn_with(settings).await;
    let event = payment_completed("test@example.com");

    app.publish(&event).await;

    let row = app
        .wait_for_log(event.order_id, CONFIRMATION, "a retried attempt", |r| {
            r.attempts >= 2
        })
        .await;
    assert_eq!(row.status, "sending");
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("no answer within"),
        "{row:?}"
    );
    app.wait_until_processed("retried", 2).await;
    // After the last tier it is parked, never dropped.
    let parked = app.parked(1).await;
    assert!(
        parked[0].1.contains("gave up after 3 retries"),
        "{:?}",
        parked[0]
    );
    app.stop().await;
}

/// A mail for the `Mailer` tests below.
fn mail(n: u32) -> lettre::Message {
    lettre::Message::builder()
        .from("noreply@ecommerce.com".parse().unwrap())
        .to("test@example.com".parse().unwrap())
        .subject(format!("mail {n}"))
        .body(format!("body {n}"))
        .unwrap()
}

#[tokio::test]
async fn consecutive_emails_share_one_smtp_connection() {
    let smtp = FakeSmtp::start(|_| "250 2.1.5 ok").await;
    let mailer = Mailer::new(&crate::support::smtp_settings(smtp.port)).unwrap();

    for n in 0..3 {
        mailer.send(&mail(n)).await.unwrap();
    }

    assert_eq!(smtp.delivered(), 3);
    assert_eq!(smtp.connections(), 1, "the connection was reused");
    assert_eq!(mailer.idle_connections(), 1);
}

#[tokio::test]
async fn a_send_cut_off_by_its_timeout_never_lends_its_connection_to_the_next_email() {
    // The first acceptance arrives after the send has given up: on that
    // connection, the next mail would read it as the answer to its MAIL FROM.
    let smtp = FakeSmtp::start_with(
        |_| "250 2.1.5 ok",
        Quirks {
            late_first_acceptance: Some(Duration::from_secs(3)),
            ..Quirks::default()
        },
    )
    .await;
    let mut settings = crate::support::smtp_settings(smtp.port);
    settings.timeout = Duration::from_millis(200);
    let mailer = Mailer::new(&settings).unwrap();

    let first = mailer.send(&mail(0)).await;
    assert!(
        matches!(&first, Err(SendError::Transient(reason)) if reason.contains("no answer within")),
        "{first:?}"
    );
    assert_eq!(
        mailer.idle_connections(),
        0,
        "the cut-off connection was dropped"
    );

    mailer.send(&mail(1)).await.unwrap();
    assert_eq!(
        smtp.connections(),
        2,
        "the second mail had a connection of its own"
    );
    assert_eq!(smtp.delivered(), 2);
}

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_replaced_without_failing_the_email() {
    let smtp = FakeSmtp::start_with(
        |_| "250 2.1.5 ok",
        Quirks {
            hang_up_after_each_mail: true,
            ..Quirks::default()
        },
    )
    .await;
    let mailer = Mailer::new(&crate::support::smtp_settings(smtp.port)).unwrap();

    for n in 0..3 {
        mailer.send(&mail(n)).await.unwrap();
    }

    assert_eq!(smtp.delivered(), 3);
    assert_eq!(smtp.connections(), 3);
}
