//! Inputs to rooms, gathered for a moment and published together.
//!
//! A gateway publishes every key press of its players to the room's input
//! channel. Sent one command each, they reached Redis one by one, and Redis
//! passed each on to the room's worker as it came: the worker woke for
//! nearly every key press (thousands a second; with full rooms the kernel's
//! task switches were a sixth of the worker's time). Gathered for
//! [`LINGER`] and sent as one pipeline, they reach Redis together, and Redis
//! passes them on together. A room takes its inputs at its tick, so an
//! input is late for its tick only if it came within the linger (2 ms, and
//! up to the timer's next millisecond) of it.
//!
//! Batches do not wait for each other, and are not held back by those
//! under way: one that Redis does not answer (a stalled server, or one
//! stalled master of a Redis Cluster, whose slots have pipelines of their
//! own) holds up only its own inputs, each of which gets its own answer. A
//! connection waits for each of its inputs before it sends the next, which
//! keeps its inputs in order.
//!
//! A batch's inputs for one room go as one message, on the room's batch
//! channel ([`Keys::room_in_batch`](crate::keys::Keys::room_in_batch)): the
//! inputs one after the other, each as it would go alone. A full room's
//! worker received about three messages where one does now, and parsing
//! and routing each was a tenth of its time. A worker of an earlier release
//! subscribes only to the single channel, so this release rolls in workers
//! first (docs/deploy.md). Should a gateway still meet such a worker, a
//! batch that no subscriber took goes again one input at a time; that
//! covers most of it, not all: a worker whose room has just moved counts as
//! a subscriber of its batch channel until it unsubscribes (within a
//! second), as does a pattern subscriber that matches it.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use redis::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tracing::error;

use crate::backend::BusError;
use crate::panic_message::panic_message;
use crate::redis_backend::publish_cmd;
use crate::redis_commands::Commands;
use crate::redis_shards::slot_of;

/// How long an input waits for others to go with it.
const LINGER: Duration = Duration::from_millis(2);
/// Inputs waiting at most (beyond, a publisher waits for room).
const QUEUE: usize = 4096;
/// Inputs in one batch at most.
const BATCH: usize = 512;
/// Longest a publisher waits for its input's outcome, queue included: as
/// long as a command waits for Redis (the connections' response timeout),
/// and the linger.
const PATIENCE: Duration = Duration::from_millis(2100);

/// An input on its way, and who waits for its outcome.
struct Pending {
    channel: String,
    /// The room's channel for inputs sent together.
    batch_channel: String,
    bytes: Vec<u8>,
    done: Answer,
}

/// Who waits for a command of a pipeline.
enum Waiting {
    One(Answer),
    /// Inputs for one room sent as one message: kept, to go again one by
    /// one should no subscriber take them together.
    Together(Vec<Pending>),
}

/// Where an input's publisher waits for its outcome.
type Answer = oneshot::Sender<Result<usize, BusError>>;

/// The handle the backend publishes inputs through; the task behind it
/// ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct InputBatcher {
    tx: mpsc::Sender<Pending>,
}

impl InputBatcher {
    /// `conn` gives the connection to send each batch on (a cluster's may
    /// change), `command` is PUBLISH or SPUBLISH.
    pub(crate) fn spawn<C>(conn: C, command: &'static str, cluster: bool) -> Self
    where
        C: Fn() -> Commands + Send + Sync + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(rx, conn, command, cluster));
        Self { tx }
    }

    /// Publishes `bytes` on `channel` with the next batch (or, with other
    /// inputs for the same room, together on `batch_channel`): how many
    /// subscribers received it. An input whose publisher stopped waiting
    /// (after [`PATIENCE`]) and that was not sent yet is not sent.
    pub(crate) async fn publish(
        &self,
        channel: String,
        batch_channel: String,
        bytes: Vec<u8>,
    ) -> Result<usize, BusError> {
        let (done, outcome) = oneshot::channel();
        let waited = timeout(PATIENCE, async {
            let stopped = || BusError::Unavailable("the input publisher stopped".into());
            self.tx.send(Pending { channel, batch_channel, bytes, done }).await.map_err(|_| stopped())?;
            outcome
                .await
                .map_err(|_| BusError::Unavailable("the input was dropped: the input publisher panicked".into()))?
        });
        waited.await.unwrap_or_else(|_| Err(BusError::Unavailable("no answer from Redis in time".into())))
    }
}

/// Serves the queue until the last handle is gone. A panic (none is
/// known) answers the inputs under way as failed, and serving starts
/// again on the same queue: a gateway whose inputs all failed would look
/// healthy while nobody could steer.
async fn run<C: Fn() -> Commands + Sync>(
    mut rx: mpsc::Receiver<Pending>,
    conn: C,
    command: &'static str,
    cluster: bool,
) {
    loop {
        let serving = crate::batches::serve(&mut rx, BATCH, Some(LINGER), |batch| {
            pipelines(batch.drain(..), command, cluster, true)
                .into_iter()
                .map(|(pipe, waiting)| {
                    let mut conn = conn();
                    async move {
                        let untaken = answer(waiting, pipe.query_async::<Vec<Value>>(&mut conn).await);
                        // One room's inputs, one slot: one pipeline. Those
                        // whose publisher gave up meanwhile are left out:
                        // it may have sent its connection's next input
                        // since, which this one must not follow.
                        for (pipe, waiting) in pipelines(untaken.into_iter(), command, cluster, false) {
                            answer(waiting, pipe.query_async::<Vec<Value>>(&mut conn).await);
                        }
                    }
                })
                .collect()
        });
        match AssertUnwindSafe(serving).catch_unwind().await {
            Ok(()) => return,
            Err(panic) => error!(
                panic = %panic_message(panic.as_ref()),
                "the input publisher panicked; serving again (the inputs under way failed)"
            ),
        }
    }
}

