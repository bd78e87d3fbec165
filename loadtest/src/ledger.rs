//! The fault ledger: did a bot's snake survive the connection it lost?
//!
//! A rolling restart or a dead gateway must not cost a player anything but
//! a short wait: the client reconnects elsewhere, resumes, and finds its
//! snake where it left it (a parked snake neither moves nor grows while its
//! player is away). The ledger checks exactly that, per bot. On every close
//! the bot did not ask for it notes the time and, if the snake was alive,
//! its length and score; when the bot is back (the first `world` of a new
//! connection) it notes how long that took and compares. A second fault
//! before the bot is back keeps the first entry: the player still waits.

use std::time::{Duration, Instant};

/// What the bot knew of its snake: length in cells (if its body could be
/// followed on the field) and score as the protocol reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnakeState {
    pub len: Option<u32>,
    pub score: u64,
}

impl SnakeState {
    /// The same snake: same score and, where both are known, same length.
    pub fn matches(&self, other: &SnakeState) -> bool {
        self.score == other.score && (self.len.is_none() || other.len.is_none() || self.len == other.len)
    }
}

/// How a fault ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No snake was alive at the fault; the bot is connected again.
    Back,
    /// The snake is back, the same length and score.
    SnakeBack,
    /// The snake was alive before and is not any more.
    SnakeGone,
    /// The snake is alive but its length or score changed.
    SnakeChanged,
}

impl Outcome {
    /// Whether a player lost (part of) its snake.
    pub fn lost(self) -> bool {
        matches!(self, Outcome::SnakeGone | Outcome::SnakeChanged)
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
            (Some(before), Some(after)) if before.matches(&after) => Outcome::SnakeBack,
            (Some(_), Some(_)) => Outcome::SnakeChanged,
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

    fn snake(len: u32, score: u64) -> Option<SnakeState> {
        Some(SnakeState { len: Some(len), score })
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
        let unknown = Some(SnakeState { len: None, score: 2 });
        assert_eq!(l.back(t0 + ms(10), unknown), Some((ms(10), Outcome::SnakeBack)));
    }

    #[test]
    fn a_dead_grown_or_rescored_snake_is_lost() {
        let t0 = Instant::now();
        let mut l = Ledger::new();
        for (after, want) in [
            (None, Outcome::SnakeGone),
            (snake(6, 2), Outcome::SnakeChanged),
            (snake(5, 3), Outcome::SnakeChanged),
            (Some(SnakeState { len: None, score: 9 }), Outcome::SnakeChanged),
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
