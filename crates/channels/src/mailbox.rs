//! A member's mailbox: the bounded queue of group and direct messages on
//! their way to one socket, which its writer drains. A publisher never
//! waits on it: when it is full, the overflow policy closes the member (the
//! default; the client reconnects and resyncs) or drops its oldest message.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::Payload;

/// A message on its way to a member, with when it was published (µs on the
/// host's monotonic clock), for the fan-out histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The message.
    pub payload: Payload,
    /// When it was published.
    pub published: u64,
}

/// What a full mailbox does with one more message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Close the member's socket (1013, try again later).
    #[default]
    Close,
    /// Drop the oldest queued message.
    DropOldest,
}

/// What the writer gets next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A message to write.
    Message(Rc<Envelope>),
    /// The mailbox overflowed under [`Overflow::Close`]: close the socket.
    Overflowed,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// Queued, and the oldest message was dropped for it.
    DroppedOldest,
    /// Not queued: the member is to be closed.
    Closing,
}

/// One member's queue.
#[derive(Debug)]
pub struct Mailbox {
    queue: RefCell<VecDeque<Rc<Envelope>>>,
    capacity: usize,
    overflow: Overflow,
    overflowed: Cell<bool>,
    /// The writer waiting for a message. A plain waker, not a `Notify`:
    /// the writer polls the mailbox beside its other queue for every frame
    /// it writes, and registering with a `Notify` takes a lock each time.
    waiter: RefCell<Option<Waker>>,
}

impl Mailbox {
    pub(crate) fn new(capacity: usize, overflow: Overflow) -> Rc<Self> {
        Rc::new(Self {
            queue: RefCell::new(VecDeque::new()),
            capacity: capacity.max(1),
            overflow,
            overflowed: Cell::new(false),
            waiter: RefCell::new(None),
        })
    }

    pub(crate) fn push(&self, payload: Rc<Envelope>) -> Pushed {
        if self.overflowed.get() {
            return Pushed::Closing;
        }
        let mut queue = self.queue.borrow_mut();
        let pushed = if queue.len() < self.capacity {
            Pushed::Queued
        } else if self.overflow == Overflow::DropOldest {
            queue.pop_front();
            Pushed::DroppedOldest
        } else {
            self.overflowed.set(true);
            queue.clear();
            drop(queue);
            self.wake();
            return Pushed::Closing;
        };
        queue.push_back(payload);
        drop(queue);
        self.wake();
        pushed
    }

    fn wake(&self) {
        if let Some(w) = self.waiter.borrow().as_ref() {
            w.wake_by_ref();
        }
    }

    /// The next message, waiting for one. Cancel-safe: nothing is taken
    /// until it is returned.
    pub fn next(&self) -> impl Future<Output = Next> + '_ {
        std::future::poll_fn(move |cx| {
            if self.overflowed.get() {
                return Poll::Ready(Next::Overflowed);
            }
            if let Some(p) = self.queue.borrow_mut().pop_front() {
                return Poll::Ready(Next::Message(p));
            }
            let mut waiter = self.waiter.borrow_mut();
            if !waiter.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waiter = Some(cx.waker().clone());
            }
            Poll::Pending
        })
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Rc<Envelope> {
        Rc::new(Envelope {
            payload: Payload::Text(s.to_owned()),
            published: 0,
        })
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_mailbox_closes_or_drops_the_oldest() {
        let close = Mailbox::new(2, Overflow::Close);
        assert_eq!(close.push(text("a")), Pushed::Queued);
        assert_eq!(close.push(text("b")), Pushed::Queued);
        assert_eq!(close.push(text("c")), Pushed::Closing);
        assert_eq!(close.next().await, Next::Overflowed);
        assert_eq!(close.push(text("d")), Pushed::Closing);

        let drop = Mailbox::new(2, Overflow::DropOldest);
        drop.push(text("a"));
        drop.push(text("b"));
        assert_eq!(drop.push(text("c")), Pushed::DroppedOldest);
        assert_eq!(drop.next().await, Next::Message(text("b")));
        assert_eq!(drop.next().await, Next::Message(text("c")));
        assert!(drop.is_empty());
    }
}
