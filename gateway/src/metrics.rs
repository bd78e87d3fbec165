//! Prometheus metrics of a gateway, named `snakepit_*`.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, exponential_buckets};

#[derive(Clone)]
pub struct GatewayMetrics {
    pub connections: IntGauge,
    pub room_feeds: IntGauge,
    pub frames_sent: IntCounter,
    pub frames_dropped: IntCounter,
    pub stale_frames: IntCounter,
    pub slow_clients: IntCounter,
    pub resyncs: IntCounter,
    /// A key press received until the next tick frame goes to that client.
    pub input_to_broadcast: Histogram,
    pub client_errors: IntCounterVec,
}

impl GatewayMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            connections: IntGauge::new("snakepit_connections", "Open WebSocket connections")?,
            room_feeds: IntGauge::new(
                "snakepit_room_feeds",
                "Rooms this gateway subscribes to (rooms with local members)",
            )?,
            frames_sent: IntCounter::new("snakepit_frames_sent_total", "Room frames queued to local members")?,
            frames_dropped: IntCounter::new(
                "snakepit_frames_dropped_total",
                "Room frames dropped because a member's queue was full",
            )?,
            stale_frames: IntCounter::new(
                "snakepit_stale_frames_total",
                "Frames ignored for an older epoch, a repeated tick or bad UTF-8",
            )?,
            slow_clients: IntCounter::new(
                "snakepit_slow_clients_total",
                "Connections closed because they read too slowly",
            )?,
            resyncs: IntCounter::new(
                "snakepit_resyncs_total",
                "Members sent a fresh world after a gap or a change of room owner",
            )?,
            input_to_broadcast: Histogram::with_opts(
                HistogramOpts::new(
                    "snakepit_input_to_broadcast_seconds",
                    "From a key press reaching the gateway to the next tick frame written to that client",
                )
                .buckets(exponential_buckets(5e-4, 2.0, 12)?),
            )?,
            client_errors: IntCounterVec::new(
                Opts::new("snakepit_client_errors_total", "Client messages refused, by reason"),
                &["reason"],
            )?,
        };
        registry.register(Box::new(m.connections.clone()))?;
        registry.register(Box::new(m.room_feeds.clone()))?;
        registry.register(Box::new(m.frames_sent.clone()))?;
        registry.register(Box::new(m.frames_dropped.clone()))?;
        registry.register(Box::new(m.stale_frames.clone()))?;
        registry.register(Box::new(m.slow_clients.clone()))?;
        registry.register(Box::new(m.resyncs.clone()))?;
        registry.register(Box::new(m.input_to_broadcast.clone()))?;
        registry.register(Box::new(m.client_errors.clone()))?;
        Ok(m)
    }
}
