//! What happens when a response is done, that is when hyper has sent its
//! body or dropped it: the connection starts waiting for its next head, the
//! request is counted in the metrics, and its access log line is written.
//! So the bytes and the duration are those of the whole response, streamed
//! or not.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Buf;
use ferricorn_shm::metrics::Counters;
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};

use crate::access::{Record, Sink};
use crate::deadline::Deadline;

/// The bookkeeping of one request, from its head to the end of its
/// response, run when it is dropped: with its response's body, or with the
/// request when its handler is cancelled (an HTTP/2 stream reset, a
/// connection gone), which counts for the deadline only.
#[derive(Debug)]
pub(crate) struct Done {
    /// The connection's head deadline: the wait for the next head begins
    /// when no response is left.
    deadline: Arc<Deadline>,
    observe: Option<Observe>,
    log: Option<(Box<Record>, &'static Sink)>,
    /// A response head was given.
    responded: bool,
    /// Body bytes sent.
    bytes: u64,
}

/// A request to count in the metrics when its response is done.
#[derive(Debug)]
pub(crate) struct Observe {
    pub counters: &'static Counters,
    /// Index in [`METHODS`](ferricorn_shm::metrics::METHODS).
    pub method: usize,
    pub status: u16,
    pub started: Instant,
}

impl Done {
    pub(crate) fn new(
        deadline: Arc<Deadline>,
        observe: Option<Observe>,
        log: Option<(Box<Record>, &'static Sink)>,
    ) -> Self {
        Self {
            deadline,
            observe,
            log,
            responded: false,
            bytes: 0,
        }
    }

    /// Notes the response head: its status, the headers the access log
    /// writes, and an upgrade, after which the connection waits for no head.
    pub(crate) fn respond<B>(&mut self, res: &Response<B>) {
        self.responded = true;
        let status = res.status();
        if let Some((record, sink)) = &mut self.log {
            record.respond(status, res.headers(), &sink.format);
        }
        if let Some(o) = &mut self.observe {
            o.status = status.as_u16();
        }
        if status == StatusCode::SWITCHING_PROTOCOLS {
            self.deadline.upgrade();
        }
    }

    /// The response body, tracked until it is done.
    pub(crate) fn body<B>(self, body: B) -> Tracked<B> {
        Tracked { body, done: self }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        self.deadline.done();
        if !self.responded {
            return;
        }
        if let Some(o) = &self.observe {
            o.counters.observe(o.method, o.status, o.started.elapsed());
        }
        if let Some((record, sink)) = &self.log {
            sink.log(record, self.bytes);
        }
    }
}

/// A response body that counts its bytes; its [`Done`] runs when hyper is
/// done with it (finished or dropped).
#[derive(Debug)]
pub(crate) struct Tracked<B> {
    body: B,
    done: Done,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.done.bytes += data.remaining() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
