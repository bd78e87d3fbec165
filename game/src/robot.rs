//! How a robot snake steers: pure functions on the grid, so that a room
//! that is alone with one person still plays a game, and the rule tests can
//! put robots in a world cell by cell.
//!
//! Each tick a robot looks at the ways it may go (not straight back) whose
//! next cell is inside the field and empty or a digit. It heads for the
//! nearest digit (a breadth-first search through free cells, bounded), but
//! not into a pocket too small for it (a flood fill, capped at its length
//! and a margin); with no digit in reach it keeps its way while there is
//! room. Once in [`WANDER_ONE_IN`] ticks it takes a random safe way instead,
//! and it never looks at where other heads are going: robots can be beaten.
//! With no safe way it keeps going, and dies. Every random draw comes from
//! the game's seeded RNG, so a game with robots is as deterministic as one
//! without.

use std::collections::VecDeque;

use rand::Rng;
use snakepit_protocol::client::Direction;

use crate::grid::{Grid, Pos};

/// A robot takes a random safe way once in this many ticks (when it has a
/// choice).
pub const WANDER_ONE_IN: u32 = 10;
/// Most cells the digit search looks at: a digit further away is out of
/// sight, and the robot just keeps moving where there is room.
pub const SEARCH_CELLS: usize = 400;
/// Free cells a way must lead to beyond the robot's own length to count as
/// roomy.
pub const ROOM_MARGIN: usize = 8;
/// The room a way needs is capped: a long robot does not flood the field.
pub const ROOM_CAP: usize = 120;

/// Names a robot is given in turn, after pioneers of computing; with the
/// prefix at most 15 ASCII characters, like a person's name.
const NAMES: [&str; 12] =
    ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Ken", "Dennis", "Frances", "John", "Radia", "Niklaus"];

/// The name of a room's `n`th robot (n from 1), e.g. `robot Ada`.
pub fn name(n: u32) -> String {
    let i = n.saturating_sub(1) as usize % NAMES.len();
    format!("robot {}", NAMES[i])
}

/// Reused buffers of the searches, so a robot's tick allocates nothing.
/// A cell is seen when its mark equals the current generation, so no
/// search has to clear the whole field first.
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    marks: Vec<u32>,
    generation: u32,
    queue: VecDeque<(Pos, u8)>,
}

impl Scratch {
    /// Starts a search on `grid`: nothing is seen yet.
    fn begin(&mut self, grid: &Grid) {
        let cells = usize::from(grid.width()) * usize::from(grid.height());
        if self.marks.len() != cells || self.generation == u32::MAX {
            self.marks.clear();
            self.marks.resize(cells, 0);
            self.generation = 0;
        }
        self.generation += 1;
        self.queue.clear();
    }

    /// Marks `p` seen; false if it already was.
    fn see(&mut self, grid: &Grid, p: Pos) -> bool {
        let i = usize::from(p.y) * usize::from(grid.width()) + usize::from(p.x);
        if self.marks[i] == self.generation {
            return false;
        }
        self.marks[i] = self.generation;
        true
    }
}

/// A cell a snake may enter and live: empty or a digit.
pub fn free(grid: &Grid, p: Pos) -> bool {
    let c = grid.get(p);
    c.is_empty() || c.digit().is_some()
}

/// The ways a snake heading `dir` may turn to: straight on first, then the
/// two sides (never straight back).
pub fn ways(dir: Direction) -> [Direction; 3] {
    match dir {
        Direction::Left | Direction::Right => [dir, Direction::Up, Direction::Down],
        Direction::Up | Direction::Down => [dir, Direction::Left, Direction::Right],
    }
}

/// The way a robot whose head is at `head`, heading `dir`, `len` cells
/// long, goes this tick.
pub fn steer(
    grid: &Grid,
    head: Pos,
    dir: Direction,
    len: usize,
    scratch: &mut Scratch,
    rng: &mut impl Rng,
) -> Direction {
    let mut safe = [(dir, head); 3];
    let mut n = 0;
    for d in ways(dir) {
        if let Some(next) = grid.step(head, d.delta()).filter(|&p| free(grid, p)) {
            safe[n] = (d, next);
            n += 1;
        }
    }
    let safe = &safe[..n];
    match safe {
        // Nowhere to go: straight on, into whatever is there.
        [] => return dir,
        [(only, _)] => return *only,
        _ => {}
    }
    if rng.random_range(0..WANDER_ONE_IN) == 0 {
        return safe[rng.random_range(0..safe.len())].0;
    }
    let need = (len + ROOM_MARGIN).min(ROOM_CAP);
    let toward = nearest_digit(grid, safe, scratch);
    if let Some(i) = toward
        && room(grid, safe[i].1, need, scratch) >= need
    {
        return safe[i].0;
    }
    // No digit in sight, or its way is a pocket: the way with the most room,
    // straight on first.
    let mut best = (0, dir);
    for (i, &(d, next)) in safe.iter().enumerate() {
        if Some(i) == toward {
            continue;
        }
        let r = room(grid, next, need, scratch);
        if r >= need {
            return d;
        }
        if r > best.0 {
            best = (r, d);
        }
    }
    match toward {
        // The digit's way is a pocket too: take the roomiest.
        Some(i) if room(grid, safe[i].1, need, scratch) > best.0 => safe[i].0,
        _ => best.1,
    }
}

