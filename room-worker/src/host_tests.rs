//! The host under faults, on tokio's paused clock: a large failover over a
//! slow backend, rooms another worker holds, a room task that panics, a
//! store that lost its data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use prometheus::Registry;
use std::future::Future;

use snakepit_bus::intercept::{Call, Hook, Intercepted};
use snakepit_bus::{Bus, BusError, MemoryBackend, Notice, Ownership, PlayerId, RoomId, ScoreEntry, Seat, Store};
use tokio::task::JoinHandle;
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
            packed_snapshots: true,
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
    host.await.unwrap().unwrap();
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
    host.await.unwrap().unwrap();
}

/// Panics the first call of one kind: `PanicOnce::retire()`, the first
/// time a room retires itself (a room task that panics in its own loop; a
/// broken snapshot used to do it, but snapshots are checked as they are
/// read now); `PanicOnce::snapshot()`, the first snapshot write (the
/// snapshot writer's, as rooms write their first snapshots through it).
#[derive(Clone)]
struct PanicOnce {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    snapshot: bool,
}

impl PanicOnce {
    fn retire() -> Self {
        Self { done: Default::default(), snapshot: false }
    }

    fn snapshot() -> Self {
        Self { done: Default::default(), snapshot: true }
    }
}

impl Hook for PanicOnce {
    fn before(&self, call: Call<'_>) -> impl Future<Output = Result<(), BusError>> + Send {
        let chosen = match call {
            Call::SaveSnapshot(_) => self.snapshot,
            Call::RetireRoom(_) => !self.snapshot,
            _ => false,
        };
        if chosen && !self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            panic!("the first {} panicked", if self.snapshot { "snapshot write" } else { "retirement" });
        }
        async { Ok(()) }
    }
}

/// A worker whose snapshot writer dies cannot keep its rooms safe: it must
/// not run them on, holding their leases with nothing saved. It hands
/// every room over with a final snapshot (written by the room itself),
/// withdraws, and fails; the other worker takes every room over from
/// those snapshots.
#[tokio::test(start_paused = true)]
async fn a_worker_whose_snapshot_writer_dies_hands_its_rooms_over_and_fails() {
    let memory = MemoryBackend::new();
    let with_snapshots = |worker| {
        let mut config = config(worker);
        config.room.snapshot_every = Some(Duration::from_millis(500));
        config
    };
    let stop = CancellationToken::new();
    let (a, b) = (
        Host::new(Intercepted::new(memory.clone(), PanicOnce::snapshot()), with_snapshots("a"), metrics()),
        Host::new(memory.clone(), with_snapshots("b"), metrics()),
    );
    let (a_announced, b_announced) = (a.announced(), b.announced());
    let (a, b) = (tokio::spawn(a.run(stop.clone())), tokio::spawn(b.run(stop.clone())));
    a_announced.cancelled().await;
    b_announced.cancelled().await;
    // New rooms: rendezvous gives some to each; `a`'s writer dies on its
    // rooms' first snapshots.
    let rooms: Vec<RoomId> = (0..20).map(|i| room(&format!("sw-{i}"))).collect();
    let live = ["a".to_string(), "b".to_string()];
    assert!(rooms.iter().any(|r| rendezvous::owner(r, &live) == Some("a")));
    for r in &rooms {
        memory.ensure_room(r, 10).await.unwrap();
        memory.publish_notice(Notice::RoomCreated(r.clone())).await.unwrap();
    }
    let failed = tokio::time::timeout(Duration::from_secs(30), a).await.expect("a stops by itself").unwrap();
    let failed = failed.expect_err("a's run fails");
    assert_eq!(failed.task, "snapshot writer");
    assert!(failed.panic.unwrap().message.contains("the first snapshot write panicked"));
    assert!(!memory.live_workers().await.unwrap().contains(&"a".to_string()), "a withdrew");
    eventually(Duration::from_secs(2), "b runs every room again", || holds_all(&memory, "b", &rooms)).await;
    for r in &rooms {
        assert!(memory.load_snapshot(r).await.unwrap().is_some(), "{r} has no snapshot");
    }
    stop.cancel();
    b.await.unwrap().unwrap();
}

