//! A subscribe given up half-way (its future dropped: a gateway's room feed
//! whose last member left while the room's first subscribe was under way)
//! leaves nothing behind that the room's next subscriber would ride on: it
//! subscribes anew, and its channel is restored after a reconnect.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::Bytes;
use snakepit_bus::test_redis::TestRedis;
use snakepit_bus::test_redis_cluster::TestRedisCluster;
use snakepit_bus::{Bus, FrameKind, Handler, OutFrame, RedisBackend, RoomId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn frame(tick: u64) -> OutFrame {
    OutFrame { epoch: 1, tick, kind: FrameKind::Tick, payload: Bytes::from(format!("[{tick}]")) }
}

/// A handler sending the ticks it takes, and the token that stops it.
fn handler() -> (Handler<OutFrame>, CancellationToken, mpsc::UnboundedReceiver<u64>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let (handler, _ended) = Handler::new(
        move |f: OutFrame| {
            let _ = tx.send(f.tick);
        },
        stop.clone(),
    );
    (handler, stop, rx)
}

/// Publishes ticks `from..` for up to `secs` seconds; how many `rx` took.
async fn frames_taken(
    b: &RedisBackend,
    room: &RoomId,
    rx: &mut mpsc::UnboundedReceiver<u64>,
    from: u64,
    secs: u64,
) -> usize {
    let mut got = 0;
    for tick in from..from + secs * 10 {
        let _ = b.publish_output(room, frame(tick)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        while rx.try_recv().is_ok() {
            got += 1;
        }
        if got > 0 {
            break;
        }
    }
    got
}

/// On a Redis Cluster: the first SSUBSCRIBE given up before it was sent;
/// the room's next subscriber must subscribe, not take the channel for
/// subscribed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_given_up_on_a_cluster_leaves_the_next_one_to_subscribe() {
    let cluster = TestRedisCluster::start();
    let b = RedisBackend::connect_cluster(&cluster.urls(), "cancel").await.unwrap();
    let room = RoomId::random();
    let (first, stop, _rx) = handler();
    {
        let mut subscribing = pin!(b.subscribe_output_with(&room, first));
        // Polled once: its route is in, the slot map is being read.
        let polled = subscribing.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        assert!(polled.is_pending(), "the first subscribe finished at once");
    }
    stop.cancel();
    let (next, _stop, mut rx) = handler();
    b.subscribe_output_with(&room, next).await.unwrap();
    assert!(frames_taken(&b, &room, &mut rx, 1, 3).await > 0, "the room's channel was never subscribed");
}

/// On one Redis: the first SUBSCRIBE given up while the server was frozen;
/// the next subscriber's channel must come back after Redis restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_given_up_on_one_redis_is_restored_after_a_restart() {
    let mut redis = TestRedis::start();
    let b = RedisBackend::connect(&redis.url(), "cancel").await.unwrap();
    let room = RoomId::random();
    let (first, stop, _rx) = handler();
    redis.pause();
    let gave_up = tokio::time::timeout(Duration::from_millis(300), b.subscribe_output_with(&room, first)).await;
    assert!(gave_up.is_err(), "the subscribe finished on a frozen Redis");
    stop.cancel();
    redis.resume();
    let (next, _stop, mut rx) = handler();
    b.subscribe_output_with(&room, next).await.unwrap();
    assert!(frames_taken(&b, &room, &mut rx, 1, 2).await > 0, "no frame before the restart");
    redis.restart();
    assert!(
        frames_taken(&b, &room, &mut rx, 100, 6).await > 0,
        "the room's channel was not restored after the restart"
    );
}
