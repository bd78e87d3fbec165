//! Properties of the game under random play: random settings (robots
//! among them), seeds and sequences of joins, turns, kills and steps,
//! checked after every step. Uses the public API only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use snakepit_game::frame::{encode_tick, encode_welcome};
use snakepit_game::game::{Event, Game};
use snakepit_game::grid::{BODY, Cell, Grid, HEAD, Pos, TAIL};
use snakepit_game::settings::GameSettings;
use snakepit_protocol::PlayerId;
use snakepit_protocol::client::Direction;
use snakepit_protocol::client_world::{Cell as ClientCell, ClientWorld, commands, name};
use snakepit_protocol::frame_writer::FrameWriter;

#[derive(Clone, Debug)]
enum Op {
    Join(usize),
    Turn(usize, Direction),
    Step,
    Kill(usize),
    /// The player goes away (true) or comes back (false).
    Park(usize, bool),
}

#[derive(Clone, Debug)]
struct Scenario {
    settings: GameSettings,
    seed: u64,
    players: usize,
    ops: Vec<Op>,
}

fn direction() -> impl Strategy<Value = Direction> {
    prop::sample::select(Direction::ALL.to_vec())
}

fn op(players: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..players).prop_map(Op::Join),
        6 => (0..players, direction()).prop_map(|(i, d)| Op::Turn(i, d)),
        10 => Just(Op::Step),
        1 => (0..players).prop_map(Op::Kill),
        2 => (0..players, any::<bool>()).prop_map(|(i, p)| Op::Park(i, p)),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let settings = (
        10u16..=50,
        10u16..=25,
        1u16..=10,
        1u16..=4,
        prop::sample::select(vec![0.0, 0.06, 0.3]),
        prop::sample::select(vec![0.0, 0.06, 0.3]),
        any::<bool>(),
        prop::sample::select(vec![0u64, 1000]),
        1usize..=15,
        prop::sample::select(vec![0u16, 0, 1, 2, 3, 10]),
    )
        .prop_map(
            |(width, height, max_players, initial_length, digits, stones_rate, stones, kill_points, top, robots)| {
                GameSettings {
                    width,
                    height,
                    max_players,
                    initial_length,
                    digit_spawn_rate: digits,
                    stone_spawn_rate: stones_rate,
                    stones,
                    kill_points,
                    top_scores: top,
                    robots: robots.min(max_players),
                    ..GameSettings::default()
                }
            },
        );
    (settings, any::<u64>(), 1usize..=10).prop_flat_map(|(settings, seed, players)| {
        prop::collection::vec(op(players), 1..360).prop_map(move |ops| Scenario {
            settings: settings.clone(),
            seed,
            players,
            ops,
        })
    })
}

/// The game's grid as a client holds it: rows of `[char, colour]`.
fn client_grid(grid: &Grid) -> Vec<Vec<ClientCell>> {
    (0..grid.height())
        .map(|y| {
            (0..grid.width())
                .map(|x| {
                    let c = grid.get(Pos { x, y });
                    ((c.ch as char).to_string(), u64::from(c.colour))
                })
                .collect()
        })
        .collect()
}

/// The world a client builds from a welcome frame alone.
fn welcome_world(frame: &[u8]) -> ClientWorld {
    let mut world = ClientWorld::default();
    world.apply_frame(frame).expect("a client reads the welcome");
    world
}

/// What the client knows of the players matches the game: who is alive,
/// and their scores.
fn check_players(client: &ClientWorld, game: &Game, when: &str) {
    for p in game.players() {
        let alive = client.alive.get(&p.id.0).copied().unwrap_or(false);
        assert_eq!(alive, p.alive, "{when}: the client thinks {} alive: {alive}", p.name);
        if p.alive {
            assert_eq!(client.scores.get(&p.id.0), Some(&p.score), "{when}: {}'s score at the client", p.name);
        }
    }
}

/// Applies the game's events to a copy of its world.
fn apply_events(grid: &mut Grid, events: &[Event]) {
    for e in events {
        match e {
            Event::Render { pos, cell } => grid.set(*pos, *cell),
            Event::ResetWorld => grid.clear(),
            _ => {}
        }
    }
}

