//! The cluster over a real Redis Cluster (three masters, three replicas on
//! loopback), as real processes played through real WebSockets: rooms on
//! every shard, a master killed mid-game, a live room's slot migrated.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::json;
use snakepit_bus::test_redis_cluster::slot_of;
use support::Client;
use support::cluster::{Cluster, http_get, wait_until};

type Sharded = Cluster<snakepit_bus::test_redis_cluster::TestRedisCluster>;

/// A room name whose channels live on the master at `port`.
fn room_on(c: &Sharded, port: u16, tag: &str) -> String {
    (0..)
        .map(|i| format!("{tag}{i}"))
        .find(|r| c.redis.master_of(slot_of(&format!("snakepit:room:{{{r}}}:out"))) == port)
        .unwrap()
}

/// Two players of `room`, one on each gateway, both in play.
struct Pair {
    room: String,
    a: Client,
    a_id: String,
    b: Client,
    b_id: String,
}

async fn pair(c: &Sharded, room: &str) -> Pair {
    let mut a = c.client(0).await;
    let mut b = c.client(1).await;
    let (a_id, joined, _) = a.new_player("ann", Some(room)).await;
    assert_eq!(joined, room);
    let (b_id, _, _) = b.new_player("bob", Some(room)).await;
    a.join(&a_id).await;
    b.join(&b_id).await;
    Pair { room: room.to_owned(), a, a_id, b, b_id }
}

impl Pair {
    /// Ann turns and Bob sees it at the same tick, through the room's shard.
    async fn play(&mut self) -> bool {
        support::turn_seen_by(&mut self.a, &self.a_id, &mut self.b, &self.b_id).await
    }

    /// Both play on, steering, until each has had `frames` more frames
    /// and has its snake alive (joining again if it died while nobody
    /// could steer it), within `limit`.
    async fn go_on(&mut self, frames: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut seen = [0usize; 2];
        while tokio::time::Instant::now() < deadline {
            for (i, (cl, id)) in [(&mut self.a, &self.a_id), (&mut self.b, &self.b_id)].into_iter().enumerate() {
                if tokio::time::timeout(Duration::from_millis(200), cl.steer_tick(id)).await.is_err() {
                    continue;
                }
                seen[i] += 1;
                if cl.view.head(id).is_none() {
                    tokio::time::timeout(Duration::from_secs(10), cl.join(id)).await.ok();
                }
            }
            let alive = self.a.view.head(&self.a_id).is_some() && self.b.view.head(&self.b_id).is_some();
            if seen.iter().all(|n| *n >= frames) && alive {
                return true;
            }
        }
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_on_two_gateways_play_in_rooms_on_every_shard() {
    let c = Cluster::start_sharded(2, 2).await;
    let masters = c.redis.masters();
    assert_eq!(masters.len(), 3);
    for (i, m) in masters.iter().enumerate() {
        let room = room_on(&c, *m, &format!("shard{i}-"));
        let mut p = pair(&c, &room).await;
        assert!(p.play().await, "room {room} on the master at {m}: bob saw ann's turn");
        // The room's lease, snapshot and channels live on its own shard.
        let lease: Option<String> = redis::from_redis_value(
            c.redis.on(*m, redis::cmd("GET").arg(format!("snakepit:room:{{{}}}:lease", p.room))).unwrap(),
        )
        .unwrap();
        assert!(lease.is_some(), "the lease of {room} is on its master");
    }
    // The directory lists the three rooms, on the global slot.
    let g = c.redis.master_of(slot_of("{snakepit}:rooms"));
    let listed: Vec<String> =
        redis::from_redis_value(c.redis.on(g, redis::cmd("ZRANGE").arg("{snakepit}:rooms").arg(0).arg(-1)).unwrap())
            .unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
}

/// A master is SIGKILLed with a live room on it: its replica takes over,
/// the room goes on for both players (resubscribed), a room on another
/// shard never stops, and the directory, the session and a new player all
/// work afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_game_fails_over_and_its_rooms_go_on() {
    let mut c = Cluster::start_sharded(2, 2).await;
    let masters = c.redis.masters();
    let victim_room = room_on(&c, masters[0], "doomed");
    let other_room = room_on(&c, masters[1], "spared");
    let mut hit = pair(&c, &victim_room).await;
    let mut spared = pair(&c, &other_room).await;
    assert!(hit.play().await && spared.play().await);

    let slot = slot_of(&format!("snakepit:room:{{{victim_room}}}:out"));
    let killed = tokio::task::block_in_place(|| c.redis.fail_master_of(slot));
    assert_ne!(c.redis.master_of(slot), killed);
    assert!(hit.go_on(20, Duration::from_secs(20)).await, "the room on the failed shard went on");
    assert!(hit.play().await, "both players of {victim_room} play together again");
    assert!(spared.go_on(20, Duration::from_secs(10)).await, "the room on another shard went on");

    // Every process is ready, and counted the resubscription.
    for p in c.workers.iter().chain(&c.gateways) {
        wait_until(Duration::from_secs(10), || async { http_get(p.addr, "/readyz").await.contains(" 200 ") }).await;
    }
    let resubscribed = c.gateways[0].metric("snakepit_pubsub_resubscribes_total").await
        + c.gateways[1].metric("snakepit_pubsub_resubscribes_total").await;
    assert!(resubscribed >= 1.0, "no gateway counted a resubscription");
    // The directory still has both rooms; a new player and a resume work.
    let mut carl = c.client(0).await;
    let (_, joined, _) = carl.new_player("carl", Some(&victim_room)).await;
    assert_eq!(joined, victim_room);
    let mut dan = c.client(1).await;
    let (dan_id, _, token) = dan.new_player("dan", Some(&victim_room)).await;
    drop(dan);
    let mut dan2 = c.client(0).await;
    dan2.send(json!(["resume", token])).await;
    let hs = dan2.until("handshake").await;
    assert_eq!(support::id_of(&hs[2]), dan_id, "the session survived the failover");
}

/// A live room's slot migrates to another master (`redis-cli --cluster
/// reshard`, one slot): the room, its lease and snapshot move with the
/// slot, and play goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_rooms_slot_migrates_and_play_goes_on() {
    let c = Cluster::start_sharded(2, 2).await;
    let masters = c.redis.masters();
    let room = room_on(&c, masters[0], "mover");
    let mut p = pair(&c, &room).await;
    assert!(p.play().await);
    let slot = slot_of(&format!("snakepit:room:{{{room}}}:out"));
    let to = masters[1];
    tokio::task::block_in_place(|| c.redis.migrate_slot(slot, to));
    assert!(p.go_on(20, Duration::from_secs(15)).await, "the room went on after its slot moved");
    assert!(p.play().await, "both players play together after the move");
    let lease: Option<String> = redis::from_redis_value(
        c.redis.on(to, redis::cmd("GET").arg(format!("snakepit:room:{{{room}}}:lease"))).unwrap(),
    )
    .unwrap();
    assert!(lease.is_some(), "the lease lives on the new master");
}

