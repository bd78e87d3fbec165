//! The host: decides which rooms this worker runs, and runs them.
//!
//! Every round (and on a notice) it announces itself with a heartbeat,
//! renews the leases of its rooms in one call (a room whose lease is gone
//! stops at once), and claims the directory's rooms that rendezvous hashing
//! gives it over the live workers; a claim race is settled by the lease.
//! A claimed room starts from its last snapshot, if any.
//!
//! On shutdown it withdraws, lets every room write a final snapshot,
//! releases the leases and tells the other workers, which take over.

use std::collections::HashMap;
use std::time::Duration;

use snakepit_shared::{Backend, Lease, LeaseState, Notice, RoomId};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::metrics::WorkerMetrics;
use crate::publisher::Publisher;
use crate::rendezvous;
use crate::room::{Room, RoomConfig, RoomControl, RoomExit};
use crate::snapshot::RoomSnapshot;

#[derive(Clone, Debug)]
pub struct HostConfig {
    pub worker_id: String,
    pub room: RoomConfig,
    /// How often the host renews, heartbeats and reads the directory.
    pub round_every: Duration,
    /// Lease and heartbeat lifetime: a dead worker's rooms move after this.
    pub lease_ttl: Duration,
}

struct Running {
    lease: watch::Sender<Lease>,
    control: RoomControl,
}

pub struct Host<B> {
    backend: B,
    config: HostConfig,
    metrics: WorkerMetrics,
    publisher: Publisher,
    rooms: HashMap<RoomId, Running>,
    tracker: TaskTracker,
    ended_tx: mpsc::UnboundedSender<(RoomId, RoomExit)>,
    ended_rx: mpsc::UnboundedReceiver<(RoomId, RoomExit)>,
    /// Set once the first heartbeat has gone out (readiness).
    announced: CancellationToken,
}

impl<B: Backend> Host<B> {
    pub fn new(backend: B, config: HostConfig, metrics: WorkerMetrics) -> Self {
        let (ended_tx, ended_rx) = mpsc::unbounded_channel();
        let publisher = Publisher::spawn(backend.clone(), metrics.clone());
        Self {
            backend,
            config,
            metrics,
            publisher,
            rooms: HashMap::new(),
            tracker: TaskTracker::new(),
            ended_tx,
            ended_rx,
            announced: CancellationToken::new(),
        }
    }

    /// Cancelled once the worker has announced itself.
    pub fn announced(&self) -> CancellationToken {
        self.announced.clone()
    }

