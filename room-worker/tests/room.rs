//! A room on the in-memory bus with a paused clock: what it publishes when
//! time, not a tick, changes its game.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{config, enter, enter_and_join, frames_within, last_snapshot, metrics, send, start};
use snakepit_bus::{
    Bus, ConnId, FrameKind, InputKind, Lease, MemoryBackend, Ownership, PlayerId, RoomId, RoomInput, Store,
};
use snakepit_room_worker::WorkerMetrics;
use snakepit_room_worker::room::RoomConfig;

/// The last snake removed by housekeeping (its player's grace period ran
/// out between two slow ticks) still has its death published: `p_gameover`,
/// the GAME OVER text and the top scores go out as one more tick.
#[tokio::test(start_paused = true)]
async fn a_last_snake_removed_between_ticks_still_dies_in_public() {
    let backend = MemoryBackend::new();
    let room = RoomId::parse("slow").unwrap();
    let lease = Lease { room: room.clone(), worker: "w".into(), epoch: 1 };
    let mut out = backend.subscribe_output(&room).await.unwrap();
    // One tick every 10 s: the 3 s grace runs out in housekeeping.
    let _room = start(&backend, &room, config(0.1), lease, None, metrics()).await;
    let (player, conn) = enter_and_join(&backend, &room).await;
    let first = frames_within(&mut out, Duration::from_millis(10_500)).await;
    assert!(first.iter().any(|f| matches!(f.kind, FrameKind::Welcome(_))));
    assert!(String::from_utf8_lossy(&first.last().unwrap().payload).contains("p_joined"), "the snake was born");

    // The next tick (at 20 s) takes the disconnect in; the grace period
    // ends at 23 s, in housekeeping, seven seconds before the next tick.
    send(&backend, &room, player, conn, InputKind::Disconnect).await;
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
    let backend = MemoryBackend::new();
    let room = RoomId::parse("unsaved").unwrap();
    let lease = common::lease(&backend, &room, "w").await;
    let config = RoomConfig { snapshot_every: Some(Duration::from_secs(1)), ..config(10.0) };
    let running = start(&backend, &room, config, lease.clone(), None, metrics()).await;
    // The lease vanishes; then a member enters (a change).
    backend.release_lease(&lease).await.unwrap();
    let player = PlayerId::random();
    send(&backend, &room, player, ConnId::random(), enter("ann")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(backend.load_snapshot(&room).await.unwrap(), None, "nothing can be written without the lease");
    // The lease is taken again (as the host does).
    let again = backend.acquire_lease(&room, "w", Duration::from_secs(3600), lease.epoch).await.unwrap().unwrap();
    running.lease.send_replace(again.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (epoch, snapshot) = common::stored_snapshot(&backend, &room).await.expect("the changes were saved");
    assert_eq!(epoch, again.epoch);
    assert!(snapshot.members.iter().any(|m| m.player == player), "ann is in the snapshot");
}

/// The first owner has stopped: "w2" takes the lease over and opens the
/// room from its final snapshot.
async fn take_over(backend: &MemoryBackend, room: &RoomId, lease: Lease, config: RoomConfig, metrics: WorkerMetrics) {
    backend.release_lease(&lease).await.unwrap();
    let lease = backend.acquire_lease(room, "w2", Duration::from_secs(3600), lease.epoch).await.unwrap().unwrap();
    let snapshot = last_snapshot(backend, room).await;
    start(backend, room, config, lease, Some(snapshot), metrics).await;
}

/// The player's snake in the room's last snapshot: (cells, score, parked).
async fn snake_in_snapshot(backend: &MemoryBackend, room: &RoomId, player: PlayerId) -> (Vec<(u16, u16)>, u64, bool) {
    let snapshot = last_snapshot(backend, room).await;
    let p = snapshot.game.player(player).unwrap_or_else(|| {
        panic!("the player is not in the game: {:?} tick {}", snapshot.members, snapshot.game.tick())
    });
    assert!(p.alive, "the snake is alive at tick {}: {:?}", snapshot.game.tick(), p);
    (p.snake.iter().map(|c| (c.x, c.y)).collect(), p.score, p.parked)
}

/// A disconnected player's snake is parked: it holds still through the
/// grace period and through a takeover by another owner (from the
/// snapshot), and moves on, with the same length and score, once the
/// player enters again.
#[tokio::test(start_paused = true)]
async fn a_disconnected_players_snake_holds_still_through_a_takeover() {
    let backend = MemoryBackend::new();
    let metrics = metrics();
    let room = RoomId::parse("parked").unwrap();
    let config =
        RoomConfig { grace: Duration::from_secs(60), snapshot_every: Some(Duration::from_millis(100)), ..config(10.0) };
    let lease = common::lease(&backend, &room, "w1").await;
    let first = start(&backend, &room, config.clone(), lease.clone(), None, metrics.clone()).await;
    let (player, conn) = enter_and_join(&backend, &room).await;
    // Born on the first tick (0.1 s), at least three cells from any wall,
    // and one step on by the time the disconnect comes in.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (born, _, parked) = snake_in_snapshot(&backend, &room, player).await;
    assert!(!parked && !born.is_empty(), "born and moving");

    // The connection ends: 40 ticks later (enough to reach any wall) the
    // snake stands where it stood.
    send(&backend, &room, player, conn, InputKind::Disconnect).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let still = snake_in_snapshot(&backend, &room, player).await;
    assert!(still.2, "parked");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(snake_in_snapshot(&backend, &room, player).await, still, "the parked snake moved");

    // Another owner takes the room over from the final snapshot.
    first.control.shutdown.cancel();
    first.task.await.unwrap();
    take_over(&backend, &room, lease, config, metrics).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(snake_in_snapshot(&backend, &room, player).await, still, "parked through the takeover");

    // The player resumes through a new connection: the snake holds still
    // while its client gets the world (until the player steers, or a
    // second), then moves on.
    send(&backend, &room, player, ConnId::random(), enter("ann")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(snake_in_snapshot(&backend, &room, player).await, still, "held while the client gets its world");
    // A step or two past the hold: not yet at the wall it may be heading for.
    tokio::time::sleep(Duration::from_millis(650)).await;
    let (cells, score, parked) = snake_in_snapshot(&backend, &room, player).await;
    assert!(!parked, "back in play");
    assert_ne!(cells, still.0, "it moves again");
    assert_eq!((cells.len(), score), (still.0.len(), still.1), "same length and score");
}

/// A player back from away whose client steers at once (it has the world)
/// has its snake moving at once, not after the whole hold; one that never
/// steers is held a second at most (above).
#[tokio::test(start_paused = true)]
async fn a_resumed_snake_moves_on_as_soon_as_its_player_steers() {
    let backend = MemoryBackend::new();
    let room = RoomId::parse("steered").unwrap();
    let config =
        RoomConfig { grace: Duration::from_secs(60), snapshot_every: Some(Duration::from_millis(100)), ..config(10.0) };
    let lease = common::lease(&backend, &room, "w1").await;
    let _running = start(&backend, &room, config, lease, None, metrics()).await;
    let (player, conn) = enter_and_join(&backend, &room).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    send(&backend, &room, player, conn, InputKind::Disconnect).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = snake_in_snapshot(&backend, &room, player).await;
    assert!(still.2, "parked");

    let back = ConnId::random();
    send(&backend, &room, player, back, enter("ann")).await;
    // Its gateway's presence note comes as soon as the connection has a
    // room, before the client has the world: no release.
    let note = RoomInput::presence(vec![(player, back)]);
    backend.publish_input(&room, note).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(snake_in_snapshot(&backend, &room, player).await, still, "held until the player steers");
    // A turn the way it already goes (or a reverse) changes no course,
    // but says the client has its world.
    let head = still.0[0];
    let dir = if still.0.len() > 1 && still.0[1].1 == head.1 {
        snakepit_protocol::client::Direction::Up
    } else {
        snakepit_protocol::client::Direction::Left
    };
    send(&backend, &room, player, back, InputKind::Turn(dir)).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (cells, _, parked) = snake_in_snapshot(&backend, &room, player).await;
    assert!(!parked && cells != still.0, "it moves on once its player steers");
}

/// A player back through a new connection counts as heard from at its
/// enter: the old connection's silence does not mark it away again (and
/// park its snake) before its gateway's first presence note.
#[tokio::test(start_paused = true)]
async fn a_resumed_player_is_not_taken_for_silent() {
    let backend = MemoryBackend::new();
    let room = RoomId::parse("heard").unwrap();
    let config = RoomConfig {
        grace: Duration::from_secs(60),
        presence_timeout: Duration::from_secs(2),
        snapshot_every: Some(Duration::from_millis(100)),
        ..config(10.0)
    };
    let lease = common::lease(&backend, &room, "w").await;
    let _room = start(&backend, &room, config, lease, None, metrics()).await;
    let (player, conn) = enter_and_join(&backend, &room).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    send(&backend, &room, player, conn, InputKind::Disconnect).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    send(&backend, &room, player, ConnId::random(), enter("ann")).await;
    // Housekeeping runs (every second) before any presence note comes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let snapshot = last_snapshot(&backend, &room).await;
    let member = snapshot.members.iter().find(|m| m.player == player).expect("ann is a member");
    assert!(!member.disconnected, "the resumed player was taken for silent");
    assert!(!snapshot.game.player(player).unwrap().parked);
}

/// The alive robots of a room's last snapshot, and its members' ids.
async fn robots_in_snapshot(backend: &MemoryBackend, room: &RoomId) -> (Vec<PlayerId>, Vec<PlayerId>) {
    let s = last_snapshot(backend, room).await;
    let robots = s.game.players().iter().filter(|p| p.alive && p.id.is_robot()).map(|p| p.id).collect();
    (robots, s.members.iter().map(|m| m.player).collect())
}

/// Robots are the game's, never the room's members: the directory holds
/// the person's seat only, the players gauge counts the person, the snakes
/// gauge every snake; an input under a robot's id is ignored (nobody can
/// enter as a robot and steer or remove it); and a room taken over from its
/// snapshot goes on with its robots, numbering new ones after them.
#[tokio::test(start_paused = true)]
async fn robots_are_no_members_and_go_through_a_takeover() {
    let backend = MemoryBackend::new();
    let metrics = metrics();
    let room = RoomId::parse("robots").unwrap();
    backend.ensure_room(&room, 10).await.unwrap();
    let mut config = RoomConfig {
        grace: Duration::from_secs(600),
        snapshot_every: Some(Duration::from_millis(100)),
        ..config(10.0)
    };
    config.settings.robots = 3;
    let lease = common::lease(&backend, &room, "w1").await;
    let mut out = backend.subscribe_output(&room).await.unwrap();
    let first = start(&backend, &room, config.clone(), lease.clone(), None, metrics.clone()).await;
    let (player, conn) = enter_and_join(&backend, &room).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Ann goes away: her snake stands parked (and alive) for the grace
    // period, so the robots play on.
    send(&backend, &room, player, conn, InputKind::Disconnect).await;
    // Someone enters under a robot's id, then leaves.
    let fake = ConnId::random();
    for kind in [enter("mallory"), InputKind::Leave] {
        send(&backend, &room, PlayerId(-1), fake, kind).await;
    }
    let frames = frames_within(&mut out, Duration::from_secs(6)).await;
    assert!(!frames.iter().any(|f| f.kind == FrameKind::Welcome(PlayerId(-1))), "nobody entered as a robot");
    let born: String = frames.iter().map(|f| String::from_utf8_lossy(&f.payload).into_owned()).collect();
    for id in [-1, -2, -3] {
        assert!(born.contains(&format!("[\"p_joined\",{id},\"robot ")), "robot {id} joined: {born:.300}");
    }
    let (robots, members) = robots_in_snapshot(&backend, &room).await;
    assert!(!robots.is_empty(), "robots play beside the parked snake");
    assert_eq!(members, vec![player], "the person is the only member");
    assert_eq!(backend.room(&room).await.unwrap().unwrap().players, 1, "one seat: the person's");
    assert_eq!(metrics.players.get(), 1);
    assert_eq!(metrics.snakes_alive.get(), 1 + robots.len() as i64, "snakes alive count robots");

    // Another owner takes the room over from the final snapshot.
    first.control.shutdown.cancel();
    first.task.await.unwrap();
    let (before, _) = robots_in_snapshot(&backend, &room).await;
    let newest = before.iter().min().copied().unwrap();
    take_over(&backend, &room, lease, config, metrics).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (after, _) = robots_in_snapshot(&backend, &room).await;
    assert!((1..=3).contains(&after.len()), "robots play on: {after:?}");
    for id in &after {
        assert!(before.contains(id) || *id < newest, "robot {id} is either from before or numbered after them");
    }
}

/// After Redis lost its data, the id counter starts over and a newcomer may
/// be given the id of a member still in play. The identity key tells them
/// apart: the newcomer is shut out (as superseded) and the member keeps its
/// snake and its connection; the member's own resume (same key) still
/// takes over from its older connection.
#[tokio::test(start_paused = true)]
async fn a_stranger_with_a_members_id_is_shut_out_and_a_resume_is_not() {
    let backend = MemoryBackend::new();
    let room = RoomId::parse("same-id").unwrap();
    let lease = common::lease(&backend, &room, "w").await;
    let mut out = backend.subscribe_output(&room).await.unwrap();
    let _room = start(&backend, &room, config(10.0), lease, None, metrics()).await;
    let player = PlayerId(4);
    let enter = |conn, name: &str, key| snakepit_bus::RoomInput {
        player,
        conn,
        kind: InputKind::Enter { name: Some(name.into()), resync: false, key, gateway: None },
    };
    let (alice, mallory, alice_again) = (ConnId::random(), ConnId::random(), ConnId::random());
    backend.publish_input(&room, enter(alice, "alice", 11)).await.unwrap();
    send(&backend, &room, player, alice, InputKind::Join).await;
    frames_within(&mut out, Duration::from_millis(500)).await;
    backend.publish_input(&room, enter(mallory, "mallory", 22)).await.unwrap();
    let frames = frames_within(&mut out, Duration::from_millis(500)).await;
    let kinds: Vec<FrameKind> = frames.iter().map(|f| f.kind).filter(|k| !matches!(k, FrameKind::Tick)).collect();
    assert!(kinds.contains(&FrameKind::Superseded { player, conn: mallory }), "the stranger is shut out: {kinds:?}");
    assert!(!kinds.contains(&FrameKind::Superseded { player, conn: alice }), "alice keeps her place: {kinds:?}");
    assert!(!kinds.contains(&FrameKind::Welcome(player)), "no welcome for the stranger: {kinds:?}");
    // Alice's resume from a new connection (her key) takes over as before.
    backend.publish_input(&room, enter(alice_again, "alice", 11)).await.unwrap();
    let frames = frames_within(&mut out, Duration::from_millis(500)).await;
    let kinds: Vec<FrameKind> = frames.iter().map(|f| f.kind).filter(|k| !matches!(k, FrameKind::Tick)).collect();
    assert!(kinds.contains(&FrameKind::Superseded { player, conn: alice }), "{kinds:?}");
    assert!(kinds.contains(&FrameKind::Welcome(player)), "{kinds:?}");
}

/// Counts top scores sent to the store, and refuses them while `refuse`.
#[derive(Clone, Default)]
struct Scores {
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    refuse: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Scores {
    fn sent(&self) -> usize {
        self.sent.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl snakepit_bus::intercept::Hook for Scores {
    fn before(
        &self,
        call: snakepit_bus::intercept::Call<'_>,
    ) -> impl std::future::Future<Output = Result<(), snakepit_bus::BusError>> + Send {
        let mut result = Ok(());
        if matches!(call, snakepit_bus::intercept::Call::SubmitScore(_)) {
            self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
                result = Err(snakepit_bus::BusError::Unavailable("refused".into()));
            }
        }
        async move { result }
    }
}

/// Three top scores of other rooms in the store, and a room that loaded
/// them and has one player, whose snake then parks (its player away for
/// the 3 s grace) and dies: the game ends.
async fn a_room_over_three_top_scores(hook: Scores) -> (MemoryBackend, RoomId, common::Running, PlayerId, ConnId) {
    let memory = MemoryBackend::new();
    for (name, score) in [("ann", 30), ("bob", 20), ("cy", 10)] {
        memory.submit_score(snakepit_bus::ScoreEntry { name: name.into(), score, colour: 1 }).await.unwrap();
    }
    let backend = snakepit_bus::intercept::Intercepted::new(memory.clone(), hook);
    let room = RoomId::parse("scores").unwrap();
    let lease = common::lease(&memory, &room, "w").await;
    let running = start(&backend, &room, config(10.0), lease, None, metrics()).await;
    let (player, conn) = enter_and_join(&memory, &room).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    (memory, room, running, player, conn)
}

/// A game's end sends no top score the store is known to hold: with rooms
/// of one player, each death ends a game, and sending the whole list again
/// each time was most of what a worker wrote to the store.
#[tokio::test(start_paused = true)]
async fn a_games_end_sends_only_new_top_scores() {
    let hook = Scores::default();
    let (memory, room, _running, player, conn) = a_room_over_three_top_scores(hook.clone()).await;
    let mut out = memory.subscribe_output(&room).await.unwrap();
    send(&memory, &room, player, conn, InputKind::Disconnect).await;
    let frames = frames_within(&mut out, Duration::from_secs(5)).await;
    assert!(frames.iter().any(|f| String::from_utf8_lossy(&f.payload).contains("p_gameover")), "the game ended");
    assert_eq!(hook.sent(), 0, "top scores the store holds were sent again");
}

/// Top scores the store refused are sent again at the next save: here the
/// room rewrites its list (its lease was taken again: Redis lost its data)
/// while the store refuses, and the game's end then sends the list again.
#[tokio::test(start_paused = true)]
async fn top_scores_the_store_refused_are_sent_again() {
    let hook = Scores::default();
    let (memory, room, running, player, conn) = a_room_over_three_top_scores(hook.clone()).await;
    hook.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    let lease = running.lease.borrow().clone();
    memory.release_lease(&lease).await.unwrap();
    let again = memory.acquire_lease(&room, "w", Duration::from_secs(3600), lease.epoch).await.unwrap().unwrap();
    running.lease.send_replace(again);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hook.sent(), 3, "the whole list, refused");
    hook.refuse.store(false, std::sync::atomic::Ordering::SeqCst);
    send(&memory, &room, player, conn, InputKind::Disconnect).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(hook.sent(), 6, "the refused list is sent again at the game's end");
}

async fn stored_names(memory: &MemoryBackend) -> Vec<String> {
    memory.top_scores(10).await.unwrap().into_iter().map(|s| s.name).collect()
}

/// Redis restarts empty, and the room's game ends before the host has
/// taken the lease again (one-player rooms end a game at each death): the
/// store's empty list read back at the game's end must not wipe the
/// room's, and what the store lost is sent again at once. (Found in
/// review: the room's list was replaced by the empty one, and the rewrite
/// after the lease came back sent nothing.)
#[tokio::test(start_paused = true)]
async fn a_game_end_after_the_store_lost_its_data_sends_the_top_scores_again() {
    let hook = Scores::default();
    let (memory, room, running, player, conn) = a_room_over_three_top_scores(hook.clone()).await;
    memory.lose_data();
    send(&memory, &room, player, conn, InputKind::Disconnect).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(stored_names(&memory).await, ["ann", "bob", "cy"], "sent again as the game ended");
    let lease = running.lease.borrow().clone();
    let again = memory.acquire_lease(&room, "w", Duration::from_secs(3600), lease.epoch).await.unwrap().unwrap();
    running.lease.send_replace(again);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stored_names(&memory).await, ["ann", "bob", "cy"]);
}
