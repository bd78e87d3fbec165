//! The backend contract, against a real `redis-server` started per test.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use snakepit_bus::contract::*;
use snakepit_bus::test_redis::TestRedis;
use snakepit_bus::{Ownership, RedisBackend, Store};

async fn backend(redis: &TestRedis) -> RedisBackend {
    RedisBackend::connect(&redis.url(), "test").await.expect("connect")
}

snakepit_bus::backend_contract_tests!({
    let redis = TestRedis::start();
    let b = backend(&redis).await;
    (redis, b)
});

#[tokio::test]
async fn two_prefixes_share_one_redis() {
    let r = TestRedis::start();
    let a = RedisBackend::connect(&r.url(), "a").await.unwrap();
    let b = RedisBackend::connect(&r.url(), "b").await.unwrap();
    prefixes_isolate_clusters(a, b).await;
}

/// Two connections (two processes, as far as Redis can tell) agree on the
/// generation; `FLUSHALL` loses the data as a restart with none would.
#[tokio::test]
async fn the_generation_changes_only_when_the_data_is_lost() {
    let r = TestRedis::start();
    let (a, b) = (backend(&r).await, backend(&r).await);
    let raw = redis::Client::open(r.url()).unwrap();
    generation_changes_only_when_the_data_is_lost(a, b, || {
        let raw = raw.clone();
        async move {
            let mut conn = raw.get_multiplexed_async_connection().await.unwrap();
            let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn subscriptions_come_back_after_redis_restarts() {
    let mut r = TestRedis::start();
    let b = backend(&r).await;
    assert_eq!(b.link_losses(), 0);
    survives_a_restart(b.clone(), || r.restart()).await;
    // The break was seen: a host holds its verdicts for a while after it.
    assert!(b.link_losses() >= 1, "the subscription link's loss was not counted");
}

/// Retries `f` until Redis answers again after a restart.
async fn retry<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, snakepit_bus::BusError>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "Redis did not come back: {e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The fencing token stays unique when Redis loses its data, counters
/// included: a lease taken afresh after the loss is above every earlier one.
#[tokio::test]
async fn epochs_never_repeat_after_redis_loses_its_data() {
    use snakepit_bus::{Ownership, RoomId};
    let mut r = TestRedis::start();
    let b = backend(&r).await;
    let room = RoomId::parse("lossy").unwrap();
    let ttl = std::time::Duration::from_secs(5);
    let before = b.acquire_lease(&room, "w1", ttl, 0).await.unwrap().expect("free");
    // The counter does not outlive its room for ever.
    let mut raw = redis::Client::open(r.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let pttl: i64 = redis::cmd("PTTL").arg("test:room:{lossy}:epoch").query_async(&mut raw).await.unwrap();
    assert!(pttl > 0, "the epoch counter has no expiry ({pttl})");
    r.restart();
    let after = retry(|| b.acquire_lease(&room, "w1", ttl, 0)).await.expect("free after the loss");
    assert!(after.epoch > before.epoch, "epoch {} reused after {}", after.epoch, before.epoch);
}

/// Channels dropped and subscribed again keep their server-side
/// subscription: an UNSUBSCRIBE of an old subscriber (from the router's
/// sweep of dropped subscriptions) never lands after the SUBSCRIBE of a new
/// one. Churns 40 channels across several sweeps.
#[tokio::test]
async fn resubscribing_never_loses_the_subscription() {
    use snakepit_bus::{Bus, FrameKind, OutFrame, RoomId};
    let r = TestRedis::start();
    let b = backend(&r).await;
    let rooms: Vec<RoomId> = (0..40).map(|i| RoomId::parse(&format!("churn-{i}")).unwrap()).collect();
    let frame = OutFrame { epoch: 1, tick: 1, kind: FrameKind::Tick, payload: bytes::Bytes::from_static(b"[]") };
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(4);
    let mut round = 0;
    while tokio::time::Instant::now() < until {
        round += 1;
        let mut subs = Vec::new();
        for room in &rooms {
            subs.push(b.subscribe_output(room).await.unwrap());
        }
        for (room, sub) in rooms.iter().zip(subs.iter_mut()) {
            let mut got = false;
            for _ in 0..10 {
                b.publish_output(room, frame.clone()).await.unwrap();
                if tokio::time::timeout(std::time::Duration::from_millis(30), sub.recv()).await.is_ok() {
                    got = true;
                    break;
                }
            }
            assert!(got, "round {round}: {room} lost its subscription");
        }
        drop(subs);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
}

/// A session this build cannot decode (written by an older release) reads
/// as no session: the client hears "unknown token" and starts afresh,
/// instead of "server busy" until the session expires.
#[tokio::test]
async fn an_unreadable_session_is_no_session() {
    let r = TestRedis::start();
    let b = backend(&r).await;
    let mut raw = redis::Client::open(r.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let token = "0123456789abcdef0123456789abcdef";
    let old: &[u8] = &[0x93, 0xc4, 0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0xa3, b'a', b'n', b'n'];
    let _: () = redis::cmd("SET").arg(format!("test:session:{token}")).arg(old).query_async(&mut raw).await.unwrap();
    assert_eq!(b.session(token).await.unwrap(), None);
}

/// One room's snapshot that Redis cannot write (its key holds another
/// type) fails that room's write alone, not the others' in the same call.
#[tokio::test]
async fn one_rooms_bad_snapshot_key_fails_only_its_write() {
    use bytes::Bytes;
    use snakepit_bus::{RoomId, SnapshotSave, SnapshotWrite};
    let r = TestRedis::start();
    let b = backend(&r).await;
    let ttl = std::time::Duration::from_secs(5);
    let (bad, good) = (RoomId::parse("bad-key").unwrap(), RoomId::parse("good-key").unwrap());
    let bad_lease = b.acquire_lease(&bad, "w", ttl, 0).await.unwrap().unwrap();
    let good_lease = b.acquire_lease(&good, "w", ttl, 0).await.unwrap().unwrap();
    let raw = redis::Client::open(r.url()).unwrap();
    let mut conn = raw.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("test:room:{{{bad}}}:snapshot"))
        .arg("a string")
        .query_async(&mut conn)
        .await
        .unwrap();
    let writes = [
        SnapshotSave { lease: bad_lease, seq: 1, data: Bytes::from_static(b"bad") },
        SnapshotSave { lease: good_lease.clone(), seq: 1, data: Bytes::from_static(b"good") },
    ];
    assert_eq!(b.save_snapshots(&writes).await.unwrap(), vec![None, Some(SnapshotWrite::Saved)]);
    assert_eq!(b.load_snapshot(&good).await.unwrap(), Some((good_lease.epoch, Bytes::from_static(b"good"))));
}
