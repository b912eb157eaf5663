//! Checkouts sent by concurrent clients while a test injects faults.

use std::{sync::Arc, time::Duration};

use serde_json::Value;
use tokio::{sync::Mutex, task::JoinHandle};

/// A burst under way.
pub struct Burst {
    accepted: Arc<Mutex<Vec<String>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
    clients: Vec<JoinHandle<()>>,
}

/// What a burst got back.
#[derive(Debug)]
pub struct BurstResult {
    /// Ids of the orders answered 201.
    pub accepted: Vec<String>,
    /// Every status answered, in order of arrival (0: no answer).
    pub statuses: Vec<u16>,
}

impl Burst {
    /// Starts `orders` checkouts of product 2 at the gateway `base` from
    /// `clients` clients, each pausing `pause` between requests.
    pub fn start(
        http: &reqwest::Client,
        base: &str,
        orders: usize,
        clients: usize,
        pause: Duration,
    ) -> Self {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let clients = (0..clients)
            .map(|client| {
                let (http, base) = (http.clone(), base.to_owned());
                let (accepted, statuses) = (accepted.clone(), statuses.clone());
                let share = orders / clients + usize::from(client < orders % clients);
                tokio::spawn(async move {
                    for i in 0..share {
                        let body = serde_json::json!({"user_id": client * 100_000 + i + 1,
                            "user_email": format!("c{client}-{i}@example.com"),
                            "items": [{"product_id": 2, "quantity": 1}]});
                        let response = http
                            .post(format!("{base}/api/checkout"))
                            .json(&body)
                            .send()
                            .await;
                        let status = response.as_ref().map_or(0, |r| r.status().as_u16());
                        statuses.lock().await.push(status);
                        if status == 201 {
                            let order: Value = response.unwrap().json().await.unwrap();
                            accepted
                                .lock()
                                .await
                                .push(order["id"].as_str().unwrap().to_owned());
                        }
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Self {
            accepted,
            statuses,
            clients,
        }
    }

    /// How many checkouts were accepted so far.
    pub async fn accepted_so_far(&self) -> usize {
        self.accepted.lock().await.len()
    }

    /// Waits for every client to finish.
    pub async fn finish(self) -> BurstResult {
        for client in self.clients {
            client.await.expect("client task");
        }
        BurstResult {
            accepted: self.accepted.lock().await.clone(),
            statuses: self.statuses.lock().await.clone(),
        }
    }
}
