//! The room's rules of time, each at its exact instant on tokio's paused
//! clock over the in-memory backend: the grace period, the presence
//! timeout, retirement, the hold after a takeover, a lost lease, and what
//! becomes of the background writes still under way when a room stops.
//! (Before, these were seen only through sockets, in real seconds.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{config, enter, enter_and_join, last_snapshot, metrics, send, start, stored_snapshot};
use snakepit_bus::intercept::{Call, Hook, Intercepted};
use snakepit_bus::{
    Bus, BusError, ConnId, FrameKind, InputKind, Lease, MemoryBackend, OutFrame, Ownership, PlayerId, RoomId,
    SnapshotSave, Store, Subscription,
};
use snakepit_room_worker::Game;
use snakepit_room_worker::room::{RoomConfig, RoomExit};
use snakepit_room_worker::snapshot::{MemberSnapshot, RoomSnapshot};
use tokio::time::{Instant, sleep_until};

/// Seats a room's players hold in the directory.
async fn seats(backend: &MemoryBackend, room: &RoomId) -> Option<u16> {
    backend.room(room).await.unwrap().map(|r| r.players)
}

/// Waits for the first frame that `is`, and tells when it came.
async fn frame_at(out: &mut Subscription<OutFrame>, is: impl Fn(&OutFrame) -> bool) -> Instant {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(60), out.recv()).await.unwrap().unwrap();
        if is(&frame) {
            return Instant::now();
        }
    }
}

