//! The bus and store interface between gateways and room workers.
//!
//! Two implementations give the same semantics: [`crate::MemoryBackend`] for
//! the standalone mode and the Redis one for a cluster. Pub/sub is
//! fire-and-forget as in Redis: a message published while nobody subscribes
//! is gone, and a subscriber that falls behind loses messages rather than
//! slowing the publisher. Keys expire by TTL.

use std::future::Future;
use std::time::Duration;

use crate::queue;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use snakepit_protocol::listing::{RoomInfo, ScoreEntry};
use snakepit_protocol::{PlayerId, RoomId};

use crate::envelope::{Notice, OutFrame, RoomInput};
use crate::handler::Handler;

/// Failures of the backend itself: never the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    #[error("malformed message on the bus: {0}")]
    Codec(String),
}

/// The outcome of asking the directory for a seat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seat {
    /// A seat is held in this room; `created` if the room is new.
    Taken { room: RoomId, created: bool },
    /// The named room has no free seat.
    Full,
}

/// What a resume token stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub player: PlayerId,
    pub name: String,
    pub room: RoomId,
    /// The identity's key (see `InputKind::Enter`); 0 in an older session.
    #[serde(default)]
    pub key: u64,
}

/// Messages of one subscription. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription<T> {
    rx: queue::Receiver<T>,
}

impl<T> Subscription<T> {
    pub fn new(rx: queue::Receiver<T>) -> Self {
        Self { rx }
    }

    /// The next message; `None` once the backend has dropped the subscription.
    pub async fn recv(&mut self) -> Option<T> {
        self.rx.recv().await
    }

    /// A message if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        self.rx.try_recv()
    }

    /// Not woken by new messages until the next `recv` (see
    /// [`queue::Receiver::stop_waiting`]).
    pub fn stop_waiting(&mut self) {
        self.rx.stop_waiting();
    }
}

/// Pub/sub between gateways and rooms.
pub trait Bus: Clone + Send + Sync + 'static {
    /// Returns how many subscribers took the message: 0 means nobody
    /// listened (a process with several local subscribers may count once).
    fn publish_input(&self, room: &RoomId, input: RoomInput) -> impl Future<Output = Result<usize, BusError>> + Send;
    fn subscribe_input(&self, room: &RoomId) -> impl Future<Output = Result<Subscription<RoomInput>, BusError>> + Send;
    fn publish_output(&self, room: &RoomId, frame: OutFrame) -> impl Future<Output = Result<usize, BusError>> + Send;
    /// Publishes many rooms' frames at once (one round trip on Redis).
    fn publish_outputs(&self, frames: Vec<(RoomId, OutFrame)>) -> impl Future<Output = Result<(), BusError>> + Send;
    fn subscribe_output(&self, room: &RoomId) -> impl Future<Output = Result<Subscription<OutFrame>, BusError>> + Send;
    /// As `subscribe_output`, but each frame goes to `handler` where the
    /// bus delivers it, not through a queue (see [`crate::handler`]).
    fn subscribe_output_with(
        &self,
        room: &RoomId,
        handler: Handler<OutFrame>,
    ) -> impl Future<Output = Result<(), BusError>> + Send;
    fn publish_notice(&self, notice: Notice) -> impl Future<Output = Result<usize, BusError>> + Send;
    fn subscribe_notices(&self) -> impl Future<Output = Result<Subscription<Notice>, BusError>> + Send;
}

