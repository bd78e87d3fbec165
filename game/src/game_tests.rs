//! One focused test per rule of /work/shared/seed-game.md, on seeded games.
//! Spawn rates are 0 unless a test is about spawning, so cells are exact.

use std::collections::{HashMap, HashSet};

use snakepit_protocol::PlayerId;
use snakepit_protocol::client::Direction::{self, Down, Left, Right, Up};

use crate::game::{Event, GAME_OVER, Game, JoinError};
use crate::grid::{BODY, Cell, DEAD_HEAD, DEAD_TAIL, HEAD, Pos, STONE, TAIL};
use crate::settings::{COLOURS, GameSettings};

/// The default settings with nothing spawning at random.
fn quiet() -> GameSettings {
    GameSettings { digit_spawn_rate: 0.0, stone_spawn_rate: 0.0, ..GameSettings::default() }
}

fn pid(n: i64) -> PlayerId {
    PlayerId(n)
}

fn p(x: u16, y: u16) -> Pos {
    Pos { x, y }
}

fn cell(ch: u8, colour: u8) -> Cell {
    Cell { ch, colour }
}

/// `pos` moved by `dir`, `n` times (may leave the field only in a test bug).
fn moved(pos: Pos, dir: Direction, n: i32) -> Pos {
    let (dx, dy) = dir.delta();
    Pos { x: (i32::from(pos.x) + dx * n) as u16, y: (i32::from(pos.y) + dy * n) as u16 }
}

/// A straight snake, head first, heading `dir`: the body trails behind.
fn line(head: Pos, dir: Direction, len: i32) -> Vec<Pos> {
    (0..len).map(|i| moved(head, dir, -i)).collect()
}

/// A game whose players 1..=n were added (named p1..pn) and joined in that
/// order; not born yet, events cleared.
fn joined(settings: GameSettings, seed: u64, n: i64) -> (Game, Vec<PlayerId>) {
    let mut g = Game::new(settings, seed);
    let ids: Vec<PlayerId> = (1..=n).map(pid).collect();
    for (i, &id) in ids.iter().enumerate() {
        assert!(g.add_player(id, format!("p{}", i + 1)));
        g.join(id).unwrap();
    }
    g.clear_events();
    (g, ids)
}

/// Places a snake for `id` and forgets the placement's events.
fn place(g: &mut Game, id: PlayerId, cells: &[Pos], dir: Direction) {
    g.place_snake(id, cells, dir);
    g.clear_events();
}

/// A snake far from everything, heading up: it keeps the game running.
fn bystander(g: &mut Game, id: PlayerId) {
    place(g, id, &line(p(45, 20), Up, 3), Up);
}

fn at(g: &Game, pos: Pos) -> Cell {
    g.grid().get(pos)
}

fn colour(g: &Game, id: PlayerId) -> u8 {
    g.player(id).unwrap().colour
}

fn alive(g: &Game, id: PlayerId) -> bool {
    g.player(id).unwrap().alive
}

fn snake(g: &Game, id: PlayerId) -> Vec<Pos> {
    g.player(id).unwrap().snake.iter().copied().collect()
}

fn score(g: &Game, id: PlayerId) -> u64 {
    g.player(id).unwrap().score
}

fn game_overs(g: &Game) -> Vec<PlayerId> {
    g.events()
        .iter()
        .filter_map(|e| match e {
            Event::GameOver(id) => Some(*id),
            _ => None,
        })
        .collect()
}

/// Asserts that the alive snake of `id` is drawn `%` head, `@` body, `*` tail
/// in its colour.
fn assert_drawn_alive(g: &Game, id: PlayerId) {
    let s = snake(g, id);
    let c = colour(g, id);
    for (i, &pos) in s.iter().enumerate() {
        let ch = if i == 0 {
            HEAD
        } else if i + 1 == s.len() {
            TAIL
        } else {
            BODY
        };
        assert_eq!(at(g, pos), cell(ch, c), "cell {i} of the snake at {pos:?}");
    }
}

/// Asserts that `cells` (head first) hold a dead snake: `x`, `@`.., `+`, colour 0.
fn assert_drawn_dead(g: &Game, cells: &[Pos]) {
    for (i, &pos) in cells.iter().enumerate() {
        let ch = if i == 0 {
            DEAD_HEAD
        } else if i + 1 == cells.len() {
            DEAD_TAIL
        } else {
            BODY
        };
        assert_eq!(at(g, pos), cell(ch, 0), "dead cell {i} at {pos:?}");
    }
}

// ---------------------------------------------------------------- birth

#[test]
fn birth_is_far_from_borders_drawn_tail_to_head_with_a_birthday_digit() {
    for len in [1u16, 3, 4] {
        let margin = len + 2;
        let mut dirs = HashSet::new();
        let mut tails = HashSet::new();
        for seed in 0..100 {
            let (mut g, ids) = joined(GameSettings { initial_length: len, ..quiet() }, seed, 1);
            let a = ids[0];
            assert!(snake(&g, a).is_empty(), "not born before the first step");
            g.step();
            let s = snake(&g, a);
            assert_eq!(s.len(), usize::from(len));
            // The random cell is where drawing starts: the tail.
            let tail = *s.last().unwrap();
            assert!(tail.x >= margin && tail.x <= 49 - margin, "len {len} seed {seed}: tail {tail:?}");
            assert!(tail.y >= margin && tail.y <= 24 - margin, "len {len} seed {seed}: tail {tail:?}");
            // Drawn along the direction: each cell is the next one's step back.
            let dir = g.player(a).unwrap().direction;
            for w in s.windows(2) {
                assert_eq!(moved(w[1], dir, 1), w[0]);
            }
            assert_drawn_alive(&g, a);
            // Exactly one more thing on the field: the birthday digit, even
            // though the digit spawn rate is 0.
            let others: Vec<Cell> =
                g.grid().cells().filter(|(pos, c)| !c.is_empty() && !s.contains(pos)).map(|(_, c)| c).collect();
            assert_eq!(others.len(), 1, "len {len} seed {seed}");
            assert!(others[0].digit().is_some_and(|d| (1..=9).contains(&d)));
            assert!((1..=COLOURS).contains(&others[0].colour));
            dirs.insert(dir);
            tails.insert(tail);
        }
        assert_eq!(dirs.len(), 4, "every direction is drawn");
        assert!(tails.len() > 50, "the birth cell is random");
    }
}

#[test]
fn an_unborn_snake_is_born_on_its_first_step_and_moves_on_the_next() {
    let (mut g, ids) = joined(quiet(), 7, 1);
    let a = ids[0];
    g.step();
    let born = snake(&g, a);
    let dir = g.player(a).unwrap().direction;
    g.step();
    let s = snake(&g, a);
    assert_eq!(s[0], moved(born[0], dir, 1));
    assert_eq!(s.len(), 3);
}

// ---------------------------------------------------------------- movement

