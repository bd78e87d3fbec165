//! Inputs published in batches (`redis_inputs.rs`), against a real Redis:
//! each input gets its own answer, in bounded time, whatever happens to
//! the others of its batch.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use snakepit_bus::test_redis::TestRedis;
use snakepit_bus::{Bus, ConnId, InputKind, PlayerId, RedisBackend, RoomId, RoomInput};

fn input() -> RoomInput {
    RoomInput { player: PlayerId::random(), conn: ConnId::random(), kind: InputKind::Join }
}

/// Redis frozen with thousands of inputs on their way: each publisher has
/// its answer (an error) within about the response timeout, not after the
/// batches before it waited theirs out one by one; and publishing works
/// again once Redis does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_answers_every_input_in_bounded_time() {
    let redis = TestRedis::start();
    let backend = RedisBackend::connect(&redis.url(), "in1").await.unwrap();
    let room = RoomId::parse("frozen").unwrap();
    let mut sub = backend.subscribe_input(&room).await.unwrap();
    redis.pause();
    let started = Instant::now();
    let publishers: Vec<_> = (0..3000)
        .map(|_| {
            let (b, r) = (backend.clone(), room.clone());
            tokio::spawn(async move { (b.publish_input(&r, input()).await.is_ok(), started.elapsed()) })
        })
        .collect();
    let mut last = Duration::ZERO;
    for p in publishers {
        let (ok, at) = p.await.unwrap();
        assert!(!ok, "an input published while Redis was frozen");
        last = last.max(at);
    }
    redis.resume();
    assert!(last < Duration::from_secs(4), "the last publisher waited {last:?}");
    // What Redis had taken in while frozen may still reach the subscriber,
    // past its queue's 1,024: drained first, or the input below could be
    // the one a full queue loses (a CI flake).
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), sub.recv()).await {}
    // Redis is back: inputs go through again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let sent = input();
    while backend.publish_input(&room, sent.clone()).await.ok() != Some(1) {
        assert!(Instant::now() < deadline, "no publish after Redis came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = tokio::time::timeout_at(deadline, sub.recv()).await.expect("the input after the thaw").unwrap();
        if got == sent {
            break;
        }
    }
}

/// One input refused by Redis (here, a user not allowed on its channel)
/// fails alone: the input sent in the same batch to another room is
/// answered as delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_input_fails_alone() {
    let redis = TestRedis::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "gw", "on", ">pw", "~*", "resetchannels", "&in2:room:{open}*", "+@all"][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    let owner = RedisBackend::connect(&redis.url(), "in2").await.unwrap();
    let gateway = RedisBackend::connect(&format!("redis://gw:pw@127.0.0.1:{}/", redis.port), "in2").await.unwrap();
    let (open, closed) = (RoomId::parse("open").unwrap(), RoomId::parse("closed").unwrap());
    let mut sub = owner.subscribe_input(&open).await.unwrap();
    for _ in 0..20 {
        let (a, b) = tokio::join!(gateway.publish_input(&open, input()), gateway.publish_input(&closed, input()));
        assert_eq!(a.unwrap(), 1, "the allowed input");
        assert!(b.is_err(), "the refused input");
        tokio::time::timeout(Duration::from_secs(2), sub.recv()).await.expect("delivered").unwrap();
    }
}

/// Publishes one input for `room` from each of `count` players at once
/// (one batch): the answers, each the subscribers that received it.
async fn at_once(backend: &RedisBackend, room: &RoomId, count: usize) -> (Vec<RoomInput>, Vec<usize>) {
    let inputs: Vec<RoomInput> = (0..count).map(|_| input()).collect();
    let answers = futures_util::future::join_all(inputs.iter().map(|i| backend.publish_input(room, i.clone()))).await;
    (inputs, answers.into_iter().map(|a| a.unwrap()).collect())
}

