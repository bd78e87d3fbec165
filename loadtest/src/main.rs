//! `swarm`: a load generator that plays Snakepit with thousands of bots and
//! reports what a player would feel (tick rhythm, input echo, deaths,
//! errors) next to what the server had to carry (connections, frames, bytes).
//!
//! This file sets a run up and tears it down: it checks the targets, spawns
//! one task per bot (`conn`), prints progress (`progress`), stops everything
//! after `--duration`, and prints the report. Everything it measures is
//! defined in the `snakepit_loadtest` library.

mod cli;
mod conn;
mod progress;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use snakepit_loadtest::bot::{BotConfig, Role};
use snakepit_loadtest::events::EventLog;
use snakepit_loadtest::pace::Pacer;
use snakepit_loadtest::report::{BotFigures, End, Report, RunInfo, Steady};
use snakepit_loadtest::stats::{Counter, Stats};
use snakepit_loadtest::target::{Target, is_loopback_ip, parse_targets};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::cli::Args;
use crate::conn::{Shared, run_bot, ws_config};

/// How often the progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// How long the bots get to close their sockets after the run.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let targets = parse_targets(&args.urls, args.allow_remote)?;
    if !args.allow_remote {
        check_resolved(&targets).await?;
    }
    let report = run(args.clone(), targets).await?;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    if args.fail_on_loss && !report.ledger.clean() {
        let l = &report.ledger;
        bail!(
            "{} snakes lost, {} bots not back, {} snakes rolled back by a resync (--fail-on-loss)",
            l.snakes_lost,
            l.bots_not_back,
            l.resync_lost
        );
    }
    Ok(())
}

/// Names such as `localhost` must resolve to loopback addresses only.
async fn check_resolved(targets: &[Target]) -> anyhow::Result<()> {
    for t in targets {
        let addrs: Vec<_> = tokio::net::lookup_host((t.host.as_str(), t.port))
            .await
            .with_context(|| format!("cannot resolve {}", t.host))?
            .collect();
        if let Some(a) = addrs.iter().find(|a| !is_loopback_ip(a.ip())) {
            bail!("{} resolves to {a}, which is not a loopback address; pass --allow-remote to load it", t.url);
        }
    }
    Ok(())
}

/// Whether bot `i` watches: spreads `share` of the bots evenly.
fn is_spectator(i: usize, share: f64) -> bool {
    ((i + 1) as f64 * share).floor() > (i as f64 * share).floor()
}

async fn run(args: Args, targets: Vec<Target>) -> anyhow::Result<Report> {
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64) ^ u64::from(std::process::id())
    });
    let stats = Arc::new(Stats::new());
    let events = match &args.events {
        Some(path) => {
            Some(Arc::new(EventLog::create(path).with_context(|| format!("cannot create {}", path.display()))?))
        }
        None => None,
    };
    let start = Instant::now();
    let ramp = args.ramp.min(args.duration);
    let shared = Arc::new(Shared {
        stats: stats.clone(),
        pacer: Pacer::new(args.connect_rate),
        start,
        ramp,
        bots: args.players,
        ws_config: ws_config(),
        events: events.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let urls: Arc<[Arc<str>]> = targets.iter().map(|t| Arc::from(t.url.as_str())).collect();

    let mut bots = Vec::with_capacity(args.players);
    let (mut players, mut spectators) = (0usize, 0usize);
    for i in 0..args.players {
        let role = if is_spectator(i, args.spectators) { Role::Spectator } else { Role::Player };
        let room = match role {
            Role::Player if args.room_size > 0 => Some(format!("swarm{}", players / args.room_size)),
            _ => None,
        };
        match role {
            Role::Player => players += 1,
            Role::Spectator => spectators += 1,
        }
        let cfg = BotConfig { index: i, role, room, seed, events_gap: events.is_some().then_some(args.events_gap) };
        bots.push(tokio::spawn(run_bot(shared.clone(), cfg, urls.clone(), stop_rx.clone())));
    }
    let progress = tokio::spawn(progress::run(stats.clone(), start, PROGRESS_EVERY, stop_rx.clone()));

    // The rates after the ramp start from a mark taken when it ends.
    let ramp_mark = {
        let stats = stats.clone();
        let at = start + ramp;
        tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            (Instant::now(), stats.counts())
        })
    };

    let deadline = start + args.duration;
    tokio::select! {
        () = tokio::time::sleep_until(deadline.into()) => {}
        r = tokio::signal::ctrl_c() => {
            r.context("cannot listen for Ctrl-C")?;
            eprintln!("interrupted: stopping early");
        }
    }
    let stopped_at = Instant::now();
    let end = End {
        elapsed_secs: stopped_at.duration_since(start).as_secs_f64(),
        players_held: stats.players_held(),
        spectators_held: stats.spectators_held(),
    };
    let steady = if ramp_mark.is_finished() && !ramp.is_zero() {
        let (mark_at, mark) = ramp_mark.await.context("ramp mark task")?;
        let secs = stopped_at.duration_since(mark_at).as_secs_f64();
        let now = stats.counts();
        let rate = |c: Counter| now.get(c).saturating_sub(mark.get(c)) as f64 / secs;
        (secs >= 1.0).then(|| Steady {
            window_ms: secs * 1000.0,
            frames_per_s: rate(Counter::Frames),
            bytes_per_s: rate(Counter::Bytes),
        })
    } else {
        ramp_mark.abort();
        None
    };
    stop_tx.send_replace(true);

    let give_up = tokio::time::Instant::from_std(stopped_at + SHUTDOWN_WAIT);
    let mut figures = Vec::with_capacity(bots.len());
    let mut stuck = 0usize;
    for handle in bots {
        let abort = handle.abort_handle();
        match tokio::time::timeout_at(give_up, handle).await {
            Ok(Ok(f)) => figures.push(f),
            Ok(Err(e)) => bail!("a bot task failed: {e}"),
            Err(_) => {
                abort.abort();
                stuck += 1;
                figures.push(BotFigures::default());
            }
        }
    }
    if stuck > 0 {
        eprintln!("{stuck} bots did not close within {SHUTDOWN_WAIT:?}; aborted");
    }
    let _ = progress.await;
    if let Some(log) = &events {
        log.flush().context("cannot write the event log")?;
    }

    let run = RunInfo {
        urls: targets.into_iter().map(|t| t.url).collect(),
        bots: args.players,
        players,
        spectators,
        duration_ms: args.duration.as_secs_f64() * 1000.0,
        ramp_ms: ramp.as_secs_f64() * 1000.0,
        room_size: args.room_size,
        connect_rate: args.connect_rate,
        seed,
    };
    Ok(Report::new(run, &stats, end, steady, &figures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spectators_are_spread_evenly() {
        let n = (0..1000).filter(|&i| is_spectator(i, 0.1)).count();
        assert_eq!(n, 100);
        assert_eq!((0..50).filter(|&i| is_spectator(i, 0.0)).count(), 0);
        assert_eq!((0..50).filter(|&i| is_spectator(i, 1.0)).count(), 50);
        // not all at the start of the ramp
        assert!(!is_spectator(0, 0.1) && is_spectator(9, 0.1) && is_spectator(19, 0.1));
    }
}
