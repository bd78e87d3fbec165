//! The end-of-run report: one JSON object for scripts, or text for people.
//!
//! Both come from the same [`Report`] value so they cannot disagree. Field
//! names are snake_case, durations are milliseconds as floats, rates are
//! per second over the whole run (and over the part after the ramp, when
//! there was one).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::stats::{Counter, Percentiles, Spread, Stats};

/// How the run was set up.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunInfo {
    pub urls: Vec<String>,
    pub bots: usize,
    pub players: usize,
    pub spectators: usize,
    pub duration_ms: f64,
    pub ramp_ms: f64,
    pub room_size: usize,
    pub connect_rate: f64,
    pub seed: u64,
}

/// Rates over the part of the run after the ramp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Steady {
    pub window_ms: f64,
    pub frames_per_s: f64,
    pub bytes_per_s: f64,
}

/// One bot's own totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BotFigures {
    pub frames: u64,
    pub bytes: u64,
    pub deaths: u64,
    pub connects: u64,
    pub failures: u64,
    /// 1 if a fault of this bot was still open at the end (it was not back).
    pub not_back: u64,
}

/// The fault ledger over all bots: what the closes the bots did not ask for
/// cost the players.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LedgerFigures {
    /// Closes the bots did not ask for (any code, or a reset).
    pub faults: u64,
    /// Faults (first of a run of them before the bot was back) that left a
    /// snake alive.
    pub snakes_at_fault: u64,
    /// Of those, back alive with the same length and score.
    pub snakes_back: u64,
    /// Back, and the snake dead or gone (`snakes_gone`), with another
    /// length or score (`snakes_changed`), or the same length and score but
    /// its head elsewhere: it moved on while its player was away
    /// (`snakes_moved`).
    pub snakes_lost: u64,
    pub snakes_gone: u64,
    pub snakes_changed: u64,
    pub snakes_moved: u64,
    /// Of `snakes_back`, those whose head was compared and found in the
    /// same cell (the others shared their colour with another snake, so
    /// the bot could not be sure of its head).
    pub snakes_placed: u64,
    /// Bots with a fault still open at the end: never back.
    pub bots_not_back: u64,
    /// From a fault until the next connection's `world`.
    pub back_ms: Percentiles,
    /// Resyncs on a live connection (a room's new owner) that found the
    /// bot's snake alive before, and of those, the ones after which it was
    /// dead or had a lower score: the room came back from an older state.
    pub resync_snakes: u64,
    pub resync_lost: u64,
}

impl LedgerFigures {
    /// No snake lost and every bot back.
    pub fn clean(&self) -> bool {
        self.snakes_lost == 0 && self.bots_not_back == 0 && self.resync_lost == 0
    }
}

/// How the per-bot totals spread over the bots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PerBot {
    pub frames: Spread,
    pub bytes: Spread,
    pub deaths: Spread,
    pub connects: Spread,
    pub failures: Spread,
}

/// Every figure of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub run: RunInfo,
    pub elapsed_ms: f64,
    /// Connections open when the run ended (before closing them).
    pub connections_held: i64,
    pub players_held: i64,
    pub spectators_held: i64,
    pub connections_held_max: i64,
    pub connect_attempts: u64,
    pub connected: u64,
    /// Connection attempts that failed plus connections that the server
    /// closed or that broke.
    pub failed: u64,
    pub connect_failed: u64,
    pub unexpected_closes: u64,
    /// Close codes of unexpected closes (1006: no close frame).
    pub close_codes: BTreeMap<String, u64>,
    pub connect_errors: BTreeMap<String, u64>,
    pub spectator_fallbacks: u64,
    pub frames_received: u64,
    pub frames_per_s: f64,
    pub bytes_received: u64,
    pub bytes_per_s: f64,
    pub steady: Option<Steady>,
    pub tick_frames: u64,
    pub tick_interval_ms: Percentiles,
    pub tick_gaps: u64,
    pub ticks_missed: u64,
    pub tick_regressions: u64,
    pub resyncs: u64,
    pub keys_sent: u64,
    pub echo_latency_ms: Percentiles,
    pub echo_discarded: u64,
    pub echo_lost: u64,
    pub connect_ms: Percentiles,
    pub connect_to_world_ms: Percentiles,
    pub joins: u64,
    pub join_retries: u64,
    /// Times a bot lost track of its own snake (it had followed another of
    /// its colour, or a resync hid it).
    pub snake_lost: u64,
    pub deaths: u64,
    pub life_ticks: Percentiles,
    pub errors_total: u64,
    pub errors: BTreeMap<String, u64>,
    pub scan_errors: u64,
    pub ledger: LedgerFigures,
    pub per_bot: PerBot,
}

