//! The email-service statements that run many deliveries at once
//! (`messaging::db::batch`), called directly on a fresh database: each item
//! must get the answer it would get alone.

use std::time::Duration;

use email_service::{
    db::{self, Claim, NewEmail},
    startup::MIGRATOR,
};
use messaging::db::connect_and_migrate;
use sqlx::PgPool;
use uuid::Uuid;

fn new_email() -> NewEmail {
    email_of(Uuid::new_v4(), "confirmation")
}

/// The order's email of `kind`.
fn email_of(order_id: Uuid, kind: &'static str) -> NewEmail {
    NewEmail {
        order_id,
        event_id: Uuid::new_v4(),
        recipient: "buyer@example.com".into(),
        kind,
        message_id: format!("<order-{order_id}-{kind}@example.com>"),
    }
}

async fn fresh_pool() -> PgPool {
    connect_and_migrate(&test_support::fresh_database("email_batch"), &MIGRATOR)
        .await
        .unwrap()
}

/// (status, attempts) of the order's email of `kind`.
async fn state(pool: &PgPool, email: &NewEmail) -> (String, i32) {
    let row = db::find_email(pool, email.order_id, email.kind)
        .await
        .unwrap()
        .unwrap();
    (row.status, row.attempts)
}

#[tokio::test]
async fn one_claim_statement_answers_each_email_as_if_it_ran_alone() {
    let pool = fresh_pool().await;
    let long = Duration::from_secs(60);
    let [sent, held, expired, failed] = [new_email(), new_email(), new_email(), new_email()];
    let before = [sent.clone(), held.clone(), failed.clone()];
    assert_eq!(
        db::claim(&pool, &before, long).await.unwrap(),
        [Claim::Taken {
            attempts: 0,
            unrecorded_send: false
        }; 3]
    );
    db::claim(&pool, std::slice::from_ref(&expired), Duration::ZERO)
        .await
        .unwrap();
    db::mark_sent(&pool, &[sent.key()]).await.unwrap();
    db::mark_failed(&pool, failed.key(), "550 mailbox unavailable")
        .await
        .unwrap();

    let fresh = new_email();
    let claims = [
        fresh.clone(),
        sent.clone(),
        held.clone(),
        expired.clone(),
        failed.clone(),
    ];
    assert_eq!(
        db::claim(&pool, &claims, long).await.unwrap(),
        [
            Claim::Taken {
                attempts: 0,
                unrecorded_send: false
            },
            Claim::AlreadySent,
            Claim::HeldElsewhere,
            // Its lease ran out with nothing recorded: maybe sent already.
            Claim::Taken {
                attempts: 0,
                unrecorded_send: true
            },
            // A failed mail is tried again on replay.
            Claim::Taken {
                attempts: 1,
                unrecorded_send: false
            },
        ]
    );

    db::mark_sent(&pool, &[fresh.key(), expired.key()])
        .await
        .unwrap();
    for (email, status) in [(&fresh, "sent"), (&expired, "sent"), (&held, "sending")] {
        assert_eq!(state(&pool, email).await.0, status);
    }
}

#[tokio::test]
async fn the_emails_of_one_order_are_claimed_and_recorded_each_on_its_own() {
    let pool = fresh_pool().await;
    let long = Duration::from_secs(60);
    let order = Uuid::new_v4();
    let [confirmation, refund, cancelled] = [
        email_of(order, "confirmation"),
        email_of(order, "refund"),
        email_of(order, "cancelled"),
    ];
    let taken = Claim::Taken {
        attempts: 0,
        unrecorded_send: false,
    };

    // Two kinds of one order in one statement: two rows, both taken.
    assert_eq!(
        db::claim(&pool, &[confirmation.clone(), refund.clone()], long)
            .await
            .unwrap(),
        [taken, taken]
    );
    // Marking one sent leaves the other being sent.
    db::mark_sent(&pool, &[confirmation.key()]).await.unwrap();
    assert_eq!(state(&pool, &confirmation).await, ("sent".into(), 1));
    assert_eq!(state(&pool, &refund).await, ("sending".into(), 0));

    // Each kind is answered from its own row: sent, held by its live lease,
    // new (and not mistaken for an unrecorded send of another kind's row).
    assert_eq!(
        db::claim(
            &pool,
            &[confirmation.clone(), refund.clone(), cancelled.clone()],
            long
        )
        .await
        .unwrap(),
        [Claim::AlreadySent, Claim::HeldElsewhere, taken]
    );

    // A refusal or a deferral of one kind touches that kind only.
    db::mark_failed(&pool, cancelled.key(), "550 mailbox unavailable")
        .await
        .unwrap();
    db::record_transient_failure(&pool, refund.key(), "451 try again")
        .await
        .unwrap();
    assert_eq!(state(&pool, &confirmation).await, ("sent".into(), 1));
    assert_eq!(state(&pool, &refund).await, ("sending".into(), 1));
    assert_eq!(state(&pool, &cancelled).await, ("failed".into(), 1));
    let all = db::find_emails(&pool, order).await.unwrap();
    let errors: Vec<(&str, Option<&str>)> = all
        .iter()
        .map(|r| (r.kind.as_str(), r.last_error.as_deref()))
        .collect();
    assert_eq!(all.len(), 3, "{errors:?}");
    assert!(
        errors.contains(&("confirmation", None)),
        "the sent email keeps no error: {errors:?}"
    );
}
