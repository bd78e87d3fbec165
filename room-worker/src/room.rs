//! A room as an actor: it owns its game, steps it at a fixed tick while
//! someone is alive, and publishes one frame per tick on the room's output.
//!
//! While the game runs, inputs are drained without waiting at the start of
//! each tick; while nobody is alive, the room waits for input. An empty room
//! retires itself after a while, if the directory agrees that no seat is
//! taken.
//!
//! The room runs under a lease: its epoch is stamped on every frame, and it
//! snapshots itself (fenced by the lease) so that another worker can take
//! over. Frames go to the worker's publisher without waiting on the bus.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use snakepit_bus::{
    Backend, ConnId, FrameKind, InputKind, Lease, OutFrame, PlayerId, RoomId, RoomInput, ScoreEntry, SnapshotWrite,
    Subscription,
};
use snakepit_protocol::frame_writer::{FrameWriter, error_frame};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::metrics::WorkerMetrics;
use crate::publisher::Publisher;
use crate::snapshot::{MemberSnapshot, RoomSnapshot};
pub use snakepit_game::RoomConfig;
use snakepit_game::frame::{encode_tick, encode_welcome};
use snakepit_game::game::{Event, Game};

/// Most members (players and spectators) a room keeps.
const MAX_MEMBERS: usize = 1000;
/// Superseded connections a room remembers; past this it forgets them all
/// (they are closed within moments of being superseded anyway).
const MAX_SUPERSEDED: usize = 4 * MAX_MEMBERS;
/// Longest a taken-over room waits for its players to be resynchronised.
const HOLD_AFTER_TAKEOVER: Duration = Duration::from_secs(1);
/// How long a room's opening waits for the top scores.
const TOP_SCORES_WAIT: Duration = Duration::from_millis(500);

/// Why a room stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomExit {
    /// Empty for long enough and removed from the directory.
    Retired,
    /// The worker is stopping: a final snapshot was written.
    HandedOver,
    /// Another worker holds the lease now (or a newer epoch wrote a
    /// snapshot): the room stopped at once.
    LeaseLost,
    /// The input subscription ended.
    Closed,
}

/// How a room is told to stop.
#[derive(Clone, Debug, Default)]
pub struct RoomControl {
    /// Hand over: final snapshot, then stop.
    pub shutdown: CancellationToken,
    /// Lease lost: stop without writing anything.
    pub lost: CancellationToken,
}

struct Member {
    conn: ConnId,
    player: bool,
    disconnected_at: Option<Instant>,
    /// Last input or presence from the member's gateway.
    seen: Instant,
    /// `conn` entered this room instance; false for a member restored from
    /// a snapshot until its connection enters again.
    confirmed: bool,
    /// Away only because its gateway went quiet (not because its
    /// connection ended): hearing from the connection again brings it back.
    silent: bool,
    /// The identity's key (see `InputKind::Enter`); 0: unknown.
    key: u64,
}

enum Internal {
    TopScores(Vec<ScoreEntry>),
    /// Another owner holds the room: stop.
    SnapshotRefused,
    /// Not written (Redis away, or nobody holds the lease until the host
    /// takes it again): the changes are still to be saved.
    SnapshotNotSaved,
}

pub struct Room<B> {
    id: RoomId,
    backend: B,
    config: RoomConfig,
    /// The current lease: the host renews it, and after Redis lost its data
    /// it may re-acquire it with a higher epoch.
    lease: watch::Receiver<Lease>,
    publisher: Publisher,
    game: Game,
    inputs: Subscription<RoomInput>,
    members: HashMap<PlayerId, Member>,
    writer: FrameWriter,
    metrics: WorkerMetrics,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,
    empty_since: Option<Instant>,
    /// Something changed since the last snapshot.
    dirty: bool,
    /// This room's share of the alive-snakes gauge.
    alive_reported: i64,
    /// After a takeover the world holds still until the restored players'
    /// gateways have entered again (and so their clients have the world),
    /// or until this instant: nobody's snake moves unseen.
    hold_until: Option<Instant>,
    awaiting: std::collections::HashSet<PlayerId>,
    /// Connections replaced by a newer one of the same player: an enter
    /// from one of them is answered with `Superseded` again, never let in.
    superseded: HashMap<ConnId, PlayerId>,
    /// Best score per name known to be in the store: a death whose score
    /// beats it is sent at once, not only when the game ends.
    stored: HashMap<String, u64>,
}