#[test]
fn a_step_draws_the_new_head_turns_the_old_head_to_body_and_moves_the_tail() {
    let (mut g, ids) = joined(quiet(), 1, 1);
    let a = ids[0];
    place(&mut g, a, &line(p(10, 10), Right, 3), Right);
    let c = colour(&g, a);
    g.step();
    assert_eq!(snake(&g, a), vec![p(11, 10), p(10, 10), p(9, 10)]);
    assert_eq!(at(&g, p(11, 10)), cell(HEAD, c));
    assert_eq!(at(&g, p(10, 10)), cell(BODY, c));
    assert_eq!(at(&g, p(9, 10)), cell(TAIL, c));
    assert_eq!(at(&g, p(8, 10)), Cell::EMPTY);
    // Exactly those four cells were rendered.
    let rendered: HashMap<Pos, Cell> = g
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Render { pos, cell } => Some((*pos, *cell)),
            _ => None,
        })
        .collect();
    let expected: HashMap<Pos, Cell> =
        [(p(11, 10), cell(HEAD, c)), (p(10, 10), cell(BODY, c)), (p(9, 10), cell(TAIL, c)), (p(8, 10), Cell::EMPTY)]
            .into();
    assert_eq!(rendered, expected);
    assert_eq!(g.events().len(), 4);
    // Turning down: the old head becomes body.
    g.clear_events();
    g.turn(a, Down);
    g.step();
    assert_eq!(snake(&g, a), vec![p(11, 11), p(11, 10), p(10, 10)]);
    assert_drawn_alive(&g, a);
    assert_eq!(at(&g, p(9, 10)), Cell::EMPTY);
    assert_eq!(g.grid().cells().filter(|(_, c)| !c.is_empty()).count(), 3);
}

#[test]
fn short_snakes_move_too_a_length_1_snake_is_only_a_head() {
    let (mut g, ids) = joined(quiet(), 1, 2);
    let (a, b) = (ids[0], ids[1]);
    place(&mut g, a, &[p(5, 5)], Up);
    place(&mut g, b, &line(p(20, 20), Left, 2), Left);
    g.step();
    assert_eq!(snake(&g, a), vec![p(5, 4)]);
    assert_eq!(at(&g, p(5, 4)), cell(HEAD, colour(&g, a)));
    assert_eq!(at(&g, p(5, 5)), Cell::EMPTY);
    assert_eq!(snake(&g, b), vec![p(19, 20), p(20, 20)]);
    assert_eq!(at(&g, p(19, 20)), cell(HEAD, colour(&g, b)));
    assert_eq!(at(&g, p(20, 20)), cell(TAIL, colour(&g, b)));
    assert_eq!(at(&g, p(21, 20)), Cell::EMPTY);
}

// ---------------------------------------------------------------- growth

#[test]
fn eating_a_digit_adds_it_to_the_score_and_the_tail_stays_that_many_ticks() {
    let (mut g, ids) = joined(quiet(), 3, 1);
    let a = ids[0];
    place(&mut g, a, &line(p(10, 10), Right, 3), Right);
    g.put(p(11, 10), cell(b'3', 2));
    g.put(p(15, 10), cell(b'2', 5));
    g.clear_events();
    g.step();
    assert_eq!(score(&g, a), 3);
    assert!(g.events().contains(&Event::Score { id: a, score: 3 }));
    assert_eq!(at(&g, p(11, 10)), cell(HEAD, colour(&g, a)), "the digit is eaten");
    let mut lengths = vec![snake(&g, a).len()];
    for _ in 0..3 {
        g.step();
        lengths.push(snake(&g, a).len());
    }
    // The tail stays on 3 ticks, then moves again: the snake grew by 3.
    assert_eq!(lengths, vec![4, 5, 6, 6]);
    assert_eq!(g.player(a).unwrap().growth, 0);
    assert_eq!(at(&g, p(8, 10)), Cell::EMPTY);
    assert_eq!(snake(&g, a), line(p(14, 10), Right, 6));
    assert_drawn_alive(&g, a);
    // A second digit adds to the score.
    g.clear_events();
    g.step();
    assert_eq!(score(&g, a), 5);
    assert_eq!(g.events().iter().filter(|e| matches!(e, Event::Score { .. })).count(), 1);
    assert!(g.events().contains(&Event::Score { id: a, score: 5 }));
    g.step();
    g.step();
    assert_eq!(snake(&g, a).len(), 8);
}

// ---------------------------------------------------------------- deaths

#[test]
fn running_out_of_the_field_on_any_border_kills() {
    let cases = [(p(49, 10), Right), (p(0, 10), Left), (p(10, 0), Up), (p(10, 24), Down)];
    for (head, dir) in cases {
        let (mut g, ids) = joined(quiet(), 1, 2);
        let (a, b) = (ids[0], ids[1]);
        let cells = line(head, dir, 3);
        place(&mut g, a, &cells, dir);
        bystander(&mut g, b);
        g.step();
        assert!(!alive(&g, a), "{dir:?}");
        assert_eq!(game_overs(&g), vec![a]);
        assert!(snake(&g, a).is_empty());
        // It died where it stood.
        assert_drawn_dead(&g, &cells);
        assert!(alive(&g, b));
    }
    // One cell before the border is still inside.
    let (mut g, ids) = joined(quiet(), 1, 1);
    place(&mut g, ids[0], &line(p(48, 24), Right, 3), Right);
    g.step();
    assert!(alive(&g, ids[0]));
}

#[test]
fn running_into_a_stone_kills_and_the_stone_stays() {
    let (mut g, ids) = joined(quiet(), 1, 2);
    let (a, b) = (ids[0], ids[1]);
    let cells = line(p(10, 10), Right, 3);
    place(&mut g, a, &cells, Right);
    bystander(&mut g, b);
    g.put(p(11, 10), cell(STONE, 0));
    g.step();
    assert!(!alive(&g, a));
    assert_eq!(game_overs(&g), vec![a]);
    assert_eq!(at(&g, p(11, 10)), cell(STONE, 0));
    assert_drawn_dead(&g, &cells);
}

#[test]
fn running_into_a_live_snake_kills_the_runner_only() {
    for order in [[1i64, 2], [2, 1]] {
        let mut g = Game::new(quiet(), 1);
        let (a, b) = (pid(1), pid(2));
        g.add_player(a, "a".into());
        g.add_player(b, "b".into());
        for n in order {
            g.join(pid(n)).unwrap();
        }
        let runner = line(p(10, 10), Right, 3);
        place(&mut g, a, &runner, Right);
        // b crosses a's path vertically: (11, 10) is its body.
        place(&mut g, b, &line(p(11, 9), Up, 3), Up);
        g.step();
        assert!(!alive(&g, a), "join order {order:?}");
        assert!(alive(&g, b));
        assert_eq!(game_overs(&g), vec![a]);
        assert_drawn_dead(&g, &runner);
        assert_eq!(snake(&g, b), line(p(11, 8), Up, 3));
        assert_drawn_alive(&g, b);
        // No kill points by default.
        assert_eq!(score(&g, b), 0);
        assert!(!g.events().iter().any(|e| matches!(e, Event::Score { .. })));
    }
}

#[test]
fn running_into_a_dead_snake_kills() {
    let (mut g, ids) = joined(quiet(), 1, 3);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let runner = line(p(10, 10), Right, 3);
    place(&mut g, a, &runner, Right);
    let corpse = line(p(11, 9), Up, 4);
    place(&mut g, b, &corpse, Up);
    bystander(&mut g, c);
    g.kill(b);
    assert_drawn_dead(&g, &corpse);
    g.step();
    assert!(!alive(&g, a));
    assert_drawn_dead(&g, &runner);
    // The corpse is untouched, still an obstacle.
    assert_drawn_dead(&g, &corpse);
    assert!(alive(&g, c));
}

#[test]
fn running_into_itself_kills() {
    // A hook: the head at (5, 5) heads up into its own body at (5, 4).
    let hook = [p(5, 5), p(6, 5), p(6, 4), p(5, 4), p(4, 4)];
    // A square: the head heads up into its own tail, which is still there
    // when the head moves (any non-empty cell kills).
    let square = [p(5, 5), p(6, 5), p(6, 4), p(5, 4)];
    for cells in [&hook[..], &square[..]] {
        let (mut g, ids) = joined(GameSettings { kill_points: 1000, ..quiet() }, 1, 2);
        let (a, b) = (ids[0], ids[1]);
        place(&mut g, a, cells, Up);
        bystander(&mut g, b);
        g.step();
        assert!(!alive(&g, a), "{cells:?}");
        assert_drawn_dead(&g, cells);
        // No kill points for killing oneself.
        assert_eq!(score(&g, a), 0);
    }
}

