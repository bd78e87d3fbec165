//! The embedded default: rooms run in this process over the in-memory
//! backend, behind the same gateway code as in a cluster. The top scores
//! are kept in a file of a data directory across restarts (see
//! [`crate::score_file`]).

use std::path::PathBuf;
use std::time::Duration;

use futures_util::TryFutureExt;
use prometheus::Registry;
use snakepit_bus::MemoryBackend;
use snakepit_room_worker::room::RoomConfig;
use snakepit_room_worker::{Host, HostConfig, HostFailed, WorkerMetrics};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::drain::DrainConfig;
use crate::metrics::GatewayMetrics;
use crate::score_file::ScoreFile;
use crate::score_keeper::{SAVE_EVERY, ScoreKeeper};
use crate::state::AppState;

#[derive(Clone, Debug)]
pub struct StandaloneConfig {
    pub gateway: GatewayConfig,
    pub room: RoomConfig,
    /// How the gateway stops; its rooms stop afterwards, within the grace.
    pub drain: DrainConfig,
    /// Where the top scores are kept across restarts (`top-scores.json`
    /// in this directory, created if missing); none: in memory only, lost
    /// at exit. The library never picks a default: `main` does.
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
    #[error("rooms: {0}")]
    Rooms(#[from] HostFailed),
    #[error("the rooms' task ended: {0}")]
    RoomsTask(String),
}

/// Serves the whole game on `listener` until `shutdown`, or until its
/// rooms fail (a task they need ended: [`StandaloneError::Rooms`]).
pub async fn serve(
    listener: TcpListener,
    config: StandaloneConfig,
    shutdown: CancellationToken,
) -> Result<(), StandaloneError> {
    serve_with_registry(listener, config, Registry::new(), shutdown).await
}

/// As [`serve`], exporting the game's metrics on `/metrics` beside what
/// `registry` already holds (the process's own, registered by `main`).
pub async fn serve_with_registry(
    listener: TcpListener,
    config: StandaloneConfig,
    registry: Registry,
    shutdown: CancellationToken,
) -> Result<(), StandaloneError> {
    let backend = MemoryBackend::new();
    let worker_metrics = WorkerMetrics::register(&registry, "standalone")?;
    // One process: no other worker can take a room over, so rooms skip
    // their snapshots.
    let room = RoomConfig { snapshot_every: None, ..config.room.clone() };
    let mut gateway = config.gateway.clone();
    gateway.room_capacity = config.room.settings.max_players;
    let gateway_metrics = GatewayMetrics::register_beside(&registry, &worker_metrics)?;
    let state = AppState::with_metrics(backend.clone(), gateway, registry, gateway_metrics);
    // Loaded before any room starts, so that rooms and newcomers see them.
    let scores = match &config.data_dir {
        Some(dir) => {
            let file = ScoreFile::new(dir, config.room.settings.top_scores);
            Some(ScoreKeeper::start(backend.clone(), file, SAVE_EVERY).await)
        }
        None => None,
    };
    let host = Host::new(
        backend,
        HostConfig {
            worker_id: "standalone".into(),
            room,
            round_every: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(5),
        },
        worker_metrics,
    );
    let rooms_stop = CancellationToken::new();
    // Rooms that fail (see `Host::run`) stop the whole process, a game
    // server without its game: the gateway drains as on `shutdown` (a
    // token of its own, so that the caller's stays theirs).
    let serving = shutdown.child_token();
    let failing = serving.clone();
    let rooms = tokio::spawn(host.run(rooms_stop.clone()).inspect_err(move |_| failing.cancel()));
    // Drained like a cluster gateway: its players' snakes park, and they
    // may resume on this process once it is back (the rooms are gone by
    // then, but the client starts over by itself).
    let served = crate::run(listener, state, serving, config.drain).await;
    rooms_stop.cancel();
    let rooms = tokio::time::timeout(config.drain.grace, rooms).await;
    // The rooms have stopped: the last game's scores are in the store.
    if let Some(scores) = scores {
        scores.finish().await;
    }
    match rooms {
        Ok(Ok(Err(failed))) => Err(failed.into()),
        Ok(Err(e)) => Err(StandaloneError::RoomsTask(e.to_string())),
        _ => Ok(served?),
    }
}
