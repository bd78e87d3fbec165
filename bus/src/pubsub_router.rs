//! The local subscribers of a process's Redis channels, and how a message
//! reaches them: shared by the single-Redis subscriptions and the sharded
//! ones of a Redis Cluster, which differ only in how they talk to Redis.
//!
//! Each subscriber has a bounded queue; a full queue loses the message (as
//! an overflowing Redis client would), and a closed one drops the
//! subscriber. A channel whose subscribers have all gone is reported, so
//! that its owner unsubscribes it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use tracing::warn;

use crate::backend::Subscription;
use crate::envelope::decode_each;
use crate::handler::Handler;
use crate::queue;

/// Messages a local subscriber may fall behind by before it loses some.
const SUBSCRIBER_QUEUE: usize = 1024;

/// Hands one payload to one subscriber; false once it has gone. An empty
/// payload is never delivered: it only asks whether the subscriber is
/// still there.
pub(crate) type Route = Box<dyn Fn(&[u8]) -> bool + Send>;

/// A subscriber of `T` messages, and the route that feeds it.
pub(crate) fn deliver_to<T: DeserializeOwned + Send + 'static>() -> (Route, Subscription<T>) {
    let (tx, rx) = queue::channel::<T>(SUBSCRIBER_QUEUE);
    (one_each(tx), Subscription::new(rx))
}

/// A subscriber of `T` messages on two channels, one queue: one message
/// each on the first route, and on the second several, one after the other
/// (a gateway's inputs for one room sent together, see
/// [`crate::redis_inputs`]).
pub(crate) fn deliver_one_or_many_to<T: DeserializeOwned + Send + 'static>() -> (Route, Route, Subscription<T>) {
    let (tx, rx) = queue::channel::<T>(SUBSCRIBER_QUEUE);
    let many = tx.clone();
    let many: Route =
        Box::new(move |payload: &[u8]| !many.is_closed() && each_decoded(payload, |msg| queued(&many, msg)));
    (one_each(tx), many, Subscription::new(rx))
}

/// The route of one message per payload into `tx`.
fn one_each<T: DeserializeOwned + Send + 'static>(tx: queue::Sender<T>) -> Route {
    Box::new(move |payload: &[u8]| !tx.is_closed() && decoded(payload, |msg| queued(&tx, msg)))
}

/// Queues `msg` (a full queue loses it); false if the subscriber is gone.
fn queued<T>(tx: &queue::Sender<T>, msg: T) -> bool {
    !matches!(tx.try_send(msg), Err(queue::SendError::Closed))
}

/// A subscriber that takes its `T` messages where they are delivered.
pub(crate) fn deliver_with<T: DeserializeOwned + Send + 'static>(handler: Handler<T>) -> Route {
    Box::new(move |payload: &[u8]| handler.is_open() && decoded(payload, |msg| handler.deliver(msg)))
}

/// Hands an open subscriber's payload over as a `T` (`take` says whether
/// the subscriber is still there). An empty payload only asks that, and a
/// malformed one is dropped.
fn decoded<T: DeserializeOwned>(payload: &[u8], take: impl FnOnce(T) -> bool) -> bool {
    if payload.is_empty() {
        return true;
    }
    match rmp_serde::from_slice::<T>(payload) {
        Ok(msg) => take(msg),
        Err(e) => {
            warn!(error = %e, "malformed message on the bus");
            true
        }
    }
}

/// [`decoded`] for a payload of several messages one after the other: each
/// is handed over in turn. A malformed one drops it and the rest.
fn each_decoded<T: DeserializeOwned>(payload: &[u8], take: impl FnMut(T) -> bool) -> bool {
    decode_each(payload, take).unwrap_or_else(|e| {
        warn!(error = %e, "malformed message on the bus");
        true
    })
}

/// The first subscribe of a channel, until the server confirmed it: if its
/// future is dropped half-way (its subscriber gave up), the channel's route
/// is forgotten, so that the next subscriber is the first again and
/// subscribes anew. Otherwise it would ride on a subscription the server
/// never got, or one the connection would not restore after a reconnect.
/// Made while the lock that orders subscribes is held, and dropped before
/// it: the route it forgets is the only one.
pub(crate) struct FirstSubscribe<'a> {
    router: &'a Router,
    channel: &'a str,
    confirmed: bool,
}

impl<'a> FirstSubscribe<'a> {
    pub(crate) fn new(router: &'a Router, channel: &'a str) -> Self {
        Self { router, channel, confirmed: false }
    }

    /// The server answered (if it refused, the caller forgets the route
    /// itself).
    pub(crate) fn settled(mut self) {
        self.confirmed = true;
    }
}

impl Drop for FirstSubscribe<'_> {
    fn drop(&mut self) {
        if !self.confirmed {
            self.router.remove(self.channel);
        }
    }
}

/// Channel name -> its local subscribers.
#[derive(Default)]
pub(crate) struct Router {
    routes: Mutex<HashMap<String, Vec<Route>>>,
}

impl Router {
    fn routes(&self) -> MutexGuard<'_, HashMap<String, Vec<Route>>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a subscriber; true if it is the channel's first.
    pub(crate) fn add(&self, channel: &str, route: Route) -> bool {
        let mut routes = self.routes();
        let subs = routes.entry(channel.to_owned()).or_default();
        subs.push(route);
        subs.len() == 1
    }

    /// Forgets the channel and its subscribers (its SUBSCRIBE failed).
    pub(crate) fn remove(&self, channel: &str) {
        self.routes().remove(channel);
    }

    pub(crate) fn has(&self, channel: &str) -> bool {
        self.routes().contains_key(channel)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.routes().is_empty()
    }

    /// Hands a message to the channel's subscribers; drops closed ones.
    /// Returns true if the channel has no subscriber left.
    pub(crate) fn dispatch(&self, channel: &str, payload: &[u8]) -> bool {
        let mut routes = self.routes();
        let Some(subs) = routes.get_mut(channel) else { return false };
        subs.retain(|deliver| deliver(payload));
        if subs.is_empty() {
            routes.remove(channel);
            true
        } else {
            false
        }
    }

    /// Channels whose subscribers have all gone (forgotten here).
    pub(crate) fn sweep(&self) -> Vec<String> {
        let mut routes = self.routes();
        let gone: Vec<String> = routes
            .iter_mut()
            .filter_map(|(ch, subs)| {
                subs.retain(|deliver| deliver(&[]));
                subs.is_empty().then(|| ch.clone())
            })
            .collect();
        for ch in &gone {
            routes.remove(ch);
        }
        gone
    }
}
