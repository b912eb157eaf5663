//! Failure window W6 on the real binary (`docs/guarantees.md`):
//! email-service killed after the SMTP server accepted an email and before
//! it recorded it as sent. The redelivery sends it again, the one duplicate
//! the design allows, with the same Message-ID, and counts it; then never
//! again. It holds per email: a refund's copy is counted and re-sent like
//! a confirmation's, under the refund's own Message-ID.

use std::time::Duration;

use contract::{
    events::Event,
    names::{EMAIL_QUEUE, EMAIL_REFUND_QUEUE},
};
use test_support::{self, ProcessScenario, ServiceProcess, SmtpSink, eventually};

use crate::support::{CONFIRMATION, REFUND, header, refund_processed};

const BINARY: &str = env!("CARGO_BIN_EXE_email-service");

fn start(
    scenario: &ProcessScenario,
    smtp: &SmtpSink,
    fail_point: Option<&str>,
) -> (ServiceProcess, u16) {
    let port = test_support::free_port();
    let mut env = vec![
        ("SMTP_HOST", "127.0.0.1".to_owned()),
        ("SMTP_PORT", smtp.port.to_string()),
        // A short send timeout makes a short lease (twice three times it).
        ("SMTP_TIMEOUT_MS", "300".to_owned()),
        ("RETRY_DELAYS_MS", "200,400,800".to_owned()),
    ];
    env.extend(fail_point.map(|point| ("FAIL_POINT", point.to_owned())));
    (scenario.start(BINARY, port, &env), port)
}

#[tokio::test]
async fn a_kill_between_the_smtp_acceptance_and_its_record_sends_one_copy_more_with_the_same_message_id()
 {
    let event = test_support::fixtures::payment_completed("w6@example.com");
    let message_id = w6_once_more(EMAIL_QUEUE, event.clone(), CONFIRMATION).await;
    assert_eq!(
        message_id,
        format!("<order-{}@ecommerce.com>", event.order_id)
    );
}

#[tokio::test]
async fn a_refund_email_killed_before_its_record_is_sent_once_more_under_its_own_message_id() {
    let event = refund_processed("w6@example.com");
    let message_id = w6_once_more(EMAIL_REFUND_QUEUE, event.clone(), REFUND).await;
    assert_eq!(
        message_id,
        format!("<order-{}-refund@ecommerce.com>", event.order_id)
    );
}

/// Publishes `event` to a binary that aborts right after the SMTP server
/// accepted its email, then starts a healthy one: the email of `kind` is
/// recorded as sent, with exactly one copy more, both under one Message-ID
/// (returned), and the second copy counted once.
async fn w6_once_more<E: Event>(queue: &str, event: E, kind: &str) -> String {
    let mut smtp = SmtpSink::start().await;
    let scenario = ProcessScenario::new("email", &[(queue, E::ROUTING_KEY)]).await;
    let (mut crashing, _) = start(&scenario, &smtp, Some("email-after-send"));
    scenario.publish_burst(std::slice::from_ref(&event)).await;
    assert!(
        !crashing.wait_exit(Duration::from_secs(30)).await.success(),
        "the fail point aborted it"
    );
    assert_eq!(smtp.wait_for(1, Duration::from_secs(5)).await.len(), 1);

    let (mut service, port) = start(&scenario, &smtp, None);
    let pool = scenario.pool().await;
    eventually(
        Duration::from_secs(30),
        "the email recorded as sent",
        || async {
            let status: Option<String> = sqlx::query_scalar(
                "SELECT status FROM email_log WHERE order_id = $1 AND kind = $2",
            )
            .bind(event.order_id())
            .bind(kind)
            .fetch_optional(&pool)
            .await
            .ok()?;
            (status.as_deref() == Some("sent")).then_some(())
        },
    )
    .await;
    let copies = smtp.wait_for(2, Duration::from_secs(5)).await.to_vec();
    assert_eq!(copies.len(), 2, "one copy more, not two");
    let message_id = header(&copies[0], "Message-ID").map(str::to_owned);
    assert_eq!(
        message_id.as_deref(),
        header(&copies[1], "Message-ID"),
        "the same Message-ID, so mail clients show one"
    );
    let resent = test_support::scrape(port)
        .await
        .expect("metrics")
        .sum("emails_resent_unrecorded_total", &[]);
    assert_eq!(resent, 1.0, "the second copy is counted");
    assert_eq!(
        test_support::queue_depth(&scenario.conn, queue).await,
        0,
        "nothing left to deliver"
    );
    assert_eq!(smtp.messages().len(), 2, "and no third copy");
    assert!(service.terminate(Duration::from_secs(30)).await.success());
    message_id.expect("a Message-ID")
}
