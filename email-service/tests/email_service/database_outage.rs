//! The database lost between the SMTP server's acceptance and the record
//! of it (the W6 window opened by the database instead of a crash): the
//! record waits for the database, so the mail is not sent again.

use std::time::Duration;

use crate::{
    fake_smtp::{FakeSmtp, Quirks},
    support::TestApp,
};
use sqlx::PgPool;
use test_support::{FaultProxy, eventually, fixtures::payment_completed};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_database_lost_after_the_send_is_waited_for_and_the_mail_goes_out_once() {
    // The acceptance comes late, so the database can go first.
    let smtp = FakeSmtp::start_with(
        |_| "250 2.1.5 ok",
        Quirks {
            late_first_acceptance: Some(Duration::from_millis(1500)),
            ..Quirks::default()
        },
    )
    .await;
    let mut settings = crate::support::settings(smtp.port);
    let direct_url = settings.database.url.clone();
    let database = FaultProxy::start(test_support::socket_addr_of(&direct_url)).await;
    settings.database.url = database.rewrite_url(&direct_url);
    let acquire_timeout = settings.database.acquire_timeout;
    let app = TestApp::spawn_with(settings).await;
    let event = payment_completed("test@example.com");

    app.publish(&event).await;
    eventually(WAIT, "the mail on its way", || async {
        (smtp.rcpt_commands() >= 1).then_some(())
    })
    .await;
    database.cut();
    eventually(WAIT, "the server's acceptance", || async {
        (smtp.delivered() >= 1).then_some(())
    })
    .await;
    // The outage outlasts the pool's wait for a connection: the record
    // fails at least once.
    tokio::time::sleep(acquire_timeout + Duration::from_secs(1)).await;
    database.restore();

    app.wait_until_processed("acked", 1).await;
    let direct = PgPool::connect(&direct_url).await.unwrap();
    let status: String = sqlx::query_scalar("SELECT status FROM email_log WHERE order_id = $1")
        .bind(event.order_id)
        .fetch_one(&direct)
        .await
        .unwrap();
    assert_eq!(status, "sent");
    assert_eq!(smtp.delivered(), 1, "the mail went out once");
    let resent = runtime::metrics::render()
        .lines()
        .any(|l| l.starts_with("emails_resent_unrecorded_total") && !l.ends_with(" 0"));
    assert!(!resent, "no unrecorded send was found and sent again");
    assert_eq!(app.dlq_depth().await, 0, "nothing parked");
    app.stop().await;
}
