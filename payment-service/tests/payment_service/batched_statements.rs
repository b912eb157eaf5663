//! The payment-service statements that run many deliveries at once
//! (`messaging::db::batch`), called directly on a fresh database: each item
//! must get the answer it would get alone.

use chrono::Utc;
use contract::events::{Event, OrderCreated};
use messaging::{db::connect_and_migrate, outbox::OutboxRow};
use payment_service::{
    db::{self, Payment, PaymentWrite, Recorded},
    startup::MIGRATOR,
};
use sqlx::PgPool;
use uuid::Uuid;

const CONSUMER: &str = "payment-service";

async fn pool() -> PgPool {
    connect_and_migrate(&test_support::fresh_database("payment_batch"), &MIGRATOR)
        .await
        .unwrap()
}

/// The write a handler would submit for `order` (its own event id).
fn write_for(order: &OrderCreated) -> PaymentWrite {
    let payment = Payment {
        id: Uuid::new_v4(),
        order_id: order.order_id,
        user_id: order.user_id,
        amount: order.total_amount,
        currency: order.currency.clone(),
        status: "completed".into(),
        transaction_id: Some(format!(
            "TXN-{}",
            &Uuid::new_v4().simple().to_string()[..12]
        )),
        failure_reason: None,
        source_event_id: order.event_id,
        attempts: 1,
        processed_at: Utc::now(),
    };
    // Any event stands for the outbox row: only its id and payload matter here.
    let mut event = order.clone();
    event.event_id = Uuid::new_v4();
    PaymentWrite {
        message_id: order.event_id(),
        payment,
        event: OutboxRow::of(&event),
    }
}

async fn outbox_rows_for(pool: &PgPool, order_id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE correlation_id = $1")
        .bind(order_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn one_statement_answers_each_payment_as_if_it_ran_alone() {
    let pool = pool().await;
    let seen = test_support::fixtures::order_created("seen@example.com");
    let recorded = db::record_payments(&pool, CONSUMER, &[write_for(&seen)])
        .await
        .unwrap();
    assert_eq!(recorded, [Recorded::Stored]);

    let order = test_support::fixtures::order_created("a@example.com");
    // The same order under another event id, in the same statement.
    let mut same_order = order.clone();
    same_order.event_id = Uuid::new_v4();
    let other = test_support::fixtures::order_created("b@example.com");
    let writes = [
        write_for(&order),
        write_for(&same_order),
        write_for(&seen), // redelivered: its event id is in the inbox
        write_for(&other),
    ];
    let recorded = db::record_payments(&pool, CONSUMER, &writes).await.unwrap();
    assert_eq!(
        recorded,
        [
            Recorded::Stored,
            Recorded::AlreadyPaid,
            Recorded::Duplicate,
            Recorded::Stored
        ]
    );
    assert_eq!(
        test_support::count_rows(&pool, "payments").await.unwrap(),
        3
    );
    for (order_id, events) in [(order.order_id, 1), (seen.order_id, 1), (other.order_id, 1)] {
        assert_eq!(
            outbox_rows_for(&pool, order_id).await,
            events,
            "one event per payment"
        );
    }
    let stored = db::find_payment(&pool, order.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.id, writes[0].payment.id,
        "the first of the two is the payment"
    );

    let paid = db::payments_exist(&pool, &[other.order_id, Uuid::new_v4(), order.order_id])
        .await
        .unwrap();
    assert_eq!(paid, [true, false, true]);
}

/// A generic plan made while the tables were empty would keep scanning them
/// whole as they grow (messaging::db's module comment).
#[tokio::test]
async fn every_pooled_connection_plans_for_the_actual_parameters() {
    let pool = pool().await;
    for _ in 0..3 {
        let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(mode, "force_custom_plan");
    }
}
