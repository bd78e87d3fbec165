//! One bot: the protocol as a player or spectator plays it, and what the bot
//! measures on the way, with no network in it.
//!
//! The connection task feeds frames and timer wake-ups in and sends what the
//! bot queues; keeping the bot sans-IO lets the tests drive it frame by frame
//! with made-up clocks. A bot lives across reconnections (its tally, random
//! source and buffers stay); everything a connection knows (player id,
//! snake, ticks) lives in a [`Session`] that starts afresh on every connect.
//! What must outlive a connection to come back from its loss (the resume
//! token, where the snake was, the [`Ledger`]) lives in the bot.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::brain::Brain;
use crate::dir::Dir;
use crate::events::Event;
use crate::ledger::{Ledger, Outcome as Back, SnakeState};
use crate::scan::{JsonStr, RawId, Visitor, scan_frame};
use crate::snake::{Outcome, Tracker};
use crate::stats::{Counter, Metric, Stats, Tally};
use crate::view::{Pos, View};

/// Without `p_joined` this long after a `join`, the bot asks again.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// A turn not seen within this many steps of the snake is counted lost.
pub const ECHO_STEPS: u8 = 5;
/// A spectator asks for rooms at most this often before it plays instead.
pub const ROOM_TRIES: u8 = 3;
/// The gateway's answer to a resume whose session is gone.
pub const BAD_TOKEN: &str = "Unknown or expired resume token";
/// Closed because another connection resumed this player: do not fight it.
pub const RESUMED_ELSEWHERE: u16 = 4009;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Player,
    Spectator,
}

/// What a bot is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotConfig {
    pub index: usize,
    pub role: Role,
    /// The room players ask for (`--room-size`); none: the gateway places them.
    pub room: Option<String>,
    pub seed: u64,
    /// With a value, the bot notes [`Event`]s, silences and stalls this
    /// long or longer among them.
    pub events_gap: Option<Duration>,
}

/// A message to send: most are constant texts, so sending allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Static(&'static str),
    Owned(String),
}

impl Msg {
    pub fn as_str(&self) -> &str {
        match self {
            Msg::Static(s) => s,
            Msg::Owned(s) => s,
        }
    }
}

/// A turn sent and not yet seen.
#[derive(Debug, Clone, Copy)]
struct Turn {
    dir: Dir,
    sent: Instant,
    steps: u8,
}

/// The previous frame that carried a tick number.
#[derive(Debug, Clone, Copy)]
struct LastTick {
    n: u64,
    at: Instant,
    /// A plain tick frame: the next consecutive one gives an interval. A
    /// `world` or `reset_world` frame was not sent on a tick's beat.
    plain: bool,
}

/// What one connection knows.
#[derive(Debug, Default)]
pub struct Session {
    started: Option<Instant>,
    role: Option<Role>,
    world_seen: bool,
    snake: Tracker,
    born_tick: Option<u64>,
    tick: Option<u64>,
    last_tick: Option<LastTick>,
    turn: Option<Turn>,
    join_at: Option<Instant>,
    join_sent: Option<Instant>,
    rooms_at: Option<Instant>,
    room_tries: u8,
    spectate_sent: bool,
    /// This connection opened with `["resume", token]`.
    resuming: bool,
    /// When the last frame came (for silences).
    last_frame: Option<Instant>,
    /// The last tick number that advanced, and when (for stalls).
    last_step: Option<(u64, Instant)>,
    /// The bot's score as the protocol reported it (`p_joined`, `p_score`).
    score: u64,
    /// Colour of each player in the room (by id hash), as `p_joined` and
    /// `p_gameover` tell: the protocol draws snakes by colour only, so the
    /// bot knows its head for sure only where its colour is its own.
    colours: std::collections::HashMap<u64, u8>,
}

/// What a frame held that the bot reacts to after applying it.
#[derive(Debug, Default)]
struct Facts {
    tick: Option<u64>,
    world: bool,
    reset: bool,
    joined: bool,
    died: bool,
    rooms: bool,
    rooms_seen: u32,
    room_pick: Option<String>,
    join_refused: bool,
    no_such_room: bool,
    room_full: bool,
    token: Option<String>,
    bad_token: bool,
}

pub struct Bot {
    cfg: BotConfig,
    new_player: Msg,
    rng: SmallRng,
    view: View,
    brain: Brain,
    tally: Tally,
    outbox: Vec<Msg>,
    s: Session,
    /// From the last `handshake`: what a reconnect resumes with.
    token: Option<String>,
    /// Where the snake's head was when the last connection dropped.
    last_head: Option<Pos>,
    ledger: Ledger,
    /// The open fault's snake had a head the bot was sure of.
    ledger_placed: bool,
    /// Events noted and not yet taken (only with `events_gap`).
    events: Vec<Event>,
}

/// Applies one frame's commands to the view and session, noting facts.
struct Apply<'b> {
    view: &'b mut View,
    s: &'b mut Session,
    facts: &'b mut Facts,
    rng: &'b mut SmallRng,
    stats: &'b Stats,
    tally: &'b mut Tally,
}

