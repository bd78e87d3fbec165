//! The behaviour every backend must show, as async checks that a test runs
//! against a fresh backend: the in-memory one here, Redis in its own tests.
//! One suite, so the Redis backend is a drop-in for the in-memory one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;

use crate::backend::{Backend, Lease, LeaseState, ScoreEntry, Seat, Session, SnapshotSave, SnapshotWrite};
use crate::envelope::{ConnId, FrameKind, InputKind, Notice, OutFrame, RoomInput};
use crate::handler::Handler;
use snakepit_protocol::client::Direction;
use snakepit_protocol::ids::{PlayerId, RoomId};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(2);

fn room(s: &str) -> RoomId {
    RoomId::parse(s).unwrap()
}

async fn recv<T>(sub: &mut crate::Subscription<T>) -> T {
    tokio::time::timeout(WAIT, sub.recv()).await.expect("message in time").expect("subscription open")
}

/// Inputs and frames reach every subscriber of their room, in order, and
/// only theirs; a publish with no subscriber is lost.
pub async fn pubsub_delivers_in_order_per_room<B: Backend>(b: B) {
    let (r1, r2) = (room("c-pub-1"), room("c-pub-2"));
    let lost = RoomInput { player: PlayerId::random(), conn: ConnId::random(), kind: InputKind::Join };
    assert_eq!(b.publish_input(&r1, lost).await.unwrap(), 0);

    let mut in1 = b.subscribe_input(&r1).await.unwrap();
    let mut out1a = b.subscribe_output(&r1).await.unwrap();
    let mut out1b = b.subscribe_output(&r1).await.unwrap();
    let mut out2 = b.subscribe_output(&r2).await.unwrap();

    let player = PlayerId::random();
    let conn = ConnId::random();
    let inputs = [
        InputKind::Enter { name: Some("ann".into()), resync: false, key: 0, gateway: None },
        InputKind::Turn(Direction::Up),
        InputKind::Join,
        InputKind::Disconnect,
        InputKind::Leave,
    ];
    for kind in inputs.clone() {
        assert_eq!(b.publish_input(&r1, RoomInput { player, conn, kind }).await.unwrap(), 1);
    }
    for kind in inputs {
        assert_eq!(recv(&mut in1).await, RoomInput { player, conn, kind });
    }

    for tick in 1..=50u64 {
        let kind = if tick == 3 { FrameKind::Welcome(player) } else { FrameKind::Tick };
        let frame = OutFrame { epoch: 7, tick, kind, payload: Bytes::from(format!("[[\"tick\",{tick}]]")) };
        assert!(b.publish_output(&r1, frame).await.unwrap() >= 1);
    }
    for sub in [&mut out1a, &mut out1b] {
        for tick in 1..=50u64 {
            let f = recv(sub).await;
            assert_eq!((f.epoch, f.tick), (7, tick));
            assert_eq!(f.payload, Bytes::from(format!("[[\"tick\",{tick}]]")));
            assert_eq!(f.kind == FrameKind::Welcome(player), tick == 3);
        }
    }
    let other = tokio::time::timeout(Duration::from_millis(200), out2.recv()).await;
    assert!(other.is_err(), "a frame leaked into another room");
}

