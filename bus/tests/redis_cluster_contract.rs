//! The backend contract against a real Redis Cluster (three masters, three
//! replicas on loopback), and what a cluster adds: rooms on every shard, a
//! master that fails over, a slot that migrates, and a master that goes
//! silent with its connections open.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use prometheus::Registry;
use snakepit_bus::redis_metrics::RedisMetrics;
use snakepit_bus::test_redis_cluster::TestRedisCluster;
use snakepit_bus::{
    Bus, ConnId, InputKind, Ownership, PlayerId, RedisBackend, RoomId, RoomInput, Subscription, Topology,
};
use tokio_util::sync::CancellationToken;

snakepit_bus::backend_contract_tests!(sequence TestRedisCluster::start(), |c: &TestRedisCluster, prefix: &str| {
    let (urls, prefix) = (c.urls(), prefix.to_owned());
    async move { RedisBackend::connect_cluster(&urls, &prefix).await.expect("connect to the cluster") }
});

/// Rooms whose channels live on each master, `per_master` each.
fn rooms_on_every_master(c: &TestRedisCluster, per_master: usize) -> Vec<RoomId> {
    let masters = c.masters();
    let mut rooms = Vec::new();
    for m in &masters {
        let mut n = 0;
        while n < per_master {
            let r = RoomId::random();
            if c.master_of_key(&format!("t:room:{{{r}}}:in")) == *m {
                rooms.push(r);
                n += 1;
            }
        }
    }
    rooms
}

fn input() -> RoomInput {
    RoomInput { player: PlayerId::random(), conn: ConnId::random(), kind: InputKind::Join }
}

/// Publishes to `room` until its subscriber gets a message (15 s at most).
async fn delivered(b: &RedisBackend, room: &RoomId, sub: &mut Subscription<RoomInput>) -> Duration {
    let started = tokio::time::Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(15), "room {room}: nothing delivered");
        let sent = input();
        if b.publish_input(room, sent.clone()).await.is_ok_and(|n| n > 0) {
            // Earlier tries may have landed too; the last one must.
            while let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(500), sub.recv()).await {
                if got == sent {
                    return started.elapsed();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn subscribed(b: &RedisBackend, rooms: &[RoomId]) -> Vec<Subscription<RoomInput>> {
    let mut subs = Vec::new();
    for r in rooms {
        subs.push(b.subscribe_input(r).await.unwrap());
    }
    subs
}

async fn connect(c: &TestRedisCluster, metrics: &RedisMetrics) -> RedisBackend {
    RedisBackend::connect_with_metrics(&c.urls(), Topology::Cluster, "t", None, metrics, &CancellationToken::new())
        .await
        .expect("connect")
}

/// Subscribed rooms on all three shards; each delivers, and one
/// SSUBSCRIBE never mixed slots (or the server would have refused it).
#[tokio::test]
async fn rooms_on_every_shard_deliver() {
    let c = TestRedisCluster::start();
    let m = RedisMetrics::unregistered().unwrap();
    let b = connect(&c, &m).await;
    let rooms = rooms_on_every_master(&c, 3);
    let mut subs = subscribed(&b, &rooms).await;
    for (r, sub) in rooms.iter().zip(&mut subs) {
        delivered(&b, r, sub).await;
    }
    // Each channel is subscribed on its own slot's master, and only there.
    for r in &rooms {
        let channel = format!("t:room:{{{r}}}:in");
        let owner = c.master_of_key(&channel);
        for port in c.masters() {
            let counts: Vec<redis::Value> =
                redis::from_redis_value(c.on(port, redis::cmd("PUBSUB").arg("SHARDNUMSUB").arg(&channel)).unwrap())
                    .unwrap();
            let n: i64 = redis::from_redis_value(counts[1].clone()).unwrap();
            assert_eq!(n, i64::from(port == owner), "{channel} on {port}");
        }
    }
}

/// A master is SIGKILLed with rooms on it: its replica is promoted, and
/// every room's subscription is back (on every shard), counted as a
/// resubscription and as a link loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_come_back_after_a_master_fails_over() {
    let mut c = TestRedisCluster::start();
    let reg = Registry::new();
    let m = RedisMetrics::register(&reg).unwrap();
    let b = connect(&c, &m).await;
    let rooms = rooms_on_every_master(&c, 2);
    let mut subs = subscribed(&b, &rooms).await;
    let victim = rooms[0].clone();
    let killed_at = tokio::time::Instant::now();
    let slot = snakepit_bus_slot(&format!("t:room:{{{victim}}}:in"));
    let old = tokio::task::block_in_place(|| c.fail_master_of(slot));
    assert_ne!(c.master_of(slot), old);
    for (r, sub) in rooms.iter().zip(&mut subs) {
        delivered(&b, r, sub).await;
    }
    eprintln!("all rooms delivering {:?} after the kill", killed_at.elapsed());
    assert!(b.link_losses() >= 1, "the loss was not counted");
    assert!(m.resubscribes.get() >= 1, "the resubscription was not counted");
}

/// A live room's slot migrates to another master: the server unsubscribes
/// its channel, and the subscription follows the slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_follows_its_migrated_slot() {
    let c = TestRedisCluster::start();
    let m = RedisMetrics::unregistered().unwrap();
    let b = connect(&c, &m).await;
    let rooms = rooms_on_every_master(&c, 1);
    let mut subs = subscribed(&b, &rooms).await;
    let moved = &rooms[0];
    let channel = format!("t:room:{{{moved}}}:in");
    let from = c.master_of_key(&channel);
    let to = *c.masters().iter().find(|p| **p != from).unwrap();
    // A key of the room moves with its slot.
    let lease = b.acquire_lease(moved, "w1", Duration::from_secs(30), 0).await.unwrap().expect("free");
    tokio::task::block_in_place(|| c.migrate_slot(snakepit_bus_slot(&channel), to));
    for (r, sub) in rooms.iter().zip(&mut subs) {
        delivered(&b, r, sub).await;
    }
    assert_eq!(b.lease_holders(std::slice::from_ref(moved)).await.unwrap(), vec![Some("w1".to_owned())]);
    assert_eq!(b.renew_leases(&[lease], Duration::from_secs(30)).await.unwrap(), vec![snakepit_bus::LeaseState::Held]);
}