impl Visitor for Apply<'_> {
    fn tick(&mut self, n: u64) {
        self.facts.tick.get_or_insert(n);
    }

    fn world_begin(&mut self) {
        self.facts.world = true;
        self.s.colours.clear();
        self.view.begin_world();
    }

    fn world_cell(&mut self, _x: u16, _y: u16, ch: u8, colour: u8) {
        self.view.push_cell(ch, colour);
    }

    fn world_end(&mut self, width: u16, height: u16) {
        self.view.end_world(width, height);
    }

    fn reset_world(&mut self) {
        self.facts.reset = true;
        self.view.reset();
        self.s.snake.reset();
    }

    fn render(&mut self, x: u16, y: u16, ch: u8, colour: u8) {
        self.view.set(x, y, ch, colour);
        self.s.snake.render(x, y, ch, colour);
    }

    fn handshake(
        &mut self,
        _name: JsonStr<'_>,
        player_id: RawId<'_>,
        _room: Option<JsonStr<'_>>,
        token: Option<JsonStr<'_>>,
    ) {
        self.s.snake.set_me(player_id.raw());
        self.facts.token = token.and_then(|t| t.decode());
    }

    fn p_joined(&mut self, player_id: RawId<'_>, _name: JsonStr<'_>, colour: u8, score: u64) {
        let tick = self.facts.tick.or(self.s.tick).unwrap_or(0);
        self.s.colours.insert(crate::snake::id_hash(player_id.raw()), colour);
        if self.s.snake.joined(player_id.raw(), colour, self.facts.world, tick) {
            self.s.score = score;
            if !self.facts.world {
                self.facts.joined = true;
            }
        }
    }

    fn p_score(&mut self, player_id: RawId<'_>, score: u64) {
        if self.s.snake.is_me(player_id.raw()) {
            self.s.score = score;
        }
    }

    fn p_gameover(&mut self, player_id: RawId<'_>) {
        self.s.colours.remove(&crate::snake::id_hash(player_id.raw()));
        if self.s.snake.gameover(player_id.raw()) {
            self.facts.died = true;
        }
    }

    fn rooms_begin(&mut self) {
        self.facts.rooms = true;
    }

    fn room(&mut self, room: JsonStr<'_>, players: u64, _capacity: u64) {
        if players == 0 {
            return;
        }
        // Reservoir sampling: every room with players equally likely.
        self.facts.rooms_seen += 1;
        if self.rng.random_range(0..self.facts.rooms_seen) == 0 {
            self.facts.room_pick = room.decode();
        }
    }

    fn error(&mut self, text: JsonStr<'_>) {
        self.tally.add(Counter::Errors, 1);
        let text = text.decode().unwrap_or_else(|| "<undecodable>".into());
        match text.as_str() {
            "Maximum players reached" => self.facts.join_refused = true,
            "No such room" => self.facts.no_such_room = true,
            "Room is full" => self.facts.room_full = true,
            BAD_TOKEN => self.facts.bad_token = true,
            _ => {}
        }
        self.stats.error_text(text);
    }
}

fn new_player_msg(index: usize, room: Option<&str>) -> Msg {
    Msg::Owned(match room {
        Some(room) => format!("[\"new_player\",\"bot{index}\",\"{room}\"]"),
        None => format!("[\"new_player\",\"bot{index}\"]"),
    })
}

