//! Measurements: per-bot batches, shared counters and latency histograms.
//!
//! The swarm must not become the bottleneck it measures, so a bot never
//! touches shared state per frame. It counts into its own [`Tally`] and
//! hands the batch over ([`Stats::flush`]) about once a second or every
//! [`BATCH`] samples: the counters are atomics added once per batch, the
//! samples go into HDR histograms under one short lock. Histograms fill a
//! *window* that the progress line reads and then folds into the totals, so
//! the progress shows recent figures and the report the whole run. Rare
//! events with a text (error commands, close codes, connect errors) are
//! counted straight into small maps.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Samples a bot collects before it hands them over.
pub const BATCH: usize = 64;
/// Longest a bot keeps samples or counts before it hands them over.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Largest value a histogram keeps (one hour in µs); larger ones are clamped.
pub const HIST_MAX: u64 = 3_600_000_000;

/// Counted events. Each is one slot in a bot's tally and one shared atomic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    ConnectAttempts,
    Connected,
    ConnectFailed,
    UnexpectedCloses,
    Frames,
    Bytes,
    TickFrames,
    TickGaps,
    TicksMissed,
    TickRegressions,
    Deaths,
    Joins,
    JoinRetries,
    Keys,
    EchoSamples,
    EchoDiscarded,
    EchoLost,
    ScanErrors,
    Errors,
    SpectatorFallbacks,
    Resyncs,
    SnakeLost,
    /// Closes the bot did not ask for (the ledger's faults).
    Faults,
    /// Faults that left a snake alive (a ledger entry to check).
    FaultSnakes,
    /// Snakes back alive with the same length and score.
    SnakesBack,
    /// Snakes alive at a fault and not alive when the bot was back.
    SnakesGone,
    /// Snakes back alive but with another length or score.
    SnakesChanged,
    /// Snakes back alive, the same length and score, the head elsewhere.
    SnakesMoved,
    /// Of the snakes back the same, those whose head was compared (their
    /// colour their own both times): back in the very same cell.
    SnakesPlaced,
    /// Resyncs (a `world` on a connection that had one) with the bot's
    /// snake alive before.
    ResyncSnakes,
    /// Of those, the snake dead after, or its score lower: the room came
    /// back from an older state (or the snake died while frames were lost).
    ResyncLost,
}

impl Counter {
    pub const COUNT: usize = Counter::ResyncLost as usize + 1;
}

/// Measured values: durations in µs, `Life` in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Between two tick frames with consecutive tick numbers.
    Interval,
    /// From sending a turn until the head is seen moving that way.
    Echo,
    /// From starting to connect until the first `world`.
    FirstWorld,
    /// From starting to connect until the WebSocket is open.
    Connect,
    /// Ticks from a snake's birth to its death.
    Life,
    /// From a fault until the bot is back (the next connection's `world`).
    Back,
}

/// One histogram per metric.
#[derive(Debug, Clone)]
pub struct Hists {
    pub interval: Histogram<u64>,
    pub echo: Histogram<u64>,
    pub first_world: Histogram<u64>,
    pub connect: Histogram<u64>,
    pub life: Histogram<u64>,
    pub back: Histogram<u64>,
}

// 1..HIST_MAX at 3 significant figures are constant bounds hdrhistogram
// always accepts (every test builds one).
#[allow(clippy::expect_used)]
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX, 3).expect("constant histogram bounds are valid")
}

impl Default for Hists {
    fn default() -> Self {
        Hists {
            interval: histogram(),
            echo: histogram(),
            first_world: histogram(),
            connect: histogram(),
            life: histogram(),
            back: histogram(),
        }
    }
}

impl Hists {
    pub fn get(&self, m: Metric) -> &Histogram<u64> {
        match m {
            Metric::Interval => &self.interval,
            Metric::Echo => &self.echo,
            Metric::FirstWorld => &self.first_world,
            Metric::Connect => &self.connect,
            Metric::Life => &self.life,
            Metric::Back => &self.back,
        }
    }

    fn get_mut(&mut self, m: Metric) -> &mut Histogram<u64> {
        match m {
            Metric::Interval => &mut self.interval,
            Metric::Echo => &mut self.echo,
            Metric::FirstWorld => &mut self.first_world,
            Metric::Connect => &mut self.connect,
            Metric::Life => &mut self.life,
            Metric::Back => &mut self.back,
        }
    }

    pub fn record(&mut self, m: Metric, value: u64) {
        self.get_mut(m).saturating_record(value.min(HIST_MAX));
    }

    /// Adds every histogram of `other` into this one.
    pub fn add(&mut self, other: &Hists) {
        for m in [Metric::Interval, Metric::Echo, Metric::FirstWorld, Metric::Connect, Metric::Life, Metric::Back] {
            // Same bounds on both sides, so adding cannot fail.
            let _ = self.get_mut(m).add(other.get(m));
        }
    }
}