fn adjacent(a: Pos, b: Pos) -> bool {
    a.x.abs_diff(b.x) + a.y.abs_diff(b.y) == 1
}

/// Snakes are whole, drawn in their colours, and never overlap.
fn check_snakes(game: &Game) {
    let mut occupied = HashSet::new();
    for p in game.players() {
        if !p.alive {
            assert!(p.snake.is_empty(), "a dead player keeps no snake");
            continue;
        }
        let len = p.snake.len();
        for (i, &pos) in p.snake.iter().enumerate() {
            assert!(occupied.insert(pos), "cell {pos:?} is taken twice (player {}, cell {i})", p.name);
            if i > 0 {
                assert!(adjacent(p.snake[i - 1], pos), "snake of {} is not contiguous", p.name);
            }
            let ch = if i == 0 {
                HEAD
            } else if i + 1 == len {
                TAIL
            } else {
                BODY
            };
            assert_eq!(game.grid().get(pos), Cell { ch, colour: p.colour }, "cell {i} of {}'s snake", p.name);
        }
    }
}

/// Robots the game must not exceed beside `humans` people: none without
/// people, else the settings' snakes less the people.
fn robots_allowed(settings: &GameSettings, humans: usize) -> usize {
    let robots = usize::from(settings.robots);
    if humans == 0 || robots == 0 { 0 } else { (robots + 1).saturating_sub(humans) }
}

/// A lone person gets the settings' robots, each further person one fewer, leave with the last person, and
/// their ids are never given twice.
fn check_robots(game: &Game, settings: &GameSettings, gone: &HashSet<PlayerId>, when: &str) {
    let (humans, robots) = (game.humans_alive(), game.robots_alive());
    assert!(robots <= robots_allowed(settings, humans), "{when}: {robots} robots beside {humans} people");
    for p in game.players().iter().filter(|p| p.id.is_robot() && p.alive) {
        assert!(!gone.contains(&p.id), "{when}: robot id {} given again", p.id);
    }
    for entry in game.top_scores() {
        assert!(!entry.name.starts_with("robot "), "{when}: a robot in the top scores: {}", entry.name);
    }
}