#[test]
fn head_to_head_the_first_in_join_order_takes_the_cell_and_the_second_dies() {
    // Players 1 and 2 both reach (21, 10); `order` is the join order.
    for (order, winner, loser) in [([1i64, 2], 1i64, 2i64), ([2, 1], 2, 1)] {
        let mut g = Game::new(quiet(), 9);
        for n in [1i64, 2] {
            g.add_player(pid(n), format!("p{n}"));
        }
        for n in order {
            g.join(pid(n)).unwrap();
        }
        place(&mut g, pid(1), &line(p(20, 10), Right, 3), Right);
        place(&mut g, pid(2), &line(p(22, 10), Left, 3), Left);
        let loser_cells = snake(&g, pid(loser));
        g.step();
        let (w, l) = (pid(winner), pid(loser));
        assert!(alive(&g, w), "order {order:?}");
        assert!(!alive(&g, l), "order {order:?}");
        assert_eq!(snake(&g, w)[0], p(21, 10));
        assert_eq!(at(&g, p(21, 10)), cell(HEAD, colour(&g, w)));
        assert_eq!(game_overs(&g), vec![l]);
        assert_drawn_dead(&g, &loser_cells);
    }
}

#[test]
fn joining_again_moves_a_player_to_the_end_of_the_join_order() {
    let (mut g, ids) = joined(quiet(), 9, 3);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    bystander(&mut g, c);
    g.kill(a);
    g.join(a).unwrap();
    assert_eq!(g.players().iter().map(|p| p.id).collect::<Vec<_>>(), vec![b, c, a]);
    // Now b moves before a: b wins the head-to-head.
    place(&mut g, a, &line(p(20, 10), Right, 3), Right);
    place(&mut g, b, &line(p(22, 10), Left, 3), Left);
    g.step();
    assert!(alive(&g, b));
    assert!(!alive(&g, a));
}

#[test]
fn a_dead_snake_stays_as_a_colour_0_obstacle() {
    let (mut g, ids) = joined(quiet(), 1, 3);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let long = line(p(10, 10), Right, 5);
    let short = line(p(10, 5), Down, 2);
    place(&mut g, a, &long, Right);
    place(&mut g, b, &short, Down);
    bystander(&mut g, c);
    g.kill(a);
    g.kill(b);
    assert_eq!(game_overs(&g), vec![a, b]);
    assert_drawn_dead(&g, &long);
    assert_eq!(at(&g, p(10, 5)), cell(DEAD_HEAD, 0));
    assert_eq!(at(&g, p(10, 4)), cell(DEAD_TAIL, 0));
    assert_eq!(at(&g, p(6, 10)), cell(DEAD_TAIL, 0));
    for _ in 0..10 {
        g.step();
    }
    assert!(g.is_running());
    assert_drawn_dead(&g, &long);
    assert_drawn_dead(&g, &short);
    // A dead player's direction and turns no longer matter.
    g.turn(a, Up);
    g.step();
    assert_drawn_dead(&g, &long);
}

#[test]
fn a_player_who_leaves_while_alive_dies() {
    let (mut g, ids) = joined(quiet(), 1, 2);
    let (a, b) = (ids[0], ids[1]);
    let cells = line(p(10, 10), Right, 3);
    place(&mut g, a, &cells, Right);
    bystander(&mut g, b);
    g.remove_player(a);
    assert!(g.player(a).is_none());
    assert_eq!(game_overs(&g), vec![a]);
    assert_drawn_dead(&g, &cells);
    assert_eq!(g.alive_count(), 1);
}

// ---------------------------------------------------------------- parking

/// Ticks a snake may stand parked in a row, in these tests.
const PARK: u32 = 1000;

/// A snake one cell from the right wall, with a digit in front and growth
/// still to come: were it not parked, it would eat, grow or die.
fn at_the_wall() -> (Game, PlayerId, PlayerId, Vec<Pos>) {
    let (mut g, ids) = joined(quiet(), 4, 2);
    g.set_park_allowance(PARK);
    let (a, b) = (ids[0], ids[1]);
    let cells = line(p(48, 10), Right, 4);
    place(&mut g, a, &cells, Right);
    bystander(&mut g, b);
    g.put(p(49, 10), cell(b'5', 3));
    g.clear_events();
    (g, a, b, cells)
}

#[test]
fn a_parked_snake_keeps_its_cells_length_and_score_over_many_ticks() {
    let (mut g, a, b, cells) = at_the_wall();
    g.step();
    assert_eq!(score(&g, a), 5, "it ate the digit");
    // The tail stayed: four more ticks of growth to come.
    let cells: Vec<Pos> = std::iter::once(p(49, 10)).chain(cells).collect();
    assert_eq!(snake(&g, a), cells);
    g.set_parked(a, true);
    g.turn(a, Up);
    // Growth pending and the wall ahead; the bystander runs
    // out of the field meanwhile, and the game goes on for the parked one.
    for _ in 0..200 {
        g.clear_events();
        g.step();
        assert!(g.events().iter().all(|e| !matches!(e, Event::Render { pos, .. } if cells.contains(pos))));
        assert!(!game_overs(&g).contains(&a));
    }
    assert!(!alive(&g, b) && g.is_running());
    assert!(alive(&g, a));
    assert_eq!(snake(&g, a), cells, "not one cell moved");
    assert_eq!(score(&g, a), 5);
    assert_eq!(g.player(a).unwrap().growth, 4, "it did not grow meanwhile");
    assert_eq!(g.player(a).unwrap().direction, Right, "a turn sent while parked is ignored");
    assert_drawn_alive(&g, a);
}

#[test]
fn an_unparked_snake_moves_on_from_where_it_stood() {
    let (mut g, a, _, cells) = at_the_wall();
    // Parked in time: the digit stays uneaten, the snake where it was.
    g.set_parked(a, true);
    for _ in 0..50 {
        g.step();
    }
    assert_eq!(snake(&g, a), cells);
    assert_eq!(at(&g, p(49, 10)), cell(b'5', 3));
    g.set_parked(a, false);
    g.turn(a, Up);
    g.step();
    assert!(alive(&g, a));
    assert_eq!(snake(&g, a), vec![p(48, 9), p(48, 10), p(47, 10), p(46, 10)], "the same length, one step on");
    assert_eq!(score(&g, a), 0);
    assert_drawn_alive(&g, a);
}

#[test]
fn an_unparked_snake_still_dies_at_the_wall() {
    let (mut g, ids) = joined(quiet(), 4, 2);
    g.set_park_allowance(PARK);
    let (a, b) = (ids[0], ids[1]);
    place(&mut g, a, &line(p(49, 10), Right, 4), Right);
    bystander(&mut g, b);
    g.set_parked(a, true);
    g.step();
    assert!(alive(&g, a), "parked at the wall");
    g.set_parked(a, false);
    g.step();
    assert!(!alive(&g, a), "unparked, it runs out of the field");
    assert_eq!(game_overs(&g), vec![a]);
    assert!(alive(&g, b));
}

#[test]
fn a_parked_snake_is_an_obstacle_like_any_other() {
    let (mut g, ids) = joined(GameSettings { kill_points: 7, ..quiet() }, 1, 2);
    g.set_park_allowance(PARK);
    let (a, b) = (ids[0], ids[1]);
    let parked = line(p(11, 9), Up, 3);
    place(&mut g, b, &parked, Up);
    g.set_parked(b, true);
    let runner = line(p(10, 10), Right, 3);
    place(&mut g, a, &runner, Right);
    g.step();
    assert!(!alive(&g, a), "ran into the parked snake");
    assert_drawn_dead(&g, &runner);
    assert!(alive(&g, b));
    assert_eq!(snake(&g, b), parked);
    assert_eq!(score(&g, b), 0, "an away player earns no kill points");
    // The game still runs: the parked snake is alive.
    assert!(g.is_running());
}

