//! What operators see of a process's Redis connections: whether Redis
//! answers (`snakepit_redis_up`), how often a connection was lost and made
//! again (`snakepit_redis_reconnects_total`) and how often the
//! subscriptions were restored on a new one
//! (`snakepit_pubsub_resubscribes_total`).
//!
//! The backend holds two `ConnectionManager`s (commands, subscriptions),
//! which reconnect by themselves and say nothing about it. What is counted:
//!
//! - A connection is *lost* when its manager reports a `Disconnection` (the
//!   link's stream ended: Redis went away, or the socket broke) or one of
//!   our pings fails with an error the manager reconnects on. It is *made
//!   again* when a ping next succeeds on it. Each loss counts one reconnect,
//!   once it is over: losses during an outage count once per connection,
//!   so one Redis restart counts 2 (commands and subscriptions) per process.
//! - A *resubscribe* is the server's first `subscribe` confirmation on a
//!   new subscription connection after a loss, when this process had
//!   channels to restore (the manager resends them before anything else).
//! - *Up* is the last ping's answer on the command connection: a ping
//!   every 2 s, and 0 at once when that connection is lost.

use std::time::Duration;

use prometheus::{IntCounter, IntGauge, Registry};
use redis::{AsyncCommands, PushInfo, PushKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How often the command connection is pinged for `snakepit_redis_up`.
pub const UP_PING_EVERY: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct RedisMetrics {
    pub reconnects: IntCounter,
    pub resubscribes: IntCounter,
    pub up: IntGauge,
}

impl RedisMetrics {
    /// The metrics, registered into `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self::unregistered()?;
        registry.register(Box::new(m.reconnects.clone()))?;
        registry.register(Box::new(m.resubscribes.clone()))?;
        registry.register(Box::new(m.up.clone()))?;
        Ok(m)
    }

    /// The metrics, in no registry (a backend nobody scrapes).
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        Ok(Self {
            reconnects: IntCounter::new(
                "snakepit_redis_reconnects_total",
                "Redis connections lost and made again (commands and subscriptions count apart)",
            )?,
            resubscribes: IntCounter::new(
                "snakepit_pubsub_resubscribes_total",
                "Times the pub/sub subscriptions were restored on a new Redis connection",
            )?,
            up: IntGauge::new("snakepit_redis_up", "1 if Redis answered the last ping (every 2 s), else 0")?,
        })
    }
}

/// One connection's losses and returns, as counted (see the module docs).
pub(crate) struct Link {
    name: &'static str,
    lost: bool,
    /// None: a backend nobody scrapes; the losses are still logged.
    reconnects: Option<IntCounter>,
}

impl Link {
    pub(crate) fn new(name: &'static str, metrics: Option<&RedisMetrics>) -> Self {
        Self { name, lost: false, reconnects: metrics.map(|m| m.reconnects.clone()) }
    }

    /// The manager reported the connection gone, or a command failed in a
    /// way it reconnects on.
    pub(crate) fn lost(&mut self) {
        if !self.lost {
            warn!(connection = self.name, "Redis connection lost; reconnecting");
        }
        self.lost = true;
    }

    /// A command succeeded: if the connection had been lost, it is back.
    pub(crate) fn answered(&mut self) {
        if std::mem::take(&mut self.lost) {
            if let Some(c) = &self.reconnects {
                c.inc();
            }
            info!(connection = self.name, "Redis connection back");
        }
    }

    /// Accounts for a ping's outcome.
    pub(crate) fn pinged(&mut self, result: &redis::RedisResult<()>) {
        match result {
            Ok(()) => self.answered(),
            Err(e) if e.is_unrecoverable_error() => self.lost(),
            Err(e) => debug!(connection = self.name, error = %e, "ping failed"),
        }
    }
}

/// Pings the command connection (as `cmd` gives it now: a cluster's is
/// renewed) every [`UP_PING_EVERY`] for `up`, and
/// counts its reconnects from the manager's pushes (`pushes`); ends when
/// `stop` is cancelled (the backend dropped, or the process stopping).
pub(crate) async fn watch_commands<C>(
    cmd: impl Fn() -> C + Send + 'static,
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    metrics: RedisMetrics,
    stop: CancellationToken,
) where
    C: redis::aio::ConnectionLike + Send + Sync + 'static,
{
    let mut link = Link::new("commands", Some(&metrics));
    let mut ping = tokio::time::interval(UP_PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pushing = true;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            // A connection with no pushes (a cluster's) is only pinged.
            push = pushes.recv(), if pushing => match push {
                Some(p) if p.kind == PushKind::Disconnection => {
                    link.lost();
                    metrics.up.set(0);
                }
                Some(_) => {}
                None => pushing = false,
            },
            _ = ping.tick() => {
                match tokio::time::timeout(UP_PING_EVERY, cmd().ping::<()>()).await {
                    Ok(result) => {
                        metrics.up.set(i64::from(result.is_ok()));
                        link.pinged(&result);
                    }
                    // Slow is not gone: down, but not a loss.
                    Err(_) => {
                        metrics.up.set(0);
                        debug!("Redis ping timed out");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_loss_counts_once_when_the_connection_is_back() {
        let m = RedisMetrics::unregistered().unwrap();
        let mut link = Link::new("test", Some(&m));
        link.answered();
        assert_eq!(m.reconnects.get(), 0, "never lost");
        link.lost();
        link.lost();
        assert_eq!(m.reconnects.get(), 0, "not back yet");
        link.answered();
        link.answered();
        assert_eq!(m.reconnects.get(), 1);
    }

    #[test]
    fn registers_once_per_registry() {
        let r = Registry::new();
        RedisMetrics::register(&r).unwrap();
        assert!(RedisMetrics::register(&r).is_err());
    }
}
