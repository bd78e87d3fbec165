//! When a room's ticks fall.
//!
//! Every room has its own timer, but their ticks are not left where each
//! room happened to start: a room's first tick is put on a grid of
//! [`SLOTS`] instants per tick period, shared by the worker's rooms, and
//! its later ticks keep that phase. Rooms of the same rate then tick in a few
//! shared instants, and the worker wakes a few dozen times a second for
//! all of them, not once for nearly every millisecond (each wake-up of an
//! idle thread is a trip through the kernel, and most of a small room's
//! upkeep).

use std::time::Duration;

use tokio::time::Instant;

/// Instants per tick period on which a room's ticks may fall: a room's
/// first tick comes at most a sixteenth of a period late.
pub(super) const SLOTS: u32 = 16;

/// The grid of a worker's ticks: any origin will do, as long as the
/// worker's rooms share it.
#[derive(Clone, Copy, Debug)]
pub struct TickGrid {
    origin: Instant,
}

impl TickGrid {
    /// A grid from now.
    pub fn new() -> Self {
        Self { origin: Instant::now() }
    }

    /// The first tick of a game that starts running at `now`: one period
    /// on, then on to the next instant of the grid. The grid's instants are
    /// the origin plus whole periods plus sixteenths of one (rounded down
    /// to the nanosecond): the same in every period, however long the
    /// worker has run and whatever the period's length.
    pub(super) fn first_tick(&self, now: Instant, period: Duration) -> Instant {
        let at = now + period;
        let period_ns = period.as_nanos();
        if period_ns < u128::from(SLOTS) {
            return at;
        }
        // How far `at` lies into its period of the grid (which may begin
        // before or after the origin).
        let into = if at >= self.origin {
            (at - self.origin).as_nanos() % period_ns
        } else {
            (period_ns - (self.origin - at).as_nanos() % period_ns) % period_ns
        };
        let slot = (into * u128::from(SLOTS)).div_ceil(period_ns);
        let on_grid = slot * period_ns / u128::from(SLOTS);
        // Below a period, which fits in a u64 of nanoseconds.
        at + Duration::from_nanos(u64::try_from(on_grid - into).unwrap_or(0))
    }
}

impl Default for TickGrid {
    fn default() -> Self {
        Self::new()
    }
}

/// The tick after `scheduled` that is not yet past at `now`: ticks missed by
/// a late wake-up are skipped, not caught up.
pub(super) fn tick_after(scheduled: Instant, period: Duration, now: Instant) -> Instant {
    let next = scheduled + period;
    if next > now || period.is_zero() {
        return next;
    }
    let missed = (now - next).as_nanos() / period.as_nanos() + 1;
    next + period.mul_f64(missed as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_started_apart_tick_in_shared_instants() {
        let period = Duration::from_millis(100);
        let (t0, grid) = (Instant::now(), TickGrid::new());
        let firsts: Vec<Instant> =
            (0..200).map(|i| grid.first_tick(t0 + Duration::from_micros(997 * i), period)).collect();
        for (i, first) in firsts.iter().enumerate() {
            let started = t0 + Duration::from_micros(997 * i as u64);
            // One period on, and at most one step of the grid more.
            assert!(*first >= started + period);
            assert!(*first < started + period + period / SLOTS);
        }
        // 200 rooms started within 0.2 s: their ticks fall in at most
        // SLOTS instants of a period.
        assert_at_most_slots(&firsts, period);
    }

    #[test]
    fn a_first_tick_on_the_grid_stays_put() {
        let period = Duration::from_millis(100);
        let grid = TickGrid::new();
        let on_grid = grid.first_tick(Instant::now() + Duration::from_micros(1234), period);
        assert_eq!(grid.first_tick(on_grid - period, period), on_grid);
        // Before the grid's origin too.
        let before = grid.first_tick(Instant::now() - Duration::from_millis(333), period);
        assert_eq!(grid.first_tick(before - period, period), before);
    }

    /// At 30 ticks/s a period is no whole number of nanoseconds times 16:
    /// rooms started hours apart still share the same 16 instants.
    #[test]
    fn rooms_started_hours_apart_share_the_grid() {
        let period = Duration::from_nanos(33_333_333);
        let grid = TickGrid::new();
        let t0 = Instant::now();
        let firsts: Vec<Instant> = (0..48u64)
            .map(|h| {
                let started = t0 + Duration::from_secs(3600 * h) + Duration::from_nanos(h * 7_777_777);
                let first = grid.first_tick(started, period);
                assert!(
                    first >= started + period && first < started + period + period / SLOTS + Duration::from_nanos(1)
                );
                first
            })
            .collect();
        assert_at_most_slots(&firsts, period);
    }

    /// The first ticks fall in at most [`SLOTS`] instants of a period.
    fn assert_at_most_slots(firsts: &[Instant], period: Duration) {
        let mut phases: Vec<u128> = firsts.iter().map(|f| (*f - firsts[0]).as_nanos() % period.as_nanos()).collect();
        phases.sort_unstable();
        phases.dedup();
        assert!(phases.len() <= SLOTS as usize, "{} phases", phases.len());
    }

    #[test]
    fn ticks_missed_are_skipped() {
        let (t0, period) = (Instant::now(), Duration::from_millis(100));
        assert_eq!(tick_after(t0, period, t0 + Duration::from_millis(50)), t0 + period);
        assert_eq!(tick_after(t0, period, t0 + Duration::from_millis(250)), t0 + Duration::from_millis(300));
        assert_eq!(tick_after(t0, Duration::ZERO, t0), t0);
    }
}