/// Shared state: the room directory, sessions and top scores.
///
/// A seat belongs to a player and expires: taking one holds it for a while
/// (the player is on its way to the room), and the room's owner keeps
/// holding the seats of the players it really has
/// ([`Store::confirm_seats`]). A seat whose player never arrived, or left
/// without a word (its gateway died, a release was lost), comes free when
/// its hold runs out: seat accounting converges to the rooms' real members.
pub trait Store: Clone + Send + Sync + 'static {
    /// Takes a seat for `player`: in `room` (created with `capacity` if it
    /// does not exist), or else in the fullest room with a free seat, or else
    /// in a new room, held for `hold`. A player who already has a seat in
    /// the named room keeps it (a resume is never told the room is full).
    /// Atomic: two callers never over-book a room.
    fn take_seat(
        &self,
        room: Option<&RoomId>,
        player: PlayerId,
        capacity: u16,
        hold: Duration,
    ) -> impl Future<Output = Result<Seat, BusError>> + Send;
    /// Frees `player`'s seat in `room`, if it has one.
    fn release_seat(&self, room: &RoomId, player: PlayerId) -> impl Future<Output = Result<(), BusError>> + Send;
    /// The room's owner vouches for its players: each one's seat is held
    /// (taken again if it had expired) for `hold` from now. Seats of others
    /// are left to expire. A room missing from the directory is left out.
    /// The person-id counter is raised to at least `highest_id`, the
    /// highest id among the room's members, spectators included (see
    /// [`Store::new_player_id`]), listed room or not.
    fn confirm_seats(
        &self,
        room: &RoomId,
        players: &[PlayerId],
        highest_id: PlayerId,
        hold: Duration,
    ) -> impl Future<Output = Result<(), BusError>> + Send;
    /// The first `limit` rooms of the directory, fullest first.
    fn rooms(&self, limit: usize) -> impl Future<Output = Result<Vec<RoomInfo>, BusError>> + Send;
    fn room(&self, room: &RoomId) -> impl Future<Output = Result<Option<RoomInfo>, BusError>> + Send;
    /// Puts a running room back in the directory if it is missing (after
    /// Redis lost its data), with no seat taken.
    fn ensure_room(&self, room: &RoomId, capacity: u16) -> impl Future<Output = Result<(), BusError>> + Send;
    /// Removes the room if no seat is taken; true if it was removed.
    fn retire_room_if_empty(&self, room: &RoomId) -> impl Future<Output = Result<bool, BusError>> + Send;

    fn put_session(
        &self,
        token: &str,
        session: &Session,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), BusError>> + Send;
    fn session(&self, token: &str) -> impl Future<Output = Result<Option<Session>, BusError>> + Send;

    /// Records a score if it is the best for that name.
    fn submit_score(&self, entry: ScoreEntry) -> impl Future<Output = Result<(), BusError>> + Send;
    /// The best `n` scores, best first (ties by name).
    fn top_scores(&self, n: usize) -> impl Future<Output = Result<Vec<ScoreEntry>, BusError>> + Send;

    /// A new person's id, from one counter: the cluster's (the process's,
    /// in memory), from 1 up, so that no two people share an id. A store
    /// that lost its data counts from 1 again, so [`Store::confirm_seats`]
    /// also raises the counter past the players it vouches for: once the
    /// rooms that still run have confirmed, no newcomer gets one of their
    /// members' ids.
    fn new_player_id(&self) -> impl Future<Output = Result<PlayerId, BusError>> + Send;

    /// The store's generation: one value for every caller for as long as
    /// the store keeps its data, and a new one once it has lost it (Redis
    /// restarted empty); the first caller after the loss picks it. What a
    /// process alone still holds a copy of (a connection's session, say)
    /// is written again when it sees the generation change.
    fn generation(&self) -> impl Future<Output = Result<u64, BusError>> + Send;

    /// Whether the backend answers (readiness).
    fn ping(&self) -> impl Future<Output = Result<(), BusError>> + Send;
}

/// A room's ownership, held by a worker under a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub room: RoomId,
    pub worker: String,
    /// The fencing token: every new lease of a room has a higher epoch than
    /// every earlier one, also after Redis lost its data (see
    /// [`Ownership::acquire_lease`]).
    pub epoch: u64,
}

/// One room's snapshot to write.
#[derive(Clone, Debug)]
pub struct SnapshotSave {
    /// The lease it is written under: fences every other owner.
    pub lease: Lease,
    /// Its place among the snapshots written under this lease: one whose
    /// place is not above the stored one's is outdated and not written.
    /// This fences the owner's own earlier writes, however late they land
    /// (sent before a reconnect, retried by a cluster client).
    pub seq: u64,
    pub data: Bytes,
}

/// What became of a snapshot write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotWrite {
    Saved,
    /// A later snapshot of the same lease is stored: nothing written, and
    /// nothing to do.
    Outdated,
    /// Nobody holds the lease (it expired while Redis was away, or Redis
    /// lost its data): nothing written; the owner should take the lease
    /// again, and go on.
    Missing,
    /// Another worker holds the room, or a newer epoch has written: nothing
    /// written, and the writer must stop (fencing).
    Lost,
}

/// What a renewal found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Still ours, renewed.
    Held,
    /// Another worker holds it now.
    Lost,
    /// Nobody holds it (it expired, or Redis lost its data).
    Missing,
    /// The store could not say (the lease's shard of a Redis Cluster did
    /// not answer): ask again next round.
    Unknown,
}

