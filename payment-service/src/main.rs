use common::service::DeadLetters;
use contract::{
    events::{Event, OrderCreated},
    names::PAYMENT_QUEUE,
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
