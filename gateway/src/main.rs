//! `gateway`: with no Redis URL, the whole game in one process; with one,
//! a stateless gateway of a cluster.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use prometheus::Registry;
use snakepit_bus::redis_metrics::RedisMetrics;
use snakepit_bus::{RedisBackend, Topology};
use snakepit_cli::game::room_only_flag_given;
use snakepit_cli::{GameArgs, RedisArgs, secs, secs_or_zero};
use snakepit_gateway::routes::normalize_origin;
use snakepit_gateway::standalone::{StandaloneConfig, serve_with_registry};
use snakepit_gateway::{AppState, DrainConfig, GatewayConfig, run};
use snakepit_service::build_info::{Binary, BuildInfo, Mode};
use snakepit_service::process_metrics;
use snakepit_service::shutdown::cancel_on_signal;
use snakepit_service::telemetry::{LogFormat, init_logging};
use tokio_util::sync::CancellationToken;

/// Snakepit gateway. Without a Redis URL it runs the whole game in this
/// process: open http://127.0.0.1:8080 and play. With --redis-url it is one
/// gateway of a cluster, and room workers run the rooms.
#[derive(Debug, clap::Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "SNAKEPIT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Pending connections the kernel queues before the gateway accepts
    /// them (capped by net.core.somaxconn): room for a reconnect storm.
    #[arg(long, env = "SNAKEPIT_LISTEN_BACKLOG", default_value_t = snakepit_service::listen::DEFAULT_BACKLOG)]
    listen_backlog: u32,
    /// Redis URL of a cluster, e.g. redis://127.0.0.1:6379/ (none: standalone);
    /// with --redis-cluster, seed nodes of a Redis Cluster, comma-separated.
    #[arg(long, env = "SNAKEPIT_REDIS_URL")]
    redis_url: Option<String>,
    #[command(flatten)]
    redis: RedisArgs,
    /// Seconds connections get to close on shutdown, after the drain.
    #[arg(long, env = "SNAKEPIT_SHUTDOWN_GRACE_SECS", default_value_t = 5.0)]
    shutdown_grace_secs: f64,
    /// Seconds the gateway keeps serving after SIGTERM (readiness already
    /// failing) before it stops accepting; Kubernetes: a few seconds.
    #[arg(long, env = "SNAKEPIT_DRAIN_DELAY_SECS", default_value_t = 0.0)]
    drain_delay_secs: f64,
    /// Seconds over which the clients are then closed (1012), in paced
    /// batches, so that they do not all reconnect elsewhere at once.
    #[arg(long, env = "SNAKEPIT_DRAIN_CLOSE_SECS", default_value_t = 1.0)]
    drain_close_secs: f64,
    /// Seconds between the gateway's presence notes to each room it has
    /// members in (rooms drop members no gateway vouches for).
    #[arg(long, env = "SNAKEPIT_PRESENCE_SECS", default_value_t = 5.0)]
    presence_secs: f64,
    /// Seconds between WebSocket pings to each client.
    #[arg(long, env = "SNAKEPIT_PING_SECS", default_value_t = 15.0)]
    ping_secs: f64,
    /// Seconds a client may send nothing (no message, no pong) before it is
    /// closed as dead; more than the ping interval.
    #[arg(long, env = "SNAKEPIT_IDLE_TIMEOUT_SECS", default_value_t = 45.0)]
    idle_timeout_secs: f64,
    /// TCP connections one IP address may hold at once (HTTP and
    /// WebSockets); one more is answered 429 and closed. Loopback is not
    /// counted. 0: no cap (behind a proxy on another host, where every peer
    /// is the proxy: cap there instead).
    #[arg(long, env = "SNAKEPIT_CONNECTIONS_PER_IP", default_value_t = 64)]
    connections_per_ip: usize,
    /// Seconds a new connection gets to send a whole request (a WebSocket
    /// upgrade included) before it is closed unanswered.
    #[arg(long, env = "SNAKEPIT_REQUEST_TIMEOUT_SECS", default_value_t = 10.0)]
    request_timeout_secs: f64,
    /// Seconds a new WebSocket gets to send its first command of the
    /// protocol before it is closed (4000).
    #[arg(long, env = "SNAKEPIT_FIRST_MESSAGE_SECS", default_value_t = 10.0)]
    first_message_secs: f64,
    /// Pages allowed to open game WebSockets, as `Origin`s, comma-separated
    /// (e.g. https://snake.example.com); others get 403. Default: any.
    #[arg(long, env = "SNAKEPIT_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// Standalone: the folder that keeps the top scores across restarts
    /// (top-scores.json), created if missing [default:
    /// $XDG_DATA_HOME/snakepit, else $HOME/.local/share/snakepit; macOS
    /// ~/Library/Application Support/snakepit, Windows %APPDATA%\snakepit].
    /// An empty value keeps them in memory only, as --no-data-dir does.
    /// Refused with --redis-url: a cluster keeps them in Redis.
    #[arg(long, env = "SNAKEPIT_DATA_DIR", value_name = "DIR")]
    data_dir: Option<OsString>,
    /// Standalone: keep the top scores in memory only (lost at exit); wins
    /// over --data-dir.
    #[arg(long, env = "SNAKEPIT_NO_DATA_DIR")]
    no_data_dir: bool,
    /// Log format: text or json.
    #[arg(long, env = "SNAKEPIT_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    #[command(flatten)]
    game: GameArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(args.log_format, "info");
    if let (Some(_), Some(flag)) = (&args.redis_url, room_only_flag_given(&matches)) {
        tracing::warn!("{flag} is ignored: with --redis-url the room workers run the rooms, and their settings decide");
    }
    let ca = args.redis.ca().context("cannot read --redis-ca-file")?;
    let topology = if args.redis.redis_cluster { Topology::Cluster } else { Topology::Single };
    if let Some(url) = &args.redis_url {
        RedisBackend::check_settings_with_prefix(url, topology, &args.redis.redis_prefix, ca.as_deref())
            .context("bad Redis settings")?;
    }
    let data_dir_given = args.data_dir.as_ref().is_some_and(|d| !d.is_empty()) && !args.no_data_dir;
    anyhow::ensure!(
        args.redis_url.is_none() || !data_dir_given,
        "--data-dir (SNAKEPIT_DATA_DIR) is for the standalone mode: with --redis-url the top scores are kept in Redis"
    );
    let room = args.game.room_config()?;
    let gateway = GatewayConfig {
        room_capacity: room.settings.max_players,
        presence_every: secs("presence", args.presence_secs)?,
        // A fresh seat outlasts the room's first confirmation of it.
        seat_hold: room.seat_hold * 2,
        ping_every: secs("ping", args.ping_secs)?,
        idle_timeout: secs("idle timeout", args.idle_timeout_secs)?,
        first_message_timeout: secs("first message", args.first_message_secs)?,
        request_timeout: secs("request timeout", args.request_timeout_secs)?,
        connections_per_ip: args.connections_per_ip,
        allowed_origins: allowed_origins(&args.allowed_origins)?,
        ..GatewayConfig::default()
    };
    // A client that answers every ping must never look idle.
    anyhow::ensure!(gateway.idle_timeout > gateway.ping_every, "the idle timeout must exceed the ping interval");
    let drain = DrainConfig {
        delay: secs_or_zero("drain delay", args.drain_delay_secs)?,
        close_window: secs_or_zero("drain close", args.drain_close_secs)?,
        grace: secs("shutdown grace", args.shutdown_grace_secs)?,
    };
    let listener = snakepit_service::listen::bind(args.listen, args.listen_backlog)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // One line on stdout that scripts and tests wait for.
    println!("listening on http://{addr}");
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        // A second signal cuts the drain short (the library logged it).
        if let Some(sig) = cancel_on_signal(signals).await {
            std::process::exit(sig.exit_code());
        }
    });
    let registry = Registry::new();
    let build = |mode| BuildInfo {
        binary: Binary::Gateway,
        mode,
        version: env!("CARGO_PKG_VERSION"),
        revision: snakepit_service::build_revision!(),
    };
    match &args.redis_url {
        None => {
            tracing::info!(%addr, tick_rate = room.settings.tick_rate, "standalone gateway listening");
            process_metrics::register(&registry, &build(Mode::Standalone))?;
            let data_dir = data_dir(&args);
            let config = StandaloneConfig { gateway, room, drain, data_dir };
            serve_with_registry(listener, config, registry, shutdown).await?;
        }
        Some(url) => {
            tracing::info!(%addr, "cluster gateway listening");
            process_metrics::register(&registry, &build(Mode::Cluster))?;
            let redis_metrics = RedisMetrics::register(&registry)?;
            let Some(backend) = RedisBackend::connect_retrying(
                url,
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
            let state = AppState::new(backend, gateway, registry)?;
            run(listener, state, shutdown, drain).await?;
        }
    }
    Ok(())
}