/// Dropping a subscription unsubscribes.
pub async fn dropped_subscriptions_receive_nothing<B: Backend>(b: B) {
    let r = room("c-drop");
    let sub = b.subscribe_output(&r).await.unwrap();
    drop(sub);
    let frame = OutFrame { epoch: 1, tick: 1, kind: FrameKind::Tick, payload: Bytes::from_static(b"[]") };
    // Unsubscribing may take a moment on a remote backend.
    for _ in 0..50 {
        if b.publish_output(&r, frame.clone()).await.unwrap() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("still subscribed after drop");
}

/// A handler takes its room's frames in order, beside a queued subscriber
/// of the same room and never another room's; once its subscriber stops
/// it, it takes nothing more, the bus lets go of it (`ended`), and the
/// room's channel is unsubscribed.
pub async fn handlers_take_frames_until_stopped<B: Backend>(b: B) {
    let (r, other) = (room("c-handler"), room("c-handler-other"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let (handler, ended) = Handler::new(
        move |f: OutFrame| {
            let _ = tx.send((f.epoch, f.tick, f.payload));
        },
        stop.clone(),
    );
    b.subscribe_output_with(&r, handler).await.unwrap();
    let mut queued = b.subscribe_output(&r).await.unwrap();
    let (tx_other, mut rx_other) = tokio::sync::mpsc::unbounded_channel();
    let (handler, _) = Handler::new(
        move |f: OutFrame| {
            let _ = tx_other.send(f.tick);
        },
        CancellationToken::new(),
    );
    b.subscribe_output_with(&other, handler).await.unwrap();

    let frame =
        |tick: u64| OutFrame { epoch: 3, tick, kind: FrameKind::Tick, payload: Bytes::from(format!("[{tick}]")) };
    for tick in 1..=50 {
        assert!(b.publish_output(&r, frame(tick)).await.unwrap() >= 1);
    }
    for tick in 1..=50 {
        let got = tokio::time::timeout(WAIT, rx.recv()).await.expect("frame in time").expect("handler alive");
        assert_eq!(got, (3, tick, Bytes::from(format!("[{tick}]"))));
        assert_eq!(recv(&mut queued).await.tick, tick);
    }
    assert!(rx_other.try_recv().is_err(), "a frame reached another room's handler");

    stop.cancel();
    drop(queued);
    for _ in 0..100 {
        if b.publish_output(&r, frame(51)).await.unwrap() == 0 && ended.is_cancelled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ended.is_cancelled(), "the bus kept a stopped handler");
    assert_eq!(b.publish_output(&r, frame(52)).await.unwrap(), 0, "still subscribed after the handler stopped");
    assert!(rx.try_recv().is_err(), "a stopped handler took a frame");
}

pub async fn notices_reach_subscribers<B: Backend>(b: B) {
    let mut sub = b.subscribe_notices().await.unwrap();
    b.publish_notice(Notice::RoomCreated(room("c-notice"))).await.unwrap();
    assert_eq!(recv(&mut sub).await, Notice::RoomCreated(room("c-notice")));
}

const HOLD: Duration = Duration::from_secs(30);

/// Seats: the fullest room with a free seat, a new room when all are full,
/// named rooms created on demand and refused when full, release and retire.
pub async fn directory_matchmakes_without_overbooking<B: Backend>(b: B) {
    let p = || PlayerId::random();
    let Seat::Taken { room: a, created: true } = b.take_seat(None, p(), 2, HOLD).await.unwrap() else { panic!() };
    assert_eq!(b.take_seat(None, p(), 2, HOLD).await.unwrap(), Seat::Taken { room: a.clone(), created: false });
    let Seat::Taken { room: c, created: true } = b.take_seat(None, p(), 2, HOLD).await.unwrap() else { panic!() };
    assert_ne!(a, c);
    assert_eq!(b.take_seat(Some(&a), p(), 2, HOLD).await.unwrap(), Seat::Full);
    let named = room("c-named");
    let ann = p();
    assert_eq!(
        b.take_seat(Some(&named), ann, 3, HOLD).await.unwrap(),
        Seat::Taken { room: named.clone(), created: true }
    );
    // A player's own seat is never counted twice.
    assert_eq!(
        b.take_seat(Some(&named), ann, 3, HOLD).await.unwrap(),
        Seat::Taken { room: named.clone(), created: false }
    );
    let info = b.room(&named).await.unwrap().unwrap();
    assert_eq!((info.players, info.capacity), (1, 3));
    // Fullest first: a (2/2) is full, so c (1/2) and named (1/3) remain;
    // the listing is by seats taken, fullest first, and bounded.
    let rooms = b.rooms(100).await.unwrap();
    assert_eq!(rooms.first().map(|r| r.id.clone()), Some(a.clone()));
    assert_eq!(rooms.len(), 3);
    assert_eq!(b.rooms(1).await.unwrap().len(), 1);

    assert!(!b.retire_room_if_empty(&named).await.unwrap());
    b.release_seat(&named, p()).await.unwrap();
    assert!(!b.retire_room_if_empty(&named).await.unwrap(), "someone else's release frees nothing");
    b.release_seat(&named, ann).await.unwrap();
    assert!(b.retire_room_if_empty(&named).await.unwrap());
    assert_eq!(b.room(&named).await.unwrap(), None);
    // A running room is put back with no seat, once.
    b.ensure_room(&named, 3).await.unwrap();
    b.ensure_room(&named, 3).await.unwrap();
    let info = b.room(&named).await.unwrap().unwrap();
    assert_eq!((info.players, info.capacity), (0, 3));
    assert!(b.retire_room_if_empty(&named).await.unwrap());
    // Releasing twice frees one seat.
    let Seat::Taken { room: d, .. } = b.take_seat(Some(&room("c-twice")), ann, 2, HOLD).await.unwrap() else {
        panic!()
    };
    b.take_seat(Some(&d), p(), 2, HOLD).await.unwrap();
    b.release_seat(&d, ann).await.unwrap();
    b.release_seat(&d, ann).await.unwrap();
    assert_eq!(b.room(&d).await.unwrap().unwrap().players, 1);
}

/// A player who holds a seat in a full room takes it again (a resume), and
/// is counted once.
pub async fn a_players_own_seat_is_never_full<B: Backend>(b: B) {
    let r = room("c-own");
    let (ann, bob) = (PlayerId::random(), PlayerId::random());
    b.take_seat(Some(&r), ann, 2, HOLD).await.unwrap();
    b.take_seat(Some(&r), bob, 2, HOLD).await.unwrap();
    assert_eq!(b.take_seat(Some(&r), PlayerId::random(), 2, HOLD).await.unwrap(), Seat::Full);
    assert_eq!(b.take_seat(Some(&r), ann, 2, HOLD).await.unwrap(), Seat::Taken { room: r.clone(), created: false });
    assert_eq!(b.room(&r).await.unwrap().unwrap().players, 2);
}

/// Matchmaking goes by each room's own capacity, not the caller's.
pub async fn matchmaking_uses_the_rooms_capacity<B: Backend>(b: B) {
    let big = room("c-big");
    b.take_seat(Some(&big), PlayerId::random(), 20, HOLD).await.unwrap();
    for _ in 0..11 {
        b.take_seat(Some(&big), PlayerId::random(), 20, HOLD).await.unwrap();
    }
    // 12 of 20 taken: a caller whose rooms have 10 seats still lands there.
    let seat = b.take_seat(None, PlayerId::random(), 10, HOLD).await.unwrap();
    assert_eq!(seat, Seat::Taken { room: big.clone(), created: false });
    let small = room("c-small");
    b.take_seat(Some(&small), PlayerId::random(), 1, HOLD).await.unwrap();
    // A full small room is passed over even by a caller with more seats.
    let Seat::Taken { room, .. } = b.take_seat(None, PlayerId::random(), 5, HOLD).await.unwrap() else { panic!() };
    assert_ne!(room, small);
}

/// Seats converge to the room's real players: a seat nobody confirms comes
/// free when its hold runs out (its player never arrived, its gateway died,
/// its release was lost); a confirmed one stays; a confirm puts back a seat
/// that had expired.
pub async fn seats_expire_unless_the_room_confirms_them<B: Backend>(b: B) {
    let r = room("c-seats");
    let (ann, bob, cy) = (PlayerId::random(), PlayerId::random(), PlayerId::random());
    let short = Duration::from_millis(300);
    b.take_seat(Some(&r), ann, 2, short).await.unwrap();
    b.take_seat(Some(&r), bob, 2, short).await.unwrap();
    assert_eq!(b.take_seat(Some(&r), cy, 2, short).await.unwrap(), Seat::Full);
    b.confirm_seats(&r, &[ann], ann, Duration::from_secs(5)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // bob's hold ran out: one seat taken, one free.
    assert_eq!(b.room(&r).await.unwrap().unwrap().players, 1);
    assert_eq!(b.take_seat(Some(&r), cy, 2, short).await.unwrap(), Seat::Taken { room: r.clone(), created: false });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.rooms(10).await.unwrap()[0].players, 1);
    // The room still has bob after all: its confirm counts him again.
    b.confirm_seats(&r, &[ann, bob], ann.max(bob), Duration::from_secs(5)).await.unwrap();
    assert_eq!(b.room(&r).await.unwrap().unwrap().players, 2);
    // A room missing from the directory is not put back by a confirm.
    let gone = room("c-seats-gone");
    b.confirm_seats(&gone, &[ann], ann, Duration::from_secs(5)).await.unwrap();
    assert_eq!(b.room(&gone).await.unwrap(), None);
}

/// Many concurrent seat requests never exceed a room's capacity.
pub async fn concurrent_seats_never_overbook<B: Backend>(b: B) {
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move { b.take_seat(None, PlayerId::random(), 10, HOLD).await.unwrap() }));
    }
    let mut per_room = std::collections::HashMap::new();
    for t in tasks {
        let Seat::Taken { room, .. } = t.await.unwrap() else { panic!("matchmaking never says full") };
        *per_room.entry(room).or_insert(0) += 1;
    }
    assert_eq!(per_room.len(), 4, "40 players fill exactly 4 rooms of 10: {per_room:?}");
    assert!(per_room.values().all(|n| *n == 10));
    for info in b.rooms(100).await.unwrap() {
        assert!(info.players <= info.capacity);
    }
}

