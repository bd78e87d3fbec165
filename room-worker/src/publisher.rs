//! One publisher per worker: rooms hand it their frames without waiting,
//! and it sends whatever has gathered as one batch (one pipeline, one round
//! trip on Redis; one per slot on a Redis Cluster), several batches under
//! way at once. A room's tick never waits on the bus; if the bus falls
//! behind, frames are dropped and counted, and gateways resynchronise the
//! members that saw a gap.

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use snakepit_bus::{Bus, OutFrame, RoomId};
use tokio::sync::mpsc;
use tracing::warn;

use crate::metrics::WorkerMetrics;
use crate::supervise::{Helper, helper};

/// Frames waiting for the bus, across all rooms of a worker.
const QUEUE: usize = 8192;
/// Frames in one batch at most.
const BATCH: usize = 1024;
/// Batches under way at once: one shard of a Redis Cluster that answers
/// nobody (frozen, until its replica takes over) holds up its own batches
/// for seconds, not the frames of every other shard.
const IN_FLIGHT: usize = 64;

#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<(RoomId, OutFrame)>,
    metrics: WorkerMetrics,
}

impl Publisher {
    /// Starts the publishing task; it ends when every `Publisher` is gone.
    pub fn spawn<B: Bus>(bus: B, metrics: WorkerMetrics) -> (Self, Helper) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = helper("publisher", run(bus, rx, metrics.clone()));
        (Self { tx, metrics }, task)
    }

    /// Queues a frame; never waits.
    pub fn publish(&self, room: &RoomId, frame: OutFrame) {
        if self.tx.try_send((room.clone(), frame)).is_err() {
            self.metrics.publish_errors.inc();
        }
    }
}

async fn run<B: Bus>(bus: B, mut rx: mpsc::Receiver<(RoomId, OutFrame)>, metrics: WorkerMetrics) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut inflight = FuturesUnordered::new();
    loop {
        tokio::select! {
            // Polled first: a batch just queued is sent (its requests
            // written, in order) before the next one is taken.
            biased;
            Some((n, started, sent)) = inflight.next(), if !inflight.is_empty() => {
                account(&metrics, n, started, sent);
            }
            got = rx.recv_many(&mut batch, BATCH), if inflight.len() < IN_FLIGHT => {
                if got == 0 {
                    break;
                }
                let (bus, frames) = (bus.clone(), std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
                inflight.push(async move {
                    let (n, started) = (frames.len() as u64, std::time::Instant::now());
                    (n, started, bus.publish_outputs(frames).await)
                });
            }
        }
    }
    while let Some((n, started, sent)) = inflight.next().await {
        account(&metrics, n, started, sent);
    }
}

fn account(metrics: &WorkerMetrics, n: u64, started: std::time::Instant, sent: Result<(), snakepit_bus::BusError>) {
    match sent {
        Ok(()) => {
            metrics.frames_published.inc_by(n);
            metrics.publish_latency.observe(started.elapsed().as_secs_f64());
        }
        Err(e) => {
            metrics.publish_errors.inc_by(n);
            warn!(error = %e, frames = n, "publishing failed");
        }
    }
}
