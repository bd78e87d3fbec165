//! What a room is configured with: the game's settings, and the rules of
//! the room around its game (how long a disconnected snake waits, when an
//! empty room retires, how often it snapshots and confirms its seats).
//! Plain data: the binaries fill it from their flags, tests from literals.

use std::time::Duration;

use crate::settings::GameSettings;

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
    /// Snapshots with the grid's cells packed into one byte string (much
    /// cheaper to write); off, cell by cell, as every release before reads
    /// them. Readers take both. See `docs/deploy.md` on rolling this out.
    pub packed_snapshots: bool,
}
