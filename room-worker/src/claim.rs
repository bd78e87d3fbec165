//! Claiming one room: its lease, its last snapshot and its input
//! subscription (three round trips or more). A claim borrows nothing from
//! the host, so the host runs many at once beside its renewals, and a large
//! failover cannot delay the leases of the rooms it already runs.

use std::sync::Arc;
use std::time::Duration;

use snakepit_bus::{Backend, Lease, RoomId};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::room::{Room, RoomDeps, RoomEnv};
use crate::snapshot::RoomSnapshot;

/// What a claim needs from its host.
pub struct Claimer<B> {
    /// What the worker's rooms share; its store is the claim's.
    pub env: Arc<RoomEnv<B>>,
    pub worker_id: String,
    pub lease_ttl: Duration,
}

/// A room claimed and opened, ready to run.
pub struct Claimed<B> {
    pub lease: watch::Sender<Lease>,
    pub room: Box<Room<B>>,
}

impl<B: Backend> Claimer<B> {
    /// Takes the room if its lease is free, from its last snapshot if any;
    /// `None` if another worker has it or the backend failed (the lease is
    /// then released, and a later round tries again).
    pub async fn claim(self, room: RoomId) -> Option<Claimed<B>> {
        let lease = match self.env.backend.acquire_lease(&room, &self.worker_id, self.lease_ttl, 0).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return None,
            Err(e) => {
                warn!(%room, error = %e, "cannot acquire a lease");
                return None;
            }
        };
        let snapshot = match self.env.backend.load_snapshot(&room).await {
            Ok(Some((epoch, bytes))) => match RoomSnapshot::decode(&bytes) {
                Ok(s) => {
                    info!(%room, from_epoch = epoch, epoch = lease.epoch, tick = s.game.tick(), "taking over from a snapshot");
                    self.env.metrics.failovers.inc();
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
                let _ = self.env.backend.release_lease(&lease).await;
                return None;
            }
        };
        let seed = uuid::Uuid::new_v4().as_u64_pair().0;
        let (lease_tx, lease_rx) = watch::channel(lease.clone());
        let deps = RoomDeps { env: self.env.clone(), lease: lease_rx };
        let opened = Room::open(room.clone(), deps, snapshot, seed).await;
        match opened {
            Ok(r) => Some(Claimed { lease: lease_tx, room: Box::new(r) }),
            Err(e) => {
                warn!(%room, error = %e, "cannot open the room");
                let _ = self.env.backend.release_lease(&lease).await;
                None
            }
        }
    }
}
