//! Inputs to rooms, gathered for a moment and published together.
//!
//! A gateway publishes every key press of its players to the room's input
//! channel. Sent one command each, they reached Redis one by one, and Redis
//! passed each on to the room's worker as it came: the worker woke for
//! nearly every key press (thousands a second; with full rooms the kernel's
//! task switches were a sixth of the worker's time). Gathered for at most
//! [`LINGER`] and sent as one pipeline, they reach Redis together, and Redis
//! passes them on together. A room takes its inputs at its tick, so a key
//! press is late for its tick only if it came within [`LINGER`] of it.
//!
//! Order is kept: one queue, one batch under way at a time (a command
//! connection answers in order anyway), and on a Redis Cluster a room's
//! inputs share a slot and so a pipeline.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use crate::backend::BusError;
use crate::redis_backend::publish_cmd;
use crate::redis_commands::Commands;
use crate::redis_shards::slot_of;

/// Longest an input waits for others to go with it.
pub(crate) const LINGER: Duration = Duration::from_millis(2);
/// Inputs waiting at most (beyond, a publisher waits for room).
const QUEUE: usize = 4096;
/// Inputs in one batch at most.
const BATCH: usize = 512;

/// An input on its way, and who waits for its outcome.
struct Pending {
    channel: String,
    bytes: Vec<u8>,
    done: oneshot::Sender<Result<usize, BusError>>,
}

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

    /// Publishes `bytes` on `channel` with the next batch: how many
    /// subscribers received it.
    pub(crate) async fn publish(&self, channel: String, bytes: Vec<u8>) -> Result<usize, BusError> {
        let stopped = || BusError::Unavailable("the input publisher stopped".into());
        let (done, outcome) = oneshot::channel();
        self.tx.send(Pending { channel, bytes, done }).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

async fn run<C: Fn() -> Commands + Sync>(
    mut rx: mpsc::Receiver<Pending>,
    conn: C,
    command: &'static str,
    cluster: bool,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        // What comes within the linger goes along.
        let linger = sleep_until(Instant::now() + LINGER);
        tokio::pin!(linger);
        while batch.len() < BATCH {
            let room = BATCH - batch.len();
            tokio::select! {
                biased;
                got = rx.recv_many(&mut batch, room) => if got == 0 { break },
                () = &mut linger => break,
            }
        }
        send(&mut batch, &conn, command, cluster).await;
    }
}

/// Sends the batch (a pipeline per slot, all at once) and answers each
/// input's publisher.
async fn send<C: Fn() -> Commands + Sync>(batch: &mut Vec<Pending>, conn: &C, command: &'static str, cluster: bool) {
    let mut pipes: HashMap<u16, (redis::Pipeline, Vec<usize>)> = HashMap::new();
    for (i, p) in batch.iter().enumerate() {
        let slot = if cluster { slot_of(p.channel.as_bytes()) } else { 0 };
        let (pipe, members) = pipes.entry(slot).or_default();
        pipe.add_command(publish_cmd(command, &p.channel, &p.bytes));
        members.push(i);
    }
    let sent = join_all(pipes.into_values().map(|(pipe, members)| {
        let mut conn = conn();
        async move { (members, pipe.query_async::<Vec<usize>>(&mut conn).await) }
    }))
    .await;
    let mut outcomes: Vec<Option<Result<usize, BusError>>> = batch.iter().map(|_| None).collect();
    for (members, result) in sent {
        match result {
            Ok(counts) => {
                for (i, n) in members.into_iter().zip(counts) {
                    outcomes[i] = Some(Ok(n));
                }
            }
            Err(e) => {
                for i in members {
                    outcomes[i] = Some(Err(BusError::Unavailable(e.to_string())));
                }
            }
        }
    }
    for (p, outcome) in batch.drain(..).zip(outcomes) {
        let outcome = outcome.unwrap_or_else(|| Err(BusError::Unavailable("no answer for an input".into())));
        // Its publisher may have given up waiting: nothing to tell.
        let _ = p.done.send(outcome);
    }
}