pub async fn sessions_expire<B: Backend>(b: B) {
    let s = Session { player: PlayerId::random(), name: "ann".into(), room: room("c-s"), key: 7 };
    b.put_session("0123456789abcdef0123456789abcdef", &s, Duration::from_millis(300)).await.unwrap();
    assert_eq!(b.session("0123456789abcdef0123456789abcdef").await.unwrap(), Some(s.clone()));
    assert_eq!(b.session("ffffffffffffffffffffffffffffffff").await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(b.session("0123456789abcdef0123456789abcdef").await.unwrap(), None);
}

pub async fn top_scores_keep_the_best_per_name<B: Backend>(b: B) {
    let e = |name: &str, score, colour| ScoreEntry { name: name.into(), score, colour };
    for entry in [e("ann", 5, 1), e("bob", 9, 2), e("ann", 12, 3), e("ann", 7, 4), e("cy", 9, 5)] {
        b.submit_score(entry).await.unwrap();
    }
    assert_eq!(b.top_scores(10).await.unwrap(), vec![e("ann", 12, 3), e("bob", 9, 2), e("cy", 9, 5)]);
    assert_eq!(b.top_scores(1).await.unwrap(), vec![e("ann", 12, 3)]);
    b.ping().await.unwrap();
}

/// People's ids: 1, 2, 3... from one counter, never twice under
/// concurrency; a room's seat confirmation raises the counter past its
/// members' ids (spectators too), and never lowers it.
pub async fn player_ids_count_up_once_each<B: Backend>(b: B) {
    assert_eq!(b.new_player_id().await.unwrap(), PlayerId(1));
    assert_eq!(b.new_player_id().await.unwrap(), PlayerId(2));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.new_player_id().await.unwrap() })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().0);
    }
    ids.sort_unstable();
    assert_eq!(ids, (3..53).collect::<Vec<i64>>());
    // A room that still runs vouches for its members (listed or not: after
    // a data loss the directory may not have it back yet).
    let hold = Duration::from_secs(5);
    b.confirm_seats(&room("c-ids"), &[PlayerId(7)], PlayerId(1000), hold).await.unwrap();
    assert_eq!(b.new_player_id().await.unwrap(), PlayerId(1001));
    b.confirm_seats(&room("c-ids"), &[PlayerId(10)], PlayerId(10), hold).await.unwrap();
    assert_eq!(b.new_player_id().await.unwrap(), PlayerId(1002));
}