#[test]
fn a_parked_unborn_snake_waits_to_be_born() {
    let (mut g, ids) = joined(quiet(), 1, 2);
    g.set_park_allowance(PARK);
    let (a, b) = (ids[0], ids[1]);
    bystander(&mut g, b);
    g.set_parked(a, true);
    g.step();
    assert!(alive(&g, a) && snake(&g, a).is_empty(), "not born while parked");
    g.set_parked(a, false);
    g.step();
    assert_eq!(snake(&g, a).len(), usize::from(quiet().initial_length));
}

// ---------------------------------------------------------------- spawning

#[test]
fn digits_and_stones_spawn_only_on_empty_cells() {
    let settings = GameSettings {
        width: 10,
        height: 10,
        initial_length: 2,
        digit_spawn_rate: 1.0,
        stone_spawn_rate: 1.0,
        ..GameSettings::default()
    };
    for seed in 0..50 {
        let (mut g, ids) = joined(settings.clone(), seed, 1);
        let a = ids[0];
        place(&mut g, a, &line(p(5, 5), Right, 2), Right);
        // Everything is stone but the cell ahead of the head and one far away.
        let hole = p(0, 9);
        let ahead = p(6, 5);
        for (pos, c) in g.grid().clone().cells() {
            if c.is_empty() && pos != hole && pos != ahead {
                g.put(pos, cell(STONE, 0));
            }
        }
        g.clear_events();
        g.step();
        assert!(alive(&g, a));
        assert_eq!(snake(&g, a), vec![p(6, 5), p(5, 5)]);
        // The two empty cells after the move, the hole and the vacated tail,
        // received one digit and one stone; no other cell changed.
        let spawned = [at(&g, hole), at(&g, p(4, 5))];
        let digits = spawned.iter().filter(|c| c.digit().is_some()).count();
        let stones = spawned.iter().filter(|c| c.ch == STONE).count();
        assert_eq!((digits, stones), (1, 1), "seed {seed}: {spawned:?}");
        let renders = g.events().iter().filter(|e| matches!(e, Event::Render { .. })).count();
        assert_eq!(renders, 3 + 2, "seed {seed}: the move and two spawns");
        assert_eq!(g.grid().cells().filter(|(_, c)| c.is_empty()).count(), 0);
        // One free cell ahead: the cell freed by the tail is the only one a
        // spawn may take, nothing else is overwritten.
        g.clear_events();
        g.put(p(7, 5), Cell::EMPTY);
        let before = g.grid().clone();
        g.clear_events();
        g.step();
        assert_eq!(snake(&g, a), vec![p(7, 5), p(6, 5)]);
        let changed: Vec<Pos> =
            g.grid().cells().filter(|(pos, c)| before.get(*pos) != *c).map(|(pos, _)| pos).collect();
        // Only the move: new head, old head now tail, old tail emptied; the
        // one cell freed by the tail may take a spawn.
        for pos in &changed {
            assert!([p(7, 5), p(6, 5), p(5, 5)].contains(pos), "seed {seed}: {pos:?} changed");
        }
    }
}

#[test]
fn stones_spawn_at_their_rate_only_when_enabled() {
    let run = |stones: bool| {
        let settings = GameSettings { stone_spawn_rate: 1.0, digit_spawn_rate: 0.0, stones, ..GameSettings::default() };
        let (mut g, ids) = joined(settings, 5, 1);
        place(&mut g, ids[0], &line(p(10, 10), Right, 3), Right);
        for _ in 0..5 {
            g.step();
        }
        g.grid().cells().filter(|(_, c)| c.ch == STONE).count()
    };
    assert_eq!(run(true), 5, "one stone per tick at rate 1");
    assert_eq!(run(false), 0);
}

// ---------------------------------------------------------------- colours

#[test]
fn colours_are_distinct_while_the_pool_has_some() {
    for seed in 0..30 {
        let (g, ids) = joined(quiet(), seed, 6);
        let mut colours: Vec<u8> = ids.iter().map(|&id| colour(&g, id)).collect();
        colours.sort_unstable();
        assert_eq!(colours, (1..=COLOURS).collect::<Vec<_>>(), "seed {seed}");
    }
}

#[test]
fn a_dead_snakes_colour_goes_back_to_the_pool() {
    for seed in 0..30 {
        let (mut g, ids) = joined(quiet(), seed, 6);
        let victim = ids[(seed % 6) as usize];
        let freed = colour(&g, victim);
        g.kill(victim);
        let newcomer = pid(100);
        g.add_player(newcomer, "new".into());
        g.join(newcomer).unwrap();
        assert_eq!(colour(&g, newcomer), freed, "seed {seed}: the only free colour");
    }
}

#[test]
fn more_than_6_players_draw_colours_by_lottery() {
    let mut drawn = HashSet::new();
    for seed in 0..40 {
        let (mut g, ids) = joined(quiet(), seed, 7);
        let seventh = ids[6];
        let c = colour(&g, seventh);
        assert!((1..=COLOURS).contains(&c));
        drawn.insert(c);
        let holder = ids[..6].iter().copied().find(|&id| colour(&g, id) == c).unwrap();
        // The 7th dies: its colour is still worn by the holder, so it does
        // not go back to the pool.
        g.kill(seventh);
        // Another one dies: its colour is now the only free one.
        let other = ids[..6].iter().copied().find(|&id| id != holder).unwrap();
        let freed = colour(&g, other);
        g.kill(other);
        let newcomer = pid(100);
        g.add_player(newcomer, "new".into());
        g.join(newcomer).unwrap();
        assert_eq!(colour(&g, newcomer), freed, "seed {seed}");
        // Once the holder dies too, its colour is free again.
        g.kill(holder);
        let last = pid(101);
        g.add_player(last, "last".into());
        g.join(last).unwrap();
        assert_eq!(colour(&g, last), c, "seed {seed}");
    }
    assert!(drawn.len() >= 4, "the lottery draws various colours: {drawn:?}");
}

// ---------------------------------------------------------------- joining

#[test]
fn no_more_than_max_players_alive_at_once() {
    let mut g = Game::new(GameSettings { max_players: 2, ..quiet() }, 1);
    for n in 1..=3 {
        g.add_player(pid(n), format!("p{n}"));
    }
    g.join(pid(1)).unwrap();
    g.join(pid(2)).unwrap();
    assert_eq!(g.join(pid(3)), Err(JoinError::MaxPlayers));
    assert!(!alive(&g, pid(3)));
    assert_eq!(g.join(pid(1)), Err(JoinError::AlreadyAlive));
    assert_eq!(g.join(pid(9)), Err(JoinError::UnknownPlayer));
    g.kill(pid(1));
    g.join(pid(3)).unwrap();
    assert_eq!(g.alive_count(), 2);

    // The default: 10.
    let (mut g, _) = joined(quiet(), 1, 10);
    g.add_player(pid(11), "p11".into());
    assert_eq!(g.join(pid(11)), Err(JoinError::MaxPlayers));
    assert_eq!(JoinError::MaxPlayers.to_string(), "Maximum players reached");
}

// ---------------------------------------------------------------- top scores

/// One life of `id` in a game nobody else plays: eats `digit` and dies.
fn life(g: &mut Game, id: PlayerId, digit: u8) {
    g.join(id).unwrap();
    place(g, id, &line(p(10, 10), Right, 3), Right);
    if digit > 0 {
        g.put(p(11, 10), cell(b'0' + digit, 1));
    }
    g.step();
    g.kill(id);
}