/// Percentiles of one histogram, scaled (µs to ms: 0.001; ticks: 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>, scale: f64) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.5) as f64 * scale,
            p99: h.value_at_quantile(0.99) as f64 * scale,
            max: h.max() as f64 * scale,
            mean: h.mean() * scale,
        }
    }

    /// A µs histogram in ms.
    pub fn ms(h: &Histogram<u64>) -> Percentiles {
        Percentiles::of(h, 0.001)
    }
}

/// A bot's own counts and samples, handed over in batches.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Not yet handed over.
    counts: [u64; Counter::COUNT],
    /// Everything this bot counted (for the per-bot figures).
    lifetime: [u64; Counter::COUNT],
    samples: Vec<(Metric, u64)>,
    last_flush: Instant,
}

impl Tally {
    pub fn new(now: Instant) -> Tally {
        Tally {
            counts: [0; Counter::COUNT],
            lifetime: [0; Counter::COUNT],
            samples: Vec::with_capacity(BATCH),
            last_flush: now,
        }
    }

    pub fn add(&mut self, c: Counter, n: u64) {
        self.counts[c as usize] += n;
        self.lifetime[c as usize] += n;
    }

    pub fn sample(&mut self, m: Metric, value: u64) {
        self.samples.push((m, value));
    }

    /// A duration sample in µs.
    pub fn sample_duration(&mut self, m: Metric, d: Duration) {
        self.sample(m, u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Everything this bot counted so far.
    pub fn lifetime(&self, c: Counter) -> u64 {
        self.lifetime[c as usize]
    }

    /// Samples not yet handed over (tests).
    pub fn pending_samples(&self) -> &[(Metric, u64)] {
        &self.samples
    }

    /// Whether the batch should be handed over now.
    pub fn due(&self, now: Instant) -> bool {
        self.samples.len() >= BATCH || now.saturating_duration_since(self.last_flush) >= FLUSH_EVERY
    }
}

/// A point-in-time copy of the shared counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts(pub [u64; Counter::COUNT]);

impl Counts {
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c as usize]
    }
}

/// Everything the swarm measured, shared by all bots.
#[derive(Debug)]
pub struct Stats {
    counters: [AtomicU64; Counter::COUNT],
    players_held: AtomicI64,
    spectators_held: AtomicI64,
    held_max: AtomicI64,
    window: Mutex<Hists>,
    total: Mutex<Hists>,
    close_codes: Mutex<BTreeMap<u16, u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    connect_errors: Mutex<BTreeMap<String, u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    *map.entry(key).or_default() += 1;
}