/// A snapshot to write under `lease`, `seq` its place among the lease's.
pub fn save(lease: &Lease, seq: u64, data: &'static [u8]) -> SnapshotSave {
    SnapshotSave { lease: lease.clone(), seq, data: Bytes::from_static(data) }
}

/// Snapshots of several rooms in one call: each fenced by its own lease
/// as if written alone, in the order asked; and an owner's own earlier
/// snapshot, landing late, is not written over a later one.
pub async fn batched_snapshots_are_fenced_each<B: Backend>(b: B) {
    let ttl = Duration::from_secs(5);
    let (held, stale, vanished) = (room("c-batch-held"), room("c-batch-stale"), room("c-batch-gone"));
    let mine = b.acquire_lease(&held, "w1", ttl, 0).await.unwrap().expect("free lease");
    // A lease another worker holds now, and one nobody holds.
    let old = b.acquire_lease(&stale, "w1", ttl, 0).await.unwrap().expect("free lease");
    b.release_lease(&old).await.unwrap();
    let theirs = b.acquire_lease(&stale, "w2", ttl, 0).await.unwrap().expect("released lease is free");
    let gone = b.acquire_lease(&vanished, "w1", ttl, 0).await.unwrap().expect("free lease");
    b.release_lease(&gone).await.unwrap();
    assert!(b.save_snapshots(&[]).await.unwrap().is_empty());
    let writes = [save(&old, 1, b"stale"), save(&mine, 1, b"one"), save(&gone, 1, b"nobody's")];
    let saved = b.save_snapshots(&writes).await.unwrap();
    assert_eq!(saved, vec![Some(SnapshotWrite::Lost), Some(SnapshotWrite::Saved), Some(SnapshotWrite::Missing)]);
    assert_eq!(b.load_snapshot(&held).await.unwrap(), Some((mine.epoch, Bytes::from_static(b"one"))));
    assert_eq!(b.load_snapshot(&stale).await.unwrap(), None);
    assert_eq!(b.load_snapshot(&vanished).await.unwrap(), None);
    // The room's new holder writes, beside a room written before.
    let newer = [save(&theirs, 1, b"two"), save(&mine, 3, b"three")];
    assert_eq!(b.save_snapshots(&newer).await.unwrap(), vec![Some(SnapshotWrite::Saved); 2]);
    assert_eq!(b.load_snapshot(&stale).await.unwrap(), Some((theirs.epoch, Bytes::from_static(b"two"))));
    assert_eq!(b.load_snapshot(&held).await.unwrap(), Some((mine.epoch, Bytes::from_static(b"three"))));
    // The owner's second snapshot lands after its third (it was sent
    // before a reconnect): outdated, not written; so is the third again.
    assert_eq!(b.save_snapshot(save(&mine, 2, b"two, late")).await.unwrap(), SnapshotWrite::Outdated);
    assert_eq!(b.save_snapshot(save(&mine, 3, b"three again")).await.unwrap(), SnapshotWrite::Outdated);
    assert_eq!(b.load_snapshot(&held).await.unwrap(), Some((mine.epoch, Bytes::from_static(b"three"))));
    // A new lease of the room starts its own count.
    b.release_lease(&mine).await.unwrap();
    let next = b.acquire_lease(&held, "w1", ttl, 0).await.unwrap().expect("released lease is free");
    assert_eq!(b.save_snapshot(save(&next, 1, b"next")).await.unwrap(), SnapshotWrite::Saved);
    assert_eq!(b.load_snapshot(&held).await.unwrap(), Some((next.epoch, Bytes::from_static(b"next"))));
    // Many rooms at once (many slots on a Redis Cluster), one outcome each.
    let mut many = Vec::new();
    let names: Vec<String> = (0..40).map(|i| format!("room {i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let r = room(&format!("c-batch-{i}"));
        let lease = b.acquire_lease(&r, "w1", ttl, 0).await.unwrap().expect("free lease");
        many.push(SnapshotSave { lease, seq: 1, data: Bytes::from(name.clone()) });
    }
    assert_eq!(b.save_snapshots(&many).await.unwrap(), vec![Some(SnapshotWrite::Saved); 40]);
    for w in &many {
        assert_eq!(b.load_snapshot(&w.lease.room).await.unwrap(), Some((w.lease.epoch, w.data.clone())));
    }
}

/// Leases: one holder at a time, epochs that only grow, renewal only by
/// the holder, expiry, and snapshots fenced by the lease.
pub async fn leases_fence_snapshots_and_expire<B: Backend>(b: B) {
    let r = room("c-lease");
    let ttl = Duration::from_millis(400);
    let l1 = b.acquire_lease(&r, "w1", ttl, 0).await.unwrap().expect("free lease");
    assert_eq!(l1.worker, "w1");
    assert!(b.acquire_lease(&r, "w2", ttl, 0).await.unwrap().is_none(), "held lease taken twice");
    assert_eq!(b.save_snapshot(save(&l1, 1, b"one")).await.unwrap(), SnapshotWrite::Saved);
    assert_eq!(b.load_snapshot(&r).await.unwrap(), Some((l1.epoch, Bytes::from_static(b"one"))));
    assert_eq!(b.renew_leases(std::slice::from_ref(&l1), ttl).await.unwrap(), vec![LeaseState::Held]);

    // The lease expires; another worker takes it with a higher epoch.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let l2 = b.acquire_lease(&r, "w2", ttl, 0).await.unwrap().expect("expired lease is free");
    assert!(l2.epoch > l1.epoch);
    // The old holder can neither renew nor write: fencing.
    assert_eq!(b.renew_leases(std::slice::from_ref(&l1), ttl).await.unwrap(), vec![LeaseState::Lost]);
    assert_eq!(b.save_snapshot(save(&l1, 1, b"stale")).await.unwrap(), SnapshotWrite::Lost);
    assert_eq!(b.load_snapshot(&r).await.unwrap(), Some((l1.epoch, Bytes::from_static(b"one"))));
    assert_eq!(b.save_snapshot(save(&l2, 1, b"two")).await.unwrap(), SnapshotWrite::Saved);
    assert_eq!(b.load_snapshot(&r).await.unwrap(), Some((l2.epoch, Bytes::from_static(b"two"))));
    // Releasing someone else's lease does nothing; releasing ours frees it.
    b.release_lease(&l1).await.unwrap();
    assert!(b.acquire_lease(&r, "w3", ttl, 0).await.unwrap().is_none());
    b.release_lease(&l2).await.unwrap();
    let l3 = b.acquire_lease(&r, "w3", ttl, 0).await.unwrap().expect("released lease is free");
    assert!(l3.epoch > l2.epoch);
    // A lease that vanished is reported as such, and a new one can be
    // forced above a given epoch (Redis lost its data, counters included).
    b.release_lease(&l3).await.unwrap();
    assert_eq!(b.renew_leases(std::slice::from_ref(&l3), ttl).await.unwrap(), vec![LeaseState::Missing]);
    // A snapshot with nobody holding the lease is not written, but the
    // writer is not fenced off: it may take the lease again.
    assert_eq!(b.save_snapshot(save(&l3, 1, b"three")).await.unwrap(), SnapshotWrite::Missing);
    let far = l3.epoch + 1_000_000_000_000;
    let l4 = b.acquire_lease(&r, "w3", ttl, far).await.unwrap().expect("free");
    assert_eq!(l4.epoch, far + 1);
    // A stale owner cannot drop the room; the owner can.
    assert!(!b.drop_room(&l2).await.unwrap());
    assert!(b.load_snapshot(&r).await.unwrap().is_some());
    assert!(b.drop_room(&l4).await.unwrap());
    assert_eq!(b.load_snapshot(&r).await.unwrap(), None);
    assert!(b.acquire_lease(&r, "w1", ttl, 0).await.unwrap().expect("dropped room is free").epoch > l4.epoch);

    // Heartbeats: live until they expire or withdraw.
    b.heartbeat("w1", Duration::from_millis(300)).await.unwrap();
    b.heartbeat("w2", Duration::from_secs(5)).await.unwrap();
    assert_eq!(b.live_workers().await.unwrap(), vec!["w1".to_string(), "w2".to_string()]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.live_workers().await.unwrap(), vec!["w2".to_string()]);
    b.withdraw("w2").await.unwrap();
    assert!(b.live_workers().await.unwrap().is_empty());
}

/// Lease holders: the worker of each live lease, none for a free or
/// expired one, in the order asked.
pub async fn lease_holders_name_live_owners<B: Backend>(b: B) {
    let (r1, r2, r3) = (room("c-hold-1"), room("c-hold-2"), room("c-hold-3"));
    assert!(b.lease_holders(&[]).await.unwrap().is_empty());
    b.acquire_lease(&r1, "w:1", Duration::from_secs(5), 0).await.unwrap().expect("free lease");
    b.acquire_lease(&r3, "w2", Duration::from_millis(300), 0).await.unwrap().expect("free lease");
    let holders = b.lease_holders(&[r1.clone(), r2.clone(), r3.clone()]).await.unwrap();
    assert_eq!(holders, vec![Some("w:1".to_string()), None, Some("w2".to_string())]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.lease_holders(&[r3, r2, r1]).await.unwrap(), vec![None, None, Some("w:1".to_string())]);
}

/// A worker is present while its presence subscription lives and absent
/// once it is gone; one never seen is absent.
pub async fn presence_follows_the_subscription<B: Backend>(b: B) {
    let (w1, w2) = ("c-pres-1".to_string(), "c-pres-2".to_string());
    assert!(b.present(&[]).await.unwrap().is_empty());
    let held = b.be_present(&w1).await.unwrap();
    assert_eq!(b.present(&[w1.clone(), w2.clone()]).await.unwrap(), vec![true, false]);
    drop(held);
    // The store hears of it when the subscription is let go (Redis: at the
    // next sweep of the subscription connection, within a second or two).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while b.present(std::slice::from_ref(&w1)).await.unwrap() != [false] {
        assert!(tokio::time::Instant::now() < deadline, "still present after its subscription went");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Breaking a gone worker's leases deletes its own and no other's.
pub async fn breaking_leases_takes_only_the_gone_workers<B: Backend>(b: B) {
    let (r1, r2, r3) = (room("c-break-1"), room("c-break-2"), room("c-break-3"));
    let ttl = Duration::from_secs(30);
    b.acquire_lease(&r1, "gone:x", ttl, 0).await.unwrap().expect("free lease");
    b.acquire_lease(&r2, "other", ttl, 0).await.unwrap().expect("free lease");
    let rooms = [r1.clone(), r2.clone(), r3.clone()];
    assert_eq!(b.break_leases("gone", &rooms).await.unwrap(), 0, "no prefix match");
    assert_eq!(b.break_leases("gone:x", &rooms).await.unwrap(), 1);
    assert_eq!(b.lease_holders(&rooms).await.unwrap(), vec![None, Some("other".to_string()), None]);
    let again = b.acquire_lease(&r1, "heir", ttl, 0).await.unwrap().expect("free after the break");
    assert_eq!(again.worker, "heir");
}

/// The store's generation is one value for every caller and every call,
/// other writes included, until the store loses its data (`lose`); then it
/// is a new one, again the same for everyone, also for callers that race
/// to be the first to read it.
pub async fn generation_changes_only_when_the_data_is_lost<B, F>(a: B, b: B, mut lose: impl FnMut() -> F)
where
    B: Backend,
    F: std::future::Future<Output = ()>,
{
    let first = a.generation().await.unwrap();
    assert_eq!(a.generation().await.unwrap(), first, "a second call");
    assert_eq!(b.generation().await.unwrap(), first, "another caller");
    b.submit_score(ScoreEntry { name: "ann".into(), score: 3, colour: 1 }).await.unwrap();
    b.put_session("0123456789abcdef0123456789abcdef", &session(), HOLD).await.unwrap();
    assert_eq!(a.generation().await.unwrap(), first, "other writes leave it");

    lose().await;
    assert!(b.top_scores(10).await.unwrap().is_empty(), "the data is gone");
    let second = b.generation().await.unwrap();
    assert_ne!(second, first, "the same generation after the data was lost");
    assert_eq!(a.generation().await.unwrap(), second);

    lose().await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let caller = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { caller.generation().await.unwrap() })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap());
    }
    assert_eq!(seen.len(), 1, "callers racing after a loss disagree: {seen:?}");
    assert!(!seen.contains(&first) && !seen.contains(&second), "a generation came back: {seen:?}");
}

