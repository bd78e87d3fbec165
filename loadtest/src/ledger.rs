//! The fault ledger: did a bot's snake survive the connection it lost?
//!
//! A rolling restart or a dead gateway must not cost a player anything but
//! a short wait: the client reconnects elsewhere, resumes, and finds its
//! snake where it left it (a parked snake neither moves nor grows while its
//! player is away). The ledger checks exactly that, per bot. On every close
//! the bot did not ask for it notes the time and, if the snake was alive,
//! its length, score and head cell; when the bot is back (the first `world`
//! of a new connection) it notes how long that took and compares. A second
//! fault before the bot is back keeps the first entry: the player still
//! waits.

use std::time::{Duration, Instant};

use crate::view::Pos;

/// What the bot knew of its snake: length in cells (if its body could be
/// followed on the field), score as the protocol reported it, and the cell
/// of its head (if the bot knew where it was).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnakeState {
    pub len: Option<u32>,
    pub score: u64,
    pub head: Option<Pos>,
}

impl SnakeState {
    /// The same size: same score and, where both are known, same length.
    pub fn same_size(&self, other: &SnakeState) -> bool {
        self.score == other.score && known_equal(self.len, other.len)
    }

    /// In the same place: where both are known, the head in the same cell.
    pub fn same_place(&self, other: &SnakeState) -> bool {
        known_equal(self.head, other.head)
    }
}

/// Equal, or not known on one side (not held against the snake).
fn known_equal<T: PartialEq>(a: Option<T>, b: Option<T>) -> bool {
    a.is_none() || b.is_none() || a == b
}

/// How a fault ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No snake was alive at the fault; the bot is connected again.
    Back,
    /// The snake is back, the same length and score, its head where it was.
    SnakeBack,
    /// The snake was alive before and is not any more.
    SnakeGone,
    /// The snake is alive but its length or score changed.
    SnakeChanged,
    /// The snake is alive, the same length and score, but its head is not
    /// where it was: it moved on while its player was away.
    SnakeMoved,
}

impl Outcome {
    /// Whether a player lost (part of) its snake, or its control of it.
    pub fn lost(self) -> bool {
        matches!(self, Outcome::SnakeGone | Outcome::SnakeChanged | Outcome::SnakeMoved)
    }
}

/// A fault not yet resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Open {
    at: Instant,
    snake: Option<SnakeState>,
}

/// One bot's ledger.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    open: Option<Open>,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// A close the bot did not ask for, at `now`; `snake`: its snake if alive.
    /// Returns whether this opened a new entry (false: one was still open).
    pub fn fault(&mut self, now: Instant, snake: Option<SnakeState>) -> bool {
        if self.open.is_some() {
            return false;
        }
        self.open = Some(Open { at: now, snake });
        true
    }

    /// Whether a fault waits for the bot to come back.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The snake the open fault left alive, if any.
    pub fn open_snake(&self) -> Option<SnakeState> {
        self.open.and_then(|o| o.snake)
    }

    /// Whether the open fault left a snake alive (the bot should look for it).
    pub fn snake_wanted(&self) -> bool {
        self.open.is_some_and(|o| o.snake.is_some())
    }

    /// The bot is back at `now` and sees its snake as `snake` (none: not
    /// alive). The time it took and how it ended; `None` without a fault.
    pub fn back(&mut self, now: Instant, snake: Option<SnakeState>) -> Option<(Duration, Outcome)> {
        let open = self.open.take()?;
        let took = now.saturating_duration_since(open.at);
        let outcome = match (open.snake, snake) {
            (None, _) => Outcome::Back,
            (Some(_), None) => Outcome::SnakeGone,
            (Some(before), Some(after)) if !before.same_size(&after) => Outcome::SnakeChanged,
            (Some(before), Some(after)) if !before.same_place(&after) => Outcome::SnakeMoved,
            (Some(_), Some(_)) => Outcome::SnakeBack,
        };
        Some((took, outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A snake with its head at (7, 3).
    fn snake(len: u32, score: u64) -> Option<SnakeState> {
        at(len, score, (7, 3))
    }

    fn at(len: u32, score: u64, head: Pos) -> Option<SnakeState> {
        Some(SnakeState { len: Some(len), score, head: Some(head) })
    }

    #[test]
    fn a_snake_back_unchanged_is_not_lost() {
        let t0 = Instant::now();
        let mut l = Ledger::new();
        assert_eq!(l.back(t0, snake(5, 2)), None, "nothing to resolve without a fault");
        assert!(l.fault(t0, snake(5, 2)));
        assert!(l.is_open() && l.snake_wanted());
        assert_eq!(l.back(t0 + ms(700), snake(5, 2)), Some((ms(700), Outcome::SnakeBack)));
        assert!(!l.is_open());
        // a length the bot could not follow is not held against it
        l.fault(t0, snake(5, 2));
        let unknown = Some(SnakeState { len: None, score: 2, head: Some((7, 3)) });
        assert_eq!(l.back(t0 + ms(10), unknown), Some((ms(10), Outcome::SnakeBack)));
        // nor a head it could not find
        l.fault(t0, snake(5, 2));
        let nowhere = Some(SnakeState { len: Some(5), score: 2, head: None });
        assert_eq!(l.back(t0 + ms(10), nowhere), Some((ms(10), Outcome::SnakeBack)));
    }

    #[test]
    fn a_snake_that_moved_while_away_is_lost_and_told_apart() {
        let t0 = Instant::now();
        let mut l = Ledger::new();
        // same length and score, the head one cell on: it kept going
        l.fault(t0, snake(5, 2));
        let (_, got) = l.back(t0 + ms(600), at(5, 2, (8, 3))).unwrap();
        assert_eq!(got, Outcome::SnakeMoved);
        assert!(got.lost());
        // moved and grown: a change of size, which says more
        l.fault(t0, snake(5, 2));
        assert_eq!(l.back(t0 + ms(600), at(6, 3, (9, 3))).unwrap().1, Outcome::SnakeChanged);
    }

    #[test]
    fn a_dead_grown_or_rescored_snake_is_lost() {
        let t0 = Instant::now();
        let mut l = Ledger::new();
        for (after, want) in [
            (None, Outcome::SnakeGone),
            (snake(6, 2), Outcome::SnakeChanged),
            (snake(5, 3), Outcome::SnakeChanged),
            (Some(SnakeState { len: None, score: 9, head: Some((7, 3)) }), Outcome::SnakeChanged),
        ] {
            l.fault(t0, snake(5, 2));
            let (_, got) = l.back(t0 + ms(1), after).unwrap();
            assert_eq!(got, want, "{after:?}");
            assert!(got.lost());
        }
        assert!(!Outcome::SnakeBack.lost() && !Outcome::Back.lost());
    }

    #[test]
    fn faults_without_a_snake_and_repeated_faults() {
        let t0 = Instant::now();
        let mut l = Ledger::new();
        assert!(l.fault(t0, None));
        assert!(l.is_open() && !l.snake_wanted());
        assert_eq!(l.back(t0 + ms(5), snake(3, 0)), Some((ms(5), Outcome::Back)));
        // closed again before it was back: the first entry (time and snake) stands
        assert!(l.fault(t0, snake(4, 1)));
        assert!(!l.fault(t0 + ms(500), None));
        assert_eq!(l.back(t0 + ms(900), snake(4, 1)), Some((ms(900), Outcome::SnakeBack)));
    }
}
