//! What a room does per tick, with 10 moving snakes on the original 50x25
//! field: step the world, encode the tick frame, clear the events. And the
//! welcome frame a newcomer gets.
//!
//! The players' part (steering away from danger, re-joining after a death,
//! a fresh world now and then) runs between ticks and is not measured. A
//! second room has one such player and nine robot snakes: the robots steer
//! inside the step, so the difference between the two rooms is what nine
//! robots cost a tick; `robot_steer` measures one robot's decision alone.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use snakepit_game::frame::{encode_tick, encode_welcome};
use snakepit_game::game::{Event, Game};
use snakepit_game::grid::{Grid, Pos};
use snakepit_game::robot;
use snakepit_game::settings::GameSettings;
use snakepit_protocol::PlayerId;
use snakepit_protocol::client::Direction;
use snakepit_protocol::frame_writer::FrameWriter;

const PLAYERS: usize = 10;
/// Ticks before the world is emptied again. Steered snakes rarely die but
/// grow by every digit they eat; with stones and corpses the field fills up
/// (~450 of 1250 cells after 200 ticks) and births start to fail.
const RESET_EVERY: u32 = 200;
/// How far the steering looks: reachable free cells past the next one.
const LOOKAHEAD: usize = 40;

struct Room {
    game: Game,
    ids: Vec<PlayerId>,
    writer: FrameWriter,
    ticks: u32,
    // Scratch space of the steering.
    seen: Vec<bool>,
    queue: VecDeque<Pos>,
}

impl Room {
    /// Ten players.
    fn new(seed: u64) -> Self {
        Self::with(seed, PLAYERS, 0)
    }

    /// One player and nine robots: ten snakes.
    fn with_robots(seed: u64) -> Self {
        Self::with(seed, 1, PLAYERS as u16 - 1)
    }

    fn with(seed: u64, players: usize, robots: u16) -> Self {
        let mut game = Game::new(GameSettings { robots, ..GameSettings::default() }, seed);
        let ids: Vec<PlayerId> = (1..=players).map(|n| PlayerId(n as i64)).collect();
        for (i, &id) in ids.iter().enumerate() {
            game.add_player(id, format!("player{i}"));
        }
        let cells = usize::from(game.grid().width()) * usize::from(game.grid().height());
        let mut room = Self {
            game,
            ids,
            writer: FrameWriter::with_capacity(2048),
            ticks: 0,
            seen: vec![false; cells],
            queue: VecDeque::new(),
        };
        room.restart();
        room
    }

    /// Everyone dies, everyone joins a fresh world and is born.
    fn restart(&mut self) {
        for &id in &self.ids {
            self.game.kill(id);
        }
        for &id in &self.ids {
            let _ = self.game.join(id);
        }
        self.game.step();
        self.game.clear_events();
        self.ticks = 0;
    }

    /// The players' part, between two ticks.
    fn play(&mut self) {
        self.ticks += 1;
        if self.ticks >= RESET_EVERY || self.game.alive_count() == 0 {
            self.restart();
        }
        for i in 0..self.ids.len() {
            let id = self.ids[i];
            let Some(p) = self.game.player(id) else { continue };
            if !p.alive {
                // Joins between ticks: the snake is born in the next step.
                let _ = self.game.join(id);
                continue;
            }
            let Some(&head) = p.snake.front() else { continue };
            let dir = p.direction;
            if let Some(best) = self.steer(head, dir)
                && best != dir
            {
                self.game.turn(id, best);
            }
        }
    }

    /// The direction (straight on preferred) with the most room behind its
    /// next cell.
    fn steer(&mut self, head: Pos, dir: Direction) -> Option<Direction> {
        let candidates = match dir {
            Direction::Left | Direction::Right => [dir, Direction::Up, Direction::Down],
            Direction::Up | Direction::Down => [dir, Direction::Left, Direction::Right],
        };
        let mut best: Option<(usize, Direction)> = None;
        for d in candidates {
            let Some(next) = self.game.grid().step(head, d.delta()) else { continue };
            if !free(self.game.grid(), next) {
                continue;
            }
            let room = self.room_behind(next);
            if best.is_none_or(|(r, _)| room > r) {
                best = Some((room, d));
            }
            if room >= LOOKAHEAD && d == dir {
                break;
            }
        }
        best.map(|(_, d)| d)
    }

