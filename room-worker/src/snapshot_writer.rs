//! One snapshot writer per worker: rooms hand it their snapshots without
//! waiting, and it writes whatever has gathered in one call per part of the
//! store (one script call on Redis; one per slot on a Redis Cluster, so
//! that a shard that does not answer holds up only its own rooms). A
//! worker's rooms tick together on its grid, so the snapshots of a tick go
//! out together. Written by each room's own task, a full room's snapshots
//! (about six a second: every score, birth and death is written at once)
//! were a task, a round trip and a wake-up of the room each.
//!
//! A room learns what became of its snapshot from a oneshot, which a
//! running room looks at once per tick. A room that gave up on its
//! snapshot (dropped the receiver: its lease is lost, or its hand-over
//! stopped waiting) has it left out if it is still queued; one already
//! sent cannot be called back, and is fenced in the store (by the lease,
//! and by its place among the lease's snapshots: it never lands over a
//! later one).
//!
//! No cap on writes under way: a room has one snapshot under way at a
//! time, so they are bounded by the worker's rooms.

use std::collections::HashMap;

use snakepit_bus::{Ownership, SnapshotSave, SnapshotWrite};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

use crate::supervise::{Helper, helper};

/// Snapshots waiting, across all rooms of a worker.
const QUEUE: usize = 8192;
/// Snapshots taken from the queue at once: a single Redis runs each part's
/// as one script, which holds up its other clients while it runs: a batch
/// is kept to a few dozen rooms' snapshots.
const BATCH: usize = 64;

/// What became of a snapshot: `None` if it was not written (the store did
/// not answer, or the queue was full); the room saves again later.
pub type Written = Option<SnapshotWrite>;

struct Job {
    save: SnapshotSave,
    reply: oneshot::Sender<Written>,
}

#[derive(Clone)]
pub struct SnapshotWriter {
    tx: mpsc::Sender<Job>,
}

impl SnapshotWriter {
    /// Starts the writing task; it ends when every `SnapshotWriter` is
    /// gone and the writes under way are answered.
    pub fn spawn<B: Ownership>(backend: B) -> (Self, Helper) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = helper("snapshot writer", run(backend, rx));
        (Self { tx }, task)
    }

    /// Queues a snapshot; never waits. What became of it comes on the
    /// receiver (at once, not written, if the queue is full).
    pub fn save(&self, save: SnapshotSave) -> oneshot::Receiver<Written> {
        let (reply, written) = oneshot::channel();
        match self.tx.try_send(Job { save, reply }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(job)) => {
                warn!(room = %job.save.lease.room, "snapshot not saved: the writer is behind");
                let _ = job.reply.send(None);
            }
            Err(mpsc::error::TrySendError::Closed(job)) => {
                error!(room = %job.save.lease.room, "snapshot not saved: the writer has stopped");
                let _ = job.reply.send(None);
            }
        }
        written
    }
}

async fn run<B: Ownership>(backend: B, mut rx: mpsc::Receiver<Job>) {
    snakepit_bus::batches::serve(&mut rx, BATCH, None, |batch| {
        // By part of the store; a room that gave up on its snapshot wants
        // it left unwritten.
        let mut parts: HashMap<u16, Vec<Job>> = HashMap::new();
        for job in batch.drain(..).filter(|job| !job.reply.is_closed()) {
            parts.entry(backend.snapshot_part(&job.save.lease.room)).or_default().push(job);
        }
        parts.into_values().map(|jobs| write(backend.clone(), jobs)).collect()
    })
    .await;
}

/// Writes one part's batch and tells each room what became of its
/// snapshot.
async fn write<B: Ownership>(backend: B, jobs: Vec<Job>) {
    let (writes, replies): (Vec<_>, Vec<_>) = jobs.into_iter().map(|j| (j.save, j.reply)).unzip();
    match backend.save_snapshots(&writes).await {
        Ok(written) => {
            let unanswered = written.iter().filter(|w| w.is_none()).count();
            if unanswered > 0 {
                warn!(snapshots = unanswered, "snapshots not saved: the store did not write them");
            }
            for (reply, w) in replies.into_iter().zip(written) {
                let _ = reply.send(w);
            }
        }
        Err(e) => {
            warn!(error = %e, snapshots = writes.len(), "snapshots not saved");
            for reply in replies {
                let _ = reply.send(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use bytes::Bytes;
    use snakepit_bus::{Lease, MemoryBackend, RoomId};

    use super::*;

    fn save(lease: &Lease, data: &'static [u8]) -> SnapshotSave {
        SnapshotSave { lease: lease.clone(), seq: 1, data: Bytes::from_static(data) }
    }

    async fn lease(backend: &MemoryBackend, name: &str) -> Lease {
        let room = RoomId::parse(name).unwrap();
        backend.acquire_lease(&room, "w", Duration::from_secs(60), 0).await.unwrap().expect("free lease")
    }

    /// Rooms' snapshots queued together are written, each answered; one
    /// whose room gave up on it before the writer took it (its lease lost,
    /// or its hand-over done waiting) is left out.
    #[tokio::test]
    async fn queued_snapshots_are_written_unless_given_up() {
        let backend = MemoryBackend::new();
        let (kept, dropped) = (lease(&backend, "kept").await, lease(&backend, "dropped").await);
        // The writer's task has not run yet (one thread): both are queued.
        let (writer, _task) = SnapshotWriter::spawn(backend.clone());
        let written = writer.save(save(&kept, b"kept"));
        drop(writer.save(save(&dropped, b"dropped")));
        assert_eq!(written.await.unwrap(), Some(SnapshotWrite::Saved));
        assert_eq!(backend.load_snapshot(&kept.room).await.unwrap(), Some((kept.epoch, Bytes::from_static(b"kept"))));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(backend.load_snapshot(&dropped.room).await.unwrap(), None, "a snapshot given up was written");
        // A lease another holds: refused, and said so.
        backend.release_lease(&kept).await.unwrap();
        let other = backend.acquire_lease(&kept.room, "w2", Duration::from_secs(60), 0).await.unwrap().unwrap();
        assert!(other.epoch > kept.epoch);
        let refused = writer.save(save(&kept, b"stale")).await.unwrap();
        assert_eq!(refused, Some(SnapshotWrite::Lost));
    }
}
