//! A room on the in-memory bus with a paused clock: what it publishes when
//! time, not a tick, changes its game.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use snakepit_room_worker::publisher::Publisher;
use snakepit_room_worker::room::{Room, RoomConfig, RoomControl};
use snakepit_room_worker::{GameSettings, WorkerMetrics};
use snakepit_shared::{Bus, ConnId, FrameKind, InputKind, Lease, MemoryBackend, OutFrame, PlayerId, RoomId, RoomInput};

fn config(tick_rate: f64) -> RoomConfig {
    RoomConfig {
        settings: GameSettings { tick_rate, stone_spawn_rate: 0.0, digit_spawn_rate: 0.0, ..GameSettings::default() },
        grace: Duration::from_secs(3),
        empty_ttl: Duration::from_secs(600),
        snapshot_every: None,
        presence_timeout: Duration::from_secs(600),
        seat_hold: Duration::from_secs(15),
    }
}

/// Frames published within `limit` (virtual time).
async fn frames_within(out: &mut snakepit_shared::Subscription<OutFrame>, limit: Duration) -> Vec<OutFrame> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(f)) = tokio::time::timeout_at(deadline, out.recv()).await {
        got.push(f);
    }
    got
}

/// The last snake removed by housekeeping (its player's grace period ran
/// out between two slow ticks) still has its death published: `p_gameover`,
/// the GAME OVER text and the top scores go out as one more tick.
#[tokio::test(start_paused = true)]
async fn a_last_snake_removed_between_ticks_still_dies_in_public() {
    let backend = MemoryBackend::new();
    let metrics = WorkerMetrics::register(&prometheus::Registry::new(), "w").unwrap();
    let room = RoomId::parse("slow").unwrap();
    let lease = Lease { room: room.clone(), worker: "w".into(), epoch: 1 };
    let (_lease_tx, lease_rx) = tokio::sync::watch::channel(lease);
    let publisher = Publisher::spawn(backend.clone(), metrics.clone());
    // One tick every 10 s: the 3 s grace runs out in housekeeping.
    let r =
        Room::open(room.clone(), backend.clone(), config(0.1), lease_rx, None, 7, metrics, publisher).await.unwrap();
    let mut out = backend.subscribe_output(&room).await.unwrap();
    tokio::spawn(r.run(RoomControl::default()));
    let (player, conn) = (PlayerId::random(), ConnId::random());
    for kind in [InputKind::Enter { name: Some("ann".into()), resync: false }, InputKind::Join] {
        backend.publish_input(&room, RoomInput { player, conn, kind }).await.unwrap();
    }
    let first = frames_within(&mut out, Duration::from_millis(10_500)).await;
    assert!(first.iter().any(|f| matches!(f.kind, FrameKind::Welcome(_))));
    assert!(String::from_utf8_lossy(&first.last().unwrap().payload).contains("p_joined"), "the snake was born");

    // The next tick (at 20 s) takes the disconnect in; the grace period
    // ends at 23 s, in housekeeping, seven seconds before the next tick.
    backend.publish_input(&room, RoomInput { player, conn, kind: InputKind::Disconnect }).await.unwrap();
    let after = frames_within(&mut out, Duration::from_secs(14)).await;
    let at = after.iter().position(|f| String::from_utf8_lossy(&f.payload).contains("p_gameover"));
    let at = at.expect("the death was published before the next tick");
    let (death, before) = (&after[at], &after[at - 1]);
    assert_eq!(death.kind, FrameKind::Tick);
    assert_eq!(death.tick, before.tick + 1, "it is the next tick, so gateways apply it in order");
    let text = String::from_utf8_lossy(&death.payload);
    assert!(text.contains("top_scores"), "{text}");
}

/// A snapshot that could not be written (nobody held the lease: Redis lost
/// it) leaves the room's changes to be saved: once the lease is back, the
/// next snapshot holds them, though nothing changed since.
#[tokio::test(start_paused = true)]
async fn changes_not_saved_are_saved_once_the_lease_is_back() {
    use snakepit_shared::Ownership;
    let backend = MemoryBackend::new();
    let metrics = WorkerMetrics::register(&prometheus::Registry::new(), "w").unwrap();
    let room = RoomId::parse("unsaved").unwrap();
    let ttl = Duration::from_secs(3600);
    let lease = backend.acquire_lease(&room, "w", ttl, 0).await.unwrap().unwrap();
    let (lease_tx, lease_rx) = tokio::sync::watch::channel(lease.clone());
    let publisher = Publisher::spawn(backend.clone(), metrics.clone());
    let config = RoomConfig { snapshot_every: Some(Duration::from_secs(1)), ..config(10.0) };
    let r = Room::open(room.clone(), backend.clone(), config, lease_rx, None, 7, metrics, publisher).await.unwrap();
    tokio::spawn(r.run(RoomControl::default()));
    // The lease vanishes; then a member enters (a change).
    backend.release_lease(&lease).await.unwrap();
    let (player, conn) = (PlayerId::random(), ConnId::random());
    backend
        .publish_input(
            &room,
            RoomInput { player, conn, kind: InputKind::Enter { name: Some("ann".into()), resync: false } },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(backend.load_snapshot(&room).await.unwrap(), None, "nothing can be written without the lease");
    // The lease is taken again (as the host does).
    let again = backend.acquire_lease(&room, "w", ttl, lease.epoch).await.unwrap().unwrap();
    lease_tx.send_replace(again.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (epoch, data) = backend.load_snapshot(&room).await.unwrap().expect("the changes were saved");
    assert_eq!(epoch, again.epoch);
    let snapshot = snakepit_room_worker::snapshot::RoomSnapshot::decode(&data).unwrap();
    assert!(snapshot.members.iter().any(|m| m.player == player), "ann is in the snapshot");
}
