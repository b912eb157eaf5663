//! The payments table: one SQL statement per function; the handler's two
//! go through `messaging::db::batch`, many deliveries' worth per statement.
//! The refunds table is in [`refunds`].

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use messaging::{
    db::batch::{BatchStatement, in_order_of},
    outbox::OutboxRow,
};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

pub mod refunds;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Payment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub user_id: i64,
    pub amount: Decimal,
    pub currency: String,
    pub status: String,
    pub transaction_id: Option<String>,
    pub failure_reason: Option<String>,
    pub source_event_id: Uuid,
    pub attempts: i32,
    pub processed_at: DateTime<Utc>,
}

/// What [`record_payment`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The payment and its event are stored.
    Stored,
    /// The order had a payment already (from another event for it).
    AlreadyPaid,
    /// This event was processed before (the inbox has it): nothing changed.
    Duplicate,
}

/// A payment to store with its `payment.payment.processed` outbox row, for
/// the `order.order.created` event `message_id`.
#[derive(Debug, Clone)]
pub struct PaymentWrite {
    pub message_id: Uuid,
    pub payment: Payment,
    pub event: OutboxRow,
}

/// Stores payments and their outbox rows, many in one statement (its own
/// transaction; [`RecordPayments`] batches concurrent handlers), each
/// idempotent twice over: its event id goes into the inbox
/// (`processed_messages`) in the same statement, and `payments.order_id` is
/// unique. So an event exists exactly when its payment does, and a
/// redelivery or a second event for the order stores nothing. The event
/// ids must be distinct (the batcher sees to it); the outbox row follows the
/// payment by its own id, so two events for one order in one statement still
/// store one payment and one event.
pub async fn record_payments(
    pool: &PgPool,
    consumer: &str,
    writes: &[PaymentWrite],
) -> sqlx::Result<Vec<Recorded>> {
    let payments = || writes.iter().map(|w| &w.payment);
    let events = || writes.iter().map(|w| &w.event);
    let rows: Vec<(Uuid, bool, bool)> = sqlx::query_as(
        "WITH input AS ( \
           SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::numeric[], $5::text[], $6::text[], \
                                $7::text[], $8::text[], $9::uuid[], $10::int[], $11::timestamptz[], $13::uuid[], \
                                $14::uuid[], $15::text[], $16::text[], $17::uuid[], $18::text[], $19::text[]) \
             AS i(id, order_id, user_id, amount, currency, status, transaction_id, failure_reason, \
                  source_event_id, attempts, processed_at, message_id, \
                  event_id, routing_key, event_type, correlation_id, payload, traceparent) \
         ), first_delivery AS ( \
           INSERT INTO processed_messages (consumer, message_id) SELECT $12, message_id FROM input \
           ON CONFLICT DO NOTHING RETURNING message_id \
         ), payment AS ( \
           INSERT INTO payments (id, order_id, user_id, amount, currency, status, transaction_id, \
                                 failure_reason, source_event_id, attempts, processed_at) \
           SELECT id, order_id, user_id, amount, currency, status, transaction_id, \
                  failure_reason, source_event_id, attempts, processed_at \
           FROM input WHERE message_id IN (SELECT message_id FROM first_delivery) \
           ON CONFLICT (order_id) DO NOTHING RETURNING id \
         ), event AS ( \
           INSERT INTO outbox (id, routing_key, event_type, correlation_id, payload, traceparent) \
           SELECT event_id, routing_key, event_type, correlation_id, payload, traceparent \
           FROM input WHERE id IN (SELECT id FROM payment) \
         ) \
         SELECT message_id, message_id IN (SELECT message_id FROM first_delivery), \
                id IN (SELECT id FROM payment) \
         FROM input",
    )
    .bind(payments().map(|p| p.id).collect::<Vec<_>>())
    .bind(payments().map(|p| p.order_id).collect::<Vec<_>>())
    .bind(payments().map(|p| p.user_id).collect::<Vec<_>>())
    .bind(payments().map(|p| p.amount).collect::<Vec<_>>())
    .bind(payments().map(|p| p.currency.as_str()).collect::<Vec<_>>())
    .bind(payments().map(|p| p.status.as_str()).collect::<Vec<_>>())
    .bind(payments().map(|p| p.transaction_id.as_deref()).collect::<Vec<_>>())
    .bind(payments().map(|p| p.failure_reason.as_deref()).collect::<Vec<_>>())
    .bind(payments().map(|p| p.source_event_id).collect::<Vec<_>>())
    .bind(payments().map(|p| p.attempts).collect::<Vec<_>>())
    .bind(payments().map(|p| p.processed_at).collect::<Vec<_>>())
    .bind(consumer)
    .bind(writes.iter().map(|w| w.message_id).collect::<Vec<_>>())
    .bind(events().map(|e| e.id).collect::<Vec<_>>())
    .bind(events().map(|e| e.routing_key).collect::<Vec<_>>())
    .bind(events().map(|e| e.event_type).collect::<Vec<_>>())
    .bind(events().map(|e| e.correlation_id).collect::<Vec<_>>())
    .bind(events().map(|e| e.payload.as_str()).collect::<Vec<_>>())
    .bind(events().map(|e| e.traceparent.as_deref()).collect::<Vec<_>>())
    .fetch_all(pool)
    .await?;
    let found: HashMap<Uuid, Recorded> = rows
        .into_iter()
        .map(|(message_id, first, stored)| {
            let recorded = match (first, stored) {
                (false, _) => Recorded::Duplicate,
                (true, false) => Recorded::AlreadyPaid,
                (true, true) => Recorded::Stored,
            };
            (message_id, recorded)
        })
        .collect();
    in_order_of(writes, |w| w.message_id, &found)
}

