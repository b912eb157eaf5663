//! The load generator against the whole pipeline in one process (fresh
//! databases, a unique broker prefix, a real SMTP server): a small load is
//! audited clean, and the audit does flag lost and duplicated effects.

use std::time::Duration;

use clap::Parser;
use e2e::Pipeline;
use loadgen::{
    audit::{self, AuditPlan, Databases},
    classify::Tally,
    cli::{Args, Limits, Mode},
    drive::{self, Target},
    mail::Mailbox,
    orders::OrderPlan,
};
use sqlx::PgPool;
use uuid::Uuid;

/// `postgres://user@host:port/db` of a pool (the test databases trust local users).
fn url_of(pool: &PgPool) -> String {
    let o = pool.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or_default()
    )
}

fn databases(pipeline: &Pipeline) -> Databases {
    Databases {
        order: pipeline.order_db.clone(),
        payment: pipeline.payment_db.clone(),
        email: pipeline.email_db.clone(),
    }
}

async fn subjects(pipeline: &mut Pipeline, count: usize) -> Vec<String> {
    let mails = pipeline.smtp.wait_for(count, Duration::from_secs(60)).await;
    mails
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn thirty_checkouts_through_the_cli_entry_point_are_audited_clean() {
    let mut pipeline = Pipeline::start().await;
    let args = Args::parse_from([
        "loadgen",
        "--url",
        &pipeline.gateway,
        "--connections",
        "4",
        "--requests",
        "30",
        "--decline-ratio",
        "0.2",
        "--order-db-url",
        &url_of(&pipeline.order_db),
        "--payment-db-url",
        &url_of(&pipeline.payment_db),
        "--email-db-url",
        &url_of(&pipeline.email_db),
        "--drain-timeout",
        "60s",
        "--settle",
        "300ms",
    ]);

    let outcome = loadgen::run(&args).await.expect("the run completes");

    let recorded = &outcome.run.recorded;
    assert_eq!(recorded.sent, 30);
    assert_eq!(recorded.accepted.len(), 30, "{:?}", recorded.outcomes);
    assert_eq!(recorded.latency.len(), 30);
    let audit = outcome.audit.as_ref().expect("audited");
    assert!(audit.verdict.is_clean(), "{}", audit.report());
    assert!(audit.drained);
    assert_eq!((audit.verdict.paid, audit.verdict.failed), (24, 6));
    assert_eq!(audit.end_to_end.emailed.len(), 30);
    assert_eq!(audit.end_to_end.settled.len(), 30);
    assert!(outcome.success());
    // And the SMTP server got exactly one message per order.
    let got = subjects(&mut pipeline, 30).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pipeline.smtp.messages().len(), 30, "{got:?}");
    pipeline.stop().await;
}

#[tokio::test]
async fn the_audit_flags_a_lost_payment_a_lost_email_and_a_duplicated_message() {
    let mut pipeline = Pipeline::start().await;
    let plan = OrderPlan::new(0.0, 2);
    let email_pattern = plan.email_pattern();
    let target = Target::new(&pipeline.gateway, Duration::from_secs(10), plan).unwrap();
    let limits = Limits {
        duration: None,
        requests: Some(10),
    };
    let run = drive::drive(target, Mode::Open { rate: 50.0 }, limits, 64).await;
    let accepted = run.recorded.accepted.clone();
    assert_eq!(accepted.len(), 10, "{:?}", run.recorded.outcomes);
    let dbs = databases(&pipeline);
    let mut mail_subjects = subjects(&mut pipeline, 10).await;
    let mut plan = AuditPlan {
        email_pattern,
        mailbox: Some(Mailbox::Subjects(mail_subjects.clone())),
        drain_timeout: Duration::from_secs(60),
        settle: Duration::from_millis(100),
    };
    let clean = audit::audit(&dbs, &accepted, &plan).await.unwrap();
    assert!(clean.verdict.is_clean(), "{}", clean.report());

    // Now break it: one payment lost, one email never sent, one message twice.
    let [lost_payment, unsent, twice]: [Uuid; 3] = [0, 1, 2].map(|i| accepted[i].id);
    sqlx::query("DELETE FROM payments WHERE order_id = $1")
        .bind(lost_payment)
        .execute(&pipeline.payment_db)
        .await
        .unwrap();
    sqlx::query("UPDATE email_log SET status = 'failed' WHERE order_id = $1")
        .bind(unsent)
        .execute(&pipeline.email_db)
        .await
        .unwrap();
    mail_subjects.push(format!("Order Confirmation - Order #{twice}"));
    plan.mailbox = Some(Mailbox::Subjects(mail_subjects));
    plan.drain_timeout = Duration::from_secs(2);

    let broken = audit::audit(&dbs, &accepted, &plan).await.unwrap();

    let v = &broken.verdict;
    assert!(!v.is_clean(), "{}", broken.report());
    let tally = |missing, duplicated| Tally {
        missing,
        duplicated,
    };
    assert_eq!(v.payments, tally(1, 0));
    assert_eq!(v.emails, tally(1, 0));
    assert_eq!(v.mails, Some(tally(0, 1)));
    assert!(!broken.drained, "one email can never arrive");
    assert!(broken.report().contains("NOT CLEAN"));
    pipeline.stop().await;
}
