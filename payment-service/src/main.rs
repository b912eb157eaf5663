use payment_service::{Application, Settings};

#[tokio::main]
async fn main() {
    runtime::service::main::<Application>(Settings::from_env).await
}
