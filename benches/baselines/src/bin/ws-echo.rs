//! Baseline: a plain tokio-tungstenite echo server on tokio's multi-thread
//! runtime. `ws-echo ADDR THREADS`.

use futures_util::{SinkExt, StreamExt};

fn main() -> std::io::Result<()> {
    ferricorn_baselines::serve("127.0.0.1:8003", |stream| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    })
}