/// Where the run ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct End {
    pub elapsed_secs: f64,
    pub players_held: i64,
    pub spectators_held: i64,
}

fn per_second(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

impl Report {
    pub fn new(run: RunInfo, stats: &Stats, end: End, steady: Option<Steady>, bots: &[BotFigures]) -> Report {
        let c = stats.counts();
        let h = stats.totals();
        let spread = |f: fn(&BotFigures) -> u64| Spread::of(bots.iter().map(f).collect());
        Report {
            run,
            elapsed_ms: end.elapsed_secs * 1000.0,
            connections_held: end.players_held + end.spectators_held,
            players_held: end.players_held,
            spectators_held: end.spectators_held,
            connections_held_max: stats.held_max(),
            connect_attempts: c.get(Counter::ConnectAttempts),
            connected: c.get(Counter::Connected),
            failed: c.get(Counter::ConnectFailed) + c.get(Counter::UnexpectedCloses),
            connect_failed: c.get(Counter::ConnectFailed),
            unexpected_closes: c.get(Counter::UnexpectedCloses),
            close_codes: stats.close_codes().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            connect_errors: stats.connect_errors(),
            spectator_fallbacks: c.get(Counter::SpectatorFallbacks),
            frames_received: c.get(Counter::Frames),
            frames_per_s: per_second(c.get(Counter::Frames), end.elapsed_secs),
            bytes_received: c.get(Counter::Bytes),
            bytes_per_s: per_second(c.get(Counter::Bytes), end.elapsed_secs),
            steady,
            tick_frames: c.get(Counter::TickFrames),
            tick_interval_ms: Percentiles::ms(&h.interval),
            tick_gaps: c.get(Counter::TickGaps),
            ticks_missed: c.get(Counter::TicksMissed),
            tick_regressions: c.get(Counter::TickRegressions),
            resyncs: c.get(Counter::Resyncs),
            keys_sent: c.get(Counter::Keys),
            echo_latency_ms: Percentiles::ms(&h.echo),
            echo_discarded: c.get(Counter::EchoDiscarded),
            echo_lost: c.get(Counter::EchoLost),
            connect_ms: Percentiles::ms(&h.connect),
            connect_to_world_ms: Percentiles::ms(&h.first_world),
            joins: c.get(Counter::Joins),
            join_retries: c.get(Counter::JoinRetries),
            snake_lost: c.get(Counter::SnakeLost),
            deaths: c.get(Counter::Deaths),
            life_ticks: Percentiles::of(&h.life, 1.0),
            errors_total: c.get(Counter::Errors),
            errors: stats.errors(),
            scan_errors: c.get(Counter::ScanErrors),
            ledger: LedgerFigures {
                faults: c.get(Counter::Faults),
                snakes_at_fault: c.get(Counter::FaultSnakes),
                snakes_back: c.get(Counter::SnakesBack),
                snakes_lost: c.get(Counter::SnakesGone) + c.get(Counter::SnakesChanged) + c.get(Counter::SnakesMoved),
                snakes_gone: c.get(Counter::SnakesGone),
                snakes_changed: c.get(Counter::SnakesChanged),
                snakes_moved: c.get(Counter::SnakesMoved),
                snakes_placed: c.get(Counter::SnakesPlaced),
                bots_not_back: bots.iter().map(|b| b.not_back).sum(),
                back_ms: Percentiles::ms(&h.back),
                resync_snakes: c.get(Counter::ResyncSnakes),
                resync_lost: c.get(Counter::ResyncLost),
            },
            per_bot: PerBot {
                frames: spread(|b| b.frames),
                bytes: spread(|b| b.bytes),
                deaths: spread(|b| b.deaths),
                connects: spread(|b| b.connects),
                failures: spread(|b| b.failures),
            },
        }
    }

    /// One JSON object on one line.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let r = &self.run;
        let p =
            |x: &Percentiles| format!("p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n={})", x.p50, x.p99, x.max, x.count);
        let map = |m: &BTreeMap<String, u64>| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter().map(|(k, v)| format!("{k:?}: {v}")).collect::<Vec<_>>().join(", ")
            }
        };
        let _ = writeln!(
            out,
            "swarm: {} bots ({} players, {} spectators) on {} for {:.1} s (ramp {:.1} s, room size {}, seed {})",
            r.bots,
            r.players,
            r.spectators,
            r.urls.join(", "),
            self.elapsed_ms / 1000.0,
            r.ramp_ms / 1000.0,
            r.room_size,
            r.seed
        );
        let _ = writeln!(
            out,
            "connections   held {} at the end ({} playing, {} watching), max {}; {} attempts, {} opened",
            self.connections_held,
            self.players_held,
            self.spectators_held,
            self.connections_held_max,
            self.connect_attempts,
            self.connected
        );
        let _ = writeln!(
            out,
            "failed        {} ({} connect errors: {}; {} unexpected closes, close codes: {}); {} spectators played instead",
            self.failed,
            self.connect_failed,
            map(&self.connect_errors),
            self.unexpected_closes,
            map(&self.close_codes),
            self.spectator_fallbacks
        );
        let steady = self.steady.map_or(String::new(), |s| {
            format!("; after the ramp {:.0} frames/s, {:.1} kB/s", s.frames_per_s, s.bytes_per_s / 1000.0)
        });
        let _ = writeln!(
            out,
            "received      {} frames ({:.0}/s), {:.1} MB ({:.1} kB/s){steady}",
            self.frames_received,
            self.frames_per_s,
            self.bytes_received as f64 / 1e6,
            self.bytes_per_s / 1000.0
        );
        let _ = writeln!(
            out,
            "tick interval {}; {} tick frames, {} gaps ({} ticks missed), {} regressions, {} resyncs",
            p(&self.tick_interval_ms),
            self.tick_frames,
            self.tick_gaps,
            self.ticks_missed,
            self.tick_regressions,
            self.resyncs
        );
        let _ = writeln!(
            out,
            "echo latency  {}; {} keys sent, {} discarded (died first), {} lost",
            p(&self.echo_latency_ms),
            self.keys_sent,
            self.echo_discarded,
            self.echo_lost
        );
        let _ = writeln!(out, "connect       {}", p(&self.connect_ms));
        let _ = writeln!(out, "first world   {}", p(&self.connect_to_world_ms));
        let l = &self.life_ticks;
        let _ = writeln!(
            out,
            "snakes        {} joins ({} retried), {} deaths; life p50 {:.0}, p99 {:.0}, max {:.0} ticks (n={}); own snake lost {} times",
            self.joins, self.join_retries, self.deaths, l.p50, l.p99, l.max, l.count, self.snake_lost
        );
        let _ = writeln!(
            out,
            "errors        {} ({}); {} frames not understood",
            self.errors_total,
            map(&self.errors),
            self.scan_errors
        );
        let g = &self.ledger;
        let _ = writeln!(
            out,
            "ledger        {} faults, {} with a snake alive: {} back the same ({} in the very cell), {} lost ({} gone, {} changed, {} moved); {} bots not back; back in {}; resyncs with a snake: {}, {} rolled back",
            g.faults,
            g.snakes_at_fault,
            g.snakes_back,
            g.snakes_placed,
            g.snakes_lost,
            g.snakes_gone,
            g.snakes_changed,
            g.snakes_moved,
            g.bots_not_back,
            p(&g.back_ms),
            g.resync_snakes,
            g.resync_lost
        );
        let s = |x: &Spread| format!("{}/{}/{}", x.min, x.p50, x.max);
        let b = &self.per_bot;
        let _ = writeln!(
            out,
            "per bot       min/p50/max: frames {}, kB {:.0}/{:.0}/{:.0}, deaths {}, connects {}, failures {}",
            s(&b.frames),
            b.bytes.min as f64 / 1000.0,
            b.bytes.p50 as f64 / 1000.0,
            b.bytes.max as f64 / 1000.0,
            s(&b.deaths),
            s(&b.connects),
            s(&b.failures)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Metric, Tally};
    use std::time::{Duration, Instant};

    #[test]
    fn json_holds_every_figure_in_snake_case_and_ms() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut t = Tally::new(t0);
        t.add(Counter::Frames, 100);
        t.add(Counter::Bytes, 5000);
        t.add(Counter::Deaths, 2);
        t.sample_duration(Metric::Interval, Duration::from_micros(100_500));
        t.sample(Metric::Life, 42);
        stats.flush(&mut t, t0);
        stats.close_code(4008);
        stats.error_text("Too many messages".into());
        let mut t = Tally::new(t0);
        t.add(Counter::Faults, 3);
        t.add(Counter::FaultSnakes, 3);
        t.add(Counter::SnakesBack, 1);
        t.add(Counter::SnakesChanged, 1);
        t.add(Counter::SnakesMoved, 1);
        t.sample_duration(Metric::Back, Duration::from_millis(800));
        stats.flush(&mut t, t0);
        let end = End { elapsed_secs: 10.0, players_held: 3, spectators_held: 1 };
        let bots = [
            BotFigures { frames: 60, ..BotFigures::default() },
            BotFigures { frames: 40, not_back: 1, ..BotFigures::default() },
        ];
        let r = Report::new(RunInfo { bots: 2, ..RunInfo::default() }, &stats, end, None, &bots);
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["frames_received"], 100);
        assert_eq!(v["frames_per_s"], 10.0);
        assert_eq!(v["bytes_per_s"], 500.0);
        assert_eq!(v["connections_held"], 4);
        assert_eq!(v["deaths"], 2);
        assert_eq!(v["close_codes"]["4008"], 1);
        assert_eq!(v["errors"]["Too many messages"], 1);
        assert!((v["tick_interval_ms"]["p50"].as_f64().unwrap() - 100.5).abs() < 0.1);
        assert_eq!(v["life_ticks"]["max"], 42.0);
        assert_eq!(v["per_bot"]["frames"]["max"], 60);
        assert_eq!(v["elapsed_ms"], 10000.0);
        assert_eq!(v["ledger"]["faults"], 3);
        assert_eq!(v["ledger"]["snakes_at_fault"], 3);
        assert_eq!(v["ledger"]["snakes_lost"], 2);
        assert_eq!(v["ledger"]["snakes_changed"], 1);
        assert_eq!(v["ledger"]["snakes_moved"], 1);
        assert_eq!(v["ledger"]["bots_not_back"], 1);
        assert!((v["ledger"]["back_ms"]["max"].as_f64().unwrap() - 800.0).abs() < 1.0);
        assert!(!r.ledger.clean());
        for key in v.as_object().unwrap().keys() {
            assert!(key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{key}");
        }
        let text = r.text();
        assert!(text.contains("100 frames (10/s)"), "{text}");
        assert!(text.contains("\"Too many messages\": 1"), "{text}");
        assert!(
            text.contains(
                "3 faults, 3 with a snake alive: 1 back the same (0 in the very cell), 2 lost (0 gone, 1 changed, 1 moved); 1 bots not back"
            ),
            "{text}"
        );
    }
}
