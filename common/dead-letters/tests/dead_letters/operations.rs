//! Listing, showing, replaying and purging parked messages.

use std::time::Duration;

use contract::events::{Event, OrderCreated};
use dead_letters::REPLAYED_AT;
use messaging::headers;

use super::{Fixture, body};

#[tokio::test]
async fn listing_shows_parked_and_broker_dead_lettered_messages_without_removing_them() {
    let f = Fixture::new().await;
    f.park("m-1", "gave up after 3 retries: provider down")
        .await;
    f.park("m-2", "malformed message: expected value").await;
    f.park_natively("m-3").await;
    f.wait_for_dlq_depth(3).await;

    let parked = dead_letters::list(&f.conn, &f.queue, 10).await.unwrap();
    assert_eq!(parked.len(), 3);
    let by_id = |id: &str| {
        parked
            .iter()
            .find(|m| m.message_id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("{id} listed"))
    };
    let ours = by_id("m-1");
    assert_eq!(
        ours.reason.as_deref(),
        Some("gave up after 3 retries: provider down")
    );
    assert_eq!(ours.retries, Some(3));
    assert_eq!(ours.parked_by.as_deref(), Some("payment-service"));
    assert_eq!(
        ours.parked_at,
        chrono::DateTime::from_timestamp(1_700_000_000, 0)
    );
    assert_eq!(
        ours.original_routing_key.as_deref(),
        Some(OrderCreated::ROUTING_KEY)
    );
    assert_eq!(ours.body_preview, body("m-1"));
    assert_eq!(ours.body_bytes, body("m-1").len());

    let native = by_id("m-3");
    let reason = native.reason.as_deref().unwrap();
    assert!(reason.contains("rejected"), "{reason}");
    assert!(reason.contains(&f.queue.name), "{reason}");
    assert_eq!(native.parked_by.as_deref(), Some("broker"));
    assert!(native.parked_at.is_some());
    assert_eq!(native.retries, None);

    // Nothing was removed: the same three are there, and can be listed again.
    f.wait_for_dlq_depth(3).await;
    assert_eq!(f.parked_ids().await, ["m-1", "m-2", "m-3"]);
    f.wait_for_dlq_depth(3).await;

    // The limit bounds the listing; the oldest come first.
    let first_two = dead_letters::list(&f.conn, &f.queue, 2).await.unwrap();
    assert_eq!(first_two.len(), 2);
    f.wait_for_dlq_depth(3).await;
    assert_eq!(f.work_depth().await, 0);
}

#[tokio::test]
async fn replaying_one_id_puts_exactly_that_message_back_on_the_work_queue_with_retry_count_zero() {
    let f = Fixture::new().await;
    f.park("m-1", "boom").await;
    f.park("m-2", "boom").await;
    f.park_natively("m-3").await;
    f.wait_for_dlq_depth(3).await;

    let replayed = dead_letters::replay(&f.conn, &f.settings, &f.queue, Some("m-2"), usize::MAX)
        .await
        .unwrap();
    assert_eq!(replayed, 1);

    f.wait_for_dlq_depth(2).await;
    assert_eq!(f.parked_ids().await, ["m-1", "m-3"]);
    let back = test_support::take_messages(&f.conn, &f.queue.name, 1, Duration::from_secs(5)).await;
    assert_eq!(back.len(), 1);
    let message = &back[0];
    assert_eq!(
        message.properties.message_id().as_ref().unwrap().as_str(),
        "m-2"
    );
    assert_eq!(message.data, body("m-2").as_bytes());
    assert_eq!(
        headers::get_u32(&message.properties, headers::RETRY_COUNT),
        Some(0)
    );
    assert_eq!(
        headers::get_str(&message.properties, headers::PARK_REASON),
        None
    );
    assert_eq!(
        headers::get_str(&message.properties, headers::PARKED_BY),
        None
    );
    assert!(headers::get_str(&message.properties, REPLAYED_AT).is_some());
    // The event's own properties travel unchanged.
    assert_eq!(
        message
            .properties
            .correlation_id()
            .as_ref()
            .unwrap()
            .as_str(),
        "order-1"
    );
    assert_eq!(
        headers::get_str(&message.properties, headers::ORIGINAL_ROUTING_KEY).as_deref(),
        Some(OrderCreated::ROUTING_KEY)
    );
}

#[tokio::test]
async fn replaying_all_moves_every_parked_message_back_without_the_broker_death_history() {
    let f = Fixture::new().await;
    f.park("m-1", "boom").await;
    f.park_natively("m-2").await;
    f.wait_for_dlq_depth(2).await;

    let replayed = dead_letters::replay(&f.conn, &f.settings, &f.queue, None, usize::MAX)
        .await
        .unwrap();
    assert_eq!(replayed, 2);
    f.wait_for_dlq_depth(0).await;

    let back = test_support::take_messages(&f.conn, &f.queue.name, 2, Duration::from_secs(5)).await;
    let mut ids: Vec<&str> = back
        .iter()
        .map(|m| m.properties.message_id().as_ref().unwrap().as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, ["m-1", "m-2"]);
    for message in &back {
        let headers = message.properties.headers().as_ref().unwrap().inner();
        assert!(!headers.contains_key("x-death"), "{headers:?}");
        assert!(!headers.contains_key("x-first-death-reason"), "{headers:?}");
        assert_eq!(
            headers::get_u32(&message.properties, headers::RETRY_COUNT),
            Some(0)
        );
    }
}

#[tokio::test]
async fn a_replay_the_broker_does_not_confirm_leaves_the_message_parked() {
    let f = Fixture::new().await;
    f.park("m-1", "boom").await;
    f.wait_for_dlq_depth(1).await;
    // No work queue: the republish is returned as unroutable.
    let channel = f.conn.create_channel().await.unwrap();
    channel
        .queue_delete(f.queue.name.as_str().into(), Default::default())
        .await
        .unwrap();

    let error = dead_letters::replay(&f.conn, &f.settings, &f.queue, None, usize::MAX)
        .await
        .unwrap_err();
    assert!(format!("{error:#}").contains("unroutable"), "{error:#}");

    f.wait_for_dlq_depth(1).await;
    assert_eq!(f.parked_ids().await, ["m-1"]);
}

#[tokio::test]
async fn purging_one_id_deletes_only_that_message() {
    let f = Fixture::new().await;
    f.park("m-1", "boom").await;
    f.park("m-2", "boom").await;
    f.park_natively("m-3").await;
    f.wait_for_dlq_depth(3).await;

    let purged = dead_letters::purge(&f.conn, &f.queue, Some("m-3"))
        .await
        .unwrap();
    assert_eq!(purged, 1);
    f.wait_for_dlq_depth(2).await;
    assert_eq!(f.parked_ids().await, ["m-1", "m-2"]);
    assert_eq!(f.work_depth().await, 0);

    let none = dead_letters::purge(&f.conn, &f.queue, Some("unknown"))
        .await
        .unwrap();
    assert_eq!(none, 0);
    f.wait_for_dlq_depth(2).await;
}

#[tokio::test]
async fn purging_all_empties_the_dead_letter_queue() {
    let f = Fixture::new().await;
    f.park("m-1", "boom").await;
    f.park("m-2", "boom").await;
    f.park_natively("m-3").await;
    f.wait_for_dlq_depth(3).await;

    let purged = dead_letters::purge(&f.conn, &f.queue, None).await.unwrap();
    assert_eq!(purged, 3);
    assert_eq!(f.dlq_depth().await, 0);
    assert_eq!(f.work_depth().await, 0);
}
