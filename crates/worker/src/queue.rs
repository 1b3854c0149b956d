//! A bounded queue between the tasks of one thread: what a WebSocket's
//! reader hands its app, and what the app and the reader hand its writer.
//!
//! It does what those tasks asked of tokio's `mpsc` (a sender waits while
//! the queue is full, a reader can reserve a place before it reads, either
//! side sees the other go), but holds its items in a `VecDeque` that grows
//! with what is queued: `mpsc` allocates blocks of 32 slots, about 3 KiB
//! per socket for the two queues, which a server holding thousands of idle
//! sockets pays for each. No lock: everything stays on the worker's thread.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct Shared<T> {
    queue: RefCell<VecDeque<T>>,
    /// Places reserved by permits not yet used.
    reserved: Cell<usize>,
    capacity: usize,
    senders: Cell<usize>,
    receiver: Cell<bool>,
    /// The receiver, waiting for an item or for the senders to go.
    recv_waker: RefCell<Option<Waker>>,
    /// Senders waiting for room (or for the receiver to go, which frees
    /// them too).
    send_wakers: RefCell<Vec<Waker>>,
    /// Tasks waiting only for the receiver to go (`closed`): not woken
    /// when room frees, so a reader watching for its app to go is not
    /// woken by every message the app takes.
    closed_wakers: RefCell<Vec<Waker>>,
}

impl<T> Shared<T> {
    fn full(&self) -> bool {
        self.queue.borrow().len() + self.reserved.get() >= self.capacity
    }

    fn wake_receiver(&self) {
        if let Some(w) = self.recv_waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn wake_senders(&self) {
        if self.send_wakers.borrow().is_empty() {
            return;
        }
        for w in self.send_wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    fn wait_in(wakers: &RefCell<Vec<Waker>>, cx: &Context<'_>) {
        let mut wakers = wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
    }
}

/// A queue of at most `capacity` items.
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Rc::new(Shared {
        queue: RefCell::new(VecDeque::new()),
        reserved: Cell::new(0),
        capacity: capacity.max(1),
        senders: Cell::new(1),
        receiver: Cell::new(true),
        recv_waker: RefCell::new(None),
        send_wakers: RefCell::new(Vec::new()),
        closed_wakers: RefCell::new(Vec::new()),
    });
    (Sender(shared.clone()), Receiver(shared))
}

/// The sending side; cloned for each task that sends.
pub(crate) struct Sender<T>(Rc<Shared<T>>);

/// A place reserved in the queue.
pub(crate) struct Permit<'a, T>(&'a Shared<T>);

/// The receiving side.
pub(crate) struct Receiver<T>(Rc<Shared<T>>);

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.senders.set(self.0.senders.get() + 1);
        Self(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.senders.set(self.0.senders.get() - 1);
        if self.0.senders.get() == 0 {
            self.0.wake_receiver();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.0.receiver.set(false);
        self.0.queue.borrow_mut().clear();
        self.0.wake_senders();
        for w in self.0.closed_wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

impl<T> Sender<T> {
    /// Waits for a place, then queues `item`; `Err` with it when the
    /// receiver is gone.
    pub(crate) async fn send(&self, item: T) -> Result<(), T> {
        match self.reserve().await {
            Ok(permit) => {
                permit.send(item);
                Ok(())
            }
            Err(()) => Err(item),
        }
    }

    /// Waits for a place and reserves it; `Err` when the receiver is gone.
    pub(crate) async fn reserve(&self) -> Result<Permit<'_, T>, ()> {
        let shared = &*self.0;
        poll_fn(|cx| {
            if !shared.receiver.get() {
                return Poll::Ready(Err(()));
            }
            if shared.full() {
                Shared::<T>::wait_in(&shared.send_wakers, cx);
                return Poll::Pending;
            }
            shared.reserved.set(shared.reserved.get() + 1);
            Poll::Ready(Ok(Permit(shared)))
        })
        .await
    }

    /// Whether the receiver is gone.
    pub(crate) fn is_closed(&self) -> bool {
        !self.0.receiver.get()
    }

    /// Waits until the receiver is gone.
    pub(crate) async fn closed(&self) {
        let shared = &*self.0;
        poll_fn(|cx| {
            if shared.receiver.get() {
                Shared::<T>::wait_in(&shared.closed_wakers, cx);
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }
}

impl<T> Permit<'_, T> {
    /// Queues `item` in the reserved place (dropped if the receiver went).
    pub(crate) fn send(self, item: T) {
        let shared = self.0;
        if shared.receiver.get() {
            shared.queue.borrow_mut().push_back(item);
            shared.wake_receiver();
        }
        // The place is now the item's (or nobody's): Drop releases it.
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        self.0.reserved.set(self.0.reserved.get() - 1);
        // A permit dropped unused frees a place a sender may wait for.
        self.0.wake_senders();
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once every sender is gone and nothing is left.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        let shared = &*self.0;
        poll_fn(|cx| {
            let item = shared.queue.borrow_mut().pop_front();
            if let Some(item) = item {
                shared.wake_senders();
                return Poll::Ready(Some(item));
            }
            if shared.senders.get() == 0 {
                return Poll::Ready(None);
            }
            let mut waker = shared.recv_waker.borrow_mut();
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_makes_senders_wait_and_either_side_sees_the_other_go() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let (tx, mut rx) = channel::<u32>(2);
                tx.send(1).await.expect("room");
                let permit = tx.reserve().await.expect("room");
                // Full: a third send waits until the receiver takes one.
                let tx2 = tx.clone();
                let waiting = tokio::task::spawn_local(async move { tx2.send(3).await });
                tokio::task::yield_now().await;
                assert!(!waiting.is_finished());
                permit.send(2);
                assert_eq!(rx.recv().await, Some(1));
                assert_eq!(waiting.await.expect("task"), Ok(()));
                assert_eq!(rx.recv().await, Some(2));
                assert_eq!(rx.recv().await, Some(3));
                // An unused permit gives its place back.
                drop(tx.reserve().await.expect("room"));
                assert_eq!(tx.0.reserved.get(), 0);
                // The senders gone: None once drained.
                tx.send(4).await.expect("room");
                drop(tx);
                assert_eq!(rx.recv().await, Some(4));
                assert_eq!(rx.recv().await, None);

                let (tx, rx) = channel::<u32>(1);
                let closed = {
                    let tx = tx.clone();
                    tokio::task::spawn_local(async move { tx.closed().await })
                };
                tokio::task::yield_now().await;
                assert!(!closed.is_finished() && !tx.is_closed());
                drop(rx);
                closed.await.expect("closed resolves");
                assert!(tx.is_closed());
                assert_eq!(tx.send(5).await, Err(5));
            })
            .await;
    }
}
