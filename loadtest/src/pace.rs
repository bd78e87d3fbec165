//! Pacing connection attempts: the ramp and the connect-rate limit.
//!
//! Thousands of bots connecting in the same millisecond would measure the
//! server's accept backlog, not the game. Each bot's first attempt waits for
//! its place in the ramp ([`ramp_offset`]), and every attempt, first or
//! reconnect, takes the next free slot of a shared [`Pacer`], so no more than
//! `--connect-rate` attempts start in any second.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When bot `index` of `bots` may first connect: spread evenly over `ramp`.
pub fn ramp_offset(index: usize, bots: usize, ramp: Duration) -> Duration {
    if bots == 0 {
        return Duration::ZERO;
    }
    let share = index as f64 / bots as f64;
    ramp.mul_f64(share.clamp(0.0, 1.0))
}

/// Hands out connection slots at most `rate` per second.
#[derive(Debug)]
pub struct Pacer {
    gap: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// `rate` attempts per second, kept within 1..=1,000,000.
    pub fn new(rate: f64) -> Pacer {
        let rate = if rate.is_finite() && rate >= 1.0 { rate.min(1e6) } else { 1.0 };
        Pacer { gap: Duration::from_secs_f64(1.0 / rate), next: Mutex::new(None) }
    }

    /// The time at which an attempt asked for at `now` may start; the slot
    /// is taken.
    pub fn slot(&self, now: Instant) -> Instant {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let at = next.map_or(now, |n| n.max(now));
        *next = Some(at + self.gap);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_spreads_bots_evenly() {
        let ramp = Duration::from_secs(10);
        assert_eq!(ramp_offset(0, 100, ramp), Duration::ZERO);
        assert_eq!(ramp_offset(50, 100, ramp), Duration::from_secs(5));
        assert!(ramp_offset(99, 100, ramp) < ramp);
        assert_eq!(ramp_offset(3, 0, ramp), Duration::ZERO);
    }

    #[test]
    fn pacer_keeps_the_rate() {
        let p = Pacer::new(500.0);
        let t0 = Instant::now();
        let slots: Vec<Instant> = (0..1000).map(|_| p.slot(t0)).collect();
        assert_eq!(slots[0], t0);
        // 1000 attempts at 500/s take two seconds
        let span = slots[999] - slots[0];
        assert!(span >= Duration::from_millis(1990) && span <= Duration::from_millis(2000), "{span:?}");
        // after a quiet spell, an attempt goes at once
        let later = t0 + Duration::from_secs(10);
        assert_eq!(p.slot(later), later);
        assert_eq!(Pacer::new(0.0).gap, Duration::from_secs(1));
    }
}
