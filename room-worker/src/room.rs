//! A room as an actor: it owns its game, steps it at a fixed tick while
//! someone is alive, and publishes one frame per tick on the room's output.
//!
//! While the game runs, inputs are drained without waiting at the start of
//! each tick; while nobody is alive, the room waits for input. An empty room
//! retires itself after a while, if the directory agrees that no seat is
//! taken.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use snakepit_shared::encode::{FrameWriter, error_frame};
use snakepit_shared::{
    Backend, ConnId, FrameKind, InputKind, OutFrame, PlayerId, RoomId, RoomInput, ScoreEntry, Subscription,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::frame::{encode_tick, encode_welcome};
use crate::game::Game;
use crate::metrics::WorkerMetrics;
use crate::settings::GameSettings;

/// Most members (players and spectators) a room keeps.
const MAX_MEMBERS: usize = 1000;

#[derive(Clone, Debug)]
pub struct RoomConfig {
    pub settings: GameSettings,
    /// How long a disconnected player's snake keeps going.
    pub grace: Duration,
    /// How long a room stays empty before it retires.
    pub empty_ttl: Duration,
}

struct Member {
    conn: ConnId,
    player: bool,
    disconnected_at: Option<Instant>,
}

enum Internal {
    TopScores(Vec<ScoreEntry>),
}

pub struct Room<B> {
    id: RoomId,
    backend: B,
    config: RoomConfig,
    epoch: u64,
    game: Game,
    inputs: Subscription<RoomInput>,
    members: HashMap<PlayerId, Member>,
    writer: FrameWriter,
    metrics: WorkerMetrics,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,
    empty_since: Option<Instant>,
}

impl<B: Backend> Room<B> {
    /// Subscribes to the room's input; the room runs from [`Room::run`].
    pub async fn open(
        id: RoomId,
        backend: B,
        config: RoomConfig,
        epoch: u64,
        seed: u64,
        metrics: WorkerMetrics,
    ) -> Result<Self, snakepit_shared::BusError> {
        let inputs = backend.subscribe_input(&id).await?;
        let (internal_tx, internal_rx) = mpsc::channel(4);
        Ok(Self {
            game: Game::new(config.settings.clone(), seed),
            id,
            backend,
            config,
            epoch,
            inputs,
            members: HashMap::new(),
            writer: FrameWriter::with_capacity(2048),
            metrics,
            internal_tx,
            internal_rx,
            empty_since: None,
        })
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        self.metrics.rooms.inc();
        info!(room = %self.id, epoch = self.epoch, "room started");
        self.refresh_top_scores();
        let mut ticks = tokio::time::interval(self.config.settings.tick_period());
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        housekeeping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                scheduled = ticks.tick(), if self.game.is_running() => self.on_tick(scheduled).await,
                input = self.inputs.recv(), if !self.game.is_running() => {
                    let Some(input) = input else { break };
                    let was_running = self.game.is_running();
                    self.handle(input).await;
                    if !was_running && self.game.is_running() {
                        // The first step comes one period after the join.
                        ticks.reset();
                    }
                }
                Some(msg) = self.internal_rx.recv() => match msg {
                    Internal::TopScores(scores) => self.game.set_top_scores(scores),
                },
                _ = housekeeping.tick() => {
                    if self.retire_if_idle().await {
                        break;
                    }
                }
            }
        }
        let players = self.members.values().filter(|m| m.player).count() as i64;
        self.metrics.players.sub(players);
        self.metrics.snakes_alive.sub(self.game.alive_count() as i64);
        self.metrics.rooms.dec();
        info!(room = %self.id, "room stopped");
    }

    async fn on_tick(&mut self, scheduled: Instant) {
        let started = Instant::now();
        self.metrics.tick_lag.observe(started.saturating_duration_since(scheduled).as_secs_f64());
        let alive_before = self.game.alive_count();
        while let Some(input) = self.inputs.try_recv() {
            self.handle(input).await;
        }
        self.expire_disconnected(started);
        self.game.step();
        let payload = encode_tick(&mut self.writer, &self.game);
        if self.game.just_ended() {
            self.save_top_scores();
        }
        self.game.clear_events();
        self.metrics.snakes_alive.add(self.game.alive_count() as i64 - alive_before as i64);
        self.metrics.tick_duration.observe(started.elapsed().as_secs_f64());
        self.publish(FrameKind::Tick, payload).await;
    }

    async fn publish(&self, kind: FrameKind, payload: Bytes) {
        let frame = OutFrame { epoch: self.epoch, tick: self.game.tick(), kind, payload };
        match self.backend.publish_output(&self.id, frame).await {
            Ok(_) => self.metrics.frames_published.inc(),
            Err(e) => {
                self.metrics.publish_errors.inc();
                warn!(room = %self.id, error = %e, "publish failed");
            }
        }
    }

    async fn direct_error(&self, player: PlayerId, text: &str) {
        self.publish(FrameKind::Direct(player), error_frame(text)).await;
    }

    /// True if `input` comes from the player's current connection.
    fn current(&self, player: PlayerId, conn: ConnId) -> bool {
        self.members.get(&player).is_some_and(|m| m.conn == conn)
    }

    async fn handle(&mut self, RoomInput { player, conn, kind }: RoomInput) {
        match kind {
            InputKind::Enter { name } => self.enter(player, conn, name).await,
            InputKind::Join if self.current(player, conn) => {
                let is_player = self.members.get(&player).is_some_and(|m| m.player);
                if !is_player {
                    self.direct_error(player, "Spectators cannot join; send new_player").await;
                } else if let Err(e) = self.game.join(player) {
                    self.direct_error(player, &e.to_string()).await;
                } else {
                    self.metrics.snakes_alive.inc();
                }
            }
            InputKind::Turn(dir) if self.current(player, conn) => self.game.turn(player, dir),
            InputKind::Disconnect if self.current(player, conn) => {
                let alive = self.game.player(player).is_some_and(|p| p.alive);
                if alive {
                    if let Some(m) = self.members.get_mut(&player) {
                        m.disconnected_at = Some(Instant::now());
                    }
                } else {
                    self.remove(player);
                }
            }
            InputKind::Leave if self.current(player, conn) => self.remove(player),
            _ => debug!(room = %self.id, %player, "input from a stale connection ignored"),
        }
    }

    async fn enter(&mut self, player: PlayerId, conn: ConnId, name: Option<String>) {
        let full = self.members.len() >= MAX_MEMBERS;
        match self.members.get_mut(&player) {
            Some(m) => {
                // Back within the grace period, or a repeated enter.
                m.conn = conn;
                m.disconnected_at = None;
                if let (false, Some(name)) = (m.player, name) {
                    m.player = true;
                    self.game.add_player(player, clamp_name(name));
                    self.metrics.players.inc();
                }
            }
            None if full => {
                self.direct_error(player, "Room is full").await;
                return;
            }
            None => {
                let is_player = name.is_some();
                if let Some(name) = name {
                    self.game.add_player(player, clamp_name(name));
                    self.metrics.players.inc();
                }
                self.members.insert(player, Member { conn, player: is_player, disconnected_at: None });
            }
        }
        self.empty_since = None;
        self.publish(FrameKind::Welcome(player), encode_welcome(&self.game)).await;
    }

    fn remove(&mut self, player: PlayerId) {
        if let Some(m) = self.members.remove(&player) {
            if m.player {
                self.metrics.players.dec();
            }
        }
        self.game.remove_player(player);
    }

    fn expire_disconnected(&mut self, now: Instant) {
        let grace = self.config.grace;
        let expired: Vec<PlayerId> = self
            .members
            .iter()
            .filter(|(_, m)| m.disconnected_at.is_some_and(|t| now.saturating_duration_since(t) >= grace))
            .map(|(id, _)| *id)
            .collect();
        for player in expired {
            debug!(room = %self.id, %player, "grace period over");
            self.remove(player);
        }
    }

    async fn retire_if_idle(&mut self) -> bool {
        if !self.members.is_empty() || self.game.is_running() {
            self.empty_since = None;
            return false;
        }
        let since = *self.empty_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.config.empty_ttl {
            return false;
        }
        match self.backend.retire_room_if_empty(&self.id).await {
            Ok(true) => true,
            Ok(false) => {
                // A seat was taken meanwhile: a player is on the way.
                self.empty_since = None;
                false
            }
            Err(e) => {
                warn!(room = %self.id, error = %e, "could not retire room");
                false
            }
        }
    }

    fn refresh_top_scores(&self) {
        let backend = self.backend.clone();
        let tx = self.internal_tx.clone();
        let n = self.config.settings.top_scores;
        tokio::spawn(async move {
            match backend.top_scores(n).await {
                Ok(scores) => {
                    let _ = tx.send(Internal::TopScores(scores)).await;
                }
                Err(e) => warn!(error = %e, "could not load top scores"),
            }
        });
    }

    /// Saves the game's top scores to the shared store, then reloads the
    /// merged list of all rooms.
    fn save_top_scores(&self) {
        let backend = self.backend.clone();
        let tx = self.internal_tx.clone();
        let scores = self.game.top_scores().to_vec();
        let n = self.config.settings.top_scores;
        tokio::spawn(async move {
            for s in scores {
                if let Err(e) = backend.submit_score(s).await {
                    warn!(error = %e, "could not save a top score");
                }
            }
            if let Ok(scores) = backend.top_scores(n).await {
                let _ = tx.send(Internal::TopScores(scores)).await;
            }
        });
    }
}

/// Names are checked by the gateway; the bus is still not trusted with more
/// than 15 characters.
fn clamp_name(name: String) -> String {
    name.chars().filter(|c| !c.is_control()).take(snakepit_shared::protocol::NAME_MAX_CHARS).collect()
}
