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
    /// A charge for an order cancelled before it arrived: nothing recorded
    /// here; the caller records it with its refund request
    /// (`db::refunds`).
    LateCharge,
}

/// Applies payment results, idempotently, in one statement (its own
/// transaction; [`SettleOrders`] batches concurrent handlers). For each
/// event: records its id in the inbox (`processed_messages`) and moves a
/// `pending` order to `paid` or `failed` with the payment's details, both or
/// neither; a failed order's reserved units go back to stock. An event seen
/// before changes nothing; an order that is not pending any more is left as
/// it is, except that a charge for a cancelled order is a
/// [`Settlement::LateCharge`], recorded by nobody here; an event for an
/// unknown order records nothing. No two events may share an order or an
/// event id (the batcher sees to it).
///
/// The orders are locked first (`current`, `FOR UPDATE`): the status each
/// event is judged by is the one after any cancellation that committed while
/// this statement waited, so a charge can never be taken for a settlement
/// of an order that was cancelled meanwhile.
///
/// Every lookup of `orders` and `order_items` is `= ANY(array)`, which
/// PostgreSQL answers from the primary key whatever it guesses of the
/// array's length. A join or `EXISTS` against the `unnest`ed rows instead is
/// planned for 100 of them (unnest's default estimate, all a cached generic
/// plan knows), and then a hash join over a sequential scan of the whole
/// table looks cheaper: the first version of this statement read all of
/// `orders` per batch.
pub async fn settle_orders(
    pool: &PgPool,
    consumer: &str,
    events: &[PaymentProcessed],
) -> sqlx::Result<Vec<Settlement>> {
    let column = |f: fn(&PaymentProcessed) -> Uuid| events.iter().map(f).collect::<Vec<_>>();
    let rows: Vec<(Uuid, bool, bool, bool, bool)> = sqlx::query_as(
        "WITH input AS ( \
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], \
                                $6::numeric[], $7::text[], $8::timestamptz[], $9::uuid[]) \
             AS i(order_id, status, payment_id, payment_status, transaction_id, amount, \
                  failure_reason, processed_at, message_id) \
         ), current AS ( \
           SELECT id, status, payment_status FROM orders WHERE id = ANY($1) FOR UPDATE \
         ), judged AS ( \
           SELECT i.order_id, i.message_id, \
                  c.status = 'cancelled' AND i.payment_status = 'completed' \
                    AND c.payment_status IS NULL AS late_charge \
           FROM input i JOIN current c ON c.id = i.order_id \
         ), first_delivery AS ( \
           INSERT INTO processed_messages (consumer, message_id) \
           SELECT $10, message_id FROM judged WHERE NOT late_charge \
           ON CONFLICT DO NOTHING RETURNING message_id \
         ), settled AS ( \
           UPDATE orders SET status = i.status, payment_id = i.payment_id, \
             payment_status = i.payment_status, payment_transaction_id = i.transaction_id, \
             payment_amount = i.amount, payment_failure_reason = i.failure_reason, \
             payment_processed_at = i.processed_at, settled_at = now(), updated_at = now() \
           FROM input i \
           WHERE orders.id = ANY($1) AND orders.id = i.order_id AND orders.status = 'pending' \
             AND i.message_id IN (SELECT message_id FROM first_delivery) \
           RETURNING orders.id, orders.status \
         ), released AS ( \
           UPDATE products SET stock = products.stock + r.units \
           FROM (SELECT product_id, sum(quantity)::bigint AS units FROM order_items \
                 WHERE order_id = ANY(ARRAY(SELECT id FROM settled WHERE status = 'failed')) \
                   AND reserved GROUP BY product_id) AS r \
           WHERE products.id = r.product_id AND products.stock IS NOT NULL \
         ) \
         SELECT i.order_id, j.order_id IS NOT NULL, coalesce(j.late_charge, false), \
                i.message_id IN (SELECT message_id FROM first_delivery), \
                i.order_id IN (SELECT id FROM settled) \
         FROM input i LEFT JOIN judged j ON j.order_id = i.order_id",
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
        .map(|(order_id, exists, late_charge, first, settled)| {
            let settlement = match (exists, late_charge, first, settled) {
                (false, ..) => Settlement::UnknownOrder,
                (true, true, ..) => Settlement::LateCharge,
                (true, false, false, _) => Settlement::Duplicate,
                (true, false, true, false) => Settlement::AlreadySettled,
                (true, false, true, true) => Settlement::Settled,
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
