//! The email-service statements that run many deliveries at once
//! (`messaging::db::batch`), called directly on a fresh database: each item
//! must get the answer it would get alone.

use std::time::Duration;

use email_service::{
    db::{self, Claim, NewEmail},
    startup::MIGRATOR,
};
use messaging::db::connect_and_migrate;
use uuid::Uuid;

fn new_email() -> NewEmail {
    let order_id = Uuid::new_v4();
    NewEmail {
        order_id,
        event_id: Uuid::new_v4(),
        recipient: "buyer@example.com".into(),
        kind: "confirmation",
        message_id: format!("<order-{order_id}@example.com>"),
    }
}

#[tokio::test]
async fn one_claim_statement_answers_each_email_as_if_it_ran_alone() {
    let pool = connect_and_migrate(&test_support::fresh_database("email_batch"), &MIGRATOR)
        .await
        .unwrap();
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
    db::mark_sent(&pool, &[sent.order_id]).await.unwrap();
    db::mark_failed(&pool, failed.order_id, "550 mailbox unavailable")
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

    db::mark_sent(&pool, &[fresh.order_id, expired.order_id])
        .await
        .unwrap();
    for (email, status) in [(&fresh, "sent"), (&expired, "sent"), (&held, "sending")] {
        let row = db::find_email(&pool, email.order_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, status);
    }
}