/// A master stops (SIGSTOP) with its connections open, and its replica
/// takes over: the subscription to it is silently dead. The probe notices,
/// and the subscriptions move to the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_subscription_is_replaced() {
    let mut c = TestRedisCluster::start();
    let m = RedisMetrics::unregistered().unwrap();
    let b = connect(&c, &m).await;
    let rooms = rooms_on_every_master(&c, 1);
    let mut subs = subscribed(&b, &rooms).await;
    let slot = snakepit_bus_slot(&format!("t:room:{{{}}}:in", rooms[0]));
    let stopped = tokio::task::block_in_place(|| c.pause_master_of(slot));
    for (r, sub) in rooms.iter().zip(&mut subs) {
        delivered(&b, r, sub).await;
    }
    assert_ne!(c.master_of(slot), stopped);
    assert!(b.link_losses() >= 1, "the silent loss was not counted");
}

fn snakepit_bus_slot(name: &str) -> u16 {
    snakepit_bus::test_redis_cluster::slot_of(name)
}

/// One master frozen (SIGSTOP, its connections open) while inputs to a room
/// on it keep coming, one every 2 ms, each waiting up to its 2 s timeout:
/// inputs to a room on another master are still answered at once (batches
/// under way for the frozen one hold up only their own inputs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_master_holds_up_only_its_own_inputs() {
    let c = TestRedisCluster::start();
    let b = RedisBackend::connect_cluster(&c.urls(), "t").await.unwrap();
    let rooms = rooms_on_every_master(&c, 1);
    let (frozen, healthy) = (rooms[0].clone(), rooms[1].clone());
    let mut sub = b.subscribe_input(&healthy).await.unwrap();
    delivered(&b, &healthy, &mut sub).await;
    let port = c.master_of_key(&format!("t:room:{{{frozen}}}:in"));
    let info: String = redis::from_redis_value(c.on(port, redis::cmd("INFO").arg("server")).unwrap()).unwrap();
    let pid = info.lines().find_map(|l| l.strip_prefix("process_id:")).unwrap().trim().to_owned();
    let signal =
        |name: &str| assert!(std::process::Command::new("kill").arg(name).arg(&pid).status().unwrap().success());
    signal("-STOP");
    let stream = {
        let (b, frozen) = (b.clone(), frozen.clone());
        tokio::spawn(async move {
            for _ in 0..500 {
                let (b, frozen) = (b.clone(), frozen.clone());
                tokio::spawn(async move { b.publish_input(&frozen, input()).await });
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // Long enough for well over a hundred batches to be stuck.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = std::time::Instant::now();
        assert_eq!(b.publish_input(&healthy, input()).await.unwrap(), 1);
        slowest = slowest.max(started.elapsed());
        tokio::time::timeout(Duration::from_secs(2), sub.recv()).await.expect("delivered").unwrap();
    }
    signal("-CONT");
    stream.await.unwrap();
    assert!(slowest < Duration::from_millis(500), "an input to a healthy master took {slowest:?}");
}
