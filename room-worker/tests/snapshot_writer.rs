//! The worker's snapshot writer on a real Redis Cluster (three masters,
//! three replicas on loopback) whose one master goes silent with its
//! connections open: the rooms on the other shards are written and told so
//! at once, not after the silent shard's timeout.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use snakepit_bus::test_redis_cluster::{TestRedisCluster, slot_of};
use snakepit_bus::{Lease, Ownership, RedisBackend, RoomId, SnapshotSave, SnapshotWrite};
use snakepit_room_worker::snapshot_writer::SnapshotWriter;
use tokio::time::{Instant, timeout};

const PREFIX: &str = "t";

fn lease_key(room: &RoomId) -> String {
    format!("{PREFIX}:room:{{{room}}}:lease")
}

fn save(lease: &Lease, seq: u64) -> SnapshotSave {
    SnapshotSave { lease: lease.clone(), seq, data: Bytes::from(format!("snapshot {seq} of {}", lease.room)) }
}

// One thread: the snapshots of a tick are all queued before the writer
// takes any, as one batch.
/// Waits until the node at `port` answers no PING within 200 ms (it is
/// stopped), 10 s at most.
async fn stopped(port: u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "the node at {port} still answers");
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        conn.write_all(b"PING\r\n").await.unwrap();
        let mut reply = [0u8; 16];
        if timeout(Duration::from_millis(200), conn.read(&mut reply)).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_silent_shard_holds_up_only_its_own_rooms_snapshots() {
    let cluster = TestRedisCluster::start();
    let backend = RedisBackend::connect_cluster(&cluster.urls(), PREFIX).await.expect("connect to the cluster");
    let (writer, _task) = SnapshotWriter::spawn(backend.clone());
    // Three rooms on each master, their leases held.
    let mut leases = Vec::new();
    for master in cluster.masters() {
        let mut n = 0;
        while n < 3 {
            let room = RoomId::random();
            if cluster.master_of_key(&lease_key(&room)) == master {
                let lease = backend.acquire_lease(&room, "w", Duration::from_secs(120), 0).await.unwrap().unwrap();
                leases.push((master, lease));
                n += 1;
            }
        }
    }
    for (_, lease) in &leases {
        assert_eq!(writer.save(save(lease, 1)).await.unwrap(), Some(SnapshotWrite::Saved));
    }

    // The first room's master stops (SIGSTOP: silent, connections open);
    // the test's thread waits for its replica to take over meanwhile.
    let silent = leases[0].0;
    let slot = slot_of(&lease_key(&leases[0].1.room));
    let mut cluster = cluster;
    let failover = std::thread::spawn(move || {
        cluster.pause_master_of(slot);
        cluster
    });
    stopped(silent).await;

    // Every room writes its next snapshot at once, as a tick's would.
    let started = Instant::now();
    let pending: Vec<_> = leases.iter().map(|(m, lease)| (*m, lease.clone(), writer.save(save(lease, 2)))).collect();
    let mut held_up = Vec::new();
    for (master, lease, written) in pending {
        if master == silent {
            // Kept: a snapshot whose receiver is dropped is left unwritten.
            held_up.push(written);
            continue;
        }
        let written = timeout(Duration::from_secs(1), written)
            .await
            .unwrap_or_else(|_| panic!("room {} on a live shard waited on the silent one", lease.room));
        assert_eq!(written.unwrap(), Some(SnapshotWrite::Saved));
        let stored = backend.load_snapshot(&lease.room).await.unwrap();
        assert_eq!(stored, Some((lease.epoch, save(&lease, 2).data)));
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    // The silent shard's rooms are told in the end (not written, as the
    // client gave up on the shard; or written, by its replica).
    for written in held_up {
        let written = timeout(Duration::from_secs(10), written).await.expect("a silent shard's room never told");
        assert!(matches!(written.unwrap(), None | Some(SnapshotWrite::Saved)));
    }
    let _cluster = tokio::task::spawn_blocking(move || failover.join().unwrap()).await.unwrap();
}
