//! A backend for host tests that behaves like a slow Redis: every call
//! sleeps for a fixed latency (on tokio's clock, so paused-time tests run
//! fast) and is then forwarded to a real backend. It also counts lease
//! acquisitions and records what every renewal found.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use snakepit_shared::{
    Bus, BusError, Lease, LeaseState, Notice, OutFrame, Ownership, PlayerId, RoomId, RoomInfo, RoomInput, ScoreEntry,
    Seat, Session, SnapshotWrite, Store, Subscription,
};

#[derive(Clone)]
pub struct SlowBackend<B> {
    inner: B,
    latency: Duration,
    log: Arc<Mutex<Log>>,
}

#[derive(Default)]
pub struct Log {
    /// Every `acquire_lease`, by room.
    pub acquired: Vec<RoomId>,
    /// Leases a renewal found held, and the others (room and state).
    pub renewed_held: usize,
    pub renewed_not_held: Vec<(RoomId, LeaseState)>,
}

impl<B> SlowBackend<B> {
    pub fn new(inner: B, latency: Duration) -> Self {
        Self { inner, latency, log: Arc::default() }
    }

    pub fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap()
    }

    async fn delay(&self) {
        tokio::time::sleep(self.latency).await;
    }
}

impl<B: Bus> Bus for SlowBackend<B> {
    async fn publish_input(&self, room: &RoomId, input: RoomInput) -> Result<usize, BusError> {
        self.delay().await;
        self.inner.publish_input(room, input).await
    }

    async fn subscribe_input(&self, room: &RoomId) -> Result<Subscription<RoomInput>, BusError> {
        self.delay().await;
        self.inner.subscribe_input(room).await
    }

    async fn publish_output(&self, room: &RoomId, frame: OutFrame) -> Result<usize, BusError> {
        self.delay().await;
        self.inner.publish_output(room, frame).await
    }

    async fn publish_outputs(&self, frames: Vec<(RoomId, OutFrame)>) -> Result<(), BusError> {
        self.delay().await;
        self.inner.publish_outputs(frames).await
    }

    async fn subscribe_output(&self, room: &RoomId) -> Result<Subscription<OutFrame>, BusError> {
        self.delay().await;
        self.inner.subscribe_output(room).await
    }

    async fn publish_notice(&self, notice: Notice) -> Result<usize, BusError> {
        self.delay().await;
        self.inner.publish_notice(notice).await
    }

    async fn subscribe_notices(&self) -> Result<Subscription<Notice>, BusError> {
        self.delay().await;
        self.inner.subscribe_notices().await
    }
}

impl<B: Store> Store for SlowBackend<B> {
    async fn take_seat(
        &self,
        room: Option<&RoomId>,
        player: PlayerId,
        capacity: u16,
        hold: Duration,
    ) -> Result<Seat, BusError> {
        self.delay().await;
        self.inner.take_seat(room, player, capacity, hold).await
    }

    async fn release_seat(&self, room: &RoomId, player: PlayerId) -> Result<(), BusError> {
        self.delay().await;
        self.inner.release_seat(room, player).await
    }

    async fn confirm_seats(&self, room: &RoomId, players: &[PlayerId], hold: Duration) -> Result<(), BusError> {
        self.delay().await;
        self.inner.confirm_seats(room, players, hold).await
    }

    async fn rooms(&self, limit: usize) -> Result<Vec<RoomInfo>, BusError> {
        self.delay().await;
        self.inner.rooms(limit).await
    }

    async fn room(&self, room: &RoomId) -> Result<Option<RoomInfo>, BusError> {
        self.delay().await;
        self.inner.room(room).await
    }

    async fn ensure_room(&self, room: &RoomId, capacity: u16) -> Result<(), BusError> {
        self.delay().await;
        self.inner.ensure_room(room, capacity).await
    }

    async fn retire_room_if_empty(&self, room: &RoomId) -> Result<bool, BusError> {
        self.delay().await;
        self.inner.retire_room_if_empty(room).await
    }

    async fn put_session(&self, token: &str, session: &Session, ttl: Duration) -> Result<(), BusError> {
        self.delay().await;
        self.inner.put_session(token, session, ttl).await
    }

    async fn session(&self, token: &str) -> Result<Option<Session>, BusError> {
        self.delay().await;
        self.inner.session(token).await
    }

    async fn submit_score(&self, entry: ScoreEntry) -> Result<(), BusError> {
        self.delay().await;
        self.inner.submit_score(entry).await
    }

    async fn top_scores(&self, n: usize) -> Result<Vec<ScoreEntry>, BusError> {
        self.delay().await;
        self.inner.top_scores(n).await
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.delay().await;
        self.inner.ping().await
    }
}

impl<B: Ownership> Ownership for SlowBackend<B> {
    async fn heartbeat(&self, worker: &str, ttl: Duration) -> Result<(), BusError> {
        self.delay().await;
        self.inner.heartbeat(worker, ttl).await
    }

    async fn withdraw(&self, worker: &str) -> Result<(), BusError> {
        self.delay().await;
        self.inner.withdraw(worker).await
    }

    async fn live_workers(&self) -> Result<Vec<String>, BusError> {
        self.delay().await;
        self.inner.live_workers().await
    }

    async fn acquire_lease(
        &self,
        room: &RoomId,
        worker: &str,
        ttl: Duration,
        min_epoch: u64,
    ) -> Result<Option<Lease>, BusError> {
        self.log().acquired.push(room.clone());
        self.delay().await;
        self.inner.acquire_lease(room, worker, ttl, min_epoch).await
    }

    async fn renew_leases(&self, leases: &[Lease], ttl: Duration) -> Result<Vec<LeaseState>, BusError> {
        self.delay().await;
        let states = self.inner.renew_leases(leases, ttl).await?;
        let mut log = self.log();
        for (lease, state) in leases.iter().zip(&states) {
            match state {
                LeaseState::Held => log.renewed_held += 1,
                other => log.renewed_not_held.push((lease.room.clone(), *other)),
            }
        }
        drop(log);
        Ok(states)
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), BusError> {
        self.delay().await;
        self.inner.release_lease(lease).await
    }

    async fn save_snapshot(&self, lease: &Lease, data: Bytes) -> Result<SnapshotWrite, BusError> {
        self.delay().await;
        self.inner.save_snapshot(lease, data).await
    }

    async fn load_snapshot(&self, room: &RoomId) -> Result<Option<(u64, Bytes)>, BusError> {
        self.delay().await;
        self.inner.load_snapshot(room).await
    }

    async fn drop_room(&self, lease: &Lease) -> Result<bool, BusError> {
        self.delay().await;
        self.inner.drop_room(lease).await
    }

    async fn lease_holders(&self, rooms: &[RoomId]) -> Result<Vec<Option<String>>, BusError> {
        self.delay().await;
        self.inner.lease_holders(rooms).await
    }
}
