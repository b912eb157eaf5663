//! What an outside probe found, each closed: requests that grew `/metrics`
//! without bound, unlimited routes, unbounded request ids, bodies read
//! differently from a filter in front, and bare error answers.

use std::{num::NonZeroU32, time::Duration};

use gateway::rate_limit::RateLimit;
use reqwest::{Method, StatusCode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{Upstream, assert_problem, spawn_app_with, spawn_with};

/// The number of series on the gateway's `/metrics` page.
async fn series(client: &reqwest::Client, address: &str) -> usize {
    let page = client
        .get(format!("{address}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    page.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// Sends `METHOD path` on a connection of its own and returns the status
/// line (reqwest will not send every token a client may use as a method).
async fn raw_request(address: &str, method: &str, path: &str) -> String {
    let authority = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the gateway answers")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn made_up_methods_and_paths_add_no_series_to_metrics() {
    let (app, _upstream) = spawn_with(Upstream::Healthy).await;
    // One of each kind first: its series may be new, as may the scrape's own.
    raw_request(&app.address, "XWARMUP", "/warm-up").await;
    series(&app.client, &app.address).await;
    let before = series(&app.client, &app.address).await;

    for i in 0..100 {
        let method = format!("X{}{i}", "A".repeat(200));
        let status = raw_request(&app.address, &method, &format!("/nope/{i}")).await;
        assert!(
            status.contains(" 404 ") || status.contains(" 405 "),
            "{status}"
        );
    }

    let after = series(&app.client, &app.address).await;
    assert_eq!(before, after, "series on /metrics");
}

fn limit(per_second: u32, burst: u32) -> Option<RateLimit> {
    Some(RateLimit {
        per_second: NonZeroU32::new(per_second).unwrap(),
        burst: NonZeroU32::new(burst).unwrap(),
        trust_forwarded_for: false,
    })
}

#[tokio::test]
async fn unknown_routes_and_methods_count_against_the_rate_limit_but_probes_do_not() {
    let (_, upstream) = spawn_with(Upstream::Healthy).await;
    let app = spawn_app_with(upstream.url(), |s| s.rate_limit = limit(1, 3)).await;

    let mut statuses = Vec::new();
    for i in 0..3 {
        statuses.push(app.get(&format!("/nope/{i}")).await.status().as_u16());
    }
    statuses.push(
        raw_request(&app.address, "XABC", "/api/products")
            .await
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap(),
    );
    statuses.push(app.get("/nope/again").await.status().as_u16());
    assert_eq!(statuses, [404, 404, 404, 429, 429]);

    for probe in ["/health", "/metrics"] {
        assert_eq!(app.get(probe).await.status(), StatusCode::OK, "{probe}");
    }
}

#[tokio::test]
async fn an_unusable_request_id_is_replaced_and_a_good_one_kept() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;
    let echoed = |id: String| {
        let (client, address) = (app.client.clone(), app.address.clone());
        async move {
            let response = client
                .get(format!("{address}/api/products"))
                .header("x-request-id", &id)
                .send()
                .await
                .unwrap();
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };

    let good = "c".repeat(128);
    assert_eq!(echoed(good.clone()).await, good);
    for bad in ["x".repeat(300 * 1024), "c".repeat(129), "has space".into()] {
        let answered = echoed(bad.clone()).await;
        assert_ne!(answered, bad);
        assert!(uuid::Uuid::parse_str(&answered).is_ok(), "{answered}");
    }
    // order-service gets the replacement, never the caller's.
    let forwarded: Vec<usize> = upstream
        .calls()
        .iter()
        .map(|c| c.headers["x-request-id"].len())
        .collect();
    assert!(forwarded.iter().all(|len| *len <= 128), "{forwarded:?}");
}

#[tokio::test]
async fn a_key_given_twice_is_a_bad_request_and_reaches_nobody() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;
    let body = r#"{"user_id": 1, "user_email": "good@example.com",
        "user_email": "evil@example.com",
        "items": [{"product_id": 1, "quantity": 1}]}"#;

    let problem = assert_problem(app.post_checkout(body).await, 400).await;

    assert!(
        problem["detail"].as_str().unwrap().contains("user_email"),
        "{problem}"
    );
    assert!(upstream.calls().is_empty());
}

#[tokio::test]
async fn number_prices_are_read_exactly() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;
    for (price, message) in [
        ("1299.9900000000001", "must have at most two decimals"),
        ("-0", "must not be negative"),
        ("-1e-400", "must not be negative"),
    ] {
        let body = format!(
            r#"{{"user_id": 1, "user_email": "a@example.com",
                "items": [{{"product_id": 1, "quantity": 1, "price": {price}}}]}}"#
        );
        let problem = assert_problem(app.post_checkout(body).await, 422).await;
        assert_eq!(problem["errors"][0]["message"], message, "{price}");
    }
    assert!(upstream.calls().is_empty());
}

#[tokio::test]
async fn an_encoded_word_in_an_email_address_is_refused() {
    let (app, upstream) = spawn_with(Upstream::Healthy).await;
    let body = r#"{"user_id": 1, "user_email": "=?utf-8?q?victim=40target.com?=@example.com",
        "items": [{"product_id": 1, "quantity": 1}]}"#;

    let problem = assert_problem(app.post_checkout(body).await, 422).await;

    assert_eq!(problem["errors"][0]["field"], "user_email");
    assert!(upstream.calls().is_empty());
}

#[tokio::test]
async fn errors_from_outside_our_handlers_are_problems_too() {
    let (app, _upstream) = spawn_with(Upstream::Healthy).await;

    let missing_docs_file = app.get("/docs/no-such-file.js").await;
    assert_problem(missing_docs_file, 404).await;

    let response = app
        .client
        .request(Method::DELETE, format!("{}/health", app.address))
        .send()
        .await
        .unwrap();
    assert_problem(response, 405).await;
}
