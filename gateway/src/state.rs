//! What every request handler shares.

use std::sync::Arc;

use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::GatewayConfig;
use crate::drain::Clients;
use crate::fanout::Fanout;
use crate::metrics::GatewayMetrics;
use crate::store_resets::StoreResets;

#[derive(Clone)]
pub struct AppState<B> {
    pub backend: B,
    pub config: Arc<GatewayConfig>,
    pub fanout: Arc<Fanout<B>>,
    pub metrics: GatewayMetrics,
    pub registry: Registry,
    /// Cancelled as soon as the gateway is told to stop: `/readyz` then
    /// answers 503, while everything else is still served.
    pub draining: CancellationToken,
    /// Cancelled when the drain is over: new WebSockets are refused.
    /// (Connections are closed through their signals, see
    /// [`crate::drain`]; room feeds end with their last member.)
    pub shutdown: CancellationToken,
    /// Open client connections, for the paced closing of a drain.
    pub clients: Arc<Clients>,
    /// Connections and room feeds, awaited on shutdown.
    pub tracker: TaskTracker,
    /// Moves when the store lost its data: connections save their
    /// sessions again (see [`crate::store_resets`]).
    pub store_resets: Arc<StoreResets>,
    /// The id this process is present under (see [`crate::presence`]).
    pub gateway_id: Arc<str>,
}

impl<B: snakepit_bus::Backend> AppState<B> {
    pub fn new(backend: B, config: GatewayConfig, registry: Registry) -> Result<Self, prometheus::Error> {
        let metrics = GatewayMetrics::register(&registry)?;
        Ok(Self::with_metrics(backend, config, registry, metrics))
    }

    /// With `metrics` already registered into `registry`.
    pub fn with_metrics(backend: B, config: GatewayConfig, registry: Registry, metrics: GatewayMetrics) -> Self {
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        Self {
            fanout: Arc::new(Fanout::new(backend.clone(), metrics.clone(), tracker.clone(), config.presence_every)),
            backend,
            config: Arc::new(config),
            metrics,
            registry,
            draining: CancellationToken::new(),
            shutdown,
            clients: Arc::default(),
            tracker,
            store_resets: Arc::default(),
            gateway_id: Arc::from(crate::presence::gateway_id()),
        }
    }
}