/// The `--allowed-origins`, each in one spelling; an entry that is no
/// http(s) origin stops the start (it would refuse every page).
fn allowed_origins(given: &[String]) -> anyhow::Result<Vec<String>> {
    given
        .iter()
        .filter(|o| !o.trim().is_empty())
        .map(|o| {
            normalize_origin(o).with_context(|| {
                format!("--allowed-origins: {o:?} is no origin (scheme://host[:port], e.g. https://snake.example.com)")
            })
        })
        .collect()
}

/// Where the standalone mode keeps its top scores, logged: the flag's
/// folder, else the platform's data folder (`dirs::data_dir`: on Linux an
/// absolute `$XDG_DATA_HOME`, else `$HOME/.local/share`) + `snakepit`;
/// none if turned off or if there is no home folder.
fn data_dir(args: &Args) -> Option<PathBuf> {
    let dir = match &args.data_dir {
        _ if args.no_data_dir => None,
        Some(d) if d.is_empty() => None,
        Some(d) => Some(PathBuf::from(d)),
        None => match dirs::data_dir() {
            Some(d) => Some(d.join("snakepit")),
            None => {
                tracing::warn!("no home folder: the top scores are kept in memory only (lost at exit); set --data-dir");
                return None;
            }
        },
    };
    match &dir {
        Some(d) => tracing::info!(data_dir = %d.display(), "top scores are kept in the data folder"),
        None => tracing::info!("top scores are kept in memory only (lost at exit): no data folder"),
    }
    dir
}
