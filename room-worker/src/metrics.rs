//! Prometheus metrics of the rooms a worker runs, named `snakepit_*`.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry, exponential_buckets};

#[derive(Clone)]
pub struct WorkerMetrics {
    /// Time to apply inputs, step the world and encode the frame.
    pub tick_duration: Histogram,
    /// How late a tick started against its schedule.
    pub tick_lag: Histogram,
    pub rooms: IntGauge,
    /// Players (not spectators) in the rooms.
    pub players: IntGauge,
    pub snakes_alive: IntGauge,
    pub frames_published: IntCounter,
    pub publish_errors: IntCounter,
    /// One batch of frames onto the bus.
    pub publish_latency: Histogram,
    /// Rooms this worker took over from a snapshot of another owner.
    pub failovers: IntCounter,
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
                exponential_buckets(1e-6, 2.5, 14)?,
            ))?,
            tick_lag: Histogram::with_opts(hist(
                "snakepit_room_tick_lag_seconds",
                "How late a room tick started against its schedule",
                exponential_buckets(1e-4, 2.5, 12)?,
            ))?,
            rooms: IntGauge::with_opts(opts("snakepit_rooms", "Rooms running on this worker"))?,
            players: IntGauge::with_opts(opts(
                "snakepit_room_players",
                "Players (not spectators) in this worker's rooms",
            ))?,
            snakes_alive: IntGauge::with_opts(opts("snakepit_snakes_alive", "Snakes alive in this worker's rooms"))?,
            frames_published: IntCounter::with_opts(opts(
                "snakepit_frames_published_total",
                "Frames published by rooms",
            ))?,
            publish_errors: IntCounter::with_opts(opts(
                "snakepit_publish_errors_total",
                "Frames a room failed to publish",
            ))?,
            publish_latency: Histogram::with_opts(hist(
                "snakepit_bus_publish_seconds",
                "Time to publish one batch of frames on the bus",
                exponential_buckets(1e-5, 2.5, 12)?,
            ))?,
            failovers: IntCounter::with_opts(opts("snakepit_failovers_total", "Rooms taken over from a snapshot"))?,
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
        registry.register(Box::new(m.leases_lost.clone()))?;
        registry.register(Box::new(m.room_panics.clone()))?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_once_per_registry() {
        let r = Registry::new();
        WorkerMetrics::register(&r, "w1").unwrap();
        assert!(WorkerMetrics::register(&r, "w1").is_err());
        assert!(WorkerMetrics::register(&Registry::new(), "w2").is_ok());
    }
}
