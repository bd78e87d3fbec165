//! Prometheus metrics of a gateway, named `snakepit_*`.
//!
//! Labels stay bounded: a close is counted by its code only if the code is
//! one this gateway sends or a client ordinarily sends, else as `other`.

use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, exponential_buckets};
use snakepit_room_worker::WorkerMetrics;

/// Close codes counted as themselves; any other is `other`. 1000 normal,
/// 1001 going away (a closed tab), 1006 gone without a close frame, 1008 and
/// 1009 protocol, 1011 internal error, 1012 restart (the drain), 4000 idle,
/// 4008 too slow, 4009 superseded by a resume.
pub const CLOSE_CODES: [u16; 10] = [1000, 1001, 1006, 1008, 1009, 1011, 1012, 4000, 4008, 4009];

/// Buckets of a connection's life, 1 s to 6 h, roughly exponential.
const DURATION_BUCKETS: [f64; 15] =
    [1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 21600.0];

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
    /// Connections turned away before they were served, by reason
    /// (`per_ip`: over the cap of their address; `origin`: a page not
    /// allowed to open a WebSocket).
    pub refused: IntCounterVec,
    /// Inputs (enters, keys, leaves, presence notes) and notices that
    /// failed to go onto the bus.
    pub publish_errors: IntCounter,
    /// WebSocket closes by code: see [`GatewayMetrics::closed`].
    pub ws_closes: IntCounterVec,
    pub connection_duration: Histogram,
    /// Times the store was found to have lost its data (its generation
    /// changed), each answered by saving every live session again.
    pub store_resets: IntCounter,
}

impl GatewayMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let publish_errors = IntCounter::new(
            "snakepit_publish_errors_total",
            "Inputs, enters and notices this gateway failed to publish",
        )?;
        registry.register(Box::new(publish_errors.clone()))?;
        Self::register_with(registry, publish_errors)
    }

    /// For a gateway beside its rooms in one process (standalone): a
    /// registry holds one `snakepit_publish_errors_total`, so the gateway
    /// counts its failed publishes into the rooms' counter
    /// (`worker="standalone"`).
    pub fn register_beside(registry: &Registry, rooms: &WorkerMetrics) -> Result<Self, prometheus::Error> {
        Self::register_with(registry, rooms.publish_errors.clone())
    }

    fn register_with(registry: &Registry, publish_errors: IntCounter) -> Result<Self, prometheus::Error> {
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
            refused: IntCounterVec::new(
                Opts::new("snakepit_connections_refused_total", "Connections turned away unserved, by reason"),
                &["reason"],
            )?,
            publish_errors,
            ws_closes: IntCounterVec::new(
                Opts::new(
                    "snakepit_ws_closes_total",
                    "WebSocket connections closed, by close code (sent by the gateway, or by the client if it closed; 1006: no close frame)",
                ),
                &["code"],
            )?,
            connection_duration: Histogram::with_opts(
                HistogramOpts::new("snakepit_connection_duration_seconds", "How long WebSocket connections lasted")
                    .buckets(DURATION_BUCKETS.to_vec()),
            )?,
            store_resets: IntCounter::new(
                "snakepit_store_resets_total",
                "Times the store was found to have lost its data (Redis restarted empty) and the sessions were saved again",
            )?,
        };
        // Every code's series exists from the start, at 0.
        for code in CLOSE_CODES {
            m.ws_closes.with_label_values(&[close_label(code)]);
        }
        m.ws_closes.with_label_values(&["other"]);
        for reason in ["per_ip", "origin"] {
            m.refused.with_label_values(&[reason]);
        }
        registry.register(Box::new(m.connections.clone()))?;
        registry.register(Box::new(m.room_feeds.clone()))?;
        registry.register(Box::new(m.frames_sent.clone()))?;
        registry.register(Box::new(m.frames_dropped.clone()))?;
        registry.register(Box::new(m.stale_frames.clone()))?;
        registry.register(Box::new(m.slow_clients.clone()))?;
        registry.register(Box::new(m.resyncs.clone()))?;
        registry.register(Box::new(m.input_to_broadcast.clone()))?;
        registry.register(Box::new(m.client_errors.clone()))?;
        registry.register(Box::new(m.refused.clone()))?;
        registry.register(Box::new(m.ws_closes.clone()))?;
        registry.register(Box::new(m.connection_duration.clone()))?;
        registry.register(Box::new(m.store_resets.clone()))?;
        Ok(m)
    }

    /// A connection ended with close `code` after `lasted`: once per
    /// connection.
    pub fn closed(&self, code: u16, lasted: Duration) {
        self.ws_closes.with_label_values(&[close_label(code)]).inc();
        self.connection_duration.observe(lasted.as_secs_f64());
    }
}

/// The `code` label of a close code: the code itself if it is one of
/// [`CLOSE_CODES`], else `other`.
pub fn close_label(code: u16) -> &'static str {
    match code {
        1000 => "1000",
        1001 => "1001",
        1006 => "1006",
        1008 => "1008",
        1009 => "1009",
        1011 => "1011",
        1012 => "1012",
        4000 => "4000",
        4008 => "4008",
        4009 => "4009",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_counted_code_is_its_own_label_and_the_rest_are_other() {
        for code in CLOSE_CODES {
            assert_eq!(close_label(code), code.to_string());
        }
        for code in [0, 999, 1002, 1005, 1013, 3000, 4001, 4999, u16::MAX] {
            assert_eq!(close_label(code), "other", "{code}");
        }
    }

    #[test]
    fn a_close_counts_its_code_and_its_duration_once() {
        let m = GatewayMetrics::register(&Registry::new()).unwrap();
        m.closed(4008, Duration::from_secs(3));
        m.closed(1005, Duration::from_millis(10));
        assert_eq!(m.ws_closes.with_label_values(&["4008"]).get(), 1);
        assert_eq!(m.ws_closes.with_label_values(&["other"]).get(), 1);
        assert_eq!(m.ws_closes.with_label_values(&["1000"]).get(), 0);
        assert_eq!(m.connection_duration.get_sample_count(), 2);
        assert!(DURATION_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!((DURATION_BUCKETS[0], DURATION_BUCKETS[14]), (1.0, 6.0 * 3600.0));
    }
}
