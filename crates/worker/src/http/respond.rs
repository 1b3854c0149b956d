//! The answer to one request, in steps: the request limits, ferricorn's own
//! endpoints (`/healthz`, `/readyz`, `/metrics`), a WebSocket upgrade, then
//! the app, under `--limit-concurrency` and `--request-timeout`, with a
//! panicking handler answered 500.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, SEC_WEBSOCKET_VERSION};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tracing::{error, warn};

use super::fields::Fields;
use super::{SERVER_NAME, Server, limits};
use crate::counted::InFlight;
use crate::deadline::Deadline;
use crate::ws::{self, WebSocketUpgrade};
use crate::{RequestInfo, Service};

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const PROMETHEUS_TEXT: HeaderValue =
    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");

impl<S: Service> Server<S> {
    /// On the metrics address (`admin`) only ferricorn's own endpoints
    /// answer. The app's future is made here, where it is pinned, so that
    /// no layer between moves the request or copies what can be a large
    /// future.
    pub(super) async fn respond(
        &self,
        req: Request<Incoming>,
        info: RequestInfo,
        fields: &Fields,
        (admin, deadline): (bool, &Arc<Deadline>),
    ) -> Response<S::Body> {
        if let Some(res) = self.over_limits(&req, fields) {
            return res;
        }
        if let Some(res) = self.own_endpoint(req.uri().path(), admin, info.client) {
            return res;
        }
        if admin {
            return text(StatusCode::NOT_FOUND, "Not Found\n");
        }
        let connect = req.method() == http::Method::CONNECT;
        if (fields.upgrade || connect) && self.app.handles_websockets() {
            match ws::check(&req) {
                ws::Check::NotUpgrade => {}
                ws::Check::Refuse(status, why) => return refuse_upgrade(status, why),
                ws::Check::Upgrade(key) => {
                    // Over HTTP/2 the socket is one stream of the connection.
                    let hold = key.is_none().then(|| deadline.clone());
                    return self.websocket(req, (key, hold), info).await;
                }
            }
        }
        if let Some(res) = self.over_concurrency() {
            return res;
        }
        let _in_flight = InFlight::new(&self.in_flight);
        let mut call = pin!(self.app.call(req, info));
        let call = catch_panic(call.as_mut());
        let outcome = match self.settings.request_timeout {
            Some(limit) => tokio::time::timeout(limit, call).await.ok(),
            None => Some(call.await),
        };
        app_answer(outcome)
    }

    /// A request over the limits (or breaking the `Host` rule) is answered
    /// here, and its connection closed.
    fn over_limits(&self, req: &Request<Incoming>, fields: &Fields) -> Option<Response<S::Body>> {
        let status = limits::check(req, fields, &self.settings.limits)?;
        let mut res = text(status, status.canonical_reason().unwrap_or("Bad Request"));
        res.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        Some(res)
    }

    /// `/healthz`, `/readyz`, and `/metrics` (on the metrics address only,
    /// when there is one; on the app's, to `--metrics-allow-from` clients).
    fn own_endpoint(
        &self,
        path: &str,
        admin: bool,
        client: Option<std::net::SocketAddr>,
    ) -> Option<Response<S::Body>> {
        let s = &self.settings;
        if s.health_path.as_deref() == Some(path) {
            return Some(text(StatusCode::OK, "ok"));
        }
        if s.ready_path.as_deref() == Some(path) {
            return Some(match self.ctx.shared.is_ready() {
                Ok(()) => text(StatusCode::OK, "ready"),
                Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, &why.to_string()),
            });
        }
        if s.metrics_path.as_deref() == Some(path) && (admin || !s.metrics_apart) {
            // On the app's addresses, only clients allowed (a unix socket's
            // are local); others see no such path.
            let allowed =
                admin || client.is_none_or(|c| s.metrics_allow.iter().any(|n| n.contains(c.ip())));
            if !allowed {
                return Some(text(StatusCode::NOT_FOUND, "Not Found\n"));
            }
            let mut res = text(StatusCode::OK, &crate::exposition::render(self.ctx.shared));
            res.headers_mut().insert(CONTENT_TYPE, PROMETHEUS_TEXT);
            return Some(res);
        }
        None
    }

    /// Hands a valid upgrade request to the app, which accepts or answers it.
    async fn websocket(
        &self,
        req: Request<Incoming>,
        key: (Option<HeaderValue>, Option<Arc<Deadline>>),
        info: RequestInfo,
    ) -> Response<S::Body> {
        let upgrade = WebSocketUpgrade::new(req, key, info, self.hub.clone());
        // Boxed: once per WebSocket, where inline it would grow every
        // request's future by its size.
        let accept = Box::pin(self.app.websocket(upgrade));
        match catch_panic(accept).await {
            Ok(res) => res,
            Err(()) => {
                error!("the app panicked while handling a WebSocket upgrade; answered 500");
                text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        }
    }

    /// 503 at once past `--limit-concurrency`.
    fn over_concurrency(&self) -> Option<Response<S::Body>> {
        let limit = self.settings.limit_concurrency?;
        if self.in_flight.get() < limit {
            return None;
        }
        let mut res = text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n");
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        Some(res)
    }
}

/// What the app's call came to: its response, 500 if the handler panicked,
/// 504 if it ran past `--request-timeout` (`None`).
fn app_answer<B: From<Bytes>>(outcome: Option<Result<Response<B>, ()>>) -> Response<B> {
    match outcome {
        Some(Ok(res)) => res,
        Some(Err(())) => {
            error!("the app panicked while handling a request; answered 500");
            text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        None => {
            warn!("a handler ran past request-timeout; cancelled it and answered 504");
            text(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout\n")
        }
    }
}

/// The answer to an upgrade request that cannot be served.
fn refuse_upgrade<B: From<Bytes>>(status: StatusCode, why: &str) -> Response<B> {
    let mut res = text(status, why);
    if status == StatusCode::UPGRADE_REQUIRED {
        res.headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    }
    res
}

/// A short plain-text response.
fn text<B: From<Bytes>>(status: StatusCode, body: &str) -> Response<B> {
    let mut res = Response::new(B::from(Bytes::copy_from_slice(body.as_bytes())));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, TEXT_PLAIN);
    headers.insert(http::header::SERVER, SERVER_NAME);
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
