//! How a gateway stops without losing a game: the drain.
//!
//! In a rolling update the gateway gets SIGTERM while endpoints may still
//! route players to it. So it first only says so (`/readyz` answers 503)
//! and keeps serving everything for the drain delay, until the endpoints
//! have dropped it. Then it stops accepting and closes its clients with
//! 1012 (service restart) in batches spread evenly over the close window:
//! the clients of one gateway do not all come back to the others at the
//! same instant. Each closed player's session is saved and its room told
//! `Disconnect` (its snake parks), so it resumes on another gateway. The
//! last connections then get the grace period, and the gateway exits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use snakepit_bus::ConnId;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::signals::Signals;
use tracing::info;

/// Pacing finer than this gains nothing: batches are at least this far apart.
const MIN_STEP: Duration = Duration::from_millis(10);

/// The phases of a gateway's stop; total at most their sum.
#[derive(Clone, Copy, Debug)]
pub struct DrainConfig {
    /// Serving on, while `/readyz` answers 503, before anything closes.
    pub delay: Duration,
    /// Window over which the clients are closed, in paced batches.
    pub close_window: Duration,
    /// Then: how long the last connections get to finish.
    pub grace: Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self { delay: Duration::ZERO, close_window: Duration::from_secs(1), grace: Duration::from_secs(5) }
    }
}

/// The client connections open on this gateway, each with the signals
/// that close it for a restart.
#[derive(Default)]
pub struct Clients {
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    by_conn: HashMap<ConnId, Arc<Signals>>,
    /// The drain has taken its list: a connection added later restarts at
    /// once.
    closing: bool,
}

impl Clients {
    fn open(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, conn: ConnId, signals: Arc<Signals>) {
        let mut open = self.open();
        if open.closing {
            signals.restart();
        }
        open.by_conn.insert(conn, signals);
    }

    pub fn remove(&self, conn: ConnId) {
        self.open().by_conn.remove(&conn);
    }

    /// Every connection open now; from now on, new ones restart at once.
    fn close_all(&self) -> Vec<Arc<Signals>> {
        let mut open = self.open();
        open.closing = true;
        open.by_conn.values().cloned().collect()
    }
}

/// The drain, from the shutdown signal until the clients are closed:
/// `draining` (readiness) at once, `stop_accepting` after the delay, then
/// the paced closing, then `closed` (which ends whatever is left).
pub async fn drain(
    shutdown: &CancellationToken,
    config: DrainConfig,
    clients: &Clients,
    draining: &CancellationToken,
    stop_accepting: &CancellationToken,
    closed: &CancellationToken,
) {
    shutdown.cancelled().await;
    draining.cancel();
    info!(delay = ?config.delay, "draining: not ready, still serving");
    tokio::time::sleep(config.delay).await;
    stop_accepting.cancel();
    let open = clients.close_all();
    info!(clients = open.len(), window = ?config.close_window, "closing clients for a restart");
    close_paced(open, config.close_window).await;
    closed.cancel();
}

/// Restarts the connections of `tokens` in batches spread evenly over `window`: the first batch
/// at once, the last one a batch's step before the window ends.
pub async fn close_paced(tokens: Vec<Arc<Signals>>, window: Duration) {
    let n = tokens.len();
    if n == 0 {
        return;
    }
    let steps = (window.as_nanos() / MIN_STEP.as_nanos()).max(1);
    let batches = n.min(usize::try_from(steps).unwrap_or(usize::MAX));
    let start = Instant::now();
    for b in 0..batches {
        let at = start + window.mul_f64(b as f64 / batches as f64);
        sleep_until(at).await;
        for token in &tokens[b * n / batches..(b + 1) * n / batches] {
            token.restart();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Ten tokens over a second: ten batches, 100 ms apart, each closed
    /// once, in order, none early.
    #[tokio::test(start_paused = true)]
    async fn batches_are_spread_evenly_over_the_window() {
        let tokens: Vec<Arc<Signals>> = (0..10).map(|_| Arc::default()).collect();
        let start = Instant::now();
        let task = tokio::spawn(close_paced(tokens.clone(), Duration::from_secs(1)));
        let mut closed_at = Vec::new();
        for t in &tokens {
            std::future::poll_fn(|cx| t.poll_stop(cx)).await;
            closed_at.push(start.elapsed());
        }
        task.await.unwrap();
        let want: Vec<Duration> = (0..10).map(|i| Duration::from_millis(100 * i)).collect();
        assert_eq!(closed_at, want);
    }

    /// More clients than steps: batches of several, still over the window.
    #[tokio::test(start_paused = true)]
    async fn many_clients_share_batches() {
        let tokens: Vec<Arc<Signals>> = (0..1000).map(|_| Arc::default()).collect();
        let start = Instant::now();
        close_paced(tokens.clone(), Duration::from_millis(100)).await;
        assert!(tokens.iter().all(|t| t.is_restarting()));
        assert_eq!(start.elapsed(), Duration::from_millis(90));
    }
}
