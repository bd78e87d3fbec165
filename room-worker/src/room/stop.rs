//! The room's stop signals (its lease lost, the worker shutting down), made
//! cheap to look at.
//!
//! A running room's loop polls every branch of its `select!` each time it
//! wakes, ten times a second. Polling a cancellation token takes its lock
//! (twice: "cancelled?" and its waiter); with thousands of rooms that was a
//! few percent of a worker. [`Stop`] polls the tokens only after one of
//! them woke it, and otherwise answers from an atomic flag.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Why the room must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    LeaseLost,
    Shutdown,
}

/// Resolves once either token is cancelled; the lease first if both are.
pub(super) struct Stop {
    lost: Pin<Box<WaitForCancellationFutureOwned>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    flag: Arc<Flag>,
    /// The waker the tokens are given: it raises the flag.
    waker: Waker,
    /// The room's waker as last registered: a task keeps its waker, and
    /// registering it again at every poll was most of what this cost.
    registered: Option<Waker>,
}

/// Raised by a token's wake-up; the room's own task is woken with it.
struct Flag {
    woken: AtomicBool,
    room: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // The room's waker is taken before the flag goes up: a poll that
        // sees the flag up knows the waker is gone and registers it again
        // (see `Stop::poll`), whenever this wake-up took it.
        let room = self.room.take();
        self.woken.store(true, Ordering::Release);
        if let Some(room) = room {
            room.wake();
        }
    }
}

impl Stop {
    pub(super) fn new(lost: &CancellationToken, shutdown: &CancellationToken) -> Self {
        // The first poll, with a waker new to it, registers with the tokens.
        let flag = Arc::new(Flag { woken: AtomicBool::new(false), room: AtomicWaker::new() });
        Self {
            lost: Box::pin(lost.clone().cancelled_owned()),
            shutdown: Box::pin(shutdown.clone().cancelled_owned()),
            waker: Waker::from(flag.clone()),
            flag,
            registered: None,
        }
    }
}

impl Future for Stop {
    type Output = Why;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Why> {
        let this = self.get_mut();
        // Registered before the flag is read: a wake-up in between is seen
        // now or wakes the room again. The same waker is not registered
        // again: it stays registered until a wake-up takes it, and a
        // wake-up takes it before it raises the flag (so the flag is seen
        // up at the next poll at the latest, which registers it again).
        let same = this.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if !same {
            this.flag.room.register(cx.waker());
            this.registered = Some(cx.waker().clone());
        }
        let raised = this.flag.woken.swap(false, Ordering::AcqRel);
        if same {
            if !raised {
                return Poll::Pending;
            }
            // The wake-up that raised the flag took the waker.
            this.flag.room.register(cx.waker());
        }
        // Raised, or a new waker: a wake-up under way may have taken the
        // old one and not yet raised the flag (it then wakes the old one),
        // so the tokens are looked at now.
        let mut tokens = Context::from_waker(&this.waker);
        if this.lost.as_mut().poll(&mut tokens).is_ready() {
            return Poll::Ready(Why::LeaseLost);
        }
        if this.shutdown.as_mut().poll(&mut tokens).is_ready() {
            return Poll::Ready(Why::Shutdown);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_cancelled_token_wakes_and_stops() {
        let (lost, shutdown) = (CancellationToken::new(), CancellationToken::new());
        let mut stop = Stop::new(&lost, &shutdown);
        // Polled many times with nothing to say, it stays pending.
        for _ in 0..3 {
            assert!(tokio::time::timeout(Duration::from_millis(5), &mut stop).await.is_err());
        }
        let later = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            later.cancel();
        });
        assert_eq!(woken(&mut stop).await, Why::Shutdown);
    }

    /// What `stop` resolves to, once a token woke it: not found by a later
    /// poll (the timeout's).
    async fn woken(stop: &mut Stop) -> Why {
        let waited = std::time::Instant::now();
        let why = tokio::time::timeout(Duration::from_secs(5), stop).await.expect("woken by the token");
        assert!(waited.elapsed() < Duration::from_secs(2), "{:?}", waited.elapsed());
        why
    }

    /// A wake-up that finds nothing cancelled (it took the registered
    /// waker) leaves the room's waker registered for the next one.
    #[tokio::test]
    async fn a_wake_up_with_nothing_cancelled_leaves_the_room_registered() {
        let (lost, shutdown) = (CancellationToken::new(), CancellationToken::new());
        let mut stop = Stop::new(&lost, &shutdown);
        assert!(tokio::time::timeout(Duration::from_millis(5), &mut stop).await.is_err());
        let flag = stop.flag.clone();
        let later = lost.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            flag.wake_by_ref();
            tokio::time::sleep(Duration::from_millis(10)).await;
            later.cancel();
        });
        assert_eq!(woken(&mut stop).await, Why::LeaseLost);
    }

    /// A wake-up split by a poll of the room (between taking its waker
    /// and raising the flag) leaves it registered, step by step.
    #[test]
    fn a_wake_up_split_by_a_poll_leaves_the_room_registered() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (lost, shutdown) = (CancellationToken::new(), CancellationToken::new());
        let mut stop = Stop::new(&lost, &shutdown);
        let count = Arc::new(Count(0.into()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut stop).poll(&mut cx).is_pending());
        // A wake-up (with nothing cancelled) takes the waker...
        let taken = stop.flag.room.take();
        // ... the room polls meanwhile ...
        assert!(Pin::new(&mut stop).poll(&mut cx).is_pending());
        // ... then the flag goes up and the room is woken, and polls.
        stop.flag.woken.store(true, Ordering::Release);
        taken.expect("the room's waker").wake();
        assert!(Pin::new(&mut stop).poll(&mut cx).is_pending());
        let before = count.0.load(Ordering::SeqCst);
        lost.cancel();
        assert!(count.0.load(Ordering::SeqCst) > before, "the cancellation did not wake the room");
        assert_eq!(Pin::new(&mut stop).poll(&mut cx), Poll::Ready(Why::LeaseLost));
    }

    /// Polled with a new waker, it looks at the tokens whatever the flag
    /// says: a wake-up under way may have taken the old waker and not yet
    /// raised the flag (it would then wake the old one only).
    #[test]
    fn a_new_waker_looks_at_the_tokens() {
        let (lost, shutdown) = (CancellationToken::new(), CancellationToken::new());
        let mut stop = Stop::new(&lost, &shutdown);
        let old = Waker::from(Arc::new(Flag { woken: AtomicBool::new(false), room: AtomicWaker::new() }));
        assert!(Pin::new(&mut stop).poll(&mut Context::from_waker(&old)).is_pending());
        lost.cancel();
        // As if the wake-up had not raised the flag yet.
        stop.flag.woken.store(false, Ordering::Release);
        let new = Waker::from(Arc::new(Flag { woken: AtomicBool::new(false), room: AtomicWaker::new() }));
        assert_eq!(Pin::new(&mut stop).poll(&mut Context::from_waker(&new)), Poll::Ready(Why::LeaseLost));
    }

    #[tokio::test]
    async fn the_lease_comes_first() {
        let (lost, shutdown) = (CancellationToken::new(), CancellationToken::new());
        shutdown.cancel();
        lost.cancel();
        assert_eq!(Stop::new(&lost, &shutdown).await, Why::LeaseLost);
    }

    #[tokio::test]
    async fn a_token_cancelled_before_the_first_poll_is_seen() {
        let (lost, shutdown) = (CancellationToken::new(), CancellationToken::new());
        let stop = Stop::new(&lost, &shutdown);
        lost.cancel();
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), stop).await.unwrap(), Why::LeaseLost);
    }
}