/// PUBLISH commands Redis has run since the last `CONFIG RESETSTAT`.
async fn publishes(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await.unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_publish:calls="))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// A room's inputs that go out in the same batch reach its subscriber as
/// one message, each input whole and answered as delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_inputs_of_one_batch_go_as_one_message() {
    let redis = TestRedis::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let (gateway, worker) = (
        RedisBackend::connect(&redis.url(), "in3").await.unwrap(),
        RedisBackend::connect(&redis.url(), "in3").await.unwrap(),
    );
    let room = RoomId::parse("full").unwrap();
    let mut sub = worker.subscribe_input(&room).await.unwrap();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut admin).await.unwrap();
    let (sent, answers) = at_once(&gateway, &room, 10).await;
    assert_eq!(answers, vec![1; 10], "each input's subscribers");
    let mut got = Vec::new();
    while got.len() < sent.len() {
        got.push(tokio::time::timeout(Duration::from_secs(2), sub.recv()).await.expect("an input").unwrap());
    }
    for input in &sent {
        assert!(got.contains(input), "{input:?} was not received whole");
    }
    let published = publishes(&mut admin).await;
    assert!(published < 5, "{published} PUBLISH commands for 10 inputs of one room");
}

/// A worker of an earlier release subscribes only to a room's channel for
/// single inputs: a batch of inputs that no subscriber took goes again one
/// by one, and each input reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_worker_gets_every_input_one_by_one() {
    use futures_util::StreamExt;
    let redis = TestRedis::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let gateway = RedisBackend::connect(&redis.url(), "in4").await.unwrap();
    let room = RoomId::parse("older").unwrap();
    let mut earlier = client.get_async_pubsub().await.unwrap();
    earlier.subscribe("in4:room:{older}:in").await.unwrap();
    let (sent, answers) = at_once(&gateway, &room, 10).await;
    assert_eq!(answers, vec![1; 10], "each input's subscribers");
    let mut messages = earlier.on_message();
    for _ in 0..sent.len() {
        let msg = tokio::time::timeout(Duration::from_secs(2), messages.next()).await.expect("an input").unwrap();
        let input: RoomInput = rmp_serde::from_slice(msg.get_payload_bytes()).expect("one input per message");
        assert!(sent.contains(&input), "{input:?} was not sent");
    }
}

/// A batch that no subscriber took goes again only for the publishers
/// still waiting: one that gave up (Redis was slow) may have sent its
/// connection's next input since, which the input it gave up on must not
/// follow. Here Redis is paused, both publishers of a batch give up, and
/// the connection's next input is the only one an earlier worker gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_taken_by_nobody_goes_again_only_for_those_still_waiting() {
    use futures_util::StreamExt;
    use snakepit_protocol::client::Direction;
    let redis = TestRedis::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let gateway = RedisBackend::connect(&redis.url(), "in5").await.unwrap();
    let room = RoomId::parse("older").unwrap();
    let mut earlier = client.get_async_pubsub().await.unwrap();
    earlier.subscribe("in5:room:{older}:in").await.unwrap();
    let (player, conn) = (PlayerId::random(), ConnId::random());
    let turn = |d| RoomInput { player, conn, kind: InputKind::Turn(d) };
    let (first, second) = (turn(Direction::Up), turn(Direction::Left));
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(400).arg("ALL").query_async(&mut admin).await.unwrap();
    let give_up = |i: RoomInput| tokio::time::timeout(Duration::from_millis(50), gateway.publish_input(&room, i));
    let (a, b) = tokio::join!(give_up(first.clone()), give_up(input()));
    assert!(a.is_err() && b.is_err(), "both publishers gave up");
    assert_eq!(gateway.publish_input(&room, second.clone()).await.unwrap(), 1);
    let mut messages = earlier.on_message();
    let mut got = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(1000), messages.next()).await {
        got.push(rmp_serde::from_slice::<RoomInput>(msg.get_payload_bytes()).unwrap());
    }
    assert_eq!(got, vec![second], "only the input whose publisher waited");
}
