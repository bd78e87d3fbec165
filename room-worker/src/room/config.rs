//! What a room is told from outside: what it runs on, its settings and
//! timings, how it is asked to stop, and why it stopped. Kept apart from the actor so that the
//! host, the settings parser and the tests see the room's contract without
//! its insides.

use std::time::Duration;

use snakepit_shared::Lease;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::WorkerMetrics;
use crate::publisher::Publisher;
use crate::settings::GameSettings;

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
}

#[derive(Clone, Debug)]
pub struct RoomConfig {
    pub settings: GameSettings,
    /// How long a disconnected player's snake waits, parked, for its
    /// player to come back.
    pub grace: Duration,
    /// How long a room stays empty before it retires.
    pub empty_ttl: Duration,
    /// How often the room snapshots itself; `None` where no other worker
    /// could take over (standalone), which saves the encoding.
    pub snapshot_every: Option<Duration>,
    /// A member with no input and no presence from its gateway for this
    /// long counts as disconnected (its gateway died).
    pub presence_timeout: Duration,
    /// How long the room holds its players' seats in the directory each
    /// time it confirms them (every third of this): a seat whose player is
    /// gone comes free at most this long after the room let it go.
    pub seat_hold: Duration,
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