/// The batch's inputs as pipelines, one per slot (one in all on a single
/// Redis), each with the publishers waiting for its commands, in order.
/// Inputs whose publisher stopped waiting are left out. `together`: a
/// room's inputs go as one message on its batch channel.
fn pipelines(
    batch: impl Iterator<Item = Pending>,
    command: &str,
    cluster: bool,
    together: bool,
) -> Vec<(redis::Pipeline, Vec<Waiting>)> {
    let mut by_room: HashMap<String, Vec<Pending>> = HashMap::new();
    for p in batch.filter(|p| !p.done.is_closed()) {
        by_room.entry(p.channel.clone()).or_default().push(p);
    }
    let mut by_slot: HashMap<u16, (redis::Pipeline, Vec<Waiting>)> = HashMap::new();
    for (channel, inputs) in by_room {
        let slot = if cluster { slot_of(channel.as_bytes()) } else { 0 };
        let (pipe, waiting) = by_slot.entry(slot).or_insert_with(|| {
            let mut pipe = redis::pipe();
            // Each command's own reply, errors included: one refused
            // command does not fail the others.
            pipe.ignore_errors();
            (pipe, Vec::new())
        });
        if together && inputs.len() > 1 {
            let mut bytes = Vec::with_capacity(inputs.iter().map(|p| p.bytes.len()).sum());
            for p in &inputs {
                bytes.extend_from_slice(&p.bytes);
            }
            pipe.add_command(publish_cmd(command, &inputs[0].batch_channel, &bytes));
            waiting.push(Waiting::Together(inputs));
            continue;
        }
        for p in inputs {
            pipe.add_command(publish_cmd(command, &p.channel, &p.bytes));
            waiting.push(Waiting::One(p.done));
        }
    }
    by_slot.into_values().collect()
}

/// Tells each publisher its command's outcome, and returns the inputs of
/// batches that no subscriber took (to go again one by one).
fn answer(waiting: Vec<Waiting>, replies: redis::RedisResult<Vec<Value>>) -> Vec<Pending> {
    let mut untaken = Vec::new();
    let mut replies = match replies {
        Ok(replies) => replies.into_iter(),
        Err(e) => {
            let failed = Err(e.to_string());
            for w in waiting {
                w.tell(&failed);
            }
            return untaken;
        }
    };
    for w in waiting {
        let outcome = match replies.next() {
            Some(Value::Int(n)) => Ok(usize::try_from(n).unwrap_or(0)),
            Some(Value::ServerError(e)) => Err(e.to_string()),
            Some(other) => Err(format!("unexpected reply to a publish: {other:?}")),
            None => Err("no reply for an input".into()),
        };
        match w {
            Waiting::Together(inputs) if outcome == Ok(0) => untaken.extend(inputs),
            w => w.tell(&outcome),
        }
    }
    untaken
}

impl Waiting {
    /// Tells every publisher waiting here (one may have given up
    /// waiting: nothing to tell).
    fn tell(self, outcome: &Result<usize, String>) {
        let each = || outcome.clone().map_err(BusError::Unavailable);
        match self {
            Self::One(done) => {
                let _ = done.send(each());
            }
            Self::Together(inputs) => {
                for p in inputs {
                    let _ = p.done.send(each());
                }
            }
        }
    }
}

#[cfg(all(test, feature = "test-support"))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::test_redis::TestRedis;

    /// The batcher's task panics on its first batch (here: getting the
    /// connection): that batch's input fails, and the next is published,
    /// on the same handle.
    #[tokio::test]
    async fn a_panic_fails_the_inputs_under_way_and_serving_goes_on() {
        let redis = TestRedis::start();
        let client = redis::Client::open(redis.url()).unwrap();
        let manager = client.get_connection_manager().await.unwrap();
        let panicked = Arc::new(AtomicBool::new(false));
        let once = panicked.clone();
        let batcher = InputBatcher::spawn(
            move || {
                if !once.swap(true, Ordering::SeqCst) {
                    panic!("the first batch panics");
                }
                Commands::Single(manager.clone())
            },
            "PUBLISH",
            false,
        );
        let first = batcher.publish("inputs".into(), "inputs-batch".into(), b"one".to_vec()).await;
        assert!(first.as_ref().is_err_and(|e| e.to_string().contains("panicked")), "{first:?}");
        assert!(panicked.load(Ordering::SeqCst));
        // Nobody subscribes: Redis says 0 receivers.
        assert_eq!(batcher.publish("inputs".into(), "inputs-batch".into(), b"two".to_vec()).await.unwrap(), 0);
    }
}