/// The master of the `{snakepit}` slot (directory, workers, presence) is
/// SIGKILLed: heartbeats fail until its replica takes over, yet every room
/// on the other shards keeps its owner (its lease, on its own shard, is
/// renewed all along) and its epoch: nobody takes a room over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_directory_shard_moves_no_room_on_the_others() {
    let mut c = Cluster::start_sharded(2, 2).await;
    let global = slot_of("{snakepit}:rooms");
    let directory = c.redis.master_of(global);
    let others: Vec<u16> = c.redis.masters().into_iter().filter(|m| *m != directory).collect();
    let mut pairs = Vec::new();
    for i in 0..6 {
        let room = room_on(&c, others[i % 2], &format!("kept{i}-"));
        pairs.push(pair(&c, &room).await);
    }
    let lease = |c: &Sharded, room: &str| -> Option<String> {
        let key = format!("snakepit:room:{{{room}}}:lease");
        let port = c.redis.master_of(slot_of(&key));
        redis::from_redis_value(c.redis.on(port, redis::cmd("GET").arg(&key)).unwrap()).unwrap()
    };
    let before: Vec<Option<String>> = pairs.iter().map(|p| lease(&c, &p.room)).collect();
    assert!(before.iter().all(Option::is_some));
    tokio::task::block_in_place(|| c.redis.fail_master_of(global));
    // A few rounds past the failover.
    for p in &mut pairs {
        assert!(p.go_on(10, Duration::from_secs(15)).await, "room {} went on", p.room);
    }
    let after: Vec<Option<String>> = pairs.iter().map(|p| lease(&c, &p.room)).collect();
    assert_eq!(before, after, "a room on a healthy shard changed owner or epoch");
}
