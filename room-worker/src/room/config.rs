//! What a room is told from outside: what it runs on, its settings and
//! timings (`RoomConfig`, plain data of the game crate), how it is asked to
//! stop, and why it stopped. Kept apart from the actor so that the host and
//! the tests see the room's contract without its insides.

use std::sync::Arc;

use snakepit_bus::Lease;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::TickGrid;
use crate::gateways::Gateways;
use crate::metrics::WorkerMetrics;
use crate::publisher::Publisher;
use crate::snapshot_writer::SnapshotWriter;
pub use snakepit_game::RoomConfig;

/// What every room of a worker shares: one copy behind an `Arc`, of which
/// each room keeps a pointer (its own copies were half a kilobyte a room,
/// and each background write cloned the store's handle).
pub struct RoomEnv<B> {
    pub backend: B,
    pub config: RoomConfig,
    pub metrics: WorkerMetrics,
    /// The worker's publisher.
    pub publisher: Publisher,
    /// The worker's snapshot writer.
    pub snapshots: SnapshotWriter,
    /// The gateways the worker's rooms use, and those found gone.
    pub gateways: Gateways,
    /// The worker's grid of ticks.
    pub ticks: TickGrid,
}

/// What a room runs on, from the worker that opens it.
pub struct RoomDeps<B> {
    pub env: Arc<RoomEnv<B>>,
    /// The room's lease: the host renews it, and after Redis lost its data
    /// it may take it again with a higher epoch.
    pub lease: watch::Receiver<Lease>,
}

/// Why a room stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomExit {
    /// Empty for long enough and removed from the directory.
    Retired,
    /// The worker is stopping: a final snapshot was written.
    HandedOver,
    /// Another worker holds the lease now (or a newer epoch wrote a
    /// snapshot): the room stopped at once.
    LeaseLost,
    /// The input subscription ended.
    Closed,
}

/// How a room is told to stop.
#[derive(Clone, Debug, Default)]
pub struct RoomControl {
    /// Hand over: final snapshot, then stop.
    pub shutdown: CancellationToken,
    /// Lease lost: stop without writing anything.
    pub lost: CancellationToken,
}
