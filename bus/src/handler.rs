//! A subscriber that takes each message where the bus delivers it, rather
//! than from a queue read by a task of its own.
//!
//! A gateway has a subscription per room with local members. With a queue
//! each, every frame of a one-member room woke the room's feed task, only
//! for it to hand the frame on to one connection's queue: a task wake-up
//! per frame that scales with rooms rather than players. A handler does the
//! handing-on in the bus's own delivery (the Redis subscription's router
//! task, or the in-memory publisher), so it must be quick and never wait:
//! `try_send` to bounded queues, nothing more.

use tokio_util::sync::{CancellationToken, DropGuard};

/// Takes the messages of one subscription as they arrive (see the module
/// docs). The subscription ends when `stop` is cancelled (the bus drops the
/// handler at its next message, or within its next sweep), and `ended`
/// (from [`Handler::new`]) is cancelled once the bus has dropped it,
/// whoever ended it.
pub struct Handler<T> {
    take: Box<dyn Fn(T) + Send>,
    stop: CancellationToken,
    _ended: DropGuard,
}

impl<T> Handler<T> {
    /// A handler calling `take` for each message until `stop` is
    /// cancelled; the token returned is cancelled when the bus has dropped
    /// the handler (the subscription is over).
    pub fn new(take: impl Fn(T) + Send + 'static, stop: CancellationToken) -> (Self, CancellationToken) {
        let ended = CancellationToken::new();
        (Self { take: Box::new(take), stop, _ended: ended.clone().drop_guard() }, ended)
    }

    /// Whether the subscriber still wants messages.
    pub(crate) fn is_open(&self) -> bool {
        !self.stop.is_cancelled()
    }

    /// Hands over one message; false (and the message dropped) once the
    /// subscriber wants no more.
    pub(crate) fn deliver(&self, msg: T) -> bool {
        if !self.is_open() {
            return false;
        }
        (self.take)(msg);
        true
    }
}

impl<T> std::fmt::Debug for Handler<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler").field("open", &self.is_open()).finish()
    }
}
