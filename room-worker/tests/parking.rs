//! Parking cannot be abused or get stuck: a player who comes and goes
//! cannot hold a snake still for ever, and a member taken for away because
//! its gateway went quiet moves on as soon as its connection is heard from.
//! (Found by a review: both failed before the parking credit and before
//! presence unparked.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{enter, last_snapshot, send, start};
use snakepit_bus::{Bus, ConnId, InputKind, MemoryBackend, PlayerId, RoomId, RoomInput};
use snakepit_room_worker::room::RoomConfig;

fn config(grace_s: u64, presence_s: u64) -> RoomConfig {
    config_at(10.0, grace_s, presence_s)
}

fn config_at(tick_rate: f64, grace_s: u64, presence_s: u64) -> RoomConfig {
    RoomConfig {
        grace: Duration::from_secs(grace_s),
        snapshot_every: Some(Duration::from_millis(100)),
        presence_timeout: Duration::from_secs(presence_s),
        ..common::config(tick_rate)
    }
}

async fn open(backend: &MemoryBackend, room: &RoomId, config: RoomConfig) {
    let lease = common::lease(backend, room, "w").await;
    let running = start(backend, room, config, lease, None, common::metrics()).await;
    std::mem::forget(running.lease);
}

/// (member?, disconnected?, alive?, parked?, cells) of `player` in the last snapshot.
async fn look(backend: &MemoryBackend, room: &RoomId, player: PlayerId) -> (bool, bool, bool, bool, Vec<(u16, u16)>) {
    let s = last_snapshot(backend, room).await;
    let m = s.members.iter().find(|m| m.player == player);
    let p = s.game.player(player);
    (
        m.is_some(),
        m.is_some_and(|m| m.disconnected),
        p.is_some_and(|p| p.alive),
        p.is_some_and(|p| p.parked),
        p.map(|p| p.snake.iter().map(|c| (c.x, c.y)).collect()).unwrap_or_default(),
    )
}

/// A client that reconnects (a fresh connection, as `resume` makes) just
/// before its grace runs out and drops again at once would keep its snake
/// parked (frozen, an obstacle for everyone else) for as long as it liked,
/// since the grace starts over on every enter. Its parking credit runs
/// out instead: here 30 s of coming and going with a 3 s grace.
#[tokio::test(start_paused = true)]
async fn parking_cannot_be_held_forever_by_reconnecting_within_the_grace() {
    let backend = MemoryBackend::new();
    let room = RoomId::parse("cycle").unwrap();
    open(&backend, &room, config(3, 600)).await;
    let player = PlayerId::random();
    let conn = ConnId::random();
    send(&backend, &room, player, conn, enter("ann")).await;
    send(&backend, &room, player, conn, InputKind::Join).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    send(&backend, &room, player, conn, InputKind::Disconnect).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let parked_at = look(&backend, &room, player).await;
    assert!(parked_at.3, "parked");
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let c = ConnId::random();
        send(&backend, &room, player, c, enter("ann")).await;
        send(&backend, &room, player, c, InputKind::Disconnect).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = look(&backend, &room, player).await;
    // Out of parking credit, the snake moved on unattended (and, with a
    // wall ahead, died): it is not still standing where it was parked.
    assert!(!(now.0 && now.2 && now.3 && now.4 == parked_at.4), "30 s parked (grace 3 s), not one cell moved: {now:?}");
}

/// A member whose gateway went quiet for the presence timeout is parked;
/// when its gateway is heard from again (presence notes and the player's
/// own turns from the same connection) the snake moves on and the player
/// stays, rather than being removed after the grace although its
/// connection never ended.
#[tokio::test(start_paused = true)]
async fn a_member_heard_from_again_after_a_presence_gap_moves_on() {
    let backend = MemoryBackend::new();
    let room = RoomId::parse("gap").unwrap();
    // One tick a second: the snake cannot reach a wall during the test.
    open(&backend, &room, config_at(1.0, 5, 2)).await;
    let player = PlayerId::random();
    let conn = ConnId::random();
    send(&backend, &room, player, conn, enter("ann")).await;
    send(&backend, &room, player, conn, InputKind::Join).await;
    // Presence keeps it fresh for a while, then a 4 s gap (> 2 s timeout).
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        backend.publish_input(&room, RoomInput::presence(vec![(player, conn)])).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let l = look(&backend, &room, player).await;
    assert!(l.3, "parked by the presence timeout: {l:?}");
    // The gateway is back: presence every 500 ms and the player steers.
    for _ in 0..4 {
        backend.publish_input(&room, RoomInput::presence(vec![(player, conn)])).await.unwrap();
        send(&backend, &room, player, conn, InputKind::Turn(snakepit_protocol::client::Direction::Up)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (member, away, alive, parked, _) = look(&backend, &room, player).await;
    assert!(member && alive, "still playing");
    assert!(!away && !parked, "heard from for 2 s and steering, yet away={away} parked={parked}");
}
