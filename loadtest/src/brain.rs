//! Steering: which way a bot's snake should go this tick.
//!
//! The swarm measures a server under realistic play, so its snakes should
//! live for many ticks like a person's would, rather than die within a second
//! and spend their time re-joining. The rules are simple and cheap:
//! never turn straight back, never step into a wall, stone or snake, prefer
//! ways with room behind them (a small bounded flood fill) and two free cells
//! ahead, keep clear of cells another head could take in the same tick, then
//! head for the nearest digit, and otherwise keep going straight (fewer keys).

use crate::dir::Dir;
use crate::view::{Pos, View};

/// How many free cells a way must lead to before it counts as roomy.
pub const ROOMY: usize = 40;

/// Scratch space for the flood fill, kept per bot so steering allocates
/// only while the first fields arrive.
#[derive(Debug, Default)]
pub struct Brain {
    seen: Vec<u64>,
    stack: Vec<(i32, i32)>,
}

/// What the brain knows about one way to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Way {
    dir: Dir,
    /// Free cells reachable from the next cell, up to [`ROOMY`].
    room: usize,
    /// The cell after the next one is free too.
    ahead2: bool,
    /// Another snake's head is next to the next cell.
    contested: bool,
    /// Manhattan distance from the next cell to the target digit.
    food: i32,
    straight: bool,
}

impl Way {
    /// Higher is better; compared lexicographically.
    fn rank(&self) -> (bool, usize, bool, bool, i32, bool) {
        let roomy = self.room >= ROOMY;
        // Among roomy ways room does not matter any more; among cramped
        // ones the larger space wins first.
        let room = if roomy { 0 } else { self.room };
        (roomy, room, !self.contested, self.ahead2, -self.food, self.straight)
    }
}

impl Brain {
    pub fn new() -> Brain {
        Brain::default()
    }

    /// The direction to take from `head` (of the snake in `colour`, facing
    /// `facing`). It is `facing` when no turn is better; never the opposite
    /// of `facing`; never a deadly cell while a safe one exists.
    pub fn choose(&mut self, view: &View, head: Pos, facing: Dir, colour: u8) -> Dir {
        let (hx, hy) = (i32::from(head.0), i32::from(head.1));
        let target = view.nearest_digit(head);
        let mut best: Option<Way> = None;
        for dir in Dir::ALL {
            if dir == facing.opposite() {
                continue;
            }
            let next = dir.step((hx, hy));
            if !view.is_free(next.0, next.1) {
                continue;
            }
            let (nx, ny) = dir.step(next);
            let option = Way {
                dir,
                room: self.room(view, next, (hx, hy)),
                ahead2: view.is_free(nx, ny),
                contested: contested(view, next, (hx, hy), colour),
                food: target.map_or(0, |(tx, ty)| (i32::from(tx) - next.0).abs() + (i32::from(ty) - next.1).abs()),
                straight: dir == facing,
            };
            if best.is_none_or(|b| option.rank() > b.rank()) {
                best = Some(option);
            }
        }
        // Every way is deadly: keep going (sending a key would not help).
        best.map_or(facing, |b| b.dir)
    }

    /// Free cells reachable from `start` without passing `head`, up to ROOMY.
    fn room(&mut self, view: &View, start: (i32, i32), head: (i32, i32)) -> usize {
        let (w, h) = (i32::from(view.width()), i32::from(view.height()));
        let words = (w * h) as usize / 64 + 1;
        self.seen.clear();
        self.seen.resize(words, 0);
        self.stack.clear();
        let mark = |seen: &mut Vec<u64>, (x, y): (i32, i32)| {
            let i = (y * w + x) as usize;
            let (word, bit) = (i / 64, 1u64 << (i % 64));
            let fresh = seen[word] & bit == 0;
            seen[word] |= bit;
            fresh
        };
        mark(&mut self.seen, head);
        mark(&mut self.seen, start);
        self.stack.push(start);
        let mut count = 0;
        while let Some(cell) = self.stack.pop() {
            count += 1;
            if count >= ROOMY {
                break;
            }
            for d in Dir::ALL {
                let n = d.step(cell);
                if view.is_free(n.0, n.1) && mark(&mut self.seen, n) {
                    self.stack.push(n);
                }
            }
        }
        count
    }
}

