//! A bounded queue, several senders, one receiver, that allocates as it
//! fills: a connection's outgoing frames on a gateway, a subscriber's
//! messages on the bus.
//!
//! Both are kept for a connection's or a room's whole life and mostly hold
//! nothing or one item. tokio's bounded `mpsc` costs about 1.6 KB per
//! channel whatever it holds (a cache-padded channel of 512 bytes and two
//! blocks of 32 slots; more for larger items) and a semaphore permit per
//! item. This is a `VecDeque` that grows as it fills (and gives back what a
//! burst took), behind a mutex held only to push or pop, and the
//! receiver's waker, woken when the queue stops being empty: about 100
//! bytes, two uncontended atomic pairs per item.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

/// Slots kept when the queue empties after a burst.
const KEEP: usize = 4;

/// Why an item was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// `capacity` items wait already: the receiver does not keep up.
    Full,
    /// The receiver is gone.
    Closed,
}

struct State<T> {
    items: VecDeque<T>,
    /// Woken when `items` stops being empty, or the last sender went.
    waker: Option<Waker>,
    /// The receiver is gone.
    closed: bool,
    /// Every sender is gone: what is left is the last.
    ended: bool,
}

impl<T> State<T> {
    fn pop(&mut self) -> Option<T> {
        let item = self.items.pop_front();
        if self.items.is_empty() && self.items.capacity() > KEEP {
            self.items.shrink_to(KEEP);
        }
        item
    }
}

struct Shared<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    senders: AtomicUsize,
}

impl<T> Shared<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding it; a poisoned queue is still whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A queue of at most `capacity` items (at least one).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State { items: VecDeque::new(), waker: None, closed: false, ended: false }),
        capacity: capacity.max(1),
        senders: AtomicUsize::new(1),
    });
    (Sender { shared: shared.clone() }, Receiver { shared })
}

pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Self { shared: self.shared.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut state = self.shared.state();
            state.ended = true;
            if let Some(waker) = state.waker.take() {
                drop(state);
                waker.wake();
            }
        }
    }
}

impl<T> Sender<T> {
    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.state().closed
    }

    /// Queues `item` without waiting.
    pub fn try_send(&self, item: T) -> Result<(), SendError> {
        let mut state = self.shared.state();
        if state.closed {
            return Err(SendError::Closed);
        }
        if state.items.len() >= self.shared.capacity {
            return Err(SendError::Full);
        }
        state.items.push_back(item);
        // The receiver waits only on an empty queue: it must hear of the
        // first item, and the ones after find it awake.
        if state.items.len() == 1
            && let Some(waker) = &state.waker
        {
            waker.wake_by_ref();
        }
        Ok(())
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("queue::Sender").field("capacity", &self.shared.capacity).finish()
    }
}

pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The next item, if one waits.
    pub fn try_recv(&mut self) -> Option<T> {
        self.shared.state().pop()
    }

    /// Forgets the waker of an earlier `recv`: a receiver that now takes
    /// its items with `try_recv` on its own clock (a room while its game
    /// runs) is not woken by each one.
    pub fn stop_waiting(&mut self) {
        self.shared.state().waker = None;
    }

    /// The next item, once there is one; `None` once every sender is gone
    /// and nothing is left. Cancel-safe: dropped before it is ready, it
    /// takes nothing.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| {
            let mut state = self.shared.state();
            if let Some(item) = state.pop() {
                return Poll::Ready(Some(item));
            }
            if state.ended {
                return Poll::Ready(None);
            }
            match &mut state.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                w => *w = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("queue::Receiver").field("capacity", &self.shared.capacity).finish()
    }
}

impl<T> Drop for Receiver<T> {
    /// Senders learn the receiver is gone, and what waited is dropped now
    /// rather than with the last sender.
    fn drop(&mut self) {
        let items = {
            let mut state = self.shared.state();
            state.closed = true;
            state.waker = None;
            std::mem::take(&mut state.items)
        };
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;

    #[test]
    fn bounded_then_closed() {
        let (tx, mut rx) = channel(2);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.clone().try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Err(SendError::Full));
        assert_eq!(rx.try_recv(), Some(1));
        assert_eq!(tx.try_send(4), Ok(()));
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.try_recv(), Some(4));
        assert_eq!(rx.try_recv(), None);
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.try_send(5), Err(SendError::Closed));
    }

    /// The receiver hears that the last sender went, after what it sent.
    #[tokio::test]
    async fn the_last_sender_gone_ends_the_queue_after_its_items() {
        let (tx, mut rx) = channel(4);
        let tx2 = tx.clone();
        tx.try_send(1).unwrap();
        drop(tx);
        let waiting = tokio::spawn(async move { (rx.recv().await, rx.recv().await) });
        tokio::task::yield_now().await;
        drop(tx2);
        assert_eq!(waiting.await.unwrap(), (Some(1), None));
    }

    /// A receiver that stopped waiting is not woken by the next item, and
    /// a `recv` after it waits (and is woken) again.
    #[tokio::test]
    async fn a_receiver_that_stopped_waiting_is_not_woken() {
        use std::future::Future;
        use std::task::{Context, Wake};
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (tx, mut rx) = channel::<u32>(4);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(std::pin::pin!(rx.recv()).poll(&mut cx).is_pending());
        rx.stop_waiting();
        tx.try_send(1).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert_eq!(rx.try_recv(), Some(1));
        assert!(std::pin::pin!(rx.recv()).poll(&mut cx).is_pending());
        tx.try_send(2).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    /// What waited when the receiver went is dropped with it.
    #[test]
    fn a_dropped_receiver_drops_what_waited() {
        let (tx, rx) = channel(4);
        let item = Arc::new(());
        tx.try_send(item.clone()).unwrap();
        assert_eq!(Arc::strong_count(&item), 2);
        drop(rx);
        assert_eq!(Arc::strong_count(&item), 1);
    }

    /// A burst's slots are given back once the queue empties.
    #[test]
    fn a_burst_does_not_keep_its_slots() {
        let (tx, mut rx) = channel(64);
        for i in 0..64 {
            tx.try_send(i).unwrap();
        }
        while rx.try_recv().is_some() {}
        assert!(rx.shared.state().items.capacity() <= KEEP);
    }

    /// A waiting receiver is woken by a sender on another thread, every
    /// item arrives once and each sender's in order; a `recv` given up
    /// (a `select!` that took another branch) takes nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_item_arrives_once_in_order_across_threads() {
        let (tx, mut rx) = channel(8);
        let senders: Vec<_> = (0..4u64)
            .map(|s| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut i = 0;
                    while i < 2_000 {
                        match tx.try_send((s, i)) {
                            Ok(()) => i += 1,
                            Err(SendError::Full) => tokio::task::yield_now().await,
                            Err(SendError::Closed) => panic!("closed"),
                        }
                    }
                })
            })
            .collect();
        let mut next = [0u64; 4];
        let mut got = 0;
        while got < 8_000 {
            tokio::select! {
                Some((s, i)) = rx.recv() => {
                    assert_eq!(i, next[s as usize], "sender {s} out of order");
                    next[s as usize] += 1;
                    got += 1;
                }
                () = tokio::time::sleep(Duration::from_micros(50)) => {}
            }
        }
        for s in senders {
            s.await.unwrap();
        }
        assert_eq!(rx.try_recv(), None);
    }
}
