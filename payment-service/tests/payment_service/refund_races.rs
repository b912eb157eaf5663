//! At most one refund per order, checked on the refund handler and its
//! statement directly (no broker) on a fresh database: a redelivery, a
//! request published twice, and two replicas (two handlers, two pools)
//! racing one order.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use contract::events::{
    CancelReason, Event, OrderCreated, RefundProcessed, RefundRequested, SCHEMA_VERSION,
};
use messaging::{
    consumer::{Handler, HandlerError, Incoming},
    db::{DatabaseSettings, connect_and_migrate},
    outbox::OutboxRow,
};
use payment_service::{
    SERVICE,
    config::ProviderSettings,
    db::{
        self, Payment,
        refunds::{self, Refund, RefundRecorded, RefundWrite},
    },
    handler::{PaymentHandler, RefundHandler},
    provider::Provider,
    startup::MIGRATOR,
};
use rust_decimal::Decimal;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

/// Long enough that two handlers started together both pass the check for
/// an existing refund before either commits.
const RACE_DELAY: Duration = Duration::from_millis(500);

async fn database() -> (DatabaseSettings, PgPool) {
    let settings = test_support::fresh_database("payment_refund");
    let pool = connect_and_migrate(&settings, &MIGRATOR).await.unwrap();
    (settings, pool)
}

fn provider(delay: Duration) -> Provider {
    Provider::new(ProviderSettings {
        delay,
        decline_above: Decimal::from(10_000),
    })
}

fn refund_handler(pool: &PgPool, delay: Duration) -> RefundHandler {
    RefundHandler::new(pool.clone(), provider(delay), Arc::new(Notify::new()))
}

fn incoming<E>(event: &E, attempt: u32) -> Incoming<E>
where
    E: Clone,
{
    Incoming {
        event: event.clone(),
        attempt,
        redelivered: false,
    }
}

/// An order from `email`, charged by the charge path (on its third attempt,
/// so `+flaky` addresses pay too); its payment.
async fn paid_order(pool: &PgPool, email: &str) -> (OrderCreated, Payment) {
    let order = test_support::fixtures::order_created(email);
    let charges = PaymentHandler::new(pool.clone(), provider(Duration::ZERO), Arc::default());
    charges.handle(incoming(&order, 2)).await.unwrap();
    let payment = db::find_payment(pool, order.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(payment.status, "completed");
    (order, payment)
}

fn request_for(order: &OrderCreated, payment: &Payment) -> RefundRequested {
    RefundRequested {
        event_type: RefundRequested::EVENT_TYPE.into(),
        event_id: Uuid::new_v4(),
        timestamp: Utc::now(),
        schema_version: SCHEMA_VERSION,
        order_id: order.order_id,
        payment_id: payment.id,
        transaction_id: payment.transaction_id.clone().unwrap(),
        user_id: order.user_id,
        user_email: order.user_email.clone(),
        amount: payment.amount,
        currency: payment.currency.clone(),
        items: order.items.clone(),
        reason: CancelReason::Customer,
    }
}

/// (refund rows, `payment.refund.processed` outbox rows) of `order_id`.
async fn refunds_and_events(pool: &PgPool, order_id: Uuid) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM refunds WHERE order_id = $1), \
                (SELECT count(*) FROM outbox WHERE correlation_id = $1 AND routing_key = $2)",
    )
    .bind(order_id)
    .bind(RefundProcessed::ROUTING_KEY)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_redelivered_request_is_acked_without_refunding_again() {
    let (_, pool) = database().await;
    let (order, payment) = paid_order(&pool, "buyer+flaky@example.com").await;
    let request = request_for(&order, &payment);
    let handler = refund_handler(&pool, Duration::ZERO);

    // Refunded on its third attempt...
    handler.handle(incoming(&request, 2)).await.unwrap();
    // ...and delivered again as a first attempt, which the flaky provider
    // would fail: acked, so the provider was not asked again.
    handler
        .handle(incoming(&request, 0))
        .await
        .expect("a duplicate is acked without calling the provider");

    assert_eq!(refunds_and_events(&pool, order.order_id).await, (1, 1));
    let refund = refunds::find_refund(&pool, order.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refund.attempts, 3, "the first refund stands");
}

#[tokio::test]
async fn the_statement_records_the_request_in_the_inbox_and_refunds_an_order_once() {
    let (_, pool) = database().await;
    let (order, payment) = paid_order(&pool, "test@example.com").await;
    let request = request_for(&order, &payment);
    let write = |message_id: Uuid| {
        let refund = Refund {
            id: Uuid::new_v4(),
            order_id: order.order_id,
            payment_id: payment.id,
            amount: payment.amount,
            currency: payment.currency.clone(),
            transaction_id: format!(
                "RFD-{}",
                &Uuid::new_v4().simple().to_string().to_uppercase()[..12]
            ),
            source_event_id: message_id,
            attempts: 1,
            processed_at: Utc::now(),
        };
        let event = RefundProcessed {
            event_type: RefundProcessed::EVENT_TYPE.into(),
            event_id: Uuid::new_v4(),
            timestamp: refund.processed_at,
            schema_version: SCHEMA_VERSION,
            refund_id: refund.id,
            payment_id: payment.id,
            order_id: order.order_id,
            user_id: order.user_id,
            user_email: order.user_email.clone(),
            amount: payment.amount,
            currency: payment.currency.clone(),
            transaction_id: request.transaction_id.clone(),
            refund_transaction_id: refund.transaction_id.clone(),
            items: order.items.clone(),
        };
        RefundWrite {
            message_id,
            refund,
            event: OutboxRow::of(&event),
        }
    };

    let first = write(request.event_id);
    let recorded = refunds::record_refund(&pool, SERVICE, &first).await;
    assert_eq!(recorded.unwrap(), RefundRecorded::Stored);
    let in_inbox: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM processed_messages WHERE consumer = $1 AND message_id = $2)",
    )
    .bind(SERVICE)
    .bind(request.event_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(in_inbox, "the request's event id is in the inbox");

    let redelivered = refunds::record_refund(&pool, SERVICE, &write(request.event_id)).await;
    assert_eq!(redelivered.unwrap(), RefundRecorded::Duplicate);
    let republished = refunds::record_refund(&pool, SERVICE, &write(Uuid::new_v4())).await;
    assert_eq!(republished.unwrap(), RefundRecorded::AlreadyRefunded);

    assert_eq!(
        refunds_and_events(&pool, order.order_id).await,
        (1, 1),
        "one refund, one event: the first's"
    );
    let stored = refunds::find_refund(&pool, order.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.id, stored.transaction_id),
        (first.refund.id, first.refund.transaction_id),
        "the first refund stands"
    );
}

