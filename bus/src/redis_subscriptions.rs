//! The subscription side of the Redis backend: one RESP3 connection (a
//! `ConnectionManager` that reconnects and resubscribes by itself) carries
//! every channel this process listens to, and a router task hands each
//! message to the local subscribers of its channel.
//!
//! SUBSCRIBE and UNSUBSCRIBE reach the server in the order the local
//! subscribers came and went; a channel whose subscribers all left is
//! unsubscribed. A ping every second makes the manager notice a lost
//! connection even when nothing is sent; losses and restorations are
//! counted (see [`redis_metrics`](crate::redis_metrics)).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus::IntCounter;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, PushInfo, PushKind, Value};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backend::{BusError, Subscription};
use crate::redis_metrics::Link;

/// Messages a local subscriber may fall behind by before it loses some.
const SUBSCRIBER_QUEUE: usize = 1024;

type Route = Box<dyn Fn(&[u8]) -> bool + Send>;

struct Router {
    routes: Mutex<HashMap<String, Vec<Route>>>,
    /// Held across each SUBSCRIBE and UNSUBSCRIBE with the routes check
    /// before it, so the server sees them in the order the routes changed:
    /// an UNSUBSCRIBE of a channel that just lost its last subscriber can
    /// never land after the SUBSCRIBE of its next one.
    control: tokio::sync::Mutex<()>,
}

impl Router {
    fn routes(&self) -> MutexGuard<'_, HashMap<String, Vec<Route>>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands a message to the channel's subscribers; drops closed ones.
    /// Returns true if the channel has no subscriber left.
    fn dispatch(&self, channel: &str, payload: &[u8]) -> bool {
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

    /// Channels whose subscribers have all gone.
    fn sweep(&self) -> Vec<String> {
        let mut routes = self.routes();
        let gone: Vec<String> = routes
            .iter_mut()
            .filter_map(|(ch, subs)| {
                // An empty payload is never delivered: it only probes.
                subs.retain(|deliver| deliver(&[]));
                subs.is_empty().then(|| ch.clone())
            })
            .collect();
        for ch in &gone {
            routes.remove(ch);
        }
        gone
    }

    /// Unsubscribes from `channel` unless it has subscribers again.
    async fn unsubscribe_unused(&self, sub: &ConnectionManager, channel: &str) {
        let _order = self.control.lock().await;
        if self.routes().contains_key(channel) {
            return;
        }
        if let Err(e) = sub.clone().unsubscribe(channel).await {
            debug!(channel, error = %e, "unsubscribe failed");
        }
    }
}

/// The subscription connection and the local subscribers of its channels.
#[derive(Clone)]
pub(crate) struct Subscriptions {
    sub: ConnectionManager,
    router: Arc<Router>,
    /// Times the connection was lost (see `Ownership::link_losses`).
    losses: Arc<AtomicU64>,
}

impl Subscriptions {
    /// Routes the pushes of `sub` (a manager made with `push`'s sender and
    /// automatic resubscription) until `stop` is cancelled.
    pub(crate) fn start(
        sub: ConnectionManager,
        push: mpsc::UnboundedReceiver<PushInfo>,
        link: Link,
        resubscribes: Option<IntCounter>,
        stop: CancellationToken,
    ) -> Self {
        let router = Arc::new(Router { routes: Mutex::new(HashMap::new()), control: Default::default() });
        let losses = Arc::new(AtomicU64::new(0));
        let lost = Lost { link, losses: losses.clone() };
        tokio::spawn(route_messages(push, router.clone(), sub.clone(), lost, resubscribes, stop));
        Self { sub, router, losses }
    }

    /// Times the subscription connection was lost so far.
    pub(crate) fn losses(&self) -> u64 {
        self.losses.load(Ordering::Relaxed)
    }

    pub(crate) async fn subscribe<T: DeserializeOwned + Send + 'static>(
        &self,
        channel: String,
    ) -> Result<Subscription<T>, BusError> {
        let (tx, rx) = mpsc::channel::<T>(SUBSCRIBER_QUEUE);
        let deliver: Route = Box::new(move |payload: &[u8]| {
            if tx.is_closed() {
                return false;
            }
            if payload.is_empty() {
                return true;
            }
            match rmp_serde::from_slice::<T>(payload) {
                // A full queue loses the message, as an overflowing Redis
                // client would; the subscriber stays.
                Ok(msg) => !matches!(tx.try_send(msg), Err(mpsc::error::TrySendError::Closed(_))),
                Err(e) => {
                    warn!(error = %e, "malformed message on the bus");
                    true
                }
            }
        });
        let _order = self.router.control.lock().await;
        let first = {
            let mut routes = self.router.routes();
            let subs = routes.entry(channel.clone()).or_default();
            subs.push(deliver);
            subs.len() == 1
        };
        if first && let Err(e) = self.sub.clone().subscribe(&channel).await {
            self.router.routes().remove(&channel);
            return Err(e.into());
        }
        Ok(Subscription::new(rx))
    }
}

/// Hands each message to its subscribers, pings the subscription
/// connection every second, and counts its losses (`link`) and the
/// restorations of its subscriptions (`resubscribes`).
/// The connection's losses: counted in the metrics and for
/// `Ownership::link_losses`.
struct Lost {
    link: Link,
    losses: Arc<AtomicU64>,
}

async fn route_messages(
    mut push: mpsc::UnboundedReceiver<PushInfo>,
    router: Arc<Router>,
    sub: ConnectionManager,
    mut lost: Lost,
    resubscribes: Option<IntCounter>,
    stop: CancellationToken,
) {
    let mut ping = tokio::time::interval(Duration::from_secs(1));
    // Lost with channels to restore: the manager resends them first thing
    // on its new connection, and the server confirms each.
    let mut restoring = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            msg = push.recv() => {
                let Some(msg) = msg else { break };
                match msg.kind {
                    PushKind::Message => {
                        let (Some(Value::BulkString(ch)), Some(Value::BulkString(payload))) = (msg.data.first(), msg.data.get(1)) else {
                            continue;
                        };
                        let ch = String::from_utf8_lossy(ch);
                        if router.dispatch(&ch, payload) {
                            let (router, sub, ch) = (router.clone(), sub.clone(), ch.into_owned());
                            tokio::spawn(async move { router.unsubscribe_unused(&sub, &ch).await });
                        }
                    }
                    PushKind::Disconnection => {
                        lost.losses.fetch_add(1, Ordering::Relaxed);
                        lost.link.lost();
                        restoring = !router.routes().is_empty();
                        let pinged = sub.clone().ping::<()>().await;
                        lost.link.pinged(&pinged);
                    }
                    PushKind::Subscribe if restoring => {
                        restoring = false;
                        if let Some(c) = &resubscribes {
                            c.inc();
                        }
                        info!("subscriptions restored on a new connection");
                    }
                    _ => {}
                }
            }
            _ = ping.tick() => {
                // A command is what makes the manager notice a dead link and
                // reconnect (then resubscribe).
                let pinged = sub.clone().ping::<()>().await;
                lost.link.pinged(&pinged);
                for ch in router.sweep() {
                    router.unsubscribe_unused(&sub, &ch).await;
                }
            }
        }
    }
}
