//! The rules of Snakepit, pure and deterministic: the same seed and the same
//! inputs give the same world. No clock, no I/O; the room drives it.
//!
//! Each change is recorded as an [`Event`] in order, so a room can encode
//! one frame per tick, and a client that applies the frames in order keeps a
//! world equal to this one.
//!
//! Robot snakes (negative ids) are players of the game only: the game adds
//! them while people play (the settings' `robots` beside a lone person,
//! one fewer for each further person), retires them when people need their
//! places or nobody plays any more, and steers
//! them (`robot.rs`) with its own RNG, so they are as deterministic as the
//! rest of the rules.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use snakepit_protocol::client::Direction;
use snakepit_protocol::{PlayerId, ScoreEntry};

use crate::grid::{BODY, Cell, DEAD_HEAD, DEAD_TAIL, EMPTY, Grid, HEAD, Pos, STONE, TAIL};
use crate::robot;
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
    /// Robots this room has had: the next is robot `robots_made + 1`, so an
    /// id is never given twice in a room (a client may still show the one
    /// before). None in a snapshot from before robots.
    #[serde(default)]
    robots_made: u32,
    /// No robot is added before this tick: a place freed by a death stays
    /// free for a second.
    #[serde(default)]
    robots_wait_until: u64,
    #[serde(skip)]
    events: Vec<Event>,
    /// The game ended this tick: the room saves the top scores.
    #[serde(skip)]
    ended: bool,
    /// Most parking a player may have in hand, in quarter ticks (set by
    /// the room from its grace period; none until then).
    #[serde(skip)]
    park_allowance: u32,
    /// The robots' search buffers.
    #[serde(skip)]
    scratch: robot::Scratch,
    /// Steps in a row in which every alive player waited to be born and
    /// none could be (see [`Game::step`]).
    #[serde(skip)]
    unborn_steps: u32,
}

/// Most players (people and robots, alive or not) a game may hold: a room
/// keeps at most 1000 members, and robots come on top.
const MAX_GAME_PLAYERS: usize = 2000;

impl Game {
    /// Checks what a game read from outside (a snapshot) must hold before
    /// it is run: valid settings, a grid of their size, printable cells,
    /// snakes inside the field, colours and names within the protocol's
    /// bounds. Deserializing checks only the shape; a snapshot from a
    /// corrupted store or an incompatible build would otherwise panic the
    /// room at its first step, and every worker that took it over after it.
    pub fn check(&self) -> Result<(), String> {
        self.settings.validate().map_err(|e| format!("settings: {e}"))?;
        let (w, h) = (self.grid.width(), self.grid.height());
        if (w, h) != (self.settings.width, self.settings.height) {
            return Err(format!("a grid of {w}x{h} for a field of {}x{}", self.settings.width, self.settings.height));
        }
        if !self.grid.is_whole() {
            return Err("the grid's cells do not fill it".into());
        }
        if let Some((p, c)) = self.grid.cells().find(|(_, c)| !(0x20..0x7f).contains(&c.ch) || c.colour > COLOURS) {
            return Err(format!("cell {p:?} holds {c:?}"));
        }
        if self.players.len() > MAX_GAME_PLAYERS {
            return Err(format!("{} players", self.players.len()));
        }
        let mut ids = std::collections::HashSet::new();
        for p in &self.players {
            if !ids.insert(p.id) {
                return Err(format!("player {} twice", p.id.0));
            }
            let inside = |c: &Pos| c.x < w && c.y < h;
            if !p.snake.iter().all(inside) || p.snake.len() > usize::from(w) * usize::from(h) {
                return Err(format!("player {}'s snake leaves the field", p.id.0));
            }
            if p.colour > COLOURS || p.turns.len() > TURN_QUEUE || p.name.chars().count() > 64 {
                return Err(format!("player {} out of bounds", p.id.0));
            }
        }
        if self.free_colours.len() > usize::from(COLOURS)
            || self.free_colours.iter().any(|c| !(1..=COLOURS).contains(c))
        {
            return Err("free colours out of bounds".into());
        }
        if self.top_scores.len() > crate::settings::MAX_TOP_SCORES {
            return Err(format!("{} top scores", self.top_scores.len()));
        }
        Ok(())
    }

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
            robots_made: 0,
            robots_wait_until: 0,
            // Grows to what a tick of this room makes, and stays there.
            events: Vec::new(),
            ended: false,
            park_allowance: 0,
            scratch: robot::Scratch::default(),
            unborn_steps: 0,
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

