//! The loop of a task that writes what others queue for it in batches: the
//! gateway's inputs to rooms, a worker's snapshots. It takes what has
//! gathered (and, with a linger, what comes within it), starts the writes
//! of that batch and goes on to the next without waiting for them: a write
//! that the store does not answer (a stalled server, or one stalled master
//! of a Redis Cluster) holds up only its own items. No cap on the writes
//! under way: what is under way is bounded by those who queue, each
//! waiting for its own item's outcome.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

/// Serves `rx` until every sender is gone and the writes under way are
/// done. Each batch holds at most `max` items, and waits up to `linger`
/// after its first for others to go with it; `write` empties the batch
/// into the writes to start (one per part of the store, say). `rx` is
/// borrowed: a caller that catches a panic serves it again.
pub async fn serve<T, F, W>(rx: &mut mpsc::Receiver<T>, max: usize, linger: Option<Duration>, mut write: W)
where
    W: FnMut(&mut Vec<T>) -> Vec<F>,
    F: Future<Output = ()>,
{
    let mut batch = Vec::with_capacity(max);
    let mut inflight = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            Some(()) = inflight.next(), if !inflight.is_empty() => {}
            got = rx.recv_many(&mut batch, max) => {
                if got == 0 {
                    break;
                }
                // What comes within the linger goes along; writes under
                // way are answered meanwhile.
                if let Some(linger) = linger {
                    let linger = sleep_until(Instant::now() + linger);
                    tokio::pin!(linger);
                    while batch.len() < max {
                        let room = max - batch.len();
                        tokio::select! {
                            biased;
                            Some(()) = inflight.next(), if !inflight.is_empty() => {}
                            got = rx.recv_many(&mut batch, room) => if got == 0 { break },
                            () = &mut linger => break,
                        }
                    }
                }
                inflight.extend(write(&mut batch));
                batch.clear();
            }
        }
    }
    while inflight.next().await.is_some() {}
}