/// Which of the `safe` ways (their next cells) leads to the nearest digit
/// through free cells, within [`SEARCH_CELLS`]; on a tie, the earlier way.
fn nearest_digit(grid: &Grid, safe: &[(Direction, Pos)], scratch: &mut Scratch) -> Option<usize> {
    scratch.begin(grid);
    for (i, &(_, next)) in safe.iter().enumerate() {
        if grid.get(next).digit().is_some() {
            return Some(i);
        }
        if scratch.see(grid, next) {
            scratch.queue.push_back((next, i as u8));
        }
    }
    let mut looked = 0;
    while let Some((p, way)) = scratch.queue.pop_front() {
        looked += 1;
        if looked > SEARCH_CELLS {
            break;
        }
        for d in Direction::ALL {
            let Some(n) = grid.step(p, d.delta()) else { continue };
            if !free(grid, n) || !scratch.see(grid, n) {
                continue;
            }
            if grid.get(n).digit().is_some() {
                return Some(usize::from(way));
            }
            scratch.queue.push_back((n, way));
        }
    }
    None
}

/// Free cells reachable from `start` (itself included), counted up to `cap`.
pub fn room(grid: &Grid, start: Pos, cap: usize, scratch: &mut Scratch) -> usize {
    scratch.begin(grid);
    if !free(grid, start) {
        return 0;
    }
    scratch.see(grid, start);
    scratch.queue.push_back((start, 0));
    let mut count = 0;
    while let Some((p, _)) = scratch.queue.pop_front() {
        count += 1;
        if count >= cap {
            break;
        }
        for d in Direction::ALL {
            if let Some(n) = grid.step(p, d.delta())
                && free(grid, n)
                && scratch.see(grid, n)
            {
                scratch.queue.push_back((n, 0));
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::grid::{Cell, STONE};

    fn p(x: u16, y: u16) -> Pos {
        Pos { x, y }
    }

    fn stone() -> Cell {
        Cell { ch: STONE, colour: 0 }
    }

    #[test]
    fn names_are_short_ascii_and_ids_negative() {
        for n in [1, 2, 12, 13, 1000, u32::MAX] {
            let name = name(n);
            assert!(name.is_ascii() && name.len() <= 15 && name.starts_with("robot "), "{name}");
        }
        assert_eq!(name(1), "robot Ada");
        assert_ne!(name(1), name(2));
    }

    #[test]
    fn room_counts_free_cells_up_to_the_cap() {
        let mut grid = Grid::new(10, 10);
        let mut s = Scratch::default();
        assert_eq!(room(&grid, p(0, 0), 1000, &mut s), 100);
        assert_eq!(room(&grid, p(0, 0), 30, &mut s), 30);
        // A wall of stones at x = 3 cuts off a 3x10 pocket.
        for y in 0..10 {
            grid.set(p(3, y), stone());
        }
        assert_eq!(room(&grid, p(1, 5), 1000, &mut s), 30);
        assert_eq!(room(&grid, p(3, 5), 1000, &mut s), 0, "a stone is no room");
        // A digit is room too.
        grid.set(p(0, 0), Cell { ch: b'5', colour: 1 });
        assert_eq!(room(&grid, p(1, 5), 1000, &mut s), 30);
    }

    #[test]
    fn the_nearest_digit_is_found_around_obstacles() {
        // A robot at (5, 5) may go right to (6, 5) or down to (5, 6); a
        // stone above it. A digit to the right is reached through the way
        // right, one below through the way down.
        let mut grid = Grid::new(20, 20);
        grid.set(p(5, 4), stone());
        grid.set(p(9, 5), Cell { ch: b'3', colour: 2 });
        let mut s = Scratch::default();
        let safe = [(Direction::Right, p(6, 5)), (Direction::Down, p(5, 6))];
        assert_eq!(nearest_digit(&grid, &safe, &mut s), Some(0));
        // The digit moves below: down is nearer.
        grid.set(p(9, 5), Cell::EMPTY);
        grid.set(p(5, 9), Cell { ch: b'3', colour: 2 });
        assert_eq!(nearest_digit(&grid, &safe, &mut s), Some(1));
        // No digit at all.
        grid.set(p(5, 9), Cell::EMPTY);
        assert_eq!(nearest_digit(&grid, &safe, &mut s), None);
    }

    #[test]
    fn steering_avoids_a_pocket_even_with_a_digit_in_it() {
        // A robot at (5, 5) heading up; to its left a one-cell pocket
        // holding a digit, closed by stones; ahead and to its right open
        // field.
        let mut grid = Grid::new(20, 20);
        for pos in [p(3, 4), p(3, 5), p(3, 6), p(4, 4), p(4, 6), p(2, 5)] {
            grid.set(pos, stone());
        }
        grid.set(p(4, 5), Cell { ch: b'9', colour: 1 });
        grid.set(p(5, 5), Cell { ch: b'%', colour: 1 });
        grid.set(p(5, 6), Cell { ch: b'*', colour: 1 });
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut s = Scratch::default();
        let ways: Vec<Direction> =
            (0..1000).map(|_| steer(&grid, p(5, 5), Direction::Up, 2, &mut s, &mut rng)).collect();
        assert!(!ways.contains(&Direction::Down), "never straight back");
        // Into the pocket only on a wander: a third of one tick in ten.
        let lefts = ways.iter().filter(|&&d| d == Direction::Left).count();
        assert!((1..100).contains(&lefts), "the pocket is taken only on a wander: {lefts} of 1000");
    }
}