    /// Runs until `shutdown`, then hands every room over.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut notices = None;
        let mut rounds = tokio::time::interval(self.config.round_every);
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if notices.is_none() {
                match self.backend.subscribe_notices().await {
                    Ok(s) => notices = Some(s),
                    Err(e) => warn!(error = %e, "cannot subscribe to notices"),
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                notice = async { notices.as_mut()?.recv().await }, if notices.is_some() => match notice {
                    Some(Notice::RoomCreated(_)) | Some(Notice::RoomsReleased) => self.round().await,
                    None => notices = None,
                },
                Some((room, exit)) = self.ended_rx.recv() => self.ended(room, exit).await,
                _ = rounds.tick() => self.round().await,
            }
        }
        self.hand_over().await;
    }

    async fn round(&mut self) {
        let id = self.config.worker_id.clone();
        if let Err(e) = self.backend.heartbeat(&id, self.config.lease_ttl).await {
            warn!(error = %e, "heartbeat failed");
            return;
        }
        self.announced.cancel();
        let all_held = self.renew().await;
        let (live, rooms) = match (self.backend.live_workers().await, self.backend.rooms(usize::MAX).await) {
            (Ok(live), Ok(rooms)) => (live, rooms),
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "cannot read workers or rooms");
                return;
            }
        };
        // Rooms we run that the directory lost (Redis restarted empty), once
        // their leases are ours again: listed earlier, another worker could
        // claim one and start it afresh.
        let listed: std::collections::HashSet<&RoomId> = rooms.iter().map(|r| &r.id).collect();
        for room in self.rooms.keys().filter(|r| all_held && !listed.contains(r)) {
            if let Err(e) = self.backend.ensure_room(room, self.config.room.settings.max_players).await {
                warn!(%room, error = %e, "cannot restore the room in the directory");
            }
        }
        for info in rooms {
            if self.rooms.contains_key(&info.id) || rendezvous::owner(&info.id, &live) != Some(id.as_str()) {
                continue;
            }
            self.claim(info.id).await;
        }
    }

    /// Renews every lease; true if all of them are ours afterwards.
    async fn renew(&mut self) -> bool {
        let leases: Vec<Lease> = self.rooms.values().map(|r| r.lease.borrow().clone()).collect();
        let states = match self.backend.renew_leases(&leases, self.config.lease_ttl).await {
            Ok(states) => states,
            Err(e) => {
                // Redis is away: rooms go on, and the leases are checked
                // again next round.
                warn!(error = %e, "cannot renew leases");
                return false;
            }
        };
        let mut all_held = true;
        for (lease, state) in leases.iter().zip(states) {
            match state {
                LeaseState::Held => {}
                LeaseState::Lost => {
                    warn!(room = %lease.room, epoch = lease.epoch, "lease lost; stopping the room");
                    if let Some(r) = self.rooms.get(&lease.room) {
                        r.control.lost.cancel();
                    }
                }
                LeaseState::Missing => all_held &= self.reacquire(lease).await,
            }
        }
        all_held
    }

    /// Nobody holds the lease of a room we run (it expired while Redis was
    /// away, or Redis lost its data): take it again, above the old epoch,
    /// and go on. True if it is ours again.
    async fn reacquire(&mut self, old: &Lease) -> bool {
        let acquired = self.backend.acquire_lease(&old.room, &self.config.worker_id, self.config.lease_ttl, old.epoch);
        match acquired.await {
            Ok(Some(lease)) => {
                info!(room = %lease.room, epoch = lease.epoch, "lease taken again");
                if let Some(r) = self.rooms.get(&old.room) {
                    r.lease.send_replace(lease);
                }
                true
            }
            Ok(None) => {
                warn!(room = %old.room, "lease taken by another worker; stopping the room");
                if let Some(r) = self.rooms.get(&old.room) {
                    r.control.lost.cancel();
                }
                true
            }
            Err(e) => {
                warn!(room = %old.room, error = %e, "cannot take the lease again");
                false
            }
        }
    }

    async fn claim(&mut self, room: RoomId) {
        let lease = match self.backend.acquire_lease(&room, &self.config.worker_id, self.config.lease_ttl, 0).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(e) => {
                warn!(%room, error = %e, "cannot acquire a lease");
                return;
            }
        };
        let snapshot = match self.backend.load_snapshot(&room).await {
            Ok(Some((epoch, bytes))) => match RoomSnapshot::decode(&bytes) {
                Ok(s) => {
                    info!(%room, from_epoch = epoch, epoch = lease.epoch, tick = s.game.tick(), "taking over from a snapshot");
                    self.metrics.failovers.inc();
                    Some(s)
                }
                Err(e) => {
                    warn!(%room, error = %e, "unreadable snapshot; starting afresh");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                // Starting afresh would lose the room's state: try later.
                warn!(%room, error = %e, "cannot load the snapshot");
                let _ = self.backend.release_lease(&lease).await;
                return;
            }
        };
        let seed = uuid::Uuid::new_v4().as_u64_pair().0;
        let (lease_tx, lease_rx) = watch::channel(lease.clone());
        let opened = Room::open(
            room.clone(),
            self.backend.clone(),
            self.config.room.clone(),
            lease_rx,
            snapshot,
            seed,
            self.metrics.clone(),
            self.publisher.clone(),
        )
        .await;
        let r = match opened {
            Ok(r) => r,
            Err(e) => {
                warn!(%room, error = %e, "cannot open the room");
                let _ = self.backend.release_lease(&lease).await;
                return;
            }
        };
        let control = RoomControl::default();
        self.rooms.insert(room.clone(), Running { lease: lease_tx, control: control.clone() });
        let ended = self.ended_tx.clone();
        self.tracker.spawn(async move {
            let exit = r.run(control).await;
            let _ = ended.send((room, exit));
        });
    }

    async fn ended(&mut self, room: RoomId, exit: RoomExit) {
        let Some(running) = self.rooms.remove(&room) else { return };
        let lease = running.lease.borrow().clone();
        match exit {
            RoomExit::Retired => {
                // Fenced: a stale owner deletes nothing of its successor's.
                if let Err(e) = self.backend.drop_room(&lease).await {
                    warn!(%room, error = %e, "cannot drop a retired room's state");
                }
            }
            RoomExit::LeaseLost => self.metrics.leases_lost.inc(),
            RoomExit::HandedOver | RoomExit::Closed => {
                let _ = self.backend.release_lease(&lease).await;
            }
        }
    }

    async fn hand_over(mut self) {
        info!(rooms = self.rooms.len(), "handing rooms over");
        if let Err(e) = self.backend.withdraw(&self.config.worker_id).await {
            warn!(error = %e, "cannot withdraw");
        }
        for r in self.rooms.values() {
            r.control.shutdown.cancel();
        }
        self.tracker.close();
        self.tracker.wait().await;
        while let Ok((room, exit)) = self.ended_rx.try_recv() {
            self.ended(room, exit).await;
        }
        if let Err(e) = self.backend.publish_notice(Notice::RoomsReleased).await {
            warn!(error = %e, "cannot tell the other workers");
        }
        info!("host stopped");
    }
}