/// Whether a head of another snake touches `cell` (it could move there in
/// the same tick; whoever moves first takes it).
fn contested(view: &View, cell: (i32, i32), own_head: (i32, i32), colour: u8) -> bool {
    Dir::ALL
        .into_iter()
        .map(|d| d.step(cell))
        .filter(|&n| n != own_head)
        .any(|(x, y)| matches!(view.get(x, y), Some((b'%', c)) if c != colour))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field from rows; `%` cells and the `@`/`*` cells are colour 1 (ours)
    /// unless listed in `others`.
    fn field(rows: &[&str], others: &[Pos]) -> View {
        let mut v = View::from_rows(rows);
        for (y, row) in rows.iter().enumerate() {
            for (x, ch) in row.bytes().enumerate() {
                let pos = (x as u16, y as u16);
                if matches!(ch, b'%' | b'@' | b'*') {
                    v.set(pos.0, pos.1, ch, if others.contains(&pos) { 2 } else { 1 });
                }
            }
        }
        v
    }

    fn choose(rows: &[&str], others: &[Pos]) -> (Dir, View, Pos, Dir) {
        let v = field(rows, others);
        let head = v.find_head(1).unwrap();
        let facing = v.facing(head, 1, None).unwrap();
        (Brain::new().choose(&v, head, facing, 1), v, head, facing)
    }

    fn deadly(v: &View, head: Pos, d: Dir) -> bool {
        let (x, y) = d.step((i32::from(head.0), i32::from(head.1)));
        !v.is_free(x, y)
    }

    #[test]
    fn turns_before_a_wall_and_never_back() {
        // heading right into the east wall
        let (d, ..) = choose(&["      ", "      ", "   *@%", "      ", "      "], &[]);
        assert!(matches!(d, Dir::Up | Dir::Down), "{d:?}");
    }

    #[test]
    fn avoids_stones_snakes_and_dead_snakes() {
        for blocker in ["#", "x", "+", "@"] {
            let row = format!("  *@%{blocker}     ");
            let rows = ["           ", "           ", row.as_str(), "           ", "           "];
            let (d, ..) = choose(&rows, &[]);
            assert!(matches!(d, Dir::Up | Dir::Down), "{blocker}: {d:?}");
        }
    }

    #[test]
    fn takes_the_only_safe_way() {
        let (d, ..) = choose(&["  #   ", "*@%   ", "  #   "], &[]);
        assert_eq!(d, Dir::Right);
        let (d, ..) = choose(&["  #   ", "*@%#  ", "      "], &[]);
        assert_eq!(d, Dir::Down);
    }

    #[test]
    fn prefers_the_side_with_room() {
        // up leads into a one-cell pocket, down into open space
        let rows = [
            "##########", //
            "#### #####",
            "  *@%#    ",
            "          ",
            "          ",
            "          ",
            "          ",
        ];
        let (d, ..) = choose(&rows, &[]);
        assert_eq!(d, Dir::Down);
    }

    #[test]
    fn looks_two_cells_ahead() {
        // straight on is free for one cell only; down is free for longer
        let rows = ["           ", "  *@% #    ", "           ", "           ", "           ", "           "];
        let (d, v, head, _) = choose(&rows, &[]);
        assert!(!deadly(&v, head, d));
        assert_ne!(d, Dir::Right);
    }

    #[test]
    fn heads_for_the_nearest_digit() {
        let rows = [
            "            ",
            "            ",
            "            ",
            "  *@%       ",
            "            ",
            "            ",
            "    7       ",
        ];
        let (d, ..) = choose(&rows, &[]);
        assert_eq!(d, Dir::Down);
        // no digit: keeps going straight
        let rows = ["            ", "            ", "            ", "  *@%       ", "            ", "            "];
        assert_eq!(choose(&rows, &[]).0, Dir::Right);
    }

    #[test]
    fn keeps_clear_of_another_head() {
        // straight on, the cell (5,2) touches the other head at (6,2)
        let rows = ["           ", "           ", "  *@% %@*  ", "           ", "           ", "           "];
        let (d, ..) = choose(&rows, &[(6, 2), (7, 2), (8, 2)]);
        assert!(matches!(d, Dir::Up | Dir::Down), "{d:?}");
    }

    #[test]
    fn trapped_keeps_facing() {
        let (d, _, _, facing) = choose(&["#####", "*@%##", "#####"], &[]);
        assert_eq!(d, facing);
    }

    /// On many random fields: the choice is never 180 degrees, and never a
    /// deadly cell when one of the three ways is safe.
    #[test]
    fn never_deadly_when_a_safe_way_exists() {
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};
        let mut rng = SmallRng::seed_from_u64(7);
        let mut brain = Brain::new();
        let mut checked = 0;
        for _ in 0..5000 {
            let (w, h) = (rng.random_range(4..20), rng.random_range(4..12));
            let rows: Vec<String> = (0..h)
                .map(|_| {
                    (0..w)
                        .map(|_| match rng.random_range(0..10) {
                            0 => '#',
                            1 => 'x',
                            2 => '@',
                            3 => '5',
                            _ => ' ',
                        })
                        .collect()
                })
                .collect();
            let row_refs: Vec<&str> = rows.iter().map(String::as_str).collect();
            let mut v = View::from_rows(&row_refs);
            // our snake: head with a neck behind it, facing a random way
            let head = (rng.random_range(1..w - 1) as u16, rng.random_range(1..h - 1) as u16);
            let facing = Dir::ALL[rng.random_range(0..4)];
            let (nx, ny) = facing.opposite().step((i32::from(head.0), i32::from(head.1)));
            v.set(head.0, head.1, b'%', 1);
            v.set(nx as u16, ny as u16, b'@', 1);
            assert_eq!(v.facing(head, 1, Some(facing)), Some(facing));
            let d = brain.choose(&v, head, facing, 1);
            assert_ne!(d, facing.opposite());
            let safe_exists = Dir::ALL.into_iter().filter(|&d| d != facing.opposite()).any(|d| !deadly(&v, head, d));
            if safe_exists {
                checked += 1;
                assert!(
                    !deadly(&v, head, d),
                    "picked deadly {d:?} facing {facing:?} at {head:?} in\n{}",
                    v.rows().join("\n")
                );
            } else {
                assert_eq!(d, facing);
            }
        }
        assert!(checked > 3000);
    }
}
