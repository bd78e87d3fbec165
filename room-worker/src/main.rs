//! `room-worker`: runs the rooms the cluster places on it, over Redis.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use prometheus::Registry;
use snakepit_bus::redis_metrics::RedisMetrics;
use snakepit_bus::{RedisBackend, Topology};
use snakepit_cli::{GameArgs, RedisArgs, secs};
use snakepit_room_worker::http::{HttpState, app};
use snakepit_room_worker::{Host, HostConfig, WorkerMetrics};
use snakepit_service::build_info::{Binary, BuildInfo, Mode};
use snakepit_service::process_metrics;
use snakepit_service::shutdown::cancel_on_signal;
use snakepit_service::telemetry::{LogFormat, init_logging};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Snakepit room worker: claims rooms through leases in Redis, steps them at
/// a fixed tick and publishes their frames.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Redis URL, e.g. redis://127.0.0.1:6379/; with --redis-cluster, seed
    /// nodes of a Redis Cluster, comma-separated.
    #[arg(long, env = "SNAKEPIT_REDIS_URL")]
    redis_url: String,
    #[command(flatten)]
    redis: RedisArgs,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "SNAKEPIT_LISTEN", default_value = "127.0.0.1:9091")]
    listen: SocketAddr,
    /// This worker's id (default: host name, process id and a random part).
    #[arg(long, env = "SNAKEPIT_WORKER_ID")]
    worker_id: Option<String>,
    /// Seconds a lease or heartbeat lives: the rooms of a worker that stops
    /// renewing (paused, cut off) move after this. A worker whose process
    /// dies is found gone sooner, by its closed connections.
    #[arg(long, env = "SNAKEPIT_LEASE_SECS", default_value_t = 3.0)]
    lease_secs: f64,
    /// The lease in milliseconds, in place of --lease-secs.
    #[arg(long, env = "SNAKEPIT_LEASE_MS", conflicts_with = "lease_secs")]
    lease_ms: Option<u64>,
    /// Seconds the worker gets to hand its rooms over on SIGTERM.
    #[arg(long, env = "SNAKEPIT_SHUTDOWN_GRACE_SECS", default_value_t = 10.0)]
    shutdown_grace_secs: f64,
    /// Log format: text or json.
    #[arg(long, env = "SNAKEPIT_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    #[command(flatten)]
    game: GameArgs,
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let host = if host.is_empty() { "worker".to_string() } else { host };
    let n = uuid::Uuid::new_v4().as_u128() as u16;
    format!("{host}-{}-{n:04x}", std::process::id())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format, "info");
    let ca = args.redis.ca().context("cannot read --redis-ca-file")?;
    let topology = if args.redis.redis_cluster { Topology::Cluster } else { Topology::Single };
    RedisBackend::check_settings_with_prefix(&args.redis_url, topology, &args.redis.redis_prefix, ca.as_deref())
        .context("bad Redis settings")?;
    let lease_ttl = match args.lease_ms {
        Some(ms) => secs("lease", ms as f64 / 1000.0)?,
        None => secs("lease", args.lease_secs)?,
    };
    let config = HostConfig {
        worker_id: args.worker_id.clone().unwrap_or_else(default_worker_id),
        room: args.game.room_config()?,
        round_every: lease_ttl / 3,
        lease_ttl,
    };
    let grace = secs("shutdown grace", args.shutdown_grace_secs)?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    tracing::info!(%addr, worker = %config.worker_id, "room worker starting");

    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        // A second signal cuts the drain short (the library logged it).
        if let Some(sig) = cancel_on_signal(signals).await {
            std::process::exit(sig.exit_code());
        }
    });
    let registry = Registry::new();
    let build = BuildInfo {
        binary: Binary::RoomWorker,
        mode: Mode::Cluster,
        version: env!("CARGO_PKG_VERSION"),
        revision: snakepit_service::build_revision!(),
    };
    process_metrics::register(&registry, &build)?;
    let redis_metrics = RedisMetrics::register(&registry)?;
    let Some(backend) = RedisBackend::connect_retrying(
        &args.redis_url,
        topology,
        &args.redis.redis_prefix,
        ca.as_deref(),
        &redis_metrics,
        &shutdown,
    )
    .await
    else {
        return Ok(());
    };
    let metrics = WorkerMetrics::register(&registry, &config.worker_id)?;
    let host = Host::new(backend.clone(), config, metrics);
    let http = HttpState { backend, registry, announced: host.announced(), shutdown: shutdown.clone() };
    // The probes outlive the shutdown signal: /readyz says 503 at once, but
    // /healthz and /metrics answer until the rooms are handed over, so a
    // liveness probe never kills a worker mid-hand-over.
    let http_stop = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, app(http)).with_graceful_shutdown(http_stop.clone().cancelled_owned()).into_future(),
    );
    let mut host_task = tokio::spawn(host.run(shutdown.clone()));
    // The host ends by itself only when it failed (its rooms handed over):
    // the process exits with an error, to be restarted.
    let ended = tokio::select! {
        ended = &mut host_task => Some(ended),
        () = shutdown.cancelled() => tokio::time::timeout(grace, host_task).await.ok(),
    };
    http_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    match ended {
        None => {
            tracing::warn!("rooms not handed over within the grace period");
            Ok(())
        }
        Some(Ok(Ok(()))) => Ok(()),
        Some(Ok(Err(failed))) => Err(failed.into()),
        Some(Err(e)) => Err(anyhow::anyhow!("the host task ended: {e}")),
    }
}