fn run(s: &Scenario) {
    let mut game = Game::new(s.settings.clone(), s.seed);
    // Parking never runs out in these sequences (its credit has its own test).
    game.set_park_allowance(u32::MAX / 8);
    let ids: Vec<PlayerId> = (0..s.players).map(|i| PlayerId(i as i64 + 1)).collect();
    for (i, &id) in ids.iter().enumerate() {
        assert!(game.add_player(id, format!("p{i}")));
    }
    let mut replay = game.grid().clone();
    let mut client = welcome_world(&encode_welcome(&game));
    assert_eq!(client.grid, client_grid(game.grid()));
    let mut writer = FrameWriter::with_capacity(2048);
    // Each alive player's score in its current life.
    let mut lives: HashMap<PlayerId, u64> = HashMap::new();
    let mut steps = 0u32;

    // Robots that died or retired: their ids must not come back.
    let mut gone: HashSet<PlayerId> = HashSet::new();
    let note_gone = |game: &Game, gone: &mut HashSet<PlayerId>| {
        for e in game.events() {
            if let Event::GameOver(id) = e
                && id.is_robot()
            {
                gone.insert(*id);
            }
        }
    };

    for op in &s.ops {
        match *op {
            Op::Join(i) => {
                let robots = game.robots_alive();
                match game.join(ids[i]) {
                    Ok(()) => {
                        lives.insert(ids[i], 0);
                    }
                    Err(e) if game.player(ids[i]).is_some_and(|p| !p.alive) => {
                        assert_eq!(robots, 0, "{e} although a robot could give its place up");
                    }
                    Err(_) => {}
                }
                note_gone(&game, &mut gone);
                check_robots(&game, &s.settings, &HashSet::new(), "after a join");
            }
            Op::Turn(i, d) => game.turn(ids[i], d),
            Op::Kill(i) => {
                game.kill(ids[i]);
                lives.remove(&ids[i]);
                note_gone(&game, &mut gone);
                check_robots(&game, &s.settings, &HashSet::new(), "after a kill");
            }
            Op::Park(i, parked) => game.set_parked(ids[i], parked),
            Op::Step => {
                // A parked snake (with the credit to stand) holds still:
                // same cells, growth and score (an away player earns no
                // kill points).
                let parked: Vec<_> = game
                    .players()
                    .iter()
                    .filter(|p| p.alive && p.parked)
                    .map(|p| (p.id, p.snake.clone(), p.score, p.growth))
                    .collect();
                game.step();
                check_robots(&game, &s.settings, &gone, "after a step");
                note_gone(&game, &mut gone);
                for (id, snake, score, growth) in parked {
                    let p = game.player(id).expect("a parked player stays");
                    assert!(p.alive, "{} died while parked", p.name);
                    assert_eq!((&p.snake, p.growth), (&snake, growth), "{} moved while parked", p.name);
                    assert_eq!(p.score, score, "{} scored while parked", p.name);
                }
                steps += 1;

                apply_events(&mut replay, game.events());
                assert_eq!(&replay, game.grid(), "the events of step {steps} rebuild the world");

                let frame = encode_tick(&mut writer, &game);
                assert_eq!(
                    commands(&frame).unwrap()[0],
                    serde_json::json!(["tick", game.tick()]),
                    "a tick frame starts with its tick"
                );
                client.apply_frame(&frame).expect("a client reads every tick frame");
                assert_eq!(client.grid, client_grid(game.grid()), "the frame of step {steps} rebuilds the world");
                check_players(&client, &game, &format!("step {steps}"));
                game.clear_events();

                if steps.is_multiple_of(25) {
                    let welcome = encode_welcome(&game);
                    let fresh = welcome_world(&welcome);
                    assert_eq!(fresh.grid, client_grid(game.grid()), "welcome at step {steps}");
                    check_players(&fresh, &game, &format!("welcome at step {steps}"));
                }

                check_snakes(&game);
                assert!(game.alive_count() <= usize::from(s.settings.max_players));
                for p in game.players() {
                    if p.alive {
                        // Robots join by themselves, in a step.
                        let joined = lives.insert(p.id, p.score).or(p.id.is_robot().then_some(0));
                        let before = joined.expect("an alive player has joined");
                        assert!(p.score >= before, "{}'s score fell from {before} to {}", p.name, p.score);
                    } else {
                        lives.remove(&p.id);
                    }
                }
            }
        }
    }
    let welcome = encode_welcome(&game);
    assert_eq!(welcome_world(&welcome).grid, client_grid(game.grid()));
    let joined = commands(&welcome).unwrap().iter().filter(|c| name(c) == "p_joined").count();
    assert_eq!(joined, game.alive_count(), "the welcome lists every alive snake");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_play_keeps_the_world_consistent(s in scenario()) {
        run(&s);
    }
}

/// A long game with many players on the original field, to make sure the
/// properties are exercised beyond short random runs.
#[test]
fn a_long_crowded_game_keeps_the_world_consistent() {
    let mut ops = Vec::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x % 10) as usize;
        ops.push(match (x >> 8) % 8 {
            0 => Op::Join(i),
            1 | 2 => Op::Turn(i, Direction::ALL[((x >> 16) % 4) as usize]),
            _ => Op::Step,
        });
    }
    let settings = GameSettings { kill_points: 1000, ..GameSettings::default() };
    run(&Scenario { settings, seed: 1, players: 10, ops });
}

/// A long game of three people and seven robots on the original field:
/// robots come and go as people die and join again.
#[test]
fn a_long_game_with_robots_keeps_the_world_consistent() {
    let mut ops = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x % 3) as usize;
        ops.push(match (x >> 8) % 10 {
            0 => Op::Join(i),
            1 | 2 => Op::Turn(i, Direction::ALL[((x >> 16) % 4) as usize]),
            3 if x.is_multiple_of(5) => Op::Park(i, (x >> 20).is_multiple_of(2)),
            _ => Op::Step,
        });
    }
    let settings = GameSettings { kill_points: 1000, robots: 10, ..GameSettings::default() };
    run(&Scenario { settings, seed: 2, players: 3, ops });
}