#[test]
fn top_scores_keep_the_best_per_name_sorted_and_bounded() {
    let mut g = Game::new(GameSettings { top_scores: 3, ..quiet() }, 1);
    let names = ["ann", "bob", "cid", "dan"];
    for (i, name) in names.iter().enumerate() {
        g.add_player(pid(i as i64), (*name).into());
    }
    let entries = |g: &Game| g.top_scores().iter().map(|s| (s.name.clone(), s.score)).collect::<Vec<_>>();
    let e = |v: &[(&str, u64)]| v.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect::<Vec<_>>();

    life(&mut g, pid(0), 0);
    assert!(g.top_scores().is_empty(), "a zero score is not recorded");
    life(&mut g, pid(0), 5);
    assert!(g.events().contains(&Event::TopScores));
    assert_eq!(entries(&g), e(&[("ann", 5)]));
    assert_eq!(g.top_scores()[0].colour, colour(&g, pid(0)));
    life(&mut g, pid(0), 3);
    assert_eq!(entries(&g), e(&[("ann", 5)]), "a worse score of the same name is dropped");
    life(&mut g, pid(1), 7);
    assert_eq!(entries(&g), e(&[("bob", 7), ("ann", 5)]), "best first");
    life(&mut g, pid(0), 9);
    assert_eq!(entries(&g), e(&[("ann", 9), ("bob", 7)]), "a better score replaces the name's entry");
    life(&mut g, pid(2), 2);
    life(&mut g, pid(3), 8);
    assert_eq!(entries(&g), e(&[("ann", 9), ("dan", 8), ("bob", 7)]), "at most top_scores entries");
    life(&mut g, pid(2), 1);
    assert_eq!(g.top_scores().len(), 3);
}

#[test]
fn same_name_players_share_one_entry() {
    let mut g = Game::new(quiet(), 1);
    g.add_player(pid(1), "twin".into());
    g.add_player(pid(2), "twin".into());
    life(&mut g, pid(1), 4);
    life(&mut g, pid(2), 6);
    assert_eq!(g.top_scores().len(), 1);
    assert_eq!(g.top_scores()[0].score, 6);
}

// ---------------------------------------------------------------- game over

#[test]
fn the_last_death_writes_game_over_in_the_middle_row_and_stops_the_game() {
    let (mut g, ids) = joined(quiet(), 4, 2);
    let (a, b) = (ids[0], ids[1]);
    place(&mut g, a, &line(p(10, 0), Up, 3), Up);
    bystander(&mut g, b);
    g.step();
    assert!(!alive(&g, a));
    assert!(g.is_running(), "b is still alive");
    assert!(!g.just_ended());
    assert!(g.grid().cells().all(|(pos, c)| pos.y != 12 || c.is_empty()));

    g.clear_events();
    g.kill(b);
    assert!(!g.is_running());
    assert!(g.just_ended());
    assert_eq!(game_overs(&g), vec![b]);
    let text = GAME_OVER.as_bytes();
    let start = (50 - text.len() as u16) / 2;
    let text_colour = at(&g, p(start, 12)).colour;
    assert!((1..=COLOURS).contains(&text_colour));
    for (i, &ch) in text.iter().enumerate() {
        assert_eq!(at(&g, p(start + i as u16, 12)), cell(ch, text_colour), "text char {i}");
    }
    assert_eq!(at(&g, p(start - 1, 12)), Cell::EMPTY);
    assert_eq!(at(&g, p(start + text.len() as u16, 12)), Cell::EMPTY);

    // Reported once.
    g.clear_events();
    assert!(!g.just_ended());
    // A stopped game does not change.
    let before = g.grid().clone();
    for _ in 0..5 {
        g.step();
    }
    assert_eq!(g.grid(), &before);
    assert!(g.events().is_empty());
    assert!(!g.just_ended());
}

#[test]
fn game_over_also_when_the_last_snake_dies_in_a_step() {
    let (mut g, ids) = joined(quiet(), 4, 1);
    place(&mut g, ids[0], &line(p(49, 3), Right, 3), Right);
    g.step();
    assert!(!g.is_running());
    assert!(g.just_ended());
    assert_eq!(at(&g, p(15, 12)).ch, GAME_OVER.as_bytes()[0]);
    assert_eq!(at(&g, p(16, 12)).ch, b'>');
}

#[test]
fn the_first_join_after_game_over_resets_the_world() {
    let settings = GameSettings { stone_spawn_rate: 0.5, digit_spawn_rate: 0.5, ..GameSettings::default() };
    let (mut g, ids) = joined(settings, 4, 2);
    let (a, b) = (ids[0], ids[1]);
    for _ in 0..5 {
        g.step();
    }
    g.kill(a);
    g.kill(b);
    assert!(!g.is_running());
    assert!(g.grid().cells().filter(|(_, c)| *c != Cell::EMPTY).count() > 20);
    g.clear_events();
    g.join(b).unwrap();
    assert!(g.is_running());
    assert_eq!(g.events()[0], Event::ResetWorld);
    assert!(g.grid().cells().all(|(_, c)| c == Cell::EMPTY));
    // A join while the game runs resets nothing.
    g.step();
    let before = g.grid().clone();
    g.clear_events();
    g.join(a).unwrap();
    assert!(!g.events().contains(&Event::ResetWorld));
    assert_eq!(g.grid(), &before);
}

// ---------------------------------------------------------------- turning

#[test]
fn two_quick_turns_are_applied_on_two_ticks_so_a_u_turn_survives() {
    let (mut g, ids) = joined(quiet(), 1, 1);
    let a = ids[0];
    place(&mut g, a, &line(p(10, 10), Right, 3), Right);
    // Both pressed within one tick.
    g.turn(a, Up);
    g.turn(a, Left);
    g.step();
    assert_eq!(snake(&g, a)[0], p(10, 9), "only the first turn this tick");
    assert_eq!(g.player(a).unwrap().direction, Up);
    g.step();
    assert!(alive(&g, a));
    assert_eq!(snake(&g, a), vec![p(9, 9), p(10, 9), p(10, 10)]);
    assert_eq!(g.player(a).unwrap().direction, Left);
    g.step();
    assert_eq!(snake(&g, a)[0], p(8, 9));
}

#[test]
fn the_turn_queue_holds_two_presses_and_drops_more() {
    let (mut g, ids) = joined(quiet(), 1, 1);
    let a = ids[0];
    place(&mut g, a, &line(p(10, 10), Right, 3), Right);
    g.turn(a, Up);
    g.turn(a, Left);
    g.turn(a, Down);
    for _ in 0..3 {
        g.step();
    }
    // Up, Left, then still Left: the third press was dropped.
    assert_eq!(snake(&g, a), vec![p(8, 9), p(9, 9), p(10, 9)]);
}

#[test]
fn a_turn_straight_back_is_ignored() {
    for (dir, back) in [(Right, Left), (Left, Right), (Up, Down), (Down, Up)] {
        let (mut g, ids) = joined(quiet(), 1, 1);
        let a = ids[0];
        let head = p(20, 12);
        place(&mut g, a, &line(head, dir, 3), dir);
        g.turn(a, back);
        g.step();
        assert!(alive(&g, a), "{dir:?}");
        assert_eq!(g.player(a).unwrap().direction, dir);
        assert_eq!(snake(&g, a)[0], moved(head, dir, 1));
        // The ignored press does not block the next one.
        let side = if matches!(dir, Left | Right) { Up } else { Left };
        g.turn(a, side);
        g.step();
        assert_eq!(snake(&g, a)[0], moved(moved(head, dir, 1), side, 1));
    }
}

// ---------------------------------------------------------------- kill points