    /// Snakes alive, robots included.
    pub fn alive_count(&self) -> usize {
        self.players.iter().filter(|p| p.alive).count()
    }

    /// People's snakes alive (a parked one too: its player may be back).
    pub fn humans_alive(&self) -> usize {
        self.players.iter().filter(|p| p.alive && !p.id.is_robot()).count()
    }

    pub fn robots_alive(&self) -> usize {
        self.players.iter().filter(|p| p.alive && p.id.is_robot()).count()
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

    /// A member who may play; not alive until it joins. Robot ids are the
    /// game's own: refused.
    pub fn add_player(&mut self, id: PlayerId, name: String) -> bool {
        if id.is_robot() || self.player(id).is_some() {
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
    /// world and starts the game again. A full game makes room for a person
    /// by retiring a robot, and robots beyond the wanted number retire.
    pub fn join(&mut self, id: PlayerId) -> Result<(), JoinError> {
        self.forget_dead_robots();
        let idx = self.index(id).ok_or(JoinError::UnknownPlayer)?;
        if self.players[idx].alive {
            return Err(JoinError::AlreadyAlive);
        }
        if self.alive_count() >= usize::from(self.settings.max_players) && !self.retire_newest_robot() {
            return Err(JoinError::MaxPlayers);
        }
        if !self.running {
            self.grid.clear();
            self.events.push(Event::ResetWorld);
            self.running = true;
            self.robots_wait_until = 0;
        }
        let colour = self.take_colour();
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
        self.retire_surplus_robots();
        Ok(())
    }

    /// Queues a turn for the next ticks (one per tick).
    pub fn turn(&mut self, id: PlayerId, dir: Direction) {
        if let Some(p) = self.players.iter_mut().find(|p| p.id == id && p.alive && !p.parked)
            && p.turns.len() < TURN_QUEUE
        {
            p.turns.push_back(dir);
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
        if let Some(idx) = self.index(id)
            && self.players[idx].alive
        {
            self.die(idx);
        }
    }

    /// One tick: the tick number always grows; the world steps only while
    /// the game runs (a room may have stopped it by a death this tick).
    pub fn step(&mut self) {
        self.tick += 1;
        if !self.running {
            return;
        }
        self.keep_robots();
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
            if self.players[idx].id.is_robot() {
                self.steer_robot(idx);
            }
            self.advance(idx);
        }
        if self.settings.stones && self.chance(self.settings.stone_spawn_rate) {
            self.spawn(|_| Cell { ch: STONE, colour: 0 });
        }
        self.forget_dead_robots();
        self.reset_if_nobody_can_be_born();
    }

    /// Dead snakes stay as obstacles and stones keep coming, so a field
    /// whose players keep joining again fills up until nobody can be born:
    /// everyone alive waits for a place, nobody dies, and the world (which
    /// the original empties only at the first join after its last death)
    /// would stay full for good. After a second of that it is emptied, as
    /// at that join, and everyone waiting is born in it.
    fn reset_if_nobody_can_be_born(&mut self) {
        let mut alive = self.players.iter().filter(|p| p.alive).peekable();
        let stuck = alive.peek().is_some() && alive.all(|p| p.snake.is_empty());
        self.unborn_steps = if stuck { self.unborn_steps + 1 } else { 0 };
        if self.unborn_steps >= (self.settings.tick_rate.ceil() as u32).max(3) {
            self.unborn_steps = 0;
            self.grid.clear();
            self.events.push(Event::ResetWorld);
        }
    }

    fn index(&self, id: PlayerId) -> Option<usize> {
        self.players.iter().position(|p| p.id == id)
    }

    /// A colour from the pool; with more snakes than colours, a colour
    /// lottery, as in the original.
    fn take_colour(&mut self) -> u8 {
        if self.free_colours.is_empty() {
            self.rng.random_range(1..=COLOURS)
        } else {
            let i = self.rng.random_range(0..self.free_colours.len());
            self.free_colours.swap_remove(i)
        }
    }

    /// Gives `colour` back to the pool once no alive snake wears it.
    fn free_colour(&mut self, colour: u8) {
        if !self.players.iter().any(|p| p.alive && p.colour == colour) && !self.free_colours.contains(&colour) {
            self.free_colours.push(colour);
        }
    }

    // ------------------------------------------------------------ robots

    /// Robots wanted beside `humans` people alive: a lone person plays
    /// against the settings' number of robots, and each further person
    /// takes one robot's place (so there are always at least that many
    /// snakes alive besides any one person), within the maximum; none while
    /// nobody plays.
    fn robots_wanted(&self, humans: usize) -> usize {
        let robots = usize::from(self.settings.robots);
        if humans == 0 || robots == 0 {
            return 0;
        }
        let max = usize::from(self.settings.max_players);
        (robots + 1).saturating_sub(humans).min(max.saturating_sub(humans))
    }

    /// Ticks a place freed by a death stays free before a robot takes it.
    fn robot_delay(&self) -> u64 {
        self.settings.tick_rate.ceil().max(1.0) as u64
    }

    /// At the start of a step: robots beyond the wanted number retire, and
    /// missing ones are added (once the wait after a death is over); they
    /// are born in this step, after the people, like any new snake.
    fn keep_robots(&mut self) {
        if self.settings.robots == 0 {
            return;
        }
        self.retire_surplus_robots();
        let wanted = self.robots_wanted(self.humans_alive());
        if self.tick < self.robots_wait_until {
            return;
        }
        let max = usize::from(self.settings.max_players);
        while self.robots_alive() < wanted && self.alive_count() < max && self.add_robot() {}
    }

    /// A new robot, alive and not born yet; false once the room has run out
    /// of robot ids.
    fn add_robot(&mut self) -> bool {
        let Some(n) = self.robots_made.checked_add(1) else { return false };
        self.robots_made = n;
        let id = PlayerId::robot(n);
        let name = robot::name(n);
        let colour = self.take_colour();
        self.events.push(Event::Joined { id, name: name.clone(), colour, score: 0 });
        self.players.push(Player {
            id,
            name,
            alive: true,
            snake: VecDeque::new(),
            direction: Direction::Right,
            turns: VecDeque::new(),
            growth: 0,
            score: 0,
            colour,
            parked: false,
            park_credit: full_park_credit(),
        });
        true
    }

    fn retire_surplus_robots(&mut self) {
        let wanted = self.robots_wanted(self.humans_alive());
        while self.robots_alive() > wanted && self.retire_newest_robot() {}
    }

    /// The newest alive robot retires; false if none is alive.
    fn retire_newest_robot(&mut self) -> bool {
        // The newest has the highest number: the lowest id.
        let newest =
            self.players.iter().enumerate().filter(|(_, p)| p.alive && p.id.is_robot()).min_by_key(|(_, p)| p.id);
        match newest.map(|(idx, _)| idx) {
            Some(idx) => {
                self.retire(idx);
                true
            }
            None => false,
        }
    }

    /// A robot leaves without a trace: `p_gameover`, its cells emptied, its
    /// colour back in the pool, no score kept, no body left.
    fn retire(&mut self, idx: usize) {
        let (id, colour, cells) = {
            let p = &mut self.players[idx];
            p.alive = false;
            p.turns.clear();
            (p.id, p.colour, std::mem::take(&mut p.snake))
        };
        self.events.push(Event::GameOver(id));
        self.free_colour(colour);
        for pos in cells {
            self.render(pos, Cell::EMPTY);
        }
    }

    /// Dead and retired robots have nothing to come back to: they leave
    /// the players (outside the step's loop over them).
    fn forget_dead_robots(&mut self) {
        self.players.retain(|p| p.alive || !p.id.is_robot());
    }

    /// A robot's key press for this tick, through the same turn queue as a
    /// person's.
    fn steer_robot(&mut self, idx: usize) {
        let p = &self.players[idx];
        let Some(&head) = p.snake.front() else { return };
        let (id, dir, len) = (p.id, p.direction, p.snake.len());
        let way = robot::steer(&self.grid, head, dir, len, &mut self.scratch, &mut self.rng);
        if way != dir {
            self.turn(id, way);
        }
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
        if let Some(dir) = player.turns.pop_front()
            && dir != player.direction.opposite()
        {
            player.direction = dir;
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
        if let (Some(_), Some(l)) = (popped, last)
            && len > 2
        {
            self.render(l, Cell { ch: TAIL, colour });
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
        self.free_colour(colour);
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
        if !id.is_robot() {
            // Robots never enter the top scores.
            self.record_score(ScoreEntry { name, score, colour });
            self.events.push(Event::TopScores);
            // Nobody plays any more: the robots go too, and the game ends.
            self.retire_surplus_robots();
        }
        // A place freed by a death stays free for a second.
        self.robots_wait_until = self.tick + self.robot_delay();
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
