//! `floor`: the bare fan-out a gateway's cost is measured against (see
//! `snakepit_loadtest::floor`). Prints `listening on <addr>`, then the
//! frames delivered so far, as `frames <n>`, every 100 ms; stops on SIGTERM
//! or Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use snakepit_game::GameSettings;
use snakepit_loadtest::floor::{Delivered, FloorConfig, run};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "floor", version)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, env = "FLOOR_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// World steps per second.
    #[arg(long, env = "FLOOR_TICK_RATE", default_value_t = 10.0)]
    tick_rate: f64,
    /// Seats of a room.
    #[arg(long, env = "FLOOR_ROOM_SIZE", default_value_t = 10)]
    room_size: u16,
    /// Seed of the rooms' games.
    #[arg(long, env = "FLOOR_SEED", default_value_t = 1)]
    seed: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = GameSettings { tick_rate: args.tick_rate, max_players: args.room_size, ..GameSettings::default() };
    settings.validate().context("game settings")?;
    let socket =
        if args.listen.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(args.listen).with_context(|| format!("bind {}", args.listen))?;
    // The gateway's default backlog.
    let listener = socket.listen(4096)?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on {}", listener.local_addr()?)?;
    out.flush()?;
    let shutdown = CancellationToken::new();
    let delivered = Delivered::default();
    let server =
        tokio::spawn(run(listener, FloorConfig { settings, seed: args.seed }, delivered.clone(), shutdown.clone()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut report = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = report.tick() => {
                writeln!(out, "frames {}", delivered.get())?;
                out.flush()?;
            }
        }
    }
    shutdown.cancel();
    let _ = server.await;
    Ok(())
}
