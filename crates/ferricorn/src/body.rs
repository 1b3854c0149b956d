//! [`Body`]: the one body type of requests and responses, streaming both ways.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::sync::mpsc;

use crate::{BoxError, Closed, RequestInfo};

/// A streaming HTTP body.
///
/// A request's body arrives as the client sends it, and carries what
/// ferricorn knows of the request beyond its head ([`Body::info`]); a
/// response's body can be bytes ([`From`]), a stream fed through
/// [`Body::channel`], or any [`http_body::Body`] ([`Body::new`]).
pub struct Body(Inner);

enum Inner {
    Empty,
    Full(Option<Bytes>),
    Incoming(Incoming),
    Channel(mpsc::Receiver<Bytes>),
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Self(Inner::Empty)
    }

    /// Wraps any body whose data is [`Bytes`].
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self(Inner::Boxed(body.map_err(Into::into).boxed_unsync()))
    }

    /// A body streamed through the returned [`BodySender`]: each chunk sent
    /// is written (and flushed) as it comes; the body ends when the sender is
    /// dropped. The channel holds one chunk, so a slow client slows the sender.
    pub fn channel() -> (BodySender, Self) {
        let (tx, rx) = mpsc::channel(1);
        (BodySender(tx), Self(Inner::Channel(rx)))
    }

    /// A request's body as it arrives; the info's body timeout bounds the
    /// wait for each chunk.
    pub(crate) fn incoming(body: hyper::body::Incoming, info: RequestInfo) -> Self {
        Self(Inner::Incoming(Incoming {
            body,
            info: Box::new(info),
            timer: None,
        }))
    }

    /// What ferricorn knows of the request this body came with: client
    /// address after trusted proxies, scheme, root path, request id.
    /// `None` on a body the app made.
    ///
    /// ```
    /// # async fn handler(req: ferricorn::Request) {
    /// let client = req.body().info().and_then(|info| info.client());
    /// # }
    /// ```
    pub fn info(&self) -> Option<&RequestInfo> {
        match &self.0 {
            Inner::Incoming(b) => Some(&b.info),
            _ => None,
        }
    }

    /// Reads the whole body into memory, refusing more than `limit` bytes.
    pub async fn collect(mut self, limit: usize) -> Result<Bytes, BoxError> {
        let mut out = Vec::new();
        while let Some(frame) = self.frame().await {
            if let Ok(data) = frame?.into_data() {
                if out.len() + data.len() > limit {
                    return Err(format!("body larger than {limit} bytes").into());
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(out.into())
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.0 {
            Inner::Empty => "empty",
            Inner::Full(_) => "full",
            Inner::Incoming(_) => "incoming",
            Inner::Channel(_) => "channel",
            Inner::Boxed(_) => "boxed",
        };
        f.debug_tuple("Body").field(&kind).finish()
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Self(Inner::Full(Some(b)))
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Bytes::from_static(s.as_bytes()).into()
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Bytes::from(s).into()
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Bytes::from(v).into()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.0 {
            Inner::Empty => Poll::Ready(None),
            Inner::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Inner::Incoming(b) => b.poll_frame(cx),
            Inner::Channel(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
            Inner::Boxed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Empty => true,
            Inner::Full(b) => b.is_none(),
            Inner::Incoming(b) => b.body.is_end_stream(),
            Inner::Channel(_) => false,
            Inner::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Incoming(b) => b.body.size_hint(),
            Inner::Channel(_) => SizeHint::default(),
            Inner::Boxed(b) => b.size_hint(),
        }
    }
}

/// A request body with a bound on the wait for each chunk, and its
/// request's info.
struct Incoming {
    body: hyper::body::Incoming,
    /// Boxed: every body, the responses' too, would otherwise be as large.
    info: Box<RequestInfo>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Incoming {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match http_body::Body::poll_frame(Pin::new(&mut self.body), cx) {
            Poll::Ready(frame) => {
                self.timer = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = self.info.body_timeout();
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.timer = None;
                        Poll::Ready(Some(Err(format!(
                            "the client sent no request body data for {idle:?}"
                        )
                        .into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

/// Feeds a [`Body::channel`] body.
#[derive(Debug, Clone)]
pub struct BodySender(mpsc::Sender<Bytes>);

impl BodySender {
    /// Sends one chunk; waits while the previous one is still being written.
    /// Fails once the client has gone (the response body was dropped).
    pub async fn send(&self, chunk: impl Into<Bytes>) -> Result<(), Closed> {
        self.0.send(chunk.into()).await.map_err(|_| Closed)
    }
}
