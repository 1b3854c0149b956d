//! Serving one connection with hyper's HTTP/1.1: the limits, ferricorn's own
//! health endpoints, the app, and a graceful close on shutdown.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use bytes::Bytes;
use ferricorn_config::Config;
use ferricorn_shm::{Shared, Slot};
use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue, SERVER};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tracing::{debug, error};

use crate::{ClientAddr, Service, limits};

/// The response body: ferricorn's own short answers, or the app's body.
pub(crate) type Body<S> = Either<Full<Bytes>, <S as Service>::Body>;

const SERVER_NAME: HeaderValue = HeaderValue::from_static("ferricorn");

/// What every connection of one worker shares.
pub(crate) struct Server<S> {
    pub app: S,
    pub http: http1::Builder,
    pub config: Config,
    pub shared: Shared,
    pub slot: Option<&'static Slot>,
}

impl<S: Service> Server<S> {
    /// hyper's HTTP/1.1 settings from the config.
    pub(crate) fn http(config: &Config) -> http1::Builder {
        let mut b = http1::Builder::new();
        let head_wait = match config.keep_alive {
            // hyper's one head timer also runs while an idle keep-alive
            // connection waits for its next request: the shorter bound applies.
            Some(k) => k.min(config.header_timeout),
            None => config.header_timeout,
        };
        let max_head = config.limits.max_head();
        b.timer(TokioTimer::new())
            .keep_alive(config.keep_alive.is_some())
            .header_read_timeout(head_wait)
            .max_headers(config.limits.request_fields)
            .max_header_size(max_head)
            .max_buf_size(max_head.max(8192));
        b
    }

    /// Serves one connection until it closes or, after `stop`, until its
    /// in-flight requests are done.
    pub(crate) async fn serve<IO>(
        self: Rc<Self>,
        io: IO,
        peer: Option<SocketAddr>,
        mut stop: watch::Receiver<bool>,
        _permit: OwnedSemaphorePermit,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        let server = self.clone();
        let svc = service_fn(move |req| server.clone().handle(req, peer));
        let conn = self.http.serve_connection(TokioIo::new(io), svc);
        let mut conn = pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            _ = stop.wait_for(|s| *s) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            debug!("connection from {peer:?}: {e}");
        }
    }

    async fn handle(
        self: Rc<Self>,
        mut req: Request<Incoming>,
        peer: Option<SocketAddr>,
    ) -> Result<Response<Body<S>>, Infallible> {
        if let Some(slot) = self.slot {
            slot.count_request();
        }
        if let Some(status) = limits::check(&req, &self.config.limits) {
            let mut res = text(status, status.canonical_reason().unwrap_or("Bad Request"));
            res.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return Ok(res);
        }
        let path = req.uri().path();
        if self.config.health_path.as_deref() == Some(path) {
            return Ok(text(StatusCode::OK, "ok"));
        }
        if self.config.ready_path.as_deref() == Some(path) {
            return Ok(match self.shared.is_ready() {
                Ok(()) => text(StatusCode::OK, "ready"),
                Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, &why.to_string()),
            });
        }
        req.extensions_mut().insert(ClientAddr(peer));
        let mut res = match catch_panic(self.app.call(req)).await {
            Ok(res) => res.map(Either::Right),
            Err(()) => {
                error!("the app panicked while handling a request; answered 500");
                text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        };
        res.headers_mut().entry(SERVER).or_insert(SERVER_NAME);
        Ok(res)
    }
}

/// A short plain-text response.
fn text<B>(status: StatusCode, body: &str) -> Response<Either<Full<Bytes>, B>> {
    let mut res = Response::new(Either::Left(Full::new(Bytes::copy_from_slice(
        body.as_bytes(),
    ))));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(SERVER, SERVER_NAME);
    res
}

/// Runs `fut`, turning a panic while it is polled into `Err`.
async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, ()> {
    let mut fut = pin!(fut);
    poll_fn(
        move |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::catch_panic;

    #[test]
    fn a_panicking_handler_becomes_an_error_not_a_dead_worker() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let caught = rt.block_on(catch_panic(async {
            tokio::task::yield_now().await;
            panic!("handler bug")
        }));
        assert!(caught.is_err());
        assert_eq!(rt.block_on(catch_panic(async { 7 })), Ok(7));
    }
}
