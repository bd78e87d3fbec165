//! A backend for tests that forwards every call to a real one after asking
//! a hook: a test adds latency, counts calls or fails one kind of call, with
//! the real semantics underneath (never a mock). Written once, so that no
//! test repeats the forwarding of the whole interface.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;

use crate::backend::{
    Bus, BusError, Lease, LeaseState, Ownership, RoomInfo, ScoreEntry, Seat, Session, SnapshotSave, SnapshotWrite,
    Store, Subscription,
};
use crate::envelope::{Notice, OutFrame, RoomInput};
use crate::handler::Handler;
use snakepit_protocol::ids::{PlayerId, RoomId};

/// The calls a hook may tell apart; the rest are `Other`.
#[derive(Debug)]
pub enum Call<'a> {
    PublishInput(&'a RoomInput),
    AcquireLease(&'a RoomId),
    SaveSnapshot(&'a Lease),
    SubmitScore(&'a ScoreEntry),
    RetireRoom(&'a RoomId),
    /// A read of the whole room directory.
    ListRooms,
    Other,
}

/// What a test does around the forwarded calls.
pub trait Hook: Clone + Send + Sync + 'static {
    /// Runs before each call; an error fails the call, which is then not
    /// forwarded.
    fn before(&self, call: Call<'_>) -> impl Future<Output = Result<(), BusError>> + Send;
    /// Runs after a snapshot write is done, before its answer is returned:
    /// a slow answer to a write already made (a request cannot be called
    /// back once sent).
    fn answered(&self, _lease: &Lease) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// What a renewal found, once it is done.
    fn renewed(&self, _leases: &[Lease], _states: &[LeaseState]) {}
}

#[derive(Clone)]
pub struct Intercepted<B, H> {
    pub inner: B,
    pub hook: H,
}

impl<B, H> Intercepted<B, H> {
    pub fn new(inner: B, hook: H) -> Self {
        Self { inner, hook }
    }
}

impl<B: Bus, H: Hook> Bus for Intercepted<B, H> {
    async fn publish_input(&self, room: &RoomId, input: RoomInput) -> Result<usize, BusError> {
        self.hook.before(Call::PublishInput(&input)).await?;
        self.inner.publish_input(room, input).await
    }

    async fn subscribe_input(&self, room: &RoomId) -> Result<Subscription<RoomInput>, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.subscribe_input(room).await
    }

    async fn publish_output(&self, room: &RoomId, frame: OutFrame) -> Result<usize, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.publish_output(room, frame).await
    }

    async fn publish_outputs(&self, frames: Vec<(RoomId, OutFrame)>) -> Result<(), BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.publish_outputs(frames).await
    }

    async fn subscribe_output(&self, room: &RoomId) -> Result<Subscription<OutFrame>, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.subscribe_output(room).await
    }

    async fn subscribe_output_with(&self, room: &RoomId, handler: Handler<OutFrame>) -> Result<(), BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.subscribe_output_with(room, handler).await
    }

    async fn publish_notice(&self, notice: Notice) -> Result<usize, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.publish_notice(notice).await
    }

    async fn subscribe_notices(&self) -> Result<Subscription<Notice>, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.subscribe_notices().await
    }
}

impl<B: Store, H: Hook> Store for Intercepted<B, H> {
    async fn take_seat(
        &self,
        room: Option<&RoomId>,
        player: PlayerId,
        capacity: u16,
        hold: Duration,
    ) -> Result<Seat, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.take_seat(room, player, capacity, hold).await
    }

    async fn release_seat(&self, room: &RoomId, player: PlayerId) -> Result<(), BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.release_seat(room, player).await
    }

    async fn confirm_seats(
        &self,
        room: &RoomId,
        players: &[PlayerId],
        highest_id: PlayerId,
        hold: Duration,
    ) -> Result<(), BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.confirm_seats(room, players, highest_id, hold).await
    }

    async fn rooms(&self, limit: usize) -> Result<Vec<RoomInfo>, BusError> {
        self.hook.before(Call::ListRooms).await?;
        self.inner.rooms(limit).await
    }

    async fn room(&self, room: &RoomId) -> Result<Option<RoomInfo>, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.room(room).await
    }

    async fn ensure_room(&self, room: &RoomId, capacity: u16) -> Result<(), BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.ensure_room(room, capacity).await
    }

    async fn retire_room_if_empty(&self, room: &RoomId) -> Result<bool, BusError> {
        self.hook.before(Call::RetireRoom(room)).await?;
        self.inner.retire_room_if_empty(room).await
    }

    async fn put_session(&self, token: &str, session: &Session, ttl: Duration) -> Result<(), BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.put_session(token, session, ttl).await
    }

    async fn session(&self, token: &str) -> Result<Option<Session>, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.session(token).await
    }

    async fn new_player_id(&self) -> Result<PlayerId, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.new_player_id().await
    }

    async fn submit_score(&self, entry: ScoreEntry) -> Result<(), BusError> {
        self.hook.before(Call::SubmitScore(&entry)).await?;
        self.inner.submit_score(entry).await
    }

    async fn top_scores(&self, n: usize) -> Result<Vec<ScoreEntry>, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.top_scores(n).await
    }

    async fn generation(&self) -> Result<u64, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.generation().await
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.ping().await
    }
}

