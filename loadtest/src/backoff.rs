//! When a bot tries to connect again: full-jitter exponential backoff.
//!
//! A gateway that is rolled or dies drops hundreds of bots at once. If they
//! all came back after the same fixed delay, the next gateway would take the
//! whole crowd in one burst. With full jitter each wait is uniform in
//! `[0, min(cap, base * 2^n)]` (n: failures in a row), which spreads a crowd
//! over the whole window; a connection that lasted resets n. Two cases
//! differ:
//!
//! - a close with 1001 (going away) or 1012 (service restart) right after a
//!   connection that lasted is a planned drain, not a failure: the first
//!   wait is uniform in `[0, GOING_SPREAD]`;
//! - "connection refused" costs the server nothing: the bot tries the next
//!   URL almost at once, until every URL refused in a row, then it backs off.

use std::time::Duration;

use rand::Rng;

/// Waits of a planned drain's first reconnect spread over this window.
pub const GOING_SPREAD: Duration = Duration::from_secs(1);
/// Longest wait before trying the next URL after a refusal.
pub const REFUSED_RETRY: Duration = Duration::from_millis(50);

/// Why a bot is about to connect again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The server closed with 1001 or 1012: it is going away on purpose.
    Going,
    /// The connection was refused (nobody listens on that port).
    Refused,
    /// Any other close, reset, timeout or error.
    Failed,
}

impl Why {
    /// The reason behind a close code (1006: no close frame).
    pub fn of_close(code: u16) -> Why {
        if matches!(code, 1001 | 1012) { Why::Going } else { Why::Failed }
    }
}

/// One bot's backoff state.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    /// Failures since the last connection that lasted.
    failures: u32,
    /// Refusals in a row, and how many URLs there are to try.
    refused: usize,
    urls: usize,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration, urls: usize) -> Backoff {
        Backoff { base, cap: cap.max(base), failures: 0, refused: 0, urls: urls.max(1) }
    }

    /// A connection lasted: the next wait starts small again.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.refused = 0;
    }

    /// The largest wait after `failures` failures in a row.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.min(31));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// How long to wait before the next attempt, after `why`.
    pub fn next<R: Rng>(&mut self, why: Why, rng: &mut R) -> Duration {
        if why == Why::Refused {
            self.refused += 1;
            if self.refused < self.urls {
                return uniform(REFUSED_RETRY, rng);
            }
            // Every URL refused in a row: back off before the next round.
            self.refused = 0;
        } else {
            self.refused = 0;
        }
        let window = if why == Why::Going && self.failures == 0 { GOING_SPREAD } else { self.ceiling(self.failures) };
        self.failures = self.failures.saturating_add(1);
        uniform(window, rng)
    }
}

/// Uniform in `[0, max]`.
fn uniform<R: Rng>(max: Duration, rng: &mut R) -> Duration {
    max.mul_f64(rng.random_range(0.0..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn full_jitter_grows_to_the_cap_and_resets() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut b = Backoff::new(ms(1000), ms(10_000), 1);
        assert_eq!([0, 1, 2, 3, 4, 40].map(|n| b.ceiling(n)), [1, 2, 4, 8, 10, 10].map(|s| ms(s * 1000)));
        // many bots' n-th waits: within the window, spread over all of it
        for n in 0..6u32 {
            let waits: Vec<Duration> = (0..2000)
                .map(|_| {
                    let mut b = b.clone();
                    for _ in 0..n {
                        b.next(Why::Failed, &mut rng);
                    }
                    b.next(Why::Failed, &mut rng)
                })
                .collect();
            let ceiling = b.ceiling(n);
            assert!(waits.iter().all(|w| *w <= ceiling), "n={n}");
            let low = waits.iter().filter(|w| **w < ceiling / 4).count();
            let high = waits.iter().filter(|w| **w > ceiling * 3 / 4).count();
            // about a quarter each: not bunched at either end
            assert!((400..600).contains(&low) && (400..600).contains(&high), "n={n}: {low} low, {high} high");
        }
        for _ in 0..10 {
            b.next(Why::Failed, &mut rng);
        }
        b.reset();
        assert!(b.next(Why::Failed, &mut rng) <= ms(1000));
    }

    #[test]
    fn a_drain_spreads_the_first_reconnect_over_a_second() {
        let mut rng = SmallRng::seed_from_u64(2);
        let b = Backoff::new(ms(3000), ms(10_000), 2);
        let waits: Vec<Duration> = (0..1000).map(|_| b.clone().next(Why::Going, &mut rng)).collect();
        assert!(waits.iter().all(|w| *w <= GOING_SPREAD));
        assert!(waits.iter().any(|w| *w < ms(100)) && waits.iter().any(|w| *w > ms(900)));
        assert_eq!(Why::of_close(1012), Why::Going);
        assert_eq!(Why::of_close(1001), Why::Going);
        assert_eq!(Why::of_close(1006), Why::Failed);
        // a second drain close in a row is a failure like any other
        let mut b = b;
        b.next(Why::Going, &mut rng);
        let waits: Vec<Duration> = (0..200).map(|_| b.clone().next(Why::Going, &mut rng)).collect();
        assert!(waits.iter().any(|w| *w > GOING_SPREAD));
    }

    #[test]
    fn refusals_move_on_quickly_until_every_url_refused() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut b = Backoff::new(ms(1000), ms(10_000), 4);
        for _ in 0..3 {
            assert!(b.next(Why::Refused, &mut rng) <= REFUSED_RETRY);
        }
        // the fourth URL refused too: a real backoff, growing from there
        let mut slow = 0;
        for round in 0..50 {
            let w = b.next(Why::Refused, &mut rng);
            if round % 4 == 0 {
                slow += usize::from(w > REFUSED_RETRY);
            } else {
                assert!(w <= REFUSED_RETRY, "round {round}: {w:?}");
            }
        }
        assert!(slow >= 10, "{slow}");
    }
}
