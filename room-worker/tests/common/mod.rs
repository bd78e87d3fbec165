//! What the room tests share: a room opened over a backend (the in-memory
//! one, or one that intercepts it) on tokio's paused clock, a member's
//! inputs, the frames it publishes and the snapshot it leaves in the store.
//! Each test file uses part of it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use snakepit_bus::{Backend, ConnId, InputKind, Lease, OutFrame, PlayerId, RoomId, RoomInput, Subscription};
use snakepit_room_worker::gateways::Gateways;
use snakepit_room_worker::publisher::Publisher;
use snakepit_room_worker::room::{Room, RoomConfig, RoomControl, RoomDeps, RoomEnv, RoomExit, TickGrid};
use snakepit_room_worker::snapshot::RoomSnapshot;
use snakepit_room_worker::snapshot_writer::SnapshotWriter;
use snakepit_room_worker::{GameSettings, WorkerMetrics};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A room at `tick_rate` without random stones or digits, a 3 s grace,
/// no snapshots, and presence, retirement and seats out of the way.
pub fn config(tick_rate: f64) -> RoomConfig {
    RoomConfig {
        settings: GameSettings { tick_rate, stone_spawn_rate: 0.0, digit_spawn_rate: 0.0, ..GameSettings::default() },
        grace: Duration::from_secs(3),
        empty_ttl: Duration::from_secs(600),
        snapshot_every: None,
        presence_timeout: Duration::from_secs(600),
        seat_hold: Duration::from_secs(15),
        packed_snapshots: true,
    }
}

pub fn metrics() -> WorkerMetrics {
    WorkerMetrics::register(&prometheus::Registry::new(), "w").unwrap()
}

/// The room's lease for `worker`, for an hour.
pub async fn lease<B: Backend>(backend: &B, room: &RoomId, worker: &str) -> Lease {
    backend.acquire_lease(room, worker, Duration::from_secs(3600), 0).await.unwrap().expect("a free lease")
}

/// A room running in its own task.
pub struct Running {
    pub control: RoomControl,
    pub task: JoinHandle<RoomExit>,
    /// The lease as the host would hold it (renewed or taken again).
    pub lease: watch::Sender<Lease>,
    /// The worker's gateways, as the host would judge them.
    pub gateways: Gateways,
}

/// Opens `room` under `lease` (from `snapshot` if any) and runs it.
pub async fn start<B: Backend>(
    backend: &B,
    room: &RoomId,
    config: RoomConfig,
    lease: Lease,
    snapshot: Option<RoomSnapshot>,
    metrics: WorkerMetrics,
) -> Running {
    let seed = if snapshot.is_some() { 8 } else { 7 };
    let (lease_tx, lease_rx) = watch::channel(lease);
    let (publisher, _published) = Publisher::spawn(backend.clone(), metrics.clone());
    let gateways = Gateways::default();
    let env = RoomEnv {
        backend: backend.clone(),
        config,
        metrics,
        publisher,
        snapshots: SnapshotWriter::spawn(backend.clone()).0,
        gateways: gateways.clone(),
        ticks: TickGrid::new(),
    };
    let deps = RoomDeps { env: std::sync::Arc::new(env), lease: lease_rx };
    let r = Room::open(room.clone(), deps, snapshot, seed).await.unwrap();
    let control = RoomControl::default();
    let task = tokio::spawn(Box::new(r).run(control.clone()));
    Running { control, task, lease: lease_tx, gateways }
}

pub fn enter(name: &str) -> InputKind {
    InputKind::Enter { name: Some(name.into()), resync: false, key: 0, gateway: None }
}

pub async fn send<B: Backend>(backend: &B, room: &RoomId, player: PlayerId, conn: ConnId, kind: InputKind) {
    backend.publish_input(room, RoomInput { player, conn, kind }).await.unwrap();
}

/// A player ("ann") enters the room and joins.
pub async fn enter_and_join<B: Backend>(backend: &B, room: &RoomId) -> (PlayerId, ConnId) {
    let (player, conn) = (PlayerId::random(), ConnId::random());
    for kind in [enter("ann"), InputKind::Join] {
        send(backend, room, player, conn, kind).await;
    }
    (player, conn)
}

/// Frames published within `limit` (virtual time).
pub async fn frames_within(out: &mut Subscription<OutFrame>, limit: Duration) -> Vec<OutFrame> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(f)) = tokio::time::timeout_at(deadline, out.recv()).await {
        got.push(f);
    }
    got
}

/// The room's snapshot in the store, if any, and the epoch that wrote it.
pub async fn stored_snapshot<B: Backend>(backend: &B, room: &RoomId) -> Option<(u64, RoomSnapshot)> {
    let (epoch, data) = backend.load_snapshot(room).await.unwrap()?;
    Some((epoch, RoomSnapshot::decode(&data).unwrap()))
}

/// The room's last snapshot.
pub async fn last_snapshot<B: Backend>(backend: &B, room: &RoomId) -> RoomSnapshot {
    stored_snapshot(backend, room).await.expect("a snapshot").1
}
