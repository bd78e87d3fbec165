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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus::IntCounter;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::backend::BusError;
use crate::pubsub_router::{FirstSubscribe, Route, Router};
use crate::redis_metrics::Link;

/// The local subscribers, and the order of SUBSCRIBE and UNSUBSCRIBE.
struct Control {
    router: Router,
    /// Held across each SUBSCRIBE and UNSUBSCRIBE with the routes check
    /// before it, so the server sees them in the order the routes changed:
    /// an UNSUBSCRIBE of a channel that just lost its last subscriber can
    /// never land after the SUBSCRIBE of its next one.
    order: tokio::sync::Mutex<()>,
}

impl Control {
    /// Unsubscribes from `channel` unless it has subscribers again.
    async fn unsubscribe_unused(&self, sub: &ConnectionManager, channel: &str) {
        let _order = self.order.lock().await;
        if self.router.has(channel) {
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
    control: Arc<Control>,
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
        let control = Arc::new(Control { router: Router::default(), order: Default::default() });
        let losses = Arc::new(AtomicU64::new(0));
        let lost = Lost { link, losses: losses.clone() };
        tokio::spawn(route_messages(push, control.clone(), sub.clone(), lost, resubscribes, stop));
        Self { sub, control, losses }
    }

    /// Times the subscription connection was lost so far.
    pub(crate) fn losses(&self) -> u64 {
        self.losses.load(Ordering::Relaxed)
    }

    /// Adds a subscriber of `channel`, subscribing it on Redis if it is the
    /// channel's first.
    pub(crate) async fn subscribe_route(&self, channel: String, deliver: Route) -> Result<(), BusError> {
        let _order = self.control.order.lock().await;
        if !self.control.router.add(&channel, deliver) {
            return Ok(());
        }
        let first = FirstSubscribe::new(&self.control.router, &channel);
        let subscribed = self.sub.clone().subscribe(&channel).await;
        first.settled();
        if let Err(e) = subscribed {
            self.control.router.remove(&channel);
            return Err(e.into());
        }
        Ok(())
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
    control: Arc<Control>,
    sub: ConnectionManager,
    mut lost: Lost,
    resubscribes: Option<IntCounter>,
    stop: CancellationToken,
) {
    let mut ping = tokio::time::interval(Duration::from_secs(1));
    // Lost with channels to restore: the manager resends them first thing
    // on its new connection, and the server confirms each.
    let mut restoring = false;
    // The ping in flight, polled beside the messages: a slow Redis delays
    // the ping, never the delivery of what arrives meanwhile.
    let mut pinging: Option<Pin<Box<dyn Future<Output = redis::RedisResult<()>> + Send>>> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            pinged = async {
                match &mut pinging {
                    Some(p) => p.await,
                    None => std::future::pending().await,
                }
            }, if pinging.is_some() => {
                pinging = None;
                lost.link.pinged(&pinged);
            }
            msg = push.recv() => {
                let Some(msg) = msg else { break };
                match msg.kind {
                    PushKind::Message => {
                        let (Some(Value::BulkString(ch)), Some(Value::BulkString(payload))) = (msg.data.first(), msg.data.get(1)) else {
                            continue;
                        };
                        let ch = String::from_utf8_lossy(ch);
                        if control.router.dispatch(&ch, payload) {
                            let (control, sub, ch) = (control.clone(), sub.clone(), ch.into_owned());
                            tokio::spawn(async move { control.unsubscribe_unused(&sub, &ch).await });
                        }
                    }
                    PushKind::Disconnection => {
                        lost.losses.fetch_add(1, Ordering::Relaxed);
                        lost.link.lost();
                        restoring = !control.router.is_empty();
                        if pinging.is_none() {
                            let mut sub = sub.clone();
                            pinging = Some(Box::pin(async move { sub.ping::<()>().await }));
                        }
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
                if pinging.is_none() {
                    let mut sub = sub.clone();
                    pinging = Some(Box::pin(async move { sub.ping::<()>().await }));
                }
                for ch in control.router.sweep() {
                    let (control, sub) = (control.clone(), sub.clone());
                    tokio::spawn(async move { control.unsubscribe_unused(&sub, &ch).await });
                }
            }
        }
    }
}