/// Two replicas, each its own pool and handler, given `requests` for one
/// order at the same moment: both must call the provider (a real race) and
/// both succeed.
async fn race(settings: &DatabaseSettings, requests: [&RefundRequested; 2]) {
    let mut handlers = Vec::new();
    for _ in 0..2 {
        let pool = connect_and_migrate(settings, &MIGRATOR).await.unwrap();
        handlers.push(refund_handler(&pool, RACE_DELAY));
    }
    let (a, b) = tokio::join!(
        timed(&handlers[0], requests[0]),
        timed(&handlers[1], requests[1])
    );
    assert!(
        a >= RACE_DELAY && b >= RACE_DELAY,
        "both replicas called the provider: {a:?}, {b:?}"
    );
}

/// How long `handler` took to handle `request` (successfully).
async fn timed(handler: &RefundHandler, request: &RefundRequested) -> Duration {
    let started = Instant::now();
    handler.handle(incoming(request, 0)).await.unwrap();
    started.elapsed()
}

#[tokio::test]
async fn two_replicas_racing_one_request_store_one_refund_and_one_event() {
    let (settings, pool) = database().await;
    let (order, payment) = paid_order(&pool, "test@example.com").await;
    let request = request_for(&order, &payment);

    race(&settings, [&request, &request]).await;

    assert_eq!(refunds_and_events(&pool, order.order_id).await, (1, 1));
}

#[tokio::test]
async fn two_replicas_racing_a_request_published_twice_store_one_refund_and_one_event() {
    let (settings, pool) = database().await;
    let (order, payment) = paid_order(&pool, "test@example.com").await;
    let request = request_for(&order, &payment);
    let mut again = request.clone();
    again.event_id = Uuid::new_v4();

    race(&settings, [&request, &again]).await;

    assert_eq!(refunds_and_events(&pool, order.order_id).await, (1, 1));
    let refund = refunds::find_refund(&pool, order.order_id)
        .await
        .unwrap()
        .unwrap();
    let published: String = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE correlation_id = $1 AND routing_key = $2",
    )
    .bind(order.order_id)
    .bind(RefundProcessed::ROUTING_KEY)
    .fetch_one(&pool)
    .await
    .unwrap();
    let published: RefundProcessed = serde_json::from_str(&published).unwrap();
    assert_eq!(
        (published.refund_id, published.refund_transaction_id),
        (refund.id, refund.transaction_id),
        "the event is the stored refund's"
    );
}

#[tokio::test]
async fn a_request_that_does_not_match_the_payment_is_permanent_and_a_fixed_replay_refunds() {
    let (_, pool) = database().await;
    let handler = refund_handler(&pool, Duration::ZERO);
    let (order, payment) = paid_order(&pool, "test@example.com").await;
    let mut wrong_amount = request_for(&order, &payment);
    wrong_amount.amount += Decimal::ONE;
    let outcome = handler.handle(incoming(&wrong_amount, 0)).await;
    assert!(
        matches!(&outcome, Err(HandlerError::Permanent(r)) if r.contains("was charged")),
        "{outcome:?}"
    );

    // A request parked because its order was not charged (yet, as far as
    // this database knows) ...
    let unpaid = test_support::fixtures::order_created("late@example.com");
    let late_payment = Payment {
        id: Uuid::new_v4(),
        order_id: unpaid.order_id,
        user_id: unpaid.user_id,
        amount: unpaid.total_amount,
        currency: unpaid.currency.clone(),
        status: "completed".into(),
        transaction_id: Some("TXN-0123456789AB".into()),
        failure_reason: None,
        source_event_id: unpaid.event_id,
        attempts: 1,
        processed_at: Utc::now(),
    };
    let request = request_for(&unpaid, &late_payment);
    let outcome = handler.handle(incoming(&request, 0)).await;
    assert!(
        matches!(&outcome, Err(HandlerError::Permanent(r)) if r.contains("has no payment")),
        "{outcome:?}"
    );
    assert_eq!(
        test_support::count_rows(&pool, "processed_messages")
            .await
            .unwrap(),
        1,
        "only the charge's event is in the inbox: nothing recorded for either request"
    );
    // ... is refunded when replayed once the payment is there.
    let write = db::PaymentWrite {
        message_id: unpaid.event_id,
        payment: late_payment,
        event: OutboxRow::of(&unpaid),
    };
    db::record_payments(&pool, SERVICE, &[write]).await.unwrap();
    handler.handle(incoming(&request, 0)).await.unwrap();
    assert_eq!(refunds_and_events(&pool, unpaid.order_id).await, (1, 1));
    assert_eq!(
        refunds_and_events(&pool, order.order_id).await,
        (0, 0),
        "the mismatched request refunded nothing"
    );
}