#[test]
fn kill_points_go_to_the_snake_that_was_run_into() {
    let settings = GameSettings { kill_points: 1000, ..quiet() };
    for order in [[1i64, 2], [2, 1]] {
        let mut g = Game::new(settings.clone(), 1);
        let (runner, wall) = (pid(1), pid(2));
        g.add_player(runner, "runner".into());
        g.add_player(wall, "wall".into());
        for n in order {
            g.join(pid(n)).unwrap();
        }
        place(&mut g, runner, &line(p(10, 10), Right, 3), Right);
        place(&mut g, wall, &line(p(11, 9), Up, 3), Up);
        g.step();
        assert!(!alive(&g, runner));
        assert_eq!(score(&g, wall), 1000, "order {order:?}");
        assert_eq!(score(&g, runner), 0);
        assert!(g.events().contains(&Event::Score { id: wall, score: 1000 }));
    }
    // Head to head: the winner was run into.
    let (mut g, ids) = joined(settings.clone(), 1, 2);
    place(&mut g, ids[0], &line(p(20, 10), Right, 3), Right);
    place(&mut g, ids[1], &line(p(22, 10), Left, 3), Left);
    g.step();
    assert_eq!(score(&g, ids[0]), 1000);
    // Nobody owns a stone or a corpse.
    let (mut g, ids) = joined(settings, 1, 3);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    place(&mut g, a, &line(p(10, 10), Right, 3), Right);
    place(&mut g, b, &line(p(11, 9), Up, 4), Up);
    bystander(&mut g, c);
    g.kill(b);
    g.step();
    assert!(!alive(&g, a));
    assert_eq!(score(&g, b), 0);
    assert_eq!(score(&g, c), 0);
}

// ---------------------------------------------------------------- ticks

#[test]
fn the_tick_grows_on_every_step_even_when_stopped() {
    let mut g = Game::new(quiet(), 1);
    assert_eq!(g.tick(), 0);
    g.step();
    g.step();
    assert_eq!(g.tick(), 2);
    assert!(!g.is_running());
    assert!(g.events().is_empty());
    assert!(g.grid().cells().all(|(_, c)| c.is_empty()));
    g.add_player(pid(1), "a".into());
    g.join(pid(1)).unwrap();
    g.step();
    assert_eq!(g.tick(), 3);
    g.kill(pid(1));
    g.step();
    assert_eq!(g.tick(), 4);
}

// ---------------------------------------------------------------- determinism

/// A fixed script of joins, turns, kills and steps; returns every step's
/// grid and events.
fn script(seed: u64) -> Vec<(crate::grid::Grid, Vec<Event>)> {
    script_with(GameSettings { kill_points: 10, ..GameSettings::default() }, seed)
}

/// The script with 8 players on `settings`.
fn script_with(settings: GameSettings, seed: u64) -> Vec<(crate::grid::Grid, Vec<Event>)> {
    let (mut g, ids) = joined(settings, seed, 8);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::new();
    for _ in 0..300 {
        let r = next();
        let id = ids[(r % 8) as usize];
        match (r >> 8) % 10 {
            0 => {
                let _ = g.join(id);
            }
            1 if r % 7 == 0 => g.kill(id),
            _ => g.turn(id, Direction::ALL[((r >> 16) % 4) as usize]),
        }
        g.step();
        out.push((g.grid().clone(), g.events().to_vec()));
        g.clear_events();
    }
    out
}

#[test]
fn the_same_seed_and_inputs_give_the_same_world() {
    let a = script(42);
    let b = script(42);
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "step {i}");
    }
    // Something happened, and the seed matters.
    assert!(a.iter().any(|(_, e)| e.iter().any(|e| matches!(e, Event::GameOver(_)))));
    assert_ne!(script(43).last().map(|(g, _)| g), a.last().map(|(g, _)| g));
}

/// Parking is credit: a snake stands parked for the allowance at most,
/// then moves on unattended; played ticks earn it back at a quarter each,
/// so coming and going cannot keep a snake still for ever.
#[test]
fn parking_credit_runs_out_and_comes_back_at_a_quarter() {
    let (mut g, ids) = joined(quiet(), 4, 2);
    let (a, b) = (ids[0], ids[1]);
    g.set_park_allowance(8);
    let cells = line(p(20, 10), Right, 3);
    place(&mut g, a, &cells, Right);
    bystander(&mut g, b);
    g.set_parked(a, true);
    for _ in 0..8 {
        g.step();
    }
    assert_eq!(snake(&g, a), cells, "eight ticks parked: the allowance");
    g.step();
    assert_eq!(snake(&g, a)[0], p(21, 10), "out of credit, it moves on unattended");
    // Back: 8 ticks played earn 2 parked ticks.
    g.set_parked(a, false);
    for _ in 0..8 {
        g.step();
    }
    let head = snake(&g, a)[0];
    assert_eq!(head, p(29, 10));
    g.set_parked(a, true);
    g.step();
    g.step();
    assert_eq!(snake(&g, a)[0], head, "two ticks parked on the credit earned");
    g.step();
    assert_eq!(snake(&g, a)[0], p(30, 10), "and no more");
}

// ---------------------------------------------------------------- robots

/// Quiet settings with `n` robots.
fn with_robots(n: u16) -> GameSettings {
    GameSettings { robots: n, ..quiet() }
}

/// The alive robots, oldest first.
fn robots(g: &Game) -> Vec<PlayerId> {
    let mut ids: Vec<PlayerId> = g.players().iter().filter(|p| p.alive && p.id.is_robot()).map(|p| p.id).collect();
    ids.sort_by_key(|id| std::cmp::Reverse(*id));
    ids
}

/// Who joined in the events so far: (id, name, colour).
fn joins(g: &Game) -> Vec<(PlayerId, String, u8)> {
    g.events()
        .iter()
        .filter_map(|e| match e {
            Event::Joined { id, name, colour, .. } => Some((*id, name.clone(), *colour)),
            _ => None,
        })
        .collect()
}

/// Empties the whole field (the snakes keep their cells in the game), and
/// forgets the events: a clean slate to place snakes on.
fn wipe(g: &mut Game) {
    let (w, h) = (g.grid().width(), g.grid().height());
    for y in 0..h {
        for x in 0..w {
            g.put(p(x, y), Cell::EMPTY);
        }
    }
    g.clear_events();
}

/// One person (p1) and `n` robots, all born; the person's snake stands
/// parked far away, heading up at (45, 20), so that it outlives anything.
fn person_and_robots(settings: GameSettings, seed: u64) -> (Game, PlayerId) {
    let (mut g, ids) = joined(settings, seed, 1);
    g.set_park_allowance(u32::MAX / 8);
    g.step();
    g.clear_events();
    let person = ids[0];
    g.set_parked(person, true);
    (g, person)
}

/// `person_and_robots` with one robot placed by hand: an empty field but
/// for the person, heading up at (45, 20), and the robot, `cells` heading
/// `dir`.
fn one_robot_at(settings: GameSettings, seed: u64, cells: &[Pos], dir: Direction) -> (Game, PlayerId, PlayerId) {
    // Two snakes: the person and one robot.
    let (mut g, person) = person_and_robots(GameSettings { robots: 1, ..settings }, seed);
    let robot = robots(&g)[0];
    wipe(&mut g);
    bystander(&mut g, person);
    place(&mut g, robot, cells, dir);
    (g, person, robot)
}

