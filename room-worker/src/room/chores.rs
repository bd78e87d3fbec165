//! A room's slow duties (housekeeping every second, a snapshot every few,
//! its seats held in the directory every few) on one clock instead of a
//! timer each: a running room looks at it once per tick without waiting,
//! an idle one sleeps until the first is due.

use std::time::Duration;

use tokio::time::Instant;

use super::RoomConfig;

/// Housekeeping: expiries, the end of a game, retiring an empty room.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);
/// The shortest period a chore is given.
const SHORTEST: Duration = Duration::from_millis(1);

pub(super) struct Chores {
    housekeeping: Instant,
    snapshot: Option<(Instant, Duration)>,
    seats: (Instant, Duration),
}

/// The chores due at a moment.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Due {
    pub housekeeping: bool,
    pub snapshot: bool,
    pub seats: bool,
}

impl Chores {
    /// Every chore is due at once, as a fresh `Interval`'s first tick was.
    /// A period of (nearly) nothing is taken as [`SHORTEST`], not as a
    /// chore due for ever.
    pub(super) fn new(now: Instant, snapshot_every: Option<Duration>, seats_every: Duration) -> Self {
        Self {
            housekeeping: now,
            snapshot: snapshot_every.map(|p| (now, p.max(SHORTEST))),
            seats: (now, seats_every.max(SHORTEST)),
        }
    }

    /// A room's chores, by its settings, every one due at `now`.
    pub(super) fn of(now: Instant, config: &RoomConfig) -> Self {
        Self::new(now, config.snapshot_every, config.seat_hold / 3)
    }

    /// When the next chore is due.
    pub(super) fn next_due(&self) -> Instant {
        let mut next = self.housekeeping.min(self.seats.0);
        if let Some((at, _)) = self.snapshot {
            next = next.min(at);
        }
        next
    }

    /// The chores due at `now`. Each keeps its own beat though a running
    /// room takes it at its next tick (a little late); one late by more
    /// than its period is not caught up, but due a period from now.
    pub(super) fn take_due(&mut self, now: Instant) -> Due {
        Due {
            housekeeping: take(&mut self.housekeeping, HOUSEKEEPING_EVERY, now),
            snapshot: self.snapshot.as_mut().is_some_and(|(at, every)| take(at, *every, now)),
            seats: take(&mut self.seats.0, self.seats.1, now),
        }
    }

    /// A snapshot started at `now` (one that could not wait for the
    /// interval: a birth, a death, a score): the next is due an interval
    /// after it, not at the old beat, which would have written the same
    /// changes twice within an interval.
    pub(super) fn snapshot_started(&mut self, now: Instant) {
        if let Some((at, every)) = self.snapshot.as_mut() {
            *at = now + *every;
        }
    }
}

/// Whether a chore due at `at` is due at `now`; if so, `at` moves on.
fn take(at: &mut Instant, every: Duration, now: Instant) -> bool {
    if *at > now {
        return false;
    }
    *at += every;
    if *at <= now {
        *at = now + every;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_chore_comes_round_at_its_own_period() {
        let t0 = Instant::now();
        let mut c = Chores::new(t0, Some(Duration::from_millis(500)), Duration::from_secs(5));
        assert_eq!(c.take_due(t0), Due { housekeeping: true, snapshot: true, seats: true });
        assert_eq!(c.next_due(), t0 + Duration::from_millis(500));
        assert_eq!(c.take_due(t0 + Duration::from_millis(499)), Due::default());
        // Taken a little late, at a tick: the beat is kept.
        assert_eq!(c.take_due(t0 + Duration::from_millis(560)), Due { snapshot: true, ..Due::default() });
        assert_eq!(c.next_due(), t0 + Duration::from_secs(1));
        assert_eq!(
            c.take_due(t0 + Duration::from_secs(1)),
            Due { housekeeping: true, snapshot: true, ..Due::default() }
        );
        assert_eq!(c.take_due(t0 + Duration::from_secs(5)), Due { housekeeping: true, snapshot: true, seats: true });
        // Late by far: due once, then a period after the late look.
        let late = t0 + Duration::from_secs(60);
        assert_eq!(c.take_due(late), Due { housekeeping: true, snapshot: true, seats: true });
        assert_eq!(c.next_due(), late + Duration::from_millis(500));
    }

    #[test]
    fn a_period_of_nothing_does_not_make_a_chore_due_for_ever() {
        let t0 = Instant::now();
        let mut c = Chores::new(t0, Some(Duration::ZERO), Duration::from_nanos(1));
        c.take_due(t0);
        assert_eq!(c.next_due(), t0 + SHORTEST);
    }

    #[test]
    fn no_snapshots_where_nobody_takes_over() {
        let t0 = Instant::now();
        let mut c = Chores::new(t0, None, Duration::from_secs(5));
        assert!(!c.take_due(t0).snapshot);
        assert_eq!(c.next_due(), t0 + HOUSEKEEPING_EVERY);
    }
}
