//! Payment results applied to orders, many in one statement.

use std::collections::HashMap;

use contract::events::PaymentProcessed;
use messaging::db::batch::{BatchStatement, in_order_of};
use sqlx::PgPool;
use uuid::Uuid;

/// What [`settle_orders`] found and did for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The order moved from `pending` to `paid` or `failed`.
    Settled,
    /// Recorded, but the order was settled already (by another event for it).
    AlreadySettled,
    /// This event was processed before (the inbox has it): nothing changed.
    Duplicate,
    /// No such order: nothing recorded, so a replay after the order exists works.
    UnknownOrder,
}

/// Applies payment results, idempotently, in one statement (its own
/// transaction; [`SettleOrders`] batches concurrent handlers). For each
/// event: records its id in the inbox (`processed_messages`) and moves a
/// `pending` order to `paid` or `failed` with the payment's details, both or
/// neither. An event seen before changes nothing; an order that is not
/// pending any more is left as it is; an event for an unknown order records
/// nothing. No two events may share an order or an event id (the batcher
/// sees to it).
///
/// Every lookup of `orders` is `id = ANY($1)`, which PostgreSQL answers from
/// the primary key whatever it guesses of the array's length. A join or
/// `EXISTS` against the `unnest`ed rows instead is planned for 100 of them
/// (unnest's default estimate, all a cached generic plan knows), and then a
/// hash join over a sequential scan of the whole table looks cheaper: the
/// first version of this statement read all of `orders` per batch.
pub async fn settle_orders(
    pool: &PgPool,
    consumer: &str,
    events: &[PaymentProcessed],
) -> sqlx::Result<Vec<Settlement>> {
    let column = |f: fn(&PaymentProcessed) -> Uuid| events.iter().map(f).collect::<Vec<_>>();
    let rows: Vec<(Uuid, bool, bool, bool)> = sqlx::query_as(
        "WITH input AS ( \
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], \
                                $6::numeric[], $7::text[], $8::timestamptz[], $9::uuid[]) \
             AS i(order_id, status, payment_id, payment_status, transaction_id, amount, \
                  failure_reason, processed_at, message_id) \
         ), known AS ( \
           SELECT id FROM orders WHERE id = ANY($1) \
         ), first_delivery AS ( \
           INSERT INTO processed_messages (consumer, message_id) \
           SELECT $10, message_id FROM input WHERE order_id IN (SELECT id FROM known) \
           ON CONFLICT DO NOTHING RETURNING message_id \
         ), settled AS ( \
           UPDATE orders SET status = i.status, payment_id = i.payment_id, \
             payment_status = i.payment_status, payment_transaction_id = i.transaction_id, \
             payment_amount = i.amount, payment_failure_reason = i.failure_reason, \
             payment_processed_at = i.processed_at, updated_at = now() \
           FROM input i \
           WHERE orders.id = ANY($1) AND orders.id = i.order_id AND orders.status = 'pending' \
             AND i.message_id IN (SELECT message_id FROM first_delivery) \
           RETURNING orders.id \
         ) \
         SELECT order_id, order_id IN (SELECT id FROM known), \
                message_id IN (SELECT message_id FROM first_delivery), \
                order_id IN (SELECT id FROM settled) \
         FROM input",
    )
    .bind(column(|e| e.order_id))
    .bind(events.iter().map(order_status).collect::<Vec<_>>())
    .bind(column(|e| e.payment_id))
    .bind(events.iter().map(|e| e.status.as_str()).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|e| e.transaction_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| e.amount).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|e| e.failure_reason.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| e.timestamp).collect::<Vec<_>>())
    .bind(column(|e| e.event_id))
    .bind(consumer)
    .fetch_all(pool)
    .await?;
    let found: HashMap<Uuid, Settlement> = rows
        .into_iter()
        .map(|(order_id, exists, first, settled)| {
            let settlement = match (exists, first, settled) {
                (false, _, _) => Settlement::UnknownOrder,
                (true, false, _) => Settlement::Duplicate,
                (true, true, false) => Settlement::AlreadySettled,
                (true, true, true) => Settlement::Settled,
            };
            (order_id, settlement)
        })
        .collect();
    in_order_of(events, |e| e.order_id, &found)
}

/// The order status a payment result leads to.
fn order_status(event: &PaymentProcessed) -> &'static str {
    match event.status {
        contract::events::PaymentStatus::Completed => "paid",
        contract::events::PaymentStatus::Failed => "failed",
    }
}

/// [`settle_orders`] for concurrent handlers (`messaging::db::batch`).
pub struct SettleOrders {
    pub consumer: &'static str,
}

#[async_trait::async_trait]
impl BatchStatement for SettleOrders {
    type Item = PaymentProcessed;
    type Output = Settlement;
    type Key = Uuid;
    const NAME: &'static str = "settle_orders";

    fn keys(event: &PaymentProcessed) -> Vec<Uuid> {
        vec![event.order_id, event.event_id]
    }

    async fn run(
        &self,
        pool: &PgPool,
        events: &[PaymentProcessed],
    ) -> sqlx::Result<Vec<Settlement>> {
        settle_orders(pool, self.consumer, events).await
    }
}
