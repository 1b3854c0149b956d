//! WebSocket echo load: N connections, each sending a small text message
//! and waiting for its echo, over and over, for a fixed time; then prints
//! messages/s and the p50/p99 round trip.
//!
//! `ws-load URL CONNECTIONS SECONDS` (loopback only: the URL must be
//! ws://127.0.0.1:PORT/PATH).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: ws-load URL CONNECTIONS SECONDS");
    assert!(
        url.starts_with("ws://127.0.0.1:"),
        "ws-load only loads loopback: {url}"
    );
    let conns: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(64);
    let secs: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);
    let secs = secs.clamp(1, 600);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns.clamp(1, 10_000) {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("connect");
            let mut rtts = Vec::new();
            let mut errors = 0u64;
            let payload = "x".repeat(32);
            while Instant::now() < deadline {
                let sent = Instant::now();
                if ws.send(Message::text(payload.clone())).await.is_err() {
                    errors += 1;
                    break;
                }
                match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) if t.as_str() == payload => {
                        rtts.push(sent.elapsed())
                    }
                    _ => {
                        errors += 1;
                        break;
                    }
                }
            }
            let _ = ws.close(None).await;
            (rtts, errors)
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (rtts, e) = t.await.expect("task");
        all.extend(rtts);
        errors += e;
    }
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "messages/s {:.0} p50 {:.2}ms p99 {:.2}ms errors {errors}",
        all.len() as f64 / secs as f64,
        pct(0.50),
        pct(0.99)
    );
}