fn room_ok(room: &str) -> bool {
    (1..=24).contains(&room.len()) && room.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Bot {
    pub fn new(cfg: BotConfig, now: Instant) -> Bot {
        let room = cfg.room.as_deref().filter(|r| room_ok(r));
        Bot {
            new_player: new_player_msg(cfg.index, room),
            rng: SmallRng::seed_from_u64(cfg.seed ^ (cfg.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            cfg,
            view: View::default(),
            brain: Brain::new(),
            tally: Tally::new(now),
            outbox: Vec::with_capacity(4),
            s: Session::default(),
            token: None,
            last_head: None,
            ledger: Ledger::new(),
            ledger_placed: false,
            events: Vec::new(),
        }
    }

    pub fn config(&self) -> &BotConfig {
        &self.cfg
    }

    /// What this connection does now (a spectator may have become a player).
    pub fn role(&self) -> Role {
        self.s.role.unwrap_or(self.cfg.role)
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Whether the bot's snake is alive (joined and not dead).
    pub fn alive(&self) -> bool {
        self.s.snake.alive()
    }

    /// The bot's head and the way it faces, once it is known.
    pub fn snake(&self) -> Option<(Pos, Dir)> {
        self.s.snake.snake()
    }

    /// Moves the noted events to `out`.
    pub fn take_events(&mut self, out: &mut Vec<Event>) {
        out.append(&mut self.events);
    }

    fn note(&mut self, event: Event) {
        if self.cfg.events_gap.is_some() {
            self.events.push(event);
        }
    }

    /// Moves the queued messages to `out` (the bot keeps its buffer).
    pub fn take_messages(&mut self, out: &mut Vec<Msg>) {
        out.append(&mut self.outbox);
    }

    /// Counts an event of the connection (attempts, failures, closes).
    pub fn count(&mut self, c: Counter) {
        self.tally.add(c, 1);
    }

    /// A connection attempt starts at `started`; it opened at `now`. A bot
    /// that played resumes its player; else it starts as its role says.
    pub fn connected(&mut self, started: Instant, now: Instant) {
        self.tally.sample_duration(Metric::Connect, now.saturating_duration_since(started));
        self.s = Session { started: Some(started), role: Some(self.cfg.role), ..Session::default() };
        self.view.begin_world();
        if let Some(token) = &self.token {
            self.s.role = Some(Role::Player);
            self.s.resuming = true;
            self.s.snake.resume_at(self.last_head);
            self.outbox.push(Msg::Owned(serde_json::json!(["resume", token]).to_string()));
            return;
        }
        match self.cfg.role {
            Role::Player => self.outbox.push(self.new_player.clone()),
            Role::Spectator => self.ask_rooms(),
        }
    }

    /// The server closed the connection with `code` (1006: no close frame)
    /// or it broke, at `now`: a fault for the ledger.
    pub fn fault(&mut self, code: u16, now: Instant) {
        self.tally.add(Counter::Faults, 1);
        let snake = self.alive().then(|| self.snake_state());
        self.last_head = self.s.snake.head();
        if self.ledger.fault(now, snake) && snake.is_some() {
            self.ledger_placed = snake.is_some_and(|s| s.head.is_some());
            self.tally.add(Counter::FaultSnakes, 1);
        }
        self.note(Event::Fault { at: now, code, snake: snake.is_some() });
        if code == RESUMED_ELSEWHERE {
            self.token = None;
        }
    }

    /// Whether a fault is still waiting for the bot to be back.
    pub fn not_back(&self) -> bool {
        self.ledger.is_open()
    }

    /// The bot's snake as the ledger compares it.
    fn snake_state(&self) -> SnakeState {
        let len = self.s.snake.head().zip(self.s.snake.colour()).and_then(|(h, c)| self.view.body_len(h, c));
        // Where another snake wears the same colour, the tracker may follow
        // the wrong head: the place is then not known, not held against it.
        let mine = self.s.snake.colour();
        let shared = self.s.colours.values().filter(|&&c| Some(c) == mine).count() > 1;
        let head = if shared { None } else { self.s.snake.head() };
        SnakeState { len, score: self.s.score, head }
    }

    /// The connection ended (whatever the reason): hand the batch over.
    pub fn disconnected(&mut self, now: Instant, stats: &Stats) {
        if self.s.turn.take().is_some() {
            self.tally.add(Counter::EchoDiscarded, 1);
        }
        self.s = Session::default();
        stats.flush(&mut self.tally, now);
    }

    /// Hands the batch over if it is due.
    pub fn maybe_flush(&mut self, now: Instant, stats: &Stats) {
        if self.tally.due(now) {
            stats.flush(&mut self.tally, now);
        }
    }

    fn ask_rooms(&mut self) {
        self.s.room_tries += 1;
        self.s.rooms_at = None;
        self.outbox.push(Msg::Static("[\"rooms\"]"));
    }

    fn become_player(&mut self, stats: &Stats) {
        if self.role() == Role::Spectator {
            stats.spectator_became_player();
            self.tally.add(Counter::SpectatorFallbacks, 1);
        }
        self.s.role = Some(Role::Player);
        self.outbox.push(self.new_player.clone());
    }

    fn send_join(&mut self, now: Instant) {
        self.s.join_at = None;
        self.s.join_sent = Some(now);
        self.outbox.push(Msg::Static("[\"join\"]"));
    }

    /// When [`Bot::on_timer`] wants to run next.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let join_retry = self.s.join_sent.filter(|_| !self.alive()).map(|t| t + JOIN_TIMEOUT);
        [self.s.join_at, join_retry, self.s.rooms_at].into_iter().flatten().min()
    }

    /// Runs what is due at `now`: a (re-)join, a join retry, a rooms request.
    pub fn on_timer(&mut self, now: Instant) {
        if self.s.join_at.is_some_and(|t| t <= now) {
            self.send_join(now);
        }
        if !self.alive() && self.s.join_sent.is_some_and(|t| t + JOIN_TIMEOUT <= now) {
            self.tally.add(Counter::JoinRetries, 1);
            self.send_join(now);
        }
        if self.s.rooms_at.is_some_and(|t| t <= now) {
            self.ask_rooms();
        }
    }

    /// One text frame from the server.
    pub fn on_frame(&mut self, frame: &[u8], now: Instant, stats: &Stats) {
        self.tally.add(Counter::Frames, 1);
        self.tally.add(Counter::Bytes, frame.len() as u64);
        if let (Some(gap), Some(last)) = (self.cfg.events_gap, self.s.last_frame)
            && now.saturating_duration_since(last) >= gap
        {
            self.events.push(Event::Silence { from: last, to: now });
        }
        self.s.last_frame = Some(now);
        let score_before = self.alive().then_some(self.s.score);
        let mut facts = Facts::default();
        self.s.snake.begin_frame(self.s.turn.map(|t| t.dir));
        let scanned = scan_frame(
            frame,
            &mut Apply {
                view: &mut self.view,
                s: &mut self.s,
                facts: &mut facts,
                rng: &mut self.rng,
                stats,
                tally: &mut self.tally,
            },
        );
        if scanned.is_err() {
            self.tally.add(Counter::ScanErrors, 1);
        }
        self.after_frame(&facts, now, stats, score_before);
        self.on_timer(now);
        self.maybe_flush(now, stats);
    }

    fn after_frame(&mut self, f: &Facts, now: Instant, stats: &Stats, score_before: Option<u64>) {
        if let Some(n) = f.tick {
            self.track_ticks(n, f, now);
        }
        if let Some(token) = &f.token {
            self.token = Some(token.clone());
        }
        if f.bad_token && self.s.resuming {
            // The session is gone: play as a new player.
            self.token = None;
            self.s.resuming = false;
            self.outbox.push(self.new_player.clone());
        }
        let first_world = f.world && !self.s.world_seen;
        if f.world {
            if !self.s.world_seen {
                self.s.world_seen = true;
                if let Some(started) = self.s.started {
                    self.tally.sample_duration(Metric::FirstWorld, now.saturating_duration_since(started));
                }
                if self.role() == Role::Player && !self.alive() && self.s.join_sent.is_none() {
                    self.s.join_at = Some(now);
                }
            } else {
                self.resynced(now, score_before);
            }
        }
        if f.joined {
            self.s.join_sent = None;
            self.s.join_at = None;
            self.s.born_tick = self.s.tick;
            self.tally.add(Counter::Joins, 1);
        }
        match self.s.snake.end_frame(&self.view, f.world, self.s.tick) {
            Outcome::Moved(dir) => self.resolve_turn(dir, now),
            Outcome::Lost => self.tally.add(Counter::SnakeLost, 1),
            _ => {}
        }
        if first_world {
            self.back(now);
        }
        if f.died {
            self.died(now);
        } else if f.tick.is_some() {
            self.steer(now);
        }
        if f.join_refused && !self.alive() {
            self.s.join_sent = None;
            self.s.join_at = Some(now + Duration::from_millis(self.rng.random_range(1000..=2000)));
        }
        if f.room_full {
            // The named room has no seat: let the gateway place this bot.
            self.new_player = new_player_msg(self.cfg.index, None);
            self.outbox.push(self.new_player.clone());
        }
        if f.rooms && self.role() == Role::Spectator && !self.s.spectate_sent {
            match &f.room_pick {
                Some(room) => {
                    self.s.spectate_sent = true;
                    let msg = serde_json::json!(["spectate", room]).to_string();
                    self.outbox.push(Msg::Owned(msg));
                }
                None => self.become_player(stats),
            }
        }
        if f.no_such_room && self.role() == Role::Spectator {
            self.s.spectate_sent = false;
            if self.s.room_tries < ROOM_TRIES {
                self.s.rooms_at = Some(now + Duration::from_secs(1));
            } else {
                self.become_player(stats);
            }
        }
    }

    /// The first `world` of a connection: the bot is back; if a fault was
    /// open, how long it took and whether the snake survived.
    fn back(&mut self, now: Instant) {
        let snake = self.alive().then(|| self.snake_state());
        let placed_now = snake.is_some_and(|s| s.head.is_some());
        let before = self.ledger.open_snake();
        let Some((took, outcome)) = self.ledger.back(now, snake) else { return };
        self.note(Event::Back { at: now, took, outcome, before, after: snake });
        self.ledger_placed = self.ledger_placed && placed_now;
        self.tally.sample_duration(Metric::Back, took);
        match outcome {
            Back::Back => {}
            Back::SnakeBack => {
                self.tally.add(Counter::SnakesBack, 1);
                if self.ledger_placed {
                    self.tally.add(Counter::SnakesPlaced, 1);
                }
            }
            Back::SnakeGone => self.tally.add(Counter::SnakesGone, 1),
            Back::SnakeChanged => self.tally.add(Counter::SnakesChanged, 1),
            Back::SnakeMoved => {
                tracing::debug!(bot = self.cfg.index, was = ?self.last_head, now = ?snake.and_then(|s| s.head), "snake moved while away");
                self.tally.add(Counter::SnakesMoved, 1)
            }
        }
    }

    /// A `world` on a connection that had one: the room has a new owner
    /// (or the gateway fell behind). A snake alive before must be alive
    /// after with the same score, or the resync cost the player.
    fn resynced(&mut self, now: Instant, score_before: Option<u64>) {
        self.tally.add(Counter::Resyncs, 1);
        let after = self.alive().then_some(self.s.score);
        let event = Event::Resync { at: now, before: score_before, after };
        if score_before.is_some() {
            self.tally.add(Counter::ResyncSnakes, 1);
            if event.rolled_back() {
                self.tally.add(Counter::ResyncLost, 1);
            }
        }
        self.note(event);
    }

    /// Tick numbers: intervals between consecutive plain tick frames, gaps.
    fn track_ticks(&mut self, n: u64, f: &Facts, now: Instant) {
        self.s.tick = Some(n);
        match self.s.last_step {
            // A world starts the count again at its tick: a room restored
            // from an older snapshot steps on from there, below numbers
            // already seen, and each of those steps still moves the snake.
            Some((_, at)) if f.world => self.s.last_step = Some((n, at)),
            Some((last, at)) if n > last => {
                if self.cfg.events_gap.is_some_and(|gap| now.saturating_duration_since(at) >= gap) {
                    self.events.push(Event::Stall { from: at, to: now });
                }
                self.s.last_step = Some((n, now));
            }
            Some(_) => {}
            None => self.s.last_step = Some((n, now)),
        }
        let plain = !f.world && !f.reset;
        if let Some(last) = self.s.last_tick {
            if n == last.n + 1 {
                if plain && last.plain {
                    self.tally.sample_duration(Metric::Interval, now.saturating_duration_since(last.at));
                }
            } else if n > last.n + 1 {
                self.tally.add(Counter::TickGaps, 1);
                self.tally.add(Counter::TicksMissed, n - last.n - 1);
            } else if !(n == last.n && f.world) {
                // A world resends the state of the last tick; anything
                // else going back is wrong.
                self.tally.add(Counter::TickRegressions, 1);
            }
        }
        self.tally.add(Counter::TickFrames, u64::from(plain));
        self.s.last_tick = Some(LastTick { n, at: now, plain });
    }

    /// The snake stepped `moved`: the pending turn is seen, or one step older.
    fn resolve_turn(&mut self, moved: Dir, now: Instant) {
        let Some(mut turn) = self.s.turn else { return };
        if moved == turn.dir {
            self.s.turn = None;
            self.tally.add(Counter::EchoSamples, 1);
            self.tally.sample_duration(Metric::Echo, now.saturating_duration_since(turn.sent));
        } else {
            turn.steps += 1;
            self.s.turn = if turn.steps >= ECHO_STEPS {
                self.tally.add(Counter::EchoLost, 1);
                None
            } else {
                Some(turn)
            };
        }
    }

    fn died(&mut self, now: Instant) {
        self.tally.add(Counter::Deaths, 1);
        if let (Some(born), Some(tick)) = (self.s.born_tick, self.s.tick) {
            self.tally.sample(Metric::Life, tick.saturating_sub(born));
        }
        if self.s.turn.take().is_some() {
            self.tally.add(Counter::EchoDiscarded, 1);
        }
        self.s.born_tick = None;
        self.s.join_sent = None;
        self.s.join_at = Some(now + Duration::from_millis(self.rng.random_range(200..=1000)));
    }

    /// At most one key per tick, and none while a turn is still unseen.
    fn steer(&mut self, now: Instant) {
        if self.s.turn.is_some() || !self.view.is_known() {
            return;
        }
        let (Some(colour), Some((head, facing))) = (self.s.snake.colour(), self.s.snake.snake()) else { return };
        let dir = self.brain.choose(&self.view, head, facing, colour);
        if dir != facing {
            self.outbox.push(Msg::Static(dir.key_text()));
            self.tally.add(Counter::Keys, 1);
            self.s.turn = Some(Turn { dir, sent: now, steps: 0 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "11";
    const OTHER: &str = "-9";

    /// A `world` command for a w x h field, empty but for `cells`.
    fn world(w: u16, h: u16, cells: &[(u16, u16, char, u8)]) -> String {
        let rows: Vec<String> = (0..h)
            .map(|y| {
                let row: Vec<String> = (0..w)
                    .map(|x| {
                        let (ch, c) = cells.iter().find(|c| (c.0, c.1) == (x, y)).map_or((' ', 0), |c| (c.2, c.3));
                        serde_json::json!([ch.to_string(), c]).to_string()
                    })
                    .collect();
                format!("[{}]", row.join(","))
            })
            .collect();
        format!("[\"world\",[{}]]", rows.join(","))
    }

    fn render(x: u16, y: u16, ch: char, c: u8) -> String {
        serde_json::json!(["render", x, y, ch.to_string(), c]).to_string()
    }

    fn frame(tick: u64, commands: &[String]) -> Vec<u8> {
        let mut all = vec![format!("[\"tick\",{tick}]")];
        all.extend(commands.iter().cloned());
        format!("[{}]", all.join(",")).into_bytes()
    }

    fn sent(bot: &mut Bot) -> Vec<String> {
        let mut out = Vec::new();
        bot.take_messages(&mut out);
        out.iter().map(|m| m.as_str().to_string()).collect()
    }

    fn player(t0: Instant) -> Bot {
        let cfg = BotConfig { index: 7, role: Role::Player, room: None, seed: 1, events_gap: None };
        Bot::new(cfg, t0)
    }

    /// A player bot that joined a 20x10 room and was born at (5,5) facing
    /// right, at tick 11.
    fn born(stats: &Stats, t0: Instant) -> Bot {
        let mut bot = player(t0);
        bot.connected(t0, t0 + ms(2));
        assert_eq!(sent(&mut bot), ["[\"new_player\",\"bot7\"]"]);
        let hs = format!("[[\"handshake\",\"bot7\",{ME},\"r1\",\"tok\"]]");
        bot.on_frame(hs.as_bytes(), t0 + ms(3), stats);
        assert!(sent(&mut bot).is_empty());
        bot.on_frame(&frame(10, &[world(20, 10, &[(1, 1, '#', 0)])]), t0 + ms(4), stats);
        assert_eq!(sent(&mut bot), ["[\"join\"]"]);
        let birth = [
            format!("[\"p_joined\",{ME},\"bot7\",2,0]"),
            render(3, 5, '*', 2),
            render(4, 5, '@', 2),
            render(5, 5, '%', 2),
        ];
        bot.on_frame(&frame(11, &birth), t0 + ms(100), stats);
        assert!(bot.alive());
        assert_eq!(bot.snake(), Some(((5, 5), Dir::Right)));
        bot
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Moves our snake one step from `from` to `to` in tick frame `tick`.
    fn step(from: (u16, u16), to: (u16, u16), tail: (u16, u16), new_tail: (u16, u16)) -> Vec<String> {
        vec![
            render(tail.0, tail.1, ' ', 0),
            render(new_tail.0, new_tail.1, '*', 2),
            render(from.0, from.1, '@', 2),
            render(to.0, to.1, '%', 2),
        ]
    }

    #[test]
    fn the_view_applies_world_reset_and_render() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = player(t0);
        bot.connected(t0, t0);
        bot.on_frame(&frame(1, &[world(4, 3, &[(0, 0, '#', 0), (3, 2, '5', 4)])]), t0, &stats);
        assert_eq!(bot.view().rows(), ["#   ", "    ", "   5"]);
        bot.on_frame(&frame(2, &[render(1, 1, '%', 3), render(3, 2, ' ', 0), render(9, 9, '#', 0)]), t0, &stats);
        assert_eq!(bot.view().rows(), ["#   ", " %  ", "    "]);
        assert_eq!(bot.view().get(1, 1), Some((b'%', 3)));
        bot.on_frame(b"[[\"tick\",3],[\"reset_world\"],[\"render\",2,0,\"\\\"\",0]]", t0, &stats);
        assert_eq!(bot.view().rows(), ["  \" ", "    ", "    "]);
        assert_eq!(bot.tally().lifetime(Counter::ScanErrors), 0);
        bot.on_frame(b"[[\"tick\",", t0, &stats);
        assert_eq!(bot.tally().lifetime(Counter::ScanErrors), 1);
    }

    #[test]
    fn plays_steers_measures_and_rejoins() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = born(&stats, t0);
        // a digit below: the bot turns down at once (one key)
        bot.on_frame(&frame(12, &[render(5, 8, '7', 1)]), t0 + ms(200), &stats);
        assert_eq!(sent(&mut bot), ["40"]);
        // the server applied the turn: the head went down
        bot.on_frame(&frame(13, &step((5, 5), (5, 6), (3, 5), (4, 5))), t0 + ms(300), &stats);
        assert_eq!(bot.snake(), Some(((5, 6), Dir::Down)));
        let echo: Vec<u64> =
            bot.tally().pending_samples().iter().filter(|s| s.0 == Metric::Echo).map(|s| s.1).collect();
        assert_eq!(echo, [100_000]);
        // intervals: 11->12 and 12->13 (10->11 follows the world frame)
        let intervals: Vec<u64> =
            bot.tally().pending_samples().iter().filter(|s| s.0 == Metric::Interval).map(|s| s.1).collect();
        assert_eq!(intervals, [100_000, 100_000]);
        // a turn while an earlier one is unseen is not sent; at most one key per tick
        bot.on_frame(&frame(14, &step((5, 6), (5, 7), (4, 5), (5, 5))), t0 + ms(400), &stats);
        assert!(sent(&mut bot).len() <= 1);
        // death: counted, life in ticks, rejoin after 200..=1000 ms
        bot.on_frame(&frame(15, &[render(5, 7, 'x', 0), format!("[\"p_gameover\",{ME}]")]), t0 + ms(500), &stats);
        assert!(!bot.alive());
        assert_eq!(bot.tally().lifetime(Counter::Deaths), 1);
        assert!(bot.tally().pending_samples().contains(&(Metric::Life, 4)));
        let wake = bot.next_wakeup().unwrap();
        assert!(wake >= t0 + ms(700) && wake <= t0 + ms(1500), "{:?}", wake - t0);
        bot.on_timer(wake - ms(1));
        assert!(sent(&mut bot).is_empty());
        bot.on_timer(wake);
        assert_eq!(sent(&mut bot), ["[\"join\"]"]);
        // no p_joined: the join is asked again after JOIN_TIMEOUT
        assert_eq!(bot.next_wakeup(), Some(wake + JOIN_TIMEOUT));
        bot.on_timer(wake + JOIN_TIMEOUT);
        assert_eq!(sent(&mut bot), ["[\"join\"]"]);
        bot.disconnected(t0 + ms(9000), &stats);
        let c = stats.counts();
        assert_eq!((c.get(Counter::Deaths), c.get(Counter::Joins), c.get(Counter::JoinRetries)), (1, 1, 1));
        assert!(bot.tally().pending_samples().is_empty());
    }

    #[test]
    fn a_turn_is_discarded_when_the_snake_dies_first() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = born(&stats, t0);
        bot.on_frame(&frame(12, &[render(5, 8, '7', 1)]), t0 + ms(200), &stats);
        assert_eq!(sent(&mut bot), ["40"]);
        bot.on_frame(&frame(13, &[format!("[\"p_gameover\",{ME}]")]), t0 + ms(300), &stats);
        assert_eq!(bot.tally().lifetime(Counter::EchoDiscarded), 1);
        assert!(!bot.tally().pending_samples().iter().any(|s| s.0 == Metric::Echo));
    }

    #[test]
    fn never_steers_into_a_wall() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = born(&stats, t0);
        // run right to the east wall (x = 19), steering as the bot likes
        for (i, tick) in (12..52).enumerate() {
            let (head, facing) = bot.snake().unwrap();
            let keys = sent(&mut bot);
            assert!(keys.len() <= 1);
            let dir = keys.first().and_then(|k| Dir::from_key(k.parse().unwrap())).unwrap_or(facing);
            let next = dir.step((i32::from(head.0), i32::from(head.1)));
            assert!(bot.view().is_free(next.0, next.1), "step {i}: {dir:?} from {head:?} is deadly");
            let next = (next.0 as u16, next.1 as u16);
            bot.on_frame(&frame(tick, &[render(head.0, head.1, '@', 2), render(next.0, next.1, '%', 2)]), t0, &stats);
        }
    }

    #[test]
    fn tick_gaps_and_resyncs() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = born(&stats, t0);
        bot.on_frame(&frame(12, &[]), t0 + ms(200), &stats);
        bot.on_frame(&frame(15, &[]), t0 + ms(500), &stats);
        assert_eq!(bot.tally().lifetime(Counter::TickGaps), 1);
        assert_eq!(bot.tally().lifetime(Counter::TicksMissed), 2);
        // a resync: the world again; no interval from it, the snake found again
        let w = world(20, 10, &[(6, 5, '%', 2), (5, 5, '@', 2), (4, 5, '*', 2)]);
        bot.on_frame(&frame(16, &[w]), t0 + ms(600), &stats);
        assert_eq!(bot.tally().lifetime(Counter::Resyncs), 1);
        assert_eq!(bot.snake().map(|s| s.0), Some((6, 5)));
        bot.on_frame(&frame(17, &[]), t0 + ms(700), &stats);
        bot.on_frame(&frame(18, &[]), t0 + ms(800), &stats);
        bot.on_frame(&frame(12, &[]), t0 + ms(900), &stats);
        assert_eq!(bot.tally().lifetime(Counter::TickRegressions), 1);
        let intervals = bot.tally().pending_samples().iter().filter(|s| s.0 == Metric::Interval).count();
        // 11->12 and 17->18 only
        assert_eq!(intervals, 2);
    }

    #[test]
    fn silences_stalls_and_a_resync_that_rolled_the_score_back_are_noted() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = born(&stats, t0);
        bot.cfg.events_gap = Some(ms(300));
        let mut events = Vec::new();
        bot.on_frame(&frame(12, &[format!("[\"p_score\",{ME},5]")]), t0 + ms(200), &stats);
        // 500 ms with no frame: a silence and a stall
        bot.on_frame(&frame(13, &[]), t0 + ms(700), &stats);
        bot.take_events(&mut events);
        assert_eq!(
            events,
            [
                Event::Silence { from: t0 + ms(200), to: t0 + ms(700) },
                Event::Stall { from: t0 + ms(200), to: t0 + ms(700) }
            ]
        );
        // frames that do not advance the tick: a stall without a silence
        events.clear();
        bot.on_frame(&frame(13, &[]), t0 + ms(900), &stats);
        bot.on_frame(&frame(13, &[]), t0 + ms(1100), &stats);
        bot.on_frame(&frame(14, &[]), t0 + ms(1300), &stats);
        bot.take_events(&mut events);
        assert_eq!(events, [Event::Stall { from: t0 + ms(700), to: t0 + ms(1300) }]);
        // the room came back from an older state: the score is lower
        events.clear();
        let w = world(20, 10, &[(6, 5, '%', 2), (5, 5, '@', 2), (4, 5, '*', 2)]);
        bot.on_frame(&frame(15, &[w, format!("[\"p_joined\",{ME},\"bot7\",2,2]")]), t0 + ms(1400), &stats);
        bot.take_events(&mut events);
        assert_eq!(events, [Event::Resync { at: t0 + ms(1400), before: Some(5), after: Some(2) }]);
        assert_eq!(bot.tally().lifetime(Counter::ResyncSnakes), 1);
        assert_eq!(bot.tally().lifetime(Counter::ResyncLost), 1);
        // a world at an older tick (the room came back from an older
        // snapshot): its next step ends the stall, though its number was seen
        events.clear();
        let w = world(20, 10, &[(6, 5, '%', 2), (5, 5, '@', 2), (4, 5, '*', 2)]);
        bot.on_frame(&frame(11, &[w, format!("[\"p_joined\",{ME},\"bot7\",2,2]")]), t0 + ms(1450), &stats);
        bot.on_frame(&frame(12, &[]), t0 + ms(1460), &stats);
        bot.take_events(&mut events);
        assert!(!events.iter().any(|e| matches!(e, Event::Stall { .. })), "{events:?}");
        // the same score after a resync is no loss
        let w = world(20, 10, &[(7, 5, '%', 2), (6, 5, '@', 2), (5, 5, '*', 2)]);
        bot.on_frame(&frame(16, &[w, format!("[\"p_joined\",{ME},\"bot7\",2,2]")]), t0 + ms(1500), &stats);
        assert_eq!(bot.tally().lifetime(Counter::ResyncSnakes), 3);
        assert_eq!(bot.tally().lifetime(Counter::ResyncLost), 1);
    }

    #[test]
    fn other_snakes_do_not_confuse_the_bot() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = born(&stats, t0);
        let other = [
            render(10, 2, '%', 3),
            render(9, 2, '@', 3),
            format!("[\"p_joined\",{OTHER},\"x\",3,0]"),
            format!("[\"p_gameover\",{OTHER}]"),
        ];
        bot.on_frame(&frame(12, &other), t0 + ms(200), &stats);
        assert!(bot.alive());
        assert_eq!(bot.tally().lifetime(Counter::Deaths), 0);
        assert_eq!(bot.snake().map(|s| s.0), Some((5, 5)));
    }

    #[test]
    fn follows_its_own_snake_when_another_shares_its_colour() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = player(t0);
        bot.connected(t0, t0);
        let hs = format!("[[\"handshake\",\"bot7\",{ME},\"r1\",\"tok\"]]");
        bot.on_frame(hs.as_bytes(), t0, &stats);
        bot.on_frame(&frame(10, &[world(20, 10, &[])]), t0, &stats);
        // another player of colour 2 joined first and is born first
        let births = [
            format!("[\"p_joined\",{OTHER},\"x\",2,0]"),
            format!("[\"p_joined\",{ME},\"bot7\",2,0]"),
            render(10, 2, '*', 2),
            render(11, 2, '@', 2),
            render(12, 2, '%', 2),
            render(3, 7, '*', 2),
            render(4, 7, '@', 2),
            render(5, 7, '%', 2),
        ];
        bot.on_frame(&frame(11, &births), t0, &stats);
        assert_eq!(bot.snake(), Some(((5, 7), Dir::Right)));
        // the other one moves next to where ours was: ours is still ours
        bot.on_frame(&frame(12, &[render(12, 3, '%', 2), render(5, 8, '%', 2)]), t0, &stats);
        assert_eq!(bot.snake().map(|s| s.0), Some((5, 8)));
    }

    #[test]
    fn refused_join_is_retried_later() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = player(t0);
        bot.connected(t0, t0);
        sent(&mut bot);
        bot.on_frame(&frame(1, &[world(5, 5, &[])]), t0, &stats);
        assert_eq!(sent(&mut bot), ["[\"join\"]"]);
        bot.on_frame(b"[[\"error\",\"Maximum players reached\"]]", t0, &stats);
        assert_eq!(stats.errors().get("Maximum players reached"), Some(&1));
        let wake = bot.next_wakeup().unwrap();
        assert!(wake >= t0 + ms(1000) && wake <= t0 + ms(2000));
    }

    #[test]
    fn spectators_watch_a_room_with_players_or_play() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let cfg = BotConfig { index: 3, role: Role::Spectator, room: None, seed: 9, events_gap: None };
        let mut bot = Bot::new(cfg.clone(), t0);
        stats.opened(false);
        bot.connected(t0, t0);
        assert_eq!(sent(&mut bot), ["[\"rooms\"]"]);
        bot.on_frame(b"[[\"rooms\",[[\"empty\",0,10],[\"busy\",4,10]]]]", t0, &stats);
        assert_eq!(sent(&mut bot), ["[\"spectate\",\"busy\"]"]);
        bot.on_frame(b"[[\"spectating\",\"busy\"]]", t0, &stats);
        bot.on_frame(&frame(5, &[world(5, 5, &[])]), t0, &stats);
        assert!(sent(&mut bot).is_empty(), "a spectator never joins");
        assert_eq!(bot.role(), Role::Spectator);
        // no room with players: it plays instead
        let mut bot = Bot::new(cfg, t0);
        bot.connected(t0, t0);
        sent(&mut bot);
        bot.on_frame(b"[[\"rooms\",[[\"empty\",0,10]]]]", t0, &stats);
        assert_eq!(sent(&mut bot), ["[\"new_player\",\"bot3\"]"]);
        assert_eq!(bot.role(), Role::Player);
        assert_eq!((stats.players_held(), stats.spectators_held()), (1, 0));
    }

    #[test]
    fn named_rooms_and_full_rooms() {
        let t0 = Instant::now();
        let stats = Stats::new();
        let cfg = BotConfig { index: 12, role: Role::Player, room: Some("swarm1".into()), seed: 0, events_gap: None };
        let mut bot = Bot::new(cfg, t0);
        bot.connected(t0, t0);
        assert_eq!(sent(&mut bot), ["[\"new_player\",\"bot12\",\"swarm1\"]"]);
        bot.on_frame(b"[[\"error\",\"Room is full\"]]", t0, &stats);
        assert_eq!(sent(&mut bot), ["[\"new_player\",\"bot12\"]"]);
    }

    /// The welcome of a resumed connection: our snake where it was (tail
    /// (3,5), head (5,5), colour 2) with `score`, and another of colour 2.
    fn welcome(tick: u64, me_alive: bool, score: u64) -> Vec<u8> {
        welcome_moved(tick, me_alive, score, 0, 2)
    }

    /// `welcome`, our snake `dx` cells further right (it kept moving), the
    /// other snake in `other` colour (ours is 2).
    fn welcome_moved(tick: u64, me_alive: bool, score: u64, dx: u16, other: u8) -> Vec<u8> {
        let cells = [
            (3 + dx, 5, '*', 2),
            (4 + dx, 5, '@', 2),
            (5 + dx, 5, '%', 2),
            (10, 2, '*', other),
            (11, 2, '@', other),
            (12, 2, '%', other),
        ];
        let cells = if me_alive { &cells[..] } else { &cells[3..] };
        let mut commands = vec![world(20, 10, cells), format!("[\"p_joined\",{OTHER},\"x\",{other},7]")];
        if me_alive {
            commands.push(format!("[\"p_joined\",{ME},\"bot7\",2,{score}]"));
        }
        frame(tick, &commands)
    }

    /// A bot born and scored 4, then cut off at t0 + 200 ms with `code`.
    fn faulted(stats: &Stats, t0: Instant, code: u16) -> Bot {
        let mut bot = born(stats, t0);
        bot.on_frame(&frame(12, &[format!("[\"p_score\",{ME},4]")]), t0 + ms(150), stats);
        bot.fault(code, t0 + ms(200));
        bot.disconnected(t0 + ms(200), stats);
        assert!(bot.not_back());
        bot
    }

    /// Opens a connection at `at` and answers its resume.
    fn reconnect(bot: &mut Bot, at: Instant, stats: &Stats) -> Vec<String> {
        bot.connected(at, at);
        let out = sent(bot);
        let hs = format!("[[\"handshake\",\"bot7\",{ME},\"r1\",\"tok\"]]");
        bot.on_frame(hs.as_bytes(), at, stats);
        out
    }

    fn back_samples(bot: &Bot) -> Vec<u64> {
        bot.tally().pending_samples().iter().filter(|s| s.0 == Metric::Back).map(|s| s.1).collect()
    }

    #[test]
    fn resumes_after_a_fault_and_finds_its_snake_unchanged() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = faulted(&stats, t0, 1012);
        bot.connected(t0 + ms(700), t0 + ms(710));
        assert_eq!(sent(&mut bot), ["[\"resume\",\"tok\"]"]);
        let hs = format!("[[\"handshake\",\"bot7\",{ME},\"r1\",\"tok\"]]");
        bot.on_frame(hs.as_bytes(), t0 + ms(720), &stats);
        assert!(bot.not_back(), "back only once the world is there");
        bot.on_frame(&welcome(40, true, 4), t0 + ms(1000), &stats);
        assert!(!bot.not_back());
        assert!(bot.alive());
        assert_eq!(bot.snake(), Some(((5, 5), Dir::Right)), "its own snake, not the other of its colour");
        assert!(!sent(&mut bot).contains(&"[\"join\"]".to_string()), "a living snake is not joined again");
        assert_eq!(back_samples(&bot), [800_000]);
        bot.disconnected(t0 + ms(1100), &stats);
        let c = stats.counts();
        assert_eq!(LEDGER.map(|k| c.get(k)), [1, 1, 1, 0, 0, 0]);
        assert_eq!(c.get(Counter::Joins), 1, "the resume is not a join");
    }

    const LEDGER: [Counter; 6] = [
        Counter::Faults,
        Counter::FaultSnakes,
        Counter::SnakesBack,
        Counter::SnakesGone,
        Counter::SnakesChanged,
        Counter::SnakesMoved,
    ];

    #[test]
    fn a_snake_that_kept_moving_while_away_is_moved_not_back() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = faulted(&stats, t0, 1012);
        reconnect(&mut bot, t0 + ms(300), &stats);
        // same length and score, the head one cell on from (5, 5); no
        // other snake wears its colour
        bot.on_frame(&welcome_moved(40, true, 4, 1, 3), t0 + ms(400), &stats);
        assert!(!bot.not_back());
        assert_eq!(bot.snake().map(|s| s.0), Some((6, 5)), "its own snake, found where it went");
        bot.disconnected(t0 + ms(500), &stats);
        assert_eq!(LEDGER.map(|k| stats.counts().get(k)), [1, 1, 0, 0, 0, 1]);
    }

    /// Where another snake wears the bot's colour, the tracker may hold the
    /// wrong head: the place is not judged (the size still is).
    #[test]
    fn a_shared_colour_leaves_the_place_unjudged() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = faulted(&stats, t0, 1012);
        reconnect(&mut bot, t0 + ms(300), &stats);
        bot.on_frame(&welcome_moved(40, true, 4, 1, 2), t0 + ms(400), &stats);
        bot.disconnected(t0 + ms(500), &stats);
        assert_eq!(LEDGER.map(|k| stats.counts().get(k)), [1, 1, 1, 0, 0, 0]);
        assert_eq!(stats.counts().get(Counter::SnakesPlaced), 0, "not placed: its colour was shared");
    }

    /// A snake whose colour is its own comes back to the very cell: placed.
    #[test]
    fn a_snake_back_in_its_very_cell_is_placed() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = faulted(&stats, t0, 1012);
        reconnect(&mut bot, t0 + ms(300), &stats);
        bot.on_frame(&welcome_moved(40, true, 4, 0, 3), t0 + ms(400), &stats);
        bot.disconnected(t0 + ms(500), &stats);
        assert_eq!(LEDGER.map(|k| stats.counts().get(k)), [1, 1, 1, 0, 0, 0]);
        assert_eq!(stats.counts().get(Counter::SnakesPlaced), 1);
    }

    #[test]
    fn a_grown_or_rescored_snake_is_changed() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = faulted(&stats, t0, 1006);
        reconnect(&mut bot, t0 + ms(300), &stats);
        bot.on_frame(&welcome(40, true, 9), t0 + ms(400), &stats);
        bot.disconnected(t0 + ms(500), &stats);
        let c = stats.counts();
        assert_eq!((c.get(Counter::SnakesBack), c.get(Counter::SnakesChanged)), (0, 1));
    }

    #[test]
    fn an_expired_token_means_a_new_player_and_a_snake_gone() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = faulted(&stats, t0, 1001);
        bot.connected(t0 + ms(300), t0 + ms(300));
        assert_eq!(sent(&mut bot), ["[\"resume\",\"tok\"]"]);
        bot.on_frame(format!("[[\"error\",\"{BAD_TOKEN}\"]]").as_bytes(), t0 + ms(310), &stats);
        assert_eq!(sent(&mut bot), ["[\"new_player\",\"bot7\"]"]);
        let hs = "[[\"handshake\",\"bot7\",77,\"r2\",\"tok2\"]]";
        bot.on_frame(hs.as_bytes(), t0 + ms(320), &stats);
        bot.on_frame(&welcome(5, false, 0), t0 + ms(330), &stats);
        assert!(!bot.not_back());
        assert_eq!(sent(&mut bot), ["[\"join\"]"]);
        bot.disconnected(t0 + ms(400), &stats);
        assert_eq!((stats.counts().get(Counter::SnakesGone), stats.counts().get(Counter::SnakesBack)), (1, 0));
        // the next fault resumes with the new token; a snake that was not
        // alive leaves nothing to compare
        bot.fault(1006, t0 + ms(500));
        bot.connected(t0 + ms(600), t0 + ms(600));
        assert_eq!(sent(&mut bot), ["[\"resume\",\"tok2\"]"]);
        bot.on_frame(&welcome(6, false, 0), t0 + ms(700), &stats);
        bot.disconnected(t0 + ms(800), &stats);
        let c = stats.counts();
        assert_eq!((c.get(Counter::Faults), c.get(Counter::FaultSnakes), c.get(Counter::SnakesGone)), (2, 1, 1));
    }

    #[test]
    fn a_bot_cut_off_again_before_it_was_back_keeps_its_first_fault() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bot = faulted(&stats, t0, 1012);
        assert_eq!(reconnect(&mut bot, t0 + ms(300), &stats), ["[\"resume\",\"tok\"]"]);
        bot.fault(1006, t0 + ms(400));
        bot.disconnected(t0 + ms(400), &stats);
        assert!(bot.not_back());
        assert_eq!(reconnect(&mut bot, t0 + ms(900), &stats), ["[\"resume\",\"tok\"]"]);
        bot.on_frame(&welcome(40, true, 4), t0 + ms(1200), &stats);
        assert_eq!(back_samples(&bot), [1_000_000]);
        bot.disconnected(t0 + ms(1300), &stats);
        let c = stats.counts();
        assert_eq!((c.get(Counter::Faults), c.get(Counter::FaultSnakes), c.get(Counter::SnakesBack)), (2, 1, 1));
        // 4009: another connection holds the player now; this bot starts over
        bot.fault(RESUMED_ELSEWHERE, t0 + ms(1400));
        bot.connected(t0 + ms(1500), t0 + ms(1500));
        assert_eq!(sent(&mut bot), ["[\"new_player\",\"bot7\"]"]);
    }
}