fn session() -> Session {
    Session { player: PlayerId(7), name: "ann".into(), room: room("c-gen"), key: 7 }
}

/// Two clusters with different prefixes on one server see nothing of each
/// other.
pub async fn prefixes_isolate_clusters<B: Backend>(a: B, b: B) {
    let r = room("c-shared");
    let mut sub_b = b.subscribe_output(&r).await.unwrap();
    let frame = OutFrame { epoch: 1, tick: 1, kind: FrameKind::Tick, payload: Bytes::from_static(b"[]") };
    assert_eq!(a.publish_output(&r, frame).await.unwrap(), 0);
    assert!(tokio::time::timeout(Duration::from_millis(200), sub_b.recv()).await.is_err());
    a.take_seat(Some(&r), PlayerId::random(), 10, HOLD).await.unwrap();
    assert_eq!(b.room(&r).await.unwrap(), None);
    assert!(b.rooms(100).await.unwrap().is_empty());
}

/// Inputs published at once by many connections, each waiting for its
/// previous one as a gateway's connection does (which keeps each one's
/// inputs in order), all arrive, each counted, in each connection's order;
/// and those of another room go only there.
pub async fn concurrent_inputs_arrive_whole_and_in_order<B: Backend>(b: B) {
    const CONNS: usize = 20;
    const EACH: usize = 40;
    let (r, other) = (room("c-inputs"), room("c-inputs-2"));
    let mut sub = b.subscribe_input(&r).await.unwrap();
    let mut sub_other = b.subscribe_input(&other).await.unwrap();
    let dirs = [Direction::Up, Direction::Left, Direction::Down, Direction::Right];
    let senders: Vec<_> = (0..CONNS)
        .map(|c| {
            let (b, r, other) = (b.clone(), r.clone(), other.clone());
            let player = PlayerId::random();
            let conn = ConnId::random();
            tokio::spawn(async move {
                for i in 0..EACH {
                    let input = RoomInput { player, conn, kind: InputKind::Turn(dirs[i % 4]) };
                    assert_eq!(b.publish_input(&r, input).await.unwrap(), 1, "sender {c}, input {i}");
                }
                let input = RoomInput { player, conn, kind: InputKind::Leave };
                assert_eq!(b.publish_input(&other, input).await.unwrap(), 1);
                conn
            })
        })
        .collect();
    let mut conns = Vec::new();
    for s in senders {
        conns.push(s.await.unwrap());
    }
    let mut seen: std::collections::HashMap<ConnId, usize> = conns.iter().map(|c| (*c, 0)).collect();
    for _ in 0..CONNS * EACH {
        let got = recv(&mut sub).await;
        let n = seen.get_mut(&got.conn).expect("a sender's input");
        assert_eq!(got.kind, InputKind::Turn(dirs[*n % 4]), "out of order from {:?} at {n}", got.conn);
        *n += 1;
    }
    assert!(seen.values().all(|n| *n == EACH));
    for _ in 0..CONNS {
        assert_eq!(recv(&mut sub_other).await.kind, InputKind::Leave);
    }
    assert!(tokio::time::timeout(Duration::from_millis(200), sub.recv()).await.is_err(), "nothing more");
}

