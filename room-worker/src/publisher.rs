//! One publisher per worker: rooms hand it their frames without waiting,
//! and it sends whatever has gathered as one batch (one pipeline, one round
//! trip on Redis). A room's tick never waits on the bus; if the bus falls
//! behind, frames are dropped and counted, and gateways resynchronise the
//! members that saw a gap.

use snakepit_bus::{Bus, OutFrame, RoomId};
use tokio::sync::mpsc;
use tracing::warn;

use crate::metrics::WorkerMetrics;

/// Frames waiting for the bus, across all rooms of a worker.
const QUEUE: usize = 8192;
/// Frames in one batch at most.
const BATCH: usize = 1024;

#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<(RoomId, OutFrame)>,
    metrics: WorkerMetrics,
}

impl Publisher {
    /// Starts the publishing task; it ends when every `Publisher` is gone.
    pub fn spawn<B: Bus>(bus: B, metrics: WorkerMetrics) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(bus, rx, metrics.clone()));
        Self { tx, metrics }
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
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let n = batch.len() as u64;
        let started = std::time::Instant::now();
        match bus.publish_outputs(std::mem::take(&mut batch)).await {
            Ok(()) => {
                metrics.frames_published.inc_by(n);
                metrics.publish_latency.observe(started.elapsed().as_secs_f64());
            }
            Err(e) => {
                metrics.publish_errors.inc_by(n);
                warn!(error = %e, frames = n, "publishing failed");
            }
        }
        batch = Vec::with_capacity(BATCH);
    }
}
