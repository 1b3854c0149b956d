//! Baseline: bare hyper in ferricorn's process model, with the routes of
//! `hyper.rs`: THREADS threads, each with a current-thread runtime and a
//! listener of its own on one SO_REUSEPORT address, so that a connection is
//! served to its end by the thread whose listener the kernel gave it to, as
//! by a ferricorn worker (or an actix-web worker, or an nginx process).
//! Beside the multi-thread `hyper`, whose idle threads steal a busy or
//! descheduled thread's connections, it tells what the process model costs
//! and what ferricorn's own work on a request costs.
//! `hyper-reuseport ADDR THREADS`.

use ferricorn_baselines::hyper_routes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

fn main() -> std::io::Result<()> {
    let (addr, threads) = ferricorn_baselines::args("127.0.0.1:8003");
    let addr: std::net::SocketAddr = addr.parse().expect("ADDR");
    let threads: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || -> std::io::Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                tokio::task::LocalSet::new().block_on(&rt, async move {
                    let socket = tokio::net::TcpSocket::new_v4()?;
                    socket.set_reuseaddr(true)?;
                    socket.set_reuseport(true)?;
                    socket.bind(addr)?;
                    let listener = socket.listen(1024)?;
                    loop {
                        let (stream, _) = listener.accept().await?;
                        let _ = stream.set_nodelay(true);
                        tokio::task::spawn_local(async move {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service_fn(hyper_routes))
                                .await;
                        });
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a server thread panicked")?;
    }
    Ok(())
}