/// Which worker runs which room: heartbeats, leases with epochs, and
/// snapshots fenced by the epoch.
pub trait Ownership: Clone + Send + Sync + 'static {
    /// Announces (or keeps announcing) a live worker.
    fn heartbeat(&self, worker: &str, ttl: Duration) -> impl Future<Output = Result<(), BusError>> + Send;
    /// Withdraws a worker (it is stopping).
    fn withdraw(&self, worker: &str) -> impl Future<Output = Result<(), BusError>> + Send;
    /// Workers whose heartbeat has not expired, sorted.
    fn live_workers(&self) -> impl Future<Output = Result<Vec<String>, BusError>> + Send;
    /// Takes the room's lease if nobody holds it (`SET NX PX`), with an
    /// epoch above `min_epoch` and above every earlier lease of the room:
    /// epochs grow with the store's clock (milliseconds) as well as with a
    /// counter, so they stay unique when the counter is lost.
    fn acquire_lease(
        &self,
        room: &RoomId,
        worker: &str,
        ttl: Duration,
        min_epoch: u64,
    ) -> impl Future<Output = Result<Option<Lease>, BusError>> + Send;
    /// Renews leases still held; for each, what became of it.
    fn renew_leases(
        &self,
        leases: &[Lease],
        ttl: Duration,
    ) -> impl Future<Output = Result<Vec<LeaseState>, BusError>> + Send;
    fn release_lease(&self, lease: &Lease) -> impl Future<Output = Result<(), BusError>> + Send;
    /// Stores a snapshot if its lease is still the room's lease, no newer
    /// epoch has written, and no later snapshot of its own lease.
    fn save_snapshot(&self, save: SnapshotSave) -> impl Future<Output = Result<SnapshotWrite, BusError>> + Send;
    /// Which part of the store holds the room's snapshot (its slot on a
    /// Redis Cluster; one part otherwise). A batch of snapshots is answered
    /// once every part has answered: a writer that must not let one part's
    /// stall hold up the others batches them by part.
    fn snapshot_part(&self, _room: &RoomId) -> u16 {
        0
    }
    /// Stores several rooms' snapshots, each as [`Ownership::save_snapshot`]
    /// would, in one round trip (one per slot on a Redis Cluster): what
    /// became of each, `None` where the store did not answer (its shard is
    /// away). An error if it answered for none.
    fn save_snapshots(
        &self,
        writes: &[SnapshotSave],
    ) -> impl Future<Output = Result<Vec<Option<SnapshotWrite>>, BusError>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(writes.len());
            let mut failed = None;
            for save in writes {
                match self.save_snapshot(save.clone()).await {
                    Ok(saved) => outcomes.push(Some(saved)),
                    Err(e) => {
                        outcomes.push(None);
                        failed = Some(e);
                    }
                }
            }
            match failed {
                Some(e) if outcomes.iter().all(Option::is_none) => Err(e),
                _ => Ok(outcomes),
            }
        }
    }
    /// The room's last snapshot and the epoch that wrote it.
    fn load_snapshot(&self, room: &RoomId) -> impl Future<Output = Result<Option<(u64, Bytes)>, BusError>> + Send;
    /// The room retired: deletes its snapshot and lease (its epoch counter
    /// expires soon after), but only while `lease` is still held (a stale
    /// owner deletes nothing); true if they were deleted.
    fn drop_room(&self, lease: &Lease) -> impl Future<Output = Result<bool, BusError>> + Send;
    /// For each room, the worker whose lease on it has not expired, if any:
    /// one round trip however many rooms (a host skips rooms another worker
    /// holds without trying to acquire each).
    fn lease_holders(&self, rooms: &[RoomId]) -> impl Future<Output = Result<Vec<Option<String>>, BusError>> + Send;
    /// Keeps `worker` present for as long as the returned subscription
    /// lives. A process that dies is absent at once (the store sees its
    /// connections close), while one that is only slow or paused stays
    /// present, and its leases decide as before.
    fn be_present(&self, worker: &str) -> impl Future<Output = Result<Subscription<Notice>, BusError>> + Send;
    /// For each worker, whether it is present, in the order asked.
    fn present(&self, workers: &[String]) -> impl Future<Output = Result<Vec<bool>, BusError>> + Send;
    /// How many times this process's own subscription link has been lost
    /// so far. A change means the store (or the way to it) blipped: every
    /// process resubscribes in its own time, so for a while an absence
    /// proves nothing. A link that never breaks: always 0.
    fn link_losses(&self) -> u64 {
        0
    }
    /// Lets go of the leases `worker` still holds on `rooms` (it is gone):
    /// each is deleted if it is that worker's; how many were.
    fn break_leases(&self, worker: &str, rooms: &[RoomId]) -> impl Future<Output = Result<usize, BusError>> + Send;
}

/// What a gateway or a worker needs: all of it.
pub trait Backend: Bus + Store + Ownership {}
impl<T: Bus + Store + Ownership> Backend for T {}
