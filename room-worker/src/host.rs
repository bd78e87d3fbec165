//! The host: runs every room the directory lists that this process should
//! own. In standalone mode that is every room; the cluster mode adds leases.

use std::collections::HashMap;
use std::time::Duration;

use snakepit_shared::{Backend, Notice, RoomId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::metrics::WorkerMetrics;
use crate::room::{Room, RoomConfig};

#[derive(Clone, Debug)]
pub struct HostConfig {
    pub room: RoomConfig,
    /// How often the directory is read in full (notices may be missed).
    pub reconcile_every: Duration,
}

pub struct Host<B> {
    backend: B,
    config: HostConfig,
    metrics: WorkerMetrics,
    rooms: HashMap<RoomId, CancellationToken>,
    tracker: TaskTracker,
    ended_tx: mpsc::UnboundedSender<RoomId>,
    ended_rx: mpsc::UnboundedReceiver<RoomId>,
}

impl<B: Backend> Host<B> {
    pub fn new(backend: B, config: HostConfig, metrics: WorkerMetrics) -> Self {
        let (ended_tx, ended_rx) = mpsc::unbounded_channel();
        Self { backend, config, metrics, rooms: HashMap::new(), tracker: TaskTracker::new(), ended_tx, ended_rx }
    }

    /// Runs until `shutdown`, then stops every room and waits for them.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut notices = loop {
            match self.backend.subscribe_notices().await {
                Ok(s) => break s,
                Err(e) => {
                    warn!(error = %e, "cannot subscribe to notices; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        let mut reconcile = tokio::time::interval(self.config.reconcile_every);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                notice = notices.recv() => match notice {
                    Some(Notice::RoomCreated(room)) => self.start(room, &shutdown).await,
                    None => {
                        warn!("notice subscription closed; resubscribing");
                        if let Ok(s) = self.backend.subscribe_notices().await {
                            notices = s;
                        }
                    }
                },
                Some(room) = self.ended_rx.recv() => {
                    self.rooms.remove(&room);
                }
                _ = reconcile.tick() => self.reconcile(&shutdown).await,
            }
        }
        for token in self.rooms.values() {
            token.cancel();
        }
        self.tracker.close();
        self.tracker.wait().await;
        info!("host stopped");
    }

    async fn reconcile(&mut self, shutdown: &CancellationToken) {
        match self.backend.rooms().await {
            Ok(rooms) => {
                for r in rooms {
                    self.start(r.id, shutdown).await;
                }
            }
            Err(e) => warn!(error = %e, "cannot read the room directory"),
        }
    }

    async fn start(&mut self, room: RoomId, shutdown: &CancellationToken) {
        if self.rooms.contains_key(&room) {
            return;
        }
        let seed = uuid::Uuid::new_v4().as_u64_pair().0;
        let opened =
            Room::open(room.clone(), self.backend.clone(), self.config.room.clone(), 1, seed, self.metrics.clone())
                .await;
        let r = match opened {
            Ok(r) => r,
            Err(e) => {
                warn!(%room, error = %e, "cannot open room");
                return;
            }
        };
        let token = shutdown.child_token();
        self.rooms.insert(room.clone(), token.clone());
        let ended = self.ended_tx.clone();
        self.tracker.spawn(async move {
            r.run(token).await;
            let _ = ended.send(room);
        });
    }
}
