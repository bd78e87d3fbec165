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
//!
//! The room is split by concern: `config` is its contract with the host,
//! `members` decides who is there (presence, grace, the takeover hold),
//! `effects` holds what it writes to the store in the background
//! (snapshots, seats, top scores), in a `JoinSet` the room owns and settles
//! when it stops, `chores` says when the slower duties are due, `ticks` when
//! its ticks fall, and `stop` watches its stop signals. This module is the
//! loop that ties them to the clock and the input.

mod chores;
mod config;
mod effects;
mod members;
mod stop;
mod ticks;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use snakepit_bus::{Backend, ConnId, FrameKind, InputKind, Lease, OutFrame, PlayerId, RoomId, RoomInput, Subscription};
use snakepit_protocol::frame_writer::{FrameWriter, error_frame};
use tokio::sync::watch;
use tokio::time::{Instant, timeout};
use tracing::{debug, info, warn};

use self::chores::Chores;
pub use self::config::{RoomConfig, RoomControl, RoomDeps, RoomEnv, RoomExit};
use self::effects::Effects;
use self::members::{HOLD_AFTER_TAKEOVER, Member};
use self::stop::{Stop, Why};
pub use self::ticks::TickGrid;
use self::ticks::tick_after;
use crate::snapshot::RoomSnapshot;
use snakepit_game::frame::encode_tick;
use snakepit_game::game::{Event, Game};

/// Most members (players and spectators) a room keeps.
const MAX_MEMBERS: usize = 1000;
/// A running room's chores wait for its next tick if that comes within
/// this: at ordinary tick rates they never wake it on their own.
const CHORE_SLACK: Duration = Duration::from_millis(100);
/// How long a room's opening waits for the top scores.
const TOP_SCORES_WAIT: Duration = Duration::from_millis(500);

pub struct Room<B> {
    id: RoomId,
    /// What the worker's rooms share: the store, the settings, the
    /// metrics, the publisher, the gateways' counts and the tick grid.
    env: Arc<RoomEnv<B>>,
    /// The current lease: the host renews it, and after Redis lost its data
    /// it may re-acquire it with a higher epoch (the only change of this
    /// watch: the room then writes again what the store may have lost).
    lease: watch::Receiver<Lease>,
    game: Game,
    inputs: Subscription<RoomInput>,
    members: HashMap<PlayerId, Member>,
    writer: FrameWriter,
    /// Snapshots, seats and top scores under way in the background.
    effects: Effects,
    empty_since: Option<Instant>,
    /// Something changed since the last snapshot.
    dirty: bool,
    /// Snapshots written so far (each under the current lease is fenced
    /// from landing over a later one).
    snapshot_seq: u64,
    /// A score, a birth or a death since the last snapshot: a player would
    /// see it undone if the process died now, so the next snapshot goes
    /// out at once rather than at the interval.
    urgent: bool,
    /// This room's share of the alive-snakes gauge.
    alive_reported: i64,
    /// After a takeover the world holds still until the restored players'
    /// gateways have entered again (and so their clients have the world),
    /// or until this instant: nobody's snake moves unseen.
    hold_until: Option<Instant>,
    awaiting: HashSet<PlayerId>,
    /// Connections replaced by a newer one of the same player: an enter
    /// from one of them is answered with `Superseded` again, never let in.
    superseded: HashMap<ConnId, PlayerId>,
    /// Best score per name known to be in the store: a death whose score
    /// beats it is sent at once, not only when the game ends.
    stored: HashMap<String, u64>,
    /// The gateways (see [`crate::gateways`]) this room's members are on,
    /// as last told to the worker's counts, and the verdicts.
    on_gateways: HashSet<String>,
    gone_gateways: watch::Receiver<Arc<HashSet<String>>>,
    /// When its slower duties are due (set afresh as it starts running).
    chores: Chores,
}

