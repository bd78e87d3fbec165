//! The progress line: every few seconds, what the last few seconds looked
//! like, on stderr (stdout is kept for the report, so `--json` stays one
//! parseable object).
//!
//! Rates and percentiles are over the window since the previous line, not
//! the whole run, so a server that degrades under a growing load shows it
//! while it happens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use snakepit_loadtest::stats::{Counter, Percentiles, Stats};
use tokio::sync::watch;

/// Prints a line every `every` until the stop signal.
pub async fn run(stats: Arc<Stats>, start: Instant, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval_at((start + every).into(), every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last = (start, stats.counts());
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if *stop.borrow() {
            // The run ended at this very moment: the report follows.
            return;
        }
        let now = Instant::now();
        let counts = stats.counts();
        let window = stats.take_window();
        let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
        let delta = |c: Counter| counts.get(c).saturating_sub(last.1.get(c));
        let interval = Percentiles::ms(&window.interval);
        let echo = Percentiles::ms(&window.echo);
        eprintln!(
            "[{:6.1}s] players {} (+{} watching) | {:.0} frames/s, {:.1} kB/s | tick interval p99 {:.1} ms | echo p99 {:.1} ms | deaths {} | errors {} | failed {} | gaps {}",
            now.duration_since(start).as_secs_f64(),
            stats.players_held(),
            stats.spectators_held(),
            delta(Counter::Frames) as f64 / secs,
            delta(Counter::Bytes) as f64 / secs / 1000.0,
            interval.p99,
            echo.p99,
            delta(Counter::Deaths),
            delta(Counter::Errors),
            delta(Counter::ConnectFailed) + delta(Counter::UnexpectedCloses),
            delta(Counter::TickGaps),
        );
        last = (now, counts);
    }
}
