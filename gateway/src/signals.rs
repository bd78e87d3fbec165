//! What others tell a connection: kicked (too slow), superseded (a newer
//! connection of its player took over), restart (the gateway drains).
//!
//! A connection wakes about ten times a second for its frames, and each
//! wake polls everything it waits on. A `CancellationToken` per cause would
//! take a mutex at each poll (its `Notify` re-registers the waker); these
//! are bits and one `AtomicWaker`. A connection registers its task's waker
//! once ([`Signals::register`]: a task's waker stays valid for its life,
//! and only a raised signal takes it), then each poll is one atomic load
//! ([`Signals::poll_raised`]).

use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

const KICK: u8 = 1;
const SUPERSEDED: u8 = 2;
const RESTART: u8 = 4;

/// Why a connection was told to stop, by precedence: a superseded client
/// must not resume (it would shut the newer connection out in turn), and a
/// restart is no fault of the client's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Superseded,
    Restart,
    TooSlow,
}

#[derive(Debug, Default)]
pub struct Signals {
    bits: AtomicU8,
    waker: AtomicWaker,
}

impl Signals {
    fn raise(&self, bit: u8) {
        if self.bits.fetch_or(bit, Ordering::AcqRel) & bit == 0 {
            self.waker.wake();
        }
    }

    /// Too slow: its queue overflowed.
    pub fn kick(&self) {
        self.raise(KICK);
    }

    /// A newer connection of the same player holds the member now.
    pub fn supersede(&self) {
        self.raise(SUPERSEDED);
    }

    /// The gateway is restarting: close with 1012, the client resumes.
    pub fn restart(&self) {
        self.raise(RESTART);
    }

    pub fn is_superseded(&self) -> bool {
        self.bits.load(Ordering::Acquire) & SUPERSEDED != 0
    }

    pub fn is_kicked(&self) -> bool {
        self.bits.load(Ordering::Acquire) & KICK != 0
    }

    pub fn is_restarting(&self) -> bool {
        self.bits.load(Ordering::Acquire) & RESTART != 0
    }

    /// Why the connection must stop, if it must.
    pub fn stop(&self) -> Option<Stop> {
        let bits = self.bits.load(Ordering::Acquire);
        if bits & SUPERSEDED != 0 {
            Some(Stop::Superseded)
        } else if bits & RESTART != 0 {
            Some(Stop::Restart)
        } else if bits & KICK != 0 {
            Some(Stop::TooSlow)
        } else {
            None
        }
    }

    /// Wakes the task polled with `cx` at the first signal raised.
    pub fn register(&self, cx: &mut Context<'_>) {
        self.waker.register(cx.waker());
    }

    /// Ready if a signal was raised; wakes nobody by itself (see
    /// [`register`](Self::register)).
    pub fn poll_raised(&self) -> Poll<Stop> {
        match self.stop() {
            Some(stop) => Poll::Ready(stop),
            None => Poll::Pending,
        }
    }

    /// Ready once any signal is raised (registers the waker each time).
    pub fn poll_stop(&self, cx: &mut Context<'_>) -> Poll<Stop> {
        // Registered before the check: a raise in between still wakes.
        self.waker.register(cx.waker());
        match self.stop() {
            Some(stop) => Poll::Ready(stop),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_raise_wakes_the_waiter_and_precedence_holds() {
        let s = Arc::new(Signals::default());
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { poll_fn(|cx| s.poll_stop(cx)).await }
        });
        tokio::task::yield_now().await;
        s.kick();
        assert_eq!(waiter.await.ok(), Some(Stop::TooSlow));
        s.restart();
        assert_eq!(s.stop(), Some(Stop::Restart));
        s.supersede();
        assert_eq!(s.stop(), Some(Stop::Superseded));
        assert!(s.is_kicked() && s.is_restarting() && s.is_superseded());
    }

    /// Registered once, a task is woken by a later raise, however many
    /// times it polled in between.
    #[tokio::test]
    async fn one_registration_serves_every_later_poll() {
        let s = Arc::new(Signals::default());
        let waiter = tokio::spawn({
            let s = s.clone();
            async move {
                poll_fn(|cx| {
                    s.register(cx);
                    Poll::Ready(())
                })
                .await;
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                poll_fn(|_| s.poll_raised()).await
            }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        s.supersede();
        let stop = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert_eq!(stop.ok().and_then(Result::ok), Some(Stop::Superseded));
    }
}