impl<B: Ownership, H: Hook> Ownership for Intercepted<B, H> {
    async fn heartbeat(&self, worker: &str, ttl: Duration) -> Result<(), BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.heartbeat(worker, ttl).await
    }

    async fn withdraw(&self, worker: &str) -> Result<(), BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.withdraw(worker).await
    }

    async fn live_workers(&self) -> Result<Vec<String>, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.live_workers().await
    }

    async fn acquire_lease(
        &self,
        room: &RoomId,
        worker: &str,
        ttl: Duration,
        min_epoch: u64,
    ) -> Result<Option<Lease>, BusError> {
        self.hook.before(Call::AcquireLease(room)).await?;
        self.inner.acquire_lease(room, worker, ttl, min_epoch).await
    }

    async fn renew_leases(&self, leases: &[Lease], ttl: Duration) -> Result<Vec<LeaseState>, BusError> {
        self.hook.before(Call::Other).await?;
        let states = self.inner.renew_leases(leases, ttl).await?;
        self.hook.renewed(leases, &states);
        Ok(states)
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.release_lease(lease).await
    }

    fn snapshot_part(&self, room: &RoomId) -> u16 {
        self.inner.snapshot_part(room)
    }

    async fn save_snapshot(&self, save: SnapshotSave) -> Result<SnapshotWrite, BusError> {
        self.hook.before(Call::SaveSnapshot(&save.lease)).await?;
        let lease = save.lease.clone();
        let saved = self.inner.save_snapshot(save).await;
        self.hook.answered(&lease).await;
        saved
    }

    /// Each snapshot is asked about on its own (all at once): those the
    /// hook fails are not forwarded, and come back unanswered.
    async fn save_snapshots(&self, writes: &[SnapshotSave]) -> Result<Vec<Option<SnapshotWrite>>, BusError> {
        let mut asked = join_all(writes.iter().map(|w| self.hook.before(Call::SaveSnapshot(&w.lease)))).await;
        let passed: Vec<SnapshotSave> =
            writes.iter().zip(&asked).filter(|(_, a)| a.is_ok()).map(|(w, _)| w.clone()).collect();
        if passed.is_empty()
            && let Some(pos) = asked.iter().position(Result::is_err)
        {
            return asked.swap_remove(pos).map(|()| Vec::new());
        }
        let saved = self.inner.save_snapshots(&passed).await;
        join_all(passed.iter().map(|w| self.hook.answered(&w.lease))).await;
        let mut answered = saved?.into_iter();
        Ok(asked.iter().map(|a| if a.is_ok() { answered.next().flatten() } else { None }).collect())
    }

    async fn load_snapshot(&self, room: &RoomId) -> Result<Option<(u64, Bytes)>, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.load_snapshot(room).await
    }

    async fn drop_room(&self, lease: &Lease) -> Result<bool, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.drop_room(lease).await
    }

    async fn lease_holders(&self, rooms: &[RoomId]) -> Result<Vec<Option<String>>, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.lease_holders(rooms).await
    }

    async fn be_present(&self, worker: &str) -> Result<Subscription<Notice>, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.be_present(worker).await
    }

    fn link_losses(&self) -> u64 {
        self.inner.link_losses()
    }

    async fn present(&self, workers: &[String]) -> Result<Vec<bool>, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.present(workers).await
    }

    async fn break_leases(&self, worker: &str, rooms: &[RoomId]) -> Result<usize, BusError> {
        self.hook.before(Call::Other).await?;
        self.inner.break_leases(worker, rooms).await
    }
}
