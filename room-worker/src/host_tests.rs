//! The host under faults, on tokio's paused clock: a large failover over a
//! slow backend, rooms another worker holds, and a room task that panics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use prometheus::Registry;
use std::future::Future;

use snakepit_bus::intercept::{Call, Hook, Intercepted};
use snakepit_bus::{Bus, BusError, MemoryBackend, Ownership, PlayerId, RoomId, Seat, Store};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::host::{Host, HostConfig};
use crate::metrics::WorkerMetrics;
use crate::rendezvous;
use crate::room::RoomConfig;
use crate::slow_backend::slow;
use snakepit_game::settings::GameSettings;

const LEASE_TTL: Duration = Duration::from_secs(3);

fn config(worker: &str) -> HostConfig {
    HostConfig {
        worker_id: worker.into(),
        room: RoomConfig {
            settings: GameSettings::default(),
            grace: Duration::from_secs(5),
            empty_ttl: Duration::from_secs(3600),
            snapshot_every: None,
            presence_timeout: Duration::from_secs(3600),
            seat_hold: Duration::from_secs(15),
        },
        round_every: LEASE_TTL / 3,
        lease_ttl: LEASE_TTL,
    }
}

fn room(name: &str) -> RoomId {
    RoomId::parse(name).unwrap()
}

fn metrics() -> WorkerMetrics {
    WorkerMetrics::register(&Registry::new(), "test").unwrap()
}

/// Whether `worker` holds the lease of every room.
async fn holds_all(b: &MemoryBackend, worker: &str, rooms: &[RoomId]) -> bool {
    b.lease_holders(rooms).await.unwrap().iter().all(|h| h.as_deref() == Some(worker))
}