#[test]
fn a_lone_person_gets_robots_to_make_up_the_number() {
    let (mut g, ids) = joined(with_robots(3), 3, 1);
    let a = ids[0];
    g.step();
    // Three robots joined after the person, with ids -1, -2, -3, names of
    // at most 15 ASCII characters, colours of their own; all born.
    let joined = joins(&g);
    let ids: Vec<PlayerId> = joined.iter().map(|(id, ..)| *id).collect();
    assert_eq!(ids, vec![pid(-1), pid(-2), pid(-3)]);
    for (id, name, colour) in &joined {
        assert!(name.starts_with("robot ") && name.is_ascii() && name.len() <= 15, "{name}");
        assert_ne!(*colour, colour_of(&g, a), "{id}: a colour of its own");
        assert_drawn_alive(&g, *id);
        assert_eq!(snake(&g, *id).len(), 3);
    }
    let colours: HashSet<u8> = joined.iter().map(|(_, _, c)| *c).collect();
    assert_eq!(colours.len(), 3, "distinct colours while the pool has some");
    assert_eq!(g.alive_count(), 4);
    assert_eq!(g.humans_alive(), 1);
    assert_eq!(robots(&g), vec![pid(-1), pid(-2), pid(-3)]);
    // No robot without a person: a game where nobody joined has none.
    let mut empty = Game::new(with_robots(3), 3);
    empty.step();
    assert_eq!(empty.alive_count(), 0);
}

fn colour_of(g: &Game, id: PlayerId) -> u8 {
    colour(g, id)
}

#[test]
fn robots_are_kept_at_the_number_while_one_person_plays() {
    let (mut g, _) = person_and_robots(GameSettings { robots: 3, ..GameSettings::default() }, 5);
    let delay = 10; // ticks: a second at the default rate
    let mut last_death = 0;
    let mut deaths = 0;
    let mut seen = HashSet::new();
    for _ in 0..600 {
        g.clear_events();
        g.step();
        let n = robots(&g).len();
        assert!(n <= 3, "never more robots than wanted: {n}");
        assert!(g.alive_count() <= 10);
        if !game_overs(&g).is_empty() {
            deaths += game_overs(&g).len();
            last_death = g.tick();
        }
        seen.extend(robots(&g));
        assert!(
            n == 3 || g.tick() < last_death + delay,
            "tick {}: {n} robots, a second after the last death",
            g.tick()
        );
    }
    assert!(deaths > 0, "robots died on the way (and were replaced)");
    assert!(seen.len() > 3, "replacements have new ids: {seen:?}");
    assert!(seen.iter().all(|id| id.is_robot()));
}

#[test]
fn a_person_joining_takes_the_newest_robots_place_without_a_trace() {
    let settings = GameSettings { max_players: 4, ..with_robots(3) };
    let (mut g, ids) = joined(settings, 2, 1);
    g.step();
    assert_eq!(robots(&g), vec![pid(-1), pid(-2), pid(-3)]);
    assert_eq!(g.alive_count(), 4, "the game is full");
    let newest = snake(&g, pid(-3));
    g.clear_events();
    g.add_player(pid(2), "p2".into());
    g.join(pid(2)).unwrap();
    assert_eq!(robots(&g), vec![pid(-1), pid(-2)], "the newest robot gave its place up");
    assert_eq!(game_overs(&g), vec![pid(-3)]);
    for pos in &newest {
        assert_eq!(at(&g, *pos), Cell::EMPTY, "no body left at {pos:?}");
        assert!(g.events().contains(&Event::Render { pos: *pos, cell: Cell::EMPTY }));
    }
    assert!(!g.events().contains(&Event::TopScores));
    assert_eq!(g.alive_count(), 4);
    // Two more people: the other robots go, newest first.
    g.add_player(pid(3), "p3".into());
    g.join(pid(3)).unwrap();
    assert_eq!(robots(&g), vec![pid(-1)]);
    g.add_player(pid(4), "p4".into());
    g.join(pid(4)).unwrap();
    assert!(robots(&g).is_empty());
    // Full of people: the maximum holds as before.
    g.add_player(pid(5), "p5".into());
    assert_eq!(g.join(pid(5)), Err(JoinError::MaxPlayers));
    // A person leaves: a robot takes the place a second later.
    g.kill(ids[0]);
    for _ in 0..9 {
        g.step();
        assert!(robots(&g).is_empty(), "the place stays free for a second");
    }
    g.clear_events();
    g.step();
    assert_eq!(robots(&g), vec![pid(-4)], "a new id");
    assert_eq!(joins(&g).len(), 1);
}

#[test]
fn a_person_joining_a_room_with_free_places_also_sends_a_robot_off() {
    // Ten places, three robots wanted: people take the robots' share.
    let (mut g, _) = joined(with_robots(2), 2, 1);
    g.step();
    assert_eq!(robots(&g).len(), 2);
    g.add_player(pid(2), "p2".into());
    g.join(pid(2)).unwrap();
    assert_eq!(robots(&g), vec![pid(-1)]);
    g.add_player(pid(3), "p3".into());
    g.join(pid(3)).unwrap();
    assert!(robots(&g).is_empty());
    g.step();
    assert!(robots(&g).is_empty(), "three people: no robot comes back");
}

#[test]
fn when_the_last_person_dies_the_robots_retire_and_the_game_is_over() {
    // Killed (its player left), or run into the wall in a step.
    for in_step in [false, true] {
        let (mut g, ids) = joined(with_robots(3), 6, 1);
        let a = ids[0];
        g.step();
        let robot_cells: Vec<Pos> = robots(&g).iter().flat_map(|&r| snake(&g, r)).collect();
        assert_eq!(robot_cells.len(), 9);
        wipe(&mut g);
        let a_cells = line(p(49, 3), Right, 3);
        place(&mut g, a, &a_cells, Right);
        for r in robots(&g) {
            let cells = snake(&g, r);
            g.place_snake(r, &cells, g.player(r).unwrap().direction);
        }
        g.clear_events();
        if in_step {
            g.step();
        } else {
            g.kill(a);
        }
        assert!(!alive(&g, a));
        assert_eq!(game_overs(&g), vec![a, pid(-3), pid(-2), pid(-1)], "in_step {in_step}");
        assert_eq!(g.alive_count(), 0);
        assert!(!g.is_running(), "in_step {in_step}");
        assert!(g.just_ended(), "the room saves the top scores");
        assert_drawn_dead(&g, &a_cells);
        for pos in &robot_cells {
            if pos.y != 12 {
                assert_eq!(at(&g, *pos), Cell::EMPTY, "a robot's cell at {pos:?}");
            }
        }
        let start = (50 - GAME_OVER.len() as u16) / 2;
        assert_eq!(at(&g, p(start + 1, 12)).ch, b'>', "GAME OVER is written");
        // A stopped game with no person costs nothing: no robot comes back.
        g.clear_events();
        for _ in 0..20 {
            g.step();
        }
        assert!(g.events().is_empty());
        // The next game has robots again, with new ids.
        g.join(a).unwrap();
        g.step();
        assert_eq!(robots(&g), vec![pid(-4), pid(-5), pid(-6)]);
    }
}

#[test]
fn robots_never_enter_the_top_scores() {
    let cells = line(p(20, 10), Right, 3);
    let (mut g, person, robot) = one_robot_at(GameSettings { kill_points: 0, ..quiet() }, 1, &cells, Right);
    // The robot eats a 9 ahead (a wander may delay it), then is boxed in
    // by stones.
    g.put(p(21, 10), cell(b'9', 2));
    g.clear_events();
    for _ in 0..8 {
        g.step();
        if score(&g, robot) > 0 {
            break;
        }
    }
    assert_eq!(score(&g, robot), 9, "robots score like anyone");
    assert!(g.events().contains(&Event::Score { id: robot, score: 9 }));
    let head = snake(&g, robot)[0];
    for d in Direction::ALL {
        if let Some(next) = g.grid().step(head, d.delta()).filter(|&n| at(&g, n).is_empty()) {
            g.put(next, cell(STONE, 0));
        }
    }
    g.step();
    assert!(g.player(robot).is_none_or(|p| !p.alive), "boxed in, it died");
    assert!(g.top_scores().is_empty(), "a robot's death records nothing");
    assert!(!g.events().contains(&Event::TopScores));
    // The person's death records the person only.
    g.set_parked(person, false);
    place(&mut g, person, &line(p(30, 10), Right, 3), Right);
    g.put(p(31, 10), cell(b'4', 2));
    g.step();
    g.kill(person);
    let names: Vec<&str> = g.top_scores().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["p1"]);
}

