//! The rules of Snakepit, pure and deterministic: the same seed and the same
//! inputs give the same world. No clock, no I/O; the room drives it.
//!
//! Each change is recorded as an [`Event`] in order, so a room can encode
//! one frame per tick, and a client that applies the frames in order keeps a
//! world equal to this one.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use snakepit_shared::protocol::Direction;
use snakepit_shared::{PlayerId, ScoreEntry};

use crate::grid::{BODY, Cell, DEAD_HEAD, DEAD_TAIL, EMPTY, Grid, HEAD, Pos, STONE, TAIL};
use crate::settings::{COLOURS, GameSettings};

/// The text written when the last snake dies.
pub const GAME_OVER: &str = " >>> GAME OVER <<< ";
/// Turns waiting to be applied, one per tick; more presses are dropped.
pub const TURN_QUEUE: usize = 2;

/// One change of the world or of a player, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Render { pos: Pos, cell: Cell },
    Joined { id: PlayerId, name: String, colour: u8, score: u64 },
    GameOver(PlayerId),
    Score { id: PlayerId, score: u64 },
    TopScores,
    ResetWorld,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("Maximum players reached")]
    MaxPlayers,
    #[error("Already playing")]
    AlreadyAlive,
    #[error("Not a player of this room")]
    UnknownPlayer,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Player {
    pub id: PlayerId,
    pub name: String,
    pub alive: bool,
    /// Head first. Empty until the snake is born.
    pub snake: VecDeque<Pos>,
    pub direction: Direction,
    turns: VecDeque<Direction>,
    pub growth: u32,
    pub score: u64,
    pub colour: u8,
    /// Its player is away (connection ended, or its gateway went silent):
    /// the snake holds still until the player is back. Defaults to false
    /// in a snapshot written before parking existed.
    #[serde(default)]
    pub parked: bool,
    /// Parking left, in quarter ticks: a parked tick spends four, a tick
    /// played earns one, up to the room's allowance. Coming and going
    /// cannot hold a snake still for ever: out of credit, a parked snake
    /// moves on unattended. Full in a snapshot from before the credit.
    #[serde(default = "full_park_credit")]
    park_credit: u32,
}

/// What a parked tick costs, in the quarter ticks a played tick earns.
const PARKED_TICK_COST: u32 = 4;