/// The room's share of the worker's gateway counts goes with it however it
/// ends: returned, or dropped by its supervisor after a panic.
impl<B> Drop for Room<B> {
    fn drop(&mut self) {
        self.env.gateways.moved(&self.on_gateways, &HashSet::new());
    }
}

impl<B: Backend> Room<B> {
    /// Subscribes to the room's input; the room runs from [`Room::run`].
    /// With a snapshot, the room goes on where its last owner left it.
    pub async fn open(
        id: RoomId,
        deps: RoomDeps<B>,
        snapshot: Option<RoomSnapshot>,
        seed: u64,
    ) -> Result<Self, snakepit_bus::BusError> {
        let RoomDeps { env, lease } = deps;
        let (backend, config) = (&env.backend, &env.config);
        let inputs = backend.subscribe_input(&id).await?;
        let (mut game, members) = match snapshot {
            Some(s) => {
                let members = members::restore(s.members, Instant::now());
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
        let awaiting = members::awaited(&members);
        let gone_gateways = env.gateways.watch_gone();
        let chores = Chores::of(Instant::now(), config);
        let mut room = Self {
            effects: Effects::new(id.clone()),
            game,
            id,
            env,
            lease,
            inputs,
            members,
            // Grows to the largest tick frame of the room (a welcome has its own).
            writer: FrameWriter::default(),
            empty_since: None,
            dirty: true,
            snapshot_seq: 0,
            urgent: false,
            alive_reported: 0,
            hold_until: None,
            awaiting: Default::default(),
            superseded: HashMap::new(),
            stored: HashMap::new(),
            gone_gateways,
            on_gateways: HashSet::new(),
            chores,
        };
        // What the store was read to hold is stored; a list that only came
        // with the snapshot is checked against the store's when it is read.
        if scores_loaded {
            let loaded = room.game.top_scores().to_vec();
            room.note_stored(&loaded);
        } else {
            room.refresh_top_scores();
        }
        if restored {
            room.hold_until = Some(Instant::now() + HOLD_AFTER_TAKEOVER);
            room.awaiting = awaiting;
        }
        Ok(room)
    }

    /// Runs the room until it stops. Boxed: a future keeps what an `async
    /// fn` takes by value twice (as it came, and as the body's own), and a
    /// room is a kilobyte and a half, kept for the room's whole life.
    pub async fn run(mut self: Box<Self>, control: RoomControl) -> RoomExit {
        self.env.metrics.rooms.inc();
        let players = self.members.values().filter(|m| m.player).count() as i64;
        self.env.metrics.players.add(players);
        self.sync_alive_metric();
        info!(room = %self.id, epoch = self.lease.borrow().epoch, tick = self.game.tick(), "room started");
        self.announce_epoch();
        let period = self.env.config.settings.tick_period();
        let mut next_tick = self.env.ticks.first_tick(Instant::now(), period);
        self.chores = Chores::of(Instant::now(), &self.env.config);
        // The room's one timer: its next tick, or its next chore. It and the
        // stop signals are made once, not at every turn of the loop.
        let wake = tokio::time::sleep_until(self.chores.next_due());
        let mut stop = Stop::new(&control.lost, &control.shutdown);
        tokio::pin!(wake);
        let exit = loop {
            // Running, the room wakes for its tick: what an idle room waits
            // for below is looked at once per tick, without waiting (a
            // dozen futures made, polled and dropped per tick were most of
            // a running room's upkeep). So are its finished writes: a full
            // room's snapshots are about six a second, and a wake-up each
            // cost more than the tick they wait for. (A snapshot refused
            // stops the room at its next tick; the host, which renews the
            // lease, stops it as well.) Chores wake it between ticks only
            // when ticks are slow.
            if self.game.is_running() {
                let chore = self.chores.next_due();
                wake.as_mut().reset(if chore + CHORE_SLACK < next_tick { chore } else { next_tick });
                tokio::select! {
                    biased;
                    why = &mut stop => break self.stopped(why).await,
                    () = &mut wake => {}
                }
                // Verdicts on gateways and a new lease before the tick (no
                // snake of a dead gateway takes a step unseen); effects and
                // chores after it (a snapshot due at the tick's instant
                // holds it), as an idle room's select would take them.
                self.news_before_tick();
                let now = Instant::now();
                if now >= next_tick && self.game.is_running() {
                    let scheduled = next_tick;
                    next_tick = tick_after(scheduled, period, now);
                    self.on_tick(scheduled);
                }
                if let Some(exit) = self.between_ticks().await {
                    break exit;
                }
                continue;
            }
            wake.as_mut().reset(self.chores.next_due());
            tokio::select! {
                biased;
                why = &mut stop => break self.stopped(why).await,
                input = self.inputs.recv() => {
                    let Some(input) = input else { break RoomExit::Closed };
                    self.handle(input);
                    self.sync_alive_metric();
                    if self.game.is_running() {
                        // The first step comes one period after the join
                        // (on the worker's grid of ticks); the inputs until
                        // then are taken at that tick, and no input wakes
                        // the room in between.
                        next_tick = self.env.ticks.first_tick(Instant::now(), period);
                        self.inputs.stop_waiting();
                    }
                }
                Some(outcome) = self.effects.next(), if !self.effects.is_empty() => {
                    if let Some(exit) = self.apply(outcome) {
                        break exit;
                    }
                }
                Ok(()) = self.gone_gateways.changed() => self.park_gone_gateways(),
                Ok(()) = self.lease.changed() => self.on_new_lease(),
                () = &mut wake => {
                    if let Some(exit) = self.do_chores().await {
                        break exit;
                    }
                }
            }
        };
        self.finish_effects(exit).await;
        let players = self.members.values().filter(|m| m.player).count() as i64;
        self.env.metrics.players.sub(players);
        self.env.metrics.snakes_alive.sub(self.alive_reported);
        self.env.metrics.rooms.dec();
        info!(room = %self.id, ?exit, "room stopped");
        exit
    }

    /// What a running room takes in before its tick: gateways found gone
    /// (their members' snakes park) and a new lease.
    fn news_before_tick(&mut self) {
        if self.gone_gateways.has_changed().unwrap_or(false) {
            self.park_gone_gateways();
        }
        if self.lease.has_changed().unwrap_or(false) {
            self.on_new_lease();
        }
    }

    /// After a running room's tick: finished effects, then the chores due.
    /// `Some` if the room must stop.
    async fn between_ticks(&mut self) -> Option<RoomExit> {
        while let Some(outcome) = self.effects.try_next() {
            if let Some(exit) = self.apply(outcome) {
                return Some(exit);
            }
        }
        self.do_chores().await
    }

    /// The chores due now; `Some` if the room retired.
    async fn do_chores(&mut self) -> Option<RoomExit> {
        let now = Instant::now();
        let due = self.chores.take_due(now);
        if due.snapshot {
            self.spawn_snapshot();
        }
        if due.seats {
            self.confirm_seats();
        }
        if due.housekeeping {
            self.expire_disconnected(now);
            self.publish_ended();
            // A game that stands still sends no ticks: its epoch goes out
            // again every second, for a gateway that missed the
            // announcement while its subscription was restored.
            if !self.game.is_running() {
                self.announce_epoch();
            }
            if self.retire_if_idle().await {
                return Some(RoomExit::Retired);
            }
        }
        None
    }

    /// The lease lost: stop without writing anything. Asked to stop by the
    /// worker: hand the room over.
    async fn stopped(&mut self, why: Why) -> RoomExit {
        match why {
            Why::LeaseLost => RoomExit::LeaseLost,
            Why::Shutdown => self.hand_over().await,
        }
    }

    /// Asked to stop by the worker: with a final snapshot for the next
    /// owner, or (standalone, nobody takes the room over) the game ends
    /// here, as the original's did when its players left, and its scores
    /// are kept.
    async fn hand_over(&mut self) -> RoomExit {
        if self.env.config.snapshot_every.is_some() {
            return self.save_final_snapshot().await;
        }
        self.submit_final_scores().await;
        RoomExit::HandedOver
    }

    fn on_tick(&mut self, scheduled: Instant) {
        let started = Instant::now();
        self.env.metrics.tick_lag.observe(started.saturating_duration_since(scheduled).as_secs_f64());
        while let Some(input) = self.inputs.try_recv() {
            self.handle(input);
        }
        self.expire_disconnected(started);
        self.release_resume_holds(started);
        if self.holding(started) {
            return;
        }
        let payload = self.step();
        self.env.metrics.tick_duration.observe(started.elapsed().as_secs_f64());
        self.publish(FrameKind::Tick, payload);
        if self.urgent {
            self.spawn_snapshot();
        }
    }

    /// One step of the game as its tick frame; a game that ended saves its
    /// top scores.
    fn step(&mut self) -> Bytes {
        self.game.step();
        let payload = encode_tick(&mut self.writer, &self.game);
        self.dirty = true;
        let lasting = |e: &Event| matches!(e, Event::Joined { .. } | Event::GameOver(_) | Event::Score { .. });
        if self.env.config.snapshot_every.is_some() && self.game.events().iter().any(lasting) {
            self.urgent = true;
        }
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

    /// The host took the lease again (Redis lost its data): the new epoch
    /// goes out, and what the store may have lost is written again.
    fn on_new_lease(&mut self) {
        self.lease.mark_unchanged();
        self.announce_epoch();
        self.rewrite_lost_state();
    }

    /// Gateways learn a (new) epoch from any frame, and resynchronise their
    /// members: announce it even while the game is idle.
    fn announce_epoch(&mut self) {
        let announce = FrameWriter::with_capacity(32).finish_tick(self.game.tick());
        self.publish(FrameKind::Tick, announce);
    }

    fn publish(&self, kind: FrameKind, payload: Bytes) {
        let frame = OutFrame { epoch: self.lease.borrow().epoch, tick: self.game.tick(), kind, payload };
        self.env.publisher.publish(&self.id, frame);
    }

    fn direct_error(&self, player: PlayerId, text: &str) {
        self.publish(FrameKind::Direct(player), error_frame(text));
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
            InputKind::Enter { name, resync, key, gateway } => {
                self.enter(player, conn, name, resync, key);
                self.set_gateway(player, conn, gateway);
            }
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
                self.steered(player);
                self.game.turn(player, dir);
            }
            InputKind::Disconnect if self.current(player, conn) => {
                let alive = self.game.player(player).is_some_and(|p| p.alive);
                if alive {
                    self.set_away(player, Some(Instant::now()));
                    // Ahead of this tick's frame, in which it stands still.
                    self.publish(FrameKind::Parked { player, conn }, Bytes::new());
                    // Its connection ended in order: its gateway is none of
                    // this member's business any more (a drained gateway
                    // that then exits is no death to find).
                    self.set_gateway(player, conn, None);
                } else {
                    self.remove(player, true);
                    // Nothing to park, and said so: a draining gateway
                    // waits for this word before it closes the client.
                    self.publish(FrameKind::Parked { player, conn }, Bytes::new());
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

    /// Brings the alive-snakes gauge in line with this room's count, robots
    /// included (they cost a tick like anyone's snake; the players gauge
    /// counts people).
    fn sync_alive_metric(&mut self) {
        let alive = self.game.alive_count() as i64;
        self.env.metrics.snakes_alive.add(alive - self.alive_reported);
        self.alive_reported = alive;
    }

    async fn retire_if_idle(&mut self) -> bool {
        if !self.members.is_empty() || self.game.is_running() {
            self.empty_since = None;
            return false;
        }
        let since = *self.empty_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.env.config.empty_ttl {
            return false;
        }
        match self.env.backend.retire_room_if_empty(&self.id).await {
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
}
