//! A worker hosting N rooms on the in-memory bus: what a running room costs
//! per tick as N grows, with everything around the game step (its wake-up,
//! its inputs, publishing, snapshots, the host's rounds).
//!
//! The runtime is one thread on tokio's paused clock: time jumps to the next
//! timer as soon as nothing is left to run, so the wall time of one tick
//! period is the CPU the worker spent on it. Each iteration is one tick
//! period of N rooms; criterion's throughput figure divides by N, so the
//! time per element is the cost of one room-tick. Rooms whose every snake
//! died stop ticking (the game pauses, as the original's did): the figure
//! counts only the room-ticks that really ran, and the bench prints the
//! share.
//!
//! Each player presses a key every `TURN_EVERY` ticks, turning clockwise, so
//! that its snake runs round a small square and lives (digits and stones are
//! off, so it does not grow into itself). Frames go to the in-memory bus
//! with nobody listening: the gateway's side is measured by `capacity.py`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant as WallInstant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use prometheus::Registry;
use snakepit_bus::{Bus, ConnId, InputKind, MemoryBackend, PlayerId, RoomId, RoomInput, Store};
use snakepit_protocol::client::Direction;
use snakepit_room_worker::{GameSettings, Host, HostConfig, RoomConfig, WorkerMetrics};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

/// The worker's allocator (see `main.rs`): the memory a room takes is
/// measured with it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Ticks between two key presses of a player.
const TURN_EVERY: u64 = 4;
const CLOCKWISE: [Direction; 4] = [Direction::Right, Direction::Down, Direction::Left, Direction::Up];

struct Worker {
    rt: Runtime,
    metrics: WorkerMetrics,
    period: Duration,
    stop: CancellationToken,
}

impl Worker {
    /// A worker running `rooms` rooms of `players` players each, every
    /// snake born.
    fn start(rooms: usize, players: usize, snapshots: bool) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        let metrics = WorkerMetrics::register(&Registry::new(), "bench").unwrap();
        let settings = GameSettings { digit_spawn_rate: 0.0, stone_spawn_rate: 0.0, ..GameSettings::default() };
        let period = settings.tick_period();
        let config = HostConfig {
            worker_id: "bench".into(),
            room: RoomConfig {
                settings,
                grace: Duration::from_secs(5),
                empty_ttl: Duration::from_secs(3600),
                snapshot_every: snapshots.then_some(Duration::from_secs(1)),
                presence_timeout: Duration::from_secs(3600),
                seat_hold: Duration::from_secs(15),
                packed_snapshots: true,
            },
            round_every: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(3),
        };
        let stop = CancellationToken::new();
        let ids: Vec<RoomId> = (0..rooms).map(|i| RoomId::parse(&format!("bench-{i}")).unwrap()).collect();
        rt.block_on(async {
            let backend = MemoryBackend::new();
            for id in &ids {
                backend.ensure_room(id, 10).await.unwrap();
            }
            tokio::spawn(Host::new(backend.clone(), config, metrics.clone()).run(stop.clone()));
            while (metrics.rooms.get() as usize) < rooms {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut members = Vec::new();
            for (r, id) in ids.iter().enumerate() {
                for p in 0..players {
                    let player = PlayerId((r * players + p + 1) as i64);
                    let conn = ConnId::random();
                    let enter = InputKind::Enter { name: Some(format!("p{p}")), resync: false, key: 1, gateway: None };
                    backend.publish_input(id, RoomInput { player, conn, kind: enter }).await.unwrap();
                    backend.publish_input(id, RoomInput { player, conn, kind: InputKind::Join }).await.unwrap();
                    members.push((id.clone(), player, conn));
                }
                // Players arrive as in a ramp, a hundred rooms a tick, and
                // start steering at once: each gets a welcome of ~10 KB,
                // and ten thousand at once would leave their peak in the
                // resident memory.
                if r % 100 == 99 || r + 1 == rooms {
                    tokio::spawn(press_keys(backend.clone(), std::mem::take(&mut members), period));
                    tokio::time::sleep(period).await;
                }
            }
            // Born, and a turn or two in.
            tokio::time::sleep(period * 10).await;
        });
        Self { rt, metrics, period, stop }
    }

    fn room_ticks(&self) -> u64 {
        self.metrics.tick_duration.get_sample_count()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Every player presses the next key clockwise every `TURN_EVERY` ticks,
/// half a tick off the rooms' phase, spread over the ticks.
async fn press_keys(backend: MemoryBackend, members: Vec<(RoomId, PlayerId, ConnId)>, period: Duration) {
    tokio::time::sleep(period / 2).await;
    let mut ticks = tokio::time::interval(period);
    let mut tick = 0u64;
    loop {
        ticks.tick().await;
        tick += 1;
        for (i, (room, player, conn)) in members.iter().enumerate() {
            let at = tick + i as u64;
            if at.is_multiple_of(TURN_EVERY) {
                let dir = CLOCKWISE[(at / TURN_EVERY % 4) as usize];
                let input = RoomInput { player: *player, conn: *conn, kind: InputKind::Turn(dir) };
                if backend.publish_input(room, input).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn rooms(c: &mut Criterion) {
    for (label, players, snapshots, counts) in [
        ("one_player_rooms", 1usize, true, &[100usize, 1_000, 5_000, 10_000][..]),
        ("full_rooms", 10, true, &[100, 1_000, 2_500][..]),
    ] {
        let mut group = c.benchmark_group(label);
        group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
        for &n in counts {
            let worker = Worker::start(n, players, snapshots);
            group.throughput(Throughput::Elements(n as u64));
            let (mut ran, mut wanted) = (0u64, 0u64);
            group.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter_custom(|iters| {
                    let before = worker.room_ticks();
                    let started = WallInstant::now();
                    let period = worker.period * iters as u32;
                    worker.rt.block_on(async move { tokio::time::sleep(period).await });
                    let spent = started.elapsed();
                    let done = worker.room_ticks() - before;
                    ran += done;
                    wanted += iters * n as u64;
                    // Per room-tick that ran, as if all `n` had.
                    spent.mul_f64((iters * n as u64) as f64 / done.max(1) as f64)
                })
            });
            eprintln!(
                "{label}/{n}: {:.1}% of room-ticks ran (the rest: every snake dead)",
                100.0 * ran as f64 / wanted.max(1) as f64
            );
        }
        group.finish();
    }
}

/// The process's resident memory, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

/// `ROOMS_RSS=<rooms>[x<players>]`: instead of the benchmark, the resident
/// memory a running room adds (its members included), in a fresh process,
/// without snapshots (in a cluster they are kept in Redis, not in the
/// worker; the in-memory store would hold them here).
fn rss_per_room(spec: &str) {
    let (rooms, players) = match spec.split_once('x') {
        Some((r, p)) => (r.parse().unwrap(), p.parse().unwrap()),
        None => (spec.parse().unwrap(), 1),
    };
    let before = rss();
    let worker = Worker::start(rooms, players, false);
    worker.rt.block_on(async { tokio::time::sleep(Duration::from_secs(5)).await });
    let grown = rss().saturating_sub(before);
    println!(
        "{rooms} rooms of {players}: {:.1} MiB more resident, {:.2} KiB per room; {} snakes alive",
        grown as f64 / 1048576.0,
        grown as f64 / 1024.0 / rooms as f64,
        worker.metrics.snakes_alive.get(),
    );
}

criterion_group!(benches, rooms);

fn main() {
    if let Ok(spec) = std::env::var("ROOMS_RSS") {
        rss_per_room(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
