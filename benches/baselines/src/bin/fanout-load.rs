//! Fan-out load for the channel layer: MEMBERS WebSockets in ROOMS chat
//! rooms (`/ws/chat/bench-N`, the demo chat's wire format); one member of
//! each room publishes, RATE messages a second over all rooms, for SECONDS;
//! every member times each message from its publish (the text carries the
//! send time). Prints what was published and delivered, the loss, the
//! delivered messages a second, the latency p50/p99/p99.9, and, for the
//! server processes PIDS, CPU µs per delivered message (from /proc) and RSS
//! per member.
//!
//! `fanout-load URL MEMBERS ROOMS RATE SECONDS PIDS` (loopback only:
//! URL is ws://127.0.0.1:PORT, or several comma-separated, over which the
//! members are spread in turn (servers sharing a channel layer); PIDS
//! comma-separated).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

/// utime + stime of `pids`, in clock ticks, and their RSS in KiB.
fn usage(pids: &[i32]) -> (u64, u64) {
    let (mut ticks, mut rss) = (0, 0);
    for pid in pids {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            let f: Vec<&str> = rest.split_whitespace().collect();
            ticks += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            ticks += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            rss += status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    (ticks, rss)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let usage_line = "usage: fanout-load URL MEMBERS ROOMS RATE SECONDS PIDS";
    let args: Vec<String> = std::env::args().skip(1).collect();
    assert!(args.len() == 6, "{usage_line}");
    let urls: Vec<String> = args[0].split(',').map(str::to_owned).collect();
    for url in &urls {
        assert!(url.starts_with("ws://127.0.0.1:"), "loopback only: {url}");
    }
    let members: usize = args[1].parse::<usize>().expect("MEMBERS").clamp(1, 20_000);
    let rooms: usize = args[2].parse::<usize>().expect("ROOMS").clamp(1, members);
    let rate: u64 = args[3].parse::<u64>().expect("RATE").clamp(1, 1_000_000);
    let secs: u64 = args[4].parse::<u64>().expect("SECONDS").clamp(1, 600);
    let pids: Vec<i32> = args[5].split(',').filter_map(|p| p.parse().ok()).collect();

    let start = Instant::now();
    let (_, rss_idle) = usage(&pids);
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let message_bytes = Arc::new(AtomicU64::new(0));
    // When any member last got anything (ns from start): the joins'
    // presence messages have drained once it stops moving.
    let last_seen = Arc::new(AtomicU64::new(0));
    // At most 200 handshakes at once, so no listen queue overflows.
    let gate = Arc::new(Semaphore::new(200));
    let mut readers = Vec::new();
    let mut publishers = Vec::new();
    for i in 0..members {
        let room = i % rooms;
        // Each room's members alternate over the servers.
        let url = format!("{}/ws/chat/bench-{room}", urls[(i / rooms) % urls.len()]);
        let permit = gate.clone().acquire_owned().await.expect("gate");
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        drop(permit);
        let (sink, mut source) = ws.split();
        // The first member of each room publishes.
        if i < rooms {
            publishers.push(sink);
        } else {
            drop(sink);
        }
        let (measuring, stop, delivered) = (measuring.clone(), stop.clone(), delivered.clone());
        let (message_bytes, last_seen) = (message_bytes.clone(), last_seen.clone());
        readers.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let next = tokio::time::timeout(Duration::from_millis(200), source.next()).await;
                let Ok(Some(Ok(Message::Text(t)))) = next else {
                    if matches!(next, Ok(None | Some(Err(_)))) {
                        break;
                    }
                    continue;
                };
                last_seen.store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
                let Some(at) = t.find("\"text\":\"t:") else {
                    continue;
                };
                let digits: String = t[at + 10..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let Ok(sent) = digits.parse::<u64>() else {
                    continue;
                };
                if measuring.load(Ordering::Relaxed) {
                    let now = start.elapsed().as_nanos() as u64;
                    latencies
                        .push((now.saturating_sub(sent) / 1000).min(u64::from(u32::MAX)) as u32);
                    delivered.fetch_add(1, Ordering::Relaxed);
                    message_bytes.store(t.len() as u64, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    // Let the joins' presence messages drain: until no member got anything
    // for half a second (at most 60 s).
    let settle = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let quiet = start.elapsed().as_nanos() as u64 - last_seen.load(Ordering::Relaxed);
        if quiet > 500_000_000 || settle.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    let (ticks_before, rss_connected) = usage(&pids);
    measuring.store(true, Ordering::Relaxed);
    // For a script that samples the servers over the same window.
    eprintln!("window: open");
    let window = Instant::now();
    let mut published = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    'publish: while window.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let p = (published as usize) % publishers.len();
        let text = format!("t:{}", start.elapsed().as_nanos());
        if publishers[p].send(Message::text(text)).await.is_err() {
            break 'publish;
        }
        published += 1;
    }
    let elapsed = window.elapsed();
    // Let the last messages arrive, then stop the readers.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ticks_after, _) = usage(&pids);
    eprintln!("window: closed");
    // Give that script a moment before the members leave (and their
    // leaving sends presence messages).
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for r in readers {
        all.extend(r.await.expect("reader"));
    }
    all.sort_unstable();
    let delivered = delivered.load(Ordering::Relaxed);
    let per_room = members as f64 / rooms as f64;
    let expected = (published as f64 * per_room).round() as u64;
    let hz = 100.0; // USER_HZ on Linux
    let cpu_us = (ticks_after - ticks_before) as f64 / hz * 1e6;
    println!(
        "members={members} rooms={rooms} rate={rate}/s seconds={:.1} published={published} \
         delivered={delivered} expected={expected} loss={:.3}% delivered_per_s={:.0} \
         p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} cpu_us_per_delivery={:.3} rss_kib_per_member={:.1} \
         message_bytes={}",
        elapsed.as_secs_f64(),
        100.0 * (expected.saturating_sub(delivered)) as f64 / expected.max(1) as f64,
        delivered as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        cpu_us / delivered.max(1) as f64,
        rss_connected.saturating_sub(rss_idle) as f64 / members as f64,
        message_bytes.load(Ordering::Relaxed),
    );
}
