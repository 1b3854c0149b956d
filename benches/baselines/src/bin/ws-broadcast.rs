//! Baseline for the channel layer: the in-process limit. A plain
//! tokio-tungstenite server on tokio's multi-thread runtime, one process,
//! with a `tokio::sync::broadcast` channel per room, speaking the demo
//! chat's wire format (`GET /ws/chat/{room}`: a welcome, then every text
//! frame to every member as `{"type":"message",...}`). Sockets read 4 KiB
//! at a time, as ferricorn's do at most (tungstenite's default is 128 KiB,
//! zeroed before each read). `ws-broadcast ADDR THREADS`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Rooms = Arc<Mutex<HashMap<String, broadcast::Sender<Utf8Bytes>>>>;

#[allow(
    clippy::result_large_err,
    reason = "tungstenite's handshake callback returns its own, large, error response"
)]
fn main() -> std::io::Result<()> {
    let rooms: Rooms = Arc::default();
    let ids = Arc::new(AtomicU64::new(1));
    ferricorn_baselines::serve("127.0.0.1:8004", move |stream| {
        let (rooms, ids) = (rooms.clone(), ids.clone());
        async move {
            let path = Arc::new(Mutex::new(String::new()));
            let seen = path.clone();
            let callback =
                move |req: &tokio_tungstenite::tungstenite::handshake::server::Request, res| {
                    if let Ok(mut p) = seen.lock() {
                        *p = req.uri().path().to_owned();
                    }
                    Ok(res)
                };
            let config = WebSocketConfig::default().read_buffer_size(4096);
            let Ok(ws) =
                tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config))
                    .await
            else {
                return;
            };
            let path = path.lock().map(|p| p.clone()).unwrap_or_default();
            let Some(room) = path.strip_prefix("/ws/chat/").map(str::to_owned) else {
                return;
            };
            let tx = {
                let Ok(mut rooms) = rooms.lock() else { return };
                rooms
                    .entry(room.clone())
                    .or_insert_with(|| broadcast::channel(1024).0)
                    .clone()
            };
            let id = ids.fetch_add(1, Ordering::Relaxed);
            let (mut sink, mut source) = ws.split();
            let welcome = format!(r#"{{"type":"welcome","id":"{id}","worker":0,"room":"{room}"}}"#);
            if sink.send(Message::text(welcome)).await.is_err() {
                return;
            }
            let mut rx = tx.subscribe();
            let writer = tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(text) => {
                            if sink.send(Message::Text(text)).await.is_err() {
                                break;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            });
            while let Some(Ok(msg)) = source.next().await {
                match msg {
                    Message::Text(t) => {
                        let out = format!(
                            r#"{{"type":"message","room":"{room}","from":"{id}","text":"{}"}}"#,
                            t.as_str()
                        );
                        let _ = tx.send(out.into());
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            writer.abort();
        }
    })
}
