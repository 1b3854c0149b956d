//! What the baseline servers share: their arguments (`ADDR THREADS`) and,
//! for the tokio ones, a multi-thread runtime with a plain accept loop.

use std::future::Future;

use tokio::net::TcpStream;

/// The address and the worker/thread count from the command line.
pub fn args(default_addr: &str) -> (String, usize) {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| default_addr.into());
    let threads = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    (addr, threads)
}

/// Accepts on ADDR with THREADS runtime threads, each connection in a task
/// of its own running `handle`.
pub fn serve<F, Fut>(default_addr: &str, handle: F) -> std::io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (addr, threads) = args(default_addr);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(handle(stream));
            }
        })
}
