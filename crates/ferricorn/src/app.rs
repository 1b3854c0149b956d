//! The app contract: lifespan startup and shutdown around an HTTP handler.

use std::future::Future;

use ferricorn_worker::{RequestInfo, Service, WebSocketUpgrade};
use tracing::error;

use crate::{Body, BoxError};

/// A request as the app sees it; its body streams in as the client sends it.
pub type Request = http::Request<Body>;
/// A response the app returns; its body may stream.
pub type Response = http::Response<Body>;

/// An application served by ferricorn. One value is built in each worker,
/// after the fork, by the factory given to [`run`](crate::run). Its futures
/// need not be `Send`: each worker runs one single-threaded runtime.
///
/// ```no_run
/// use ferricorn::{App, Body, Context, Request, Response};
///
/// struct Hello;
///
/// impl App for Hello {
///     async fn call(&self, _req: Request) -> Response {
///         Response::new(Body::from("Hello, World!"))
///     }
/// }
///
/// fn main() -> std::process::ExitCode {
///     ferricorn::run(|_ctx: &Context| Hello)
/// }
/// ```
pub trait App: 'static {
    /// Lifespan startup, run in each worker before it accepts connections.
    /// An error aborts the boot: the server stops and exits with code 3.
    fn startup(&self) -> impl Future<Output = Result<(), BoxError>> {
        async { Ok(()) }
    }

    /// Handles one request.
    fn call(&self, req: Request) -> impl Future<Output = Response>;

    /// Handles a WebSocket upgrade request (the WebSocket scope): accept it
    /// with [`WebSocketUpgrade::accept`], or answer with any response.
    /// The default answers 404.
    fn websocket(&self, upgrade: WebSocketUpgrade) -> impl Future<Output = Response> {
        async { upgrade.reject(http::StatusCode::NOT_FOUND) }
    }

    /// Whether WebSocket upgrades go to [`websocket`](Self::websocket);
    /// [`HyperApp`] says no and lets the service upgrade by itself.
    #[doc(hidden)]
    fn handles_websockets(&self) -> bool {
        true
    }

    /// Lifespan shutdown, run in each worker after its connections drained.
    fn shutdown(&self) -> impl Future<Output = ()> {
        async {}
    }
}

/// Serves any hyper [`Service`](hyper::service::Service) (and so, through
/// `hyper_util::service::TowerToHyperService`, any tower service such as an
/// axum `Router`) as an [`App`]. See `examples/axum.rs`. Each request's
/// [`RequestInfo`] is also in its extensions (axum:
/// `Extension<RequestInfo>`).
#[derive(Debug, Clone)]
pub struct HyperApp<S>(pub S);

impl<S, B> App for HyperApp<S>
where
    S: hyper::service::Service<Request, Response = http::Response<B>> + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// Upgrade requests go to the service, which upgrades by itself (its
    /// upgraded sockets are not part of ferricorn's drain).
    fn handles_websockets(&self) -> bool {
        false
    }

    async fn call(&self, mut req: Request) -> Response {
        // Extractors such as axum's `Extension` look in the extensions.
        if let Some(info) = req.body().info().cloned() {
            req.extensions_mut().insert(info);
        }
        match self.0.call(req).await {
            Ok(res) => res.map(Body::new),
            Err(e) => {
                error!("service error: {}", e.into());
                let mut res = Response::new(Body::from("Internal Server Error"));
                *res.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                res
            }
        }
    }
}

/// Adapts an [`App`] to what the worker serves.
pub(crate) struct Served<A>(pub A);

impl<A: App> Service for Served<A> {
    type Body = Body;

    fn startup(&self) -> impl Future<Output = Result<(), BoxError>> {
        self.0.startup()
    }

    fn call(
        &self,
        req: http::Request<hyper::body::Incoming>,
        info: RequestInfo,
    ) -> impl Future<Output = http::Response<Body>> {
        self.0.call(req.map(|b| Body::incoming(b, info)))
    }

    fn websocket(&self, upgrade: WebSocketUpgrade) -> impl Future<Output = http::Response<Body>> {
        self.0.websocket(upgrade)
    }

    fn handles_websockets(&self) -> bool {
        self.0.handles_websockets()
    }

    fn shutdown(&self) -> impl Future<Output = ()> {
        self.0.shutdown()
    }
}
