//! Prometheus metrics of the rooms a worker runs, named `snakepit_*`.
//!
//! Tick duration and lag share one bucket list, 1-2.5-5 steps from 1 µs to
//! 250 ms: fine enough to see a microsecond tick grow, wide enough to see a
//! stall. The tick budget ([`TICK_BUDGET_SECS`], 5 ms) and the lag's "late"
//! threshold ([`TICK_LATE_SECS`], 25 ms) are exact buckets, so the share of
//! good ticks is a ratio of two counters (`le="0.005"` over `+Inf`) and needs
//! no quantile estimate.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry, exponential_buckets};

/// A tick within this is good; the tick-latency SLO is 99.9 % good ticks.
pub const TICK_BUDGET_SECS: f64 = 0.005;
/// A tick that started this much behind its schedule is late.
pub const TICK_LATE_SECS: f64 = 0.025;

/// Buckets of tick duration and lag: 1, 2.5, 5 per decade, 1 µs to 250 ms
/// (then `+Inf`). Written out rather than computed: the boundaries must be
/// the exact decimals an `le` label is matched against.
pub const TICK_BUCKETS: [f64; 17] =
    [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25];

#[derive(Clone)]
pub struct WorkerMetrics {
    /// Time to apply inputs, step the world and encode the frame.
    pub tick_duration: Histogram,
    /// How late a tick started against its schedule.
    pub tick_lag: Histogram,
    pub rooms: IntGauge,
    /// Players (not spectators) in the rooms.
    pub players: IntGauge,
    /// Snakes alive, robot snakes included.
    pub snakes_alive: IntGauge,
    pub frames_published: IntCounter,
    pub publish_errors: IntCounter,
    /// One batch of frames onto the bus.
    pub publish_latency: Histogram,
    /// Rooms this worker took over from a snapshot of another owner.
    pub failovers: IntCounter,
    /// Workers this one found gone (their connections closed) and took
    /// rooms over from without waiting out their leases.
    pub workers_gone: IntCounter,
    /// Gateways this worker found gone (their connections closed), whose
    /// members' snakes its rooms parked at once.
    pub gateways_gone: IntCounter,
    /// Rooms stopped because their lease went to another worker.
    pub leases_lost: IntCounter,
    /// Rooms whose task panicked: their lease was released for a takeover
    /// from the last good snapshot.
    pub room_panics: IntCounter,
}

