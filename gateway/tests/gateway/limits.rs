//! Abuse limits: per-client rate limiting, the bound on calls in flight to
//! order-service, and connections that send their request too slowly.

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use gateway::rate_limit::RateLimit;
use reqwest::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{SEED_CHECKOUT, Upstream, assert_problem, spawn_app_with, spawn_with};

fn limit(per_second: u32, burst: u32) -> Option<RateLimit> {
    Some(RateLimit {
        per_second: NonZeroU32::new(per_second).unwrap(),
        burst: NonZeroU32::new(burst).unwrap(),
        trust_forwarded_for: false,
    })
}

/// A client whose requests come from `ip` (another loopback address is
/// another client to the gateway).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_burst_from_one_client_gets_429_with_retry_after_while_another_client_is_served() {
    let (_, upstream) = spawn_with(Upstream::Healthy).await;
    let app = spawn_app_with(upstream.url(), |s| s.rate_limit = limit(1, 5)).await;
    let greedy = client_from("127.0.0.1");
    let polite = client_from("127.0.0.2");
    let checkout = |client: &reqwest::Client| {
        client
            .post(format!("{}/api/checkout", app.address))
            .header("content-type", "application/json")
            .body(SEED_CHECKOUT)
            .send()
    };

    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..12 {
        let response = checkout(&greedy).await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == StatusCode::TOO_MANY_REQUESTS && refused.is_none() {
            refused = Some(response);
        }
    }
    let other = checkout(&polite).await.unwrap();

    // The burst of 5 passes, then at 1/s the rest of a quick burst is refused.
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        5,
        "{statuses:?}"
    );
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let refused = refused.expect("a 429");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let problem = assert_problem(refused, 429).await;
    assert_eq!(problem["type"], "/problems/rate-limited");
    assert_eq!(
        other.status(),
        StatusCode::CREATED,
        "the other client is served"
    );
    // Refused requests never reached order-service.
    assert_eq!(upstream.calls().len(), 6);
}

#[tokio::test]
async fn health_and_docs_are_not_rate_limited() {
    let (_, upstream) = spawn_with(Upstream::Healthy).await;
    let app = spawn_app_with(upstream.url(), |s| s.rate_limit = limit(1, 1)).await;
    for path in [
        "/health",
        "/api/openapi.json",
        "/health",
        "/metrics",
        "/health",
    ] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn calls_to_order_service_are_bounded_and_the_excess_is_refused_without_reaching_it() {
    let upstream_delay = Duration::from_secs(4);
    let (_, upstream) = spawn_with(Upstream::Slow(upstream_delay)).await;
    let app = spawn_app_with(upstream.url(), |s| {
        s.order_service_max_concurrency = 2;
        s.order_service_timeout = Duration::from_secs(10);
    })
    .await;

    let slow: Vec<_> = (0..2)
        .map(|_| {
            let client = app.client.clone();
            let url = format!("{}/api/products", app.address);
            tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
        })
        .collect();
    test_support::eventually(Duration::from_secs(5), "both slots taken", || async {
        (upstream.calls().len() == 2).then_some(())
    })
    .await;

    let excess = app.post_checkout(SEED_CHECKOUT).await;

    let retry_after = excess.headers().get("retry-after").cloned();
    let problem = assert_problem(excess, 503).await;
    assert_eq!(problem["type"], "/problems/overloaded");
    assert!(problem["request_id"].is_string(), "{problem}");
    assert!(retry_after.is_some());
    assert_eq!(upstream.calls().len(), 2, "the excess call was not sent");
    for call in slow {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
}

/// Reads until the server closes the connection (or `limit` passes); true if
/// it closed.
async fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let read_until_eof = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(limit, read_until_eof).await.is_ok()
}

#[tokio::test]
async fn connections_that_send_no_request_or_half_a_header_are_closed() {
    let (app, _upstream) = spawn_with(Upstream::Healthy).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let bound = runtime::http::HEADER_READ_TIMEOUT + Duration::from_secs(5);

    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let mut slowloris = TcpStream::connect(&addr).await.unwrap();
    slowloris
        .write_all(b"POST /api/checkout HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut idle_after_a_request = TcpStream::connect(&addr).await.unwrap();
    idle_after_a_request
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    let (silent, slowloris, idle) = tokio::join!(
        closed_by_server(&mut silent, bound),
        closed_by_server(&mut slowloris, bound),
        closed_by_server(&mut idle_after_a_request, bound),
    );

    assert!(silent, "a connection that never sends a request is closed");
    assert!(slowloris, "a connection stuck in its headers is closed");
    assert!(idle, "an idle keep-alive connection is closed");
    // And the server still serves.
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
}