#[test]
fn a_crashed_robot_is_drawn_dead_and_replaced_a_second_later() {
    let cells = line(p(10, 10), Right, 3);
    let (mut g, _, robot) = one_robot_at(quiet(), 1, &cells, Right);
    for pos in [p(11, 10), p(10, 9), p(10, 11)] {
        g.put(pos, cell(STONE, 0));
    }
    g.clear_events();
    g.step();
    let died = g.tick();
    assert_eq!(game_overs(&g), vec![robot], "no way out: it ran into the stone");
    assert_drawn_dead(&g, &cells);
    assert!(robots(&g).is_empty());
    assert!(g.player(robot).is_none(), "a dead robot leaves the game");
    // A second (10 ticks at the default rate) later, a new robot.
    loop {
        g.clear_events();
        g.step();
        if !joins(&g).is_empty() {
            break;
        }
        assert!(g.tick() < died + 10, "no replacement by tick {}", g.tick());
    }
    assert_eq!(g.tick(), died + 10);
    assert_eq!(robots(&g), vec![pid(-2)]);
    assert_eq!(joins(&g)[0].1, "robot Alan");
    assert_eq!(snake(&g, pid(-2)).len(), 3, "born in the step it was added");
    assert_drawn_dead(&g, &cells);
}

#[test]
fn a_robot_beside_a_digit_eats_it_within_a_few_ticks() {
    // Heading up; the digit two cells to its right, on its head's row.
    let mut quick = 0;
    for seed in 0..50 {
        let cells = line(p(20, 12), Up, 3);
        let (mut g, _, robot) = one_robot_at(quiet(), seed, &cells, Up);
        g.put(p(22, 12), cell(b'7', 1));
        let mut ticks = 0;
        while score(&g, robot) == 0 {
            g.step();
            ticks += 1;
            assert!(ticks <= 12, "seed {seed}: the digit is still there after {ticks} ticks");
        }
        assert_eq!(score(&g, robot), 7);
        if ticks == 2 {
            quick += 1;
        }
    }
    // Straight there, but for a random wander now and then.
    assert!(quick >= 40, "only {quick} of 50 went straight for it");
}

#[test]
fn a_robot_turns_away_from_walls_stones_and_bodies() {
    // Heading right at (30, 10) with something right ahead, or at the
    // right wall.
    let obstacles = [
        ("stone", vec![(p(31, 10), cell(STONE, 0))]),
        ("dead snake", vec![(p(31, 10), cell(DEAD_HEAD, 0)), (p(31, 11), cell(DEAD_TAIL, 0))]),
        ("body", vec![(p(31, 10), cell(BODY, 3))]),
    ];
    for seed in 0..30 {
        for (what, obstacle) in &obstacles {
            let cells = line(p(30, 10), Right, 3);
            let (mut g, _, robot) = one_robot_at(quiet(), seed, &cells, Right);
            for &(pos, c) in obstacle {
                g.put(pos, c);
            }
            g.step();
            assert!(alive(&g, robot), "seed {seed}: ran into a {what}");
            assert!([p(30, 9), p(30, 11)].contains(&snake(&g, robot)[0]), "seed {seed}: {what}");
        }
        for (head, dir) in [(p(49, 10), Right), (p(0, 10), Left), (p(20, 0), Up), (p(20, 24), Down)] {
            let (mut g, _, robot) = one_robot_at(quiet(), seed, &line(head, dir, 3), dir);
            for _ in 0..5 {
                g.step();
            }
            assert!(alive(&g, robot), "seed {seed}: ran out of the field heading {dir:?}");
        }
    }
}

#[test]
fn a_robot_can_be_beaten_a_body_across_its_only_way_kills_it() {
    // A corridor of stones at y 9 and 11; the robot in it heading right;
    // the person's snake, heading up, lies across its end at x 12.
    let settings = GameSettings { kill_points: 1000, ..quiet() };
    let robot_cells = line(p(10, 10), Right, 3);
    let (mut g, person, robot) = one_robot_at(settings, 1, &robot_cells, Right);
    for x in 5..=11 {
        g.put(p(x, 9), cell(STONE, 0));
        g.put(p(x, 11), cell(STONE, 0));
    }
    g.set_parked(person, false);
    place(&mut g, person, &line(p(12, 8), Up, 7), Up);
    g.step();
    assert!(alive(&g, robot), "one free cell ahead");
    assert_eq!(snake(&g, robot)[0], p(11, 10));
    g.step();
    assert_eq!(game_overs(&g), vec![robot], "nowhere to go: it ran into the person");
    assert_drawn_dead(&g, &[p(11, 10), p(10, 10), p(9, 10)]);
    assert_eq!(score(&g, person), 1000, "kill points for the person");
    assert!(g.is_running(), "the person plays on");
}

#[test]
fn the_same_seed_and_inputs_give_the_same_world_with_robots() {
    // Eight people and up to ten snakes: robots come and go as people die
    // and join again.
    let settings = GameSettings { kill_points: 10, robots: 9, ..GameSettings::default() };
    let a = script_with(settings.clone(), 42);
    let b = script_with(settings.clone(), 42);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "step {i}");
    }
    let robot_events = |s: &[(crate::grid::Grid, Vec<Event>)]| {
        s.iter()
            .flat_map(|(_, e)| e)
            .filter(|e| matches!(e, Event::Joined { id, .. } | Event::GameOver(id) if id.is_robot()))
            .count()
    };
    assert!(robot_events(&a) > 10, "robots joined and left: {}", robot_events(&a));
    assert_ne!(script_with(settings, 43).last().map(|(g, _)| g), a.last().map(|(g, _)| g));
}

#[test]
fn robot_ids_are_not_members() {
    let mut g = Game::new(with_robots(2), 1);
    assert!(!g.add_player(pid(-1), "fake".into()), "a robot id cannot be added as a player");
    assert_eq!(g.join(pid(-1)), Err(JoinError::UnknownPlayer));
}

/// A field full of dead snakes and stones, with everyone alive waiting to
/// be born: nobody can be born, nobody dies, and the world would never be
/// emptied again. After a second of that (10 steps at 10 ticks/s) it is
/// emptied, as at the first join after a game over, and everyone waiting
/// is born in it.
#[test]
fn a_field_nobody_can_be_born_on_is_emptied_after_a_second() {
    let settings = quiet();
    let (w, h) = (settings.width, settings.height);
    let (mut g, ids) = joined(settings, 5, 2);
    for x in 0..w {
        for y in 0..h {
            g.put(p(x, y), cell(STONE, 0));
        }
    }
    g.clear_events();
    for _ in 0..9 {
        g.step();
        assert!(ids.iter().all(|&id| snake(&g, id).is_empty()), "born on a full field");
        assert!(!g.events().iter().any(|e| matches!(e, Event::ResetWorld)), "emptied too soon");
    }
    g.step();
    assert!(g.events().iter().any(|e| matches!(e, Event::ResetWorld)), "the full field is never emptied");
    assert_eq!(at(&g, p(0, 0)), Cell::EMPTY);
    g.step();
    assert!(ids.iter().all(|&id| alive(&g, id) && !snake(&g, id).is_empty()), "born in the emptied world");
}