impl<B: Backend> Room<B> {
    /// Subscribes to the room's input; the room runs from [`Room::run`].
    /// With a snapshot, the room goes on where its last owner left it.
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        id: RoomId,
        backend: B,
        config: RoomConfig,
        lease: watch::Receiver<Lease>,
        snapshot: Option<RoomSnapshot>,
        seed: u64,
        metrics: WorkerMetrics,
        publisher: Publisher,
    ) -> Result<Self, snakepit_bus::BusError> {
        let inputs = backend.subscribe_input(&id).await?;
        let (internal_tx, internal_rx) = mpsc::channel(4);
        let (mut game, members): (Game, HashMap<PlayerId, Member>) = match snapshot {
            Some(s) => {
                let now = Instant::now();
                let members: HashMap<PlayerId, Member> = s
                    .members
                    .into_iter()
                    .map(|m| {
                        let disconnected_at = m.disconnected.then_some(now);
                        let member = Member {
                            conn: m.conn,
                            player: m.is_player,
                            disconnected_at,
                            seen: now,
                            confirmed: false,
                            silent: false,
                            key: m.key,
                        };
                        (m.player, member)
                    })
                    .collect();
                let mut game = s.game;
                // The parked snakes are the away players' (also for a
                // snapshot written before the game recorded it).
                for (id, m) in &members {
                    game.set_parked(*id, m.disconnected_at.is_some());
                }
                (game, members)
            }
            None => (Game::new(config.settings.clone(), seed), HashMap::new()),
        };
        // A snake may stand parked for the grace period in a row at most.
        game.set_park_allowance((config.grace.as_secs_f64() * config.settings.tick_rate).ceil() as u32);
        // The top scores are in the welcome from the first visitor on (a
        // slow store: they follow in the background).
        let scores_loaded = match timeout(TOP_SCORES_WAIT, backend.top_scores(config.settings.top_scores)).await {
            Ok(Ok(scores)) => {
                game.set_top_scores(scores);
                true
            }
            Ok(Err(e)) => {
                warn!(room = %id, error = %e, "could not load top scores; retrying in the background");
                false
            }
            Err(_) => false,
        };
        let restored = !members.is_empty();
        let awaiting = members.iter().filter(|(_, m)| m.player).map(|(id, _)| *id).collect();
        let mut room = Self {
            game,
            id,
            backend,
            config,
            lease,
            publisher,
            inputs,
            members,
            writer: FrameWriter::with_capacity(2048),
            metrics,
            internal_tx,
            internal_rx,
            empty_since: None,
            dirty: true,
            alive_reported: 0,
            hold_until: None,
            awaiting: Default::default(),
            superseded: HashMap::new(),
            stored: HashMap::new(),
        };
        let loaded = room.game.top_scores().to_vec();
        room.note_stored(&loaded);
        if !scores_loaded {
            room.refresh_top_scores();
        }
        if restored {
            room.hold_until = Some(Instant::now() + HOLD_AFTER_TAKEOVER);
            room.awaiting = awaiting;
        }
        Ok(room)
    }

    pub async fn run(mut self, control: RoomControl) -> RoomExit {
        self.metrics.rooms.inc();
        let players = self.members.values().filter(|m| m.player).count() as i64;
        self.metrics.players.add(players);
        self.sync_alive_metric();
        info!(room = %self.id, epoch = self.lease.borrow().epoch, tick = self.game.tick(), "room started");
        self.announce_epoch();
        let mut ticks = tokio::time::interval(self.config.settings.tick_period());
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        housekeeping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let snapshot_every = self.config.snapshot_every;
        let mut snapshots = tokio::time::interval(snapshot_every.unwrap_or(Duration::from_secs(3600)));
        snapshots.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut seats = tokio::time::interval(self.config.seat_hold / 3);
        seats.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let exit = loop {
            tokio::select! {
                biased;
                _ = control.lost.cancelled() => break RoomExit::LeaseLost,
                _ = control.shutdown.cancelled() => {
                    if snapshot_every.is_some() {
                        self.save_snapshot().await;
                    } else {
                        // Nobody takes the room over (standalone): the
                        // game ends here, as the original's did when its
                        // players left, and its scores must be kept.
                        self.submit_final_scores().await;
                    }
                    break RoomExit::HandedOver;
                }
                scheduled = ticks.tick(), if self.game.is_running() => self.on_tick(scheduled),
                input = self.inputs.recv(), if !self.game.is_running() => {
                    let Some(input) = input else { break RoomExit::Closed };
                    self.handle(input);
                    self.sync_alive_metric();
                    if self.game.is_running() {
                        // The first step comes one period after the join.
                        ticks.reset();
                    }
                }
                Some(msg) = self.internal_rx.recv() => match msg {
                    Internal::TopScores(scores) => {
                        self.note_stored(&scores);
                        self.game.set_top_scores(scores);
                    }
                    Internal::SnapshotRefused => break RoomExit::LeaseLost,
                    Internal::SnapshotNotSaved => self.dirty = true,
                },
                _ = snapshots.tick(), if snapshot_every.is_some() => self.spawn_snapshot(),
                _ = seats.tick() => self.confirm_seats(),
                Ok(()) = self.lease.changed() => self.announce_epoch(),
                _ = housekeeping.tick() => {
                    self.expire_disconnected(Instant::now());
                    self.publish_ended();
                    if self.retire_if_idle().await {
                        break RoomExit::Retired;
                    }
                }
            }
        };
        let players = self.members.values().filter(|m| m.player).count() as i64;
        self.metrics.players.sub(players);
        self.metrics.snakes_alive.sub(self.alive_reported);
        self.metrics.rooms.dec();
        info!(room = %self.id, ?exit, "room stopped");
        exit
    }

    fn on_tick(&mut self, scheduled: Instant) {
        let started = Instant::now();
        self.metrics.tick_lag.observe(started.saturating_duration_since(scheduled).as_secs_f64());
        while let Some(input) = self.inputs.try_recv() {
            self.handle(input);
        }
        self.expire_disconnected(started);
        if self.holding(started) {
            return;
        }
        let payload = self.step();
        self.metrics.tick_duration.observe(started.elapsed().as_secs_f64());
        self.publish(FrameKind::Tick, payload);
    }

    /// One step of the game as its tick frame; a game that ended saves its
    /// top scores.
    fn step(&mut self) -> Bytes {
        self.game.step();
        let payload = encode_tick(&mut self.writer, &self.game);
        self.dirty = true;
        if self.game.just_ended() {
            self.save_top_scores(true);
        } else if self.game.events().iter().any(|e| matches!(e, Event::TopScores)) {
            // A death while others play on: its score is kept now, so that
            // a crash of the process before the game ends does not lose it.
            self.save_top_scores(false);
        }
        self.game.clear_events();
        self.sync_alive_metric();
        payload
    }

    /// Publishes what happened outside a tick once the game has stopped: a
    /// last snake removed by housekeeping (its grace period ran out) ends
    /// the game, and its `p_gameover`, the GAME OVER text and the top
    /// scores must still go out, as one more tick.
    fn publish_ended(&mut self) {
        if self.game.is_running() || self.game.events().is_empty() {
            return;
        }
        let payload = self.step();
        self.publish(FrameKind::Tick, payload);
    }

    /// Gateways learn a (new) epoch from any frame, and resynchronise their
    /// members: announce it even while the game is idle.
    fn announce_epoch(&mut self) {
        self.lease.mark_unchanged();
        let announce = FrameWriter::with_capacity(32).finish_tick(self.game.tick());
        self.publish(FrameKind::Tick, announce);
    }

    fn publish(&self, kind: FrameKind, payload: Bytes) {
        let frame = OutFrame { epoch: self.lease.borrow().epoch, tick: self.game.tick(), kind, payload };
        self.publisher.publish(&self.id, frame);
    }

    fn direct_error(&self, player: PlayerId, text: &str) {
        self.publish(FrameKind::Direct(player), error_frame(text));
    }

    /// True if `input` comes from the player's current connection.
    fn current(&self, player: PlayerId, conn: ConnId) -> bool {
        self.members.get(&player).is_some_and(|m| m.conn == conn)
    }

    fn handle(&mut self, RoomInput { player, conn, kind }: RoomInput) {
        // Robot snakes belong to the game, never to a member: nobody enters,
        // steers or leaves as one (gateways give people positive ids).
        if player.is_robot() {
            debug!(room = %self.id, %player, "input for a robot id ignored");
            return;
        }
        // Presence changes nothing a snapshot holds.
        if !matches!(kind, InputKind::Presence(_)) {
            self.dirty = true;
        }
        if let Some(m) = self.members.get_mut(&player).filter(|m| m.conn == conn) {
            m.seen = Instant::now();
        }
        match kind {
            InputKind::Enter { name, resync, key } => self.enter(player, conn, name, resync, key),
            InputKind::Join if self.current(player, conn) => {
                let is_player = self.members.get(&player).is_some_and(|m| m.player);
                if !is_player {
                    self.direct_error(player, "Spectators cannot join; send new_player");
                } else if let Err(e) = self.game.join(player) {
                    self.direct_error(player, &e.to_string());
                }
            }
            InputKind::Turn(dir) if self.current(player, conn) => {
                self.heard_from(player);
                self.game.turn(player, dir);
            }
            InputKind::Disconnect if self.current(player, conn) => {
                let alive = self.game.player(player).is_some_and(|p| p.alive);
                if alive {
                    self.set_away(player, Some(Instant::now()));
                    // Ahead of this tick's frame, in which it stands still.
                    self.publish(FrameKind::Parked { player, conn }, Bytes::new());
                } else {
                    self.remove(player, true);
                }
            }
            // The gateway gives the seat back itself, and may already have
            // taken a new one in this room for the same player (spectate,
            // then enter): the room must not free that one.
            InputKind::Leave if self.current(player, conn) => self.remove(player, false),
            InputKind::Presence(members) => {
                let now = Instant::now();
                for (player, conn) in members {
                    if let Some(m) = self.members.get_mut(&player).filter(|m| m.conn == conn) {
                        m.seen = now;
                        self.heard_from(player);
                    }
                }
            }
            _ => debug!(room = %self.id, %player, "input from a stale connection ignored"),
        }
    }

    fn enter(&mut self, player: PlayerId, conn: ConnId, name: Option<String>, resync: bool, key: u64) {
        if self.superseded.contains_key(&conn) {
            // A resync or a late retry of a replaced connection.
            self.supersede(player, conn);
            return;
        }
        match self.members.get(&player) {
            // Someone else with the member's id (the id counter was lost
            // with Redis's data): the member keeps its snake, and the
            // newcomer is shut out as if superseded, never let in.
            Some(m) if m.conn != conn && m.key != 0 && key != 0 && m.key != key => {
                warn!(room = %self.id, %player, "another person entered with a member's id; refused");
                self.supersede(player, conn);
                return;
            }
            // A connection that had its world entering again does not take
            // the member back from a newer one that entered here since.
            Some(m) if m.conn != conn && resync && m.confirmed => {
                self.supersede(player, conn);
                return;
            }
            // A new connection of the player (a resume, a second tab): the
            // older one is shut out, so that only one steers.
            Some(m) if m.conn != conn => self.supersede(player, m.conn),
            _ => {}
        }
        self.awaiting.remove(&player);
        let full = self.members.len() >= MAX_MEMBERS;
        match self.members.get_mut(&player) {
            Some(m) => {
                // Back within the grace period, or a repeated enter. Heard
                // from now: the old connection's silence must not count
                // against the new one before its gateway's first presence.
                m.conn = conn;
                m.seen = Instant::now();
                m.confirmed = true;
                if m.key == 0 {
                    m.key = key;
                }
                if let (false, Some(name)) = (m.player, name) {
                    m.player = true;
                    self.game.add_player(player, clamp_name(name));
                    self.metrics.players.inc();
                }
                // A parked snake moves on from where it stood.
                self.set_away(player, None);
            }
            None if full => {
                self.direct_error(player, "Room is full");
                return;
            }
            None => {
                let is_player = name.is_some();
                if let Some(name) = name {
                    self.game.add_player(player, clamp_name(name));
                    self.metrics.players.inc();
                }
                let member = Member {
                    conn,
                    player: is_player,
                    disconnected_at: None,
                    seen: Instant::now(),
                    confirmed: true,
                    silent: false,
                    key,
                };
                self.members.insert(player, member);
            }
        }
        self.empty_since = None;
        self.publish(FrameKind::Welcome(player), encode_welcome(&self.game));
    }

    /// Remembers `conn` of `player` as replaced and tells its gateway, which
    /// closes it.
    fn supersede(&mut self, player: PlayerId, conn: ConnId) {
        if self.superseded.len() >= MAX_SUPERSEDED {
            self.superseded.clear();
        }
        self.superseded.insert(conn, player);
        debug!(room = %self.id, %player, "connection superseded");
        self.publish(FrameKind::Superseded { player, conn }, Bytes::new());
    }

    /// Its current connection spoke: a member taken for away because its
    /// gateway went silent is back, and its snake moves on. A member whose
    /// connection ended stays away: a presence note written before the end
    /// may arrive after its `Disconnect`.
    fn heard_from(&mut self, player: PlayerId) {
        if self.members.get(&player).is_some_and(|m| m.disconnected_at.is_some() && m.silent) {
            self.dirty = true;
            self.set_away(player, None);
        }
    }

    /// Marks a member away since `since` (its snake parks) or back (`None`:
    /// its snake moves on).
    fn set_away(&mut self, player: PlayerId, since: Option<Instant>) {
        if let Some(m) = self.members.get_mut(&player) {
            m.disconnected_at = since;
            m.silent = false;
        }
        self.game.set_parked(player, since.is_some());
    }

    /// Whether a taken-over room still waits for its players' worlds.
    fn holding(&mut self, now: Instant) -> bool {
        match self.hold_until {
            Some(until) if now < until && !self.awaiting.is_empty() => true,
            Some(_) => {
                self.hold_until = None;
                self.awaiting.clear();
                false
            }
            None => false,
        }
    }

    /// Brings the alive-snakes gauge in line with this room's count, robots
    /// included (they cost a tick like anyone's snake; the players gauge
    /// counts people).
    fn sync_alive_metric(&mut self) {
        let alive = self.game.alive_count() as i64;
        self.metrics.snakes_alive.add(alive - self.alive_reported);
        self.alive_reported = alive;
    }

    /// Removes a member; with `release`, a player's seat comes free at once
    /// (should that be lost, it expires once the room no longer confirms it).
    fn remove(&mut self, player: PlayerId, release: bool) {
        self.superseded.retain(|_, p| *p != player);
        if let Some(m) = self.members.remove(&player)
            && m.player
        {
            self.metrics.players.dec();
            if release {
                let (backend, room) = (self.backend.clone(), self.id.clone());
                tokio::spawn(async move {
                    if let Err(e) = backend.release_seat(&room, player).await {
                        debug!(%room, error = %e, "could not release a seat");
                    }
                });
            }
        }
        self.game.remove_player(player);
    }

    /// Removes disconnected members whose grace period is over, or whose
    /// snake died meanwhile (nothing left to come back to); a member whose
    /// gateway went silent counts as disconnected from then on, and its
    /// snake parks.
    fn expire_disconnected(&mut self, now: Instant) {
        let silence = self.config.presence_timeout;
        let silent: Vec<PlayerId> = self
            .members
            .iter()
            .filter(|(_, m)| m.disconnected_at.is_none() && now.saturating_duration_since(m.seen) >= silence)
            .map(|(id, _)| *id)
            .collect();
        for player in silent {
            self.dirty = true;
            self.set_away(player, Some(now));
            if let Some(m) = self.members.get_mut(&player) {
                m.silent = true;
            }
        }
        let grace = self.config.grace;
        let expired: Vec<PlayerId> = self
            .members
            .iter()
            .filter(|(id, m)| {
                m.disconnected_at.is_some_and(|t| {
                    now.saturating_duration_since(t) >= grace || !self.game.player(**id).is_some_and(|p| p.alive)
                })
            })
            .map(|(id, _)| *id)
            .collect();
        for player in expired {
            debug!(room = %self.id, %player, "grace period over");
            self.remove(player, true);
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

    fn snapshot(&self) -> Option<Vec<u8>> {
        let members = self
            .members
            .iter()
            .map(|(id, m)| MemberSnapshot {
                player: *id,
                conn: m.conn,
                is_player: m.player,
                disconnected: m.disconnected_at.is_some(),
                key: m.key,
            })
            .collect();
        let snapshot = RoomSnapshot { game: self.game.clone(), members };
        match snapshot.encode() {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                warn!(room = %self.id, error = %e, "cannot encode a snapshot");
                None
            }
        }
    }

    /// Writes a snapshot in the background. Refused because another owner
    /// holds the room: the room stops. Not written for any other reason:
    /// the room goes on, and saves again next time (a lease that vanished
    /// is taken again by the host, above its old epoch).
    fn spawn_snapshot(&mut self) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        let Some(bytes) = self.snapshot() else { return };
        let backend = self.backend.clone();
        let lease = self.lease.borrow().clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let outcome = match backend.save_snapshot(&lease, bytes.into()).await {
                Ok(SnapshotWrite::Saved) => return,
                Ok(SnapshotWrite::Lost) => Internal::SnapshotRefused,
                Ok(SnapshotWrite::Missing) => {
                    debug!(room = %lease.room, "snapshot not saved: nobody holds the lease");
                    Internal::SnapshotNotSaved
                }
                Err(e) => {
                    warn!(room = %lease.room, error = %e, "snapshot not saved");
                    Internal::SnapshotNotSaved
                }
            };
            let _ = tx.send(outcome).await;
        });
    }

    /// The final snapshot of a handover, written before the room stops.
    async fn save_snapshot(&self) {
        let Some(bytes) = self.snapshot() else { return };
        let lease = self.lease.borrow().clone();
        match self.backend.save_snapshot(&lease, bytes.into()).await {
            Ok(SnapshotWrite::Saved) => {}
            Ok(outcome) => warn!(room = %self.id, ?outcome, "final snapshot not saved"),
            Err(e) => warn!(room = %self.id, error = %e, "final snapshot not saved"),
        }
    }

    /// Holds the seats of this room's players in the directory, in the
    /// background: seats of players who are gone expire.
    fn confirm_seats(&self) {
        let players: Vec<PlayerId> = self.members.iter().filter(|(_, m)| m.player).map(|(id, _)| *id).collect();
        // Spectators' ids count too: the counter must pass every id in use.
        let highest = self.members.keys().copied().max().unwrap_or(PlayerId::NONE);
        let backend = self.backend.clone();
        let (room, hold) = (self.id.clone(), self.config.seat_hold);
        tokio::spawn(async move {
            if let Err(e) = backend.confirm_seats(&room, &players, highest, hold).await {
                warn!(%room, error = %e, "could not confirm seats");
            }
        });
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

    /// The game ends with the room (no successor): its top scores and the
    /// scores of the people still alive go to the store, awaited, so that
    /// they are in it when the room is gone.
    async fn submit_final_scores(&self) {
        let alive = self.game.players().iter().filter(|p| p.alive && !p.id.is_robot() && p.score > 0);
        let entries: Vec<ScoreEntry> = self
            .game
            .top_scores()
            .iter()
            .cloned()
            .chain(alive.map(|p| ScoreEntry { name: p.name.clone(), score: p.score, colour: p.colour }))
            .collect();
        submit_scores(&self.backend, &self.id, entries).await;
    }

    fn note_stored(&mut self, scores: &[ScoreEntry]) {
        if self.stored.len() > 4 * MAX_MEMBERS {
            self.stored.clear();
        }
        for s in scores {
            let best = self.stored.entry(s.name.clone()).or_default();
            *best = (*best).max(s.score);
        }
    }

    /// Sends the game's top scores to the shared store in the background:
    /// when the game ended, all of them, then the merged list of all rooms
    /// is read back; otherwise only those that beat what the store is
    /// known to hold.
    fn save_top_scores(&mut self, ended: bool) {
        let scores: Vec<ScoreEntry> = self
            .game
            .top_scores()
            .iter()
            .filter(|s| ended || self.stored.get(&s.name).is_none_or(|best| *best < s.score))
            .cloned()
            .collect();
        if scores.is_empty() {
            return;
        }
        self.note_stored(&scores);
        let (backend, room, tx) = (self.backend.clone(), self.id.clone(), self.internal_tx.clone());
        let n = self.config.settings.top_scores;
        tokio::spawn(async move {
            submit_scores(&backend, &room, scores).await;
            if ended && let Ok(scores) = backend.top_scores(n).await {
                let _ = tx.send(Internal::TopScores(scores)).await;
            }
        });
    }
}

async fn submit_scores<B: Backend>(backend: &B, room: &RoomId, scores: impl IntoIterator<Item = ScoreEntry>) {
    for s in scores {
        if let Err(e) = backend.submit_score(s).await {
            warn!(%room, error = %e, "could not save a top score");
        }
    }
}

/// Names are checked by the gateway; the bus is still not trusted with more
/// than 15 characters.
fn clamp_name(name: String) -> String {
    name.chars().filter(|c| !c.is_control()).take(snakepit_protocol::client::NAME_MAX_CHARS).collect()
}