impl WorkerMetrics {
    pub fn register(registry: &Registry, worker: &str) -> Result<Self, prometheus::Error> {
        let opts = |name: &str, help: &str| Opts::new(name, help).const_label("worker", worker);
        let hist = |name: &str, help: &str, buckets: Vec<f64>| {
            HistogramOpts::new(name, help).const_label("worker", worker).buckets(buckets)
        };
        let m = Self {
            tick_duration: Histogram::with_opts(hist(
                "snakepit_room_tick_duration_seconds",
                "Time to apply a room's inputs, step its world and encode its frame",
                TICK_BUCKETS.to_vec(),
            ))?,
            tick_lag: Histogram::with_opts(hist(
                "snakepit_room_tick_lag_seconds",
                "How late a room tick started against its schedule",
                TICK_BUCKETS.to_vec(),
            ))?,
            rooms: IntGauge::with_opts(opts("snakepit_rooms", "Rooms running on this worker"))?,
            players: IntGauge::with_opts(opts(
                "snakepit_room_players",
                "Players (not spectators) in this worker's rooms",
            ))?,
            snakes_alive: IntGauge::with_opts(opts(
                "snakepit_snakes_alive",
                "Snakes alive in this worker's rooms, robots included",
            ))?,
            frames_published: IntCounter::with_opts(opts(
                "snakepit_frames_published_total",
                "Frames published by rooms",
            ))?,
            publish_errors: IntCounter::with_opts(opts(
                "snakepit_publish_errors_total",
                "Frames a room failed to publish (standalone: also the gateway's inputs and notices)",
            ))?,
            publish_latency: Histogram::with_opts(hist(
                "snakepit_bus_publish_seconds",
                "Time to publish one batch of frames on the bus",
                exponential_buckets(1e-5, 2.5, 12)?,
            ))?,
            failovers: IntCounter::with_opts(opts("snakepit_failovers_total", "Rooms taken over from a snapshot"))?,
            workers_gone: IntCounter::with_opts(opts(
                "snakepit_workers_gone_total",
                "Workers found gone by their closed connections, whose rooms were taken over before their leases ran out",
            ))?,
            gateways_gone: IntCounter::with_opts(opts(
                "snakepit_gateways_gone_total",
                "Gateways found gone by their closed connections, whose players' snakes were parked at once",
            ))?,
            leases_lost: IntCounter::with_opts(opts(
                "snakepit_leases_lost_total",
                "Rooms stopped because their lease was lost",
            ))?,
            room_panics: IntCounter::with_opts(opts(
                "snakepit_room_panics_total",
                "Room tasks that panicked; their rooms were released for a takeover",
            ))?,
        };
        registry.register(Box::new(m.tick_duration.clone()))?;
        registry.register(Box::new(m.tick_lag.clone()))?;
        registry.register(Box::new(m.rooms.clone()))?;
        registry.register(Box::new(m.players.clone()))?;
        registry.register(Box::new(m.snakes_alive.clone()))?;
        registry.register(Box::new(m.frames_published.clone()))?;
        registry.register(Box::new(m.publish_errors.clone()))?;
        registry.register(Box::new(m.publish_latency.clone()))?;
        registry.register(Box::new(m.failovers.clone()))?;
        registry.register(Box::new(m.workers_gone.clone()))?;
        registry.register(Box::new(m.gateways_gone.clone()))?;
        registry.register(Box::new(m.leases_lost.clone()))?;
        registry.register(Box::new(m.room_panics.clone()))?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget and the late threshold are buckets, and the list is the
    /// one dashboards and alerts are written against, as scraped.
    #[test]
    fn tick_buckets_hold_the_thresholds_exactly() {
        assert!(TICK_BUCKETS.contains(&TICK_BUDGET_SECS));
        assert!(TICK_BUCKETS.contains(&TICK_LATE_SECS));
        assert!(TICK_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        let r = Registry::new();
        let m = WorkerMetrics::register(&r, "w1").unwrap();
        m.tick_duration.observe(0.004);
        m.tick_duration.observe(0.006);
        let families = r.gather();
        let want = [
            "0.000001",
            "0.0000025",
            "0.000005",
            "0.00001",
            "0.000025",
            "0.00005",
            "0.0001",
            "0.00025",
            "0.0005",
            "0.001",
            "0.0025",
            "0.005",
            "0.01",
            "0.025",
            "0.05",
            "0.1",
            "0.25",
        ];
        for name in ["snakepit_room_tick_duration_seconds", "snakepit_room_tick_lag_seconds"] {
            let f = families.iter().find(|f| f.name() == name).unwrap();
            let h = f.get_metric()[0].get_histogram();
            // The text encoder writes `le` as the bound's `to_string()`.
            let les: Vec<String> = h.get_bucket().iter().map(|b| b.upper_bound().to_string()).collect();
            assert_eq!(les, want, "{name}");
        }
        // 4 ms is within the budget, 6 ms is not.
        let f = families.iter().find(|f| f.name() == "snakepit_room_tick_duration_seconds").unwrap();
        let h = f.get_metric()[0].get_histogram();
        let at = |le: f64| h.get_bucket().iter().find(|b| b.upper_bound() == le).unwrap().cumulative_count();
        assert_eq!((at(0.0025), at(0.005), at(0.01), h.get_sample_count()), (0, 1, 2, 2));
    }

    #[test]
    fn registers_once_per_registry() {
        let r = Registry::new();
        WorkerMetrics::register(&r, "w1").unwrap();
        assert!(WorkerMetrics::register(&r, "w1").is_err());
        assert!(WorkerMetrics::register(&Registry::new(), "w2").is_ok());
    }
}