fn copy<K: Ord + Clone>(map: &Mutex<BTreeMap<K, u64>>) -> BTreeMap<K, u64> {
    map.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            players_held: AtomicI64::new(0),
            spectators_held: AtomicI64::new(0),
            held_max: AtomicI64::new(0),
            window: Mutex::default(),
            total: Mutex::default(),
            close_codes: Mutex::default(),
            errors: Mutex::default(),
            connect_errors: Mutex::default(),
        }
    }

    /// Hands a bot's batch over: counters added, samples recorded.
    pub fn flush(&self, tally: &mut Tally, now: Instant) {
        tally.last_flush = now;
        for (slot, n) in self.counters.iter().zip(tally.counts.iter_mut()) {
            if *n != 0 {
                slot.fetch_add(*n, Ordering::Relaxed);
                *n = 0;
            }
        }
        if !tally.samples.is_empty() {
            let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
            for &(m, v) in &tally.samples {
                window.record(m, v);
            }
            drop(window);
            tally.samples.clear();
        }
    }

    /// Adds to a counter directly (for the few events outside a bot).
    pub fn add(&self, c: Counter, n: u64) {
        self.counters[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn counts(&self) -> Counts {
        Counts(std::array::from_fn(|i| self.counters[i].load(Ordering::Relaxed)))
    }

    /// A connection opened (`player`: it plays, else it watches).
    pub fn opened(&self, player: bool) {
        let gauge = if player { &self.players_held } else { &self.spectators_held };
        gauge.fetch_add(1, Ordering::Relaxed);
        let held = self.held();
        self.held_max.fetch_max(held, Ordering::Relaxed);
    }

    /// A connection closed, for whatever reason.
    pub fn closed(&self, player: bool) {
        let gauge = if player { &self.players_held } else { &self.spectators_held };
        gauge.fetch_sub(1, Ordering::Relaxed);
    }

    /// An open connection stopped watching and plays.
    pub fn spectator_became_player(&self) {
        self.spectators_held.fetch_sub(1, Ordering::Relaxed);
        self.players_held.fetch_add(1, Ordering::Relaxed);
    }

    pub fn players_held(&self) -> i64 {
        self.players_held.load(Ordering::Relaxed)
    }

    pub fn spectators_held(&self) -> i64 {
        self.spectators_held.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn held(&self) -> i64 {
        self.players_held() + self.spectators_held()
    }

    /// Most connections open at once.
    pub fn held_max(&self) -> i64 {
        self.held_max.load(Ordering::Relaxed)
    }

    /// A close code the server sent (1006: closed without a close frame).
    pub fn close_code(&self, code: u16) {
        bump(&self.close_codes, code);
    }

    /// An `error` command, by its text.
    pub fn error_text(&self, text: String) {
        bump(&self.errors, text);
    }

    /// A failed connection attempt, by the kind of failure.
    pub fn connect_error(&self, kind: String) {
        bump(&self.connect_errors, kind);
    }

    pub fn close_codes(&self) -> BTreeMap<u16, u64> {
        copy(&self.close_codes)
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        copy(&self.errors)
    }

    pub fn connect_errors(&self) -> BTreeMap<String, u64> {
        copy(&self.connect_errors)
    }

    /// Takes the samples handed over since the last call (for the progress
    /// line) and adds them to the totals.
    pub fn take_window(&self) -> Hists {
        let window = std::mem::take(&mut *self.window.lock().unwrap_or_else(|e| e.into_inner()));
        self.total.lock().unwrap_or_else(|e| e.into_inner()).add(&window);
        window
    }

    /// All samples handed over so far.
    pub fn totals(&self) -> Hists {
        self.take_window();
        self.total.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Smallest, median, largest and mean of per-bot figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    pub min: u64,
    pub p50: u64,
    pub max: u64,
    pub mean: f64,
}

impl Spread {
    pub fn of(mut values: Vec<u64>) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        values.sort_unstable();
        let sum: u64 = values.iter().sum();
        Spread {
            min: values[0],
            p50: values[(values.len() - 1) / 2],
            max: values[values.len() - 1],
            mean: sum as f64 / values.len() as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * 0.002 + 1e-9
    }

    /// 1..=1000 ms spread over many bots' batches, flushed at different
    /// times and partly after a progress window: the merged percentiles are
    /// those of the whole set.
    #[test]
    fn percentiles_of_batches_merged_from_many_bots() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut bots: Vec<Tally> = (0..7).map(|_| Tally::new(t0)).collect();
        for ms in 1..=1000u64 {
            let bot = &mut bots[(ms * 31 % 7) as usize];
            bot.sample_duration(Metric::Echo, Duration::from_millis(ms));
            if bot.due(t0) {
                stats.flush(bot, t0);
            }
            if ms == 500 {
                let window = stats.take_window();
                assert!(!window.echo.is_empty() && window.echo.len() < 500);
            }
        }
        for bot in &mut bots {
            stats.flush(bot, t0);
        }
        let p = Percentiles::ms(&stats.totals().echo);
        assert_eq!(p.count, 1000);
        assert!(close(p.p50, 500.0), "{p:?}");
        assert!(close(p.p99, 990.0), "{p:?}");
        assert!(close(p.max, 1000.0), "{p:?}");
        assert!(close(p.mean, 500.5), "{p:?}");
        // totals are kept: asking again gives the same
        assert_eq!(Percentiles::ms(&stats.totals().echo), p);
    }

    #[test]
    fn tallies_hand_over_counts_once() {
        let stats = Stats::new();
        let t0 = Instant::now();
        let mut t = Tally::new(t0);
        t.add(Counter::Frames, 3);
        t.add(Counter::Bytes, 300);
        assert!(!t.due(t0));
        assert!(t.due(t0 + FLUSH_EVERY));
        stats.flush(&mut t, t0);
        stats.flush(&mut t, t0);
        t.add(Counter::Frames, 1);
        stats.flush(&mut t, t0);
        let c = stats.counts();
        assert_eq!((c.get(Counter::Frames), c.get(Counter::Bytes)), (4, 300));
        assert_eq!(t.lifetime(Counter::Frames), 4);
        for _ in 0..BATCH {
            t.sample(Metric::Life, 5);
        }
        assert!(t.due(t0));
    }

    #[test]
    fn clamps_huge_values_and_handles_empty() {
        let mut h = Hists::default();
        h.record(Metric::Interval, u64::MAX);
        assert_eq!(h.interval.len(), 1);
        assert!(h.interval.max() >= HIST_MAX);
        assert_eq!(Percentiles::ms(&Hists::default().interval), Percentiles::default());
    }

    #[test]
    fn gauges_and_text_counts() {
        let s = Stats::new();
        s.opened(true);
        s.opened(false);
        s.spectator_became_player();
        assert_eq!((s.players_held(), s.spectators_held(), s.held_max()), (2, 0, 2));
        s.closed(true);
        assert_eq!(s.held(), 1);
        s.close_code(4008);
        s.close_code(4008);
        s.error_text("Too many messages".into());
        assert_eq!(s.close_codes().get(&4008), Some(&2));
        assert_eq!(s.errors().get("Too many messages"), Some(&1));
    }

    #[test]
    fn spread_of_per_bot_values() {
        assert_eq!(Spread::of(vec![5, 1, 9, 3]), Spread { min: 1, p50: 3, max: 9, mean: 4.5 });
        assert_eq!(Spread::of(Vec::new()), Spread::default());
    }
}