/// Which of `order_ids` already have a payment, in one statement: a lookup
/// by `order_id = ANY($1)`, which uses the unique index whatever PostgreSQL
/// guesses of the array's length (an `EXISTS` per `unnest`ed id was planned
/// as a hash over a sequential scan of all payments).
pub async fn payments_exist(pool: &PgPool, order_ids: &[Uuid]) -> sqlx::Result<Vec<bool>> {
    let paid: Vec<Uuid> =
        sqlx::query_scalar("SELECT order_id FROM payments WHERE order_id = ANY($1)")
            .bind(order_ids)
            .fetch_all(pool)
            .await?;
    let paid: HashSet<Uuid> = paid.into_iter().collect();
    Ok(order_ids.iter().map(|id| paid.contains(id)).collect())
}

/// [`record_payments`] for concurrent handlers (`messaging::db::batch`).
pub struct RecordPayments {
    pub consumer: &'static str,
}

#[async_trait::async_trait]
impl BatchStatement for RecordPayments {
    type Item = PaymentWrite;
    type Output = Recorded;
    type Key = Uuid;
    const NAME: &'static str = "record_payments";

    fn keys(write: &PaymentWrite) -> Vec<Uuid> {
        vec![write.message_id]
    }

    async fn run(&self, pool: &PgPool, writes: &[PaymentWrite]) -> sqlx::Result<Vec<Recorded>> {
        record_payments(pool, self.consumer, writes).await
    }
}

/// [`payments_exist`] for concurrent handlers (`messaging::db::batch`).
pub struct PaymentsExist;

#[async_trait::async_trait]
impl BatchStatement for PaymentsExist {
    type Item = Uuid;
    type Output = bool;
    type Key = Uuid;
    const NAME: &'static str = "payments_exist";

    fn keys(order_id: &Uuid) -> Vec<Uuid> {
        vec![*order_id]
    }

    async fn run(&self, pool: &PgPool, order_ids: &[Uuid]) -> sqlx::Result<Vec<bool>> {
        payments_exist(pool, order_ids).await
    }
}

/// The payment of an order, if any.
pub async fn find_payment(pool: &PgPool, order_id: Uuid) -> sqlx::Result<Option<Payment>> {
    sqlx::query_as("SELECT * FROM payments WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
}