/// After the server restarts (empty), commands work again and existing
/// subscriptions receive new messages, with no new subscribe call.
pub async fn survives_a_restart<B: Backend>(b: B, restart: impl FnOnce()) {
    let r = room("c-restart");
    let mut sub = b.subscribe_input(&r).await.unwrap();
    restart();
    let input = RoomInput { player: PlayerId::random(), conn: ConnId::random(), kind: InputKind::Join };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no delivery after the restart");
        if let Ok(n) = b.publish_input(&r, input.clone()).await
            && n > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(recv(&mut sub).await, input);
    b.ping().await.unwrap();
}

/// One `#[tokio::test]` per check of the contract, each on a fresh backend
/// from `$make`, which yields `(guard, backend)`: the guard (a test Redis,
/// say) lives as long as the test.
///
/// `backend_contract_tests!(sequence $setup, $make)` instead makes one test
/// that runs every check in turn against one `$setup` (a Redis Cluster is
/// slow to start), each on the backend `$make(&setup, name)` yields (a
/// future), `name` being the check's own, to use as the key prefix.
#[macro_export]
macro_rules! backend_contract_tests {
    ($make:expr) => {
        $crate::backend_contract_tests!(@with each $make);
    };
    (sequence $setup:expr, $make:expr) => {
        $crate::backend_contract_tests!(@with sequence ($setup, $make));
    };
    (@with $how:ident $args:tt) => {
        $crate::backend_contract_tests!(@$how $args;
            pubsub => pubsub_delivers_in_order_per_room,
            concurrent_inputs => concurrent_inputs_arrive_whole_and_in_order,
            unsubscribe => dropped_subscriptions_receive_nothing,
            handlers => handlers_take_frames_until_stopped,
            notices => notices_reach_subscribers,
            directory => directory_matchmakes_without_overbooking,
            concurrent_seats => concurrent_seats_never_overbook,
            own_capacity => matchmaking_uses_the_rooms_capacity,
            own_seat => a_players_own_seat_is_never_full,
            seats_converge => seats_expire_unless_the_room_confirms_them,
            sessions => sessions_expire,
            top_scores => top_scores_keep_the_best_per_name,
            player_ids => player_ids_count_up_once_each,
            ownership => leases_fence_snapshots_and_expire,
            batched_snapshots => batched_snapshots_are_fenced_each,
            lease_holders => lease_holders_name_live_owners,
            presence => presence_follows_the_subscription,
            break_leases => breaking_leases_takes_only_the_gone_workers,
        );
    };
    (@each $make:expr; $($name:ident => $check:ident,)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_guard, backend) = $make;
                $crate::contract::$check(backend).await;
            }
        )*
    };
    (@sequence ($setup:expr, $make:expr); $($name:ident => $check:ident,)*) => {
        #[tokio::test]
        async fn the_whole_contract() {
            let setup = $setup;
            let make = $make;
            $(
                eprintln!("contract check: {}", stringify!($check));
                $crate::contract::$check(make(&setup, stringify!($name)).await).await;
            )*
        }
    };
}
