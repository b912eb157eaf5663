//! order-service's part of an order's timeline (`GET /timeline/{id}`; see
//! `messaging::timeline`): created with its stock reserved, its events
//! published, paid or failed, cancelled, refunded and units given back, and
//! any retry or dead-lettering of a result it consumed.

use chrono::{DateTime, Utc};
use contract::api::TimelineStep;
use messaging::timeline::{TimelineSource, recorded_steps, step};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use crate::SERVICE;

#[derive(Clone)]
pub struct OrderTimeline(pub PgPool);

/// The order's milestones, as its row records them.
#[derive(sqlx::FromRow)]
struct Milestones {
    status: String,
    total_amount: Decimal,
    currency: String,
    created_at: DateTime<Utc>,
    settled_at: Option<DateTime<Utc>>,
    payment_transaction_id: Option<String>,
    payment_failure_reason: Option<String>,
    cancel_reason: Option<String>,
    cancelled_at: Option<DateTime<Utc>>,
    refund_requested_at: Option<DateTime<Utc>>,
    refund_transaction_id: Option<String>,
    refunded_at: Option<DateTime<Utc>>,
    /// Units its lines took from stock.
    reserved: i64,
}

#[async_trait::async_trait]
impl TimelineSource for OrderTimeline {
    async fn steps(&self, order_id: Uuid) -> sqlx::Result<Option<Vec<TimelineStep>>> {
        let Some(m): Option<Milestones> = sqlx::query_as(
            "SELECT status, total_amount, currency, created_at, settled_at, payment_transaction_id, \
             payment_failure_reason, cancel_reason, cancelled_at, refund_requested_at, \
             refund_transaction_id, refunded_at, \
             (SELECT coalesce(sum(quantity), 0)::bigint FROM order_items \
              WHERE order_id = orders.id AND reserved) AS reserved \
             FROM orders WHERE id = $1",
        )
        .bind(order_id)
        .fetch_optional(&self.0)
        .await?
        else {
            return Ok(None);
        };
        let mut steps = vec![step(
            m.created_at,
            SERVICE,
            "order.created",
            format!("{} {}", m.total_amount, m.currency),
        )];
        let units = format!("{} units", m.reserved);
        if m.reserved > 0 {
            steps.push(step(m.created_at, SERVICE, "stock.reserved", units.clone()));
        }
        if let Some(at) = m.settled_at {
            let (name, detail) = match m.payment_failure_reason {
                Some(reason) => ("order.failed", Some(reason)),
                None => ("order.paid", m.payment_transaction_id),
            };
            steps.push(step(at, SERVICE, name, detail));
            if name == "order.failed" && m.reserved > 0 {
                steps.push(step(at, SERVICE, "stock.released", units.clone()));
            }
        }
        if let Some(at) = m.cancelled_at {
            steps.push(step(at, SERVICE, "order.cancelled", m.cancel_reason));
            if m.status == "cancelled" && m.reserved > 0 {
                steps.push(step(at, SERVICE, "stock.released", units.clone()));
            }
        }
        if let Some(at) = m.refund_requested_at {
            steps.push(step(at, SERVICE, "refund.requested", None::<String>));
        }
        if let Some(at) = m.refunded_at {
            steps.push(step(at, SERVICE, "order.refunded", m.refund_transaction_id));
            if m.status == "refunded" && m.reserved > 0 {
                steps.push(step(at, SERVICE, "stock.released", units));
            }
        }
        steps.extend(recorded_steps(&self.0, SERVICE, order_id, true).await?);
        Ok(Some(steps))
    }
}