    /// Free cells reachable from `start`, up to `LOOKAHEAD`.
    fn room_behind(&mut self, start: Pos) -> usize {
        let grid = self.game.grid();
        let w = usize::from(grid.width());
        self.seen.fill(false);
        self.queue.clear();
        self.queue.push_back(start);
        self.seen[usize::from(start.y) * w + usize::from(start.x)] = true;
        let mut count = 0;
        while let Some(p) = self.queue.pop_front() {
            count += 1;
            if count >= LOOKAHEAD {
                break;
            }
            for d in Direction::ALL {
                if let Some(n) = grid.step(p, d.delta()) {
                    let i = usize::from(n.y) * w + usize::from(n.x);
                    if !self.seen[i] && free(grid, n) {
                        self.seen[i] = true;
                        self.queue.push_back(n);
                    }
                }
            }
        }
        count
    }

    /// What a room does per tick (room/mod.rs `on_tick`, minus I/O and metrics).
    fn tick(&mut self) -> Bytes {
        self.game.step();
        let frame = encode_tick(&mut self.writer, &self.game);
        self.game.clear_events();
        frame
    }
}

fn free(grid: &Grid, p: Pos) -> bool {
    let c = grid.get(p);
    c.is_empty() || c.digit().is_some()
}

/// Plays `ticks` ticks and prints what a measured tick looks like.
fn report(label: &str, mut room: Room, ticks: u32) {
    let (mut alive, mut moving, mut renders, mut bytes, mut deaths) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut robots = 0usize;
    for _ in 0..ticks {
        room.play();
        alive += room.game.alive_count();
        moving += room.game.players().iter().filter(|p| p.alive && !p.snake.is_empty()).count();
        robots += room.game.players().iter().filter(|p| p.alive && !p.snake.is_empty() && p.id.is_robot()).count();
        room.game.step();
        renders += room.game.events().iter().filter(|e| matches!(e, Event::Render { .. })).count();
        deaths += room.game.events().iter().filter(|e| matches!(e, Event::GameOver(_))).count();
        bytes += encode_tick(&mut room.writer, &room.game).len();
        room.game.clear_events();
    }
    let n = f64::from(ticks);
    let avg_alive = alive as f64 / n;
    let avg_moving = moving as f64 / n;
    eprintln!(
        "{label} setup: over {ticks} ticks: {avg_alive:.2} snakes alive and {avg_moving:.2} moving per tick \
         ({:.2} of them robots), {:.1} renders and {:.0} bytes per frame, {:.3} deaths per tick",
        robots as f64 / n,
        renders as f64 / n,
        bytes as f64 / n,
        deaths as f64 / n,
    );
    assert!(avg_moving >= 9.0, "the benchmark must keep ~10 snakes moving, got {avg_moving:.2}");
}

/// Times the tick alone (step, encode, clear); the players' steering
/// between ticks is not measured.
fn bench_ticks(c: &mut Criterion, name: &str, mut room: Room) {
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut measured = Duration::ZERO;
            for _ in 0..iters {
                room.play();
                let start = Instant::now();
                let frame = room.tick();
                measured += start.elapsed();
                black_box(frame);
            }
            measured
        });
    });
}

fn room_tick(c: &mut Criterion) {
    report("room_tick", Room::new(7), 20_000);
    report("room_tick with robots", Room::with_robots(7), 20_000);

    bench_ticks(c, "room_tick/10_snakes_50x25_step_encode_clear", Room::new(1));
    bench_ticks(c, "room_tick/1_player_9_robots_50x25_step_encode_clear", Room::with_robots(1));

    // One robot's decision on a world in full play, for each robot of the
    // room in turn.
    let mut room = Room::with_robots(5);
    for _ in 0..150 {
        room.play();
        room.tick();
    }
    let robots: Vec<(Pos, Direction, usize)> = room
        .game
        .players()
        .iter()
        .filter(|p| p.alive && p.id.is_robot())
        .filter_map(|p| Some((*p.snake.front()?, p.direction, p.snake.len())))
        .collect();
    assert!(robots.len() >= 5, "robots to measure: {}", robots.len());
    let grid = room.game.grid().clone();
    let mut scratch = robot::Scratch::default();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut next = 0;
    c.bench_function("robot_steer/one_robot_50x25", |b| {
        b.iter(|| {
            let (head, dir, len) = robots[next % robots.len()];
            next += 1;
            black_box(robot::steer(black_box(&grid), head, dir, len, &mut scratch, &mut rng))
        })
    });

    // A world in full play: 10 snakes, stones, digits, a few corpses.
    let mut room = Room::new(3);
    for _ in 0..300 {
        room.play();
        room.tick();
    }
    let game = room.game;
    c.bench_function("encode_welcome/50x25_10_snakes", |b| b.iter(|| encode_welcome(black_box(&game))));
}

criterion_group!(benches, room_tick);
criterion_main!(benches);