/// Waits (on the paused clock) until `check` passes, at most `limit`.
async fn eventually<F: Future<Output = bool>>(limit: Duration, what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A survivor that runs rooms of its own suddenly has a dead worker's
/// thousand rooms to claim, over a backend where each call takes 5 ms:
/// the claims must not delay its renewals, or its own leases lapse and
/// the failover cascades.
#[tokio::test(start_paused = true)]
async fn a_large_failover_never_lets_the_survivors_leases_lapse() {
    let memory = MemoryBackend::new();
    let backend = slow(memory.clone(), Duration::from_millis(5));
    let own: Vec<RoomId> = (0..50).map(|i| room(&format!("own-{i}"))).collect();
    for r in &own {
        memory.ensure_room(r, 10).await.unwrap();
    }
    let stop = CancellationToken::new();
    let host = tokio::spawn(Host::new(backend.clone(), config("survivor"), metrics()).run(stop.clone()));
    eventually(Duration::from_secs(10), "the survivor runs its rooms", || holds_all(&memory, "survivor", &own)).await;

    // The dead worker's rooms: its leases run out a second from now.
    let orphans: Vec<RoomId> = (0..1000).map(|i| room(&format!("orphan-{i}"))).collect();
    for r in &orphans {
        memory.ensure_room(r, 10).await.unwrap();
        memory.acquire_lease(r, "dead", Duration::from_secs(1), 0).await.unwrap().expect("free lease");
    }
    eventually(Duration::from_secs(60), "every orphan is claimed", || holds_all(&memory, "survivor", &orphans)).await;
    // A few more rounds with all of them running.
    tokio::time::sleep(LEASE_TTL * 2).await;
    assert!(holds_all(&memory, "survivor", &own).await);

    {
        let log = backend.hook.log();
        assert!(log.renewed_held > 0);
        let lapsed = &log.renewed_not_held;
        assert!(lapsed.is_empty(), "{} leases lapsed, such as {:?}", lapsed.len(), lapsed.first());
    }
    stop.cancel();
    host.await.unwrap();
}

/// Rooms that rendezvous hashing gives this worker but whose lease a live
/// peer holds are looked up once per round, not acquired one by one.
#[tokio::test(start_paused = true)]
async fn sticky_rooms_cost_no_acquire_per_round() {
    let memory = MemoryBackend::new();
    let backend = slow(memory.clone(), Duration::from_millis(1));
    let workers = ["host".to_string(), "peer".to_string()];
    let ours: Vec<RoomId> =
        (0..200).map(|i| room(&format!("s-{i}"))).filter(|r| rendezvous::owner(r, &workers) == Some("host")).collect();
    let (sticky, free) = ours.split_at(20);
    memory.heartbeat("peer", Duration::from_secs(3600)).await.unwrap();
    for r in sticky {
        memory.ensure_room(r, 10).await.unwrap();
        memory.acquire_lease(r, "peer", Duration::from_secs(3600), 0).await.unwrap().expect("free lease");
    }
    let free = &free[..3];
    for r in free {
        memory.ensure_room(r, 10).await.unwrap();
    }
    let stop = CancellationToken::new();
    let host = tokio::spawn(Host::new(backend.clone(), config("host"), metrics()).run(stop.clone()));
    tokio::time::sleep(LEASE_TTL * 5).await;

    assert!(holds_all(&memory, "host", free).await);
    assert!(holds_all(&memory, "peer", sticky).await);
    let acquired = backend.hook.log().acquired.clone();
    assert_eq!(acquired.iter().filter(|r| sticky.contains(r)).count(), 0, "acquires of held rooms");
    assert_eq!(acquired.len(), free.len());
    stop.cancel();
    host.await.unwrap();
}

/// Panics the first time a room retires itself: a room task that panics
/// in its own loop. (A broken snapshot used to do it, but snapshots are
/// checked as they are read now.)
#[derive(Clone, Default)]
struct PanicOnce(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Hook for PanicOnce {
    fn before(&self, call: Call<'_>) -> impl Future<Output = Result<(), BusError>> + Send {
        if matches!(call, Call::RetireRoom(_)) && !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            panic!("a room's own call panicked");
        }
        async { Ok(()) }
    }
}

/// A room task that panics: the host must hear of it and let the room go,
/// so that it is taken over again (here by the same worker, with a new
/// epoch), rather than renew it forever.
#[tokio::test(start_paused = true)]
async fn a_panicked_room_is_released_and_taken_over() {
    let memory = MemoryBackend::new();
    let backend = Intercepted::new(memory.clone(), PanicOnce::default());
    let r = room("broken");
    let old = memory.acquire_lease(&r, "old", LEASE_TTL, 0).await.unwrap().unwrap();
    memory.release_lease(&old).await.unwrap();
    // Listed with a seat held, so that the room's retirement is refused
    // (after the panic) and the room lives on.
    assert!(matches!(
        memory.take_seat(Some(&r), PlayerId(1), 10, Duration::from_secs(3600)).await.unwrap(),
        Seat::Taken { .. }
    ));
    let mut config = config("host");
    config.room.empty_ttl = Duration::from_secs(2);

    let mut frames = memory.subscribe_output(&r).await.unwrap();
    let m = metrics();
    let stop = CancellationToken::new();
    let host = tokio::spawn(Host::new(backend, config, m.clone()).run(stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut epochs = Vec::new();
    while epochs.len() < 2 {
        let frame = tokio::time::timeout_at(deadline, frames.recv()).await.expect("taken over again").unwrap();
        if epochs.last() != Some(&frame.epoch) {
            epochs.push(frame.epoch);
        }
    }
    assert!(epochs[1] > epochs[0] && epochs[0] > old.epoch, "{epochs:?}");
    assert!(m.room_panics.get() >= 1);
    stop.cancel();
    host.await.unwrap();
}

/// The rooms of each worker, by their lease.
async fn held_by(b: &MemoryBackend, rooms: &[RoomId], worker: &str) -> Vec<RoomId> {
    let holders = b.lease_holders(rooms).await.unwrap();
    rooms.iter().zip(holders).filter(|(_, h)| h.as_deref() == Some(worker)).map(|(r, _)| r.clone()).collect()
}

/// A worker whose process dies (here: its host task is dropped, and with it
/// its presence) is found gone within a few polls, and its rooms are taken
/// over at once, long before its leases (3 s) would have run out.
#[tokio::test(start_paused = true)]
async fn a_gone_workers_rooms_are_taken_over_before_its_leases_run_out() {
    let memory = MemoryBackend::new();
    let rooms: Vec<RoomId> = (0..40).map(|i| room(&format!("fo-{i}"))).collect();
    for r in &rooms {
        memory.ensure_room(r, 10).await.unwrap();
    }
    let stop = CancellationToken::new();
    let m = metrics();
    let a = tokio::spawn(Host::new(memory.clone(), config("a"), m.clone()).run(stop.clone()));
    let b = tokio::spawn(Host::new(memory.clone(), config("b"), metrics()).run(stop.clone()));
    eventually(Duration::from_secs(10), "both run their rooms", || async {
        let (on_a, on_b) = (held_by(&memory, &rooms, "a").await, held_by(&memory, &rooms, "b").await);
        !on_a.is_empty() && !on_b.is_empty() && on_a.len() + on_b.len() == rooms.len()
    })
    .await;
    // Past a lease period of steady presence, so that `a` judges others.
    tokio::time::sleep(LEASE_TTL).await;
    let orphans = held_by(&memory, &rooms, "b").await;

    b.abort();
    let died = Instant::now();
    eventually(Duration::from_secs(10), "a holds every room", || async {
        held_by(&memory, &rooms, "a").await.len() == rooms.len()
    })
    .await;
    let took = died.elapsed();
    assert!(took < Duration::from_secs(1), "{} rooms taken over after {took:?}", orphans.len());
    assert_eq!(m.workers_gone.get(), 1);
    assert!(!memory.live_workers().await.unwrap().contains(&"b".to_string()), "withdrawn");
    stop.cancel();
    a.await.unwrap();
}