/// A room task that panics: the host must hear of it and let the room go,
/// so that it is taken over again (here by the same worker, with a new
/// epoch), rather than renew it forever.
#[tokio::test(start_paused = true)]
async fn a_panicked_room_is_released_and_taken_over() {
    let memory = MemoryBackend::new();
    let backend = Intercepted::new(memory.clone(), PanicOnce::retire());
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
    host.await.unwrap().unwrap();
}

/// Counts the snapshot writes.
#[derive(Clone, Default)]
struct CountSnapshots(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl CountSnapshots {
    fn get(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Hook for CountSnapshots {
    fn before(&self, call: Call<'_>) -> impl Future<Output = Result<(), BusError>> + Send {
        if matches!(call, Call::SaveSnapshot(_)) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        async { Ok(()) }
    }
}

/// The store loses its data (Redis restarted empty) under a quiet room,
/// one nothing happens in, so that it writes no snapshot of its own
/// accord: once the host has taken its lease again, the room's snapshot
/// and the top scores it holds are back in the store.
#[tokio::test(start_paused = true)]
async fn a_room_writes_again_what_the_store_lost() {
    let memory = MemoryBackend::new();
    let counted = CountSnapshots::default();
    let backend = Intercepted::new(memory.clone(), counted.clone());
    let best = vec![
        ScoreEntry { name: "ann".into(), score: 40, colour: 2 },
        ScoreEntry { name: "bob".into(), score: 12, colour: 3 },
    ];
    for s in &best {
        memory.submit_score(s.clone()).await.unwrap();
    }
    let r = room("quiet");
    memory.ensure_room(&r, 10).await.unwrap();
    let mut config = config("host");
    config.room.snapshot_every = Some(Duration::from_millis(500));
    let stop = CancellationToken::new();
    let host = tokio::spawn(Host::new(backend, config, metrics()).run(stop.clone()));
    eventually(Duration::from_secs(10), "the room's first snapshot", || async {
        memory.load_snapshot(&r).await.unwrap().is_some()
    })
    .await;
    let (first, _) = memory.load_snapshot(&r).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(counted.get(), 1, "the room is not quiet");

    memory.lose_data();
    assert_eq!(memory.load_snapshot(&r).await.unwrap(), None);
    eventually(Duration::from_secs(5), "the snapshot is back, under the new lease", || async {
        matches!(memory.load_snapshot(&r).await.unwrap(), Some((epoch, _)) if epoch > first)
    })
    .await;
    eventually(Duration::from_secs(5), "the top scores are back", || async {
        memory.top_scores(10).await.unwrap() == best
    })
    .await;
    stop.cancel();
    host.await.unwrap().unwrap();
}

/// The rooms of each worker, by their lease.
async fn held_by(b: &MemoryBackend, rooms: &[RoomId], worker: &str) -> Vec<RoomId> {
    let holders = b.lease_holders(rooms).await.unwrap();
    rooms.iter().zip(holders).filter(|(_, h)| h.as_deref() == Some(worker)).map(|(r, _)| r.clone()).collect()
}

/// Hosts `a` and `b` sharing `n` rooms named `<prefix>-<i>`, past a lease
/// period of steady presence (so that each judges the other); `a`'s
/// metrics.
async fn a_and_b_share(
    prefix: &str,
    n: usize,
) -> (
    MemoryBackend,
    Vec<RoomId>,
    CancellationToken,
    WorkerMetrics,
    JoinHandle<Result<(), crate::HostFailed>>,
    JoinHandle<Result<(), crate::HostFailed>>,
) {
    let memory = MemoryBackend::new();
    let rooms: Vec<RoomId> = (0..n).map(|i| room(&format!("{prefix}-{i}"))).collect();
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
    tokio::time::sleep(LEASE_TTL).await;
    (memory, rooms, stop, m, a, b)
}

/// A worker whose process dies (here: its host task is dropped, and with it
/// its presence) is found gone within a few polls, and its rooms are taken
/// over at once, long before its leases (3 s) would have run out.
#[tokio::test(start_paused = true)]
async fn a_gone_workers_rooms_are_taken_over_before_its_leases_run_out() {
    let (memory, rooms, stop, m, a, b) = a_and_b_share("fo", 40).await;
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
    a.await.unwrap().unwrap();
}

/// A worker dies and its replacement starts at once (as a new pod would):
/// the replacement never saw the dead worker and cannot judge it, yet
/// rendezvous gives it part of the dead worker's rooms. Those too are taken
/// over long before the dead worker's leases run out: the survivor that
/// finds it gone breaks all its leases and tells every worker.
#[tokio::test(start_paused = true)]
async fn a_replacement_takes_its_share_of_a_gone_workers_rooms_at_once() {
    let (memory, rooms, stop, _, a, b) = a_and_b_share("re", 60).await;
    let orphans = held_by(&memory, &rooms, "b").await;
    let live = ["a".to_string(), "c".to_string()];
    let for_c: Vec<RoomId> = orphans.iter().filter(|r| rendezvous::owner(r, &live) == Some("c")).cloned().collect();
    assert!(!for_c.is_empty(), "rendezvous gives the replacement some of the dead worker's rooms");

    b.abort();
    let died = Instant::now();
    let c = tokio::spawn(Host::new(memory.clone(), config("c"), metrics()).run(stop.clone()));
    eventually(Duration::from_secs(10), "the replacement holds its share", || async {
        held_by(&memory, &for_c, "c").await.len() == for_c.len()
    })
    .await;
    let took = died.elapsed();
    assert!(took < Duration::from_secs(1), "{} rooms reached the replacement after {took:?}", for_c.len());
    assert!(held_by(&memory, &rooms, "b").await.is_empty());
    stop.cancel();
    a.await.unwrap().unwrap();
    c.await.unwrap().unwrap();
}

/// The store restarts (the host's own subscription link breaks) and a live
/// process resubscribes a little later than this host: its absence
/// meanwhile proves nothing, and it is not taken for dead. Here `c` is
/// absent for 200 ms (4 polls) right after the host's link broke.
#[tokio::test(start_paused = true)]
async fn a_link_break_makes_nobody_gone() {
    let memory = MemoryBackend::new();
    memory.heartbeat("c", Duration::from_secs(3600)).await.unwrap();
    let held = memory.be_present("c").await.unwrap();
    let stop = CancellationToken::new();
    let m = metrics();
    let a = tokio::spawn(Host::new(memory.clone(), config("a"), m.clone()).run(stop.clone()));
    // Steady for a lease period, and `c` seen present.
    tokio::time::sleep(LEASE_TTL + Duration::from_millis(500)).await;

    memory.lose_link();
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _held = memory.be_present("c").await.unwrap();
    tokio::time::sleep(LEASE_TTL * 2).await;
    assert_eq!(m.workers_gone.get(), 0, "a live worker was taken for dead after a link break");
    assert!(memory.live_workers().await.unwrap().contains(&"c".to_string()), "c was withdrawn");
    stop.cancel();
    a.await.unwrap().unwrap();
}

/// A burst of new rooms, each with its notice, queued before the host
/// looks (every call to the store takes 5 ms): the notices waiting are
/// answered by one read of the directory, not one each (a read per room
/// made a burst of n rooms cost n reads of a directory of up to n rooms).
#[tokio::test(start_paused = true)]
async fn a_burst_of_new_rooms_costs_a_few_directory_reads() {
    let memory = MemoryBackend::new();
    let backend = slow(memory.clone(), Duration::from_millis(5));
    let host = Host::new(backend.clone(), config("host"), metrics());
    let announced = host.announced();
    let stop = CancellationToken::new();
    let task = tokio::spawn(host.run(stop.clone()));
    announced.cancelled().await;
    // The host subscribed to notices before its first round.
    let before = backend.hook.log().listed;
    let rooms: Vec<RoomId> = (0..200).map(|i| room(&format!("burst-{i}"))).collect();
    for r in &rooms {
        memory.ensure_room(r, 10).await.unwrap();
        memory.publish_notice(Notice::RoomCreated(r.clone())).await.unwrap();
    }
    eventually(Duration::from_secs(10), "every new room claimed", || holds_all(&memory, "host", &rooms)).await;
    let listed = backend.hook.log().listed - before;
    assert!(listed <= 10, "{listed} reads of the directory for 200 new rooms");
    stop.cancel();
    task.await.unwrap().unwrap();
}
