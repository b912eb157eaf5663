use common::service::DeadLetters;
use contract::{
    events::{Event, PaymentProcessed},
    names::ORDER_QUEUE,
};
use order_service::{Application, Settings};

#[tokio::main]
async fn main() {
    let dead_letters = DeadLetters {
        queue_base: ORDER_QUEUE,
        routing_key: PaymentProcessed::ROUTING_KEY,
        amqp: |settings: &Settings| settings.amqp.clone(),
    };
    common::service::main::<Application>(Settings::from_env, Some(dead_letters)).await
}
