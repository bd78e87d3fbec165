//! What a room is told from outside: what it runs on, its settings and
//! timings (`RoomConfig`, plain data of the game crate), how it is asked to
//! stop, and why it stopped. Kept apart from the actor so that the host and
//! the tests see the room's contract without its insides.

use snakepit_bus::Lease;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::TickGrid;
use crate::gateways::Gateways;
use crate::metrics::WorkerMetrics;
use crate::publisher::Publisher;
pub use snakepit_game::RoomConfig;

/// What a room runs on, from the worker that opens it.
pub struct RoomDeps<B> {
    pub backend: B,
    pub config: RoomConfig,
    /// The room's lease: the host renews it, and after Redis lost its data
    /// it may take it again with a higher epoch.
    pub lease: watch::Receiver<Lease>,
    pub metrics: WorkerMetrics,
    /// The worker's publisher, shared by its rooms.
    pub publisher: Publisher,
    /// The gateways the worker's rooms use, and those found gone.
    pub gateways: Gateways,
    /// The worker's grid of ticks, shared by its rooms.
    pub ticks: TickGrid,
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
