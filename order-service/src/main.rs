use order_service::{Application, Settings};

#[tokio::main]
async fn main() {
    common::service::main::<Application>(Settings::from_env).await
}
