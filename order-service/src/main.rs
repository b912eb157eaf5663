use common::{
    events::{Event, PaymentProcessed},
    messaging::topology::ORDER_QUEUE,
    service::DeadLetters,
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
