//! Noticing that the store lost its data, so that the sessions are saved
//! again.
//!
//! A session (resume token to player and room) is written when a player
//! joins or changes room, and lives only in the store. A Redis that
//! restarts with no data (a dev or local one, run without persistence)
//! loses every session; a player whose gateway died after that could not
//! resume and would lose its snake, although its connection had been
//! fine all along. So the gateway polls the store's generation (see
//! [`Store::generation`]) about once a second, and when it changes (not
//! at the first read: that is where the gateway starts from) every live
//! connection writes its session again (it watches [`StoreResets`]).
//!
//! A standalone gateway watches too: its in-memory store never loses its
//! data, so the generation never changes.

use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounter;
use snakepit_bus::Store;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How often the store's generation is read.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// How many times the store was found to have lost its data: connections
/// watch it (see [`StoreResets::subscribe`]).
#[derive(Debug)]
pub struct StoreResets {
    tx: watch::Sender<u64>,
}

impl Default for StoreResets {
    fn default() -> Self {
        Self { tx: watch::Sender::new(0) }
    }
}

impl StoreResets {
    /// Changes at each loss of the store's data found from now on.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// The store lost its data: every subscriber hears of it.
    fn reset(&self) {
        self.tx.send_modify(|n| *n += 1);
    }
}

/// Reads the store's generation every `every` until `stop`; a change
/// after the first successful read is counted in `counted` and told to
/// `resets`. A failed read (Redis away) is retried at the next poll.
pub async fn poll_generation<S: Store>(
    store: S,
    every: Duration,
    resets: Arc<StoreResets>,
    counted: IntCounter,
    stop: CancellationToken,
) {
    let mut polls = tokio::time::interval(every);
    polls.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut known: Option<u64> = None;
    loop {
        let read = tokio::select! {
            _ = stop.cancelled() => break,
            read = async {
                polls.tick().await;
                store.generation().await
            } => read,
        };
        let generation = match read {
            Ok(g) => g,
            Err(e) => {
                debug!(error = %e, "cannot read the store's generation; trying again");
                continue;
            }
        };
        if let Some(old) = known.replace(generation)
            && old != generation
        {
            warn!(old, new = generation, "the store lost its data (Redis restarted empty?): saving the sessions again");
            counted.inc();
            resets.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use snakepit_bus::MemoryBackend;

    use super::*;

    /// Only a change counts: not the first read, not a steady generation,
    /// and once per loss.
    #[tokio::test(start_paused = true)]
    async fn a_change_of_generation_is_told_once_and_counted() {
        let store = MemoryBackend::new();
        let resets = Arc::new(StoreResets::default());
        let mut heard = resets.subscribe();
        let counted = IntCounter::new("resets", "resets").unwrap();
        let stop = CancellationToken::new();
        let every = Duration::from_secs(1);
        let task = tokio::spawn(poll_generation(store.clone(), every, resets.clone(), counted.clone(), stop.clone()));
        tokio::time::sleep(every * 5).await;
        assert!(!heard.has_changed().unwrap(), "told with no loss");
        assert_eq!(counted.get(), 0);

        store.lose_data();
        tokio::time::sleep(every * 5).await;
        assert!(heard.has_changed().unwrap(), "a loss not told");
        heard.borrow_and_update();
        assert_eq!(counted.get(), 1);
        tokio::time::sleep(every * 5).await;
        assert!(!heard.has_changed().unwrap(), "one loss told twice");
        assert_eq!(counted.get(), 1);

        stop.cancel();
        task.await.unwrap();
    }
}
