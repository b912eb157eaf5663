use common::{
    events::{Event, OrderCreated},
    messaging::topology::PAYMENT_QUEUE,
    service::DeadLetters,
};
use payment_service::{Application, Settings};

#[tokio::main]
async fn main() {
    let dead_letters = DeadLetters {
        queue_base: PAYMENT_QUEUE,
        routing_key: OrderCreated::ROUTING_KEY,
        amqp: |settings: &Settings| settings.amqp.clone(),
    };
    common::service::main::<Application>(Settings::from_env, Some(dead_letters)).await
}