/// A disconnected player's snake stands parked for exactly the grace
/// period, its seat held; then the player is removed and the seat freed.
#[tokio::test(start_paused = true)]
async fn a_disconnected_player_is_removed_when_the_grace_period_ends() {
    let backend = MemoryBackend::new();
    let room = RoomId::parse("grace").unwrap();
    let grace = Duration::from_secs(3);
    let config = RoomConfig { grace, snapshot_every: Some(Duration::from_millis(100)), ..config(10.0) };
    let player = PlayerId::random();
    // The gateway took the player's seat.
    backend.take_seat(Some(&room), player, 10, config.seat_hold).await.unwrap();
    let mut out = backend.subscribe_output(&room).await.unwrap();
    let _room = start(&backend, &room, config, common::lease(&backend, &room, "w").await, None, metrics()).await;
    let conn = ConnId::random();
    for kind in [enter("ann"), InputKind::Join] {
        send(&backend, &room, player, conn, kind).await;
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    send(&backend, &room, player, conn, InputKind::Disconnect).await;
    // The room takes the disconnect in at its next tick, and says so.
    let parked = frame_at(&mut out, |f| matches!(f.kind, FrameKind::Parked { .. })).await;

    sleep_until(parked + grace - Duration::from_millis(1)).await;
    assert_eq!(seats(&backend, &room).await, Some(1), "the seat is held through the grace period");
    sleep_until(parked + grace - Duration::from_millis(100)).await;
    let s = last_snapshot(&backend, &room).await;
    assert!(s.members.iter().any(|m| m.player == player && m.disconnected), "away, still a member");
    assert!(s.game.player(player).is_some_and(|p| p.alive && p.parked), "parked, still alive");

    sleep_until(parked + grace + Duration::from_millis(1)).await;
    assert_eq!(seats(&backend, &room).await, Some(0), "the seat is freed as the grace period ends");
    sleep_until(parked + grace + Duration::from_secs(1)).await;
    let s = last_snapshot(&backend, &room).await;
    assert!(s.members.is_empty(), "removed: {:?}", s.members);
    assert!(s.game.player(player).is_none(), "its snake is gone");
}

/// A member whose gateway sends nothing (no input, no presence) for the
/// presence timeout counts as disconnected from then on: its snake parks,
/// and the grace period runs from there.
#[tokio::test(start_paused = true)]
async fn a_member_whose_gateway_goes_quiet_is_away_after_the_presence_timeout() {
    let backend = MemoryBackend::new();
    let room = RoomId::parse("quiet").unwrap();
    let (silence, grace) = (Duration::from_secs(2), Duration::from_secs(3));
    // Two ticks a second: three steps before it parks, too few to reach a
    // wall from where a snake is born.
    let config =
        RoomConfig { grace, presence_timeout: silence, snapshot_every: Some(Duration::from_millis(50)), ..config(2.0) };
    let player = PlayerId::random();
    backend.take_seat(Some(&room), player, 10, config.seat_hold).await.unwrap();
    let t0 = Instant::now();
    let _room = start(&backend, &room, config, common::lease(&backend, &room, "w").await, None, metrics()).await;
    let conn = ConnId::random();
    for kind in [enter("ann"), InputKind::Join] {
        send(&backend, &room, player, conn, kind).await;
    }
    // Last heard from at t0.
    sleep_until(t0 + silence - Duration::from_millis(50)).await;
    let s = last_snapshot(&backend, &room).await;
    assert!(s.members.iter().any(|m| m.player == player && !m.disconnected), "still present");
    assert!(s.game.player(player).is_some_and(|p| p.alive && !p.parked), "still moving");

    sleep_until(t0 + silence + Duration::from_millis(50)).await;
    let s = last_snapshot(&backend, &room).await;
    assert!(s.members.iter().any(|m| m.player == player && m.disconnected), "away once its gateway went quiet");
    assert!(s.game.player(player).is_some_and(|p| p.alive && p.parked), "parked");

    // Then the grace period, from the moment it went quiet.
    sleep_until(t0 + silence + grace - Duration::from_millis(1)).await;
    assert_eq!(seats(&backend, &room).await, Some(1), "within the grace period");
    sleep_until(t0 + silence + grace + Duration::from_millis(1)).await;
    assert_eq!(seats(&backend, &room).await, Some(0), "removed when the grace period ends");
}

/// An empty room retires after `empty_ttl`, not before: its task ends with
/// `Retired` and the directory no longer lists it.
#[tokio::test(start_paused = true)]
async fn an_empty_room_retires_after_empty_ttl() {
    let backend = MemoryBackend::new();
    let room = RoomId::parse("empty").unwrap();
    backend.ensure_room(&room, 10).await.unwrap();
    let ttl = Duration::from_secs(10);
    let t0 = Instant::now();
    let r = start(&backend, &room, RoomConfig { empty_ttl: ttl, ..config(10.0) }, lease(&room), None, metrics()).await;

    sleep_until(t0 + ttl - Duration::from_millis(1)).await;
    assert!(!r.task.is_finished(), "retired before its time");
    assert!(backend.room(&room).await.unwrap().is_some());
    sleep_until(t0 + ttl + Duration::from_millis(1)).await;
    assert!(r.task.is_finished(), "still running past empty_ttl");
    assert_eq!(r.task.await.unwrap(), RoomExit::Retired);
    assert_eq!(backend.room(&room).await.unwrap(), None, "still in the directory");
    assert!(backend.rooms(10).await.unwrap().is_empty());
}

/// A room the directory holds a seat in (a player on the way) does not
/// retire, however long it stays empty; once the seat has expired it
/// retires after a whole `empty_ttl` more.
#[tokio::test(start_paused = true)]
async fn an_empty_room_does_not_retire_while_a_seat_is_held() {
    let backend = MemoryBackend::new();
    let room = RoomId::parse("awaited").unwrap();
    let (ttl, hold) = (Duration::from_secs(10), Duration::from_secs(30));
    let t0 = Instant::now();
    backend.take_seat(Some(&room), PlayerId(5), 10, hold).await.unwrap();
    let r = start(&backend, &room, RoomConfig { empty_ttl: ttl, ..config(10.0) }, lease(&room), None, metrics()).await;

    // Tried at 10 s and at 21 s: the seat is taken, and the wait starts
    // over at the next housekeeping.
    sleep_until(t0 + hold).await;
    assert!(!r.task.is_finished(), "retired while the directory held a seat");
    assert_eq!(seats(&backend, &room).await, Some(0), "the seat expired");
    // Tried again at 32 s: the seat has expired.
    sleep_until(t0 + Duration::from_secs(32) - Duration::from_millis(1)).await;
    assert!(!r.task.is_finished());
    sleep_until(t0 + Duration::from_secs(32) + Duration::from_millis(1)).await;
    assert!(r.task.is_finished(), "still running, empty and without a seat");
    assert_eq!(r.task.await.unwrap(), RoomExit::Retired);
    assert_eq!(backend.room(&room).await.unwrap(), None);
}

/// A lease nobody checks (these rooms write no snapshot).
fn lease(room: &RoomId) -> snakepit_bus::Lease {
    snakepit_bus::Lease { room: room.clone(), worker: "w".into(), epoch: 1 }
}

/// A snapshot of a game that ann plays (her snake joined, not yet born).
fn playing(player: PlayerId, conn: ConnId) -> RoomSnapshot {
    let mut game = Game::new(config(10.0).settings, 7);
    assert!(game.add_player(player, "ann".into()));
    game.join(player).unwrap();
    RoomSnapshot { game, members: vec![MemberSnapshot { player, conn, is_player: true, disconnected: false, key: 0 }] }
}

/// The first step a taken-over room publishes, and when.
async fn first_step(out: &mut Subscription<OutFrame>, from: u64) -> Instant {
    frame_at(out, |f| f.kind == FrameKind::Tick && f.tick > from).await
}

/// A room taken over from a snapshot with a player holds its world still
/// until that player's gateway has entered again, or for a second at most.
#[tokio::test(start_paused = true)]
async fn a_taken_over_room_holds_its_world_until_its_players_are_back_or_a_second() {
    let backend = MemoryBackend::new();
    let (player, conn) = (PlayerId::random(), ConnId::random());

    // Nobody's gateway enters: the world moves at 1 s, not before.
    let room = RoomId::parse("held").unwrap();
    let mut out = backend.subscribe_output(&room).await.unwrap();
    let t0 = Instant::now();
    let _held = start(&backend, &room, config(10.0), lease(&room), Some(playing(player, conn)), metrics()).await;
    assert_eq!(first_step(&mut out, 0).await - t0, Duration::from_secs(1), "held for a second");

    // Ann's gateway resynchronises her at 250 ms: the world moves at the
    // next tick.
    let room = RoomId::parse("resumed").unwrap();
    let mut out = backend.subscribe_output(&room).await.unwrap();
    let t0 = Instant::now();
    let _resumed = start(&backend, &room, config(10.0), lease(&room), Some(playing(player, conn)), metrics()).await;
    sleep_until(t0 + Duration::from_millis(250)).await;
    let resync = InputKind::Enter { name: Some("ann".into()), resync: true, key: 0, gateway: None };
    send(&backend, &room, player, conn, resync).await;
    assert_eq!(first_step(&mut out, 0).await - t0, Duration::from_millis(300), "released by her return");
}

/// Makes snapshot writes or score submissions take a while (the delay is
/// read as each call begins), and counts the calls begun. A snapshot is
/// written as its call begins and answered after the delay, as a request
/// sent to a slow store; or, `sent_late`, written after it, as one held up
/// on its way (waiting for a reconnect, retried by a cluster client). A
/// score is sent after the delay.
#[derive(Clone, Default)]
struct Slow {
    snapshot_delay: Arc<Mutex<Duration>>,
    score_delay: Arc<Mutex<Duration>>,
    snapshots: Arc<AtomicUsize>,
    scores: Arc<AtomicUsize>,
    /// When each snapshot write began.
    snapshot_times: Arc<Mutex<Vec<Instant>>>,
    /// The delay of each room's snapshot under way, read as it began.
    answers: Arc<Mutex<std::collections::HashMap<RoomId, Duration>>>,
    sent_late: Arc<std::sync::atomic::AtomicBool>,
}

impl Slow {
    fn snapshots_take(&self, delay: Duration) {
        *self.snapshot_delay.lock().unwrap() = delay;
    }

    /// Waits (on the paused clock, 10 s at most) until a call counted by
    /// `begun` starts.
    async fn next_call(begun: &AtomicUsize) {
        let before = begun.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while begun.load(Ordering::SeqCst) == before {
            assert!(Instant::now() < deadline, "no call began");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Hook for Slow {
    fn before(&self, call: Call<'_>) -> impl Future<Output = Result<(), BusError>> + Send {
        let delay = match call {
            Call::SaveSnapshot(lease) => {
                self.snapshots.fetch_add(1, Ordering::SeqCst);
                self.snapshot_times.lock().unwrap().push(Instant::now());
                let delay = *self.snapshot_delay.lock().unwrap();
                if self.sent_late.load(Ordering::SeqCst) {
                    delay
                } else {
                    self.answers.lock().unwrap().insert(lease.room.clone(), delay);
                    Duration::ZERO
                }
            }
            Call::SubmitScore(_) => {
                self.scores.fetch_add(1, Ordering::SeqCst);
                *self.score_delay.lock().unwrap()
            }
            _ => Duration::ZERO,
        };
        async move {
            tokio::time::sleep(delay).await;
            Ok(())
        }
    }

    fn answered(&self, lease: &Lease) -> impl Future<Output = ()> + Send {
        let delay = self.answers.lock().unwrap().remove(&lease.room).unwrap_or_default();
        tokio::time::sleep(delay)
    }
}

/// A room writing a snapshot every second over a backend whose snapshot
/// writes can be slowed down; the memory underneath, for a look. Its one
/// snake stands parked (its player away, with a long grace), so that the
/// world ticks on with nothing to die of.
async fn snapshotting(name: &str) -> (MemoryBackend, Slow, RoomId, common::Running) {
    let memory = MemoryBackend::new();
    let slow = Slow::default();
    let backend = Intercepted::new(memory.clone(), slow.clone());
    let room = RoomId::parse(name).unwrap();
    let config =
        RoomConfig { grace: Duration::from_secs(600), snapshot_every: Some(Duration::from_secs(1)), ..config(10.0) };
    let lease = common::lease(&memory, &room, "w").await;
    let running = start(&backend, &room, config, lease, None, metrics()).await;
    let (player, conn) = enter_and_join(&memory, &room).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    send(&memory, &room, player, conn, InputKind::Disconnect).await;
    // Snapshots at 0.1 s (the birth's) and 1.1 s, written at once.
    tokio::time::sleep(Duration::from_millis(1250)).await;
    (memory, slow, room, running)
}

/// The tick of the room's snapshot in the store.
async fn stored_tick(backend: &MemoryBackend, room: &RoomId) -> u64 {
    last_snapshot(backend, room).await.game.tick()
}

/// Cancelling `lost` stops the room at once, without waiting on the store
/// (here a snapshot's answer, 1 s away), and nothing lands afterwards.
#[tokio::test(start_paused = true)]
async fn a_lost_lease_stops_the_room_at_once_and_nothing_lands_after() {
    let (memory, slow, room, running) = snapshotting("lost").await;
    slow.snapshots_take(Duration::from_secs(1));
    Slow::next_call(&slow.snapshots).await;
    let saved = stored_tick(&memory, &room).await;

    let lost_at = Instant::now();
    running.control.lost.cancel();
    assert_eq!(running.task.await.unwrap(), RoomExit::LeaseLost);
    assert_eq!(Instant::now(), lost_at, "stopped at once");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(stored_tick(&memory, &room).await, saved, "a snapshot landed after the lease was lost");
}

/// A snapshot held up on its way (sent late) while the room moves to
/// another worker, which writes its own: the room stops when its lease is
/// lost, and its late snapshot, landing after, is refused by the lease:
/// the new owner's snapshot stays.
#[tokio::test(start_paused = true)]
async fn a_snapshot_held_up_on_its_way_never_lands_over_the_new_owners() {
    let (memory, slow, room, running) = snapshotting("moved").await;
    slow.sent_late.store(true, Ordering::SeqCst);
    slow.snapshots_take(Duration::from_secs(1));
    Slow::next_call(&slow.snapshots).await;
    let old = running.lease.borrow().clone();
    memory.release_lease(&old).await.unwrap();
    let new = common::lease(&memory, &room, "w2").await;
    let (_, data) = memory.load_snapshot(&room).await.unwrap().unwrap();
    memory.save_snapshot(SnapshotSave { lease: new.clone(), seq: 1, data: data.clone() }).await.unwrap();
    running.control.lost.cancel();
    assert_eq!(running.task.await.unwrap(), RoomExit::LeaseLost);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(memory.load_snapshot(&room).await.unwrap(), Some((new.epoch, data)), "the late snapshot landed");
}

/// A snapshot refused because a newer epoch holds the room stops the room,
/// at the first snapshot after the takeover, and its successor's snapshot
/// stays as it wrote it.
#[tokio::test(start_paused = true)]
async fn a_snapshot_refused_by_a_newer_epoch_stops_the_room() {
    let backend = MemoryBackend::new();
    let room = RoomId::parse("fenced").unwrap();
    // The snake stands parked (its player away, a long grace): the world
    // ticks on, so every second has changes to write.
    let config =
        RoomConfig { grace: Duration::from_secs(600), snapshot_every: Some(Duration::from_secs(1)), ..config(10.0) };
    let old = common::lease(&backend, &room, "w1").await;
    let t0 = Instant::now();
    let r = start(&backend, &room, config, old.clone(), None, metrics()).await;
    let (player, conn) = enter_and_join(&backend, &room).await;
    sleep_until(t0 + Duration::from_millis(250)).await;
    send(&backend, &room, player, conn, InputKind::Disconnect).await;
    sleep_until(t0 + Duration::from_millis(1500)).await;
    // The lease moves to w2 (w1's expired unseen), which writes its own.
    backend.release_lease(&old).await.unwrap();
    let new = common::lease(&backend, &room, "w2").await;
    assert!(new.epoch > old.epoch);
    let (_, data) = backend.load_snapshot(&room).await.unwrap().unwrap();
    backend.save_snapshot(SnapshotSave { lease: new.clone(), seq: 1, data: data.clone() }).await.unwrap();

    // The room learns it at its next snapshot, at 2.1 s (the birth's, at
    // the first tick, set the beat), and stops at its next tick.
    sleep_until(t0 + Duration::from_millis(2100) + Duration::from_millis(1)).await;
    assert!(!r.task.is_finished(), "nothing told it yet");
    sleep_until(t0 + Duration::from_millis(2200) + Duration::from_millis(1)).await;
    assert!(r.task.is_finished(), "still running a tick after its snapshot was refused");
    assert_eq!(r.task.await.unwrap(), RoomExit::LeaseLost);
    assert_eq!(backend.load_snapshot(&room).await.unwrap(), Some((new.epoch, data)), "w2's snapshot is untouched");
}

/// A background snapshot still under way at a hand-over, slower than the
/// final one, cannot land after it: the snapshot left in the store is the
/// final one (the tick the room stopped at). Either way: the background
/// one answers within the wait (1 s), or does not and is given up (10 s);
/// and whether it was written at once and answered late, or held up on
/// its way and written late (the store then refuses it as outdated: the
/// case of 10 s sent late is the one that needs that fence; given up after
/// 3 s, it lands after the final one).
#[tokio::test(start_paused = true)]
async fn a_slow_background_snapshot_never_lands_after_the_final_one() {
    for (delay, sent_late) in [(1, false), (10, false), (1, true), (10, true)] {
        let delay = Duration::from_secs(delay);
        let (memory, slow, room, running) = snapshotting("late").await;
        slow.sent_late.store(sent_late, Ordering::SeqCst);
        let mut out = memory.subscribe_output(&room).await.unwrap();
        slow.snapshots_take(delay);
        Slow::next_call(&slow.snapshots).await;
        // The world moves on a few ticks; then the final snapshot, fast.
        tokio::time::sleep(Duration::from_millis(500)).await;
        slow.snapshots_take(Duration::ZERO);
        running.control.shutdown.cancel();
        assert_eq!(running.task.await.unwrap(), RoomExit::HandedOver);
        let last = common::frames_within(&mut out, Duration::from_millis(10)).await;
        let last = last.iter().map(|f| f.tick).max().expect("ticks published");

        tokio::time::sleep(delay * 2).await;
        let (_, snapshot) = stored_snapshot(&memory, &room).await.unwrap();
        assert_eq!(
            snapshot.game.tick(),
            last,
            "an older snapshot landed after the final one ({delay:?}, sent late: {sent_late})"
        );
    }
}

/// Top scores sent just before the room stops are not lost with it: the
/// room's task ends only once they are in the store, also when it stops
/// for a lost lease (the lease does not fence scores).
#[tokio::test(start_paused = true)]
async fn scores_under_way_are_written_before_the_room_stops() {
    let memory = MemoryBackend::new();
    let slow = Slow::default();
    *slow.score_delay.lock().unwrap() = Duration::from_millis(500);
    let backend = Intercepted::new(memory.clone(), slow.clone());
    let room = RoomId::parse("scores").unwrap();
    // Ann plays with 50 points (taken over from a snapshot).
    let (player, conn) = (PlayerId::random(), ConnId::random());
    let mut value = serde_json::to_value(playing(player, conn)).unwrap();
    value["game"]["players"][0]["score"] = serde_json::json!(50);
    let snapshot: RoomSnapshot = serde_json::from_value(value).unwrap();
    let running = start(&backend, &room, config(10.0), lease(&room), Some(snapshot), metrics()).await;
    send(
        &memory,
        &room,
        player,
        conn,
        InputKind::Enter { name: Some("ann".into()), resync: true, key: 0, gateway: None },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    // She leaves: the game ends, and its scores go to the store.
    send(&memory, &room, player, conn, InputKind::Leave).await;
    Slow::next_call(&slow.scores).await;

    running.control.lost.cancel();
    assert_eq!(running.task.await.unwrap(), RoomExit::LeaseLost);
    let scores = memory.top_scores(10).await.unwrap();
    assert!(scores.iter().any(|s| s.name == "ann" && s.score == 50), "ann's score was lost: {scores:?}");
}

/// Over a slow store, background snapshots go one at a time (two under way
/// could land out of order), and the changes meanwhile are written by the
/// next one.
#[tokio::test(start_paused = true)]
async fn background_snapshots_go_one_at_a_time() {
    let (memory, slow, room, running) = snapshotting("one-at-a-time").await;
    slow.snapshots_take(Duration::from_millis(3500));
    let begun = slow.snapshots.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = slow.snapshots.load(Ordering::SeqCst) - begun;
    assert!((2..=4).contains(&during), "{during} snapshots begun in 10 s, each taking 3.5 s");
    slow.snapshots_take(Duration::ZERO);
    tokio::time::sleep(Duration::from_secs(5)).await;
    // 16.5 s of ticks at 10 a second by now: the last second's are stored.
    let tick = stored_tick(&memory, &room).await;
    assert!(tick >= 150, "the latest changes were saved (tick {tick})");
    running.control.shutdown.cancel();
    running.task.await.unwrap();
}

/// A birth (like a score or a death) would be undone if the process died
/// before the next snapshot, and the player would see it: it is written at
/// once, not at the next interval. Here the snapshot interval is 1 s and
/// the player joins at 1.5 s; her snake is in the store one tick later.
#[tokio::test(start_paused = true)]
async fn a_birth_is_in_the_store_within_a_tick_not_at_the_next_interval() {
    let backend = MemoryBackend::new();
    let room = RoomId::parse("urgent").unwrap();
    let config = RoomConfig { snapshot_every: Some(Duration::from_secs(1)), ..config(10.0) };
    let lease = common::lease(&backend, &room, "w").await;
    let t0 = Instant::now();
    let running = start(&backend, &room, config, lease, None, metrics()).await;
    let (player, conn) = (PlayerId::random(), ConnId::random());
    send(&backend, &room, player, conn, enter("ann")).await;
    sleep_until(t0 + Duration::from_millis(1500)).await;
    send(&backend, &room, player, conn, InputKind::Join).await;
    sleep_until(t0 + Duration::from_millis(1650)).await;
    let snapshot = last_snapshot(&backend, &room).await;
    let alive = snapshot.game.players().iter().any(|p| p.id == player && p.alive);
    assert!(alive, "the birth waits for the next interval (stored tick {})", snapshot.game.tick());
    running.control.shutdown.cancel();
    running.task.await.unwrap();
}

/// A gateway found gone parks its members' snakes at once; should the
/// verdict be withdrawn (the gateway is present again: only its link had
/// broken), they move on at once, long before their grace period ends,
/// without waiting for the gateway's next presence note.
#[tokio::test(start_paused = true)]
async fn a_gone_gateways_snakes_park_at_once_and_a_withdrawn_verdict_frees_them() {
    let backend = MemoryBackend::new();
    let room = RoomId::parse("verdict").unwrap();
    let config = RoomConfig { snapshot_every: Some(Duration::from_millis(100)), ..config(10.0) };
    let lease = common::lease(&backend, &room, "w").await;
    let running = start(&backend, &room, config, lease, None, metrics()).await;
    let (player, conn) = (PlayerId::random(), ConnId::random());
    let gateway = "gateway-x".to_string();
    let enter = InputKind::Enter { name: Some("ann".into()), resync: false, key: 0, gateway: Some(gateway.clone()) };
    send(&backend, &room, player, conn, enter).await;
    send(&backend, &room, player, conn, InputKind::Join).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let parked = |s: &RoomSnapshot| s.game.player(player).map(|p| p.parked);
    assert_eq!(parked(&last_snapshot(&backend, &room).await), Some(false));
    assert_eq!(running.gateways.in_use(), std::slice::from_ref(&gateway), "the room tells which gateways it uses");

    running.gateways.set_gone([gateway.clone()].into());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let at_verdict = last_snapshot(&backend, &room).await;
    assert_eq!(parked(&at_verdict), Some(true), "parked at the verdict");

    running.gateways.set_gone(Default::default());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let after = last_snapshot(&backend, &room).await;
    assert_eq!(parked(&after), Some(false), "still parked after the verdict was withdrawn");
    assert_ne!(
        after.game.player(player).map(|p| p.snake.clone()),
        at_verdict.game.player(player).map(|p| p.snake.clone())
    );
    running.control.shutdown.cancel();
    running.task.await.unwrap();
}

/// Redis lost the room's lease and the host took it again (a higher epoch,
/// still this worker's) while a snapshot written under the old one was
/// under way: that write is refused, yet the room is still this worker's
/// and goes on, and its next snapshot lands under the new lease. (Before,
/// the refusal stopped the room as if another worker had taken it: four
/// rooms in a chaos run's Redis restart.)
#[tokio::test(start_paused = true)]
async fn a_snapshot_refused_under_our_own_older_lease_does_not_stop_the_room() {
    let (memory, slow, room, running) = snapshotting("retaken").await;
    slow.snapshots_take(Duration::from_millis(500));
    Slow::next_call(&slow.snapshots).await;
    // Under way now, with the old lease. The lease vanishes and is taken
    // again above the old epoch, as the host does.
    let old = running.lease.borrow().clone();
    memory.release_lease(&old).await.unwrap();
    let new = memory.acquire_lease(&room, "w", Duration::from_secs(3600), old.epoch).await.unwrap().unwrap();
    assert!(new.epoch > old.epoch);
    running.lease.send_replace(new.clone());
    slow.snapshots_take(Duration::ZERO);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!running.task.is_finished(), "the room stopped over its own older lease");
    let (epoch, _) = stored_snapshot(&memory, &room).await.unwrap();
    assert_eq!(epoch, new.epoch, "the next snapshot lands under the new lease");
    running.control.shutdown.cancel();
    assert_eq!(running.task.await.unwrap(), RoomExit::HandedOver);
}

/// A room task that ends abruptly (its supervisor drops it after a panic,
/// or it is aborted) gives back its count of the gateways its members were
/// on: the host does not poll them for ever (and later find them "gone").
#[tokio::test(start_paused = true)]
async fn a_room_dropped_abruptly_gives_its_gateways_back() {
    let backend = MemoryBackend::new();
    let room = RoomId::parse("dropped").unwrap();
    let lease = common::lease(&backend, &room, "w").await;
    let running = start(&backend, &room, config(10.0), lease, None, metrics()).await;
    let enter = InputKind::Enter { name: Some("ann".into()), resync: false, key: 0, gateway: Some("gateway-a".into()) };
    send(&backend, &room, PlayerId::random(), ConnId::random(), enter).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(running.gateways.in_use(), ["gateway-a"]);
    running.task.abort();
    let _ = running.task.await;
    assert!(running.gateways.in_use().is_empty(), "still polled after the room is gone");
}

/// A snapshot that could not wait for the interval (here the birth's, a
/// tick after the join) moves the next one an interval after it: the
/// interval's beat would write the same changes again within a second.
#[tokio::test(start_paused = true)]
async fn a_snapshot_out_of_turn_moves_the_next_one_an_interval_on() {
    let t0 = Instant::now();
    let (_memory, slow, _room, _running) = snapshotting("moved").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let times: Vec<Duration> = slow.snapshot_times.lock().unwrap().iter().map(|t| *t - t0).collect();
    assert!(times.len() >= 4, "{times:?}");
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_secs(1), "snapshots less than an interval apart: {times:?}");
        // Never older than the interval, give or take the tick it waits for.
        assert!(pair[1] - pair[0] <= Duration::from_millis(1100), "a snapshot came late: {times:?}");
    }
}
