//! `gateway`: with no Redis URL, the whole game in one process.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use snakepit_gateway::GatewayConfig;
use snakepit_gateway::standalone::{StandaloneConfig, serve};
use snakepit_room_worker::GameSettings;
use snakepit_room_worker::room::RoomConfig;
use snakepit_shared::telemetry::{LogFormat, init_logging};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Preset {
    /// The original game's settings at 10 ticks/s.
    Default,
    /// The original game exactly (2.3 ticks/s).
    Original,
}

/// Snakepit gateway. Without a Redis URL it runs the whole game in this
/// process: open http://127.0.0.1:8080 and play.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "SNAKEPIT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Settings preset; the options below override it.
    #[arg(long, env = "SNAKEPIT_PRESET", value_enum, default_value = "default")]
    preset: Preset,
    /// World steps per second.
    #[arg(long, env = "SNAKEPIT_TICK_RATE")]
    tick_rate: Option<f64>,
    /// Field width in cells.
    #[arg(long, env = "SNAKEPIT_WIDTH")]
    width: Option<u16>,
    /// Field height in cells.
    #[arg(long, env = "SNAKEPIT_HEIGHT")]
    height: Option<u16>,
    /// Snakes alive at once, and seats per room.
    #[arg(long, env = "SNAKEPIT_MAX_PLAYERS")]
    max_players: Option<u16>,
    /// Length of a new snake.
    #[arg(long, env = "SNAKEPIT_INITIAL_LENGTH")]
    initial_length: Option<u16>,
    /// Chance per moving snake per tick that a digit appears (0..1).
    #[arg(long, env = "SNAKEPIT_DIGIT_SPAWN_RATE")]
    digit_spawn_rate: Option<f64>,
    /// Chance per tick that a stone appears (0..1).
    #[arg(long, env = "SNAKEPIT_STONE_SPAWN_RATE")]
    stone_spawn_rate: Option<f64>,
    /// Smallest digit value.
    #[arg(long, env = "SNAKEPIT_DIGIT_MIN")]
    digit_min: Option<u8>,
    /// Largest digit value.
    #[arg(long, env = "SNAKEPIT_DIGIT_MAX")]
    digit_max: Option<u8>,
    /// No stones.
    #[arg(long, env = "SNAKEPIT_NO_STONES")]
    no_stones: bool,
    /// Points for the snake another snake ran into.
    #[arg(long, env = "SNAKEPIT_KILL_POINTS")]
    kill_points: Option<u64>,
    /// Seconds a disconnected player's snake keeps going.
    #[arg(long, env = "SNAKEPIT_RESUME_GRACE_SECS", default_value_t = 5.0)]
    resume_grace_secs: f64,
    /// Seconds an empty room lives before it retires.
    #[arg(long, env = "SNAKEPIT_EMPTY_ROOM_SECS", default_value_t = 30.0)]
    empty_room_secs: f64,
    /// Seconds connections get to close on shutdown.
    #[arg(long, env = "SNAKEPIT_SHUTDOWN_GRACE_SECS", default_value_t = 5.0)]
    shutdown_grace_secs: f64,
    /// Log format: text or json.
    #[arg(long, env = "SNAKEPIT_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
}

impl Args {
    fn settings(&self) -> anyhow::Result<GameSettings> {
        let mut s = match self.preset {
            Preset::Default => GameSettings::default(),
            Preset::Original => GameSettings::original(),
        };
        s.tick_rate = self.tick_rate.unwrap_or(s.tick_rate);
        s.width = self.width.unwrap_or(s.width);
        s.height = self.height.unwrap_or(s.height);
        s.max_players = self.max_players.unwrap_or(s.max_players);
        s.initial_length = self.initial_length.unwrap_or(s.initial_length);
        s.digit_spawn_rate = self.digit_spawn_rate.unwrap_or(s.digit_spawn_rate);
        s.stone_spawn_rate = self.stone_spawn_rate.unwrap_or(s.stone_spawn_rate);
        s.digit_min = self.digit_min.unwrap_or(s.digit_min);
        s.digit_max = self.digit_max.unwrap_or(s.digit_max);
        s.stones = s.stones && !self.no_stones;
        s.kill_points = self.kill_points.unwrap_or(s.kill_points);
        s.validate().context("invalid game settings")?;
        Ok(s)
    }
}

fn secs(name: &str, v: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("{name} must be a non-negative number of seconds"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format, "info");
    let config = StandaloneConfig {
        gateway: GatewayConfig::default(),
        room: RoomConfig {
            settings: args.settings()?,
            grace: secs("resume grace", args.resume_grace_secs)?,
            empty_ttl: secs("empty room", args.empty_room_secs)?,
        },
        shutdown_grace: secs("shutdown grace", args.shutdown_grace_secs)?,
    };
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // One line on stdout that scripts and tests wait for.
    println!("listening on http://{addr}");
    tracing::info!(%addr, tick_rate = config.room.settings.tick_rate, "standalone gateway listening");
    let shutdown = CancellationToken::new();
    tokio::spawn(signal(shutdown.clone()));
    serve(listener, config, shutdown).await?;
    Ok(())
}

/// Cancels `shutdown` on SIGINT (Ctrl-C) or SIGTERM.
async fn signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
    shutdown.cancel();
}