fn full_park_credit() -> u32 {
    u32::MAX
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Game {
    settings: GameSettings,
    grid: Grid,
    rng: ChaCha8Rng,
    /// In join order: who joined last moves last.
    players: Vec<Player>,
    free_colours: Vec<u8>,
    running: bool,
    tick: u64,
    top_scores: Vec<ScoreEntry>,
    #[serde(skip)]
    events: Vec<Event>,
    /// The game ended this tick: the room saves the top scores.
    #[serde(skip)]
    ended: bool,
    /// Most parking a player may have in hand, in quarter ticks (set by
    /// the room from its grace period; none until then).
    #[serde(skip)]
    park_allowance: u32,
}

impl Game {
    pub fn new(settings: GameSettings, seed: u64) -> Self {
        Self {
            grid: Grid::new(settings.width, settings.height),
            settings,
            rng: ChaCha8Rng::seed_from_u64(seed),
            players: Vec::new(),
            free_colours: (1..=COLOURS).collect(),
            running: false,
            tick: 0,
            top_scores: Vec::new(),
            events: Vec::with_capacity(64),
            ended: false,
            park_allowance: 0,
        }
    }

    pub fn settings(&self) -> &GameSettings {
        &self.settings
    }

    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Whether the world steps: someone is alive.
    pub fn is_running(&self) -> bool {
        self.running
    }

    pub fn players(&self) -> &[Player] {
        &self.players
    }

    pub fn player(&self, id: PlayerId) -> Option<&Player> {
        self.players.iter().find(|p| p.id == id)
    }

    pub fn alive_count(&self) -> usize {
        self.players.iter().filter(|p| p.alive).count()
    }

    pub fn top_scores(&self) -> &[ScoreEntry] {
        &self.top_scores
    }

    /// Events since the last [`Game::clear_events`].
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn clear_events(&mut self) {
        self.events.clear();
        self.ended = false;
    }

    /// True once, after the step in which the last snake died.
    pub fn just_ended(&self) -> bool {
        self.ended
    }

    /// Replaces the top scores (from the shared store).
    pub fn set_top_scores(&mut self, scores: Vec<ScoreEntry>) {
        if scores != self.top_scores {
            self.top_scores = scores;
            self.top_scores.truncate(self.settings.top_scores);
            // While nobody plays no frame goes out; newcomers get the list
            // in their welcome.
            if self.running {
                self.events.push(Event::TopScores);
            }
        }
    }

    /// A member who may play; not alive until it joins.
    pub fn add_player(&mut self, id: PlayerId, name: String) -> bool {
        if self.player(id).is_some() {
            return false;
        }
        self.players.push(Player {
            id,
            name,
            alive: false,
            snake: VecDeque::new(),
            direction: Direction::Right,
            turns: VecDeque::new(),
            growth: 0,
            score: 0,
            colour: 0,
            parked: false,
            park_credit: full_park_credit(),
        });
        true
    }

    /// Removes a player; an alive snake dies first.
    pub fn remove_player(&mut self, id: PlayerId) {
        self.kill(id);
        self.players.retain(|p| p.id != id);
    }

    /// Starts a snake. The first join while nobody is alive empties the
    /// world and starts the game again.
    pub fn join(&mut self, id: PlayerId) -> Result<(), JoinError> {
        let idx = self.index(id).ok_or(JoinError::UnknownPlayer)?;
        if self.players[idx].alive {
            return Err(JoinError::AlreadyAlive);
        }
        if self.alive_count() >= usize::from(self.settings.max_players) {
            return Err(JoinError::MaxPlayers);
        }
        if !self.running {
            self.grid.clear();
            self.events.push(Event::ResetWorld);
            self.running = true;
        }
        let colour = if self.free_colours.is_empty() {
            // More snakes than colours: a colour lottery, as in the original.
            self.rng.random_range(1..=COLOURS)
        } else {
            let i = self.rng.random_range(0..self.free_colours.len());
            self.free_colours.swap_remove(i)
        };
        // Joining moves the player to the end of the join order.
        let mut p = self.players.remove(idx);
        p.alive = true;
        p.snake.clear();
        p.turns.clear();
        p.growth = 0;
        p.score = 0;
        p.colour = colour;
        self.events.push(Event::Joined { id, name: p.name.clone(), colour, score: 0 });
        self.players.push(p);
        Ok(())
    }

    /// Queues a turn for the next ticks (one per tick).
    pub fn turn(&mut self, id: PlayerId, dir: Direction) {
        if let Some(p) = self.players.iter_mut().find(|p| p.id == id && p.alive && !p.parked) {
            if p.turns.len() < TURN_QUEUE {
                p.turns.push_back(dir);
            }
        }
    }

    /// Parks or unparks `id`'s snake. A parked snake does not move, grow or
    /// eat (an unborn one is not born), yet keeps its cells, so others can
    /// still run into it; unparked, it goes on from where it stood. Turns
    /// the player pressed before it went away are kept: they were meant
    /// for the way ahead (a turn away from a wall).
    pub fn set_parked(&mut self, id: PlayerId, parked: bool) {
        if let Some(p) = self.players.iter_mut().find(|p| p.id == id) {
            p.parked = parked;
        }
    }

    /// How many ticks in a row a snake may stay parked at most; a tick
    /// played gives back a quarter of one.
    pub fn set_park_allowance(&mut self, ticks: u32) {
        self.park_allowance = ticks.saturating_mul(PARKED_TICK_COST);
    }

    /// Kills an alive snake (its player left).
    pub fn kill(&mut self, id: PlayerId) {
        if let Some(idx) = self.index(id) {
            if self.players[idx].alive {
                self.die(idx);
            }
        }
    }

    /// One tick: the tick number always grows; the world steps only while
    /// the game runs (a room may have stopped it by a death this tick).
    pub fn step(&mut self) {
        self.tick += 1;
        if !self.running {
            return;
        }
        let allowance = self.park_allowance;
        for idx in 0..self.players.len() {
            let p = &mut self.players[idx];
            if !p.alive {
                continue;
            }
            let credit = p.park_credit.min(allowance);
            if p.parked && credit >= PARKED_TICK_COST {
                // A parked snake holds still until its player is back.
                p.park_credit = credit - PARKED_TICK_COST;
                continue;
            }
            if !p.parked {
                p.park_credit = (credit + 1).min(allowance);
            }
            if self.players[idx].snake.is_empty() {
                if self.birth(idx) {
                    self.spawn_digit();
                }
                continue;
            }
            self.advance(idx);
        }
        if self.settings.stones && self.chance(self.settings.stone_spawn_rate) {
            self.spawn(|_| Cell { ch: STONE, colour: 0 });
        }
    }

    fn index(&self, id: PlayerId) -> Option<usize> {
        self.players.iter().position(|p| p.id == id)
    }

    fn chance(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.rng.random::<f64>() < rate
    }

    fn render(&mut self, pos: Pos, cell: Cell) {
        self.grid.set(pos, cell);
        self.events.push(Event::Render { pos, cell });
    }

    /// Places a new snake at least `initial length + 2` cells from every
    /// border, on empty cells; false if no place was found this tick.
    fn birth(&mut self, idx: usize) -> bool {
        let len = self.settings.initial_length;
        let margin = len + 2;
        let (w, h) = (self.grid.width(), self.grid.height());
        let xs = if w > 2 * margin { margin..w - margin } else { len..w - len };
        let ys = if h > 2 * margin { margin..h - margin } else { len..h - len };
        for _ in 0..32 {
            let start = Pos { x: self.rng.random_range(xs.clone()), y: self.rng.random_range(ys.clone()) };
            let dir = Direction::ALL[self.rng.random_range(0..4)];
            let mut cells = Vec::with_capacity(usize::from(len));
            let mut pos = Some(start);
            for _ in 0..len {
                match pos {
                    Some(p) if self.grid.get(p).is_empty() => {
                        cells.push(p);
                        pos = self.grid.step(p, dir.delta());
                    }
                    _ => break,
                }
            }
            if cells.len() != usize::from(len) {
                continue;
            }
            let colour = self.players[idx].colour;
            // Drawn tail first, head last, along the direction.
            for (i, &p) in cells.iter().enumerate() {
                let ch = if i + 1 == cells.len() {
                    HEAD
                } else if i == 0 {
                    TAIL
                } else {
                    BODY
                };
                self.render(p, Cell { ch, colour });
            }
            let player = &mut self.players[idx];
            player.direction = dir;
            player.snake = cells.into_iter().rev().collect();
            return true;
        }
        false
    }

    fn advance(&mut self, idx: usize) {
        let player = &mut self.players[idx];
        if let Some(dir) = player.turns.pop_front() {
            if dir != player.direction.opposite() {
                player.direction = dir;
            }
        }
        let head = player.snake[0];
        let Some(next) = self.grid.step(head, player.direction.delta()) else {
            self.die(idx);
            return;
        };
        let target = self.grid.get(next);
        if let Some(d) = target.digit() {
            let player = &mut self.players[idx];
            player.score += u64::from(d);
            player.growth += u32::from(d);
            let (id, score) = (player.id, player.score);
            self.events.push(Event::Score { id, score });
        } else if !target.is_empty() {
            self.credit_kill(idx, next);
            self.die(idx);
            return;
        }
        let colour = self.players[idx].colour;
        let player = &mut self.players[idx];
        player.snake.push_front(next);
        let popped = if player.growth > 0 {
            player.growth -= 1;
            None
        } else {
            player.snake.pop_back()
        };
        let len = player.snake.len();
        let old_head = player.snake.get(1).copied();
        let last = player.snake.back().copied();
        self.render(next, Cell { ch: HEAD, colour });
        if let Some(t) = popped {
            self.render(t, Cell::EMPTY);
        }
        if let Some(h) = old_head {
            let ch = if len == 2 { TAIL } else { BODY };
            self.render(h, Cell { ch, colour });
        }
        if let (Some(_), Some(l)) = (popped, last) {
            if len > 2 {
                self.render(l, Cell { ch: TAIL, colour });
            }
        }
        if self.chance(self.settings.digit_spawn_rate) {
            self.spawn_digit();
        }
    }

    /// Kill points for the owner of the live snake that was run into.
    fn credit_kill(&mut self, victim: usize, cell: Pos) {
        if self.settings.kill_points == 0 {
            return;
        }
        let owner = self.players.iter().position(|p| p.alive && p.snake.contains(&cell));
        // An away player earns nothing while its snake stands parked.
        if let Some(o) = owner.filter(|&o| o != victim && !self.players[o].parked) {
            let p = &mut self.players[o];
            p.score += self.settings.kill_points;
            let (id, score) = (p.id, p.score);
            self.events.push(Event::Score { id, score });
        }
    }

    fn die(&mut self, idx: usize) {
        let (id, colour, score, name, cells) = {
            let p = &mut self.players[idx];
            p.alive = false;
            p.turns.clear();
            (p.id, p.colour, p.score, p.name.clone(), std::mem::take(&mut p.snake))
        };
        self.events.push(Event::GameOver(id));
        if !self.players.iter().any(|p| p.alive && p.colour == colour) && !self.free_colours.contains(&colour) {
            self.free_colours.push(colour);
        }
        // The dead snake stays as an obstacle, in colour 0.
        let last = cells.len().saturating_sub(1);
        for (i, &pos) in cells.iter().enumerate() {
            let ch = if i == 0 {
                DEAD_HEAD
            } else if i == last {
                DEAD_TAIL
            } else {
                BODY
            };
            self.render(pos, Cell { ch, colour: 0 });
        }
        self.record_score(ScoreEntry { name, score, colour });
        self.events.push(Event::TopScores);
        if self.alive_count() == 0 {
            self.running = false;
            self.ended = true;
            let colour = self.rng.random_range(1..=COLOURS);
            self.write_text(GAME_OVER, colour);
        }
    }

    /// Best score per name, best first, kept to the settings' length.
    fn record_score(&mut self, entry: ScoreEntry) {
        if entry.score == 0 {
            return;
        }
        match self.top_scores.iter_mut().find(|s| s.name == entry.name) {
            Some(best) if best.score >= entry.score => return,
            Some(best) => *best = entry,
            None => self.top_scores.push(entry),
        }
        self.top_scores.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
        self.top_scores.truncate(self.settings.top_scores);
    }

    fn write_text(&mut self, text: &str, colour: u8) {
        let w = usize::from(self.grid.width());
        let y = self.grid.height() / 2;
        let start = w.saturating_sub(text.len()) / 2;
        for (i, ch) in text.bytes().enumerate().take(w) {
            let pos = Pos { x: (start + i) as u16, y };
            self.render(pos, Cell { ch, colour });
        }
    }

    fn spawn_digit(&mut self) {
        let value = self.rng.random_range(self.settings.digit_min..=self.settings.digit_max);
        let colour = self.rng.random_range(1..=COLOURS);
        self.spawn(|_| Cell { ch: b'0' + value, colour });
    }

    /// Puts a cell on a random empty cell; nothing if the field is full.
    fn spawn(&mut self, make: impl FnOnce(Pos) -> Cell) {
        let (w, h) = (self.grid.width(), self.grid.height());
        for _ in 0..64 {
            let pos = Pos { x: self.rng.random_range(0..w), y: self.rng.random_range(0..h) };
            if self.grid.get(pos).ch == EMPTY {
                let cell = make(pos);
                self.render(pos, cell);
                return;
            }
        }
        let empties: Vec<Pos> = self.grid.cells().filter(|(_, c)| c.is_empty()).map(|(p, _)| p).collect();
        if !empties.is_empty() {
            let pos = empties[self.rng.random_range(0..empties.len())];
            let cell = make(pos);
            self.render(pos, cell);
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
impl Game {
    /// Test support: places a snake (head first) with a direction.
    pub fn place_snake(&mut self, id: PlayerId, cells: &[Pos], dir: Direction) {
        let colour = self.player(id).map(|p| p.colour).unwrap_or(1);
        let last = cells.len() - 1;
        for (i, &p) in cells.iter().enumerate() {
            let ch = if i == 0 {
                HEAD
            } else if i == last {
                TAIL
            } else {
                BODY
            };
            self.render(p, Cell { ch, colour });
        }
        if let Some(idx) = self.index(id) {
            self.players[idx].snake = cells.iter().copied().collect();
            self.players[idx].direction = dir;
        }
    }

    /// Test support: writes one cell.
    pub fn put(&mut self, pos: Pos, cell: Cell) {
        self.render(pos, cell);
    }
}
